#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: deploy_lock
short_description: Take, release or read the per-environment deploy lock
version_added: 0.1.0
description:
  - One run at a time may deploy, roll back, back up or restore an environment. The lock is one file on the
    managed host; only "the file exists" means held.
  - O(state=present) takes the lock atomically. The full JSON record is written to a private temp file in the
    same directory and synced, then hard-linked to O(path), which fails when the lock is held. So no reader
    ever sees a half-written lock. Every other error (missing directory, permission denied, read-only or full
    filesystem, ...) fails naming its cause and leaves neither a temp file nor a lock behind.
  - The record holds O(holder), the managed host's inventory name, O(action), O(version), the time taken
    (UTC), O(job_id), a random owner token and the controller run that took it (controller host name, pid of
    C(ansible-playbook), the start time of that pid and the controller's boot id).
  - When the lock is held, the task fails with a message naming the holder, host, action, version, time and job
    id, and what to do. The action plugin, which runs on the controller, tells whether the run that holds the
    lock is still alive. That works only when the lock was taken from the same controller host; see RV(stale).
  - O(state=absent) removes the lock only when it still carries O(token), the token that O(state=present)
    returned, or with O(force) whatever lock is there. A release that does not own the lock changes nothing
    and does not fail.
  - O(state=query) only reads.
  - Results never show another owner's token, only the RV(lock.fingerprint) of the lock file.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
requirements:
  - Python 3.9 or later on the managed host (standard library only).
  - A filesystem with hard links for the directory of O(path).
attributes:
  action:
    support: full
    description: An action plugin of the same name adds the controller's identity and judges whether the holder is alive.
  check_mode:
    support: full
    description:
      - Nothing is written. O(state=present) fails when the lock is held, as a real run would, and otherwise
        reports RV(ignore:changed=true) (the lock would be taken). O(state=absent) reports whether it would
        release the lock.
  diff_mode:
    support: none
    description: The lock is not content to compare; there is no diff.
  idempotent:
    support: none
    description:
      - Taking a lock is meant to succeed once; a second O(state=present) fails because the lock is held
        (by this very run, as the message says). O(state=absent) and O(state=query) are idempotent.
options:
  path:
    description:
      - Path of the lock file on the managed host, such as V(/opt/deploy-avatar-prod/.deploy.lock).
      - Its directory must exist. The file is written as the connecting user with mode V(0640).
    type: path
    required: true
  state:
    description:
      - V(present) takes the lock, V(absent) releases it, V(query) only reads it.
    type: str
    choices: [present, absent, query]
    default: present
  holder:
    description: Name of the operator, recorded in the lock.
    type: str
    default: ''
  action:
    description: What the run does, recorded in the lock (V(deploy), V(rollback), V(backup), V(restore), ...).
    type: str
    default: deploy
  version:
    description: The version being deployed, recorded in the lock.
    type: str
    default: ''
  job_id:
    description: The AWX or AAP job id, recorded in the lock when there is one.
    type: str
    default: ''
  timeout:
    description:
      - O(state=present) only. Seconds to wait for a held lock to be released before failing. The managed host
        polls the lock about once a second; V(0) fails at once.
    type: int
    default: 0
  break_lock:
    description:
      - O(state=present) only. Before taking the lock, remove a lock whose run is not provably alive
        (RV(stale) is V(true) or V(null)). A lock held by a live run is removed only with O(force).
      - Only the very lock that was judged is removed; a lock taken by another run in the meantime is left alone.
    type: bool
    default: false
  force:
    description:
      - With O(state=present), remove the lock before taking it even when its run is provably alive
        (implies O(break_lock)).
      - With O(state=absent), remove the lock whatever token it carries.
    type: bool
    default: false
  token:
    description:
      - O(state=absent) only. The RV(token) that O(state=present) returned; the lock is removed only when it still
        carries this token.
    type: str
    default: ''
  break_hint:
    description: How the operator breaks a lock, quoted in messages.
    type: str
    default: '-e compose_deploy_break_lock=true'
  force_hint:
    description:
      - How the operator adds force, quoted in messages about a lock of a live run.
      - When empty, messages say V(force=true).
    type: str
    default: ''
  break_only:
    description:
      - With O(break_lock) or O(force), remove no lock but the one with this RV(lock.fingerprint) (as O(state=query)
        returned it when the lock was judged). A lock that changed since is left alone and the task fails, saying who
        holds it now.
      - Empty (the default) breaks the lock found when the task runs.
    type: str
    default: ''
  _controller:
    description:
      - Internal, set by the action plugin; do not set. The controller run's C(host), C(pid), C(pid_start), C(boot_id).
    type: dict
    default: {}
  _inventory_host:
    description:
      - Internal, set by the action plugin; do not set. The managed host's inventory name.
    type: str
    default: ''
  _break_fingerprint:
    description:
      - Internal, set by the action plugin; do not set. With O(state=present), remove the lock with this
        RV(lock.fingerprint) before taking it; with O(state=absent) and O(force), remove only that lock.
    type: str
    default: ''
notes:
  - The lock tells a live holder from a dead one only from the controller host that took it. From another
    controller (another AWX execution node, another laptop) RV(stale) is V(null), and O(break_lock) removes
    such a lock; use it only when no run is in progress.
  - An empty or unreadable lock file, or one in the format of the earlier shell version of this lock (holder,
    since, action, version, no token), counts as held by an unknown owner; its fields are reported.
  - The common case (no lock) costs one module run. Breaking a lock costs two.
seealso:
  - name: Kamal deploy lock
    description: The same idea in Kamal, C(kamal lock).
    link: https://kamal-deploy.org/docs/commands/lock/
'''

EXAMPLES = r'''
- name: Take the deploy lock
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    holder: alice
    action: deploy
    version: v1.2.0
    job_id: "{{ awx_job_id | default('') }}"
    timeout: 60
    break_lock: "{{ compose_deploy_break_lock | default(false) }}"
    break_hint: '-e compose_deploy_break_lock=true'
  register: lock

- name: Release the deploy lock taken above (only if it is still ours)
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: absent
    token: "{{ lock.token }}"
  when: lock.acquired | default(false)

- name: Who holds the lock?
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: query
  register: lock_state

- name: Show the holder
  ansible.builtin.debug:
    msg: "{{ lock_state.lock.holder }} since {{ lock_state.lock.since }}, stale: {{ lock_state.stale }}"
  when: lock_state.held

- name: Remove the lock whatever it is (the operator is sure no run is in progress)
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: absent
    force: true
'''

RETURN = r'''
token:
  description:
    - The owner token of the lock this task took; pass it to O(state=absent) as O(token).
    - Empty when this task took no lock (never another owner's token).
  returned: always
  type: str
  sample: 3f9c2a7d0b1e4c5f8a6d2e1b0c9f7a3e
acquired:
  description: Whether this task took the lock. Always V(false) in check mode.
  returned: always
  type: bool
  sample: true
released:
  description: Whether this task removed the lock with O(state=absent). Always V(false) in check mode.
  returned: always
  type: bool
  sample: false
held:
  description: Whether a lock file exists when the task ends (ours or another run's).
  returned: always
  type: bool
  sample: true
lock:
  description:
    - The lock record, without its token. With O(state=present), the lock taken or the lock that is held; with
      O(state=absent), the lock removed or left in place; with O(state=query), the lock there is.
    - Empty when there is no lock.
  returned: always
  type: dict
  sample:
    format: current
    holder: alice
    host: prod-1
    action: deploy
    version: v1.2.0
    since: '2025-01-31T09:15:02Z'
    job_id: '4711'
    fingerprint: 0b5d6f7c1f0e8d8f5a1c2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b
    controller:
      host: ops-laptop
      pid: 41235
      pid_start: 88122345
      boot_id: 6c2f4a70-7d1b-4f9e-9a55-2f0b8e1d3c44
  contains:
    format:
      description:
        - V(current) (written by this module), V(legacy) (JSON without a token, such as the earlier shell
          version wrote) or V(invalid) (empty or not a JSON object; see RV(lock.problem)).
      returned: when a lock exists
      type: str
      sample: current
    holder:
      description: The operator recorded in the lock.
      returned: when a lock exists
      type: str
      sample: alice
    host:
      description: The inventory name of the managed host the lock was taken for.
      returned: when a lock exists
      type: str
      sample: prod-1
    action:
      description: What the run that took the lock does.
      returned: when a lock exists
      type: str
      sample: deploy
    version:
      description: The version the run deploys.
      returned: when a lock exists
      type: str
      sample: v1.2.0
    since:
      description: When the lock was taken, UTC ISO 8601.
      returned: when a lock exists
      type: str
      sample: '2025-01-31T09:15:02Z'
    job_id:
      description: The AWX job id of the run, if any.
      returned: when a lock exists
      type: str
      sample: '4711'
    fingerprint:
      description: SHA-256 of the lock file's bytes; names this exact lock without revealing its token.
      returned: when a lock exists
      type: str
      sample: 0b5d6f7c1f0e8d8f5a1c2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b
    controller:
      description: The controller run that took the lock (C(host), C(pid), C(pid_start), C(boot_id)); empty when not recorded.
      returned: when a lock exists
      type: dict
      sample: {host: ops-laptop, pid: 41235, pid_start: 88122345, boot_id: 6c2f4a70-7d1b-4f9e-9a55-2f0b8e1d3c44}
    problem:
      description: Why the lock file could not be read as a record.
      returned: when RV(lock.format) is V(invalid)
      type: str
      sample: the file is not valid JSON
stale:
  description:
    - For another run's lock, V(true) when the run that took it is provably gone (same controller host, and it
      rebooted, or the pid is not running, or the pid now belongs to another process), V(false) when it is
      provably alive, V(null) when this controller cannot tell (another controller host, nothing recorded).
    - V(null) too when there is no lock or the lock is the one this task took.
  returned: always
  type: bool
  sample: true
stale_reason:
  description: Why RV(stale) is what it is.
  returned: when a lock of another run was judged
  type: str
  sample: 'pid 41235 on ops-laptop: that process is not running'
waited:
  description: Seconds spent waiting for a held lock to be released.
  returned: always
  type: float
  sample: 1.02
broken:
  description: The lock that O(break_lock) or O(force) removed before taking (same keys as RV(lock)), or V({}).
  returned: always
  type: dict
  sample: {}
msg:
  description: What happened, or why the lock could not be taken and what to do.
  returned: always
  type: str
  sample: Took the lock /opt/deploy-avatar-prod/.deploy.lock.
'''

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'path', 'required': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent', 'query']},
            'token': {'type': 'str', 'default': '', 'no_log': True},
            **_lock.take_options(),
        },
        supports_check_mode=True,
    )
    params = module.params
    path = params['path']
    if params['timeout'] < 0:
        module.fail_json(
            msg=f"timeout must be 0 or more seconds, got {params['timeout']}. Nothing was changed.",
            changed=False,
            **_lock.empty_result(),
        )
    result = _lock.empty_result()
    try:
        if params['state'] == 'query':
            result.update(_lock.query(path))
        elif params['state'] == 'absent':
            result.update(
                _lock.release(
                    path,
                    token=params['token'],
                    force=params['force'],
                    expected_fingerprint=params['_break_fingerprint'],
                    check_mode=module.check_mode,
                )
            )
        else:
            result = _lock.take(path, params, module.check_mode, socket.gethostname())
    except _lock.LockError as exc:
        module.fail_json(msg=str(exc), changed=False, **_lock.empty_result())
    if params['state'] == 'present' and _lock.refused(result):
        # Held by another run (in check mode too, so that --check tells the truth).
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
