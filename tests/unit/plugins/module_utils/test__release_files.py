# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_release_files.py on real files under tmp_path."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _envfile, _release_files

SECRET = 'Kx$Abc123#tail \'q\' "dq" two  spaces \\ end'


def env_text(**env):
    return ''.join(f'{key}={_envfile.quote(value)}\n' for key, value in sorted(env.items()))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def present(env_files=(), files=(), **kwargs):
    plans = _release_files.plan(env_files, files, **kwargs)
    written = _release_files.apply(plans)
    return plans, written


@pytest.mark.parametrize(
    'mode, expected',
    [('0600', 0o600), ('600', 0o600), ('0640', 0o640), (0o644, 0o644), (None, 0o600), ('', 0o600)],
)
def test_parse_mode(mode, expected):
    assert _release_files.parse_mode(mode, 0o600, 'x.mode') == expected


@pytest.mark.parametrize('mode', ['rw', '0999', '17777', True, -1])
def test_parse_mode_refuses(mode):
    with pytest.raises(ValueError, match=r'x\.mode'):
        _release_files.parse_mode(mode, 0o600, 'x.mode')


def test_writes_new_files_with_their_modes_byte_for_byte(tmp_path):
    env = tmp_path / '.env.api'
    compose = tmp_path / 'docker-compose.yml'
    text = env_text(JWT_SECRET=SECRET, PORT=3000)
    plans, written = present(
        [{'path': str(env), 'content': text}], [{'path': str(compose), 'content': 'services: {}\n'}]
    )
    assert written == [str(env), str(compose)]
    assert env.read_bytes() == text.encode()
    assert compose.read_text() == 'services: {}\n'
    assert mode_of(env) == 0o600
    assert mode_of(compose) == 0o640
    assert [p['keys'] for p in plans] == [['JWT_SECRET', 'PORT'], []]
    # Nothing but the two files is left in the folder (no temp file).
    assert sorted(os.listdir(tmp_path)) == ['.env.api', 'docker-compose.yml']


def test_value_with_dollar_hash_quotes_spaces_survives(tmp_path):
    """What Compose reads back: the quoted value, unescaped, is the secret byte for byte."""
    env = tmp_path / '.env'
    present([{'path': str(env), 'content': env_text(S=SECRET)}])
    line = env.read_text().splitlines()[0]
    quoted = line.split('=', 1)[1]
    assert quoted[0] == quoted[-1] == '"'
    unescaped = quoted[1:-1].replace('$$', '\0').replace('\\"', '"').replace('\\\\', '\\').replace('\0', '$')
    assert unescaped == SECRET


def test_second_run_changes_nothing(tmp_path):
    env = tmp_path / '.env'
    spec = [{'path': str(env), 'content': env_text(A='1')}]
    present(spec)
    before = os.stat(env)
    plans, written = present(spec)
    assert written == []
    assert not plans[0]['differs']
    assert not plans[0]['attrs_differ']
    after = os.stat(env)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_change_is_a_rename_not_a_rewrite(tmp_path):
    """The new file replaces the old one by rename: a reader holding the old file still reads the old bytes."""
    env = tmp_path / '.env'
    env.write_text(env_text(A='old'))
    os.chmod(env, 0o600)
    with open(env, 'rb') as reader:
        plans, written = present([{'path': str(env), 'content': env_text(A='new', B='2')}])
        assert reader.read() == env_text(A='old').encode()
    assert written == [str(env)]
    assert plans[0]['keys'] == ['A', 'B']
    assert env.read_text() == env_text(A='new', B='2')
    assert sorted(os.listdir(tmp_path)) == ['.env']


def test_wrong_mode_alone_is_fixed_in_place(tmp_path):
    env = tmp_path / '.env'
    env.write_text(env_text(A='1'))
    os.chmod(env, 0o644)
    inode = os.stat(env).st_ino
    plans, written = present([{'path': str(env), 'content': env_text(A='1')}])
    assert written == [str(env)]
    assert plans[0]['attrs_differ']
    assert not plans[0]['differs']
    assert plans[0]['keys'] == []
    assert mode_of(env) == 0o600
    assert os.stat(env).st_ino == inode


def test_owner_and_group_by_number(tmp_path):
    env = tmp_path / '.env'
    present([{'path': str(env), 'content': 'A=1\n'}], owner=str(os.getuid()), group=str(os.getgid()))
    assert (os.stat(env).st_uid, os.stat(env).st_gid) == (os.getuid(), os.getgid())


def test_plan_writes_nothing(tmp_path):
    """plan() alone (check mode, state=compared) leaves the host as it was."""
    env = tmp_path / '.env'
    env.write_text('A="1"\n')
    plans = _release_files.plan(
        [{'path': str(env), 'content': 'A="2"\n'}, {'path': str(tmp_path / 'new.env'), 'content': 'B="1"\n'}]
    )
    assert [p['differs'] for p in plans] == [True, True]
    assert [p['keys'] for p in plans] == [['A'], ['B']]
    assert env.read_text() == 'A="1"\n'
    assert sorted(os.listdir(tmp_path)) == ['.env']


def test_kept_copy_is_taken_where_it_exists(tmp_path):
    kept = tmp_path / 'releases' / 'r1'
    kept.mkdir(parents=True)
    (kept / '.env.api').write_text('A="kept"\n')
    api, directus = tmp_path / '.env.api', tmp_path / '.env.directus'
    plans, _written = present(
        [
            {'path': str(api), 'content': 'A="rendered"\n', 'source': str(kept / '.env.api')},
            {'path': str(directus), 'content': 'D="rendered"\n', 'source': str(kept / '.env.directus')},
        ]
    )
    assert api.read_text() == 'A="kept"\n'
    assert directus.read_text() == 'D="rendered"\n'
    assert [p['from_source'] for p in plans] == [True, False]


def test_missing_source_without_content_leaves_the_file(tmp_path):
    env = tmp_path / '.env'
    env.write_text('A="1"\n')
    plans, written = present([{'path': str(env), 'source': str(tmp_path / 'gone')}])
    assert written == []
    assert plans[0]['unsourced']
    assert not plans[0]['differs']
    assert env.read_text() == 'A="1"\n'


def test_report_and_diff_name_keys_never_values(tmp_path):
    env = tmp_path / '.env'
    env.write_text(env_text(KEEP='same-value-1', OLD_ONLY='old-secret-2', TOKEN='old-secret-3'))
    new = env_text(KEEP='same-value-1', NEW_ONLY=SECRET, TOKEN=SECRET)
    plans = _release_files.plan([{'path': str(env), 'content': new}])
    out = json.dumps([_release_files.report(plans, 'present'), _release_files.diff(plans)])
    for value in ('same-value-1', 'old-secret-2', 'old-secret-3', 'Kx$', 'Abc123', 'dq'):
        assert value not in out
    report = _release_files.report(plans, 'present')[str(env)]
    assert report['keys'] == ['NEW_ONLY', 'OLD_ONLY', 'TOKEN']
    assert 'content' not in report
    [diff] = _release_files.diff(plans)
    assert 'TOKEN=<old value hidden>' in diff['before']
    assert 'TOKEN=<new value hidden>' in diff['after']
    assert 'KEEP=<unchanged, hidden>' in diff['before']
    assert 'KEEP=<unchanged, hidden>' in diff['after']
    assert 'OLD_ONLY' in diff['before']
    assert 'OLD_ONLY' not in diff['after']


def test_plain_file_content_and_diff(tmp_path):
    compose = tmp_path / 'c.yml'
    compose.write_text('services: {a: 1}\n')
    plans = _release_files.plan(files=[{'path': str(compose), 'content': 'services: {}\n', 'return_content': True}])
    report = _release_files.report(plans, 'compared')[str(compose)]
    assert report == {
        'env': False,
        'exists': True,
        'differs': True,
        'attrs_differ': False,
        'changed': False,
        'keys': [],
        'from_source': False,
        'unsourced': False,
        'mode': '0640',
        'content': 'services: {a: 1}\n',
    }
    [diff] = _release_files.diff(plans)
    assert diff['before'].startswith('services: {a: 1}\n')
    assert diff['after'].startswith('services: {}\n')


def test_missing_file_reports_empty_content(tmp_path):
    plans = _release_files.plan(files=[{'path': str(tmp_path / 'c.yml'), 'content': 'x', 'return_content': True}])
    assert _release_files.report(plans, 'compared')[str(tmp_path / 'c.yml')]['content'] == ''
    assert _release_files.report(plans, 'compared')[str(tmp_path / 'c.yml')]['exists'] is False


@pytest.mark.parametrize(
    'spec, message',
    [
        ({'path': 'rel/.env', 'content': 'A=1'}, 'must be an absolute path'),
        ({'path': '/nonexistent-folder-xyz/.env', 'content': 'A=1'}, 'does not exist: create it first'),
        ({'path': '{tmp}/.env'}, 'needs content or source'),
        ({'path': '{tmp}/.env', 'source': 'rel'}, 'source must be an absolute path'),
        ({'path': '{tmp}/.env', 'content': 'A=1', 'mode': 'rw'}, r'env_files\[1\].mode'),
        ({'path': '{tmp}/link', 'content': 'A=1'}, 'symbolic link'),
        ({'path': '{tmp}/folder', 'content': 'A=1'}, 'not a regular file'),
        ({'path': '{tmp}/first.env', 'content': 'A=1'}, 'given twice'),
        ({'path': '{tmp}/c.yml', 'source': '{tmp}/gone', 'source_required': True}, 'nothing to put back'),
        ({'path': '{tmp}/c.yml', 'content': 'x', 'source': '{tmp}/gone', 'source_required': True}, 'gone of'),
        ({'path': '{tmp}/c.yml', 'content': 'x', 'source_required': True}, 'no source'),
        ({'path': '{tmp}//first.env', 'content': 'A=1'}, 'given twice'),
    ],
)
def test_bad_input_refused_before_anything_is_written(tmp_path, spec, message):
    (tmp_path / 'folder').mkdir()
    os.symlink(tmp_path / 'target', tmp_path / 'link')
    first = {'path': str(tmp_path / 'first.env'), 'content': 'A="1"\n'}
    spec = {
        key: value.replace('{tmp}', str(tmp_path)) if isinstance(value, str) else value for key, value in spec.items()
    }
    with pytest.raises(ValueError, match=message):
        present([first, spec])
    assert not (tmp_path / 'first.env').exists()
    assert not (tmp_path / 'target').exists()


@pytest.mark.parametrize(
    'kwargs, message', [({'owner': 'no-such-user-xyz'}, 'owner'), ({'group': 'no-such-group-xyz'}, 'group')]
)
def test_unknown_owner_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=f'{message} no-such'):
        present([{'path': str(tmp_path / '.env'), 'content': 'A=1\n'}], **kwargs)
    assert not (tmp_path / '.env').exists()


def test_nothing_named_refused():
    with pytest.raises(ValueError, match='both empty'):
        _release_files.plan([], [])


def test_failure_half_way_names_what_was_written(tmp_path):
    first, later = tmp_path / 'a', tmp_path / 'b'
    first.mkdir()
    later.mkdir()
    plans = _release_files.plan(
        [{'path': str(first / '.env'), 'content': 'A=1\n'}], [{'path': str(later / 'c.yml'), 'content': 'x\n'}]
    )
    later.rmdir()  # the second folder goes away between the check and the write
    with pytest.raises(_release_files.ReleaseFilesError, match=r'files written before it: .*a/\.env') as err:
        _release_files.apply(plans)
    assert err.value.written == [str(first / '.env')]
    assert (first / '.env').read_text() == 'A=1\n'


def test_identical_means_every_file_exists_with_its_bytes_and_mode(tmp_path):
    compose = tmp_path / 'c.yml'
    env = tmp_path / 'api.env'
    compose.write_text('services: {}\n')
    compose.chmod(0o640)
    env.write_text('A="1"\n')
    env.chmod(0o600)
    specs = {
        'env_files': [{'path': str(env), 'content': 'A="1"\n'}],
        'files': [{'path': str(compose), 'content': 'services: {}\n'}],
    }
    assert _release_files.identical(_release_files.plan(**specs))
    env.chmod(0o644)  # same bytes, wrong mode: a write would change it
    plans = _release_files.plan(**specs)
    assert not _release_files.identical(plans)
    assert _release_files.report(plans, 'compared')[str(env)]['attrs_differ'] is True
    env.chmod(0o600)
    env.write_text('A="2"\n')
    assert not _release_files.identical(_release_files.plan(**specs))
    env.unlink()  # missing: a write would create it
    assert not _release_files.identical(_release_files.plan(**specs))
