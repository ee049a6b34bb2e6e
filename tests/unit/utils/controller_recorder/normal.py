# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test-only action plugin: records the final arguments of every awx.awx task instead of running it.

ansible-core runs a module that has no action plugin of its own through ``ansible.legacy.normal``,
which a folder in ANSIBLE_ACTION_PLUGINS may replace. By then the task executor has done all the
rendering (loop item, variables, ``omit``, module_defaults), so ``self._task.args`` is exactly what
the module would receive. For an ``awx.awx`` module this plugin appends ``{"action", "args"}`` as
one JSON line to the file named by AVATAR_CONTROLLER_RECORD and returns unchanged; every other
module runs as usual (``release_tag`` really asks its registry).
"""

from __future__ import annotations

import json
import os

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Record awx.awx calls; run everything else."""

    def run(self, tmp=None, task_vars=None):
        action = self._task.resolved_action or self._task.action
        if action.startswith('awx.awx.'):
            record = {'action': action, 'args': self._task.args}
            with open(os.environ['AVATAR_CONTROLLER_RECORD'], 'a', encoding='utf-8') as handle:
                handle.write(json.dumps(record, sort_keys=True) + '\n')
            return {'changed': False, 'msg': 'recorded, not run'}
        result = super().run(tmp, task_vars)
        result.update(self._execute_module(task_vars=task_vars))
        return result
