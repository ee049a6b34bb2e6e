# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.deploy_lock module glue (exit_json / fail_json patched to raise)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock
from ansible_collections.avatar_mgmt.ops.plugins.modules import deploy_lock
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson

RESULT_KEYS = {'token', 'acquired', 'released', 'held', 'lock', 'stale', 'waited', 'broken', 'msg', 'changed'}


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


def run(args, expect):
    return module_harness.run_module(deploy_lock, args, expect)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / '.deploy.lock')


CONTROLLER = {'host': 'ctl', 'pid': 4242, 'pid_start': 99, 'boot_id': 'b-1'}


def take(path, **kwargs):
    args = {
        'path': path,
        'holder': 'alice',
        'version': 'v1.2.0',
        'job_id': '7',
        '_controller': CONTROLLER,
        '_inventory_host': 'prod-1',
    }
    args.update(kwargs)
    return run(args, ExitJson)


def test_take_records_what_the_controller_passed(path):
    result = take(path)
    assert set(result) == RESULT_KEYS
    assert result['changed'] is True
    assert result['acquired'] is True
    assert result['stale'] is None
    data = json.loads(Path(path).read_text())
    assert data['controller'] == CONTROLLER
    assert data['host'] == 'prod-1'
    assert data['token'] == result['token']
    assert result['lock']['controller'] == CONTROLLER


def test_held_lock_fails_without_leaking_the_token(path):
    owner = take(path)['token']
    result = run({'path': path, 'holder': 'bob', 'break_hint': '-e my_break=true'}, FailJson)
    assert result['failed'] is True
    assert result['changed'] is False
    assert result['held'] is True
    assert result['acquired'] is False
    assert result['lock']['holder'] == 'alice'
    assert owner not in repr(result)
    assert '-e my_break=true' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')


@pytest.mark.parametrize('state', ['present', 'absent'])
def test_check_mode_changes_nothing(path, state):
    if state == 'absent':
        token = take(path)['token']
        before = Path(path).read_bytes()
        result = run({'path': path, 'state': 'absent', 'token': token, '_ansible_check_mode': True}, ExitJson)
        assert Path(path).read_bytes() == before
    else:
        result = run({'path': path, '_ansible_check_mode': True}, ExitJson)
        assert not os.path.exists(path)
    assert result['changed'] is True
    assert result['acquired'] is False
    assert result['released'] is False


def test_check_mode_fails_when_held_like_a_real_run(path):
    take(path)
    result = run({'path': path, '_ansible_check_mode': True}, FailJson)
    assert 'held by alice' in result['msg']


def test_release_by_owner_and_by_non_owner(path):
    token = take(path)['token']
    before = Path(path).read_bytes()
    other = run({'path': path, 'state': 'absent', 'token': 'e' * 32}, ExitJson)
    assert other['changed'] is False
    assert other['released'] is False
    assert 'held by alice' in other['msg']
    assert Path(path).read_bytes() == before
    mine = run({'path': path, 'state': 'absent', 'token': token}, ExitJson)
    assert mine['changed'] is True
    assert mine['released'] is True
    assert mine['held'] is False
    assert not os.path.exists(path)
    again = run({'path': path, 'state': 'absent', 'token': token}, ExitJson)
    assert again['changed'] is False


def test_release_with_force(path):
    take(path)
    result = run({'path': path, 'state': 'absent', 'force': True}, ExitJson)
    assert result['released'] is True
    assert not os.path.exists(path)


def test_query(path):
    assert run({'path': path, 'state': 'query'}, ExitJson)['held'] is False
    token = take(path)['token']
    result = run({'path': path, 'state': 'query'}, ExitJson)
    assert result['held'] is True
    assert result['changed'] is False
    assert result['lock']['holder'] == 'alice'
    assert token not in repr(result)


def test_break_fingerprint_then_take(path):
    take(path, holder='bob')
    fingerprint = run({'path': path, 'state': 'query'}, ExitJson)['lock']['fingerprint']
    result = take(path, _break_fingerprint=fingerprint)
    assert result['acquired'] is True
    assert result['broken']['holder'] == 'bob'


def test_missing_directory_fails_with_cause(tmp_path):
    result = run({'path': str(tmp_path / 'gone' / '.deploy.lock')}, FailJson)
    assert '(ENOENT)' in result['msg']
    assert result['changed'] is False
    assert set(result) >= RESULT_KEYS - {'changed'}


def test_disk_full_fails_with_cause(path, monkeypatch):
    def full(*_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_lock.os, 'link', full)
    result = run({'path': path}, FailJson)
    monkeypatch.undo()
    assert f'cannot create the lock {path}: No space left on device (ENOSPC)' in result['msg']
    assert os.listdir(os.path.dirname(path)) == []


def test_negative_timeout_is_refused(path):
    result = run({'path': path, 'timeout': -5}, FailJson)
    assert 'timeout must be 0 or more' in result['msg']
    assert not os.path.exists(path)


def test_bad_state_is_refused(path):
    result = run({'path': path, 'state': 'locked'}, FailJson)
    assert 'state' in result['msg']


def test_documentation_matches_argument_spec(monkeypatch):
    captured = module_harness.module_kwargs(monkeypatch, deploy_lock)
    spec = captured['argument_spec']
    assert captured['supports_check_mode'] is True
    doc = module_harness.assert_documented_options(deploy_lock, spec)
    assert spec['token']['no_log'] is True
    assert set(doc['attributes']) >= {'check_mode', 'diff_mode', 'idempotent'}
    returned = module_harness.assert_documented_returns(deploy_lock)
    assert set(returned) == RESULT_KEYS - {'changed'} | {'stale_reason'}
    assert set(returned['lock']['contains']) >= set(_lock.public_view(_lock.parse_lock(b'{}'))) - {'problem'}
