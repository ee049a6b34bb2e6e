# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The record of the last proxy declaration: current only while NPM's database file is exactly as recorded."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _proxy_marker


@pytest.fixture
def files(tmp_path):
    database = tmp_path / 'jc21' / 'data' / 'database.sqlite'
    database.parent.mkdir(parents=True)
    database.write_bytes(b'SQLite format 3\x00' + b'\x00' * 100)
    return tmp_path / '.npm-declared', database


def test_a_record_of_an_unchanged_database_is_current_and_private(files):
    marker, database = files
    assert _proxy_marker.write(str(marker), 'k1', str(database)) is True
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert _proxy_marker.read(str(marker), str(database)) == {
        'key': 'k1',
        'current': True,
        'reason': "NPM's database is unchanged since the declaration",
    }
    assert [p.name for p in marker.parent.iterdir() if p.is_file()] == ['.npm-declared']


def _restored(db):
    st = db.stat()
    data = db.read_bytes()
    db.unlink()
    db.write_bytes(data)
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    'change',
    [
        lambda db: db.write_bytes(db.read_bytes() + b'x'),  # a row written (size)
        lambda db: os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 1)),  # same size, rewritten
        lambda db: (db.unlink(), db.write_bytes(b'SQLite format 3\x00' + b'\x00' * 100)),  # replaced by a new file
        _restored,  # put back from a copy with its times: only the change time tells
    ],
)
def test_any_change_of_the_database_makes_it_not_current(files, change):
    marker, database = files
    _proxy_marker.write(str(marker), 'k1', str(database))
    change(database)
    found = _proxy_marker.read(str(marker), str(database))
    assert found['current'] is False
    assert found['key'] == 'k1'
    assert 'changed' in found['reason']


def test_no_record_damaged_foreign_or_elsewhere_is_never_current(files, tmp_path):
    marker, database = files
    assert _proxy_marker.read(str(marker), str(database))['reason'] == 'no declaration recorded'
    marker.write_text('{not json')
    marker.chmod(0o600)
    assert _proxy_marker.read(str(marker), str(database)) == {
        'key': '',
        'current': False,
        'reason': 'the record is damaged',
    }
    _proxy_marker.write(str(marker), 'k1', str(database))
    other = tmp_path / 'other.sqlite'
    other.write_bytes(database.read_bytes())
    assert _proxy_marker.read(str(marker), str(other))['current'] is False
    marker.chmod(0o666)
    assert 'alone' in _proxy_marker.read(str(marker), str(database))['reason']
    marker.chmod(0o600)
    link = tmp_path / 'link'
    link.symlink_to(marker)
    assert _proxy_marker.read(str(link), str(database))['reason'] == 'the record is not a regular file'
    database.unlink()
    assert _proxy_marker.read(str(marker), str(database))['current'] is False


def test_a_record_with_wrong_types_is_damaged_and_no_database_means_no_record(files):
    marker, database = files
    marker.write_text(json.dumps({'key': 1, 'database': str(database), 'state': {}}))
    marker.chmod(0o600)
    assert _proxy_marker.read(str(marker), str(database))['reason'] == 'the record is damaged'
    database.unlink()
    assert _proxy_marker.write(str(marker), 'k1', str(database)) is False
    assert not marker.exists()


def _npm_writes(db, text=b'row'):
    """What one NPM write does to its database file: rows appended (the proxy host, its audit log)."""
    with open(db, 'ab') as handle:
        handle.write(text)
    os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 1000))


def test_a_switch_whose_own_writes_were_the_only_changes_records_the_declaration_again(files):
    marker, database = files
    _proxy_marker.write(str(marker), 'k1', str(database))
    chain = _proxy_marker.Chain(str(marker), str(database))
    for _write in range(4):  # pin, switch, back to the service name: one write after the other
        chain.before_write()
        _npm_writes(database)
        chain.after_write()
    assert _proxy_marker.read(str(marker), str(database))['current'] is False
    found = chain.record(moved_back=True)
    assert found['current'] is True
    assert found['key'] == 'k1'
    assert found['reason'].startswith("the switch's own writes were the only changes")
    assert _proxy_marker.read(str(marker), str(database)) == {
        'key': 'k1',
        'current': True,
        'reason': "NPM's database is unchanged since the declaration",
    }


@pytest.mark.parametrize(
    'foreign, moved_back, reason',
    [
        ('between', True, "NPM's database changed during the switch, and not by the switch"),
        ('after', True, "NPM's database changed during the switch, and not by the switch"),
        ('none', False, 'a proxy host was left forwarding elsewhere than before the switch'),
    ],
)
def test_any_other_change_during_the_switch_records_nothing(files, foreign, moved_back, reason):
    marker, database = files
    _proxy_marker.write(str(marker), 'k1', str(database))
    before = marker.read_bytes()
    chain = _proxy_marker.Chain(str(marker), str(database))
    chain.before_write()
    _npm_writes(database)
    chain.after_write()
    if foreign == 'between':
        _npm_writes(database, b'web UI')  # someone else's write between two of the switch's
    chain.before_write()
    _npm_writes(database)
    chain.after_write()
    if foreign == 'after':
        _npm_writes(database, b'web UI')  # after the switch's last write
    assert chain.record(moved_back=moved_back) == {'current': False, 'key': 'k1', 'reason': reason}
    assert marker.read_bytes() == before
    assert _proxy_marker.read(str(marker), str(database))['current'] is False


def test_a_switch_that_began_without_a_current_record_or_whose_write_failed_records_nothing(files):
    marker, database = files
    _proxy_marker.write(str(marker), 'k1', str(database))
    _npm_writes(database, b'web UI')  # before the switch
    chain = _proxy_marker.Chain(str(marker), str(database))
    chain.before_write()
    chain.after_write()
    assert chain.record(moved_back=True) == {
        'current': False,
        'key': 'k1',
        'reason': "NPM's database changed since the declaration",
    }
    _proxy_marker.write(str(marker), 'k1', str(database))
    chain = _proxy_marker.Chain(str(marker), str(database))
    chain.before_write()
    chain.broken('a write to NPM failed')
    chain.after_write()
    assert chain.record(moved_back=True)['current'] is False
    # No record at all: nothing to keep.
    marker.unlink()
    chain = _proxy_marker.Chain(str(marker), str(database))
    assert chain.record(moved_back=True) == {'current': False, 'key': '', 'reason': 'no declaration recorded'}
    assert not marker.exists()
