# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of avatar_mgmt.ops.deploy_lock.

On the control node it names the run that takes the lock (host, the
ansible-playbook PID, its start time, the boot id; the AWX user, schedule and
job when there are some), runs the module on the host, and, when the lock is
held, judges from here whether the run that holds it is gone. With
``break_lock`` a lock that is not provably alive is removed (exactly that lock,
not a newer one) and taken; with ``force`` any lock is.
"""

from __future__ import annotations

import getpass
import os
import socket

from ansible.plugins.action import ActionBase
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock

MODULE = 'avatar_mgmt.ops.deploy_lock'


def controller_identity():
    """The run as the lock records it: this control node and the ansible-playbook process."""
    pid = os.getppid()  # the worker is a fork of the ansible-playbook process
    return {'host': socket.gethostname(), 'pid': pid, 'pid_start': _lock.process_start(pid), 'boot_id': _lock.boot_id()}


def run_operator(task_vars):
    """Who runs this: the AWX user, the AWX schedule, else the local user."""
    for name in ('awx_user_name', 'tower_user_name'):
        if task_vars.get(name):
            return str(task_vars[name])
    for name in ('awx_schedule_name', 'tower_schedule_name'):
        if task_vars.get(name):
            return f'schedule:{task_vars[name]}'
    try:
        return os.environ.get('USER') or getpass.getuser()
    except (KeyError, OSError):
        return f'uid:{os.getuid()}'


def _run_text(lock):
    run = (lock or {}).get('controller') or {}
    return f"pid {run.get('pid', '?')} on {run.get('host', '?')}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _module(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        super().run(tmp, task_vars)
        args = dict(self._task.args)
        state = args.get('state', 'present')
        here = controller_identity()
        if state == 'present':
            if not args.get('holder'):
                args['holder'] = run_operator(task_vars)
            if not args.get('job_id'):
                args['job_id'] = str(task_vars.get('awx_job_id') or task_vars.get('tower_job_id') or '')
            args['controller'] = here
            args['inventory_host'] = str(task_vars.get('inventory_hostname', ''))
        result = self._module(args, task_vars)
        if state == 'absent' or not result.get('held'):
            return result

        stale = _lock.staleness(result.get('lock'), here)
        result['stale'] = stale
        if state == 'query' or not result.get('failed'):
            return result

        lock = result.get('lock') or {}
        hint = args.get('break_hint') or '-e compose_deploy_break_lock=true'
        # break_lock removes a lock that is not provably alive; force removes any.
        wants_break = bool(args.get('force')) or (bool(args.get('break_lock')) and stale is not False)
        if wants_break and not self._task.check_mode:
            removed = self._module({'path': args['path'], 'state': 'absent', 'force': True,
                                    'expected_token_hash': lock.get('token_hash', '')}, task_vars)
            if removed.get('released'):
                again = self._module(args, task_vars)
                again['broken'] = removed.get('lock') or lock
                again['stale'] = stale
                if again.get('acquired'):
                    again['msg'] = (f"Removed the lock of {_lock.describe(lock)} "
                                    f"({'its run was gone' if stale else 'on request'}) and took it.")
                return again
        base = result.get('msg', '')
        if stale is True:
            result['msg'] = (f'{base.rsplit(" Wait for", 1)[0]} It is stale: the run that took it ({_run_text(lock)}) '
                             f'is gone. Run again with {hint} to remove it. Nothing was changed.')
        elif stale is False:
            extra = (' break_lock does not remove a live run\'s lock: add -e compose_deploy_force_lock=true only if '
                     'you are sure that run must be stopped.') if args.get('break_lock') else ''
            result['msg'] = (f'{base.rsplit(" Wait for", 1)[0]} That run ({_run_text(lock)}) is alive: wait for it to '
                             f'finish.{extra} Nothing was changed.')
        else:
            result['msg'] = (f'{base.rsplit(" Nothing was changed.", 1)[0]} Whether its run is still alive cannot be told '
                             'from this control node (it was taken from another one, or by an older version of this '
                             'collection): check before breaking it. Nothing was changed.')
        return result
