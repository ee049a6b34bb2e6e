#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: release_ledger
short_description: Read or record the release ledger of a deploy directory
version_added: 0.1.0
description:
  - The release ledger of a Docker Compose deploy directory is C(releases/index.json)
    (an object with the current release id in C(current) and the entries, oldest first, in C(releases)),
    C(releases/current) (the current id), C(releases/<id>/<compose file>) and the release's env files
    C(releases/<id>/<env file>) (mode C(0600)) for each kept release. Release ids are C(%Y%m%dT%H%M%SZ-<version>),
    so they sort by time.
  - O(state=read) reads the ledger and answers which release is current, which release a rollback goes to,
    which releases, versions and image references are kept, and which backup was taken before a release.
    It never changes anything.
  - O(state=record) appends O(release), sets the current release, trims the index to its window, writes
    C(index.json) and C(current) atomically (temporary file in the same directory, fsync, rename), keeps the
    previous valid index as C(index.json.last-good) and removes the release folders that are no longer kept.
  - B(Current release after a record) - result V(success) makes the new release current; V(rolled_back) makes
    its C(rolled_back_to) current; V(failed) and V(failed_rollback) leave the current release unchanged.
  - B(Default rollback target) (the release before the one that runs now) - the anchor is the current entry;
    while the anchor was a rollback (has a C(source) that is in the ledger), the anchor becomes that source.
    The target is the newest successful entry older than the anchor whose version differs from the current
    version. After deploying v1.0.0, v1.1.0 and v1.2.0, a rollback goes to v1.1.0, a second one to v1.0.0 and a
    third finds nothing earlier.
  - B(Window) - the index keeps the current entry; for each of the newest O(keep) distinct versions that have a
    successful release, its newest successful entry; the entries those were rolled back from (C(source)); the
    default rollback target; and the most recent entries that did not succeed (failed, rolled back), up to
    O(keep) of them. Older successful entries of a kept version are dropped. The running release and
    the previous successful versions stay however many failed attempts follow. Versions are counted, not
    releases, so redeploying one version never drops an older version.
  - B(Corruption) - an C(index.json) that cannot be read, is not JSON or has the wrong shape does not fail the
    task. RV(problem) says what is wrong, the task warns with the same sentence, and the last good copy C(index.json.last-good) (or an empty ledger) is
    used. O(state=read) moves nothing; O(state=record) renames the corrupt file to
    C(index.json.corrupt-<UTC time>) and continues from the last good copy.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: O(state=record) computes the new ledger and returns it with RV(ignore:changed=true) without writing.
  diff_mode:
    support: full
    description: O(state=record) returns the index before and after.
  idempotent:
    support: partial
    description: O(state=read) never changes anything. O(state=record) appends an entry, so it always changes.
options:
  path:
    description:
      - The releases directory, such as V(/opt/deploy-avatar-prod/releases).
      - A missing directory or C(index.json) is an empty ledger.
    type: path
    required: true
  state:
    description:
      - V(read) only reads. V(record) appends O(release) and writes the ledger.
    type: str
    choices: [read, record]
    default: read
  keep:
    description:
      - How many versions to keep as rollback targets (at least 1). Also how many recent entries that did not
        succeed (failed, rolled back) the index keeps as history.
    type: int
    default: 5
  rollback_to:
    description:
      - Compute RV(rollback_target) for this version (V(v1.1.0) or V(1.1.0)) or release id instead of the default
        target. The newest successful entry of that version or id is chosen; failing that, the newest entry of any
        result, and RV(rollback_reason) says that it is not a successful release.
      - With O(state=record) the target is computed on the ledger after the record.
    type: str
    default: ''
  backup_before:
    description:
      - Return in RV(backup_id) the C(backup) recorded by the newest entry of this version or release id that has one.
    type: str
    default: ''
  release:
    description:
      - O(state=record) only, required then. The entry to append. Needs C(id) (C(%Y%m%dT%H%M%SZ-<version>)),
        C(version) and C(result) (V(success), V(failed), V(rolled_back) or V(failed_rollback)); C(rolled_back_to)
        is required for V(rolled_back).
      - Usual fields are C(requested), C(prerelease), C(images) (service -> C(digest), C(reference), ...),
        C(environment), C(host), C(action), C(operator), C(started), C(finished), C(duration_s), C(stage),
        C(recreated), C(previous), C(rolled_back_to), C(message) and C(backup); other fields are kept as given.
      - C(source) - for a rollback, the id of the release whose images and configuration it restored.
      - The module adds C(env_checksums), and C(compose_file) and C(compose_sha256) when O(compose_file) is given.
    type: dict
  compose_file:
    description:
      - O(state=record) only. File name of the compose file, such as V(docker-compose.prod.yml). Goes with
        O(compose_content).
    type: str
    default: ''
  compose_content:
    description:
      - O(state=record) only. The compose file of the release, stored as O(path)/<release id>/O(compose_file)
        with mode C(0640).
    type: str
    default: ''
  env_files:
    description:
      - O(state=record) only. Paths of env files on the host; their sha256 is recorded in the entry as
        C(env_checksums) (file name -> sha256), and each file is kept as O(path)/<release id>/<file name> with
        mode C(0600), so a rollback can restore the configuration the release ran with. Their content is never
        returned.
      - A file name equal to O(compose_file) is refused.
    type: list
    elements: path
    default: []
  owner:
    description:
      - O(state=record) only. Owner (name or uid) of the files and folders written.
    type: str
    default: ''
  group:
    description:
      - O(state=record) only. Group (name or gid) of the files and folders written.
    type: str
    default: ''
  prune_images:
    description:
      - O(state=record) only. After the record, remove the images of this project's release repositories (the
        repositories of RV(kept_references)) that no kept release uses, in the same call. Nothing else on the host
        is touched; without kept references nothing is removed.
      - The images are listed with C(docker image ls --digests) and removed one by one with C(docker image rm).
        An image that cannot be removed (a container still uses it, for example), a listing that fails or a missing
        C(docker) CLI is a warning, never a failure (the release is recorded by then); RV(images_removed) names what
        was removed.
      - In check mode nothing is removed; RV(images_removed) names what would be.
    type: bool
    default: false
  release_lock:
    description:
      - O(state=record) only. Give back the deploy lock that this run took (M(avatar_mgmt.ops.deploy_lock), or the
        lock option of M(avatar_mgmt.ops.release_info)) in the same call, once the record (and O(prune_images))
        succeeded. The lock is removed only when it still carries O(release_lock.token), exactly as
        M(avatar_mgmt.ops.deploy_lock) with O(avatar_mgmt.ops.deploy_lock#module:state=absent) removes it.
      - A record that fails leaves the lock in place (the caller still holds it and releases it itself). A lock that
        carries another token is left in place and is no failure (RV(lock_msg) says whose it is); a lock that cannot be
        removed is a warning. RV(lock_released) says whether the caller still has to release it.
      - In check mode the lock is not released; RV(lock_msg) says whether it would be.
    type: dict
    suboptions:
      path:
        description: The lock file, such as V(/opt/deploy-avatar-prod/.deploy.lock).
        type: path
        required: true
      token:
        description: The RV(avatar_mgmt.ops.deploy_lock#module:token) that taking the lock returned.
        type: str
        required: true
notes:
  - Only folders of O(path) whose name looks like a release id are ever removed.
  - After a corrupt C(index.json) without a usable last good copy, O(state=record) starts an empty ledger and
    removes no release folder.
seealso:
  - module: avatar_mgmt.ops.release_info
'''

EXAMPLES = r'''
- name: Read the ledger and the default rollback target
  avatar_mgmt.ops.release_ledger:
    path: /opt/deploy-avatar-prod/releases
  register: ledger

- name: Find the release of v1.1.0 and the backup taken before it
  avatar_mgmt.ops.release_ledger:
    path: /opt/deploy-avatar-prod/releases
    rollback_to: v1.1.0
    backup_before: v1.1.0
  register: ledger

- name: Record a successful deploy
  avatar_mgmt.ops.release_ledger:
    path: /opt/deploy-avatar-prod/releases
    state: record
    keep: 5
    release:
      id: 20260301T101500Z-v1.2.0
      version: v1.2.0
      requested: latest
      prerelease: false
      images:
        api:
          digest: sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
          reference: ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
      environment: production
      action: deploy
      operator: alice
      result: success
      previous: 20260214T090000Z-v1.1.0
    compose_file: docker-compose.prod.yml
    compose_content: "{{ lookup('ansible.builtin.file', 'docker-compose.prod.yml') }}"
    env_files:
      - /opt/deploy-avatar-prod/.env.prod.api
    owner: deploy
    group: deploy
  register: recorded

- name: Keep only the images of the kept releases
  ansible.builtin.debug:
    msg: "{{ recorded.kept_references }}"

- name: Record a release and remove the release images no kept release uses, in one call
  avatar_mgmt.ops.release_ledger:
    path: /opt/deploy-avatar-prod/releases
    state: record
    release: "{{ release }}"
    prune_images: true
  register: recorded

- name: Record the release and give back the deploy lock this run took, in one call
  avatar_mgmt.ops.release_ledger:
    path: /opt/deploy-avatar-prod/releases
    state: record
    release: "{{ release }}"
    release_lock:
      path: /opt/deploy-avatar-prod/.deploy.lock
      token: "{{ lock.token }}"
  register: recorded

- name: Release the lock when the record did not (it failed, or did not run)
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: absent
    token: "{{ lock.token }}"
  when: not (recorded.lock_released | default(false))
'''

RETURN = r'''
ledger:
  description: The ledger (after the record for O(state=record)).
  returned: always
  type: dict
  sample:
    current: 20260301T101500Z-v1.2.0
    releases:
      - id: 20260214T090000Z-v1.1.0
        version: v1.1.0
        result: success
      - id: 20260301T101500Z-v1.2.0
        version: v1.2.0
        result: success
current:
  description: The current entry, or V({}).
  returned: always
  type: dict
  sample: {id: 20260301T101500Z-v1.2.0, version: v1.2.0, result: success}
rollback_target:
  description: The entry a rollback goes to (the default target, or the one O(rollback_to) names), or V({}).
  returned: always
  type: dict
  sample: {id: 20260214T090000Z-v1.1.0, version: v1.1.0, result: success}
rollback_reason:
  description:
    - Why there is no RV(rollback_target), listing the releases; or, when O(rollback_to) found only an entry
      that did not succeed, that it is not a successful release. V('') for a successful target.
  returned: always
  type: str
  sample: "No earlier successful release of another version in the ledger. Releases, oldest first: v1.0.0 (success, 20260101T120000Z-v1.0.0)."
kept:
  description: Ids of the entries the index keeps, oldest first.
  returned: always
  type: list
  elements: str
  sample: [20260214T090000Z-v1.1.0, 20260301T101500Z-v1.2.0]
kept_versions:
  description: Versions of the kept successful entries, newest first.
  returned: always
  type: list
  elements: str
  sample: [v1.2.0, v1.1.0]
kept_references:
  description: Image references (C(repo@sha256:...)) of every kept entry; images that must stay on the host.
  returned: always
  type: list
  elements: str
  sample: [ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b]
backup_id:
  description: The backup recorded by the newest entry of O(backup_before) that has one, or V('').
  returned: always
  type: str
  sample: 20260301T101000Z
problem:
  description: V('') when the ledger is fine; otherwise what is wrong with C(index.json) and what was used instead.
  returned: always
  type: str
  sample: >-
    releases/index.json is corrupt (not JSON: Expecting value at line 1 column 1); kept aside as
    index.json.corrupt-20260301T101500Z; using the last good copy index.json.last-good (4 releases)
removed:
  description: Release folders removed (in check mode, that would be removed).
  returned: O(state=record)
  type: list
  elements: str
  sample: [20251101T080000Z-v1.0.0]
images_removed:
  description:
    - With O(prune_images), the images (C(repo@sha256:...)) removed (in check mode, that would be removed).
  returned: O(state=record)
  type: list
  elements: str
  sample: [ghcr.io/rayhu/avatar-mgmt/api@sha256:0d0652a257190a3b6a4d2d4b0f3f8f4c3b1e0f3d2c1b0a9f8e7d6c5b4a392817]
entry:
  description: The entry recorded, with the fields the module adds (C(env_checksums), C(compose_file), C(compose_sha256)).
  returned: O(state=record)
  type: dict
  sample:
    id: 20260301T101500Z-v1.2.0
    version: v1.2.0
    result: success
    env_checksums: {.env.prod.api: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
lock_released:
  description:
    - Whether this task released the deploy lock of O(release_lock) (after the record). V(false) without
      O(release_lock), in check mode, or when the lock was not there or carried another token.
  returned: O(state=record)
  type: bool
  sample: true
released_lock:
  description:
    - The lock that O(release_lock) removed (the record M(avatar_mgmt.ops.deploy_lock) returns as
      RV(avatar_mgmt.ops.deploy_lock#module:lock), without its token), or V({}). Its C(fingerprint) tells which
      lock it was.
  returned: O(state=record)
  type: dict
  sample:
    format: current
    holder: alice
    host: prod-1
    action: deploy
    version: v1.2.0
    since: '2026-03-01T10:15:02Z'
    fingerprint: 0b5d6f7c1f0e8d8f5a1c2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b
lock_msg:
  description: What happened to the lock of O(release_lock) (as M(avatar_mgmt.ops.deploy_lock) says it), or V('').
  returned: O(state=record)
  type: str
  sample: >-
    Released the lock /opt/deploy-avatar-prod/.deploy.lock held by alice (host prod-1, deploy v1.2.0,
    since 2026-03-01T10:15:02Z).
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _ledger


def main():
    module = AnsibleModule(
        argument_spec={
            # A record's options (shared with compose_switch's record), release required only to record.
            **_ledger.record_options(),
            'release': {'type': 'dict'},
            'state': {'type': 'str', 'choices': ['read', 'record'], 'default': 'read'},
            'rollback_to': {'type': 'str', 'default': ''},
            'backup_before': {'type': 'str', 'default': ''},
        },
        required_if=[('state', 'record', ['release'])],
        supports_check_mode=True,
    )
    params = module.params
    if params['release_lock'] is not None and params['state'] != 'record':
        module.fail_json(
            msg='release_lock goes with state=record (a read takes no lock). Nothing was changed.', changed=False
        )
    try:
        if params['state'] == 'read':
            result = _ledger.read(params['path'], params['keep'], params['rollback_to'], params['backup_before'])
            if result['problem']:
                module.warn(result['problem'])
            module.exit_json(**result)
        result, warnings = _ledger.record_release(
            module, params, rollback_to=params['rollback_to'], backup_before=params['backup_before']
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc).rstrip('.') + '. Nothing was changed.', changed=False)
    except _ledger.LedgerError as exc:
        module.fail_json(msg=str(exc), changed=False)
    for warning in warnings:
        module.warn(warning)
    before, after = result.pop('before'), result.pop('after')
    if module._diff:
        index = os.path.join(params['path'], _ledger.INDEX)
        result['diff'] = {'before': before, 'after': after, 'before_header': index, 'after_header': index}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
