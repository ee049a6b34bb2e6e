#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_create
short_description: Take a backup of the stack's database and files in one call, optionally verified by a restore
version_added: 0.1.0
description:
  - Takes one backup of a compose stack on the host in a single module run, in the folder layout the
    avatar_mgmt.ops.backup role reads (C(<backup_dir>/<id>/) with C(db.dump), the archives and C(manifest.json)).
  - B(Checks first) - the id, the archives, the owner, that neither C(<id>) nor C(.tmp-<id>) exists, and the free
    space under O(backup_dir) (the size of the newest complete backup, at least O(min_free_mb)); then it finds the
    running database container. A refusal changes nothing.
  - B(Dump) - a psql session in the db container holds a C(REPEATABLE READ) transaction and exports its snapshot;
    C(pg_dump -Fc --snapshot) runs through C(docker exec -i) with its output streamed into the backup's temporary
    folder on the host, its size and sha256 computed on the way; pg_dump's own exit status is checked. The same
    session then counts the rows of every table in that snapshot. Nothing is written inside the db container.
  - B(Archives) - each of O(archives) is a C(tar -czf -) of paths under O(project_dir), streamed the same way.
    An archive whose files did not change since a complete backup in O(backup_dir) took it is that backup's file,
    hard-linked (no bytes written, no space taken). The manifest's C(sources) records a fingerprint of each
    archive's files (path, type, mode, owner, size, modification and change time, inode, link target of every
    entry), and the newest backup with the same fingerprint and its file still of the recorded size lends it; its
    recorded size and sha256 are this backup's. An archive whose files changed while tar read them records no
    fingerprint (the next backup writes its own).
  - B(Verification) (O(verify=true)) - the files are read back and compared with their sha256 and size, the
    archives listed (a reused archive whose sha256 matches is not listed again when the backup it comes from was
    verified, which listed the same bytes), and the dump restored into a throwaway PostgreSQL container of the running server's image
    (no network, unique name, the dump bind-mounted read-only, C(pg_restore --jobs) with the host's CPUs, 2 to
    4), whose row counts must equal the dump's. The container is removed on every path.
  - B(Publishing) - files are mode C(0600), folders C(0700), owned by O(owner) and its group; the manifest is
    written last and the temporary folder C(.tmp-<id>) renamed to C(<id>). Any failure removes the temporary folder.
  - B(Release) - without O(release), the manifest names the running release of the release ledger in O(ledger_dir)
    (its C(current) id and that entry's version; empty strings when there is none), as
    M(avatar_mgmt.ops.release_ledger) reads it. A corrupt ledger is a warning (its last good copy is used).
  - B(Retention) (O(retention) set) - after publishing, the complete backups in O(backup_dir) (folders named by an
    id, never C(.tmp-*)) are kept or removed by grandfather-father-son retention, the same rules as the
    P(avatar_mgmt.ops.backup_retention#filter) filter, reading each backup's kind and verification from its
    manifest. Never removed - the newest backup, the newest verified backup, the backups in O(protect), and the
    backups the ledger's releases name (the backup to restore "before" each release).
  - A retention that fails after publishing fails the module with a message saying the backup was published
    and kept, and what was removed before the failure (C(published=true) in the result).
extends_documentation_fragment:
  - avatar_mgmt.ops.backup_stack
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description:
      - Checks the input and the free space, reads the ledger and finds the database container, then reports the
        backup it would take and, with O(retention), the backups retention would remove (counting the new one).
  diff_mode:
    support: none
    description: A backup is a new folder; there is nothing to compare.
  idempotent:
    support: none
    description: Every run takes a new backup (a new id).
options:
  id:
    description: The backup's id, its UTC time as C(YYYYMMDDTHHMMSSZ); also the name of its folder.
    type: str
    required: true
  backup_dir:
    description: Absolute path of the folder of the backups (no colon in it); created (mode C(0700)) when missing.
    type: path
    required: true
  owner:
    description: User owning the backup's folders and files; the group of the same name is their group.
    type: str
    required: true
  verify:
    description: Verify the backup (checksums, archive listings, restore into a throwaway PostgreSQL) before publishing it.
    type: bool
    default: true
  min_free_mb:
    description: Free space, in MB, needed under O(backup_dir) when there is no previous backup or it was smaller.
    type: int
    default: 100
  environment:
    description: Environment name recorded in the manifest.
    type: str
    required: true
  host:
    description: Host name recorded in the manifest (the inventory hostname).
    type: str
    required: true
  kind:
    description: Kind of backup recorded in the manifest.
    type: str
    default: scheduled
  operator:
    description: Who takes the backup, recorded in the manifest.
    type: str
    default: ''
  job_id:
    description: The AWX job id, recorded in the manifest.
    type: str
    default: ''
  release:
    description:
      - The running release recorded in the manifest, C(id) and C(version).
      - Unset, the module reads it from the release ledger in O(ledger_dir).
    type: dict
  ledger_dir:
    description: The release ledger's folder (C(index.json)); read, never written. Default C(<project_dir>/releases).
    type: path
  retention:
    description:
      - Apply retention after publishing the backup. Unset, no backup is removed.
    type: dict
    suboptions:
      daily:
        description: How many of the most recent days with a scheduled backup keep their newest one.
        type: int
        required: true
      weekly:
        description: How many of the most recent ISO weeks with a scheduled backup keep their newest one.
        type: int
        required: true
      monthly:
        description: How many of the most recent months with a scheduled backup keep their newest one.
        type: int
        required: true
      other:
        description:
          - How many of the newest backups of each kind other than V(scheduled) (pre-deploy, safety) are kept; the
            daily, weekly and monthly slots then count only scheduled backups, so a pre-deploy or safety backup
            does not displace the nightly backup of its day.
          - Unset, every backup takes part in the slots whatever its kind.
        type: int
  protect:
    description: Ids of backups retention never removes (for example the backup a restore is reading).
    type: list
    elements: str
    default: []
seealso:
  - module: avatar_mgmt.ops.release_ledger
'''

EXAMPLES = r'''
# The manifest names the running release of the ledger in /opt/deploy-avatar-prod/releases;
# after publishing, retention removes the backups it lets go (never the ledger's).
- name: Take a verified pre-deploy backup of production and apply retention
  avatar_mgmt.ops.backup_create:
    id: "{{ now(utc=true).strftime('%Y%m%dT%H%M%SZ') }}"
    backup_dir: /var/backups/avatar-mgmt/production
    owner: deploy
    project_dir: /opt/deploy-avatar-prod
    project_name: avatar-prod
    compose_file: docker-compose.prod.yml
    db_user: directus
    db_name: directus
    archives:
      - {name: directus.tar.gz, paths: [directus/uploads, directus/extensions, directus/schemas]}
      - {name: proxy.tar.gz, paths: [jc21/data, jc21/letsencrypt], exclude: [jc21/data/logs/*]}
    environment: production
    host: "{{ inventory_hostname }}"
    kind: pre-deploy
    retention: {daily: 7, weekly: 4, monthly: 6, other: 3}
  become: true
  register: backup
'''

RETURN = r'''
id:
  description: The backup's id.
  returned: always
  type: str
  sample: 20261128T020005Z
path:
  description: The backup's folder (in check mode, the folder it would have).
  returned: always
  type: str
  sample: /var/backups/avatar-mgmt/production/20261128T020005Z
manifest:
  description: The manifest as written to C(manifest.json); V({}) in check mode.
  returned: always
  type: dict
  sample:
    id: 20261128T020005Z
    time: '2026-11-28T02:00:05Z'
    environment: production
    host: prod-1
    kind: scheduled
    operator: schedule:nightly
    job_id: '412'
    release: {id: 20261127T100000Z-v1.2.0, version: v1.2.0}
    files: {db.dump: {size: 53211, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}}
    postgres_version: '15.7'
    row_counts: {public.avatars: 3}
    verification: {result: ok, checked: '2026-11-28T02:00:09Z', problems: [], restored_row_counts: {public.avatars: 3}}
    sources: {directus.tar.gz: 5b1e0c3f9a7d2e4c6b8a0f1e3d5c7b9a1f2e4d6c8b0a9f7e5d3c1b2a4f6e8d0c}
    reused: {directus.tar.gz: 20261127T020004Z}
reused:
  description: Archive name to the id of the backup whose archive it is (hard-linked, its files unchanged since).
  returned: always
  type: dict
  sample: {directus.tar.gz: 20261127T020004Z}
files:
  description: File name to C(size) (bytes) and C(sha256) of each file but the manifest.
  returned: always
  type: dict
  sample: {db.dump: {size: 53211, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}}
verification:
  description: The verification recorded in the manifest; C(result) is V(ok) or V(skipped) (a failed one fails the run).
  returned: always
  type: dict
  sample: {result: ok, checked: '2026-11-28T02:00:09Z', problems: [], restored_row_counts: {public.avatars: 3}}
release:
  description: The release recorded in the manifest (O(release), or the ledger's running release).
  returned: always
  type: dict
  sample: {id: 20261127T100000Z-v1.2.0, version: v1.2.0}
retention:
  description:
    - What retention did (all lists empty without O(retention)) - C(keep) the ids it keeps (newest first),
      C(removed) those it removed (in check mode, would remove; on a failure, those removed before it),
      C(protected) those it let go but that were kept as protected, C(reasons) why each kept one is kept.
  returned: always
  type: dict
  sample:
    keep: [20261128T020005Z, 20261127T020004Z]
    removed: [20261020T020003Z]
    protected: []
    reasons: {20261128T020005Z: [newest, daily, verified], 20261127T020004Z: [daily]}
published:
  description: On a failure, V(true) when the backup was published all the same (retention failed after it).
  returned: failure
  type: bool
  sample: true
space:
  description: Bytes C(needed), C(free) under O(backup_dir) and the C(previous) backup's size, measured before starting.
  returned: always
  type: dict
  sample: {needed: 104857600, free: 5368709120, previous: 81234}
timings:
  description:
    - Seconds spent in each step (C(free_space), C(ledger), C(find_db), C(dump), C(archives), C(verify) and its parts,
      C(publish), C(retention), C(total)); C(archives) includes the fingerprints of their files.
  returned: always
  type: dict
  sample: {free_space: 0.001, find_db: 0.21, dump: 0.62, archives: 0.18, verify: 2.4, publish: 0.0, total: 3.5}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup, _backup_create


def main():
    module = AnsibleModule(
        argument_spec={
            **_backup.stack_argument_spec(),
            'id': {'type': 'str', 'required': True},
            'backup_dir': {'type': 'path', 'required': True},
            'owner': {'type': 'str', 'required': True},
            'verify': {'type': 'bool', 'default': True},
            'min_free_mb': {'type': 'int', 'default': 100},
            'environment': {'type': 'str', 'required': True},
            'host': {'type': 'str', 'required': True},
            'kind': {'type': 'str', 'default': 'scheduled'},
            'operator': {'type': 'str', 'default': ''},
            'job_id': {'type': 'str', 'default': ''},
            'release': {'type': 'dict'},
            'ledger_dir': {'type': 'path'},
            'retention': {
                'type': 'dict',
                'options': {
                    'daily': {'type': 'int', 'required': True},
                    'weekly': {'type': 'int', 'required': True},
                    'monthly': {'type': 'int', 'required': True},
                    'other': {'type': 'int'},
                },
            },
            'protect': {'type': 'list', 'elements': 'str', 'default': []},
        },
        supports_check_mode=True,
    )
    try:
        result = _backup_create.create(module.params, check_mode=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg='Backup refused: ' + str(exc).rstrip('.') + '. Nothing was changed.', changed=False)
    except _backup_create.BackupError as exc:
        module.fail_json(
            msg=str(exc).rstrip('.') + '. The partial backup was removed.',
            changed=False,
            timings=getattr(exc, 'timings', {}),
        )
    except _backup_create.RetentionError as exc:
        for warning in exc.result.pop('warnings'):
            module.warn(warning)
        module.fail_json(msg=str(exc).rstrip('.') + '.', changed=True, published=True, **exc.result)
    for warning in result.pop('warnings'):
        module.warn(warning)
    module.exit_json(changed=True, **result)


if __name__ == '__main__':
    main()
