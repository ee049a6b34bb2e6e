#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ssh_host_key
short_description: Check that a server's SSH host key is recorded in a known_hosts file
version_added: 0.2.0
description:
  - Reads the host keys the server offers (C(ssh-keyscan)) and compares them with the keys recorded for it in
    O(known_hosts), the way ssh does with C(StrictHostKeyChecking=yes). Run it on the control node
    (C(delegate_to=localhost)) before the first task that connects, so an unknown or changed key is refused
    with the commands that record it instead of ssh's bare C(Host key verification failed).
  - The key is V(known) when the server offers a key recorded for C([host]:port) (C(host) on port 22) and no
    recorded key of a type it offers differs; V(unknown) when nothing is recorded for that name; V(changed)
    when a recorded key differs from the server's key of that type or the server no longer offers that type.
    Hashed names, C(*) and C(?) patterns and C(@revoked) lines are understood.
  - Fails unless the key is V(known); the message names the fingerprints and the C(ssh-keyscan) /
    C(ssh-keygen -R) commands to run after checking them. It never writes O(known_hosts).
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Only reads; the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  idempotent:
    support: full
    description: Never changes anything.
options:
  host:
    description: The address ssh connects to (C(ansible_host)).
    type: str
    required: true
  port:
    description: The SSH port (C(ansible_port)).
    type: int
    default: 22
  known_hosts:
    description:
      - The known_hosts file the inventory's ssh arguments name (C(UserKnownHostsFile)). A missing file records nothing.
    type: path
    required: true
  inventory_host:
    description: The inventory name of the server, for the message.
    type: str
    default: ''
  timeout:
    description: Seconds C(ssh-keyscan) waits for the server.
    type: int
    default: 10
'''

EXAMPLES = r'''
- name: Check the host key before connecting
  avatar_mgmt.ops.ssh_host_key:
    host: "{{ ansible_host | default(inventory_hostname) }}"
    port: "{{ ansible_port | default(22) }}"
    known_hosts: "{{ inventory_dir }}/known_hosts"
    inventory_host: "{{ inventory_hostname }}"
  delegate_to: localhost
'''

RETURN = r'''
state:
  description: V(known), V(unknown) or V(changed).
  returned: when the server answered
  type: str
  sample: known
name:
  description: The name looked up in O(known_hosts).
  returned: always
  type: str
  sample: '[203.0.113.7]:2222'
offered:
  description: The keys the server offers, with their SHA256 fingerprints.
  returned: when the server answered
  type: list
  elements: dict
  sample: [{type: ssh-ed25519, fingerprint: 'SHA256:3vyjkK8x0wAPKM8gS2ZQnnG5U4hZBHAsrfdy0LmKe4s'}]
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _hostkey


def main():
    module = AnsibleModule(
        argument_spec={
            'host': {'type': 'str', 'required': True},
            'port': {'type': 'int', 'default': 22},
            'known_hosts': {'type': 'path', 'required': True},
            'inventory_host': {'type': 'str', 'default': ''},
            'timeout': {'type': 'int', 'default': 10},
        },
        supports_check_mode=True,
    )
    p = module.params
    name = _hostkey.host_name(p['host'], p['port'])
    where = f"{p['inventory_host'] or p['host']} ({p['host']}, port {p['port']})"
    keyscan = module.get_bin_path('ssh-keyscan')
    if not keyscan:
        module.fail_json(msg='ssh-keyscan is not installed on the control node (package openssh-client).', name=name)
    rc, out, err = module.run_command([keyscan, '-T', str(p['timeout']), '-p', str(p['port']), p['host']])
    offered = _hostkey.parse_keyscan(out)
    if not offered:
        module.fail_json(
            msg=f'Could not read the SSH host key of {where}: ssh-keyscan answered {rc} '
            f'({(err or "").strip()[-300:] or "no key"}). Check that the server is up and its SSH port is reachable '
            'from the control node. Nothing was changed.',
            name=name,
        )
    text = ''
    if os.path.exists(p['known_hosts']):
        try:
            with open(p['known_hosts'], encoding='utf-8') as handle:
                text = handle.read()
        except OSError as exc:
            module.fail_json(msg=f"Cannot read {p['known_hosts']}: {exc}. Nothing was changed.", name=name)
    recorded, revoked = _hostkey.recorded_keys(text, name)
    state, details = _hostkey.judge(offered, recorded, revoked)
    result = {
        'changed': False,
        'state': state,
        'name': name,
        'offered': [{'type': t, 'fingerprint': _hostkey.fingerprint(b)} for t, b in offered],
    }
    if state != _hostkey.KNOWN:
        msg = _hostkey.advice(
            state, p['inventory_host'] or p['host'], p['host'], p['port'], p['known_hosts'], offered, details
        )
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
