# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of avatar_mgmt.ops.release_info.

Without the ``lock`` option it only runs the module.  With it, the lock is
taken as avatar_mgmt.ops.deploy_lock takes it (the same plugin,
plugin_utils/_lock_action.py): the controller's identity and the inventory
host are added to ``lock``, a held lock is judged on the controller
(``stale``), and break_lock / force remove a lock with a second module run
only when there is one to break.
"""

from __future__ import annotations

import os

from ansible_collections.avatar_mgmt.ops.plugins.plugin_utils._lock_action import LockAction


class ActionModule(LockAction):
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        args = dict(self._task.args)
        lock = args.get('lock')
        if not isinstance(lock, dict):
            # No lock asked for (or one the module's argument validation refuses): only run the module.
            result = super().run(tmp, task_vars)
            result.update(self._run_module(args, task_vars))
            return result
        # The lock file as the module defaults it, so that messages written here name it too.
        lock = dict(lock)
        lock['path'] = (
            lock.get('path') or args.get('lock_path') or os.path.join(str(args.get('project_dir', '')), '.deploy.lock')
        )
        return self.run_task(tmp, task_vars, lock, lambda lock_args: dict(args, lock=lock_args), option='lock.')
