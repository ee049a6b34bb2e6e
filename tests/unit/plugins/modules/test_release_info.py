# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.release_info module glue (exit_json / fail_json patched to raise, no Docker)."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_info
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_info
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson

DIGEST = 'sha256:' + 'a' * 64
ID = '20260301T101500Z-v1.2.0'


class FakeClient:
    closed = False

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
    assert set(doc['options']) == {'project_dir', 'project_name', 'services', 'last', 'lock_path'}


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
    assert set(result) - {'changed'} == set(returned), 'the module returns exactly what RETURN documents'
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
    returned = yaml.safe_load(release_info.RETURN)
    assert set(result) - {'changed'} == set(returned)


def test_lock_path_option(tmp_path, monkeypatch):
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})
    elsewhere = tmp_path / 'locks' / 'prod.lock'
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps({'holder': 'bob', 'action': 'rollback', 'version': 'v1.0.0'}))
    result = run({'project_dir': str(tmp_path), 'project_name': 'p', 'lock_path': str(elsewhere)})
    assert result['lock']['holder'] == 'bob'
    assert result['lock']['format'] == 'legacy'
    assert run({'project_dir': str(tmp_path), 'project_name': 'p'})['lock'] == {}
