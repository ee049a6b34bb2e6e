#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: npm_forward
short_description: Switch the upstream of an nginx-proxy-manager proxy host and prove it is served
version_added: 0.1.0
description:
  - The zero-downtime switch of a deploy. Start the new container under its own name, wait until it is healthy, then
    let this module point the proxy host at it. NPM rewrites the host's file and reloads nginx gracefully (new workers
    resolve the new name, old ones finish their requests); then remove the old container.
  - Changes B(only) C(forward_host) and C(forward_port) (and C(forward_scheme) when O(forward_scheme) is given) of the
    existing proxy host holding every domain of O(domain_names). It never creates a host or touches other fields; use
    M(avatar_mgmt.ops.npm_proxy_host) for that.
  - Writes only when the target differs. After the write it reads the host again; when NPM reports
    C(meta.nginx_online=false) (nginx rejected the file, which NPM then deleted) it puts the previous target back,
    checks the host is online again and fails quoting nginx's error.
  - With O(verify_url), it then polls the public side of NPM (such as V(http://127.0.0.1:80/health)) with the first
    domain as C(Host) header until O(verify_expect) appears in a response header value or the body, or fails after
    O(verify_timeout) seconds. NPM's reload is asynchronous, so the API's answer alone does not prove that the new
    target serves.
  - Returns RV(previous), the target before the run, so a caller (a C(rescue:) block, a rollback) can switch back with
    the same module. A failed verification does not switch back by itself; the failure result carries RV(previous).
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - avatar_mgmt.ops.npm
attributes:
  check_mode:
    support: full
    description: Reports whether the target would change (RV(diff)); no write and no verification.
  diff_mode:
    support: full
    description: The target (scheme, host, port) before and after.
  idempotent:
    support: full
    description: When the host already forwards to the target nothing is written; O(verify_url) is still checked.
options:
  domain_names:
    description:
      - Domains of the host to switch; the host holding all of them is switched. The first one is the C(Host) header
        of the verification.
    type: list
    elements: str
    required: true
  forward_host:
    description: The new upstream host name or IP (the new container's name).
    type: str
    required: true
  forward_port:
    description: The new upstream port.
    type: int
    required: true
  forward_scheme:
    description: The new upstream scheme; unset keeps the current one.
    type: str
    choices: [http, https]
  verify_url:
    description:
      - A URL of NPM's public side to poll after the switch, such as V(http://127.0.0.1:80/health). Sent with the first
        domain of O(domain_names) as C(Host) header. For HTTPS use the domain in the URL itself (TLS picks the
        certificate by the URL's name); O(validate_certs) and O(ca_path) apply.
      - Unset skips the verification.
    type: str
  verify_expect:
    description:
      - Text that shows the new target is serving, looked for in every response header value and in the body (the first
        64 KiB), such as the new container's name or version. Required with O(verify_url).
    type: str
  verify_timeout:
    description: Seconds to keep polling O(verify_url) before failing.
    type: int
    default: 30
  verify_interval:
    description: Seconds between two polls.
    type: float
    default: 1.0
notes:
  - Custom locations of the host keep their own targets; a reload makes nginx resolve them again.
seealso:
  - module: avatar_mgmt.ops.npm_proxy_host
'''

EXAMPLES = r'''
- name: Switch avatar.example.com to the green container and prove NPM serves it
  avatar_mgmt.ops.npm_forward:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    domain_names: [avatar.example.com]
    forward_host: avatar-api-green
    forward_port: 8080
    verify_url: http://127.0.0.1:80/health
    verify_expect: avatar-api-green
    verify_timeout: 30
  register: switch

- name: Switch back (in a rescue block)
  avatar_mgmt.ops.npm_forward:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    domain_names: [avatar.example.com]
    forward_host: "{{ switch.previous.forward_host }}"
    forward_port: "{{ switch.previous.forward_port }}"
  when: switch.previous is defined
'''

RETURN = r'''
id:
  description: NPM's id of the switched host.
  returned: success
  type: int
  sample: 3
previous:
  description: The target before the run; pass it back to switch back.
  returned: success and when the verification fails
  type: dict
  sample: {forward_scheme: http, forward_host: avatar-api-blue, forward_port: 8080}
host:
  description: The host record after the switch, as M(avatar_mgmt.ops.npm_proxy_host) returns it (no secrets).
  returned: success
  type: dict
  sample: {id: 3, domain_names: [avatar.example.com], forward_host: avatar-api-green, forward_port: 8080, meta: {nginx_online: true, nginx_err: null}}
diff:
  description: The target before and after.
  returned: success
  type: dict
  sample:
    before: {forward_scheme: http, forward_host: avatar-api-blue, forward_port: 8080}
    after: {forward_scheme: http, forward_host: avatar-api-green, forward_port: 8080}
verify:
  description: The verification, V({}) without O(verify_url) or in check mode.
  returned: success
  type: dict
  sample: {attempts: 2, elapsed: 1.013, status: 200}
nginx_err:
  description: nginx's error when it rejected the switch (the task fails then).
  returned: failure
  type: str
  sample: 'host not found in upstream "avatar-api-green" in /data/nginx/proxy_host/3.conf:48'
restored:
  description: When nginx rejected the switch, whether the previous target was put back and is online.
  returned: failure
  type: bool
  sample: true
'''

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule


def main():
    argument_spec = _npm.connection_argument_spec()
    argument_spec.update(
        {
            'domain_names': {'type': 'list', 'elements': 'str', 'required': True},
            'forward_host': {'type': 'str', 'required': True},
            'forward_port': {'type': 'int', 'required': True},
            'forward_scheme': {'type': 'str', 'choices': ['http', 'https']},
            'verify_url': {'type': 'str'},
            'verify_expect': {'type': 'str'},
            'verify_timeout': {'type': 'int', 'default': 30},
            'verify_interval': {'type': 'float', 'default': 1.0},
        }
    )
    module = SecretSafeModule(
        argument_spec=argument_spec,
        required_together=[('verify_url', 'verify_expect')],
        supports_check_mode=True,
    )
    module.exit_json(
        **_npm.run_module(
            module, lambda client, _created: _npm.switch_forward(client, module.params, module.check_mode)
        )
    )


if __name__ == '__main__':
    main()
