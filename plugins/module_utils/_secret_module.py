# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An AnsibleModule whose log line on the managed host ("Invoked with ...", journald or syslog) holds no secret
nested in its options.

AnsibleModule logs each top-level option as ``str(value)`` and masks the secret values in that text. A secret
nested in a dict or list (an env file's ``content`` of release_info's ``compare`` or compose_switch's ``write``)
is a suboption marked no_log, but ``str()`` of its dict escapes its newlines (``\\n``), so the text never matches
the secret and a whole env file reached the host's journal. Here the options are masked as data first (Ansible's
``remove_values``, the same masking its results get), then logged. Values under a key named ``secret_headers`` (a
health check's, taken as a plain dict) count as secrets too, in the log line and in every result.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, remove_values

__all__ = ['SecretSafeModule', 'secret_header_values']


def secret_header_values(data):
    """The values of every ``secret_headers`` dict anywhere in ``data``, as strings."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == 'secret_headers' and isinstance(value, dict):
                found.extend(str(v) for v in value.values() if v not in (None, ''))
            else:
                found.extend(secret_header_values(value))
    elif isinstance(data, (list, tuple)):
        for item in data:
            found.extend(secret_header_values(item))
    return found


class SecretSafeModule(AnsibleModule):
    """AnsibleModule that masks nested secrets before its invocation is logged on the host."""

    def _load_params(self):
        super()._load_params()
        # As soon as the options are read: masked in every result from here on (a validation failure's included),
        # whether the invocation is logged or not.
        self.no_log_values.update(secret_header_values(self.params))

    def _log_invocation(self):
        params = self.params
        self.params = remove_values(params, self.no_log_values)
        try:
            super()._log_invocation()
        finally:
            self.params = params
