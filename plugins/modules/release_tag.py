#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: release_tag
short_description: Resolve a release channel or version to image tags and digests in an OCI registry
version_added: 0.1.0
description:
  - Resolves what an operator asks to deploy (V(latest), V(staging) or a version such as V(v1.2.0))
    to one Semantic Versioning 2.0.0 version and, for each image, its tag, its manifest digest and
    a digest-pinned reference.
  - O(tag) is validated before any network request. Accepted are V(latest), V(staging) and a SemVer 2.0.0
    version with an optional lowercase V(v) prefix. A bare version such as V(1.2.0) is accepted and
    finds the tag V(v1.2.0) when only that spelling exists (the tag is looked up as written first).
    An uppercase V(V) prefix, build metadata (V(+...)), partial versions such as V(v1.2) and anything
    else are refused.
  - A channel resolves, for each image, to the version tag whose manifest digest equals the channel
    tag's digest (the highest such version of the channel's kind, that is releases for V(latest) and
    pre-releases for V(staging)). All images must resolve to the same version, or the module fails
    naming the image that disagrees.
  - When an image has no channel tag, V(latest) falls back to the highest release and V(staging) to the
    highest pre-release tagged in all images.
  - A version must be tagged in every image; otherwise the module fails naming the image and the tag.
  - Speaks the OCI distribution API directly (tag lists with pagination, manifest HEAD requests,
    Basic or Bearer token authentication, retries with backoff on HTTP 429 and 5xx) over pooled,
    kept-alive connections. Only reads.
  - Proxies are taken from the environment where the module runs, as the C(requests) library reads them,
    C(HTTPS_PROXY) (and C(HTTP_PROXY) for a V(http://) registry), with C(NO_PROXY) listing hosts to reach
    directly; lowercase names work too and win. They apply to the registry and to the token endpoint
    it names. Set them with the task's C(environment) keyword. C(~/.netrc) is not read.
  - The default CA store is the one C(requests) uses, which C(REQUESTS_CA_BUNDLE) can replace;
    O(ca_path) and O(validate_certs=false) take precedence over that variable.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
requirements:
  - the Python library C(requests) 2.25 or later where it resolves, the Python that runs Ansible on the control node
    (it is in the collection's C(requirements.txt) and the execution environment) or the host the task runs on;
    without it the task fails with a message saying so and requests nothing
attributes:
  check_mode:
    support: full
    description: The module only reads from the registry; check mode runs it as usual.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: The module never changes anything and always returns RV(ignore:changed=false).
options:
  registry:
    description:
      - Registry host, with an optional port, such as V(ghcr.io) or V(registry.example.com:5000).
      - HTTPS is used unless the value starts with V(http://).
    type: str
    default: ghcr.io
  endpoint:
    description:
      - Where to connect, as C(host[:port]) or an C(https://) URL, when it is not O(registry) itself (a mirror, an
        SSH tunnel, a port published on the control node). Image references still name O(registry).
    type: str
    version_added: 0.2.0
  repository:
    description:
      - Repository path under the registry; each image is O(repository)/IMAGE.
    type: str
    default: rayhu/avatar-mgmt
  images:
    description:
      - Image names under O(repository) that carry the release tag.
    type: list
    elements: str
    default: [api, frontend]
  tag:
    description:
      - What to resolve. V(latest) (newest release), V(staging) (newest pre-release), or a version
        such as V(v1.2.0) or V(v1.3.0-rc.1).
    type: str
    required: true
  username:
    description:
      - User name for the registry (for GHCR, the GitHub user). Without it access is anonymous,
        which is enough for public images.
      - Requires O(password).
    type: str
  password:
    description:
      - Password or token for O(username). For GHCR a personal access token with the C(read:packages) scope.
      - Never shown in messages or logs.
    type: str
  ca_path:
    description:
      - PEM file of CA certificates to trust for the registry (and its token endpoint).
    type: path
  validate_certs:
    description:
      - Verify TLS certificates. Set to V(false) only for a registry you trust on a trusted network.
    type: bool
    default: true
  timeout:
    description:
      - Connect and read timeout in seconds for each HTTP request (also through a proxy).
    type: int
    default: 30
  allow_prerelease:
    description:
      - With V(false) a pre-release is refused (RV(refused_prerelease) names it) - a requested one such as
        V(v1.3.0-rc.1) before any request to the registry, and one that V(latest) or V(staging) points at.
      - Production deploys pass V(false) unless told otherwise.
    type: bool
    default: true
    version_added: 0.2.0
notes:
  - On the control node (C(delegate_to=localhost), or any local connection) an action plugin of the same name resolves
    in the Python that runs Ansible, without starting a module; the task's C(environment) (C(HTTPS_PROXY), C(NO_PROXY),
    C(REQUESTS_CA_BUNDLE)) applies to its requests. A task that runs on another host runs this module there.
  - Transient errors (HTTP 429, 5xx, connection errors) are retried a few times with exponential backoff,
    honouring C(Retry-After).
seealso:
  - name: OCI distribution specification
    description: The registry API this module speaks.
    link: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
  - name: Semantic Versioning 2.0.0
    description: The version grammar and precedence rules.
    link: https://semver.org/spec/v2.0.0.html
'''

EXAMPLES = r'''
- name: Resolve the newest release of api and frontend
  avatar_mgmt.ops.release_tag:
    tag: latest
  delegate_to: localhost
  run_once: true
  register: release

- name: Show the version and the digest-pinned image references
  ansible.builtin.debug:
    msg: "{{ release.version }}: {{ release.images | dict2items | map(attribute='value.reference') | list }}"

- name: Resolve the current pre-release of a private repository
  avatar_mgmt.ops.release_tag:
    repository: rayhu/avatar-mgmt
    images:
      - api
      - frontend
    tag: staging
    username: "{{ ghcr_username }}"
    password: "{{ ghcr_token }}"
  delegate_to: localhost
  run_once: true
  register: staging_release

- name: Check that an explicit version exists for both images
  avatar_mgmt.ops.release_tag:
    tag: v1.2.0
  delegate_to: localhost
  run_once: true

- name: Resolve against a private registry with its own CA
  avatar_mgmt.ops.release_tag:
    registry: registry.example.com:5000
    repository: avatar-mgmt
    tag: latest
    ca_path: /etc/pki/registry-ca.pem
  delegate_to: localhost

- name: Resolve through a corporate proxy; the internal registry is reached directly
  avatar_mgmt.ops.release_tag:
    tag: latest
  environment:
    HTTPS_PROXY: http://proxy.corp.example:3128
    NO_PROXY: registry.corp.example,localhost,127.0.0.1
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
version:
  description: The resolved version tag, as tagged in the registry.
  returned: success
  type: str
  sample: v1.2.0
prerelease:
  description: Whether RV(version) is a pre-release.
  returned: success
  type: bool
  sample: false
requested:
  description: The value of O(tag) as given.
  returned: success
  type: str
  sample: latest
channel:
  description: The channel that was requested.
  returned: when O(tag) is V(latest) or V(staging)
  type: str
  sample: latest
images:
  description: For each image of O(images), where RV(version) points.
  returned: success
  type: dict
  sample:
    api:
      tag: ghcr.io/rayhu/avatar-mgmt/api:v1.2.0
      digest: sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
      reference: ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
      media_type: application/vnd.oci.image.index.v1+json
      resolved_by: channel_digest
  contains:
    tag:
      description: Image reference by tag, C(registry/repository/image:version).
      returned: success
      type: str
      sample: ghcr.io/rayhu/avatar-mgmt/api:v1.2.0
    digest:
      description: Manifest digest of the version tag.
      returned: success
      type: str
      sample: sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
    reference:
      description: Image reference pinned by digest, C(registry/repository/image@digest).
      returned: success
      type: str
      sample: ghcr.io/rayhu/avatar-mgmt/api@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
    media_type:
      description: Media type of the manifest (OCI index, OCI manifest, Docker manifest list or manifest).
      returned: success
      type: str
      sample: application/vnd.oci.image.index.v1+json
    resolved_by:
      description:
        - How the version was found for this image.
        - V(version) the requested version itself; V(channel_digest) the digest of the channel tag;
          V(highest_release) or V(highest_prerelease) the fallback used when the image has no channel tag.
      returned: success
      type: str
      sample: channel_digest
refused_prerelease:
  description: The pre-release that O(allow_prerelease=false) refused (the task fails).
  returned: when a pre-release was refused
  type: str
  sample: v1.3.0-rc.1
versions:
  description: Every SemVer tag present for all images, newest first.
  returned: success
  type: list
  elements: str
  sample: [v1.2.0, v1.2.0-rc.1, v1.1.0]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_tag


def main():
    # On the control node the action plugin of the same name runs _release_tag.resolve in the worker; this module
    # runs when the task runs on another host.
    module = AnsibleModule(
        argument_spec=_release_tag.ARGUMENT_SPEC,
        required_together=_release_tag.REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    result = _release_tag.resolve(module.params)
    if result.pop('failed', False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
