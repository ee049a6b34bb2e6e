# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OCI client and release resolution against the REAL Distribution 2.8 registry.

Two registry containers (see conftest.py): htpasswd/Basic and GHCR-like Bearer
tokens, both over TLS with the suite's own CA, seeded with ``docker push``.
Digests are compared with what ``docker push`` printed (and with ``docker
inspect`` RepoDigests and ``curl -I``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import urllib.parse

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci import (
    AuthError,
    NotFoundError,
    TLSError,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._release import (
    ResolutionError,
    resolve_release,
)
from ansible_collections.avatar_mgmt.ops.tests.integration.utils.docker_registry import (
    DOCKER_V2_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from ansible_collections.avatar_mgmt.ops.tests.integration.utils.paging_proxy import PagingProxy
from ansible_collections.avatar_mgmt.ops.tests.integration.utils.world import (
    ALL_TAGS,
    IMAGES,
    MANY_REPO,
    MANY_TAGS,
    OCI_IMAGE,
    OCI_TAGS,
    OUTSIDER,
    OWN_IMAGES,
    PUBLIC_REPO,
    REPOSITORY,
    ROOT,
    SERVICE,
    USER,
)

pytestmark = pytest.mark.docker

VERSIONS_NEWEST_FIRST = ['v1.3.0-beta.1', 'v1.2.0', 'v1.1.0', 'v1.0.0']


def name_of(image):
    return f'{REPOSITORY}/{image}'


def tag_list_requests(client):
    return [(method, path) for method, path in client.request_log if '/tags/list' in path]


# --- tags and digests -------------------------------------------------------


def test_list_tags_returns_every_tag(target):
    with target.client() as client:
        for image in IMAGES:
            tags = client.list_tags(name_of(image))
            assert len(tags) == len(ALL_TAGS)
            assert set(tags) == ALL_TAGS


def test_manifest_digests_equal_what_docker_pushed(real_registries, target):
    pushed = real_registries.pushed
    with target.client() as client:
        for image in IMAGES:
            for tag in sorted(ALL_TAGS):
                info = client.manifest_digest(name_of(image), tag)
                assert info.digest == pushed[image][tag], (image, tag)
                assert info.media_type == DOCKER_V2_MANIFEST
        # One HEAD per tag once authenticated: basic answers one challenge per host,
        # token mode fetches one token per repository (scope).
        heads = len(IMAGES) * len(ALL_TAGS)
        expected = heads + 1 if target.mode == 'basic' else heads + 2 * len(IMAGES)
        assert client.request_count == expected, client.request_log
        assert all(method == 'HEAD' for method, path in client.request_log if '/manifests/' in path)


def test_push_digests_agree_with_docker_inspect_and_curl(real_registries, target):
    """The reference digests themselves, checked by two other means."""
    if shutil.which('curl') is None:
        pytest.skip('curl is not installed')
    pushed = real_registries.pushed
    for image in IMAGES:
        for tag in OWN_IMAGES:
            assert (
                f'{real_registries.basic.host}/{name_of(image)}@{pushed[image][tag]}'
                in real_registries.repo_digests[image][tag]
            )
    ca = target.ca_path
    if target.mode == 'basic':
        auth = ['-u', f'{target.username}:{target.password}']
    else:
        query = urllib.parse.urlencode({'service': SERVICE, 'scope': f'repository:{name_of("api")}:pull'})
        out = subprocess.run(
            [
                'curl',
                '-sS',
                '--fail',
                '--max-time',
                '10',
                '--cacert',
                ca,
                '-u',
                f'{target.username}:{target.password}',
                f'{real_registries.issuer.realm}?{query}',
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        auth = ['-H', 'Authorization: Bearer ' + json.loads(out)['token']]
    for tag in ('latest', 'v1.2.0', 'staging'):
        out = subprocess.run(
            [
                'curl',
                '-sS',
                '-I',
                '--fail',
                '--max-time',
                '10',
                '--cacert',
                ca,
                *auth,
                '-H',
                f'Accept: {DOCKER_V2_MANIFEST}',
                f'https://{target.host}/v2/{name_of("api")}/manifests/{tag}',
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        headers = dict(line.split(':', 1) for line in out.splitlines() if ':' in line)
        headers = {key.strip().lower(): value.strip() for key, value in headers.items()}
        assert headers['docker-content-digest'] == pushed['api'][tag]


def test_oci_index_and_digest_references(real_registries, target):
    """Images published as buildx/GHCR do (OCI index over an OCI manifest), and lookups by digest."""
    oci = real_registries.oci
    name = name_of(OCI_IMAGE)
    with target.client() as client:
        assert set(client.list_tags(name)) == set(OCI_TAGS)
        for tag, kind in OCI_TAGS.items():
            info = client.manifest_digest(name, tag)
            assert info.digest == oci[kind][0]
            assert info.media_type == (OCI_INDEX if kind == 'index' else OCI_MANIFEST)
        # By digest: the index, the image manifest it lists (untagged), a pushed Docker manifest.
        assert client.manifest_digest(name, oci['index'][0]).media_type == OCI_INDEX
        assert client.manifest_digest(name, oci['manifest'][0]).media_type == OCI_MANIFEST
        pushed = real_registries.pushed['api']['v1.1.0']
        assert client.manifest_digest(name_of('api'), pushed).digest == pushed
        result = resolve_release(client, REPOSITORY, [OCI_IMAGE], 'latest')
    assert result['version'] == 'v1.2.0'
    assert result['images'][OCI_IMAGE]['digest'] == oci['index'][0]
    assert result['images'][OCI_IMAGE]['media_type'] == OCI_INDEX
    assert result['versions'] == ['v1.2.0', 'v1.1.0']


# --- release resolution ----------------------------------------------------


@pytest.mark.parametrize(
    'requested, version, resolved_by',
    [
        ('latest', 'v1.2.0', 'channel_digest'),
        ('staging', 'v1.3.0-beta.1', 'channel_digest'),
        ('v1.1.0', 'v1.1.0', 'version'),
        ('1.1.0', 'v1.1.0', 'version'),
    ],
)
def test_resolve_release(real_registries, target, requested, version, resolved_by):
    with target.client() as client:
        result = resolve_release(client, REPOSITORY, list(IMAGES), requested)
    assert result['version'] == version
    assert result['requested'] == requested
    assert result['prerelease'] is (version == 'v1.3.0-beta.1')
    assert result['versions'] == VERSIONS_NEWEST_FIRST
    if requested in ('latest', 'staging'):
        assert result['channel'] == requested
        # The channel tag and the version tag are the same manifest in the registry.
        for image in IMAGES:
            assert real_registries.pushed[image][requested] == real_registries.pushed[image][version]
    else:
        assert 'channel' not in result
    assert set(result['images']) == set(IMAGES)
    for image in IMAGES:
        digest = real_registries.pushed[image][version]
        entry = result['images'][image]
        assert entry == {
            'tag': f'{target.host}/{name_of(image)}:{version}',
            'digest': digest,
            'reference': f'{target.host}/{name_of(image)}@{digest}',
            'media_type': DOCKER_V2_MANIFEST,
            'resolved_by': resolved_by,
        }


def test_missing_version_names_image_and_tag(target):
    with target.client() as client:
        with pytest.raises(ResolutionError) as excinfo:
            resolve_release(client, REPOSITORY, list(IMAGES), 'v9.9.9')
        message = str(excinfo.value)
        assert 'v9.9.9' in message
        assert f'{target.host}/{name_of("api")}' in message
        assert 'v1.2.0' in message  # what is there instead

        with pytest.raises(NotFoundError) as excinfo:
            client.manifest_digest(name_of('frontend'), 'v9.9.9')
        assert excinfo.value.image == name_of('frontend')
        assert excinfo.value.reference == 'v9.9.9'
        assert f'Tag v9.9.9 of image {target.host}/{name_of("frontend")} was not found' in str(excinfo.value)


def test_missing_repository_is_not_found(target):
    with target.client() as client, pytest.raises(NotFoundError) as excinfo:
        client.list_tags(name_of('nope'))
    assert f'{target.host}/{name_of("nope")}' in str(excinfo.value)
    assert 'NAME_UNKNOWN' in str(excinfo.value)


# --- authentication --------------------------------------------------------


def test_wrong_password_is_an_auth_error_naming_the_registry(target):
    with target.client(password=target.wrong_password) as client, pytest.raises(AuthError) as excinfo:
        client.list_tags(name_of('api'))
    message = str(excinfo.value)
    assert excinfo.value.registry == target.host
    assert target.host in message
    assert 'registry' in message.lower()
    assert repr(USER) in message
    assert 'Check username' in message
    assert target.wrong_password not in message
    assert target.password not in message


def test_token_mode_user_without_access(real_registries):
    token = real_registries.token
    real_registries.issuer.log.clear()
    with token.client(username=OUTSIDER, password=real_registries.outsider_password) as client:
        with pytest.raises(AuthError) as excinfo:
            client.list_tags(name_of('api'))
        with pytest.raises(AuthError):
            client.manifest_digest(name_of('api'), 'v1.2.0')
    message = str(excinfo.value)
    assert f'Registry {token.host}' in message
    assert repr(OUTSIDER) in message
    assert f'repository:{name_of("api")}:pull' in message
    assert real_registries.outsider_password not in message
    # The issuer did issue a token (valid credentials); it just grants nothing.
    assert (OUTSIDER, [f'repository:{name_of("api")}:pull'], 200) in real_registries.issuer.log


def test_token_mode_renews_an_expired_token(real_registries):
    """A cached token the registry no longer accepts is replaced by a fresh one, transparently."""
    token = real_registries.token
    name = name_of('api')
    scope = f'repository:{name}:pull'
    expired, _access = real_registries.issuer.issue(USER, [scope], SERVICE, ttl=-600)
    with token.client() as client:
        client._tokens[scope] = expired  # as if cached by an earlier call that long ago
        assert set(client.list_tags(name)) == ALL_TAGS
        # Refused (401), a new token, the retry.
        assert [path.split('?')[0] for _method, path in client.request_log] == [
            f'/v2/{name}/tags/list',
            '/token',
            f'/v2/{name}/tags/list',
        ]
        assert client._tokens[scope] != expired
        assert client.manifest_digest(name, 'latest').digest == real_registries.pushed['api']['latest']
        assert client.request_count == 4


def test_token_mode_anonymous(real_registries):
    token = real_registries.token
    with token.client(username=None, password=None) as client:
        assert client.list_tags(PUBLIC_REPO) == ['v1.0.0']
        assert client.manifest_digest(PUBLIC_REPO, 'v1.0.0').digest == real_registries.public_digest
        with pytest.raises(AuthError) as excinfo:
            client.list_tags(name_of('api'))
    assert 'anonymous access' in str(excinfo.value)


def test_basic_mode_anonymous_is_asked_to_log_in(real_registries):
    basic = real_registries.basic
    with basic.client(username=None, password=None) as client, pytest.raises(AuthError) as excinfo:
        client.list_tags(name_of('api'))
    assert f'Registry {basic.host} requires a login' in str(excinfo.value)


# --- TLS -------------------------------------------------------------------


def test_tls_verification(real_registries, target):
    with target.client() as client:
        assert 'v1.2.0' in client.list_tags(name_of('api'))
    # The certificate also names localhost.
    port = target.host.rsplit(':', 1)[1]
    with target.client(registry=f'localhost:{port}') as client:
        assert client.manifest_digest(name_of('api'), 'latest').digest == real_registries.pushed['api']['latest']
    with target.client(ca_path=None) as client, pytest.raises(TLSError) as excinfo:
        client.list_tags(name_of('api'))
    assert target.host in str(excinfo.value)
    assert 'certificate verification failed' in str(excinfo.value)
    assert 'ca_path' in str(excinfo.value)
    with target.client(ca_path=None, validate_certs=False) as client:
        assert client.manifest_digest(name_of('api'), 'staging').digest == real_registries.pushed['api']['staging']


# --- pagination ------------------------------------------------------------


def test_real_registry_ignores_page_size(real_registries, target):
    """Distribution 2.8 answers every tag whatever ``n`` says; the client takes it in one page."""
    with target.client(page_size=10) as client:
        tags = client.list_tags(MANY_REPO)
        assert sorted(tags) == list(MANY_TAGS)
        ok_pages = tag_list_requests(client)[1:]  # the first one is the 401 challenge
        assert len(ok_pages) == 1
    # A page size equal to the tag count looks like a full page: one more request, no duplicates.
    with target.client(page_size=len(MANY_TAGS)) as client:
        tags = client.list_tags(MANY_REPO)
        assert sorted(tags) == list(MANY_TAGS)
        assert len(tag_list_requests(client)) == 3
        assert 'last=' in tag_list_requests(client)[-1][1]


def test_pagination_through_a_ghcr_like_front(real_registries, target):
    upstream_context = real_registries.client_context()
    with PagingProxy(target.host, upstream_context, tls_context=real_registries.pki.server_context()) as front:
        with target.client(registry=front.host) as client:
            tags = client.list_tags(MANY_REPO)
            assert len(tags) == len(MANY_TAGS) == 250
            assert sorted(tags) == list(MANY_TAGS)
            # The digest of a tag on the last page, through the front as well.
            assert client.manifest_digest(MANY_REPO, tags[-1]).digest == real_registries.many_digest
            requests = list(client.request_log)
        pages = [entry for entry in front.log if '/tags/list' in entry[1] and entry[2] == 200]
        assert [len(entry[3]) for entry in pages] == [100, 100, 50]
        assert pages[0][1] == f'/v2/{MANY_REPO}/tags/list?n=100'
        for entry, previous in zip(pages[1:], pages, strict=False):
            assert f'last={previous[3][-1]}' in entry[1]
        challenges = [entry for entry in front.log if '/tags/list' in entry[1] and entry[2] == 401]
        assert len(challenges) == 1
    # 3 pages + 1 challenge (+ 1 token request in token mode), then 1 HEAD.
    listing = [r for r in requests if '/manifests/' not in r[1]]
    assert len(listing) == (4 if target.mode == 'basic' else 5), requests
    assert len(requests) == len(listing) + 1


# --- the module, end to end ------------------------------------------------


def test_release_tag_module_end_to_end(real_registries):
    basic = real_registries.basic
    ansible = os.path.join(ROOT, '.venv', 'bin', 'ansible')
    python = os.path.join(ROOT, '.venv', 'bin', 'python')
    if not os.access(ansible, os.X_OK):
        pytest.skip(f'{ansible} is missing')
    args = ' '.join(
        shlex.quote(f'{key}={value}')
        for key, value in (
            ('registry', basic.host),
            ('repository', REPOSITORY),
            ('images', ','.join(IMAGES)),
            ('tag', 'latest'),
            ('username', basic.username),
            ('password', basic.password),
            ('ca_path', basic.ca_path),
            ('timeout', 10),
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK='json',
        ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_NOCOLOR='1',
    )
    proc = subprocess.run(
        [
            ansible,
            'localhost',
            '-i',
            'localhost,',
            '-c',
            'local',
            '-m',
            'avatar_mgmt.ops.release_tag',
            '-a',
            args,
            '-e',
            f'ansible_python_interpreter={python}',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert basic.password not in proc.stdout
    doc = json.loads(proc.stdout)
    result = doc['plays'][0]['tasks'][0]['hosts']['localhost']
    assert result['changed'] is False
    assert result['version'] == 'v1.2.0'
    assert result['channel'] == 'latest'
    for image in IMAGES:
        digest = real_registries.pushed[image]['v1.2.0']
        assert result['images'][image]['digest'] == digest
        assert result['images'][image]['reference'] == f'{basic.host}/{name_of(image)}@{digest}'
