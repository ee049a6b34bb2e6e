#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: release_info
short_description: What runs here - the ledger's current release against the running containers
version_added: 0.1.0
description:
  - Reads the release ledger in O(project_dir)C(/releases) (as M(avatar_mgmt.ops.release_ledger) with
    O(avatar_mgmt.ops.release_ledger#module:state=read) does) and the containers of the Docker Compose project
    O(project_name), and says whether they agree.
  - They agree when every service of O(services) runs exactly one container, that container is running, and the
    repo digests of its image include the digest the ledger's current release records for that service.
  - Containers are found by the label C(com.docker.compose.project); one-off containers
    (C(com.docker.compose.oneoff=True)) are left out.
  - Only the fields listed under RV(containers) are read from the engine's answers and returned; container
    environment variables (which hold secrets) are never read or returned.
  - A corrupt ledger does not fail the module; RV(problem) says what is wrong.
  - It also reads the environment's deploy lock (O(lock_path)) and names the recorded release that runs
    (RV(running_release)), so the state a killed run left (its lock, a switch the ledger does not name) is seen,
    and says what to do next (RV(next_step)).
  - On request it answers in the same call what a deploy needs to know before it switches, each only when its
    option is set, so a deploy spends one remote call instead of five - whether Docker and compose v2 answer
    (O(compose_version)), the free space under a folder (O(free_space_path)), the ledger as
    M(avatar_mgmt.ops.release_ledger) reads it (O(keep)) and which images are on the host (O(images),
    O(current_images)). Without these options the answer is the same as before they existed.
  - With O(lock), it first takes the environment's deploy lock exactly as M(avatar_mgmt.ops.deploy_lock) with
    O(avatar_mgmt.ops.deploy_lock#module:state=present) does (same record, same messages, same RV(token),
    RV(acquired) and RV(lock)), and reads nothing unless it holds the lock, so a deploy takes its lock and reads the
    host in one remote call. When reading fails after the lock was taken, the module releases that lock before it
    fails, so a failed call never leaves a lock behind (RV(released)); release the lock of a successful call with
    M(avatar_mgmt.ops.deploy_lock) and O(avatar_mgmt.ops.deploy_lock#module:state=absent) and RV(token).
requirements:
  - The Docker SDK for Python (C(python3-docker)) on the target host; C(playbooks/bootstrap.yml) installs it.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
attributes:
  action:
    support: full
    description:
      - An action plugin of the same name adds, for O(lock), the controller's identity and judges whether the holder
        of a held lock is alive, as for M(avatar_mgmt.ops.deploy_lock).
  check_mode:
    support: full
    description:
      - The module only reads; check mode runs it as usual. With O(lock), the lock is not taken; a held lock fails
        the task as in a real run.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: partial
    description:
      - Without O(lock) the module never changes anything and returns RV(ignore:changed=false).
      - With O(lock) it takes the lock (RV(ignore:changed=true)); a second call fails because the lock is held.
options:
  project_dir:
    description:
      - The deploy directory; the ledger is in its C(releases) folder.
    type: path
    required: true
  project_name:
    description:
      - The Docker Compose project name (label C(com.docker.compose.project)), such as V(avatar-production).
    type: str
    required: true
  services:
    description:
      - The release services whose image must match the ledger.
    type: list
    elements: str
    default: [api, frontend]
  last:
    description:
      - How many of the last releases to return in RV(releases).
    type: int
    default: 5
  lock_path:
    description:
      - The environment's deploy lock (as M(avatar_mgmt.ops.deploy_lock) takes it). Only read.
      - Default C(<project_dir>/.deploy.lock).
    type: path
  compose_version:
    description:
      - Run C(docker compose version --short) and return RV(compose_version).
      - The module fails, saying what to install, when the C(docker) CLI is missing, C(docker compose) does not
        answer, or it is older than v2.
    type: bool
    default: false
  free_space_path:
    description:
      - Return in RV(free_space_mb) the free space of the filesystem that holds this folder, as C(df -Pm) shows it.
      - The module fails when the folder cannot be measured (it does not exist, for example).
    type: path
  proxy_marker:
    description:
      - Read the record of the last declaration of the proxy hosts (written by M(avatar_mgmt.ops.npm_proxy_host), its
        O(avatar_mgmt.ops.npm_proxy_host#module:declared_marker) option) and answer in RV(proxy_marker) whether NPM's
        database is still exactly as that declaration left it.
    type: dict
    suboptions:
      path:
        description: The record.
        type: path
        required: true
      database:
        description: NPM's SQLite database, as named when the record was written.
        type: path
        required: true
  images:
    description:
      - Image references to look for on the host (C(repo@sha256:...) or C(repo:tag)), answered in
        RV(images_present) and RV(images_missing).
      - A reference is on the host when an image lists it among its C(RepoDigests) or C(RepoTags), compared in the
        engine's full form (V(postgres:15.7) is V(docker.io/library/postgres:15.7)).
    type: list
    elements: str
    default: []
  current_images:
    description:
      - Also look for the image references of the ledger's current release (RV(current)), the release an automatic
        rollback goes back to. They are answered after O(images), each reference once.
    type: bool
    default: false
  keep:
    description:
      - Also return the ledger as M(avatar_mgmt.ops.release_ledger) with O(avatar_mgmt.ops.release_ledger#module:state=read)
        and this O(avatar_mgmt.ops.release_ledger#module:keep) returns it - RV(ledger), RV(rollback_target),
        RV(rollback_reason), RV(kept), RV(kept_versions) and RV(kept_references) - and warn, as it does, when the ledger is
        corrupt.
      - At least 1. Without it those keys are not returned.
    type: int
  lock:
    description:
      - Take the deploy lock before anything is read, as M(avatar_mgmt.ops.deploy_lock) with
        O(avatar_mgmt.ops.deploy_lock#module:state=present) takes it. The suboptions are that module's options.
      - When the lock is held by another run (or cannot be taken) the task fails as M(avatar_mgmt.ops.deploy_lock)
        fails, and nothing is read.
    type: dict
    suboptions:
      path:
        description:
          - The lock file. Default O(lock_path), else C(<project_dir>/.deploy.lock). When both are set they must be
            the same.
        type: path
      holder:
        description: Name of the operator, recorded in the lock. Empty means the AWX user, else the local user.
        type: str
        default: ''
      action:
        description: What the run does, recorded in the lock.
        type: str
        default: deploy
      version:
        description: The version being deployed, recorded in the lock.
        type: str
        default: ''
      job_id:
        description: The AWX or AAP job id, recorded in the lock. Empty means the job id of this run, if any.
        type: str
        default: ''
      timeout:
        description: Seconds to wait for a held lock to be released before failing; V(0) fails at once.
        type: int
        default: 0
      break_lock:
        description:
          - Remove a lock whose run is not provably alive before taking it (one more module run, only when there is
            such a lock).
        type: bool
        default: false
      force:
        description: Remove the lock before taking it even when its run is provably alive (implies O(lock.break_lock)).
        type: bool
        default: false
      break_hint:
        description: How the operator breaks a lock, quoted in messages.
        type: str
        default: '-e compose_deploy_break_lock=true'
      force_hint:
        description: How the operator adds force, quoted in messages about a lock of a live run.
        type: str
        default: ''
      break_only:
        description:
          - With O(lock.break_lock) or O(lock.force), remove no lock but the one with this fingerprint; a lock that
            changed since it was read is left alone.
        type: str
        default: ''
      _controller:
        description: Internal, set by the action plugin; do not set.
        type: dict
        default: {}
      _inventory_host:
        description: Internal, set by the action plugin; do not set.
        type: str
        default: ''
      _break_fingerprint:
        description: Internal, set by the action plugin; do not set.
        type: str
        default: ''
  compare:
    description:
      - Compare the release's files with those on the host in the same call, as M(avatar_mgmt.ops.release_files) with
        O(avatar_mgmt.ops.release_files#module:state=compared) does (the suboptions are that module's options), and
        answer RV(files) and RV(files_identical). Nothing is written; env file values are never returned.
      - With O(compare.drift_compose_files), and only when every file is identical (so what is on disk is what the
        release wants), also ask compose what it would change in what runs (C(docker compose up --dry-run --no-start))
        and answer RV(drift). A deploy that finds nothing to write and nothing that drifted has no switch to make.
      - The dry run leaves out the start phase (C(--no-start)), so it does not wait on the C(depends_on) health
        conditions (compose polls them every half second, even in a dry run); it decides what to create, recreate
        and remove as C(up) does. A service with a container that does not run (exited, never started, restarting)
        is named among what would change, as the start phase would start it.
    type: dict
    suboptions:
      env_files:
        description: The env files, as O(avatar_mgmt.ops.release_files#module:env_files).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path of the file.
            type: path
            required: true
          content:
            description: The wanted text (never returned or printed).
            type: str
          source:
            description: A file on the host whose bytes are wanted instead of O(compare.env_files[].content) when it exists.
            type: path
          source_required:
            description: Refuse when O(compare.env_files[].source) does not exist.
            type: bool
            default: false
          mode:
            description: The wanted mode.
            type: raw
            default: '0600'
      files:
        description: The other files, as O(avatar_mgmt.ops.release_files#module:files).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path of the file.
            type: path
            required: true
          content:
            description: The wanted text.
            type: str
          source:
            description: A file on the host whose bytes are wanted instead of O(compare.files[].content) when it exists.
            type: path
          source_required:
            description: Refuse when O(compare.files[].source) does not exist.
            type: bool
            default: false
          mode:
            description: The wanted mode.
            type: raw
            default: '0640'
          return_content:
            description: Return the file's current content in RV(files).
            type: bool
            default: false
      owner:
        description: The wanted owner of every file; empty leaves it out of the comparison.
        type: str
        default: ''
      group:
        description: The wanted group of every file; empty leaves it out of the comparison.
        type: str
        default: ''
      drift_compose_files:
        description:
          - The compose files (relative to O(project_dir)) to ask C(docker compose up --dry-run --no-start) about,
            when every compared file is identical. Empty asks nothing.
        type: list
        elements: str
        default: []
notes:
  - The engine is found as the C(docker) CLI finds it (C(DOCKER_HOST) and the other C(DOCKER_*) variables, or the
    local socket).
seealso:
  - module: avatar_mgmt.ops.release_ledger
  - module: avatar_mgmt.ops.deploy_lock
  - name: community.docker.docker_container_info
    description: The C(*_info) convention this module follows.
    link: https://docs.ansible.com/ansible/latest/collections/community/docker/docker_container_info_module.html
'''

EXAMPLES = r'''
- name: Compare the ledger with what runs
  avatar_mgmt.ops.release_info:
    project_dir: /opt/deploy-avatar-prod
    project_name: avatar-production
  register: info

- name: Say what does not agree
  ansible.builtin.debug:
    msg: "{{ info.differences if not info.agrees else 'runs ' ~ info.current.version ~ ' as recorded' }}"

- name: Before a deploy - compose, free space, ledger, images on the host and what runs, in one call
  avatar_mgmt.ops.release_info:
    project_dir: /opt/deploy-avatar-prod
    project_name: avatar-production
    last: 0
    compose_version: true
    free_space_path: /opt/deploy-avatar-prod
    keep: 5
    images:
      - ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
      - postgres:15.7
    current_images: true
  register: host
  check_mode: false

- name: Name the images to pull
  ansible.builtin.debug:
    msg: "{{ host.images_missing }}"

- name: Take the deploy lock, then read the host, in one call
  avatar_mgmt.ops.release_info:
    project_dir: /opt/deploy-avatar-prod
    project_name: avatar-production
    last: 0
    keep: 5
    lock:
      holder: alice
      action: deploy
      version: v1.2.0
      break_lock: "{{ compose_deploy_break_lock | default(false) }}"
  register: host

- name: Release the lock taken above (only if it is still ours)
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: absent
    token: "{{ host.token }}"
  when: host.acquired | default(false)

- name: List the last ten releases, newest first
  avatar_mgmt.ops.release_info:
    project_dir: /opt/deploy-avatar-staging
    project_name: avatar-staging
    services:
      - api
    last: 10
  register: staging
'''

RETURN = r'''
files:
  description:
    - With O(compare), by path, what M(avatar_mgmt.ops.release_files) with
      O(avatar_mgmt.ops.release_files#module:state=compared) returns in its RV(avatar_mgmt.ops.release_files#module:files).
  returned: when O(compare) is set
  type: dict
  sample: {/opt/deploy-avatar-prod/api.env: {env: true, exists: true, differs: false, attrs_differ: false, keys: []}}
files_identical:
  description: With O(compare), whether writing the files would change nothing (bytes, mode, owner and group).
  returned: when O(compare) is set
  type: bool
  sample: true
drift:
  description:
    - The services C(docker compose up) would create, recreate, start or remove (V(orphans) for containers
      of services the file no longer has), in compose order; V([]) when nothing; V(null) when not asked (files not
      identical, or no O(compare.drift_compose_files)) or when compose could not answer (RV(drift_error)).
  returned: when O(compare) is set
  type: list
  elements: str
  sample: [api]
drift_error:
  description: Why compose could not say what it would change; V('') otherwise. The deploy then switches as usual.
  returned: when O(compare) is set
  type: str
  sample: ''
current:
  description: The ledger's current entry, or V({}).
  returned: always
  type: dict
  sample: {id: 20260301T101500Z-v1.2.0, version: v1.2.0, result: success}
problem:
  description: V('') when the ledger is fine; otherwise what is wrong with C(releases/index.json) and what was used instead.
  returned: always
  type: str
  sample: ''
containers:
  description: Per compose service of the project, its container (the running one when there are several).
  returned: always
  type: dict
  sample:
    api:
      name: avatar-production-api-1
      id: 3f2a9c1b7d4e
      state: running
      health: healthy
      image: ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
      image_id: sha256:0d0652a257190a3b6a4d2d4b0f3f8f4c3b1e0f3d2c1b0a9f8e7d6c5b4a392817
      repo_digests: [ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b]
      digest: sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
      version: v1.2.0
      started_at: '2026-03-01T10:16:02.123456789Z'
  contains:
    name:
      description: Container name.
      returned: always
      type: str
    id:
      description: Short container id (12 characters).
      returned: always
      type: str
    state:
      description: Container state (V(running), V(exited), V(created), ...).
      returned: always
      type: str
    health:
      description: Docker health status, or V(none) without a healthcheck.
      returned: always
      type: str
    image:
      description: The image reference the container was configured with.
      returned: always
      type: str
    image_id:
      description: The id of the image the container runs.
      returned: always
      type: str
    repo_digests:
      description: The repo digests of that image (C(repo@sha256:...)).
      returned: always
      type: list
      elements: str
    digest:
      description: The digest that matches the ledger's reference of the service, or the first repo digest, or V('').
      returned: always
      type: str
    version:
      description:
        - The label C(org.avatar-mgmt.version) that the role C(avatar_mgmt.ops.compose_deploy) puts on release containers,
          else the label C(org.opencontainers.image.version) of the container or of its image, or V('').
      returned: always
      type: str
    started_at:
      description: When the container last started (engine time, UTC).
      returned: always
      type: str
agrees:
  description:
    - Whether every service of O(services) runs exactly one running container whose image's repo digests include the
      ledger's digest for it. V(false) without a current release in the ledger.
  returned: always
  type: bool
  sample: true
differences:
  description: Why it does not agree, one sentence each; V([]) when it agrees.
  returned: always
  type: list
  elements: str
  sample:
    - "api runs sha256:0d0652a25719… but the ledger's current release v1.2.0 (20260301T101500Z-v1.2.0) says sha256:6c3c624b58db…"
    - frontend is not running (state exited)
running_release:
  description:
    - The newest ledger entry whose images every service of O(services) runs (one running container each), with
      the fields of RV(releases); V({}) when none matches.
    - After a run killed during its switch, the release that really runs while RV(current) still names the old one.
  returned: always
  type: dict
  sample: {id: 20260301T101500Z-v1.2.0, version: v1.2.0, result: success, action: deploy, operator: alice,
           finished: '2026-03-01T10:17:40Z', backup: ''}
lock:
  description:
    - The deploy lock as it is on the host (its owner token left out), or V({}) when there is none.
    - With O(lock), the lock this task took (the same record M(avatar_mgmt.ops.deploy_lock) returns), or the lock
      that is held when it could not be taken.
    - Whether the run that took it is still alive can only be told on the controller that ran it;
      M(avatar_mgmt.ops.deploy_lock) with O(avatar_mgmt.ops.deploy_lock#module:state=query) says so.
  returned: always
  type: dict
  sample: {holder: alice, host: laptop, action: deploy, version: v1.1.0, since: '2026-03-01T10:15:00Z', format: current}
next_step:
  description:
    - What to do, when the lock is held or what runs does not agree with the ledger; V('') otherwise.
  returned: always
  type: str
  sample: >-
    The lock of a deploy of v1.1.0 by alice since 2026-03-01T10:15:00Z is still there and what runs does not agree
    with the ledger: that run may have been killed half-way. If it is not running any more, bring the stack to a
    known release and record it: deploy.yml -e image_tag=v1.1.0 -e compose_deploy_break_lock=true (or rollback.yml
    with rollback_to and -e compose_deploy_break_lock=true).
compose_version:
  description: What C(docker compose version --short) printed, without a leading V(v).
  returned: when O(compose_version=true)
  type: str
  sample: 2.29.1
free_space_mb:
  description: Free MB (1024 * 1024 bytes, rounded down) of the filesystem that holds O(free_space_path), for this user.
  returned: when O(free_space_path) is set
  type: int
  sample: 18432
proxy_marker:
  description:
    - The key of the last recorded declaration of the proxy hosts (V('') when there is none) and whether NPM is unchanged
      since (C(current)), with the reason.
    - C(current) is true only when the record is a regular file of this user that no one else may write, names
      O(proxy_marker.database), and that file has exactly the recorded size, modification and change times, inode
      and device.
  returned: when O(proxy_marker) is set
  type: dict
  sample: {key: 3f1c0e..., current: true, reason: "NPM's database is unchanged since the declaration"}
images_present:
  description: The references of O(images) (and, with O(current_images), of the current release) that are on the host.
  returned: when O(images) is not empty or O(current_images=true)
  type: list
  elements: str
  sample: [postgres:15.7]
images_missing:
  description: The references of O(images) (and, with O(current_images), of the current release) that are not on the host.
  returned: when O(images) is not empty or O(current_images=true)
  type: list
  elements: str
  sample: [ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b]
ledger:
  description: The ledger, as M(avatar_mgmt.ops.release_ledger) returns it.
  returned: when O(keep) is set
  type: dict
  sample:
    current: 20260301T101500Z-v1.2.0
    releases:
      - {id: 20260301T101500Z-v1.2.0, version: v1.2.0, result: success}
rollback_target:
  description: The entry a rollback goes to by default (the release before the one that runs now), or V({}).
  returned: when O(keep) is set
  type: dict
  sample: {id: 20260214T090000Z-v1.1.0, version: v1.1.0, result: success}
rollback_reason:
  description: Why there is no RV(rollback_target), listing the releases; V('') when there is one.
  returned: when O(keep) is set
  type: str
  sample: ''
kept:
  description: Ids of the entries the index keeps with O(keep), oldest first.
  returned: when O(keep) is set
  type: list
  elements: str
  sample: [20260214T090000Z-v1.1.0, 20260301T101500Z-v1.2.0]
kept_versions:
  description: Versions of the kept successful entries, newest first.
  returned: when O(keep) is set
  type: list
  elements: str
  sample: [v1.2.0, v1.1.0]
kept_references:
  description: Image references (C(repo@sha256:...)) of every kept entry.
  returned: when O(keep) is set
  type: list
  elements: str
  sample: [ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b]
token:
  description:
    - The owner token of the lock this task took; pass it to M(avatar_mgmt.ops.deploy_lock) with
      O(avatar_mgmt.ops.deploy_lock#module:state=absent). Empty when this task holds no lock.
  returned: when O(lock) is set
  type: str
  sample: 3f9c2a7d0b1e4c5f8a6d2e1b0c9f7a3e
acquired:
  description: Whether this task took the lock and still holds it. Always V(false) in check mode.
  returned: when O(lock) is set
  type: bool
  sample: true
released:
  description: Whether this task released the lock it took because reading failed afterwards.
  returned: when O(lock) is set
  type: bool
  sample: false
held:
  description: Whether a lock file exists when the task ends (ours or another run's).
  returned: when O(lock) is set
  type: bool
  sample: true
stale:
  description: As RV(avatar_mgmt.ops.deploy_lock#module:stale) - for another run's lock, whether that run is gone.
  returned: when O(lock) is set
  type: bool
  sample: null
stale_reason:
  description: Why RV(stale) is what it is.
  returned: when a lock of another run was judged
  type: str
  sample: 'pid 41235 on ops-laptop: that process is not running'
waited:
  description: Seconds spent waiting for a held lock to be released.
  returned: when O(lock) is set
  type: float
  sample: 0.0
broken:
  description: The lock that O(lock.break_lock) or O(lock.force) removed before taking (same keys as RV(lock)), or V({}).
  returned: when O(lock) is set
  type: dict
  sample: {}
msg:
  description: What happened to the lock, or why it could not be taken and what to do.
  returned: when O(lock) is set
  type: str
  sample: Took the lock /opt/deploy-avatar-prod/.deploy.lock.
releases:
  description: The last O(last) ledger entries, newest first, with the fields an operator reads.
  returned: always
  type: list
  elements: dict
  sample:
    - id: 20260301T101500Z-v1.2.0
      version: v1.2.0
      result: success
      action: deploy
      operator: alice
      finished: '2026-03-01T10:17:40Z'
      backup: 20260301T101000Z
'''

import os
import platform
import socket
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import (
    _compose,
    _ledger,
    _lock,
    _proxy_marker,
    _release_files,
    _release_info,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule

LOCK_OPTIONS = {'path': {'type': 'path'}, **_lock.take_options()}


def _host_checks(module, host):
    """compose_version and free_space_mb, when asked; HostCheckError says what to do when a check fails."""
    params = module.params
    answers = {}
    if params['compose_version']:
        docker_bin = module.get_bin_path('docker')
        rc, out, err = (None, '', '')
        if docker_bin:
            rc, out, err = _run(module, [docker_bin, 'compose', 'version', '--short'])
        answers['compose_version'] = _release_info.compose_version(rc, out, err, host)
    if params['free_space_path']:
        try:
            answers['free_space_mb'] = _release_info.free_mb(os.statvfs(params['free_space_path']))
        except OSError as exc:
            raise _release_info.HostCheckError(
                f"the free space under {params['free_space_path']} (free_space_path) cannot be measured on "
                f'{host}: {exc.strerror or exc}. Check that the folder exists (playbooks/bootstrap.yml creates '
                'the deploy directory). Nothing was changed.'
            )
    return answers


def _run(module, argv, cwd=None):
    """run_command that never ends the module from a thread: a command that cannot be run is exit 127."""
    try:
        return module.run_command(argv, cwd=cwd, handle_exceptions=False)
    except OSError as exc:
        return 127, '', str(exc)


def _query_docker(look_for, project_name):
    """The project's containers and, when images are looked for, the host's images (Docker's API)."""
    client = _release_info.connect()
    try:
        found = _release_info.query_project(client, project_name)
        images = _release_info.list_images(client) if look_for else []
    finally:
        client.close()
    return found, images


def _read(module, host, lock_path, taken):
    """Everything the module answers; raises HostCheckError, LockError, DockerQueryError or ValueError.

    The reads that wait on Docker (compose version, the project's containers and images, compose's dry run)
    run together in threads: the call costs about its slowest read, not their sum.
    """
    params = module.params
    look_for = params['images'] or params['current_images']
    with ThreadPoolExecutor(max_workers=3) as pool:
        checks = pool.submit(_host_checks, module, host)
        docker = pool.submit(_query_docker, look_for, params['project_name'])
        compared = pool.submit(_compare, module) if params['compare'] is not None else None
        loaded = _ledger.load(os.path.join(params['project_dir'], 'releases'))
        # The lock this call took is the lock on the host: the same view as reading it back.
        lock = taken['lock'] if taken and taken['acquired'] else _lock.query(lock_path)['lock']
        # result() raises what its thread raised: a host check's error before Docker's (a failed read of the lock,
        # above, comes first of all).
        extra = checks.result()
        found, images = docker.result()
        compare_answer = compared.result() if compared is not None else None
    result = _release_info.release_info(loaded, found, params['services'], params['last'], lock)
    if look_for:
        wanted = _release_info.wanted_images(params['images'], result['current'] if params['current_images'] else None)
        result['images_present'], result['images_missing'] = _release_info.images_on_host(images, wanted)
    if params['keep'] is not None:
        result.update(_release_info.ledger_answer(loaded.ledger, params['keep']))
        if loaded.problem:
            module.warn(loaded.problem)
    result.update(extra)
    if params['proxy_marker'] is not None:
        result['proxy_marker'] = _proxy_marker.read(params['proxy_marker']['path'], params['proxy_marker']['database'])
    if compare_answer is not None:
        services = compare_answer.pop('_services', [])
        if compare_answer['drift'] is not None:
            # A container that never started or that restarts: the dry run without its start phase does not name it.
            orphans = ['orphans'] if 'orphans' in compare_answer['drift'] else []
            compare_answer['drift'] = _compose.with_stopped(compare_answer['drift'], services, found) + orphans
        result.update(compare_answer)
    return result


def _compare(module):
    """The release's files against the host's, and when they are identical what compose would change."""
    params = module.params
    options = params['compare']
    plans = _release_files.plan(options['env_files'], options['files'], options['owner'], options['group'])
    answer = {
        'files': _release_files.report(plans, 'compared'),
        'files_identical': _release_files.identical(plans),
        'drift': None,
        'drift_error': '',
    }
    if answer['files_identical'] and options['drift_compose_files']:
        answer['drift'], answer['drift_error'], answer['_services'] = _drift(module, options['drift_compose_files'])
    return answer


def _drift(module, files):
    """``(services compose would change, '', the file's services)`` or ``(None, why not, [])``: compose's own dry run of
    what runs.

    ``--no-start``: the create phase only, which decides what ``up`` would create, recreate and remove (orphans
    included) exactly as ``up`` does, without the start phase's wait on ``depends_on`` health conditions (a
    ticker of half a second, even in a dry run). A container that exited is printed ``Created``; one that never
    started or that restarts is not printed at all, so _read adds those (``_compose.with_stopped``) as the start
    phase would have started them.
    """
    params = module.params
    compose = ['docker', 'compose', '--project-directory', params['project_dir'], '-p', params['project_name']]
    compose += [a for name in files for a in ('-f', name)]
    # The service list and the dry run read together (neither waits for the other).
    with ThreadPoolExecutor(max_workers=2) as pool:
        config = pool.submit(_run, module, compose + ['config', '--services'], params['project_dir'])
        dry_run = pool.submit(
            _run, module, compose + ['up', '--dry-run', '--no-start', '--remove-orphans'], params['project_dir']
        )
        config, dry_run = config.result(), dry_run.result()
    rc, out, err = config
    if rc == 127:  # no docker CLI, or the folder cannot be entered: the switch says why, with the lock given back
        return None, f'docker compose could not be run: {err}', []
    if rc != 0:
        return None, f'docker compose config failed (exit {rc}): {(err or out).strip()[-300:]}', []
    services = out.split()
    rc, out, err = dry_run
    if rc != 0:
        return None, f'docker compose up --dry-run failed (exit {rc}): {(err or out).strip()[-300:]}', []
    parsed = _compose.parse_dry_run(out + '\n' + err, params['project_name'], services)
    drift = _compose.changed_services(parsed, services)
    if _compose.orphans_change(parsed):
        drift.append('orphans')
    return drift, '', services


def _take_lock(module, lock_path):
    """Take the lock as avatar_mgmt.ops.deploy_lock does; fail_json when it is held or cannot be taken."""
    options = module.params['lock']
    if options['timeout'] < 0:
        module.fail_json(
            msg=f"lock.timeout must be 0 or more seconds, got {options['timeout']}. Nothing was changed.",
            changed=False,
            **_lock.empty_result(),
        )
    try:
        taken = _lock.take(lock_path, options, module.check_mode, socket.gethostname())
    except _lock.LockError as exc:
        module.fail_json(msg=str(exc), changed=False, **_lock.empty_result())
    if _lock.refused(taken):
        # Held by another run (in check mode too, so that --check tells the truth). Nothing was read.
        module.fail_json(**taken)
    return taken


def _give_back(lock_path, taken):
    """Release the lock this call took (reading failed after it); say what happened, for the message."""
    answer = _lock.give_back(lock_path, taken['token'])
    if answer['error']:
        return ' ' + answer['msg']
    taken.update(acquired=False, released=True, held=False, token='')
    return f' The lock {lock_path} this task took was released.'


def main():
    module = SecretSafeModule(
        argument_spec={
            'project_dir': {'type': 'path', 'required': True},
            'project_name': {'type': 'str', 'required': True},
            'services': {'type': 'list', 'elements': 'str', 'default': ['api', 'frontend']},
            'last': {'type': 'int', 'default': 5},
            'lock_path': {'type': 'path'},
            'compose_version': {'type': 'bool', 'default': False},
            'free_space_path': {'type': 'path'},
            'images': {'type': 'list', 'elements': 'str', 'default': []},
            'current_images': {'type': 'bool', 'default': False},
            'keep': {'type': 'int'},
            'lock': {'type': 'dict', 'options': LOCK_OPTIONS},
            'proxy_marker': {
                'type': 'dict',
                'options': {'path': {'type': 'path', 'required': True}, 'database': {'type': 'path', 'required': True}},
            },
            'compare': {
                'type': 'dict',
                'options': dict(
                    _release_files.argument_options(),
                    drift_compose_files={'type': 'list', 'elements': 'str', 'default': []},
                ),
            },
        },
        supports_check_mode=True,
    )
    params = module.params
    host = platform.node() or 'this host'
    if not _release_info.HAS_DOCKER:
        module.fail_json(
            msg=_release_info.MISSING_SDK.format(host=host),
            error=_release_info.DOCKER_IMPORT_ERROR,
            changed=False,
        )
    if params['last'] < 0:
        module.fail_json(msg=f"last must be at least 0, got {params['last']}", changed=False)
    if not params['project_name'].strip():
        module.fail_json(msg='project_name must name the compose project, such as avatar-production', changed=False)
    if params['keep'] is not None and params['keep'] < 1:
        module.fail_json(msg=f"keep must be at least 1, got {params['keep']}", changed=False)
    if not all(ref.strip() for ref in params['images']):
        module.fail_json(msg='images must not hold an empty reference', changed=False)
    lock_paths = {(params['lock'] or {}).get('path'), params['lock_path']} - {None, ''}
    if len(lock_paths) > 1:
        module.fail_json(
            msg=f"lock.path ({params['lock']['path']}) and lock_path ({params['lock_path']}) name different "
            'locks: set one of them. Nothing was changed.',
            changed=False,
        )

    lock_path = (
        (params['lock'] or {}).get('path') or params['lock_path'] or os.path.join(params['project_dir'], '.deploy.lock')
    )
    # The lock first: nothing is read before it is held.
    taken = _take_lock(module, lock_path) if params['lock'] is not None else None
    try:
        result = _read(module, host, lock_path, taken)
    except Exception as exc:  # noqa: BLE001 - whatever failed, a lock this call took must not outlive it
        if isinstance(exc, _release_info.DockerQueryError):
            msg = f'{exc} (on {host}). Start Docker or check that this user may use it; nothing was changed.'
        elif isinstance(exc, (_release_info.HostCheckError, _lock.LockError, ValueError)):
            msg = str(exc)
        else:
            msg = f'release_info failed on {host}: {type(exc).__name__}: {exc}'
        if taken and taken['acquired']:
            msg += _give_back(lock_path, taken)
        module.fail_json(**dict(taken or {}, msg=msg, changed=False))
    if taken is not None:
        # changed: whether the lock was (or in check mode would be) taken, as deploy_lock says.
        result.update(taken)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
