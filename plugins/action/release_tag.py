# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of avatar_mgmt.ops.release_tag: the resolution runs here, in the worker process.

release_tag asks a registry and changes nothing; it runs on the control node (the playbooks
delegate it to localhost). Running it in the worker saves building and starting a module (about
0.5 s of a deploy's 1 s for this task on the sandbox, where the registry answers in 0.04 s). The
options are validated with the module's argument spec; the result is the module's.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_tag


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        try:
            _validation, params = self.validate_argument_spec(
                argument_spec=_release_tag.ARGUMENT_SPEC, required_together=_release_tag.REQUIRED_TOGETHER
            )
        except AnsibleActionFail as exc:
            # The validator names the option; a value given for password is never in its message.
            return dict(result, failed=True, changed=False, msg=f'release_tag: {exc.message}')
        result.update(_release_tag.resolve(params))
        return result
