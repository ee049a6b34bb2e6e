# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ssh_public_key filter (documented in ssh_public_key.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _sshkey


def ssh_public_key(private_key, comment=''):
    """The public key line of an OpenSSH private key."""
    if not isinstance(private_key, str):
        raise AnsibleFilterError(f'ssh_public_key: the private key must be a string, got {type(private_key).__name__}')
    try:
        return _sshkey.public_key(str(private_key), str(comment or ''))
    except ValueError as exc:
        raise AnsibleFilterError(f'ssh_public_key: {exc}') from None


class FilterModule:
    """ssh_public_key."""

    def filters(self):
        return {'ssh_public_key': ssh_public_key}
