#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: npm_proxy_host
short_description: Manage a proxy host of nginx-proxy-manager as code
version_added: 0.1.0
description:
  - Creates, updates or deletes one proxy host of nginx-proxy-manager (NPM) through its REST API, and optionally
    the custom certificate and the access list it uses.
  - B(Matching) - NPM assigns the ids, so the host is found by O(domain_names). The record that holds any of
    them is the host. When several records hold some, the one holding the first entry of O(domain_names) is the host
    and the task fails naming every other record (id and domains); a domain is never taken off another host
    silently. Remove it there first.
  - B(Only real changes are written) - the host is read first and compared with the options that are set (booleans,
    order and case of O(domain_names), order of O(locations), trailing white space of O(advanced_config) do not count).
    An option left unset keeps NPM's current value (a new host gets NPM's default). Every write makes NPM rewrite the
    host's nginx file and reload nginx, so nothing is sent when nothing differs. O(enabled) uses NPM's enable and disable
    endpoints, and only when the state differs.
  - B(Live, or put back) - NPM answers a write with success even when C(nginx -t) rejects the new file; it then marks the
    host offline (C(meta.nginx_online=false), nginx's text in C(meta.nginx_err)) and B(deletes the host's nginx file).
    The module reads the host after every write. When it is offline after an update, the module puts the previous
    values back with another PUT, checks that the host is online again, and fails quoting nginx's error and saying that
    the previous configuration keeps serving. A new host that nginx rejects is deleted again. A host found offline
    before the run (broken by hand) is written again with the wanted values.
  - B(First run) - since NPM 2.13 there is no default admin. With O(initial_setup=true), while NPM answers
    C(setup=false) on C(GET /api/) (no user yet), the module creates the admin from O(username) and O(password)
    through NPM's unauthenticated C(POST /api/users), then logs in. Once NPM has a user it never touches users.
    The other way is to start NPM with the environment variables C(INITIAL_ADMIN_EMAIL) and C(INITIAL_ADMIN_PASSWORD).
  - B(Certificates) - O(certificate) names an existing certificate by its C(nice_name). O(certificate_upload) creates a
    custom certificate of that name when none exists and uploads the PEM files; when they differ from the stored ones
    it uploads them again. NPM does not reload nginx after an upload, so the module then sends a no-op PUT of this host,
    which reloads nginx (for every host using that certificate).
  - B(Let's Encrypt) - O(certificate_request) has NPM request a certificate from Let's Encrypt (HTTP-01 challenge) when
    none of that C(nice_name) exists, before the host is written; the host then uses it. An existing certificate of
    that name is used as it is and never requested again (NPM renews its Let's Encrypt certificates itself). When the
    request fails the task fails with NPM's error and writes nothing else. B(This path cannot be tested on the
    project's machines), which have no route to Let's Encrypt (NPM answers 500 at once there); the unit tests cover
    the API exchange against a fake NPM only.
  - B(Access lists) - O(access_list) names an existing list; O(access_list_spec) creates or updates it. NPM stores
    passwords hashed and never returns them, so they cannot be compared; see O(update_password). An access-list
    update makes NPM regenerate and reload the hosts that use it.
  - Passwords, private keys and the API token never appear in results, messages or the diff.
  - B(Several hosts in one call) - O(hosts) lists hosts, each with the options of one host; an option an entry leaves
    unset takes the top-level value, so what the hosts share is given once. One login, one read of NPM's hosts,
    certificates and access lists for all of them. Every host is planned before anything is written, so an invalid
    host fails with nothing changed; the hosts that differ are then written in order (a certificate or access list
    the first host creates is there for the next). A failure names the host (C(hosts[i])) and returns in RV(results)
    what the hosts before it did.
  - B(NPM starting) - with O(api_timeout), the module waits for NPM's API (C(GET /api/)) while its port refuses
    connections or its nginx answers 5xx, as after the proxy container (re)starts.
  - B(Requests) - the module logs in first; an NPM that runs and has the user costs that one request before the reads
    (proxy hosts, and certificates and access lists when a host names one). Only a login that fails leads to
    C(GET /api/) (waiting with O(api_timeout), first-run setup), after which the login is tried again.
  - To switch only the upstream of a host during a deploy, use M(avatar_mgmt.ops.npm_forward).
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - avatar_mgmt.ops.npm
attributes:
  check_mode:
    support: full
    description: Reads NPM and reports what would change (RV(changes), RV(diff)); sends no write (login is a read here).
  diff_mode:
    support: full
    description:
      - The compared fields before and after, certificate and access list by name, the access list's users and clients
        (never passwords), and the SHA-256 of an uploaded certificate (never the key).
  idempotent:
    support: full
    description: A second run with the same options sends no write (NPM does not reload nginx).
options:
  initial_setup:
    description:
      - Create the admin from O(username) and O(password) when NPM has no user yet (C(setup) false), then log in.
        Ignored once NPM is set up.
      - Without it, a task against an NPM that has no user fails saying how to set it up.
    type: bool
    default: false
  api_timeout:
    description:
      - Seconds to wait for NPM's API when the first login fails, asking C(GET /api/) every second while NPM refuses
        connections or answers 5xx (NPM starting). Any other answer (4xx, not NPM's JSON) fails at once.
      - V(0) asks once.
    type: int
    default: 0
  declared_marker:
    description:
      - After a declaration that succeeded (not in check mode), record O(declared_marker.key) with the state of NPM's
        database file then (size, modification and change times, inode, device) in O(declared_marker.path), mode
        C(0600), whole or not at all.
      - NPM rewrites its database on every change of a host, certificate, access list, user or setting, whoever
        makes it. M(avatar_mgmt.ops.release_info) (its O(avatar_mgmt.ops.release_info#module:proxy_marker) option)
        tells a later run whether the database is still exactly in that state, so that the caller can leave out a
        declaration with the same key; avatar_mgmt.ops.compose_deploy does on a deploy that changes nothing.
      - The record holds the key and the file state only. A record that cannot be written is a warning, never a
        failure.
    type: dict
    suboptions:
      path:
        description: The record, such as the deploy directory's C(.npm-declared).
        type: path
        required: true
      key:
        description:
          - What identifies the declaration, the caller's slow, salted digest of every setting of it, secrets included
            (avatar_mgmt.ops.declaration_key), so that a secret cannot cheaply be guessed from it.
        type: str
        required: true
      database:
        description: NPM's SQLite database as this host sees it (C(<data volume>/database.sqlite)).
        type: path
        required: true
  hosts:
    description:
      - Several proxy hosts, converged in one call over one login, in order; see B(Several hosts in one call) above.
      - Each entry takes the options of one host. An option an entry leaves unset takes the top-level option's value.
      - Mutually exclusive with O(domain_names) (the one-host form).
    type: list
    elements: dict
    suboptions:
      domain_names:
        description: The domains of this host; see O(domain_names).
        type: list
        elements: str
        required: true
      state:
        description: As O(state). Unset, the top-level O(state).
        type: str
        choices: [present, absent]
      forward_scheme:
        description: As O(forward_scheme).
        type: str
        choices: [http, https]
      forward_host:
        description: As O(forward_host).
        type: str
      forward_port:
        description: As O(forward_port).
        type: int
      enabled:
        description: As O(enabled).
        type: bool
      block_exploits:
        description: As O(block_exploits).
        type: bool
      allow_websocket_upgrade:
        description: As O(allow_websocket_upgrade).
        type: bool
      caching_enabled:
        description: As O(caching_enabled).
        type: bool
      http2_support:
        description: As O(http2_support).
        type: bool
      hsts_enabled:
        description: As O(hsts_enabled).
        type: bool
      hsts_subdomains:
        description: As O(hsts_subdomains).
        type: bool
      ssl_forced:
        description: As O(ssl_forced).
        type: bool
      certificate:
        description: As O(certificate).
        type: str
      certificate_upload:
        description: As O(certificate_upload); replaces the top-level one as a whole.
        type: dict
        suboptions:
          nice_name:
            description: Name of the certificate in NPM.
            type: str
            required: true
          certificate:
            description: The certificate, PEM.
            type: str
            required: true
          certificate_key:
            description: Its private key, PEM. Never shown.
            type: str
            required: true
          intermediate_certificate:
            description: Intermediate certificates, PEM.
            type: str
      certificate_request:
        description: As O(certificate_request); replaces the top-level one as a whole.
        type: dict
        suboptions:
          nice_name:
            description: Name of the certificate in NPM.
            type: str
            required: true
          email:
            description: The contact e-mail of the Let's Encrypt account.
            type: str
            required: true
          domain_names:
            description: The domains of the certificate. Unset (or empty), this host's domains.
            type: list
            elements: str
          key_type:
            description: The key algorithm of the certificate.
            type: str
            choices: [rsa, ecdsa]
            default: rsa
      access_list:
        description: As O(access_list).
        type: str
      access_list_spec:
        description: As O(access_list_spec); replaces the top-level one as a whole.
        type: dict
        suboptions:
          name:
            description: Name of the access list.
            type: str
            required: true
          satisfy_any:
            description: Let a request in when any rule passes.
            type: bool
            default: false
          pass_auth:
            description: Pass the C(Authorization) header on to the upstream.
            type: bool
            default: false
          items:
            description: Basic-auth users.
            type: list
            elements: dict
            default: []
            suboptions:
              username:
                description: User name.
                type: str
                required: true
              password:
                description: Password. Write-only in NPM; never shown.
                type: str
                required: true
          clients:
            description: Client address rules.
            type: list
            elements: dict
            default: []
            suboptions:
              address:
                description: An IP address or CIDR range, or V(all).
                type: str
                required: true
              directive:
                description: Allow or deny that address.
                type: str
                choices: [allow, deny]
                default: allow
      update_password:
        description: As O(update_password). Unset, the top-level O(update_password).
        type: str
        choices: [always, on_create]
      advanced_config:
        description: As O(advanced_config).
        type: str
      locations:
        description: As O(locations).
        type: list
        elements: dict
  domain_names:
    description:
      - The domains of the host (1 to 100). They are the key; see B(Matching) above.
      - Required without O(hosts); mutually exclusive with it. With O(hosts), each entry has its own.
    type: list
    elements: str
  state:
    description:
      - V(present) creates or updates the host. V(absent) deletes it; it must then list all the host's domains.
      - Certificates and access lists are never deleted.
    type: str
    choices: [present, absent]
    default: present
  forward_scheme:
    description: Scheme to the upstream. A new host gets V(http) when unset.
    type: str
    choices: [http, https]
  forward_host:
    description: Upstream host name or IP. Required to create a host.
    type: str
  forward_port:
    description: Upstream port. Required to create a host.
    type: int
  enabled:
    description: Whether the host is served. Changed through NPM's enable/disable endpoints, only when it differs.
    type: bool
  block_exploits:
    description: NPM's "Block Common Exploits".
    type: bool
  allow_websocket_upgrade:
    description: NPM's "Websockets Support".
    type: bool
  caching_enabled:
    description: NPM's "Cache Assets".
    type: bool
  http2_support:
    description: HTTP/2. Needs a certificate (NPM stores V(false) without one; the module refuses instead).
    type: bool
  hsts_enabled:
    description: HSTS. Needs O(ssl_forced).
    type: bool
  hsts_subdomains:
    description: HSTS for subdomains. Needs O(hsts_enabled).
    type: bool
  ssl_forced:
    description: Redirect HTTP to HTTPS. Needs a certificate.
    type: bool
  certificate:
    description:
      - The C(nice_name) of the certificate to serve, or V(none) (or V('')) for none.
      - Unset keeps the host's certificate. With O(certificate_upload) or O(certificate_request) it defaults to their
        C(nice_name) and must equal it when given.
    type: str
  certificate_upload:
    description:
      - A custom certificate to create (when no certificate of this name exists) and upload, or to upload again when the
        PEM files differ from the stored ones. The host then uses it.
      - Mutually exclusive with O(certificate_request).
    type: dict
    suboptions:
      nice_name:
        description: Name of the certificate in NPM.
        type: str
        required: true
      certificate:
        description: The certificate, PEM.
        type: str
        required: true
      certificate_key:
        description: Its private key, PEM. Never shown.
        type: str
        required: true
      intermediate_certificate:
        description: Intermediate certificates, PEM.
        type: str
  certificate_request:
    description:
      - A Let's Encrypt certificate for NPM to request (C(POST /api/nginx/certificates), provider C(letsencrypt),
        HTTP-01 challenge, Let's Encrypt's terms agreed) when no certificate of this name exists. The host then uses it.
      - An existing certificate of this name (of any provider, whatever its domains) is used as it is, never requested
        again; renewals are NPM's job. To change its domains, delete it in NPM or give another
        O(certificate_request.nice_name).
      - The request succeeds only when Let's Encrypt reaches this NPM on port 80 for every domain (each must resolve in
        public DNS to this host) and NPM reaches Let's Encrypt. Otherwise NPM answers an error (500 at once when Let's
        Encrypt cannot be reached); the task fails with NPM's text, and neither the host nor the access list is written.
      - NPM answers only when certbot is done, so this request waits up to 180 seconds (or O(timeout) when longer).
      - Untested against the real Let's Encrypt, which the project's machines cannot reach; the unit tests check the
        exchange with a fake NPM.
      - Mutually exclusive with O(certificate_upload). O(certificate) defaults to O(certificate_request.nice_name) and
        must equal it when given.
    type: dict
    suboptions:
      nice_name:
        description: Name of the certificate in NPM; the key it is found by.
        type: str
        required: true
      email:
        description: The contact e-mail of the Let's Encrypt account (expiry notices).
        type: str
        required: true
      domain_names:
        description: The domains of the certificate. Unset (or empty), the host's O(domain_names).
        type: list
        elements: str
      key_type:
        description: The key algorithm of the certificate.
        type: str
        choices: [rsa, ecdsa]
        default: rsa
  access_list:
    description:
      - The name of the access list guarding the host, or V(none) (or V('')) for a public host.
      - Unset keeps the host's list. With O(access_list_spec) it defaults to its O(access_list_spec.name) and must
        equal it when given.
    type: str
  access_list_spec:
    description:
      - An access list to create or update, which the host then uses. Users are compared by name, clients by address and
        directive; see O(update_password) for passwords.
    type: dict
    suboptions:
      name:
        description: Name of the access list.
        type: str
        required: true
      satisfy_any:
        description: Let a request in when any rule passes (basic auth B(or) client address), not all of them.
        type: bool
        default: false
      pass_auth:
        description: Pass the C(Authorization) header on to the upstream.
        type: bool
        default: false
      items:
        description: Basic-auth users.
        type: list
        elements: dict
        default: []
        suboptions:
          username:
            description: User name.
            type: str
            required: true
          password:
            description: Password. Write-only in NPM; never shown.
            type: str
            required: true
      clients:
        description: Client address rules.
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: An IP address or CIDR range, or V(all).
            type: str
            required: true
          directive:
            description: Allow or deny that address.
            type: str
            choices: [allow, deny]
            default: allow
  update_password:
    description:
      - V(on_create) sends passwords only for users the access list does not have yet; the passwords of existing users
        are kept and a changed password there is not detected.
      - V(always) sends every password, so the access list is written (and the task reports a change) on every run.
    type: str
    choices: [always, on_create]
    default: on_create
  advanced_config:
    description:
      - NPM's "Custom Nginx Configuration" of the host, inserted into its C(server) block.
      - An invalid directive makes nginx reject the host; the module then puts the previous values back and fails with
        nginx's error.
    type: str
  locations:
    description:
      - Custom locations as NPM's API has them, each with C(path), C(forward_scheme), C(forward_host),
        C(forward_port), and optionally C(forward_path) and C(advanced_config). Their order does not count.
      - NPM renders a custom location with a literal C(proxy_pass), which nginx resolves only when it loads the
        configuration; it also pins the host's main location to the same address until the next reload.
    type: list
    elements: dict
seealso:
  - module: avatar_mgmt.ops.npm_forward
  - name: nginx-proxy-manager API schema
    description: NPM serves its OpenAPI document at C(GET /api/schema).
    link: https://github.com/NginxProxyManager/nginx-proxy-manager/tree/develop/backend/schema
'''

EXAMPLES = r'''
- name: Proxy avatar.example.com to the api container, TLS from our own CA
  avatar_mgmt.ops.npm_proxy_host:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    initial_setup: true
    domain_names: [avatar.example.com, www.avatar.example.com]
    forward_scheme: http
    forward_host: avatar-api-blue
    forward_port: 8080
    block_exploits: true
    allow_websocket_upgrade: true
    http2_support: true
    ssl_forced: true
    certificate_upload:
      nice_name: avatar.example.com
      certificate: "{{ lookup('ansible.builtin.file', 'avatar.example.com.crt') }}"
      certificate_key: "{{ vault_avatar_tls_key }}"
    advanced_config: |
      client_max_body_size 50m;
  delegate_to: "{{ inventory_hostname }}"

- name: Guard the admin host with basic auth and an address rule
  avatar_mgmt.ops.npm_proxy_host:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    domain_names: [directus.example.com]
    forward_host: directus
    forward_port: 8055
    access_list_spec:
      name: staff
      satisfy_any: true
      items:
        - username: ops
          password: "{{ vault_directus_basic_auth }}"
      clients:
        - address: 10.0.0.0/8
          directive: allow

- name: Proxy a public domain with a certificate from Let's Encrypt (port 80 must be reachable from the internet)
  avatar_mgmt.ops.npm_proxy_host:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    domain_names: [avatar.example.com]
    forward_host: avatar-api-blue
    forward_port: 8080
    ssl_forced: true
    certificate_request:
      nice_name: avatar.example.com
      email: ops@example.com

- name: The environment's three hosts in one call (one login); what they share is given once
  avatar_mgmt.ops.npm_proxy_host:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    initial_setup: true
    api_timeout: 90
    forward_scheme: http
    block_exploits: true
    allow_websocket_upgrade: true
    ssl_forced: true
    certificate_upload:
      nice_name: avatar.example.com
      certificate: "{{ lookup('ansible.builtin.file', 'avatar.example.com.crt') }}"
      certificate_key: "{{ vault_avatar_tls_key }}"
    hosts:
      - domain_names: [avatar.example.com]
        forward_host: frontend
        forward_port: 80
      - domain_names: [api.avatar.example.com]
        forward_host: api
        forward_port: 3000
      - domain_names: [directus.avatar.example.com]
        forward_host: directus
        forward_port: 8055
        access_list_spec:
          name: staff
          items:
            - username: ops
              password: "{{ vault_directus_basic_auth }}"
  register: proxy_hosts

- name: Remove the old host
  avatar_mgmt.ops.npm_proxy_host:
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    domain_names: [old.example.com]
    state: absent
'''

RETURN = r'''
declared_marker:
  description:
    - Whether the declaration was recorded in O(declared_marker.path).
    - False when NPM's database is not there (the record is then removed) or the record could not be written (a
      warning says why).
  returned: when O(declared_marker) is set, not in check mode
  type: bool
  sample: true
id:
  description: NPM's id of the host (V(null) when it does not exist, or would be created in check mode).
  returned: without O(hosts)
  type: int
  sample: 3
host:
  description:
    - The host record as the module sees it after the run (before it, in check mode), from a whitelist of fields. The
      certificate and access list appear as C(id) and name only; no owner, PEM or password.
    - C(meta.nginx_online) and C(meta.nginx_err) are NPM's view of the host's nginx file.
  returned: without O(hosts)
  type: dict
  sample:
    id: 3
    domain_names: [avatar.example.com]
    forward_scheme: http
    forward_host: avatar-api-blue
    forward_port: 8080
    certificate_id: 2
    access_list_id: 0
    ssl_forced: true
    http2_support: true
    block_exploits: true
    allow_websocket_upgrade: true
    caching_enabled: false
    hsts_enabled: false
    hsts_subdomains: false
    advanced_config: ''
    locations: []
    enabled: true
    meta: {nginx_online: true, nginx_err: null}
    certificate: {id: 2, nice_name: avatar.example.com, provider: other, expires_on: '2027-11-30 00:00:00', domain_names: [avatar.example.com]}
changes:
  description:
    - What the run did (would do in check mode). C(host) is V(create), V(update), V(reapply) (the host was offline),
      V(delete) or V(null); C(fields) the compared fields that differ; C(certificate) V(create), V(upload),
      V(request) (from Let's Encrypt) or V(null);
      C(access_list) V(create), V(update) or V(null).
  returned: without O(hosts)
  type: dict
  sample: {host: update, fields: [forward_host], certificate: null, access_list: null}
results:
  description:
    - With O(hosts), one entry per host, in order, each with C(domain_names) (as sent to NPM), C(changed), and RV(id),
      RV(host), RV(changes) and RV(diff) of that host.
    - On failure, the entries of the hosts before the failed one (written), or none when the failure came while
      planning (nothing was written).
  returned: with O(hosts)
  type: list
  elements: dict
  sample:
    - domain_names: [avatar.example.com]
      changed: false
      id: 1
      host: {id: 1, domain_names: [avatar.example.com], forward_host: frontend, forward_port: 80}
      changes: {host: null, fields: [], certificate: null, access_list: null}
      diff: {before: {forward_host: frontend}, after: {forward_host: frontend}}
diff:
  description:
    - The compared fields before and after (without secrets); also shown with C(--diff).
    - With O(hosts), a list of them, one per host, each headed by the host's domains.
  returned: always
  type: raw
  sample:
    before: {forward_host: avatar-api-blue, forward_port: 8080, certificate: avatar.example.com, access_list: null}
    after: {forward_host: avatar-api-green, forward_port: 8080, certificate: avatar.example.com, access_list: null}
admin_created:
  description: Whether O(initial_setup) created the admin (would create it, in check mode).
  returned: always
  type: bool
  sample: false
nginx_err:
  description: nginx's error when it rejected the new configuration (the task fails then).
  returned: failure
  type: str
  sample: 'unknown directive "proxy_bogus" in /data/nginx/proxy_host/3.conf:24'
restored:
  description:
    - When nginx rejected the new configuration, whether the previous configuration keeps serving (the previous values
      were put back and the host is online, or a new host was deleted again).
  returned: failure
  type: bool
  sample: true
'''

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm, _proxy_marker
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule


def host_options():
    """The options of one proxy host (top level without O(hosts), or an entry of O(hosts))."""
    return {
        'domain_names': {'type': 'list', 'elements': 'str'},
        'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
        'forward_scheme': {'type': 'str', 'choices': ['http', 'https']},
        'forward_host': {'type': 'str'},
        'forward_port': {'type': 'int'},
        'enabled': {'type': 'bool'},
        'block_exploits': {'type': 'bool'},
        'allow_websocket_upgrade': {'type': 'bool'},
        'caching_enabled': {'type': 'bool'},
        'http2_support': {'type': 'bool'},
        'hsts_enabled': {'type': 'bool'},
        'hsts_subdomains': {'type': 'bool'},
        'ssl_forced': {'type': 'bool'},
        'certificate': {'type': 'str'},
        'certificate_upload': {
            'type': 'dict',
            'options': {
                'nice_name': {'type': 'str', 'required': True},
                'certificate': {'type': 'str', 'required': True},
                'certificate_key': {'type': 'str', 'required': True, 'no_log': True},
                'intermediate_certificate': {'type': 'str'},
            },
        },
        'certificate_request': {
            'type': 'dict',
            'options': {
                'nice_name': {'type': 'str', 'required': True},
                'email': {'type': 'str', 'required': True},
                'domain_names': {'type': 'list', 'elements': 'str'},
                'key_type': {'type': 'str', 'choices': ['rsa', 'ecdsa'], 'default': 'rsa', 'no_log': False},
            },
        },
        'access_list': {'type': 'str'},
        'access_list_spec': {
            'type': 'dict',
            'options': {
                'name': {'type': 'str', 'required': True},
                'satisfy_any': {'type': 'bool', 'default': False},
                'pass_auth': {'type': 'bool', 'default': False, 'no_log': False},
                'items': {
                    'type': 'list',
                    'elements': 'dict',
                    'default': [],
                    'options': {
                        'username': {'type': 'str', 'required': True},
                        'password': {'type': 'str', 'required': True, 'no_log': True},
                    },
                },
                'clients': {
                    'type': 'list',
                    'elements': 'dict',
                    'default': [],
                    'options': {
                        'address': {'type': 'str', 'required': True},
                        'directive': {'type': 'str', 'choices': ['allow', 'deny'], 'default': 'allow'},
                    },
                },
            },
        },
        'update_password': {
            'type': 'str',
            'choices': ['always', 'on_create'],
            'default': 'on_create',
            'no_log': False,
        },
        'advanced_config': {'type': 'str'},
        'locations': {'type': 'list', 'elements': 'dict'},
    }


def argument_spec():
    spec = _npm.connection_argument_spec()
    spec.update(host_options())
    entry = host_options()
    entry['domain_names']['required'] = True
    # Unset in an entry means the top-level value, whose default applies.
    del entry['state']['default']
    del entry['update_password']['default']
    spec.update(
        {
            'initial_setup': {'type': 'bool', 'default': False},
            'api_timeout': {'type': 'int', 'default': 0},
            'declared_marker': {
                'type': 'dict',
                'options': {
                    'path': {'type': 'path', 'required': True},
                    # A slow, salted digest of every setting (declaration_key): no secret can cheaply be guessed from it.
                    'key': {'type': 'str', 'required': True, 'no_log': False},
                    'database': {'type': 'path', 'required': True},
                },
            },
            'hosts': {
                'type': 'list',
                'elements': 'dict',
                'options': entry,
                'mutually_exclusive': [('certificate_upload', 'certificate_request')],
            },
        }
    )
    return spec


def _entry(spec, result):
    """One host's entry of RV(results): its domains as given (cleaned), then its result."""
    return {'domain_names': _npm.host_domains(spec), **result}


def main():
    module = SecretSafeModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('certificate_upload', 'certificate_request'), ('hosts', 'domain_names')],
        required_one_of=[('hosts', 'domain_names')],
        supports_check_mode=True,
    )
    try:
        specs = _npm.host_specs(module.params)
    except ValueError as exc:
        module.fail_json(msg=f'{exc}. Nothing was changed.')
    several = module.params['hosts'] is not None

    def work(client, admin_created):
        results = _npm.ensure_proxy_hosts(
            client,
            specs,
            check_mode=module.check_mode,
            setup_pending=admin_created and module.check_mode,
            name_hosts=several,
        )
        if not several:
            result = results[0]
            result['admin_created'] = admin_created
            result['changed'] = result['changed'] or admin_created
            return result
        diffs = []
        for spec, result in zip(specs, results):
            header = ', '.join(_npm.host_domains(spec))
            diffs.append(dict(result['diff'], before_header=header, after_header=header))
        return {
            'changed': admin_created or any(r['changed'] for r in results),
            'admin_created': admin_created,
            'results': [_entry(spec, r) for spec, r in zip(specs, results)],
            'diff': diffs,
        }

    result = _npm.run_module(module, work)
    marker = module.params['declared_marker']
    if marker and not module.check_mode:
        # After the last write NPM answered (it commits before answering). A failed run writes nothing here: what
        # it changed in NPM changed the database, so an older record no longer counts as current.
        try:
            result['declared_marker'] = _proxy_marker.write(marker['path'], marker['key'], marker['database'])
        except OSError as exc:
            result['declared_marker'] = False
            module.warn(f"The declaration could not be recorded in {marker['path']}: {exc.strerror or exc}.")
    module.exit_json(**result)


if __name__ == '__main__':
    main()
