# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters of the backup role (see backup_psql_report.yml, backup_file_facts.yml, backup_count_mismatches.yml)."""

from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._backup import (
    count_mismatches,
    file_facts,
    file_mismatches,
    list_line,
    parse_psql_report,
)


def _wrap(name, func):
    def filter_func(*args):
        try:
            return func(*args)
        except (ValueError, KeyError, TypeError) as exc:
            raise AnsibleFilterError(f"{name}: {exc}") from exc

    return filter_func


class FilterModule:
    def filters(self):
        return {
            "backup_psql_report": _wrap("backup_psql_report", parse_psql_report),
            "backup_file_facts": _wrap("backup_file_facts", file_facts),
            "backup_count_mismatches": _wrap("backup_count_mismatches", count_mismatches),
            "backup_file_mismatches": _wrap("backup_file_mismatches", file_mismatches),
            "backup_list_line": _wrap("backup_list_line", list_line),
        }
