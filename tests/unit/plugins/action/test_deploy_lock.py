# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the deploy_lock action plugin.

``_execute_module`` runs the real module in this process (exit_json /
fail_json patched), so every test goes through plugin, module and lock logic
on real files, and counts the module runs (SSH round trips).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.avatar_mgmt.ops.plugins.action.deploy_lock import ActionModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock
from ansible_collections.avatar_mgmt.ops.plugins.modules import deploy_lock
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness

HERE = _lock.controller_identity(os.getpid(), 'ctl')


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


class Plugin:
    """An ActionModule for one task, with the module run in-process."""

    def __init__(self, args, check_mode=False):
        task = MagicMock()
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.action = 'avatar_mgmt.ops.deploy_lock'
        connection = MagicMock()
        connection._shell.tmpdir = '/tmp/unused'
        self.action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock())
        self.action._controller = lambda: dict(HERE)
        self.action._execute_module = self.execute
        self.check_mode = check_mode
        self.calls = []

    def execute(self, module_name=None, module_args=None, task_vars=None, **_kwargs):
        assert module_name == 'avatar_mgmt.ops.deploy_lock'
        self.calls.append(dict(module_args))
        return module_harness.run_module(
            deploy_lock,
            dict(module_args, _ansible_check_mode=self.check_mode),
            (module_harness.ExitJson, module_harness.FailJson),
        )

    def run(self):
        return self.action.run(task_vars={'inventory_hostname': 'prod-1'})


def write_lock(path, holder='bob', controller=None, **kwargs):
    record = _lock.new_record(
        holder=holder,
        host='prod-1',
        version='v1.1.0',
        job_id='9',
        controller=HERE if controller is None else controller,
        **kwargs,
    )
    Path(path).write_bytes(_lock.encode_record(record))
    return record


def dead_controller():
    proc = subprocess.Popen(['true'])
    proc.wait()
    return dict(HERE, pid=proc.pid, pid_start=1)


OTHER_HOST = dict(HERE, host='ctl-2')


def alive_controller():
    return dict(HERE, pid=1, pid_start=_lock.process_start(1))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / '.deploy.lock')


def test_common_path_is_one_module_run(path):
    plugin = Plugin({'path': path, 'holder': 'alice', 'version': 'v1.2.0'})
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert result['acquired'] is True
    assert result['changed'] is True
    assert plugin.calls[0]['_controller'] == HERE
    assert plugin.calls[0]['_inventory_host'] == 'prod-1'
    data = json.loads(Path(path).read_text())
    assert data['controller'] == HERE
    assert data['host'] == 'prod-1'


def test_break_lock_with_no_lock_is_one_module_run(path):
    plugin = Plugin({'path': path, 'break_lock': True})
    assert plugin.run()['acquired'] is True
    assert len(plugin.calls) == 1


@pytest.mark.parametrize(
    'controller, stale, fragment',
    [
        (dead_controller(), True, 'It is stale: the run that took it (pid'),
        (alive_controller(), False, 'held by a live run (pid 1 on ctl)'),
        (OTHER_HOST, None, 'taken from another controller (ctl-2)'),
        ({}, None, 'does not record which controller run took it'),
    ],
)
def test_held_lock_is_judged_on_the_controller(path, controller, stale, fragment):
    record = write_lock(path, controller=controller)
    plugin = Plugin({'path': path, 'holder': 'alice', 'break_hint': '-e compose_deploy_break_lock=true'})
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert result['failed'] is True
    assert result['stale'] is stale
    assert fragment in result['msg']
    assert 'held by bob (host prod-1, deploy v1.1.0, AWX job 9, since' in result['msg']
    assert '-e compose_deploy_break_lock=true' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert record['token'] not in repr(result)


@pytest.mark.parametrize('controller', [dead_controller(), OTHER_HOST, {}])
def test_break_lock_removes_a_lock_that_is_not_provably_alive(path, controller):
    write_lock(path, controller=controller)
    plugin = Plugin({'path': path, 'holder': 'alice', 'break_lock': True, 'timeout': 30})
    result = plugin.run()
    assert len(plugin.calls) == 2
    assert plugin.calls[0]['timeout'] == 0  # no waiting for a lock that is about to be broken
    assert plugin.calls[1]['_break_fingerprint'] == result['broken']['fingerprint']
    assert result['acquired'] is True
    assert result['broken']['holder'] == 'bob'
    assert json.loads(Path(path).read_text())['holder'] == 'alice'


def test_legacy_lock_is_broken_on_request(path):
    Path(path).write_text('{"holder": "bob@ops", "since": "2024-05-01T10:00:00Z", "action": "deploy", "version": ""}')
    result = Plugin({'path': path, 'break_lock': True}).run()
    assert result['acquired'] is True
    assert result['broken']['format'] == 'legacy'


def test_break_lock_refuses_a_live_run_without_force(path):
    write_lock(path, controller=alive_controller())
    before = Path(path).read_bytes()
    plugin = Plugin({'path': path, 'break_lock': True, 'force_hint': '-e compose_deploy_force_lock=true'})
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert result['failed'] is True
    assert result['stale'] is False
    assert 'does not remove it' in result['msg']
    assert '-e compose_deploy_force_lock=true' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert Path(path).read_bytes() == before


def test_break_lock_waits_for_a_live_run_when_asked_to(path):
    write_lock(path, controller=alive_controller())
    plugin = Plugin({'path': path, 'break_lock': True, 'timeout': 1})
    result = plugin.run()
    assert len(plugin.calls) == 2
    assert '_break_fingerprint' not in plugin.calls[1]
    assert result['failed'] is True
    assert result['waited'] >= 1
    assert 'Waited 1 s' in result['msg']
    assert result['stale'] is False


def test_force_removes_a_live_run_lock(path):
    write_lock(path, controller=alive_controller())
    plugin = Plugin({'path': path, 'holder': 'alice', 'force': True})
    result = plugin.run()
    assert len(plugin.calls) == 2
    assert result['acquired'] is True
    assert result['broken']['holder'] == 'bob'


def test_a_lock_that_changes_while_being_broken_is_left_alone(path):
    write_lock(path, controller=dead_controller())
    plugin = Plugin({'path': path, 'holder': 'alice', 'break_lock': True})
    original = plugin.execute

    def execute(**kwargs):
        if kwargs['module_args'].get('_break_fingerprint'):
            write_lock(path, holder='carol', controller=alive_controller())  # carol's run came first
        return original(**kwargs)

    plugin.action._execute_module = execute
    result = plugin.run()
    assert result['failed'] is True
    assert result['broken'] == {}
    assert result['lock']['holder'] == 'carol'
    assert result['stale'] is False
    assert result['msg'].startswith('The lock changed while it was being broken, so it was left alone. ')
    assert 'held by carol' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert json.loads(Path(path).read_text())['holder'] == 'carol'


def test_check_mode_break_changes_nothing(path):
    write_lock(path, controller=dead_controller())
    before = Path(path).read_bytes()
    result = Plugin({'path': path, 'break_lock': True}, check_mode=True).run()
    assert result['changed'] is True
    assert result['acquired'] is False
    assert result['broken']['holder'] == 'bob'
    assert Path(path).read_bytes() == before


def test_check_mode_held_fails_like_a_real_run(path):
    write_lock(path, controller=dead_controller())
    result = Plugin({'path': path}, check_mode=True).run()
    assert result['failed'] is True
    assert result['stale'] is True


def test_query_and_absent_report_staleness(path):
    write_lock(path, controller=dead_controller())
    query = Plugin({'path': path, 'state': 'query'}).run()
    assert query['held'] is True
    assert query['stale'] is True
    assert query['changed'] is False
    other = Plugin({'path': path, 'state': 'absent', 'token': 'a' * 32}).run()
    assert other['released'] is False
    assert other['stale'] is True
    assert other['msg'].endswith('Nothing was changed.')
    assert 'The run that holds it is gone' in other['msg']


def test_take_then_release_round_trip(path):
    taken = Plugin({'path': path, 'holder': 'alice'}).run()
    released = Plugin({'path': path, 'state': 'absent', 'token': taken['token']}).run()
    assert released['released'] is True
    assert released['changed'] is True
    assert not os.path.exists(path)


def test_a_second_take_in_the_same_run_says_so(path, monkeypatch):
    monkeypatch.setattr(os, 'getppid', os.getpid)
    plugin = Plugin({'path': path})
    plugin.action._controller = ActionModule._controller.__get__(plugin.action)
    plugin.run()
    again = Plugin({'path': path})
    again.action._controller = ActionModule._controller.__get__(again.action)
    result = again.run()
    assert result['failed'] is True
    assert 'This very run took it earlier' in result['msg']


def test_internal_options_cannot_be_passed(path):
    with pytest.raises(AnsibleActionFail, match='_controller'):
        Plugin({'path': path, '_controller': {}}).run()


@pytest.mark.parametrize(
    'task_vars, holder, job_id',
    [
        ({'awx_user_name': 'alice', 'awx_job_id': 42}, 'alice', '42'),
        ({'awx_schedule_name': 'nightly backup', 'awx_job_id': 7}, 'schedule:nightly backup', '7'),
        ({'tower_user_name': 'carol', 'tower_job_id': 3}, 'carol', '3'),
        ({}, 'local-operator', ''),
    ],
)
def test_the_run_names_the_holder_and_job(tmp_path, monkeypatch, task_vars, holder, job_id):
    monkeypatch.setenv('USER', 'local-operator')
    path = str(tmp_path / '.deploy.lock')
    plugin = Plugin({'path': path, 'action': 'backup'})
    result = plugin.action.run(task_vars=dict(task_vars, inventory_hostname='prod-1'))
    assert result['acquired']
    record = json.loads(Path(path).read_text())
    assert record['holder'] == holder
    assert record['job_id'] == job_id


def test_an_explicit_holder_wins(tmp_path):
    path = str(tmp_path / '.deploy.lock')
    plugin = Plugin({'path': path, 'holder': 'ops-bot', 'job_id': '99'})
    plugin.action.run(task_vars={'inventory_hostname': 'prod-1', 'awx_user_name': 'alice', 'awx_job_id': 1})
    record = json.loads(Path(path).read_text())
    assert (record['holder'], record['job_id']) == ('ops-bot', '99')


def test_holder_without_user_in_the_environment_is_the_login_name(tmp_path, monkeypatch):
    """$USER unset (cron, systemd, some CI runners): the holder is what `id -un` says, never "unknown"."""
    for name in ('USER', 'LOGNAME', 'LNAME', 'USERNAME'):
        monkeypatch.delenv(name, raising=False)
    expected = subprocess.run(['id', '-un'], capture_output=True, text=True, check=True).stdout.strip()
    path = str(tmp_path / '.deploy.lock')
    result = Plugin({'path': path, 'action': 'deploy'}).action.run(task_vars={'inventory_hostname': 'prod-1'})
    assert result['acquired']
    holder = json.loads(Path(path).read_text())['holder']
    assert holder == expected
    assert 'unknown' not in holder


@pytest.mark.parametrize('options', [{'break_lock': True}, {'force': True}])
def test_break_only_leaves_a_lock_other_than_the_judged_one(path, options):
    """unlock.yml judges the lock with state=query, then takes it over: a lock another run took in between (the
    judged one released) is not the one the operator asked to remove, even with force."""
    write_lock(path, controller=dead_controller())
    query = Plugin({'path': path, 'state': 'query'}).run()
    fingerprint = query['lock']['fingerprint']
    write_lock(path, holder='carol', controller=dead_controller())  # the judged run ended; carol's took the lock
    plugin = Plugin({'path': path, 'holder': 'alice', 'break_only': fingerprint, **options})
    result = plugin.run()
    assert len(plugin.calls) == 1
    assert result['failed'] is True
    assert result['acquired'] is False
    assert result['broken'] == {}
    assert result['lock']['holder'] == 'carol'
    assert result['msg'].startswith('The lock changed since it was read, so it was left alone. ')
    assert result['msg'].endswith('Nothing was changed.')
    assert json.loads(Path(path).read_text())['holder'] == 'carol'


def test_break_only_removes_the_judged_lock(path):
    write_lock(path, controller=dead_controller())
    query = Plugin({'path': path, 'state': 'query'}).run()
    plugin = Plugin({'path': path, 'holder': 'alice', 'break_lock': True, 'break_only': query['lock']['fingerprint']})
    result = plugin.run()
    assert result['acquired'] is True
    assert result['broken']['holder'] == 'bob'
    assert json.loads(Path(path).read_text())['holder'] == 'alice'
