# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.release_info module glue (exit_json / fail_json patched to raise, no Docker)."""

from __future__ import annotations

import json
import platform

import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock, _release_info
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_info
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson

DIGEST = 'sha256:' + 'a' * 64
ID = '20260301T101500Z-v1.2.0'


# GET /images/json (docker image ls) as the SDK's api.images() answers it.
IMAGES = [
    {'Id': 'sha256:' + '1' * 64, 'RepoDigests': [f'r/api@{DIGEST}'], 'RepoTags': [], 'Size': 1, 'Labels': None},
    {'Id': 'sha256:' + '2' * 64, 'RepoDigests': None, 'RepoTags': ['postgres:15.7'], 'Size': 1, 'Labels': None},
]


class FakeAPI:
    def images(self):
        return IMAGES


class FakeClient:
    closed = False
    api = FakeAPI()

    def close(self):
        self.closed = True


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)
    monkeypatch.setattr(_release_info, 'HAS_DOCKER', True)
    monkeypatch.setattr(_release_info, 'connect', lambda timeout=60: FakeClient())


def run(args, expect=ExitJson):
    return module_harness.run_module(release_info, args, expect)


def api(state='running'):
    return {
        'name': 'p-api-1',
        'id': 'abc',
        'state': state,
        'health': 'none',
        'image': f'r/api@{DIGEST}',
        'image_id': 'sha256:1',
        'repo_digests': [f'r/api@{DIGEST}'],
        'digest': '',
        'version': '',
        'started_at': '',
    }


def test_documentation_parses(monkeypatch):
    spec = module_harness.module_kwargs(monkeypatch, release_info)['argument_spec']
    doc = module_harness.assert_documented_options(release_info, spec)
    module_harness.assert_documented_returns(release_info)
    assert set(doc['options']) == {
        'project_dir',
        'project_name',
        'services',
        'last',
        'lock_path',
        'compose_version',
        'free_space_path',
        'images',
        'current_images',
        'keep',
        'lock',
        'compare',
        'proxy_marker',
    }


def always_returned():
    return {k for k, v in yaml.safe_load(release_info.RETURN).items() if v['returned'] == 'always'}


def test_agrees(tmp_path, monkeypatch):
    (tmp_path / 'releases').mkdir()
    (tmp_path / 'releases' / 'index.json').write_text(
        json.dumps(
            {
                'current': ID,
                'releases': [
                    {'id': ID, 'version': 'v1.2.0', 'result': 'success', 'images': {'api': {'digest': DIGEST}}}
                ],
            }
        )
    )
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'services': ['api'], '_ansible_check_mode': True})
    assert result['agrees'] is True
    assert result['changed'] is False
    assert result['containers']['api']['digest'] == DIGEST
    assert result['releases'][0]['id'] == ID
    returned = yaml.safe_load(release_info.RETURN)
    assert set(result) - {'changed'} == always_returned(), 'without the optional options, only what is always returned'
    assert set(result['containers']['api']) == set(returned['containers']['contains'])


def test_no_ledger(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p'})
    assert result['agrees'] is False
    assert result['differences'] == [
        'no ledger on this host',
        'api is not running (no container)',
        'frontend is not running (no container)',
    ]
    assert result['releases'] == []
    assert not (tmp_path / 'releases').exists()


def test_missing_sdk(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'HAS_DOCKER', False)
    result = run({'project_dir': str(tmp_path), 'project_name': 'p'}, FailJson)
    assert 'the Python Docker SDK (python3-docker) is missing on ' in result['msg']
    assert result['msg'].endswith(': run playbooks/bootstrap.yml, which installs it')


def test_engine_down(tmp_path, monkeypatch):
    def down(timeout=60):
        raise _release_info.DockerQueryError('the Docker engine does not answer: connection refused')

    monkeypatch.setattr(_release_info, 'connect', down)
    result = run({'project_dir': str(tmp_path), 'project_name': 'p'}, FailJson)
    assert result['msg'].startswith('the Docker engine does not answer: connection refused (on ')


@pytest.mark.parametrize(
    'args, message',
    [
        ({'last': -1}, 'last must be at least 0'),
        ({'project_name': ' '}, 'project_name must name the compose project'),
        ({'services': ['']}, 'services must be a list of service names'),
    ],
)
def test_refusals(tmp_path, monkeypatch, args, message):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run(dict({'project_dir': str(tmp_path), 'project_name': 'p'}, **args), FailJson)
    assert message in result['msg']


def test_a_corrupt_ledger_does_not_fail_the_module(tmp_path, monkeypatch):
    (tmp_path / 'releases').mkdir()
    (tmp_path / 'releases' / 'index.json').write_bytes(b'{"current": ')
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'services': ['api']})
    assert result['problem'].startswith('releases/index.json is corrupt (not JSON')
    assert result['agrees'] is False
    assert result['containers']['api']['state'] == 'running'
    assert (tmp_path / 'releases' / 'index.json').read_bytes() == b'{"current": '
    assert sorted(p.name for p in (tmp_path / 'releases').iterdir()) == ['index.json']


def test_a_killed_runs_lock_and_switch_are_reported(tmp_path, monkeypatch):
    """A run killed after its switch: its lock is still there, v1.1.0 runs, the ledger still names v1.2.0."""
    old = 'sha256:' + 'b' * 64
    (tmp_path / 'releases').mkdir()
    (tmp_path / 'releases' / 'index.json').write_text(
        json.dumps(
            {
                'current': ID,
                'releases': [
                    {
                        'id': '20260201T000000Z-v1.1.0',
                        'version': 'v1.1.0',
                        'result': 'success',
                        'images': {'api': {'digest': DIGEST}},
                    },
                    {'id': ID, 'version': 'v1.2.0', 'result': 'success', 'images': {'api': {'digest': old}}},
                ],
            }
        )
    )
    record = {
        'holder': 'alice',
        'host': 'vm',
        'action': 'deploy',
        'version': 'v1.1.0',
        'since': '2026-03-01T10:15:00Z',
        'token': 'the-owner-token-never-shown',
    }
    (tmp_path / '.deploy.lock').write_text(json.dumps(record))
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'services': ['api']})
    assert result['agrees'] is False
    assert result['running_release']['version'] == 'v1.1.0'
    assert result['lock']['holder'] == 'alice'
    assert 'token' not in result['lock']
    assert 'the-owner-token-never-shown' not in json.dumps(result)
    assert result['next_step'].startswith('The lock of a deploy of v1.1.0 by alice since 2026-03-01T10:15:00Z')
    assert 'deploy.yml -e image_tag=v1.1.0 -e compose_deploy_break_lock=true' in result['next_step']
    assert set(result) - {'changed'} == always_returned()


def test_lock_path_option(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    elsewhere = tmp_path / 'locks' / 'prod.lock'
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps({'holder': 'bob', 'action': 'rollback', 'version': 'v1.0.0'}))
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'lock_path': str(elsewhere)})
    assert result['lock']['holder'] == 'bob'
    assert result['lock']['format'] == 'legacy'
    assert run({'project_dir': str(tmp_path), 'project_name': 'p'})['lock'] == {}


# ---------------------------------------------------------------------------
# The optional answers a deploy asks for before it switches (one call)
# ---------------------------------------------------------------------------

OLD = 'sha256:' + 'b' * 64
OLD_ID = '20260201T000000Z-v1.1.0'


def deploy_ledger(tmp_path):
    (tmp_path / 'releases').mkdir()
    (tmp_path / 'releases' / 'index.json').write_text(
        json.dumps(
            {
                'current': ID,
                'releases': [
                    {
                        'id': OLD_ID,
                        'version': 'v1.1.0',
                        'result': 'success',
                        'images': {'api': {'digest': OLD, 'reference': f'r/api@{OLD}'}},
                    },
                    {
                        'id': ID,
                        'version': 'v1.2.0',
                        'result': 'success',
                        'images': {'api': {'digest': DIGEST, 'reference': f'r/api@{DIGEST}'}},
                    },
                ],
            }
        )
    )


def docker_cli(tmp_path, monkeypatch, script):
    """A docker CLI stand-in on PATH (this machine's engine is not ours to call): prints what ``script`` says."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / 'docker'
    docker.write_text('#!/bin/sh\n' + script + '\n')
    docker.chmod(0o755)
    monkeypatch.setenv('PATH', str(bin_dir))


DEPLOY_ARGS = {
    'project_name': 'p',
    'services': ['api'],
    'last': 0,
    'compose_version': True,
    'keep': 5,
    'images': [f'r/new@{DIGEST}', 'postgres:15.7', 'docker.io/library/postgres:15.7'],
    'current_images': True,
    '_ansible_check_mode': True,
}


def test_everything_a_deploy_asks_in_one_call(tmp_path, monkeypatch):
    deploy_ledger(tmp_path)
    docker_cli(tmp_path, monkeypatch, 'test "$*" = "compose version --short" && echo v2.29.1')
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(dict(DEPLOY_ARGS, project_dir=str(tmp_path), free_space_path=str(tmp_path)))
    assert result['changed'] is False
    assert result['compose_version'] == '2.29.1'
    assert isinstance(result['free_space_mb'], int)
    assert result['free_space_mb'] > 0
    assert result['images_present'] == ['postgres:15.7', 'docker.io/library/postgres:15.7', f'r/api@{DIGEST}']
    assert result['images_missing'] == [f'r/new@{DIGEST}'], 'the current release r/api@... is on the host'
    assert result['ledger']['current'] == ID
    assert result['current']['version'] == 'v1.2.0'
    assert result['rollback_target']['id'] == OLD_ID
    assert result['kept'] == [OLD_ID, ID]
    assert result['kept_references'] == [f'r/api@{DIGEST}', f'r/api@{OLD}']
    assert result['agrees'] is True
    assert result['releases'] == []
    documented = set(yaml.safe_load(release_info.RETURN)) - LOCK_KEYS - COMPARE_KEYS - {'proxy_marker'}
    assert set(result) - {'changed'} == documented, 'every documented key but those of the lock, compare, proxy_marker'
    assert not (tmp_path / 'releases' / 'index.json.last-good').exists(), 'read only'


def test_current_images_alone(tmp_path, monkeypatch):
    deploy_ledger(tmp_path)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'current_images': True})
    assert (result['images_present'], result['images_missing']) == ([f'r/api@{DIGEST}'], [])
    assert not {'ledger', 'compose_version', 'free_space_mb'} & set(result)


def test_current_images_without_a_ledger(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'current_images': True, 'keep': 2})
    assert (result['images_present'], result['images_missing']) == ([], [])
    assert result['ledger'] == {'current': '', 'releases': []}
    assert result['rollback_target'] == {}


def test_keep_warns_about_a_corrupt_ledger(tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    (tmp_path / 'releases').mkdir()
    (tmp_path / 'releases' / 'index.json').write_bytes(b'{"current": ')
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'keep': 5})
    assert result['problem'].startswith('releases/index.json is corrupt (not JSON')
    assert warned == [result['problem']], 'as release_ledger state=read warns'
    assert result['ledger'] == {'current': '', 'releases': []}
    run({'project_dir': str(tmp_path), 'project_name': 'p'})
    assert warned == [result['problem']], 'without keep, no warning (as before)'


@pytest.mark.parametrize(
    'script, message',
    [
        (
            "echo \"docker: 'compose' is not a docker command.\" >&2; echo \"See 'docker --help'\" >&2; exit 1",
            (
                "docker compose does not answer on {host} (docker compose version --short: docker: 'compose' is not "
                "a docker command. See 'docker --help'): run playbooks/bootstrap.yml, which installs Docker and the "
                'compose v2 plugin. Nothing was changed.'
            ),
        ),
        ('echo 1.29.2', 'docker compose on {host} is 1.29.2; compose v2 or later is needed'),
        (None, 'the docker CLI is not on the PATH on {host}: run playbooks/bootstrap.yml'),
    ],
)
def test_compose_v2_missing(tmp_path, monkeypatch, script, message):
    if script is None:
        (tmp_path / 'bin').mkdir()
        monkeypatch.setenv('PATH', str(tmp_path / 'bin'))
    else:
        docker_cli(tmp_path, monkeypatch, script)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'compose_version': True}, FailJson)
    assert message.format(host=platform.node() or 'this host') in result['msg']
    assert result['changed'] is False


def test_free_space_of_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    missing = tmp_path / 'opt' / 'deploy-avatar-prod'
    result = run({'project_dir': str(missing), 'project_name': 'p', 'free_space_path': str(missing)}, FailJson)
    assert result['msg'].startswith(f'the free space under {missing} (free_space_path) cannot be measured on ')
    assert 'No such file or directory' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')


def test_images_not_listed_unless_asked(tmp_path, monkeypatch):
    class NoList(FakeAPI):
        def images(self):
            raise AssertionError('the image list was asked for')

    class Client(FakeClient):
        api = NoList()

    monkeypatch.setattr(_release_info, 'connect', lambda timeout=60: Client())
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p'})
    assert 'images_present' not in result


@pytest.mark.parametrize(
    'args, message',
    [
        ({'keep': 0}, 'keep must be at least 1, got 0'),
        ({'images': ['postgres:15.7', ' ']}, 'images must not hold an empty reference'),
    ],
)
def test_option_refusals(tmp_path, monkeypatch, args, message):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run(dict({'project_dir': str(tmp_path), 'project_name': 'p'}, **args), FailJson)
    assert message in result['msg']


# The keys only the lock option returns (stale_reason only when another run's lock was judged).
COMPARE_KEYS = {'files', 'files_identical', 'drift', 'drift_error'}
LOCK_KEYS = {'token', 'acquired', 'released', 'held', 'stale', 'stale_reason', 'waited', 'broken', 'msg'}


def other_runs_lock(path):
    record = _lock.new_record(holder='bob', host='prod-1', version='v1.1.0', job_id='9')
    path.write_bytes(_lock.encode_record(record))
    return record


def test_lock_is_taken_and_the_host_read_in_one_call(tmp_path, monkeypatch):
    deploy_ledger(tmp_path)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    lock = {'holder': 'alice', 'version': 'v1.2.0', 'job_id': '42', '_inventory_host': 'prod-1'}
    result = run(
        dict(DEPLOY_ARGS, project_dir=str(tmp_path), compose_version=False, lock=lock, _ansible_check_mode=False)
    )
    on_disk = json.loads((tmp_path / '.deploy.lock').read_text())
    assert result['acquired'] is True
    assert result['changed'] is True
    assert result['token'] == on_disk['token']
    assert result['lock']['holder'] == 'alice'
    assert result['lock']['job_id'] == '42'
    assert result['lock'] == _lock.query(str(tmp_path / '.deploy.lock'))['lock'], 'what deploy_lock would read back'
    assert result['msg'] == f'Took the lock {tmp_path}/.deploy.lock.'
    assert result['broken'] == {}
    assert result['agrees'] is True
    assert result['rollback_target']['id'] == OLD_ID
    assert LOCK_KEYS - {'stale_reason'} <= set(result)
    # The lock it took releases as deploy_lock's does.
    assert _lock.release(str(tmp_path / '.deploy.lock'), token=result['token'])['released'] is True


def test_a_held_lock_fails_before_anything_is_read(tmp_path, monkeypatch):
    deploy_ledger(tmp_path)
    before = other_runs_lock(tmp_path / '.deploy.lock')
    raw = (tmp_path / '.deploy.lock').read_bytes()

    def must_not_read(*_args, **_kwargs):
        raise AssertionError('the engine was asked before the lock was held')

    monkeypatch.setattr(_release_info, 'connect', must_not_read)
    result = run(
        {'project_dir': str(tmp_path), 'project_name': 'p', 'lock': {'holder': 'alice', 'break_hint': '-e x=1'}},
        FailJson,
    )
    assert result['acquired'] is False
    assert result['token'] == ''
    assert result['lock']['holder'] == 'bob'
    assert 'held by bob' in result['msg']
    assert '-e x=1' in result['msg']
    assert 'agrees' not in result
    assert (tmp_path / '.deploy.lock').read_bytes() == raw
    assert before['token'] not in repr(result)


@pytest.mark.parametrize('check_mode', [False, True])
def test_a_failed_read_gives_the_lock_back(tmp_path, monkeypatch, check_mode):
    def down(timeout=60):
        raise _release_info.DockerQueryError('the Docker engine does not answer: connection refused')

    monkeypatch.setattr(_release_info, 'connect', down)
    args = {'project_dir': str(tmp_path), 'project_name': 'p', 'lock': {'holder': 'alice'}}
    result = run(dict(args, _ansible_check_mode=check_mode), FailJson)
    assert result['msg'].startswith('the Docker engine does not answer: connection refused (on ')
    assert result['acquired'] is False
    assert result['token'] == ''
    assert not (tmp_path / '.deploy.lock').exists(), 'no lock outlives a failed call'
    if check_mode:
        assert result['released'] is False, 'check mode took no lock'
    else:
        assert result['released'] is True
        assert result['msg'].endswith(f' The lock {tmp_path}/.deploy.lock this task took was released.')


def test_a_failed_host_check_gives_the_lock_back(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    args = {'project_dir': str(tmp_path), 'project_name': 'p', 'free_space_path': str(tmp_path / 'missing')}
    result = run(dict(args, lock={'holder': 'alice'}), FailJson)
    assert 'cannot be measured' in result['msg']
    assert result['released'] is True
    assert not (tmp_path / '.deploy.lock').exists()


def test_check_mode_takes_no_lock_and_reads(tmp_path, monkeypatch):
    deploy_ledger(tmp_path)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(dict(DEPLOY_ARGS, project_dir=str(tmp_path), compose_version=False, lock={'holder': 'alice'}))
    assert result['acquired'] is False
    assert result['changed'] is True, 'the lock would be taken'
    assert result['msg'].startswith('Check mode: the lock ')
    assert result['agrees'] is True
    assert not (tmp_path / '.deploy.lock').exists()


def test_lock_path_and_lock_dot_path_must_agree(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    args = {'project_dir': str(tmp_path), 'project_name': 'p', 'lock_path': str(tmp_path / 'a.lock')}
    result = run(dict(args, lock={'path': str(tmp_path / 'b.lock')}), FailJson)
    assert 'name different locks' in result['msg']
    assert not (tmp_path / 'a.lock').exists()
    assert not (tmp_path / 'b.lock').exists()
    same = run(dict(args, lock={'path': str(tmp_path / 'a.lock'), 'holder': 'alice'}))
    assert same['acquired'] is True
    assert (tmp_path / 'a.lock').exists()


def test_without_lock_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', '_ansible_check_mode': False})
    assert result['changed'] is False
    assert not LOCK_KEYS & set(result)
    assert not (tmp_path / '.deploy.lock').exists()


# -- compare: the release's files and, when they are identical, compose's dry run -------------------------

DRY_RUN_NOTHING = 'echo " DRY-RUN MODE -  Container p-api-1  Running" >&2'
DRY_RUN_API = 'echo " DRY-RUN MODE -  Container p-api-1  Recreate" >&2'


def compose_cli(tmp_path, monkeypatch, dry_run, calls):
    """A docker CLI stand-in answering `compose ... config --services` and `compose ... up --dry-run`; logs argv."""
    docker_cli(
        tmp_path,
        monkeypatch,
        f'echo "$*" >> {calls}\n'
        'case "$*" in\n'
        '  *"config --services"*) echo api; echo db ;;\n'
        f'  *"up --dry-run --no-start"*) {dry_run} ;;\n'
        '  *) exit 9 ;;\n'
        'esac',
    )


def compare_args(tmp_path, env_text='A="1"\n', compose_text='services: {}\n'):
    return {
        'project_dir': str(tmp_path),
        'project_name': 'p',
        'services': ['api'],
        'compare': {
            'env_files': [{'path': str(tmp_path / 'api.env'), 'content': env_text}],
            'files': [{'path': str(tmp_path / 'c.yml'), 'content': compose_text, 'return_content': True}],
            'drift_compose_files': ['c.yml'],
        },
    }


def on_host(tmp_path, env_text='A="1"\n', compose_text='services: {}\n'):
    (tmp_path / 'api.env').write_text(env_text)
    (tmp_path / 'api.env').chmod(0o600)
    (tmp_path / 'c.yml').write_text(compose_text)
    (tmp_path / 'c.yml').chmod(0o640)


@pytest.mark.parametrize('dry_run, drift', [(DRY_RUN_NOTHING, []), (DRY_RUN_API, ['api'])])
def test_identical_files_ask_compose_what_it_would_change(tmp_path, monkeypatch, dry_run, drift):
    on_host(tmp_path)
    calls = tmp_path / 'calls'
    compose_cli(tmp_path, monkeypatch, dry_run, calls)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(compare_args(tmp_path))
    assert result['files_identical'] is True
    assert result['drift'] == drift
    assert result['drift_error'] == ''
    assert result['files'][str(tmp_path / 'c.yml')]['content'] == 'services: {}\n'
    assert any('up --dry-run --no-start --remove-orphans' in line for line in calls.read_text().splitlines())
    assert (tmp_path / 'api.env').read_text() == 'A="1"\n', 'nothing is written'


def test_a_file_that_differs_asks_compose_nothing_and_never_returns_env_values(tmp_path, monkeypatch):
    on_host(tmp_path, env_text='A="old-secret-value"\n')
    calls = tmp_path / 'calls'
    compose_cli(tmp_path, monkeypatch, DRY_RUN_NOTHING, calls)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(compare_args(tmp_path, env_text='A="new-secret-value"\nB="2"\n'))
    assert result['files_identical'] is False
    assert result['drift'] is None
    assert not calls.exists(), 'no compose call when a write is due anyway'
    env = result['files'][str(tmp_path / 'api.env')]
    assert (env['differs'], sorted(env['keys'])) == (True, ['A', 'B'])
    assert 'secret-value' not in json.dumps(result)


def test_a_mode_that_differs_is_not_identical(tmp_path, monkeypatch):
    on_host(tmp_path)
    (tmp_path / 'api.env').chmod(0o644)
    compose_cli(tmp_path, monkeypatch, DRY_RUN_NOTHING, tmp_path / 'calls')
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(compare_args(tmp_path))
    assert result['files_identical'] is False
    assert result['files'][str(tmp_path / 'api.env')]['attrs_differ'] is True


def test_compose_that_cannot_answer_leaves_drift_unknown(tmp_path, monkeypatch):
    on_host(tmp_path)
    compose_cli(tmp_path, monkeypatch, 'echo "no such service" >&2; exit 1', tmp_path / 'calls')
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(compare_args(tmp_path))
    assert result['drift'] is None
    assert 'dry-run failed (exit 1): no such service' in result['drift_error']


def test_env_file_content_is_a_hidden_option(monkeypatch):
    """Ansible masks it in every output (invocation, -vvv, AWX events) only because the spec says no_log."""
    spec = module_harness.module_kwargs(monkeypatch, release_info)['argument_spec']
    env_options = spec['compare']['options']['env_files']['options']
    assert env_options['content'].get('no_log') is True
    assert spec['compare']['options']['files']['options']['content'].get('no_log') is not True


def test_no_docker_cli_leaves_drift_unknown_instead_of_failing(tmp_path, monkeypatch):
    on_host(tmp_path)
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    result = run(compare_args(tmp_path))
    assert result['drift'] is None
    assert 'could not be run' in result['drift_error']


def test_the_proxy_marker_says_whether_npm_is_unchanged_since_the_recorded_declaration(tmp_path, monkeypatch):
    from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _proxy_marker

    deploy_ledger(tmp_path)
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api()]})
    database = tmp_path / 'jc21' / 'data' / 'database.sqlite'
    database.parent.mkdir(parents=True)
    database.write_bytes(b'SQLite format 3\x00')
    marker = tmp_path / '.npm-declared'
    args = {
        'project_dir': str(tmp_path),
        'project_name': 'p',
        'proxy_marker': {'path': str(marker), 'database': str(database)},
    }
    assert run(args)['proxy_marker'] == {'key': '', 'current': False, 'reason': 'no declaration recorded'}
    _proxy_marker.write(str(marker), 'k1', str(database))
    held = run(args)['proxy_marker']
    assert held['key'] == 'k1'
    assert held['current'] is True
    database.write_bytes(b'SQLite format 3\x00 a row')
    changed = run(dict(args, _ansible_check_mode=True))['proxy_marker']
    assert changed['current'] is False
    assert changed['key'] == 'k1'
    assert 'proxy_marker' not in run({'project_dir': str(tmp_path), 'project_name': 'p'})


@pytest.mark.parametrize('state', ['created', 'restarting', 'exited'])
def test_a_container_that_does_not_run_is_drift_though_the_dry_run_names_nothing(tmp_path, monkeypatch, state):
    """The dry run without its start phase does not print a container that never started or restarts: what the
    same call read of the project's containers names it (up's start phase would start it)."""
    on_host(tmp_path)
    compose_cli(tmp_path, monkeypatch, DRY_RUN_NOTHING, tmp_path / 'calls')
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {'api': [api(state)], 'db': [api()]})
    result = run(compare_args(tmp_path))
    assert result['drift'] == ['api']
    assert '_services' not in result
