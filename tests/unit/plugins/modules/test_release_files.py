# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.release_files module glue (exit_json / fail_json patched to raise)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _envfile
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_files
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson

SECRET = 'pa$$ word #1 \'single\' "double"'
COMPOSE = 'services:\n  api:\n    image: r/api@sha256:1\n    env_file: [/x/.env.api]\n'


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


def run(args, expect=ExitJson):
    return module_harness.run_module(release_files, args, expect)


def args(tmp_path, env=None, compose=COMPOSE, **extra):
    env = {'JWT_SECRET': SECRET, 'PORT': 3000} if env is None else env
    result = {
        'env_files': [
            {
                'path': str(tmp_path / '.env.api'),
                'content': ''.join(f'{k}={_envfile.quote(v)}\n' for k, v in env.items()),
            }
        ],
        'files': [{'path': str(tmp_path / 'docker-compose.yml'), 'content': compose, 'return_content': True}],
    }
    result.update(extra)
    return result


def test_documentation_matches_argument_spec(monkeypatch):
    kwargs = module_harness.module_kwargs(monkeypatch, release_files)
    spec = kwargs['argument_spec']
    doc = module_harness.assert_documented_options(release_files, spec)
    for option in ('env_files', 'files'):
        suboptions = doc['options'][option]['suboptions']
        assert set(suboptions) == set(spec[option]['options'])
        for name, sub in suboptions.items():
            assert sub['type'] == spec[option]['options'][name]['type'], (option, name)
            assert sub.get('default') == spec[option]['options'][name].get('default'), (option, name)
    returns = module_harness.assert_documented_returns(release_files)
    assert {'files', 'changed_files'} <= set(returns)
    assert kwargs['supports_check_mode'] is True


def test_env_content_is_no_log_and_compose_is_not(monkeypatch):
    spec = module_harness.module_kwargs(monkeypatch, release_files)['argument_spec']
    assert spec['env_files']['options']['content']['no_log'] is True
    assert not spec['files']['options']['content'].get('no_log')


def test_env_content_is_masked_in_what_the_module_returns(tmp_path, monkeypatch):
    """AnsibleModule's own masking (no_log values) sees the env file's content."""
    seen = {}

    def capture(self, **kwargs):
        seen['no_log_values'] = set(self.no_log_values)
        raise ExitJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', capture)
    given = args(tmp_path, state='compared')
    run(given)
    assert given['env_files'][0]['content'] in seen['no_log_values']
    assert COMPOSE not in seen['no_log_values']


def test_compared_reads_only_and_names_keys(tmp_path):
    (tmp_path / 'docker-compose.yml').write_text('services: {}\n')
    (tmp_path / '.env.api').write_text('JWT_SECRET="old"\nPORT="3000"\n')
    result = run(args(tmp_path, state='compared', _ansible_check_mode=True))
    assert result['changed'] is False
    assert result['changed_files'] == []
    env = result['files'][str(tmp_path / '.env.api')]
    compose = result['files'][str(tmp_path / 'docker-compose.yml')]
    assert env['keys'] == ['JWT_SECRET']
    assert env['differs'] is True
    assert 'content' not in env
    assert compose['content'] == 'services: {}\n'
    assert compose['differs'] is True
    assert (tmp_path / '.env.api').read_text() == 'JWT_SECRET="old"\nPORT="3000"\n'
    assert (tmp_path / 'docker-compose.yml').read_text() == 'services: {}\n'
    assert 'old' not in json.dumps(env)
    assert 'pa$$' not in json.dumps(result)


def test_present_check_mode_writes_nothing_and_diffs_names_only(tmp_path):
    result = run(args(tmp_path, _ansible_check_mode=True, _ansible_diff=True))
    assert result['changed'] is True
    assert result['changed_files'] == [str(tmp_path / '.env.api'), str(tmp_path / 'docker-compose.yml')]
    assert os.listdir(tmp_path) == []
    text = json.dumps(result['diff'])
    assert 'JWT_SECRET=<new value hidden>' in text
    assert 'image: r/api@sha256:1' in text
    for piece in ('pa$$', 'word', 'single', 'double', '3000'):
        assert piece not in text


def test_present_then_idempotent(tmp_path):
    first = run(args(tmp_path, owner=str(os.getuid()), group=str(os.getgid())))
    assert first['changed'] is True
    env, compose = tmp_path / '.env.api', tmp_path / 'docker-compose.yml'
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert stat.S_IMODE(compose.stat().st_mode) == 0o640
    assert env.read_text() == f'JWT_SECRET={_envfile.quote(SECRET)}\nPORT="3000"\n'
    assert compose.read_text() == COMPOSE
    again = run(args(tmp_path, owner=str(os.getuid()), group=str(os.getgid()), _ansible_check_mode=True))
    assert again['changed'] is False
    second = run(args(tmp_path, owner=str(os.getuid()), group=str(os.getgid())))
    assert second['changed'] is False
    assert second['changed_files'] == []
    assert all(not f['changed'] for f in second['files'].values())


def test_only_the_changed_file_is_written(tmp_path):
    run(args(tmp_path))
    result = run(args(tmp_path, env={'JWT_SECRET': 'other', 'PORT': 3000}))
    assert result['changed_files'] == [str(tmp_path / '.env.api')]
    assert result['files'][str(tmp_path / '.env.api')]['keys'] == ['JWT_SECRET']
    assert result['files'][str(tmp_path / 'docker-compose.yml')]['changed'] is False


def test_bad_input_fails_naming_it_and_changes_nothing(tmp_path):
    given = args(tmp_path)
    given['files'].append({'path': str(tmp_path / 'missing' / 'x.yml'), 'content': 'x'})
    result = run(given, FailJson)
    assert result['changed'] is False
    assert 'missing' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert os.listdir(tmp_path) == []


def test_mode_option(tmp_path):
    given = args(tmp_path)
    given['files'][0]['mode'] = '0644'
    run(given)
    assert stat.S_IMODE((tmp_path / 'docker-compose.yml').stat().st_mode) == 0o644
