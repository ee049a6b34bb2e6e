# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters on compose documents (see compose_image_changes.yml)."""

from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._compose import image_changes


def compose_image_changes(new, old=None):
    try:
        return image_changes(new, old)
    except ValueError as exc:
        raise AnsibleFilterError(f"compose_image_changes: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"compose_image_changes": compose_image_changes}
