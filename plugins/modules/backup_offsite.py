#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_offsite
short_description: Copy a published backup into an encrypted, deduplicated restic repository off the host, check that repository, or restore a snapshot from it
version_added: 0.2.0
description:
  - B(action=backup) - copies one backup of the avatar_mgmt.ops.backup role into a restic repository (SFTP on a backup
    host, or any restic backend), in one call after the local backup is published.
  - Initialises the repository when it does not exist yet (restic's exit code 10, or its "Is there a repository"
    message with restic < 0.17), then runs C(restic backup --json) of O(paths) (the backup's C(db.dump) and
    C(manifest.json) and the live Directus and proxy folders; not the C(.tar.gz) archives, whose compression defeats
    deduplication) with the snapshot's host set to O(environment), so a new server finds the snapshots by the
    environment's name, and tags C(avatar-mgmt), C(env:<environment>), C(id:<id>), C(kind:<kind>) and
    C(release:<version>). The parent snapshot, so unchanged files are not read again, is the one the last copy
    from this host recorded beside the backups (C(.offsite-parents.json) in the folder of O(manifest)'s backup
    folder, 0600; no restic run to find it); when the repository no longer
    holds it (forgotten, or a new repository at that address; restic refuses it before writing anything) or no
    earlier backup recorded one, the newest snapshot of the environment (one C(restic snapshots) run).
  - Then C(restic forget) of the kind just copied, grouped by host - grandfather-father-son for scheduled snapshots,
    the last O(keep_last_other) for pre-deploy and for safety snapshots - and C(restic prune) when something was
    forgotten. The other kinds' snapshots are as their own last copy left them (restic's keep rules count snapshots,
    not days since), so a changed keep setting of another kind applies at that kind's next copy.
  - The snapshot is recorded in the backup's C(manifest.json) (key C(offsite)).
  - B(action=check) - C(restic check --read-data-subset=<check_subset>).
  - B(action=restore) - on a server that may be brand new (no backup folder, no project) - finds the snapshot of
    O(environment) that O(id) names (V(latest) - the newest snapshot tagged C(kind:scheduled), never a safety or
    pre-deploy one; an id - the snapshot tagged C(id:<id>)), checks that the folder O(restore_dir) has room for
    the snapshot's restore size (C(restic stats --mode restore-size)) plus 64 MB, and runs C(restic restore) into a
    new folder (mode C(0700)) under O(restore_dir). Returns that folder (RV(tmp)), the backup's folder inside it
    (RV(path), with C(db.dump) and C(manifest.json)) and the project folder inside it (RV(tree), the live Directus
    and proxy folders as they were), for M(avatar_mgmt.ops.backup_restore). The folder is removed when the restore
    fails; the caller removes it after use.
  - B(Secrets) - the password reaches restic as C(RESTIC_PASSWORD_FILE), the SSH key through the ssh_config file
    O(ssh_config), other credentials as the process environment (O(env)); none is on a command line, and restic's
    messages are passed on with every secret value taken out. The SFTP connection checks the server's host key
    against the known hosts named in O(ssh_config) (C(StrictHostKeyChecking yes)).
  - A restic that exits 3 (some files could not be read) fails the run, as does any other error.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
requirements:
  - restic 0.14 or later on the host (Debian's C(restic) package)
attributes:
  check_mode:
    support: full
    description: >-
      Checks the input and reports the snapshot it would make (V(backup)) without running restic; V(restore) finds the
      snapshot and checks the free space (read only) but restores nothing.
  diff_mode:
    support: none
    description: A snapshot is new content; there is nothing to compare.
  idempotent:
    support: none
    description: Every O(action=backup) makes a new snapshot (an unchanged file adds no data).
options:
  action:
    description: Copy a backup (V(backup)), check the repository (V(check)) or restore a snapshot (V(restore)).
    type: str
    choices: [backup, check, restore]
    default: backup
  repository:
    description: >-
      The restic repository (C(sftp:user@host:/path), C(sftp://user@host:port//path), C(rest:https://host/path),
      C(s3:host/bucket/path), an absolute local path). Credentials belong in O(env), not in this string.
    type: str
    required: true
  password_file:
    description: File holding the repository's password (mode C(0600)).
    type: path
    required: true
  ssh_config:
    description: ssh_config file of an SFTP repository (key, known hosts, strict host key checking); required for SFTP.
    type: path
    default: ''
  env:
    description: Extra environment of restic (C(AWS_ACCESS_KEY_ID), C(RESTIC_REST_PASSWORD) ...). Never logged.
    type: dict
    default: {}
  secret_values:
    description: Further values to take out of every message (the SSH key text, for instance).
    type: list
    elements: str
    default: []
  cache_dir:
    description: restic's cache folder (C(RESTIC_CACHE_DIR)); empty for restic's default.
    type: path
    default: ''
  restic:
    description: The restic program.
    type: str
    default: restic
  environment:
    description: The environment; the snapshot's host (C(--host)) and a tag.
    type: str
    required: true
  id:
    description: >-
      The backup's id (C(YYYYMMDDTHHMMSSZ)), a tag. Required for O(action=backup). For O(action=restore), the backup
      to restore - its id or V(latest) (the newest scheduled snapshot).
    type: str
    default: ''
  restore_dir:
    description: O(action=restore) - the folder under which the snapshot is restored into a new private folder.
    type: path
    default: ''
  project_paths:
    description: >-
      O(action=restore) - the folders the snapshot holds relative to the project folder (C(directus/uploads) ...),
      used to find the project folder among the snapshot's paths.
    type: list
    elements: str
    default: []
  kind:
    description: The backup's kind, a tag; chooses the retention it falls under.
    type: str
    choices: [scheduled, pre-deploy, safety]
    default: scheduled
  version:
    description: The release the backup was taken of, a tag (C(release:<version>)); empty for none.
    type: str
    default: ''
  paths:
    description: Absolute paths copied into the snapshot; paths that do not exist are left out and listed in RV(missing).
    type: list
    elements: path
    default: []
  excludes:
    description: restic C(--exclude) patterns.
    type: list
    elements: str
    default: []
  manifest:
    description: The backup's C(manifest.json), where the snapshot is recorded; empty for none.
    type: path
    default: ''
  keep_daily:
    description: Scheduled snapshots - the newest of each of the last N days.
    type: int
    default: 7
  keep_weekly:
    description: Scheduled snapshots - the newest of each of the last N weeks.
    type: int
    default: 4
  keep_monthly:
    description: Scheduled snapshots - the newest of each of the last N months.
    type: int
    default: 6
  keep_last_other:
    description: Pre-deploy snapshots and safety snapshots - the last N of each kind (at least 1).
    type: int
    default: 3
  check_subset:
    description: O(action=check) - the part of the data read back (C(5%), C(1/10), C(500M)); empty reads only the structure.
    type: str
    default: 5%
seealso:
  - module: avatar_mgmt.ops.backup_create
  - name: restic documentation
    description: Preparing a repository, backing up, removing snapshots.
    link: https://restic.readthedocs.io/
'''

EXAMPLES = r'''
- name: Copy the backup off the host
  avatar_mgmt.ops.backup_offsite:
    repository: sftp:avatar-production@backup-1:/repo
    password_file: /etc/avatar-mgmt/backup/production/password
    ssh_config: /etc/avatar-mgmt/backup/production/ssh_config
    environment: production
    id: 20261128T020005Z
    kind: scheduled
    version: v1.2.0
    paths:
      - /var/backups/avatar-mgmt/production/20261128T020005Z/db.dump
      - /var/backups/avatar-mgmt/production/20261128T020005Z/manifest.json
      - /opt/deploy-avatar-prod/directus/uploads
    manifest: /var/backups/avatar-mgmt/production/20261128T020005Z/manifest.json
  become: true
  register: offsite

- name: Restore the newest scheduled snapshot of production into a private folder on a new server
  avatar_mgmt.ops.backup_offsite:
    action: restore
    repository: sftp:avatar-production@backup-1:/repo
    password_file: /etc/avatar-mgmt/backup/production/password
    ssh_config: /etc/avatar-mgmt/backup/production/ssh_config
    environment: production
    id: latest
    restore_dir: /var/backups/avatar-mgmt/production
    project_paths: [directus/uploads, jc21/data, jc21/letsencrypt]
  become: true
  register: fetched

- name: Check the repository, reading back 5% of its data
  avatar_mgmt.ops.backup_offsite:
    action: check
    repository: s3:s3.eu-central-1.amazonaws.com/avatar-backups/production
    password_file: /etc/avatar-mgmt/backup/production/password
    env:
      AWS_ACCESS_KEY_ID: "{{ vault_backup_s3_key_id }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_backup_s3_secret }}"
    environment: production
    check_subset: 5%
  become: true
'''

RETURN = r'''
repository:
  description: The repository (without credentials).
  returned: always
  type: str
  sample: sftp:avatar-production@backup-1:/repo
tags:
  description: The snapshot's tags.
  returned: action=backup
  type: list
  elements: str
  sample: [avatar-mgmt, env:production, id:20261128T020005Z, kind:scheduled, release:v1.2.0]
paths:
  description: The paths copied.
  returned: action=backup
  type: list
  elements: str
  sample: [/var/backups/avatar-mgmt/production/20261128T020005Z/db.dump, /opt/deploy-avatar-prod/directus/uploads]
missing:
  description: Paths of O(paths) that did not exist (left out).
  returned: action=backup
  type: list
  elements: str
  sample: [/opt/deploy-avatar-prod/directus/extensions]
initialized:
  description: Whether this run created the repository.
  returned: action=backup
  type: bool
  sample: false
snapshot_id:
  description: The new snapshot's id.
  returned: action=backup, not in check mode
  type: str
  sample: 5e8f3d2a
parent:
  description: The snapshot this one was compared with (unchanged files were not read again); empty for the first.
  returned: action=backup, not in check mode
  type: str
  sample: 4b1c9e07
data_added:
  description: Bytes of new data the snapshot added to the repository (before compression).
  returned: action=backup, not in check mode
  type: int
  sample: 1048576
data_added_packed:
  description: The same after compression (restic 0.14 reports the uncompressed figure).
  returned: action=backup, not in check mode
  type: int
  sample: 524288
files_new:
  description: Files not in the parent snapshot.
  returned: action=backup, not in check mode
  type: int
  sample: 2
files_changed:
  description: Files changed since the parent snapshot.
  returned: action=backup, not in check mode
  type: int
  sample: 1
files_unmodified:
  description: Files unchanged since the parent snapshot.
  returned: action=backup, not in check mode
  type: int
  sample: 1843
total_bytes_processed:
  description: Bytes of the files in the snapshot.
  returned: action=backup, not in check mode
  type: int
  sample: 53687091200
forgotten:
  description: Snapshots retention removed, with C(id), C(time) and C(tags).
  returned: action=backup
  type: list
  elements: dict
  sample: [{id: 9a0f3c11, time: '2026-11-20T02:00:07Z', tags: [avatar-mgmt, 'env:production', 'id:20261120T020005Z', 'kind:scheduled']}]
copied:
  description: Whether the backup is now in the repository (V(false) in check mode and when the copy failed).
  returned: action=backup
  type: bool
  sample: true
published:
  description: On failure of O(action=backup) - the local backup is published and stays (always V(true)).
  returned: failed and action=backup
  type: bool
  sample: true
manifest_updated:
  description: Whether the snapshot was recorded in O(manifest).
  returned: action=backup, not in check mode
  type: bool
  sample: true
subset:
  description: The data subset a check read back.
  returned: action=check
  type: str
  sample: 5%
snapshots:
  description: Snapshots of the environment in the repository.
  returned: action=check, not in check mode
  type: int
  sample: 17
snapshot:
  description: O(action=restore) - the snapshot found (C(snapshot_id), C(time), C(tags), C(backup_id), C(kind), C(version), C(size)).
  returned: action=restore
  type: dict
  sample: {snapshot_id: 5e8f3d2a, time: '2026-11-28T02:00:07Z', backup_id: 20261128T020005Z, kind: scheduled, version: v1.2.0}
tmp:
  description: O(action=restore) - the private folder the snapshot was restored into (empty in check mode).
  returned: action=restore
  type: str
  sample: /var/backups/avatar-mgmt/production/.restore-k2j3h4
path:
  description: O(action=restore) - the backup's folder inside RV(tmp) (C(db.dump), C(manifest.json)).
  returned: action=restore
  type: str
  sample: /var/backups/avatar-mgmt/production/.restore-k2j3h4/var/backups/avatar-mgmt/production/20261128T020005Z
tree:
  description: O(action=restore) - the project folder inside RV(tmp) (the Directus and proxy folders).
  returned: action=restore
  type: str
  sample: /var/backups/avatar-mgmt/production/.restore-k2j3h4/opt/deploy-avatar-prod
manifest:
  description: O(action=restore) - the backup's manifest as the snapshot holds it (V({}) in check mode).
  returned: action=restore
  type: dict
  sample: {id: 20261128T020005Z, kind: scheduled, release: {id: 20261127T100000Z-v1.2.0, version: v1.2.0}}
command:
  description: O(action=restore) - the restic command that restored the snapshot (without credentials).
  returned: action=restore
  type: str
  sample: restic -r sftp:avatar-production@backup-1:/repo restore 5e8f3d2a --target <folder>
timings:
  description:
    - Seconds per step (C(parent) - whether the repository is there and its newest snapshot of the environment, in one
      restic run, only when no usable parent was recorded; C(backup_recorded_parent) - a backup that restic refused
      because the repository lacks the recorded parent; C(init), C(backup), C(forget), C(prune), C(total);
      C(check)).
  returned: always
  type: dict
  sample: {parent: 0.3, backup: 2.1, forget: 0.6, total: 3.0}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _restic


def main():
    module = AnsibleModule(
        argument_spec={
            'action': {'type': 'str', 'choices': ['backup', 'check', 'restore'], 'default': 'backup'},
            'repository': {'type': 'str', 'required': True},
            'password_file': {'type': 'path', 'required': True},
            'ssh_config': {'type': 'path', 'default': ''},
            'env': {'type': 'dict', 'default': {}, 'no_log': True},
            'secret_values': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': True},
            'cache_dir': {'type': 'path', 'default': ''},
            'restic': {'type': 'str', 'default': 'restic'},
            'environment': {'type': 'str', 'required': True},
            'id': {'type': 'str', 'default': ''},
            'restore_dir': {'type': 'path', 'default': ''},
            'project_paths': {'type': 'list', 'elements': 'str', 'default': []},
            'kind': {'type': 'str', 'choices': list(_restic.KINDS), 'default': 'scheduled'},
            'version': {'type': 'str', 'default': ''},
            'paths': {'type': 'list', 'elements': 'path', 'default': []},
            'excludes': {'type': 'list', 'elements': 'str', 'default': []},
            'manifest': {'type': 'path', 'default': ''},
            'keep_daily': {'type': 'int', 'default': 7},
            'keep_weekly': {'type': 'int', 'default': 4},
            'keep_monthly': {'type': 'int', 'default': 6},
            'keep_last_other': {'type': 'int', 'default': 3},
            'check_subset': {'type': 'str', 'default': '5%'},
        },
        required_if=[('action', 'backup', ('id', 'paths')), ('action', 'restore', ('id', 'restore_dir'))],
        supports_check_mode=True,
    )
    params = dict(module.params)
    if module.get_bin_path(params['restic']) is None and not module.check_mode:
        module.fail_json(
            msg=failure(params, f"restic ({params['restic']}) is not installed: install Debian's restic package"),
            changed=False,
            copied=False,
            published=params['action'] == 'backup',
        )
    try:
        if params['action'] == 'check':
            result = _restic.check(params, check_mode=module.check_mode)
            module.exit_json(changed=False, **result)
        if params['action'] == 'restore':
            result = _restic.restore_snapshot(params, check_mode=module.check_mode)
            snapshot = {
                k: result.pop(k) for k in ('snapshot_id', 'time', 'tags', 'backup_id', 'kind', 'version', 'size')
            }
            module.exit_json(changed=not module.check_mode, snapshot=snapshot, **result)
        result = _restic.offsite(params, check_mode=module.check_mode)
    except ValueError as exc:
        why = 'refused: ' + str(exc).rstrip('.') + ', nothing was changed in the repository'
        module.fail_json(msg=failure(params, why), changed=False, copied=False, published=params['action'] == 'backup')
    except _restic.ResticError as exc:
        module.fail_json(
            msg=failure(params, str(exc)),
            changed=False,
            copied=False,
            timings=exc.timings,
            published=params['action'] == 'backup',
        )
    module.exit_json(changed=True, copied=not module.check_mode, **result)


def failure(params, why):
    """The message of a failed copy or check: which backup, where, that the local backup stays, and why."""
    repo = _restic.display(params['repository'])
    if params['action'] == 'check':
        return f'The check of the off-host repository {repo} failed: {why}'
    if params['action'] == 'restore':
        return f"Restore from the off-host repository {repo} (backup_id={params['id']}): {why}"
    backup_id = params['id']
    return f'the off-host copy of backup {backup_id} to {repo} failed (the local backup {backup_id} is published and kept): {why}'


if __name__ == '__main__':
    main()
