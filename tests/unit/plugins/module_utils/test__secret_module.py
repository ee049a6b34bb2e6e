# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The log line a module writes on the managed host holds no secret nested in its options (env files, headers)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import secret_header_values
from ansible_collections.avatar_mgmt.ops.plugins.modules import compose_switch, release_files, release_info
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import FailJson

ENV = 'API_KEY="Env-S3cret-value"\nJWT_SECRET="Kx$Abc123#tail"\n'


@pytest.fixture
def logged(monkeypatch):
    """Every line the module logs on the host (journald or syslog), captured instead."""
    module_harness.patch_exits(monkeypatch)
    lines = []
    monkeypatch.setattr(basic.AnsibleModule, 'log', lambda self, msg, log_args=None: lines.append((msg, log_args)))
    return lines


def _assert_clean(lines, *secrets):
    text = json.dumps([str(x) for x in lines])
    assert any('Invoked with' in str(msg) for msg, _args in lines)
    for secret in secrets:
        for part in (secret, secret.replace('\n', '\\n'), 'Env-S3cret', 'Abc123', 'Hdr-S3cret'):
            assert part not in text, part


def test_release_files_logs_no_env_file_content(logged, tmp_path):
    args = {'state': 'compared', 'env_files': [{'path': str(tmp_path / '.env.api'), 'content': ENV}]}
    module_harness.run_module(release_files, args)
    _assert_clean(logged, ENV)


def test_release_info_logs_no_compared_env_file_content(logged, tmp_path, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **kw: None)
    args = {
        'project_dir': str(tmp_path),
        'project_name': 'avatar',
        'compare': {'env_files': [{'path': str(tmp_path / '.env.api'), 'content': ENV}]},
    }
    module_harness.run_module(release_info, args, (module_harness.ExitJson, FailJson))
    _assert_clean(logged, ENV)


def test_compose_switch_logs_no_written_content_and_no_secret_header(logged, tmp_path, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **kw: f'/usr/bin/{name}')
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: (1, '', 'no docker here'))
    args = {
        'project_name': 'avatar',
        'project_dir': str(tmp_path),
        'files': ['docker-compose.yml'],
        'expect': 'v2',
        'url': 'http://127.0.0.1:9',
        'username': 'admin@example.com',
        'password': 'Switch-Log-Pa55',
        'write': {'env_files': [{'path': str(tmp_path / '.env.api'), 'content': ENV}]},
        'gate': {
            'checks': [
                {'name': 'api', 'url': 'http://127.0.0.1:9/', 'secret_headers': {'Authorization': 'Bearer Hdr-S3cret'}}
            ]
        },
    }
    result = module_harness.run_module(compose_switch, args, FailJson)
    _assert_clean(logged, ENV, 'Switch-Log-Pa55')
    assert 'Hdr-S3cret' not in json.dumps(result)


def test_secret_headers_are_found_wherever_they_are():
    data = {'gate': {'checks': [{'secret_headers': {'A': 'one', 'B': 2, 'C': ''}}, {'headers': {'Host': 'x'}}]}}
    assert sorted(secret_header_values(data)) == ['2', 'one']


PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-Key-S3cret\n-----END PRIVATE KEY-----\n'


def test_npm_proxy_host_logs_no_uploaded_private_key(logged):
    from ansible_collections.avatar_mgmt.ops.plugins.modules import npm_proxy_host

    args = {
        'url': 'http://127.0.0.1:9',
        'username': 'admin@example.com',
        'password': 'Npm-Log-Pa55',
        'domain_names': ['api.example.com'],
        'forward_host': 'api',
        'forward_port': 3000,
        'certificate_upload': {'nice_name': 'avatar', 'certificate': 'CERT', 'certificate_key': PEM_KEY},
    }
    # NPM is not reachable: the module fails, after logging its invocation.
    module_harness.run_module(npm_proxy_host, args, FailJson)
    _assert_clean(logged, PEM_KEY, 'Npm-Log-Pa55')
    assert 'Key-S3cret' not in json.dumps([str(x) for x in logged])


def test_a_secret_header_is_masked_even_when_the_options_are_refused(logged, monkeypatch):
    masked = []
    fail_json = basic.AnsibleModule.fail_json

    def seen(self, msg='', **kwargs):
        # Ansible masks these values in the failure's result and its invocation.
        masked.extend(self.no_log_values)
        fail_json(self, msg=msg, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', seen)
    gate = {'checks': [{'name': 'api', 'url': 'http://127.0.0.1:9/', 'secret_headers': {'X-Token': 'Hdr-S3cret-2'}}]}
    module_harness.run_module(compose_switch, {'gate': gate, 'not_an_option': 1}, FailJson)
    assert 'Hdr-S3cret-2' in masked
