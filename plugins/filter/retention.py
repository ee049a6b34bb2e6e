# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backup filters: backup_retention (documented in backup_retention.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._retention import select_backups


def _count(value):
    """Counts given as extra vars (``-e daily=7``) arrive as strings; accept decimal digits."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value


def backup_retention(backups, daily=7, weekly=4, monthly=6, now=None, other=None):
    """Grandfather-father-son retention: ``{'keep': [...], 'delete': [...], 'reasons': {...}}``."""
    try:
        return select_backups(
            backups,
            _count(daily),
            _count(weekly),
            _count(monthly),
            now=now,
            other=None if other is None else _count(other),
        )
    except ValueError as exc:
        raise AnsibleFilterError(f'backup_retention: {exc}')


class FilterModule:
    """Backup filters."""

    def filters(self):
        return {'backup_retention': backup_retention}
