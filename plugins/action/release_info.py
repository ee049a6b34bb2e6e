# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of avatar_mgmt.ops.release_info.

Without the ``lock`` option it only runs the module.  With it, the lock is
taken as avatar_mgmt.ops.deploy_lock takes it (plugin_utils/_lock_action.py):
the controller's identity and the inventory host are added to ``lock``, a held
lock is judged on the controller (``stale``), and break_lock / force remove a
lock with a second module run only when there is one to break.
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
        lock = args.get('lock')
        if not isinstance(lock, dict):
            # No lock asked for (or one the module's argument validation refuses): only run the module.
            result.update(self._run_module(args, task_vars))
            return result
        given = [key for key in lock if key in INTERNAL]
        if given:
            raise AnsibleActionFail(f"lock.{', lock.'.join(given)} are set by the action plugin; do not pass them.")
        # The lock file as the module defaults it, so that messages written here name it too.
        lock = dict(lock)
        lock['path'] = (
            lock.get('path') or args.get('lock_path') or os.path.join(str(args.get('project_dir', '')), '.deploy.lock')
        )
        outcome = run_lock(
            lambda lock_args: self._run_module(dict(args, lock=lock_args), task_vars),
            lock,
            task_vars,
            self._controller(),
        )
        result.update(outcome)
        return result
