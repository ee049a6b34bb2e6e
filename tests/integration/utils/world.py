# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The registries of the integration tests: layout, seed content and life cycle.

``start(directory)`` makes a CA and a server certificate, starts a token issuer
on 127.0.0.1 (HTTPS, in a thread), then two Distribution 2.8 registry
containers on one storage volume:

* ``itest-reg-basic``: htpasswd (Basic) auth, TLS, read-write (seeded with ``docker push``);
* ``itest-reg-token``: ``auth.token`` (GHCR-like Bearer tokens from the issuer), TLS, read-only.

Both are published on ephemeral 127.0.0.1 ports.  ``stop()`` removes them, the
volume and every image tag made here.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import secrets
import ssl
import tempfile

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci import RegistryClient
from ansible_collections.avatar_mgmt.ops.tests.integration.utils import docker_registry as dr
from ansible_collections.avatar_mgmt.ops.tests.integration.utils.token_issuer import TokenIssuer
from ansible_collections.avatar_mgmt.ops.tests.support.pki import TestPKI

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
BASIC_NAME = 'itest-reg-basic'
TOKEN_NAME = 'itest-reg-token'
VOLUME = 'itest-reg-data'
LOCAL_PREFIX = 'avatar-itest'
SERVICE = 'itest-registry'
ISSUER = 'itest-token-issuer'

REPOSITORY = 'rayhu/avatar-mgmt'
IMAGES = ('api', 'frontend')
VERSIONS = ('v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.3.0-beta.1')
# Tags that point at another tag's image; noise tags resolution must ignore.
ALIASES = {
    'latest': 'v1.2.0',
    'staging': 'v1.3.0-beta.1',
    'sha-3f2a9c1': 'v1.3.0-beta.1',
    'main': 'v1.3.0-beta.1',
    '20240101': 'v1.0.0',
}
OWN_IMAGES = (*VERSIONS, 'buildcache')  # tags with an image of their own
ALL_TAGS = frozenset(OWN_IMAGES) | frozenset(ALIASES)
PUBLIC_REPO = 'public/hello'
MANY_REPO = f'{REPOSITORY}/many'
MANY_TAGS = tuple(f't{i:03d}' for i in range(250))
# Published as buildx / GHCR do it: an OCI index over an OCI image manifest.
OCI_IMAGE = 'worker'
OCI_TAGS = {'v1.1.0': 'manifest', 'v1.2.0': 'index', 'latest': 'index'}
USER = 'avatar-bot'
OUTSIDER = 'outsider'


@dataclasses.dataclass
class Target:
    """One registry as a client sees it."""

    mode: str
    host: str
    username: str
    password: str
    ca_path: str
    wrong_password: str

    def client(self, **kwargs):
        kwargs.setdefault('username', self.username)
        kwargs.setdefault('password', self.password)
        kwargs.setdefault('ca_path', self.ca_path)
        kwargs.setdefault('timeout', 10)
        kwargs.setdefault('max_retries', 1)
        kwargs.setdefault('backoff_base', 0.05)
        return RegistryClient(kwargs.pop('registry', self.host), **kwargs)


@dataclasses.dataclass
class RealRegistries:
    pki: TestPKI
    issuer: TokenIssuer
    basic: Target
    token: Target
    outsider_password: str
    pushed: dict  # {image: {tag: digest printed by docker push}}
    repo_digests: dict  # {image: {own tag: [RepoDigests of the local image]}}
    many_digest: str
    public_digest: str
    oci: dict  # {'index' | 'manifest': (digest, body)} of the OCI_IMAGE repository

    made_refs: list = dataclasses.field(default_factory=list)  # local image tags to remove at the end

    def target(self, mode):
        return {'basic': self.basic, 'token': self.token}[mode]

    def client_context(self):
        return ssl.create_default_context(cafile=self.pki.ca_path)


def _parallel(calls, workers=4):
    """Run ``[(function, args), ...]`` on a few threads; return the results in order (first error raised)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, *args) for function, args in calls]
        return [future.result() for future in futures]


def _seed(basic_host, password, conf_dir, made_refs):
    """Build the images and ``docker push`` them; return (pushed digests, RepoDigests, public digest)."""
    docker_config = tempfile.mkdtemp(prefix='docker-config-', dir=conf_dir)
    dr.docker(
        '--config',
        docker_config,
        'login',
        '-u',
        USER,
        '--password-stdin',
        basic_host,
        input_text=password + '\n',
        timeout=60,
    )
    remote = {image: f'{basic_host}/{REPOSITORY}/{image}' for image in IMAGES}
    try:
        builds, tags = [], []
        for image in IMAGES:
            for tag in OWN_IMAGES:
                local = f'{LOCAL_PREFIX}/{image}:{tag}'
                builds.append(
                    (
                        dr.build_label_image,
                        (local, {'org.opencontainers.image.title': image, 'org.opencontainers.image.version': tag}),
                    )
                )
                made_refs.append(local)
                tags.append((local, f'{remote[image]}:{tag}'))
            tags.extend((f'{LOCAL_PREFIX}/{image}:{tag}', f'{remote[image]}:{alias}') for alias, tag in ALIASES.items())
        # A public repository (anonymous pulls in token mode) and one to carry 250 tags.
        tags.extend(
            (f'{LOCAL_PREFIX}/api:v1.0.0', f'{basic_host}/{repo}:{tag}')
            for repo, tag in ((PUBLIC_REPO, 'v1.0.0'), (MANY_REPO, MANY_TAGS[0]))
        )
        _parallel(builds)
        made_refs.extend(ref for _local, ref in tags)
        _parallel([(dr.docker, ('tag', local, ref)) for local, ref in tags])
        # The first push uploads the shared base layer; the others then only mount it.
        first, *others = [remote[image] for image in IMAGES] + [
            f'{basic_host}/{PUBLIC_REPO}',
            f'{basic_host}/{MANY_REPO}',
        ]
        results = [dr.push_all_tags(first, docker_config)]
        results += _parallel([(dr.push_all_tags, (ref, docker_config)) for ref in others])
    finally:
        dr.docker('--config', docker_config, 'logout', basic_host, timeout=30, check=False)
    pushed = dict(zip(IMAGES, results, strict=False))
    for image in IMAGES:
        missing = ALL_TAGS - set(pushed[image])
        if missing:
            raise dr.DockerError(f'docker push did not report digests for {image}: {sorted(missing)}')
    repo_digests = {image: {} for image in IMAGES}
    for image in IMAGES:
        for tag in OWN_IMAGES:
            out = dr.docker(
                'image', 'inspect', '--format', '{{json .RepoDigests}}', f'{LOCAL_PREFIX}/{image}:{tag}', timeout=30
            ).stdout
            repo_digests[image][tag] = json.loads(out)
    return pushed, repo_digests, results[len(IMAGES)]['v1.0.0']


def _write(path, text):
    with open(path, 'w', encoding='ascii') as handle:
        handle.write(text)
    os.chmod(path, 0o644)  # read by the registry through a bind mount


def _remove(made_refs):
    for name in (BASIC_NAME, TOKEN_NAME):
        dr.remove_container(name)
    dr.docker('volume', 'rm', '-f', VOLUME, timeout=60, check=False)
    if made_refs:
        dr.docker('rmi', *sorted(set(made_refs)), timeout=120, check=False)


def start(conf_dir):
    """Start and seed everything; return a RealRegistries (``stop`` it at the end)."""
    os.chmod(conf_dir, 0o755)
    pki = TestPKI(conf_dir, ca_name='avatar_mgmt.ops integration CA')
    password = 'pw-' + secrets.token_urlsafe(18)
    ghcr_token = 'ghp_' + secrets.token_urlsafe(27)
    outsider_token = 'ghp_' + secrets.token_urlsafe(27)
    _write(os.path.join(conf_dir, 'htpasswd'), dr.htpasswd_line(USER, password))
    issuer = TokenIssuer(
        pki.signer_key,
        pki.signer_cert_der,
        issuer=ISSUER,
        service=SERVICE,
        users={
            USER: (ghcr_token, {f'{REPOSITORY}/*': ['pull']}),
            OUTSIDER: (outsider_token, {'someone-else/*': ['pull']}),
        },
        public=('public/*',),
        tls_context=pki.server_context(),
    ).start()
    made_refs = []
    client_ctx = ssl.create_default_context(cafile=pki.ca_path)
    try:
        secret = secrets.token_hex(16)
        _write(os.path.join(conf_dir, 'basic.yml'), dr.basic_config(secret))
        _write(os.path.join(conf_dir, 'token.yml'), dr.token_config(secret, issuer.realm, SERVICE, ISSUER))
        _remove([])  # leftovers of an interrupted run of this suite
        dr.docker('volume', 'create', '--label', 'avatar-test.itest=registry', VOLUME, timeout=60)
        basic_host = dr.run_registry(BASIC_NAME, conf_dir, 'basic.yml', VOLUME)
        token_host = dr.run_registry(TOKEN_NAME, conf_dir, 'token.yml', VOLUME, read_only=True)
        dr.wait_ready(BASIC_NAME, basic_host, client_ctx)
        dr.wait_ready(TOKEN_NAME, token_host, client_ctx)

        pushed, repo_digests, public_digest = _seed(basic_host, password, conf_dir, made_refs)
        auth = dr.basic_auth(USER, password)
        # The 250 tags: the pushed manifest PUT under 249 more tags, on a few connections at once.
        many_tags = MANY_TAGS[1:]
        many_digest = _parallel(
            [(dr.put_tags, (basic_host, client_ctx, auth, MANY_REPO, MANY_TAGS[0], many_tags[i::4])) for i in range(4)]
        )[0]
        oci = dr.put_oci_index(
            basic_host, client_ctx, auth, f'{REPOSITORY}/api:v1.2.0', f'{REPOSITORY}/{OCI_IMAGE}', OCI_TAGS
        )
    except BaseException:
        _remove(made_refs)
        issuer.stop()
        raise
    return RealRegistries(
        pki=pki,
        issuer=issuer,
        basic=Target('basic', basic_host, USER, password, pki.ca_path, password + 'x'),
        token=Target('token', token_host, USER, ghcr_token, pki.ca_path, 'ghp_' + secrets.token_urlsafe(27)),
        outsider_password=outsider_token,
        pushed=pushed,
        repo_digests=repo_digests,
        many_digest=many_digest,
        public_digest=public_digest,
        oci=oci,
        made_refs=made_refs,
    )


def stop(world):
    _remove(world.made_refs)
    world.issuer.stop()
