# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The stack a backup is taken of or restored into (backup_create, backup_restore); the argument
    # spec that goes with it is _backup.stack_argument_spec().
    DOCUMENTATION = r'''
options:
  project_dir:
    description: The stack's deploy folder (the compose file's folder, and the root of the archived paths).
    type: path
    required: true
  project_name:
    description: Compose project name.
    type: str
    required: true
  compose_file:
    description: Compose file name in O(project_dir).
    type: str
    required: true
  db_service:
    description: Compose service of the PostgreSQL database.
    type: str
    default: db
  db_user:
    description:
      - Database user for C(pg_dump), C(pg_restore) and C(psql); the owner of a database that a restore recreates.
    type: str
    required: true
  db_name:
    description: Database name.
    type: str
    required: true
  archives:
    description:
      - The archives of a backup, in order - each a C(tar -czf) of folders under O(project_dir).
      - A restore empties those folders (except what O(archives[].exclude) left out) before it extracts the archive.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: File name, ending in C(.tar.gz).
        type: str
        required: true
      paths:
        description: Folders relative to O(project_dir).
        type: list
        elements: str
        required: true
      exclude:
        description: Patterns left out (C(tar --exclude)), relative to O(project_dir); a restore keeps them.
        type: list
        elements: str
        default: []
'''
