# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of avatar_mgmt.ops.deploy_lock.

Runs in the controller's worker process (a fork of ansible-playbook, so
``os.getppid()`` is the run that takes the lock).  It adds the controller's
identity and the inventory host to the module arguments, runs the module, and
when the result shows another run's lock it judges on the controller whether
that run is alive (only this controller can look at its processes), then says
so in ``stale`` and ``msg``.  The plugin is the one the ``lock`` option of
avatar_mgmt.ops.release_info has too (plugin_utils/_lock_action.py).

break_lock / force cost a second module run only when there is a lock to
break: the first run tries to take the lock and returns the lock that is
held; the second removes exactly that lock (by fingerprint) and takes it.
"""

from __future__ import annotations

from ansible_collections.avatar_mgmt.ops.plugins.plugin_utils._lock_action import LockAction


class ActionModule(LockAction):
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        args = dict(self._task.args)
        # The task's options are the lock arguments.
        return self.run_task(tmp, task_vars, args, dict, state=str(args.get('state', 'present')))
