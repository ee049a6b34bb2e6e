# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the release ledger rules and files (_ledger.py)."""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import stat

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _ledger

NOW = datetime.datetime(2026, 3, 1, 10, 15, 0, tzinfo=datetime.UTC)


def rid(n, version):
    """Release id number n (minutes after a fixed day) of version."""
    return f'202601{1 + n // 1440:02d}T{(n // 60) % 24:02d}{n % 60:02d}00Z-{version}'


def entry(n, version, result='success', **extra):
    e = {
        'id': rid(n, version),
        'version': version,
        'result': result,
        'images': {
            svc: {
                'digest': f'sha256:{svc}-{version}-{n}',
                'reference': f'ghcr.io/rayhu/avatar-mgmt/{svc}@sha256:{svc}-{version}-{n}',
            }
            for svc in ('api', 'frontend')
        },
        'action': extra.pop('action', 'deploy'),
        'backup': extra.pop('backup', ''),
    }
    e.update(extra)
    return e


def empty():
    return {'current': '', 'releases': []}


def recorded(entries, keep=5, ledger=None):
    """Record entries one after the other through the rules (no files)."""
    ledger = ledger or empty()
    for e in entries:
        ledger, _kept, _warnings = _ledger.apply_record(ledger, e, keep)
    return ledger


def versions(entries):
    return [e['version'] for e in entries]


# ---------------------------------------------------------------------------
# current
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'result, expected',
    [
        ('success', 'new'),
        ('rolled_back', 'previous'),
        ('failed', 'previous'),
        ('failed_rollback', 'previous'),
    ],
)
def test_current_after_record(result, expected):
    ledger = recorded([entry(1, 'v1.0.0')])
    extra = {'rolled_back_to': rid(1, 'v1.0.0')} if result == 'rolled_back' else {}
    new = entry(2, 'v1.1.0', result, **extra)
    after = recorded([new], ledger=ledger)
    assert after['current'] == (new['id'] if expected == 'new' else rid(1, 'v1.0.0'))
    assert after['releases'][-1]['id'] == new['id']


def test_failed_first_release_leaves_no_current():
    after = recorded([entry(1, 'v1.0.0', 'failed')])
    assert after['current'] == ''
    assert _ledger.current_entry(after) == {}


# ---------------------------------------------------------------------------
# default rollback target
# ---------------------------------------------------------------------------


def test_successive_rollbacks_walk_back_in_time():
    ledger = recorded([entry(1, 'v1.0.0'), entry(2, 'v1.1.0'), entry(3, 'v1.2.0')])
    target, reason = _ledger.rollback_target(ledger)
    assert (target['version'], reason) == ('v1.1.0', '')

    ledger = recorded([entry(4, 'v1.1.0', action='rollback', source=target['id'])], ledger=ledger)
    target, reason = _ledger.rollback_target(ledger)
    assert target['id'] == rid(1, 'v1.0.0'), 'the second rollback goes further back, not forward to v1.2.0'

    ledger = recorded([entry(5, 'v1.0.0', action='rollback', source=target['id'])], ledger=ledger)
    target, reason = _ledger.rollback_target(ledger)
    assert target == {}
    assert reason.startswith(
        'No earlier successful release of another version in the ledger. Releases, oldest first: '
        f'v1.0.0 (success, {rid(1, "v1.0.0")}), v1.1.0 (success, {rid(2, "v1.1.0")}), '
    )
    assert reason.endswith(f'v1.0.0 (success, {rid(5, "v1.0.0")}).')


def test_rollback_of_a_rollback_source_chain():
    # The rollback entry of v1.1.0 itself names another rollback entry as its source.
    ledger = recorded(
        [
            entry(1, 'v1.0.0'),
            entry(2, 'v1.1.0'),
            entry(3, 'v1.2.0'),
            entry(4, 'v1.1.0', action='rollback', source=rid(2, 'v1.1.0')),
            entry(5, 'v1.2.0'),
            entry(6, 'v1.1.0', action='rollback', source=rid(4, 'v1.1.0')),
        ]
    )
    assert _ledger.rollback_target(ledger)[0]['id'] == rid(1, 'v1.0.0')


def test_default_target_skips_failed_and_same_version():
    ledger = recorded([entry(1, 'v1.0.0'), entry(2, 'v1.1.0', 'failed'), entry(3, 'v1.2.0'), entry(4, 'v1.2.0')])
    assert _ledger.rollback_target(ledger)[0]['id'] == rid(1, 'v1.0.0')


def test_default_target_after_automatic_rollback():
    ledger = recorded(
        [entry(1, 'v1.1.0'), entry(2, 'v1.2.0'), entry(3, 'v1.2.1', 'rolled_back', rolled_back_to=rid(2, 'v1.2.0'))]
    )
    assert ledger['current'] == rid(2, 'v1.2.0')
    assert _ledger.rollback_target(ledger)[0]['id'] == rid(1, 'v1.1.0')


def test_no_ledger_has_no_target():
    target, reason = _ledger.rollback_target(empty())
    assert target == {}
    assert reason.endswith('Releases, oldest first: none.')


def test_current_missing_from_an_old_trimmed_ledger():
    # The Jinja window could push the running release out of index.json.
    ledger = {'current': rid(1, 'v1.0.0'), 'releases': [entry(2, 'v1.1.0', 'failed')]}
    assert _ledger.current_entry(ledger) == {}
    assert _ledger.rollback_target(ledger)[0] == {}


# ---------------------------------------------------------------------------
# rollback_to
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'ask, expected',
    [
        ('v1.1.0', 3),
        ('1.1.0', 3),
        (' v1.1.0 ', 3),
        (rid(2, 'v1.1.0'), 2),
        ('v1.0.0', 1),
    ],
)
def test_rollback_to_successful(ask, expected):
    ledger = {
        'current': rid(5, 'v1.2.0'),
        'releases': [
            entry(1, 'v1.0.0'),
            entry(2, 'v1.1.0'),
            entry(3, 'v1.1.0'),
            entry(4, 'v1.1.0', 'failed'),
            entry(5, 'v1.2.0'),
        ],
    }
    target, reason = _ledger.rollback_target(ledger, ask)
    assert target['id'] == rid(expected, target['version'])
    assert reason == ''


def test_rollback_to_a_version_that_never_succeeded():
    ledger = recorded(
        [
            entry(1, 'v1.0.0'),
            entry(2, 'v1.2.1', 'rolled_back', rolled_back_to=rid(1, 'v1.0.0')),
            entry(3, 'v1.2.1', 'failed'),
        ]
    )
    target, reason = _ledger.rollback_target(ledger, 'v1.2.1')
    assert target['id'] == rid(3, 'v1.2.1')
    assert 'is recorded as failed, not success' in reason


def test_rollback_to_unknown():
    ledger = recorded([entry(1, 'v1.0.0')])
    target, reason = _ledger.rollback_target(ledger, 'v9.9.9')
    assert target == {}
    assert reason == f'No release v9.9.9 in the ledger. Releases, oldest first: v1.0.0 (success, {rid(1, "v1.0.0")}).'


# ---------------------------------------------------------------------------
# backup_before
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'ref, expected',
    [
        ('v1.1.0', '20260102T000000Z'),
        ('1.1.0', '20260102T000000Z'),
        (rid(2, 'v1.1.0'), '20260101T000000Z'),
        (rid(3, 'v1.1.0'), ''),
        ('v1.0.0', ''),
        ('', ''),
    ],
)
def test_backup_before(ref, expected):
    ledger = {
        'current': rid(5, 'v1.1.0'),
        'releases': [
            entry(1, 'v1.0.0'),
            entry(2, 'v1.1.0', backup='20260101T000000Z'),
            entry(3, 'v1.1.0', 'failed'),
            entry(4, 'v1.1.0', backup='20260102T000000Z'),
            entry(5, 'v1.1.0'),
        ],
    }
    assert _ledger.backup_before(ledger, ref) == expected


# ---------------------------------------------------------------------------
# window
# ---------------------------------------------------------------------------


def test_fifty_failures_keep_the_running_release():
    entries = [entry(1, 'v1.0.0'), entry(2, 'v1.1.0')]
    entries += [entry(10 + n, 'v1.2.0', 'failed') for n in range(50)]
    ledger = recorded(entries, keep=5)
    assert ledger['current'] == rid(2, 'v1.1.0')
    ids = [e['id'] for e in ledger['releases']]
    assert rid(2, 'v1.1.0') in ids
    assert rid(1, 'v1.0.0') in ids
    assert len(ids) == 2 + 5, 'current, the previous version and the 5 most recent failures'
    assert len(recorded(entries, keep=1)['releases']) == 2 + 1
    assert ids[-5:] == [rid(10 + n, 'v1.2.0') for n in range(45, 50)]
    assert _ledger.rollback_target(ledger)[0]['id'] == rid(1, 'v1.0.0')


def test_fifty_rolled_back_attempts_keep_every_version():
    entries = [entry(n, f'v1.{n}.0') for n in range(1, 6)]
    entries += [entry(10 + n, 'v2.0.0', 'rolled_back', rolled_back_to=rid(5, 'v1.5.0')) for n in range(50)]
    ledger = recorded(entries, keep=3)
    assert ledger['current'] == rid(5, 'v1.5.0')
    kept = _ledger.window(ledger, 3)
    assert _ledger.kept_versions(kept) == ['v1.5.0', 'v1.4.0', 'v1.3.0']


def test_redeploying_one_version_keeps_older_versions():
    entries = [entry(1, 'v1.0.0'), entry(2, 'v1.1.0')] + [entry(10 + n, 'v1.2.0') for n in range(20)]
    ledger = recorded(entries, keep=2)
    assert _ledger.kept_versions(ledger['releases']) == ['v1.2.0', 'v1.1.0']
    assert rid(2, 'v1.1.0') in [e['id'] for e in ledger['releases']]
    assert _ledger.rollback_target(ledger)[0]['id'] == rid(2, 'v1.1.0')


def test_keep_counts_versions_not_releases():
    entries = [entry(n, f'v1.{n}.0') for n in range(1, 8)] + [entry(20, 'v1.7.0'), entry(21, 'v1.7.0')]
    ledger = recorded(entries, keep=3)
    assert _ledger.kept_versions(ledger['releases']) == ['v1.7.0', 'v1.6.0', 'v1.5.0']


def test_window_keeps_sources_and_default_target_with_keep_1():
    # keep=1 still keeps the rollback's source (the anchor) and the release before it (the default target).
    ledger = recorded([entry(1, 'v1.0.0'), entry(2, 'v1.1.0'), entry(3, 'v1.2.0')])
    ledger = recorded([entry(4, 'v1.1.0', action='rollback', source=rid(2, 'v1.1.0'))], keep=1, ledger=ledger)
    ids = [e['id'] for e in ledger['releases']]
    assert rid(4, 'v1.1.0') in ids  # current
    assert rid(2, 'v1.1.0') in ids  # its source (the anchor)
    assert rid(1, 'v1.0.0') in ids  # the default target
    assert _ledger.rollback_target(ledger)[0]['id'] == rid(1, 'v1.0.0')


def test_window_keeps_the_release_the_current_one_replaced_even_of_the_same_version():
    # An env-only change records v1.2.0 again: the v1.2.0 it replaced (the old env files) stays, so
    # rollback.yml -e rollback_to=<its id> can go back to it.
    ledger = recorded([entry(1, 'v1.1.0'), entry(2, 'v1.2.0')])
    ledger = recorded([entry(3, 'v1.2.0', previous=rid(2, 'v1.2.0'))], ledger=ledger)
    ids = [e['id'] for e in ledger['releases']]
    assert rid(2, 'v1.2.0') in ids
    assert rid(3, 'v1.2.0') in ids
    # Without the link (an older entry), the newest of a version alone is kept, as before.
    bare = recorded([entry(1, 'v1.1.0'), entry(2, 'v1.2.0'), entry(3, 'v1.2.0')])
    assert rid(2, 'v1.2.0') not in [e['id'] for e in bare['releases']]


def test_window_is_stable_for_the_rules():
    """Whatever the window drops never changes current, the default target or the kept versions."""
    entries = []
    for n in range(60):
        version = f'v1.{n % 7}.0'
        result = ('success', 'failed', 'success', 'rolled_back')[n % 4]
        extra = {}
        if result == 'rolled_back':
            extra['rolled_back_to'] = entries[-2]['id']
        entries.append(entry(n, version, result, **extra))
    full = empty()
    trimmed = empty()
    for e in entries:
        full = {'current': _ledger.new_current(full, e), 'releases': full['releases'] + [e]}
        trimmed = recorded([e], keep=2, ledger=trimmed)
        assert trimmed['current'] == full['current']
        assert _ledger.rollback_target(trimmed)[0] == _ledger.rollback_target(full)[0]
        assert len(trimmed['releases']) <= 1 + 2 + 1 + 2 + 2


def test_kept_references_every_image_of_every_kept_release():
    ledger = recorded([entry(1, 'v1.0.0'), entry(2, 'v1.1.0', 'failed')])
    refs = _ledger.kept_references(_ledger.window(ledger, 5))
    assert refs == [
        'ghcr.io/rayhu/avatar-mgmt/api@sha256:api-v1.1.0-2',
        'ghcr.io/rayhu/avatar-mgmt/frontend@sha256:frontend-v1.1.0-2',
        'ghcr.io/rayhu/avatar-mgmt/api@sha256:api-v1.0.0-1',
        'ghcr.io/rayhu/avatar-mgmt/frontend@sha256:frontend-v1.0.0-1',
    ]


@pytest.mark.parametrize('keep', [0, -1, True, '5', None])
def test_keep_must_be_a_positive_int(keep):
    with pytest.raises(ValueError, match='keep must be an integer of at least 1'):
        _ledger.window(empty(), keep)


def test_release_dirs_to_remove_only_release_ids():
    names = [rid(1, 'v1.0.0'), rid(2, 'v1.1.0'), 'current', 'index.json', 'notes', 'lost+found', '2026-v1']
    assert _ledger.release_dirs_to_remove(names, [rid(2, 'v1.1.0')]) == [rid(1, 'v1.0.0')]


# ---------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'change, message',
    [
        ({'id': '../../etc'}, 'release.id must look like'),
        ({'id': '20260101T000000Z-v1/../x'}, 'release.id must look like'),
        ({'version': ''}, 'release.version must be a non-empty string'),
        ({'result': 'ok'}, 'release.result must be one of success, failed, rolled_back, failed_rollback'),
        ({'result': 'rolled_back'}, 'release.rolled_back_to must name the release'),
        ({'images': ['api']}, 'release.images must be a dict'),
        ({'source': 'v1.0.0'}, 'release.source must be a release id'),
    ],
)
def test_build_entry_refuses(change, message):
    release = entry(1, 'v1.0.0')
    release.update(change)
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        _ledger.build_entry(release)


def test_build_entry_adds_checksums_and_keeps_fields():
    release = entry(1, 'v1.0.0', custom='kept')
    built = _ledger.build_entry(release, 'docker-compose.prod.yml', 'services: {}\n', {'.env': 'abc'})
    assert built['custom'] == 'kept'
    assert built['compose_file'] == 'docker-compose.prod.yml'
    assert built['compose_sha256'] == hashlib.sha256(b'services: {}\n').hexdigest()
    assert built['env_checksums'] == {'.env': 'abc'}
    assert 'compose_file' not in release, 'the caller dict is not changed'


def test_duplicate_id_is_refused():
    ledger = recorded([entry(1, 'v1.0.0')])
    with pytest.raises(ValueError, match='already in the ledger'):
        _ledger.apply_record(ledger, entry(1, 'v1.0.0'), 5)


def test_unknown_source_is_recorded_with_a_warning():
    _ledger_after, _kept, warnings = _ledger.apply_record(empty(), entry(2, 'v1.0.0', source=rid(1, 'v1.0.0')), 5)
    assert warnings
    assert 'is not in the ledger' in warnings[0]


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------


def write_index(path, ledger):
    path.mkdir(parents=True, exist_ok=True)
    (path / 'index.json').write_text(json.dumps(ledger))


def test_read_missing_directory(tmp_path):
    result = _ledger.read(str(tmp_path / 'releases'))
    assert result['ledger'] == empty()
    assert result['problem'] == ''
    assert result['changed'] is False
    assert not (tmp_path / 'releases').exists()


def test_read_an_existing_host_ledger(tmp_path):
    """The format the Jinja tasks wrote reads as it is."""
    releases = tmp_path / 'releases'
    old = {
        'current': rid(2, 'v1.2.0'),
        'releases': [
            {
                'id': rid(1, 'v1.1.0'),
                'version': 'v1.1.0',
                'requested': 'v1.1.0',
                'prerelease': False,
                'images': {'api': {'digest': 'sha256:a', 'reference': 'r/api@sha256:a', 'tag': 'r/api:v1.1.0'}},
                'environment': 'production',
                'host': 'prod1',
                'action': 'deploy',
                'operator': 'alice',
                'started': '2026-01-01T00:00:00Z',
                'finished': '2026-01-01T00:01:00Z',
                'duration_s': '60.0',
                'result': 'success',
                'stage': '',
                'recreated': ['api'],
                'previous': '',
                'rolled_back_to': '',
                'message': '',
                'backup': '20260101T000000Z',
            },
            {'id': rid(2, 'v1.2.0'), 'version': 'v1.2.0', 'result': 'success', 'images': {}, 'backup': ''},
        ],
    }
    write_index(releases, old)
    result = _ledger.read(str(releases), rollback_to='', backup_ref='v1.1.0')
    assert result['current']['version'] == 'v1.2.0'
    assert result['rollback_target']['id'] == rid(1, 'v1.1.0')
    assert result['backup_id'] == '20260101T000000Z'
    assert result['kept_references'] == ['r/api@sha256:a']
    assert result['problem'] == ''


def test_record_writes_the_ledger(tmp_path):
    releases = tmp_path / 'releases'
    env = tmp_path / '.env.prod.api'
    env.write_text('SECRET=1\n')
    (releases / 'notes').mkdir(parents=True)
    (releases / rid(0, 'v0.9.0')).mkdir()  # a folder no ledger names: pruned
    result = _ledger.record(
        str(releases),
        entry(1, 'v1.0.0'),
        keep=5,
        compose_file='docker-compose.prod.yml',
        compose_content='services: {}\n',
        env_files=[str(env)],
    )
    assert result['changed'] is True
    assert result['removed'] == [rid(0, 'v0.9.0')]
    assert (releases / 'notes').is_dir()
    index = json.loads((releases / 'index.json').read_text())
    assert index == result['ledger']
    assert index['current'] == rid(1, 'v1.0.0')
    assert index['releases'][0]['env_checksums'] == {'.env.prod.api': hashlib.sha256(b'SECRET=1\n').hexdigest()}
    assert 'SECRET' not in (releases / 'index.json').read_text()
    assert (releases / 'current').read_text() == rid(1, 'v1.0.0') + '\n'
    compose = releases / rid(1, 'v1.0.0') / 'docker-compose.prod.yml'
    assert compose.read_text() == 'services: {}\n'
    assert stat.S_IMODE(compose.stat().st_mode) == 0o640
    assert stat.S_IMODE((releases / 'index.json').stat().st_mode) == 0o640
    assert not (releases / 'index.json.last-good').exists(), 'no earlier index to keep'
    assert not [n for n in os.listdir(releases) if n.endswith('.tmp')]

    first = (releases / 'index.json').read_bytes()
    result = _ledger.record(str(releases), entry(2, 'v1.1.0'), keep=5)
    assert (releases / 'index.json.last-good').read_bytes() == first
    assert result['rollback_target']['id'] == rid(1, 'v1.0.0')
    assert result['kept'] == [rid(1, 'v1.0.0'), rid(2, 'v1.1.0')]


def test_record_prunes_release_folders_out_of_the_window(tmp_path):
    releases = tmp_path / 'releases'
    for n in range(1, 6):
        _ledger.record(str(releases), entry(n, f'v1.{n}.0'), keep=2, compose_file='c.yml', compose_content='x\n')
    present = sorted(n for n in os.listdir(releases) if _ledger.is_release_id(n))
    ledger = json.loads((releases / 'index.json').read_text())
    assert present == [e['id'] for e in ledger['releases']]
    assert _ledger.kept_versions(ledger['releases']) == ['v1.5.0', 'v1.4.0']


def test_record_check_mode_writes_nothing(tmp_path):
    releases = tmp_path / 'releases'
    _ledger.record(str(releases), entry(1, 'v1.0.0'), keep=1, compose_file='c.yml', compose_content='x\n')
    _ledger.record(str(releases), entry(2, 'v1.1.0'), keep=1, compose_file='c.yml', compose_content='x\n')
    (releases / rid(0, 'v0.1.0')).mkdir()
    before = {n: (releases / n).stat().st_mtime_ns for n in os.listdir(releases)}
    text = (releases / 'index.json').read_text()
    result = _ledger.record(
        str(releases),
        entry(3, 'v1.2.0'),
        keep=1,
        compose_file='c.yml',
        compose_content='y\n',
        env_files=[str(tmp_path / 'missing.env')],
        check_mode=True,
    )
    assert result['changed'] is True
    assert result['ledger']['current'] == rid(3, 'v1.2.0')
    assert result['removed'] == [rid(0, 'v0.1.0'), rid(1, 'v1.0.0')], 'keep=1: v1.1.0 stays as the rollback target'
    assert result['warnings']
    assert 'missing.env' in result['warnings'][0]
    assert (releases / 'index.json').read_text() == text
    assert {n: (releases / n).stat().st_mtime_ns for n in os.listdir(releases)} == before
    assert result['before'] == text
    assert json.loads(result['after']) == result['ledger']


def test_record_refuses_a_missing_env_file(tmp_path):
    with pytest.raises(_ledger.LedgerError, match='cannot be read'):
        _ledger.record(str(tmp_path), entry(1, 'v1.0.0'), env_files=[str(tmp_path / 'nope')])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    'compose_file, compose_content, message',
    [
        ('../x.yml', 'x', 'compose_file must be a file name'),
        ('a/b.yml', 'x', 'compose_file must be a file name'),
        ('c.yml', '', 'go together'),
        ('', 'x', 'go together'),
    ],
)
def test_record_refuses_bad_compose(tmp_path, compose_file, compose_content, message):
    with pytest.raises(ValueError, match=message):
        _ledger.record(str(tmp_path), entry(1, 'v1.0.0'), compose_file=compose_file, compose_content=compose_content)


def test_record_owner_unknown(tmp_path):
    with pytest.raises(_ledger.LedgerError, match='owner no-such-user-x does not exist'):
        _ledger.record(str(tmp_path), entry(1, 'v1.0.0'), owner='no-such-user-x')


def test_record_owner_numeric(tmp_path):
    uid, gid = os.getuid(), os.getgid()
    _ledger.record(str(tmp_path), entry(1, 'v1.0.0'), owner=str(uid), group=str(gid))
    assert (tmp_path / 'index.json').stat().st_uid == uid


# ---------------------------------------------------------------------------
# corruption
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'content, what',
    [
        (b'', 'the file is empty'),
        (b'{"current": "x", "releases": [', 'not JSON: Expecting value at line 1 column 31'),
        (b'{"current": "x",\n "releases": [}]', 'not JSON: Expecting value at line 2 column 15'),
        (b'\xff\xfe', 'not UTF-8 text'),
        (b'[]', 'wrong shape: the top level is a JSON list, not an object'),
        (b'{"releases": {}}', 'wrong shape: "releases" is a dict, not a list'),
        (b'{"current": 3, "releases": []}', 'wrong shape: "current" is a int, not a string'),
        (b'{"releases": ["x"]}', 'wrong shape: release #1 is a str, not an object'),
        (b'{"releases": [{"version": "v1"}]}', 'wrong shape: release #1 has no "id"'),
    ],
)
def test_read_corrupt_without_last_good(tmp_path, content, what):
    releases = tmp_path / 'releases'
    releases.mkdir()
    (releases / 'index.json').write_bytes(content)
    result = _ledger.read(str(releases))
    assert result['ledger'] == empty()
    assert result['problem'].startswith(f'releases/index.json is corrupt ({what}')
    assert result['problem'].endswith('no last good copy: starting an empty ledger')
    assert (releases / 'index.json').read_bytes() == content, 'read moves nothing'
    assert os.listdir(releases) == ['index.json']


def test_read_corrupt_uses_last_good(tmp_path):
    releases = tmp_path / 'releases'
    _ledger.record(str(releases), entry(1, 'v1.0.0'))
    _ledger.record(str(releases), entry(2, 'v1.1.0'))
    (releases / 'index.json').write_text('{"current": ')
    result = _ledger.read(str(releases))
    assert result['ledger']['current'] == rid(1, 'v1.0.0')
    assert 'a record would keep it aside as index.json.corrupt-' in result['problem']
    assert result['problem'].endswith('using the last good copy index.json.last-good (1 releases)')
    assert result['changed'] is False


def test_read_corrupt_and_last_good_corrupt(tmp_path):
    releases = tmp_path / 'releases'
    releases.mkdir()
    (releases / 'index.json').write_text('nope')
    (releases / 'index.json.last-good').write_text('[]')
    result = _ledger.read(str(releases))
    assert result['problem'].endswith(
        'the last good copy index.json.last-good is also corrupt (wrong shape: the top '
        'level is a JSON list, not an object): starting an empty ledger'
    )


def test_record_moves_corrupt_aside_and_continues(tmp_path):
    releases = tmp_path / 'releases'
    _ledger.record(str(releases), entry(1, 'v1.0.0'), compose_file='c.yml', compose_content='a\n')
    _ledger.record(str(releases), entry(2, 'v1.1.0'), compose_file='c.yml', compose_content='b\n')
    (releases / 'index.json').write_text('garbage')
    result = _ledger.record(str(releases), entry(3, 'v1.2.0'), now=NOW)
    assert result['problem'] == (
        'releases/index.json is corrupt (not JSON: Expecting value at line 1 column 1); '
        'kept aside as index.json.corrupt-20260301T101500Z; using the last good copy '
        'index.json.last-good (1 releases)'
    )
    assert (releases / 'index.json.corrupt-20260301T101500Z').read_text() == 'garbage'
    ledger = json.loads((releases / 'index.json').read_text())
    assert [e['id'] for e in ledger['releases']] == [rid(1, 'v1.0.0'), rid(3, 'v1.2.0')]
    assert _ledger.read(str(releases))['problem'] == ''
    # The last good copy is still the one recovered from, not the corrupt file.
    assert json.loads((releases / 'index.json.last-good').read_text())['current'] == rid(1, 'v1.0.0')


def test_record_after_corruption_without_last_good_prunes_nothing(tmp_path):
    releases = tmp_path / 'releases'
    (releases / rid(1, 'v1.0.0')).mkdir(parents=True)
    (releases / 'index.json').write_text('{')
    result = _ledger.record(str(releases), entry(2, 'v1.1.0'), now=NOW)
    assert result['removed'] == []
    assert (releases / rid(1, 'v1.0.0')).is_dir()
    assert any('not pruned' in w for w in result['warnings'])
    assert result['ledger']['current'] == rid(2, 'v1.1.0')


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    target = tmp_path / 'f'
    target.write_text('old')
    _ledger.atomic_write(str(target), 'new')
    assert target.read_text() == 'new'
    assert os.listdir(tmp_path) == ['f']


def _fail(code):
    def fail(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize('target', ['write', 'fsync', 'replace'])
def test_atomic_write_failure_keeps_the_old_bytes_and_no_temp_file(tmp_path, monkeypatch, target):
    target_file = tmp_path / 'f'
    target_file.write_bytes(b'old\n')
    monkeypatch.setattr(os, target, _fail(errno.ENOSPC))
    with pytest.raises(OSError, match='No space left'):
        _ledger.atomic_write(str(target_file), 'new\n')
    monkeypatch.undo()
    assert target_file.read_bytes() == b'old\n'
    assert os.listdir(tmp_path) == ['f']


def test_record_that_cannot_write_leaves_the_ledger_as_it_was(tmp_path, monkeypatch):
    releases = tmp_path / 'releases'
    _ledger.record(str(releases), entry(1, 'v1.0.0'), compose_file='c.yml', compose_content='a\n')
    before = {n: (releases / n).read_bytes() for n in ('index.json', 'current')}
    monkeypatch.setattr(os, 'fsync', _fail(errno.ENOSPC))
    with pytest.raises(_ledger.LedgerError, match='cannot write the release ledger'):
        _ledger.record(str(releases), entry(2, 'v1.1.0'), compose_file='c.yml', compose_content='b\n')
    monkeypatch.undo()
    assert {n: (releases / n).read_bytes() for n in ('index.json', 'current')} == before
    assert not [n for n in os.listdir(releases) if n.startswith('.')], 'no temp file left'
    assert _ledger.read(str(releases))['current']['id'] == rid(1, 'v1.0.0')


def test_fifty_recorded_failures_keep_the_running_release_on_disk(tmp_path):
    releases = tmp_path / 'releases'
    _ledger.record(str(releases), entry(1, 'v1.0.0'), keep=1, compose_file='c.yml', compose_content='a\n')
    _ledger.record(str(releases), entry(2, 'v1.1.0'), keep=1, compose_file='c.yml', compose_content='b\n')
    for n in range(50):
        result = 'failed' if n % 2 else 'failed_rollback'
        _ledger.record(
            str(releases), entry(10 + n, 'v1.2.0', result), keep=1, compose_file='c.yml', compose_content='x\n'
        )
    assert (releases / 'current').read_text() == rid(2, 'v1.1.0') + '\n'
    index = json.loads((releases / 'index.json').read_text())
    assert index['current'] == rid(2, 'v1.1.0')
    assert (releases / rid(2, 'v1.1.0') / 'c.yml').read_bytes() == b'b\n'
    assert (releases / rid(1, 'v1.0.0') / 'c.yml').read_bytes() == b'a\n', 'the rollback target stays too'
    assert _ledger.read(str(releases), keep=1)['rollback_target']['id'] == rid(1, 'v1.0.0')
    folders = sorted(n for n in os.listdir(releases) if _ledger.is_release_id(n))
    assert folders == [e['id'] for e in index['releases']]


@pytest.mark.parametrize('broken', ['index.json', 'both'])
def test_an_unreadable_index_never_blocks_a_read(tmp_path, broken):
    releases = tmp_path / 'releases'
    _ledger.record(str(releases), entry(1, 'v1.0.0'))
    _ledger.record(str(releases), entry(2, 'v1.1.0'))
    for name in ('index.json', 'index.json.last-good') if broken == 'both' else ('index.json',):
        (releases / name).unlink()
        (releases / name).mkdir()  # reading it fails with EISDIR, as root too
    listing = sorted(os.listdir(releases))
    result = _ledger.read(str(releases))
    assert 'index.json is corrupt (cannot be read' in result['problem']
    if broken == 'both':
        assert result['ledger'] == empty()
        assert 'the last good copy index.json.last-good cannot be read' in result['problem']
    else:
        assert result['ledger']['current'] == rid(1, 'v1.0.0')
    assert sorted(os.listdir(releases)) == listing, 'read moves nothing'


def test_record_keeps_the_env_files_private_beside_the_compose_file(tmp_path):
    releases = tmp_path / 'releases'
    api = tmp_path / '.env.prod.api'
    directus = tmp_path / '.env.prod.directus'
    api.write_bytes(b'JWT_SECRET="Kx$$Abc123#tail"\n')
    directus.write_bytes(b'KEY="k"\n')
    os.chmod(api, 0o644)  # the kept copy is 0600 whatever the source's mode
    result = _ledger.record(
        str(releases),
        entry(1, 'v1.0.0'),
        compose_file='docker-compose.prod.yml',
        compose_content='services: {}\n',
        env_files=[str(api), str(directus)],
    )
    kept = releases / rid(1, 'v1.0.0')
    assert sorted(os.listdir(kept)) == ['.env.prod.api', '.env.prod.directus', 'docker-compose.prod.yml']
    for name, source in (('.env.prod.api', api), ('.env.prod.directus', directus)):
        assert (kept / name).read_bytes() == source.read_bytes()
        assert stat.S_IMODE((kept / name).stat().st_mode) == 0o600
        assert result['entry']['env_checksums'][name] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert b'Kx$$' not in (releases / 'index.json').read_bytes()
    assert 'Kx$$' not in json.dumps(result)

    # The next release keeps its own copies; the first release's stay as they were.
    api.write_bytes(b'JWT_SECRET="new"\n')
    _ledger.record(
        str(releases),
        entry(2, 'v1.1.0'),
        compose_file='docker-compose.prod.yml',
        compose_content='services: {}\n',
        env_files=[str(api), str(directus)],
    )
    assert (kept / '.env.prod.api').read_bytes() == b'JWT_SECRET="Kx$$Abc123#tail"\n'
    assert (releases / rid(2, 'v1.1.0') / '.env.prod.api').read_bytes() == b'JWT_SECRET="new"\n'


def test_record_keeps_env_files_without_a_compose_file(tmp_path):
    env = tmp_path / '.env'
    env.write_bytes(b'A="1"\n')
    _ledger.record(str(tmp_path / 'releases'), entry(1, 'v1.0.0'), env_files=[str(env)])
    assert (tmp_path / 'releases' / rid(1, 'v1.0.0') / '.env').read_bytes() == b'A="1"\n'


def test_record_check_mode_keeps_no_env_file(tmp_path):
    env = tmp_path / '.env'
    env.write_bytes(b'A="1"\n')
    result = _ledger.record(
        str(tmp_path / 'releases'),
        entry(1, 'v1.0.0'),
        compose_file='c.yml',
        compose_content='x\n',
        env_files=[str(env)],
        check_mode=True,
    )
    assert result['entry']['env_checksums'] == {'.env': hashlib.sha256(b'A="1"\n').hexdigest()}
    assert not (tmp_path / 'releases').exists()


def test_record_refuses_an_env_file_named_like_the_compose_file(tmp_path):
    env = tmp_path / 'c.yml'
    env.write_bytes(b'A="1"\n')
    with pytest.raises(ValueError, match='name of the compose file'):
        _ledger.record(
            str(tmp_path / 'releases'),
            entry(1, 'v1.0.0'),
            compose_file='c.yml',
            compose_content='x\n',
            env_files=[str(env)],
        )
    assert not (tmp_path / 'releases').exists()


def test_record_refuses_two_env_files_of_one_name(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for d in ('a', 'b'):
        (tmp_path / d / '.env').write_bytes(b'A="1"\n')
    with pytest.raises(_ledger.LedgerError, match=r'two env files are named \.env'):
        _ledger.record(
            str(tmp_path / 'releases'),
            entry(1, 'v1.0.0'),
            env_files=[str(tmp_path / 'a' / '.env'), str(tmp_path / 'b' / '.env')],
        )


@pytest.mark.parametrize(
    'listed, kept, expected',
    [
        # Older images of a kept repository go; kept ones stay; each named once, in listing order.
        (
            ['r/api@sha256:1', 'r/api@sha256:0', 'r/api@sha256:0', 'r/api@sha256:x'],
            ['r/api@sha256:1'],
            ['r/api@sha256:0', 'r/api@sha256:x'],
        ),
        # Other repositories (another project, a prefix of a kept one) and images without digest stay.
        (['postgres@sha256:p', 'r/ap@sha256:0', 'r/api-old@sha256:0', 'r/api@<none>'], ['r/api@sha256:1'], []),
        # Every kept repository counts, whichever release keeps it.
        (
            ['r/api@sha256:0', 'r/fe@sha256:0', 'r/fe@sha256:2'],
            ['r/api@sha256:1', 'r/fe@sha256:2'],
            ['r/api@sha256:0', 'r/fe@sha256:0'],
        ),
        # No kept reference: nothing is named.
        (['r/api@sha256:0'], [], []),
        ([' r/api@sha256:0 ', ''], ['r/api@sha256:1'], ['r/api@sha256:0']),
    ],
)
def test_images_to_prune(listed, kept, expected):
    assert _ledger.images_to_prune(listed, kept) == expected
