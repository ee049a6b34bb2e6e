#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take, release or read an environment's deploy lock
version_added: 0.2.0
description:
  - One deploy, rollback, backup or restore per environment at a time. The lock is a file on the host;
    only its existence means "held".
  - Taking it is atomic (the full record is written and fsynced to a private file, then hard-linked to
    O(path)), so among any number of runs started at once exactly one wins, and a reader never sees
    a half-written lock. Any failure other than "held" (missing directory, permissions, a read-only
    or full disk) fails with its cause.
  - The record names the holder, host, action, version, time and AWX job, and the run that took it
    (the control node's host name, the C(ansible-playbook) PID, its start time and the boot id). An
    action plugin adds those on the control node and, when the lock is held, tells whether the run
    that holds it is provably gone (RV(stale)).
  - A random owner token is stored in the lock; only a release with that token removes it.
author:
  - avatar_mgmt.ops contributors
attributes:
  check_mode:
    support: full
    description: Nothing is created or removed; O(state=present) still fails when the lock is held, so C(--check) tells the truth.
  diff_mode:
    support: none
  idempotent:
    support: partial
    description: O(state=absent) and O(state=query) are idempotent; every O(state=present) takes a new lock.
  action:
    support: full
    description: Runs through an action plugin on the control node, which identifies the run and judges stale locks.
options:
  path:
    description: The lock file, in a directory that exists (the deploy directory).
    type: path
    required: true
  state:
    description:
      - V(present) takes the lock, V(absent) releases it, V(query) only reads it.
    type: str
    choices: [present, absent, query]
    default: present
  holder:
    description:
      - Who takes the lock. Empty means from the run, found by the action plugin (the AWX user, or
        C(schedule:NAME) for a scheduled job, else the local user on the control node).
    type: str
    default: ''
  action:
    description: What the run does (deploy, rollback, backup, restore, ...), recorded in the lock.
    type: str
    default: deploy
  version:
    description: The version the run deploys, recorded in the lock.
    type: str
    default: ''
  job_id:
    description: The AWX job id, recorded in the lock. Empty means from C(awx_job_id) when the run has one.
    type: str
    default: ''
  timeout:
    description: Seconds to wait for a held lock to be released before failing. V(0) fails at once.
    type: int
    default: 0
  break_lock:
    description:
      - With O(state=present), remove a held lock first when its run is not provably alive (stale, or
        taken from another control node). A lock held by a live run is still refused unless O(force).
    type: bool
    default: false
  force:
    description:
      - With O(state=present), remove a held lock first even when its run is alive.
      - With O(state=absent), remove the lock whoever holds it.
    type: bool
    default: false
  token:
    description: With O(state=absent), the owner token that O(state=present) returned; only that lock is removed.
    type: str
    default: ''
    no_log: true
  break_hint:
    description: How an operator breaks a stale lock, quoted in the failure message.
    type: str
    default: -e compose_deploy_break_lock=true
  expected_token_hash:
    description:
      - Internal, set by the action plugin. With O(state=absent) and O(force), remove the lock only while
        its token hash is still this one.
    type: str
    default: ''
  controller:
    description: Internal, set by the action plugin. The run that takes the lock.
    type: dict
    default: {}
  inventory_host:
    description: Internal, set by the action plugin. The managed host's inventory name.
    type: str
    default: ''
seealso:
  - module: avatar_mgmt.ops.release_ledger
"""

EXAMPLES = r"""
- name: Take the environment's lock, waiting up to 10 minutes for a running deploy
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    action: backup
    timeout: 600
  register: lock

- name: Release it
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: absent
    token: "{{ lock.token }}"

- name: Who holds it?
  avatar_mgmt.ops.deploy_lock:
    path: /opt/deploy-avatar-prod/.deploy.lock
    state: query
  register: held
"""

RETURN = r"""
acquired:
  description: Whether this run took the lock.
  returned: always
  type: bool
released:
  description: Whether this run removed the lock.
  returned: always
  type: bool
held:
  description: Whether a lock exists that is not this run's.
  returned: always
  type: bool
token:
  description: The owner token of the lock this run took (pass it to O(state=absent)).
  returned: when acquired
  type: str
lock:
  description: The lock's record (holder, host, action, version, since, job_id, controller); another run's token only as C(token_hash).
  returned: always
  type: dict
  sample: {holder: alice, host: prod-1, action: deploy, version: v1.2.0, since: '2026-11-30T10:00:00Z', job_id: '',
           controller: {host: laptop, pid: 4242, pid_start: 1234567, boot_id: 0f6c...}}
stale:
  description: For another run's lock, V(true) when its run is provably gone, V(false) when it is alive, V(null) when that cannot be told.
  returned: when held
  type: bool
waited:
  description: Seconds spent waiting for a held lock.
  returned: always
  type: float
broken:
  description: The record of a lock that was removed by O(break_lock) or O(force).
  returned: always
  type: dict
"""

import datetime
import secrets

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'path', 'required': True},
            'state': {'type': 'str', 'choices': ['present', 'absent', 'query'], 'default': 'present'},
            'holder': {'type': 'str', 'default': ''},
            'action': {'type': 'str', 'default': 'deploy'},
            'version': {'type': 'str', 'default': ''},
            'job_id': {'type': 'str', 'default': ''},
            'timeout': {'type': 'int', 'default': 0},
            'break_lock': {'type': 'bool', 'default': False},
            'force': {'type': 'bool', 'default': False},
            'token': {'type': 'str', 'default': '', 'no_log': True},
            'break_hint': {'type': 'str', 'default': '-e compose_deploy_break_lock=true'},
            'expected_token_hash': {'type': 'str', 'default': ''},
            'controller': {'type': 'dict', 'default': {}},
            'inventory_host': {'type': 'str', 'default': ''},
        },
        supports_check_mode=True,
    )
    p = module.params
    path = p['path']
    result = {'changed': False, 'acquired': False, 'released': False, 'held': False, 'lock': {}, 'waited': 0.0,
              'broken': {}}
    try:
        if p['state'] == 'query':
            current = _lock.read_lock(path)
            result.update(held=current is not None, lock=_lock.public_view(current))
            module.exit_json(**result)

        if p['state'] == 'absent':
            current = _lock.read_lock(path)
            if current is None:
                module.exit_json(msg=f'No lock at {path}.', **result)
            mine = bool(p['token']) and current.get('token') == p['token']
            if not (mine or p['force']):
                result.update(held=True, lock=_lock.public_view(current))
                module.exit_json(msg=f'The lock at {path} is not this run\'s (held by {_lock.describe(current)}); left as it is.',
                                 **result)
            if module.check_mode:
                result.update(changed=True, released=True, lock=_lock.public_view(current))
                module.exit_json(**result)
            released, found = _lock.release(path, p['token'], force=p['force'], expected_hash=p['expected_token_hash'])
            result.update(changed=released, released=released, lock=_lock.public_view(found),
                          broken=_lock.public_view(found) if released and not mine else {})
            module.exit_json(**result)

        token = secrets.token_hex(16)
        record = {
            'holder': p['holder'] or 'unknown',
            'host': p['inventory_host'],
            'action': p['action'],
            'version': p['version'],
            'since': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'job_id': p['job_id'],
            'controller': p['controller'],
            'token': token,
        }
        if module.check_mode:
            current = _lock.read_lock(path)
            if current is None:
                result.update(changed=True, acquired=True, lock=_lock.public_view(record))
                module.exit_json(**result)
            result.update(held=True, lock=_lock.public_view(current))
            module.fail_json(msg=_held_message(path, current, 0, p['break_hint']), **result)

        acquired, existing, waited = _lock.take(path, record, timeout=max(0, p['timeout']))
    except _lock.LockError as exc:
        module.fail_json(msg=f'{exc}. Nothing was changed.', **result)
    result['waited'] = waited
    if acquired:
        result.update(changed=True, acquired=True, token=token, lock=_lock.public_view(record))
        module.exit_json(**result)
    result.update(held=True, lock=_lock.public_view(existing))
    module.fail_json(msg=_held_message(path, existing, waited, p['break_hint']), **result)


def _held_message(path, lock, waited, hint):
    waited_text = f' after waiting {waited:.0f}s' if waited else ''
    return (f'The environment is locked{waited_text}: {path} is held by {_lock.describe(lock)}. '
            f'Wait for that run to finish. If it died, run again with {hint}. Nothing was changed.')


if __name__ == '__main__':
    main()
