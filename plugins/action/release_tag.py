# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of avatar_mgmt.ops.release_tag: the resolution runs here, in the worker process.

release_tag asks a registry and changes nothing. When the task runs on the control node (the playbooks
delegate it to localhost: a local connection), it resolves here, in the worker, in the Python that runs
Ansible: no module payload, no new Python (on the sandbox the task went from 1.0-1.6 s to 0.16-0.22 s; the
registry answers in 0.04 s). The options are validated with the module's argument spec; the result is the
module's; the task's ``environment:`` (HTTPS_PROXY, NO_PROXY, a CA bundle) applies to the requests. A task
that runs on another host (its registry name, CA and network) runs the module there, as before.
"""

from __future__ import annotations

import contextlib
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_tag


@contextlib.contextmanager
def _environment(values):
    """``os.environ`` with ``values`` while the block runs (the worker serves this one task), then as it was."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        os.environ.update(values)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _runs_here(self):
        """Whether the task's connection is the control node itself (local)."""
        return getattr(self._connection, 'transport', None) in ('local', 'ansible.builtin.local')

    def _task_environment(self):
        """The task's (and its blocks') ``environment:``, merged and templated by Ansible as for a module."""
        merged = {}
        self._compute_environment_string(raw_environment_out=merged)
        return {str(k): str(v) for k, v in merged.items()}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self._runs_here():
            # On a managed host the module resolves with that host's name resolution, CA and routes.
            result.update(self._execute_module(module_name='avatar_mgmt.ops.release_tag', task_vars=task_vars))
            return result
        try:
            _validation, params = self.validate_argument_spec(
                argument_spec=_release_tag.ARGUMENT_SPEC, required_together=_release_tag.REQUIRED_TOGETHER
            )
        except AnsibleActionFail as exc:
            # The validator names the option; a value given for password is never in its message.
            return dict(result, failed=True, changed=False, msg=f'release_tag: {exc.message}')
        with _environment(self._task_environment()):
            result.update(_release_tag.resolve(params))
        return result
