# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of avatar_mgmt.ops.deploy_lock.

Runs in the controller's worker process (a fork of ansible-playbook, so
``os.getppid()`` is the run that takes the lock).  It adds the controller's
identity and the inventory host to the module arguments, runs the module, and
when the result shows another run's lock it judges on the controller whether
that run is alive (only this controller can look at its processes), then says
so in ``stale`` and ``msg``.  The logic is shared with the ``lock`` option of
avatar_mgmt.ops.release_info (plugin_utils/_lock_action.py).

break_lock / force cost a second module run only when there is a lock to
break: the first run tries to take the lock and returns the lock that is
held; the second removes exactly that lock (by fingerprint) and takes it.
"""

from __future__ import annotations

import os
import socket

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._lock import controller_identity
from ansible_collections.avatar_mgmt.ops.plugins.plugin_utils._lock_action import INTERNAL, run_lock


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _controller(self):
        return controller_identity(os.getppid(), socket.gethostname())

    def _run_module(self, args, task_vars):
        return self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)

        args = dict(self._task.args)
        given = [key for key in args if key in INTERNAL]
        if given:
            raise AnsibleActionFail(f"{', '.join(given)} are set by the action plugin; do not pass them.")
        outcome = run_lock(
            lambda lock_args: self._run_module(lock_args, task_vars),
            args,
            task_vars,
            self._controller(),
            state=str(args.get('state', 'present')),
        )
        result.update(outcome)
        return result
