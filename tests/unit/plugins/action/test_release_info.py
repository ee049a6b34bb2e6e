# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the release_info action plugin (its lock option).

``_execute_module`` runs the real module in this process (exit_json / fail_json
patched, the Docker client a stand-in), so every test goes through plugin,
module and lock logic on real files and counts the module runs (SSH round trips).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.avatar_mgmt.ops.plugins.action.release_info import ActionModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock, _release_info
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_info
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness

HERE = _lock.controller_identity(os.getpid(), 'ctl')


class FakeClient:
    def close(self):
        pass


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)
    monkeypatch.setattr(_release_info, 'HAS_DOCKER', True)
    monkeypatch.setattr(_release_info, 'connect', lambda timeout=60: FakeClient())
    monkeypatch.setattr(_release_info, 'query_project', lambda client, name: {})


class Plugin:
    """An ActionModule for one task, with the module run in-process."""

    def __init__(self, args, check_mode=False):
        task = MagicMock()
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.action = 'avatar_mgmt.ops.release_info'
        connection = MagicMock()
        connection._shell.tmpdir = '/tmp/unused'
        self.action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock())
        self.action._controller = lambda: dict(HERE)
        self.action._execute_module = self.execute
        self.check_mode = check_mode
        self.calls = []

    def execute(self, module_name=None, module_args=None, task_vars=None, **_kwargs):
        assert module_name == 'avatar_mgmt.ops.release_info'
        self.calls.append(dict(module_args))
        return module_harness.run_module(
            release_info,
            dict(module_args, _ansible_check_mode=self.check_mode),
            (module_harness.ExitJson, module_harness.FailJson),
        )

    def run(self):
        return self.action.run(task_vars={'inventory_hostname': 'prod-1', 'awx_job_id': 77})


@pytest.fixture
def project(tmp_path):
    return str(tmp_path)


def lock_file(project):
    return Path(project) / '.deploy.lock'


def write_lock(project, controller):
    record = _lock.new_record(holder='bob', host='prod-1', version='v1.1.0', job_id='9', controller=controller)
    lock_file(project).write_bytes(_lock.encode_record(record))
    return record


def dead_controller():
    proc = subprocess.Popen(['true'])
    proc.wait()
    return dict(HERE, pid=proc.pid, pid_start=1)


def alive_controller():
    return dict(HERE, pid=1, pid_start=_lock.process_start(1))


def test_without_lock_the_module_only_runs(project):
    plugin = Plugin({'project_dir': project, 'project_name': 'p'})
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert 'lock' not in plugin.calls[0]
    assert result['changed'] is False
    assert not lock_file(project).exists()


def test_lock_is_one_module_run_with_the_controller_and_job(project):
    plugin = Plugin({'project_dir': project, 'project_name': 'p', 'lock': {'holder': 'alice', 'version': 'v1.2.0'}})
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert result['acquired'] is True
    data = json.loads(lock_file(project).read_text())
    assert data['controller'] == HERE
    assert data['host'] == 'prod-1'
    assert data['job_id'] == '77'
    assert result['lock']['job_id'] == '77'
    assert result['token'] == data['token']


def test_break_lock_removes_a_dead_runs_lock_then_reads(project):
    write_lock(project, dead_controller())
    plugin = Plugin({'project_dir': project, 'project_name': 'p', 'lock': {'holder': 'alice', 'break_lock': True}})
    result = plugin.run()
    assert len(plugin.calls) == 2
    assert plugin.calls[1]['lock']['_break_fingerprint'] == result['broken']['fingerprint']
    assert result['acquired'] is True
    assert result['broken']['holder'] == 'bob'
    assert "The removed lock's run: " in result['msg']
    assert result['agrees'] is False, 'the host was read after the lock was taken'
    assert json.loads(lock_file(project).read_text())['holder'] == 'alice'


def test_a_live_runs_lock_is_judged_and_left(project):
    record = write_lock(project, alive_controller())
    before = lock_file(project).read_bytes()
    plugin = Plugin(
        {
            'project_dir': project,
            'project_name': 'p',
            'lock': {'holder': 'alice', 'break_lock': True, 'force_hint': '-e compose_deploy_force_lock=true'},
        }
    )
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert result['failed'] is True
    assert result['stale'] is False
    assert 'does not remove it' in result['msg']
    assert f'The lock {lock_file(project)} is held by bob' in result['msg'], 'the default lock path is named'
    assert '-e compose_deploy_force_lock=true' in result['msg']
    assert 'agrees' not in result, 'nothing was read'
    assert lock_file(project).read_bytes() == before
    assert record['token'] not in repr(result)


def test_internal_lock_options_are_refused(project):
    plugin = Plugin({'project_dir': project, 'project_name': 'p', 'lock': {'_controller': {}}})
    with pytest.raises(AnsibleActionFail, match=r'lock\._controller are set by the action plugin'):
        plugin.run()
    assert plugin.calls == []
