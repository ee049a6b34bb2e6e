# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module tests of avatar_mgmt.ops.compose_switch with a fake Docker (run_command) and no NPM needed."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _health
from ansible_collections.avatar_mgmt.ops.plugins.modules import compose_switch
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness, npm_module
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_compose import PROJECT, FakeDocker
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import FakeNPM
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import FailJson

ARGS = {
    'project_name': PROJECT,
    'project_dir': '/opt/deploy-avatar',
    'files': ['docker-compose.prod.yml'],
    'expect': 'v2',
    # Nothing listens here: a test that reached NPM would fail.
    'url': 'http://127.0.0.1:9',
    'username': 'admin@example.com',
    'password': 'Switch-Module-Pa55',
    'services': [{'name': 'api', 'domain': 'api.example.com', 'port': 3000, 'health_path': '/health'}],
}


@pytest.fixture
def docker(monkeypatch):
    module_harness.patch_exits(monkeypatch)
    fake = FakeDocker({'db': 'pg15', 'api': 'v1', 'proxy': 'npm'})
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: fake(argv))
    # The fake stands for the docker CLI, installed or not where the tests run.
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **kw: f'/usr/bin/{name}')
    return fake


def test_documentation_matches_argument_spec(monkeypatch):
    kwargs = npm_module.assert_documentation(monkeypatch, compose_switch)
    assert kwargs['supports_check_mode'] is True


def test_check_mode_reports_what_differs_and_changes_nothing(docker):
    docker.desired.update(api='v2', db='pg16')
    before = dict(docker.containers)
    result = module_harness.run_module(compose_switch, dict(ARGS, _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['differs'] == ['db', 'api']
    assert result['handover'] == ['api']
    assert result['recreate'] == ['db']
    assert docker.containers == before


def test_nothing_differs_is_no_change_without_npm(docker):
    result = module_harness.run_module(compose_switch, ARGS)
    assert result['changed'] is False
    assert result['serving']['api'][0]['version'] == 'v1'


def test_unreachable_npm_fails_before_any_container_is_touched(docker):
    docker.desired.update(api='v2')
    (old,) = docker.of('api')
    result = module_harness.run_module(compose_switch, ARGS, FailJson)
    assert result['switched'] is False
    assert result['changed'] is False
    assert 'Nothing was changed' in result['msg']
    assert ARGS['password'] not in result['msg']
    assert docker.of('api') == [old]
    assert not [c for c in docker.calls if 'up' in c and '--dry-run' not in c]


@pytest.mark.parametrize('path', ['health', 'x/y'])
def test_a_relative_path_is_refused_before_anything(docker, path):
    args = dict(ARGS, services=[dict(ARGS['services'][0], health_path=path)])
    result = module_harness.run_module(compose_switch, args, FailJson)
    assert 'must start with /' in result['msg']
    assert 'Nothing was changed' in result['msg']
    assert docker.calls == []


@pytest.mark.parametrize('option', ['settle', 'drain'])
def test_a_negative_wait_is_refused_before_anything(docker, option):
    result = module_harness.run_module(compose_switch, dict(ARGS, **{option: -1}), FailJson)
    assert 'settle and drain must be 0 or more seconds' in result['msg']
    assert 'Nothing was changed' in result['msg']
    assert docker.calls == []


def test_a_compose_file_compose_cannot_read_fails_before_anything(docker, monkeypatch):
    def run(self, argv, **kw):
        if 'config' in argv:
            return 1, '', 'yaml: line 3: mapping values are not allowed here'
        return docker(argv)

    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run)
    docker.desired.update(api='v2')
    result = module_harness.run_module(compose_switch, ARGS, FailJson)
    assert result['msg'].startswith('docker compose config failed: yaml: line 3')
    assert result['msg'].endswith('Nothing was changed.')
    assert result['changed'] is False
    assert not [c for c in docker.calls if 'up' in c and '--dry-run' not in c]


def test_a_read_in_a_thread_that_cannot_run_docker_fails_the_module_once(docker, monkeypatch):
    """run_command must not end the module from a reading thread (its fail_json would print a second result)."""
    seen = []

    def run(self, argv, **kw):
        seen.append(kw.get('handle_exceptions', True))
        if '--dry-run' in argv:
            raise FileNotFoundError(2, 'No such file or directory', argv[0])
        return docker(argv)

    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run)
    docker.desired.update(api='v2')
    result = module_harness.run_module(compose_switch, ARGS, FailJson)
    assert seen
    assert not any(seen), 'run_command was called with handle_exceptions left on'
    assert 'could not be run' in result['msg']
    assert result['changed'] is False
    assert not [c for c in docker.calls if 'up' in c and '--dry-run' not in c]


# token_cache: the module keeps NPM's session from its main thread once the switch is over.


@pytest.fixture
def npm_server():
    with FakeNPM({ARGS['username']: ARGS['password']}) as server:
        yield server


def _switch_that_logs_in(fail=False):
    """Stands for _switch.switch: a handover uses the NPM client (connect()), then ends or fails."""

    def fake(run, spec, connect, check_mode=False, gate=None, marker=None):
        if not check_mode:
            connect().list_proxy_hosts()
        if fail:
            raise compose_switch._switch.SwitchError('the new api container never became healthy', switched=False)
        return {'changed': not check_mode, 'differs': ['api'], 'handover': ['api'], 'recreate': [], 'steps': []}

    return fake


@pytest.mark.parametrize('fail', [False, True])
def test_the_session_is_kept_once_the_switch_is_over(docker, monkeypatch, npm_server, tmp_path, fail):
    cache = tmp_path / '.npm-session'
    monkeypatch.setattr(compose_switch._switch, 'switch', _switch_that_logs_in(fail))
    args = dict(ARGS, url=npm_server.url, token_cache=str(cache))
    result = module_harness.run_module(compose_switch, args, FailJson if fail else module_harness.ExitJson)
    assert os.stat(cache).st_mode & 0o777 == 0o600, 'kept after a failed switch too'
    kept = json.loads(cache.read_text())
    assert '-15m-' in kept['token']
    assert ARGS['password'] not in cache.read_text()
    assert kept['token'] not in json.dumps(result)
    # The next run resumes it: no login.
    npm_server.requests.clear()
    module_harness.run_module(compose_switch, args, FailJson if fail else module_harness.ExitJson)
    assert ('POST', '/api/tokens') not in [r[:2] for r in npm_server.requests]


def test_no_session_is_kept_in_check_mode_or_after_a_refused_login(docker, monkeypatch, npm_server, tmp_path):
    cache = tmp_path / '.npm-session'
    monkeypatch.setattr(compose_switch._switch, 'switch', _switch_that_logs_in())
    args = dict(ARGS, url=npm_server.url, token_cache=str(cache))
    module_harness.run_module(compose_switch, dict(args, _ansible_check_mode=True))
    assert not cache.exists()
    with pytest.raises(compose_switch._npm.NPMAuthError):  # the fake switch lets the refused login through
        module_harness.run_module(compose_switch, dict(args, password='not-the-password-1'), FailJson)
    assert not cache.exists()
    assert list(tmp_path.iterdir()) == []


# write: the release's files are written in the switch's own call, before anything is switched.

SECRET_LINE = 'JWT_SECRET="Kx$Abc123#tail-write"\n'


def _write_args(tmp_path, **extra):
    return dict(
        ARGS,
        project_dir=str(tmp_path),
        write={
            'env_files': [{'path': str(tmp_path / '.env.api'), 'content': SECRET_LINE}],
            'files': [{'path': str(tmp_path / 'docker-compose.prod.yml'), 'content': 'services: {}\n'}],
        },
        **extra,
    )


def test_write_writes_the_files_before_the_switch_and_names_them(docker, tmp_path):
    result = module_harness.run_module(compose_switch, _write_args(tmp_path))
    env, compose = tmp_path / '.env.api', tmp_path / 'docker-compose.prod.yml'
    assert env.read_bytes() == SECRET_LINE.encode()
    assert oct(env.stat().st_mode & 0o777) == '0o600'
    assert compose.read_text() == 'services: {}\n'
    assert oct(compose.stat().st_mode & 0o777) == '0o640'
    assert result['written'] == [str(env), str(compose)]
    # Files written, nothing that runs differs: a change, not a switch.
    assert result['changed'] is True
    assert result['switch_changed'] is False
    assert 'Abc123' not in json.dumps(result)
    # The same files again: nothing written, nothing changed.
    again = module_harness.run_module(compose_switch, _write_args(tmp_path))
    assert again['written'] == []
    assert again['changed'] is False


def test_write_then_switch_reports_both(docker, tmp_path):
    docker.desired.update(db='pg16')
    result = module_harness.run_module(compose_switch, _write_args(tmp_path))
    assert result['written'] == [str(tmp_path / '.env.api'), str(tmp_path / 'docker-compose.prod.yml')]
    assert result['switch_changed'] is True
    assert result['recreate'] == ['db']
    # No record asked: the files and the switch are timed.
    assert set(result['timings']) == {'write', 'switch'}


def test_a_file_that_cannot_be_planned_stops_the_call_before_any_write_or_switch(docker, tmp_path):
    args = _write_args(tmp_path)
    args['write']['files'][0]['path'] = str(tmp_path / 'missing' / 'docker-compose.prod.yml')
    docker.desired.update(db='pg16')
    result = module_harness.run_module(compose_switch, args, FailJson)
    assert 'does not exist' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert not (tmp_path / '.env.api').exists()
    assert docker.calls == []


def test_a_write_that_fails_half_way_switches_nothing_and_names_what_was_written(docker, tmp_path, monkeypatch):
    from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_files

    real = _release_files._write

    def write(item):
        if item['path'].endswith('.yml'):
            raise OSError(28, 'No space left on device')
        real(item)

    monkeypatch.setattr(_release_files, '_write', write)
    docker.desired.update(db='pg16')
    result = module_harness.run_module(compose_switch, _write_args(tmp_path), FailJson)
    assert result['switched'] is False
    assert result['changed'] is True
    assert result['written'] == [str(tmp_path / '.env.api')]
    assert 'No space left on device' in result['msg']
    assert result['msg'].endswith('Nothing was switched.')
    assert not [c for c in docker.calls if 'up' in c]


def test_write_in_check_mode_writes_nothing(docker, tmp_path):
    result = module_harness.run_module(compose_switch, _write_args(tmp_path, _ansible_check_mode=True))
    assert result['written'] == []
    assert not (tmp_path / '.env.api').exists()
    assert not (tmp_path / 'docker-compose.prod.yml').exists()


def test_a_gate_that_cannot_run_is_refused_before_anything(docker, tmp_path):
    gate = {'checks': [{'name': 'api', 'url': 'http://127.0.0.1:9/', 'project': 'p'}]}
    docker.desired.update(api='v2')
    result = module_harness.run_module(compose_switch, _write_args(tmp_path, gate=gate), FailJson)
    assert result['msg'].startswith("invalid health gate: check 'api': option 'project' does not apply")
    assert result['msg'].endswith('Nothing was changed.')
    assert docker.calls == []
    assert not (tmp_path / '.env.api').exists()


@pytest.mark.parametrize(
    'library, check, said',
    [
        ('HAS_REQUESTS', {'name': 'api', 'url': 'http://127.0.0.1:9/'}, 'HTTP checks need requests'),
        ('HAS_DOCKER_SDK', {'name': 'stack', 'type': 'compose', 'project': 'p'}, 'Compose and exec checks need'),
    ],
)
def test_a_gate_whose_library_is_missing_is_refused_before_anything(
    docker, tmp_path, monkeypatch, library, check, said
):
    monkeypatch.setattr(_health, library, False)
    docker.desired.update(api='v2')
    gate = {'checks': [check]}
    result = module_harness.run_module(compose_switch, _write_args(tmp_path, gate=gate), FailJson)
    assert result['msg'].startswith(f'the health gate cannot run: {said}')
    assert 'run playbooks/bootstrap.yml' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert docker.calls == []
    assert not (tmp_path / '.env.api').exists()


def test_secret_headers_of_the_gate_are_hidden_in_every_output(docker, monkeypatch):
    gate = {
        'checks': [
            {'name': 'api', 'url': 'http://127.0.0.1:9/', 'secret_headers': {'Authorization': 'Bearer Gate-S3cret'}}
        ]
    }
    masked = []
    exit_json = basic.AnsibleModule.exit_json

    def seen(self, **kwargs):
        masked.extend(self.no_log_values)
        exit_json(self, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', seen)
    result = module_harness.run_module(compose_switch, dict(ARGS, gate=gate))
    # Ansible masks these values in the result, the invocation and -vvv output (as health_verify's no_log option).
    assert 'Bearer Gate-S3cret' in masked
    assert 'Gate-S3cret' not in json.dumps(result)


# record: the deploy's ledger record in the switch's own call, only when nothing is left to do before it.

KEY = 'k' * 64


def _switch_that_ends(changed=True, healthy=True, marker=None):
    """Stands for _switch.switch: a handover of api that ended (gate and proxy_marker as given)."""

    def fake(run, spec, connect, check_mode=False, gate=None, marker_chain=None, **kw):
        result = {'changed': changed, 'differs': ['api'], 'handover': ['api'], 'recreate': [], 'steps': []}
        if gate is not None and healthy is not None:
            result['gate'] = {'healthy': healthy, 'msg': '', 'final_round': True}
        result['proxy_marker'] = marker if marker is not None else {'current': True, 'key': KEY, 'reason': 'held'}
        return result

    return fake


def _record_args(tmp_path, lock_path, token, **record):
    gate = {'checks': [{'name': 'api', 'url': 'http://127.0.0.1:9/'}]}
    options = {
        'path': str(tmp_path / 'releases'),
        'release': {
            'id': '20260301T101500Z-v2',
            'version': 'v2',
            'result': 'success',
            'started': '2026-03-01T10:15:00Z',
        },
        'compose_file': 'docker-compose.prod.yml',
        'compose_content': 'services: {}\n',
        'release_lock': {'path': lock_path, 'token': token},
        'marker_key': KEY,
        'started_at': 1000.0,
    }
    options.update(record)
    return dict(ARGS, gate=gate, record=options)


def _take_lock(tmp_path):
    path = str(tmp_path / '.deploy.lock')
    taken = compose_switch._ledger._lock.acquire(
        path, compose_switch._ledger._lock.new_record(holder='alice', action='deploy', version='v2')
    )
    return path, taken['token']


def test_record_in_the_switch_records_and_gives_the_lock_back_last(docker, monkeypatch, tmp_path):
    monkeypatch.setattr(compose_switch._switch, 'switch', _switch_that_ends())
    lock_path, token = _take_lock(tmp_path)
    release_after = compose_switch._ledger._lock.release_after
    seen = []

    def released(option, check_mode=False):
        # Last: the ledger names the release before the lock goes.
        seen.append(json.loads((tmp_path / 'releases' / 'index.json').read_text())['current'])
        return release_after(option, check_mode)

    monkeypatch.setattr(compose_switch._ledger._lock, 'release_after', released)
    result = module_harness.run_module(compose_switch, _record_args(tmp_path, lock_path, token))
    assert (result['record_skipped'], result['record_error']) == ('', '')
    assert result['changed'] is True
    index = json.loads((tmp_path / 'releases' / 'index.json').read_text())
    assert index['current'] == '20260301T101500Z-v2'
    (entry,) = index['releases']
    # Filled in by the call: when it ended, how long the deploy took, its stage and what was handed over.
    assert entry['recreated'] == ['api']
    assert entry['stage'] == 'verify'
    assert entry['finished'].endswith('Z')
    assert entry['duration_s'] > 0
    assert (tmp_path / 'releases' / '20260301T101500Z-v2' / 'docker-compose.prod.yml').read_text() == 'services: {}\n'
    assert result['recorded']['entry']['id'] == '20260301T101500Z-v2'
    assert result['recorded']['lock_released'] is True
    assert set(result['timings']) == {'switch', 'record'}
    assert all(isinstance(v, float) and v >= 0 for v in result['timings'].values())
    assert seen == ['20260301T101500Z-v2']
    assert not os.path.exists(lock_path)
    assert token not in json.dumps(result)


@pytest.mark.parametrize(
    'switch, extra, why',
    [
        (_switch_that_ends(marker={'current': True, 'key': 'other', 'reason': ''}), {}, 'to be declared again'),
        (_switch_that_ends(marker={'current': False, 'key': KEY, 'reason': ''}), {}, 'to be declared again'),
        (_switch_that_ends(healthy=False), {}, 'health gate did not run or did not pass'),
        (_switch_that_ends(changed=False), {}, 'changed nothing that runs'),
        # A gate given, but the switch only recreated in place: no gate ran, the caller checks health itself.
        (_switch_that_ends(healthy=None), {}, 'health gate did not run or did not pass'),
        (_switch_that_ends(), {'_ansible_check_mode': True}, 'check mode'),
    ],
)
def test_record_is_left_to_the_caller_unless_nothing_is_left_before_it(
    docker, monkeypatch, tmp_path, switch, extra, why
):
    monkeypatch.setattr(compose_switch._switch, 'switch', switch)
    lock_path, token = _take_lock(tmp_path)
    result = module_harness.run_module(compose_switch, dict(_record_args(tmp_path, lock_path, token), **extra))
    assert why in result['record_skipped']
    assert result['recorded'] == {}
    assert 'record' not in result['timings']
    assert not (tmp_path / 'releases').exists(), 'nothing recorded'
    assert os.path.exists(lock_path), 'the lock stays with the caller'


def test_record_without_a_marker_key_needs_only_the_switch_and_the_gate(docker, monkeypatch, tmp_path):
    monkeypatch.setattr(compose_switch._switch, 'switch', _switch_that_ends(marker={'current': False}))
    lock_path, token = _take_lock(tmp_path)
    result = module_harness.run_module(compose_switch, _record_args(tmp_path, lock_path, token, marker_key=''))
    assert result['recorded']['entry']['result'] == 'success'


def test_a_record_that_fails_fails_not_the_switch_and_keeps_the_lock(docker, monkeypatch, tmp_path):
    monkeypatch.setattr(compose_switch._switch, 'switch', _switch_that_ends())
    lock_path, token = _take_lock(tmp_path)
    (tmp_path / 'releases').write_text('a file where the ledger folder goes\n')
    result = module_harness.run_module(compose_switch, _record_args(tmp_path, lock_path, token))
    assert 'Nothing was recorded; the lock is still held.' in result['record_error']
    assert result['recorded'] == {}
    assert result['switch_changed'] is True
    assert os.path.exists(lock_path)
