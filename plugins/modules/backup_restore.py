#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_restore
short_description: Restore a backup of the stack's database and files in one call, putting the safety backup back on failure
version_added: 0.1.0
description:
  - Restores one backup taken by M(avatar_mgmt.ops.backup_create) (C(db.dump), the archives, C(manifest.json)) on the
    host in a single module run.
  - B(Checks first) - chooses the backup (O(id=latest) is the newest backup whose manifest kind is C(scheduled); a
    manifest without a kind counts as scheduled, so a restore's own safety backup is never the next C(latest)),
    compares every file of it, and of the safety backup, with the sha256 and size of its manifest, and finds the
    running database container. A refusal names the damaged file and changes nothing.
  - B(Restore) - stops C(api) and C(directus) (and C(proxy) when its data is restored) when they run, recreates the
    database empty and streams C(db.dump) into C(pg_restore --exit-on-error) through C(docker exec -i) (nothing is
    written inside the container), compares the restored row counts with the manifest's, empties the folders of each
    restored archive (what the archive excluded stays) and extracts it with its owners, then starts the stopped
    services again.
  - B(Recovery) - on any failure after the database or a folder was touched, the safety backup O(safety_path) is
    restored the same way and checked the same way (its row counts), the services are started, and the module fails
    with a message that names the error, the safety backup, whether the previous data is back, and the command to retry.
    When the safety restore fails too, the message says so and gives both errors.
extends_documentation_fragment:
  - avatar_mgmt.ops.backup_stack
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Chooses and checks the backup (checksums, database container) and reports what it would restore.
  diff_mode:
    support: none
    description: The database and folders are replaced as a whole.
  idempotent:
    support: none
    description: Every run replaces the data again (and stops and starts the services).
options:
  path:
    description:
      - The backup's folder. Mutually exclusive with O(id); one of them is required.
    type: path
  backup_dir:
    description: The folder of the backups, where O(id) is looked up.
    type: path
  id:
    description:
      - The backup's id (C(YYYYMMDDTHHMMSSZ)) in O(backup_dir), or V(latest) for the newest scheduled backup there.
    type: str
  safety_path:
    description:
      - The folder of a backup of the state before this restore, put back when the restore fails after it touched
        the data. Checked like the backup before anything changes (not in check mode). Empty - no recovery.
    type: path
    default: ''
  tree:
    description:
      - A folder holding the archived folders as they were (C(directus/uploads), C(jc21/data) ... relative to it) rather
        than archives - the project folder of a snapshot restored from the off-host repository
        (M(avatar_mgmt.ops.backup_offsite) O(avatar_mgmt.ops.backup_offsite#module:action=restore)). The folders are then
        copied from it with their owners, and only the files of the manifest that are not archives (C(db.dump)) are
        checked against it. Empty - the archives of the backup's folder.
    type: path
    default: ''
  restore:
    description:
      - What to restore. V(directus) and V(proxy) are the archives C(directus.tar.gz) and C(proxy.tar.gz) of
        O(archives); a part the backup does not hold is left as it is.
    type: list
    elements: str
    choices: [db, directus, proxy]
    default: [db, directus, proxy]
  environment:
    description: Environment name, used in the retry command of a failure message (C(-e confirm_restore=<environment>)).
    type: str
    required: true
  playbook:
    description: The playbook named in the retry command of a failure message.
    type: str
    default: restore.yml
seealso:
  - module: avatar_mgmt.ops.backup_create
'''

EXAMPLES = r'''
- name: Check what would be restored (nothing changes)
  avatar_mgmt.ops.backup_restore:
    backup_dir: /var/backups/avatar-mgmt/production
    id: latest
    project_dir: /opt/deploy-avatar-prod
    project_name: avatar-prod
    compose_file: docker-compose.prod.yml
    db_user: directus
    db_name: directus
    environment: production
  check_mode: true
  become: true
  register: plan

- name: Restore it, the safety backup put back on failure
  avatar_mgmt.ops.backup_restore:
    path: "{{ plan.path }}"
    safety_path: /var/backups/avatar-mgmt/production/20261201T101500Z
    archives:
      - {name: directus.tar.gz, paths: [directus/uploads, directus/extensions, directus/schemas]}
      - {name: proxy.tar.gz, paths: [jc21/data, jc21/letsencrypt], exclude: [jc21/data/logs/*]}
    project_dir: /opt/deploy-avatar-prod
    project_name: avatar-prod
    compose_file: docker-compose.prod.yml
    db_user: directus
    db_name: directus
    environment: production
  become: true
'''

RETURN = r'''
id:
  description: The id of the backup restored (or, in check mode, that would be).
  returned: always
  type: str
  sample: 20261128T020005Z
path:
  description: Its folder.
  returned: always
  type: str
  sample: /var/backups/avatar-mgmt/production/20261128T020005Z
kind:
  description: Its kind from the manifest (V(scheduled) when the manifest names none).
  returned: always
  type: str
  sample: scheduled
release:
  description: The release its manifest names (C(id), C(version)).
  returned: always
  type: dict
  sample: {id: 20261127T100000Z-v1.2.0, version: v1.2.0}
manifest:
  description: Its manifest.
  returned: always
  type: dict
  sample: {id: 20261128T020005Z, kind: scheduled, files: {db.dump: {size: 53211, sha256: 9f86d0...}}}
restored:
  description: What was (in check mode, would be) restored, in order.
  returned: always
  type: list
  elements: str
  sample: [db, directus, proxy]
services:
  description: The services stopped and started again (in check mode, those that would be stopped if running).
  returned: always
  type: list
  elements: str
  sample: [api, directus, proxy]
safety_id:
  description: The id of the safety backup (empty without one).
  returned: always
  type: str
  sample: 20261201T101500Z
row_counts:
  description: The restored row count of every table (V({}) in check mode).
  returned: always
  type: dict
  sample: {public.avatars: 3}
recovered:
  description: On a failure after the data was touched, whether the safety backup was restored and checked.
  returned: failure
  type: bool
  sample: true
error:
  description: On failure, what failed in the restore.
  returned: failure
  type: str
  sample: 'pg_restore of /var/backups/avatar-mgmt/production/20261128T020005Z/db.dump failed (exit status 1): ...'
safety_error:
  description: On failure, what failed in the restore of the safety backup (empty when it succeeded).
  returned: failure
  type: str
  sample: ''
timings:
  description: Seconds spent in each step (C(checksums), C(find_db), C(stop), C(restore_db), C(restore_directus), ...).
  returned: always
  type: dict
  sample: {checksums: 0.02, find_db: 0.2, stop: 10.4, restore_db: 1.1, restore_directus: 0.1, start: 1.2, total: 13.1}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup, _backup_restore


def main():
    module = AnsibleModule(
        argument_spec={
            **_backup.stack_argument_spec(),
            'path': {'type': 'path'},
            'backup_dir': {'type': 'path'},
            'id': {'type': 'str'},
            'safety_path': {'type': 'path', 'default': ''},
            'tree': {'type': 'path', 'default': ''},
            'restore': {
                'type': 'list',
                'elements': 'str',
                'choices': ['db', 'directus', 'proxy'],
                'default': ['db', 'directus', 'proxy'],
            },
            'environment': {'type': 'str', 'required': True},
            'playbook': {'type': 'str', 'default': 'restore.yml'},
        },
        mutually_exclusive=[('path', 'id'), ('path', 'backup_dir')],
        required_one_of=[('path', 'id')],
        required_together=[('id', 'backup_dir')],
        supports_check_mode=True,
    )
    try:
        result = _backup_restore.restore(module.params, check_mode=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg='Restore refused: ' + str(exc).rstrip('.') + '. Nothing was changed.', changed=False)
    except _backup_restore.RestoreError as exc:
        module.fail_json(msg=str(exc), changed=True, **exc.details)
    module.exit_json(changed=True, **result)


if __name__ == '__main__':
    main()
