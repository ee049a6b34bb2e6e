# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import importlib
import json

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    FakeRegistry,
    Manifest,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.oci_client import NAME, PASSWORD, client_for, tags_repo

# -- public names ----------------------------------------------------------------


@pytest.mark.parametrize(
    'name, module',
    [
        ('AuthError', '_oci_errors'),
        ('NotFoundError', '_oci_errors'),
        ('ProtocolError', '_oci_errors'),
        ('RegistryConnectionError', '_oci_errors'),
        ('RegistryError', '_oci_errors'),
        ('RegistryUnavailableError', '_oci_errors'),
        ('TLSError', '_oci_errors'),
    ],
)
def test_public_names_are_re_exported(name, module):
    """``from .._oci import X`` keeps working for every name that moved to a concern module."""
    moved = importlib.import_module(f'ansible_collections.avatar_mgmt.ops.plugins.module_utils.{module}')
    assert getattr(_oci, name) is getattr(moved, name)
    assert name in _oci.__all__


def test_all_names_exist():
    for name in _oci.__all__:
        assert hasattr(_oci, name), name


# -- pure helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    'header, expected',
    [
        ('</v2/a/tags/list?n=100&last=v1>; rel="next"', {'next': '/v2/a/tags/list?n=100&last=v1'}),
        ('<https://r.example/v2/a/tags/list?last=x>; rel=next', {'next': 'https://r.example/v2/a/tags/list?last=x'}),
        ('</p1>; rel="prev", </p3>; rel="next"', {'prev': '/p1', 'next': '/p3'}),
        ('', {}),
    ],
)
def test_parse_link_header(header, expected):
    assert _oci.parse_link_header(header) == expected


@pytest.mark.parametrize(
    'registry, scheme, host',
    [
        ('ghcr.io', 'https', 'ghcr.io'),
        ('GHCR.io', 'https', 'ghcr.io'),
        ('https://ghcr.io/', 'https', 'ghcr.io'),
        ('http://127.0.0.1:5000', 'http', '127.0.0.1:5000'),
        ('registry.example.com:5000', 'https', 'registry.example.com:5000'),
    ],
)
def test_split_registry(registry, scheme, host):
    assert _oci.RegistryClient.split_registry(registry) == (scheme, host)


@pytest.mark.parametrize('registry', ['', 'ghcr.io/evil path', 'ftp://ghcr.io', 'ghcr.io/x', 'user@ghcr.io', None])
def test_split_registry_rejects(registry):
    with pytest.raises(ValueError, match='registry'):
        _oci.RegistryClient.split_registry(registry)


def test_constructor_needs_both_credentials():
    with pytest.raises(ValueError, match='both username and password'):
        _oci.RegistryClient('ghcr.io', password=PASSWORD)
    with pytest.raises(ValueError, match='both username and password'):
        _oci.RegistryClient('ghcr.io', username='me')


@pytest.mark.parametrize('name', ['Rayhu/api', 'a//b', '../etc', 'a/b?x=1', '', 'a b'])
def test_invalid_names_are_refused_before_any_request(name):
    client = _oci.RegistryClient('http://127.0.0.1:9', max_retries=0)
    with pytest.raises(ValueError, match='Invalid repository name'):
        client.list_tags(name)
    with pytest.raises(ValueError, match='Invalid repository name'):
        client.manifest_digest(name, 'v1.0.0')
    assert client.request_count == 0


@pytest.mark.parametrize('reference', ['v1.0.0; rm', '../x', '', '-v1', 'a' * 129])
def test_invalid_reference_refused(reference):
    client = _oci.RegistryClient('http://127.0.0.1:9', max_retries=0)
    with pytest.raises(ValueError, match='Invalid tag or digest'):
        client.manifest_digest(NAME, reference)
    assert client.request_count == 0


# -- pagination ------------------------------------------------------------------


@pytest.mark.parametrize('link', ['relative', 'absolute'])
def test_pagination_follows_link(link):
    with FakeRegistry(tags_repo(250), link=link) as reg:
        client = client_for(reg, page_size=100)
        tags = client.list_tags(NAME)
    assert len(tags) == 250
    assert set(tags) == set(tags_repo(250)[NAME])
    assert client.request_count == 3
    assert next(p for _m, p in reg.requests()).endswith('/tags/list?n=100')


def test_pagination_when_registry_caps_page_below_n():
    with FakeRegistry(tags_repo(250), page_max=40) as reg:
        client = client_for(reg, page_size=100)
        assert len(client.list_tags(NAME)) == 250
    assert client.request_count == 7  # ceil(250 / 40)


def test_pagination_last_parameter_without_link():
    with FakeRegistry(tags_repo(250), link=None) as reg:
        client = client_for(reg, page_size=100)
        tags = client.list_tags(NAME)
    assert len(tags) == 250
    assert any('last=' in p for _m, p in reg.requests())
    assert client.request_count == 3  # 100 + 100 + 50


def test_pagination_registry_ignoring_n_and_last():
    everything = json.dumps({'tags': sorted(tags_repo(250)[NAME])}).encode()
    with FakeRegistry(tags_repo(250), link=None) as reg:
        reg.inject(r'/tags/list', 200, {'Content-Type': 'application/json'}, everything)
        client = client_for(reg, page_size=100)
        # A registry that ignores n returns all 250 at once: no second request.
        assert len(client.list_tags(NAME)) == 250
    assert client.request_count == 1


def test_pagination_registry_ignoring_last_stops():
    with FakeRegistry(tags_repo(250), link=None) as reg:
        reg.inject(
            r'/tags/list',
            200,
            {'Content-Type': 'application/json'},
            json.dumps({'tags': [f'v1.0.{i}' for i in range(100)]}).encode(),
            times=5,
        )
        client = client_for(reg, page_size=100)
        assert len(client.list_tags(NAME)) == 100
    assert client.request_count == 2  # the repeated page brought nothing new


def test_link_to_another_origin_is_not_followed():
    with FakeRegistry(tags_repo(5)) as reg:
        reg.inject(
            r'/tags/list',
            200,
            {'Content-Type': 'application/json', 'Link': '<https://evil.example/v2/x/tags/list?n=1>; rel="next"'},
            b'{"tags": ["v1.0.0"]}',
        )
        client = client_for(reg)
        with pytest.raises(_oci.ProtocolError, match='another server'):
            client.list_tags(NAME)


def test_empty_and_null_tag_list():
    with FakeRegistry({NAME: {}}) as reg:
        assert client_for(reg).list_tags(NAME) == []
        reg.inject(r'/tags/list', 200, {'Content-Type': 'application/json'}, b'{"name": "x", "tags": null}')
        assert client_for(reg).list_tags(NAME) == []


def test_tag_list_not_json():
    with FakeRegistry(tags_repo(1)) as reg:
        reg.inject(r'/tags/list', 200, {'Content-Type': 'text/html'}, b'<html>')
        with pytest.raises(_oci.ProtocolError, match='not JSON'):
            client_for(reg).list_tags(NAME)


# -- manifests -------------------------------------------------------------------


@pytest.mark.parametrize('media_type', [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
def test_manifest_digest_by_head(media_type):
    manifest = Manifest('x', media_type)
    with FakeRegistry({NAME: {'v1.0.0': manifest}}) as reg:
        client = client_for(reg)
        info = client.manifest_digest(NAME, 'v1.0.0')
    assert info == _oci.ManifestInfo(manifest.digest, media_type)
    assert reg.requests() == [('HEAD', f'/v2/{NAME}/manifests/v1.0.0')]
    accept = reg.log[0][2]['Accept']
    for wanted in _oci.MANIFEST_MEDIA_TYPES:
        assert wanted in accept


def test_manifest_digest_without_header_hashes_body():
    manifest = Manifest('y', DOCKER_MANIFEST)
    with FakeRegistry({NAME: {'latest': manifest}}, digest_header=False) as reg:
        info = client_for(reg).manifest_digest(NAME, 'latest')
    assert info.digest == 'sha256:' + hashlib.sha256(manifest.body).hexdigest() == manifest.digest
    assert info.media_type == DOCKER_MANIFEST
    assert [m for m, _p in reg.requests()] == ['HEAD', 'GET']


def test_manifest_digest_head_not_allowed_falls_back_to_get():
    manifest = Manifest('z')
    with FakeRegistry({NAME: {'v1.0.0': manifest}}, head_allowed=False) as reg:
        info = client_for(reg).manifest_digest(NAME, 'v1.0.0')
    assert info.digest == manifest.digest
    assert [m for m, _p in reg.requests()] == ['HEAD', 'GET']


def test_manifest_media_type_from_body_when_no_content_type():
    manifest = Manifest('w', OCI_MANIFEST)
    with FakeRegistry({NAME: {}}) as reg:
        reg.inject(r'/manifests/', 200, {}, b'', method='HEAD')
        reg.inject(r'/manifests/', 200, {}, manifest.body, method='GET')
        info = client_for(reg).manifest_digest(NAME, 'v1.0.0')
    assert info == (manifest.digest, OCI_MANIFEST)


def test_manifest_not_found_names_image_and_tag():
    with FakeRegistry({NAME: {'v1.0.0': Manifest(1)}}) as reg, pytest.raises(_oci.NotFoundError) as excinfo:
        client_for(reg).manifest_digest(NAME, 'v9.9.9')
    assert excinfo.value.image == NAME
    assert excinfo.value.reference == 'v9.9.9'
    assert 'v9.9.9' in str(excinfo.value)
    assert NAME in str(excinfo.value)
    assert reg.host in str(excinfo.value)


def test_repository_not_found_names_image():
    with FakeRegistry({NAME: {}}) as reg, pytest.raises(_oci.NotFoundError) as excinfo:
        client_for(reg).list_tags('rayhu/avatar-mgmt/frontend')
    assert 'rayhu/avatar-mgmt/frontend' in str(excinfo.value)
    assert 'NAME_UNKNOWN' in str(excinfo.value)


def test_invalid_digest_header_is_refused():
    with FakeRegistry({NAME: {}}) as reg:
        reg.inject(
            r'/manifests/', 200, {'Docker-Content-Digest': 'md5 nonsense', 'Content-Type': OCI_INDEX}, method='HEAD'
        )
        with pytest.raises(_oci.ProtocolError, match='invalid digest'):
            client_for(reg).manifest_digest(NAME, 'v1.0.0')


# -- status handling (authentication itself: test__oci_auth.py) -----------------


def test_403_is_auth_error():
    with FakeRegistry(tags_repo(1)) as reg:
        reg.inject(
            r'/tags/list',
            403,
            {'Content-Type': 'application/json'},
            b'{"errors":[{"code":"DENIED","message":"permission_denied"}]}',
        )
        with pytest.raises(_oci.AuthError, match='DENIED'):
            client_for(reg).list_tags(NAME)


# -- counters (retries, TLS, proxies: test__oci_transport.py) --------------------


def test_request_counter_and_reset():
    with FakeRegistry(tags_repo(3)) as reg:
        client = client_for(reg)
        client.list_tags(NAME)
        assert client.request_count == 1
        assert client.request_log == [('GET', f'/v2/{NAME}/tags/list?n=100')]
        client.reset_counter()
        assert client.request_count == 0
        client.close()


def test_endpoint_is_where_the_client_connects_and_registry_what_references_name():
    from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci import RegistryClient as Client

    client = Client('ghcr.avatar.test', endpoint='127.0.0.1:5443')
    assert client.registry == 'ghcr.avatar.test'
    assert client.base_url == 'https://127.0.0.1:5443'
    plain = Client('ghcr.io')
    assert plain.registry == 'ghcr.io'
    assert plain.base_url == 'https://ghcr.io'
