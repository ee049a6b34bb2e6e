# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.ssh_host_key module glue (ssh-keyscan's answer stubbed;
the real server is in tests/integration/test_host_keys.py)."""

from __future__ import annotations

import base64

import pytest
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.modules import ssh_host_key
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson

KEY = base64.b64encode(b'\x00\x00\x00\x0bssh-ed25519' + b'A' * 36).decode()
OTHER = base64.b64encode(b'\x00\x00\x00\x0bssh-ed25519' + b'B' * 36).decode()


@pytest.fixture
def keyscan(monkeypatch):
    """Stub run_command with ssh-keyscan's answer; records the command."""
    answer = {'rc': 0, 'out': f'[127.0.0.1]:2222 ssh-ed25519 {KEY}\n', 'err': ''}
    calls = []

    def run_command(self, args, **kwargs):
        calls.append(args)
        return answer['rc'], answer['out'], answer['err']

    module_harness.patch_exits(monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: f'/usr/bin/{name}')
    answer['calls'] = calls
    return answer


def run(args, expect=ExitJson):
    return module_harness.run_module(ssh_host_key, args, expect)


def test_documentation_matches_argument_spec(monkeypatch):
    spec = module_harness.module_kwargs(monkeypatch, ssh_host_key)['argument_spec']
    module_harness.assert_documented_options(ssh_host_key, spec)
    assert set(module_harness.assert_documented_returns(ssh_host_key)) == {'state', 'name', 'offered'}


def test_known(keyscan, tmp_path):
    known = tmp_path / 'known_hosts'
    known.write_text(f'[127.0.0.1]:2222 ssh-ed25519 {KEY}\n')
    result = run({'host': '127.0.0.1', 'port': 2222, 'known_hosts': str(known)})
    assert result['state'] == 'known'
    assert result['changed'] is False
    assert result['name'] == '[127.0.0.1]:2222'
    assert keyscan['calls'] == [['/usr/bin/ssh-keyscan', '-T', '10', '-p', '2222', '127.0.0.1']]


def test_unknown_when_the_file_is_missing(keyscan, tmp_path):
    result = run(
        {'host': '127.0.0.1', 'port': 2222, 'known_hosts': str(tmp_path / 'none'), 'inventory_host': 'prod-1'},
        FailJson,
    )
    assert result['state'] == 'unknown'
    assert f"ssh-keyscan -p 2222 127.0.0.1 >> {tmp_path / 'none'}" in result['msg']
    assert result['msg'].startswith('The SSH host key of prod-1 (127.0.0.1, port 2222) is not recorded')


def test_changed(keyscan, tmp_path):
    known = tmp_path / 'known_hosts'
    known.write_text(f'[127.0.0.1]:2222 ssh-ed25519 {OTHER}\n')
    result = run({'host': '127.0.0.1', 'port': 2222, 'known_hosts': str(known)}, FailJson)
    assert result['state'] == 'changed'
    assert 'is not the one recorded' in result['msg']


def test_no_answer(keyscan, tmp_path):
    keyscan.update(rc=1, out='', err='connect to 127.0.0.1 port 2222: Connection refused')
    result = run({'host': '127.0.0.1', 'port': 2222, 'known_hosts': str(tmp_path / 'k')}, FailJson)
    assert 'Could not read the SSH host key' in result['msg']
    assert 'Connection refused' in result['msg']
    assert 'state' not in result
