# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import email.utils
import hashlib
import json
import socket
import time

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    FakeRegistry,
    Manifest,
    make_tls_files,
)

NAME = 'rayhu/avatar-mgmt/api'
PASSWORD = 'ghp_s3cretTokenValue'


def tags_repo(count, prefix='v1.0.'):
    return {NAME: {f'{prefix}{i}': Manifest(i) for i in range(count)}}


def client_for(reg, **kwargs):
    sleeps = []
    kwargs.setdefault('sleep', sleeps.append)
    kwargs.setdefault('timeout', 5)
    client = _oci.RegistryClient(reg.url, **kwargs)
    client.sleeps = sleeps
    return client


# -- pure helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    'header, expected',
    [
        ('Basic realm="Registry Realm"', [('basic', {'realm': 'Registry Realm'})]),
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:rayhu/avatar-mgmt/api:pull"',
            [
                (
                    'bearer',
                    {
                        'realm': 'https://ghcr.io/token',
                        'service': 'ghcr.io',
                        'scope': 'repository:rayhu/avatar-mgmt/api:pull',
                    },
                )
            ],
        ),
        (
            'Bearer realm="https://auth.example/token", scope="repository:a/b:pull,push", service="x"',
            [('bearer', {'realm': 'https://auth.example/token', 'scope': 'repository:a/b:pull,push', 'service': 'x'})],
        ),
        (
            'Bearer realm="a\\"b",error="insufficient_scope"',
            [('bearer', {'realm': 'a"b', 'error': 'insufficient_scope'})],
        ),
        (
            'Basic realm=simple, Bearer realm="t",service="s"',
            [('basic', {'realm': 'simple'}), ('bearer', {'realm': 't', 'service': 's'})],
        ),
        ('BEARER Realm="x"', [('bearer', {'realm': 'x'})]),
        ('', []),
    ],
)
def test_parse_www_authenticate(header, expected):
    assert _oci.parse_www_authenticate(header) == expected


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


def test_parse_retry_after():
    now = time.time()
    assert _oci.parse_retry_after('7') == 7.0
    assert _oci.parse_retry_after(None) is None
    assert _oci.parse_retry_after('soon') is None
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= _oci.parse_retry_after(date, now=now) <= 31
    assert _oci.parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


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


# -- authentication --------------------------------------------------------------


def test_basic_auth_challenge_then_proactive():
    with FakeRegistry(tags_repo(3), auth='basic', username='me', password=PASSWORD) as reg:
        client = client_for(reg, username='me', password=PASSWORD)
        assert len(client.list_tags(NAME)) == 3
        assert client.request_count == 2  # 401, then with credentials
        client.manifest_digest(NAME, 'v1.0.0')
        assert client.request_count == 3  # credentials sent up front now


def test_basic_auth_without_credentials():
    with (
        FakeRegistry(tags_repo(3), auth='basic', username='me', password=PASSWORD) as reg,
        pytest.raises(_oci.AuthError, match='requires a login'),
    ):
        client_for(reg).list_tags(NAME)


@pytest.mark.parametrize(
    'auth, refusal',
    [
        ('basic', 'rejected the credentials'),  # by the registry itself
        ('bearer', 'refused the credentials'),  # by its token endpoint
    ],
)
def test_wrong_password_is_auth_error_that_does_not_leak_it(auth, refusal):
    with (
        FakeRegistry(tags_repo(3), auth=auth, username='me', password=PASSWORD) as reg,
        pytest.raises(_oci.AuthError) as excinfo,
    ):
        client_for(reg, username='me', password='wrong-password-123').list_tags(NAME)
    message = str(excinfo.value)
    assert refusal in message
    assert reg.host in message
    assert 'wrong-password-123' not in message


def test_bearer_anonymous():
    with FakeRegistry(tags_repo(250), auth='bearer') as reg:
        client = client_for(reg, page_size=100)
        assert len(client.list_tags(NAME)) == 250
        client.manifest_digest(NAME, 'v1.0.1')
    assert len(reg.token_log) == 1  # token cached for the scope
    query, authorization = reg.token_log[0]
    assert authorization is None
    assert query == {'service': 'fake,registry', 'scope': f'repository:{NAME}:pull'}
    # 401, token, 3 pages, 1 HEAD
    assert client.request_count == 6


@pytest.mark.parametrize('token_key', ['token', 'access_token'])
def test_bearer_with_credentials(token_key):
    with FakeRegistry(
        tags_repo(3), auth='bearer', username='me', password=PASSWORD, anonymous=False, token_key=token_key
    ) as reg:
        client = client_for(reg, username='me', password=PASSWORD)
        assert len(client.list_tags(NAME)) == 3
    assert reg.token_log[0][1].startswith('Basic ')


def test_bearer_anonymous_refused_for_private_repo():
    with (
        FakeRegistry(tags_repo(3), auth='bearer', username='me', password=PASSWORD, anonymous=False) as reg,
        pytest.raises(_oci.AuthError, match='refused anonymous access'),
    ):
        client_for(reg).list_tags(NAME)


def test_bearer_401_after_fresh_token_is_auth_error():
    with FakeRegistry(tags_repo(3), auth='bearer', username='me', password=PASSWORD, accept_tokens=False) as reg:
        client = client_for(reg, username='me', password=PASSWORD)
        with pytest.raises(_oci.AuthError) as excinfo:
            client.list_tags(NAME)
    message = str(excinfo.value)
    assert 'freshly issued token' in message
    assert 'read:packages' in message
    assert reg.host in message
    assert PASSWORD not in message
    assert client.request_count == 3  # no loop: 401, token, 401


def test_expired_token_is_renewed_once():
    with FakeRegistry(tags_repo(3), auth='bearer') as reg:
        client = client_for(reg)
        client.list_tags(NAME)
        reg.tokens.clear()  # every issued token expires
        assert len(client.list_tags(NAME)) == 3
    assert len(reg.token_log) == 2


def test_credentials_not_sent_to_plain_http_token_endpoint_of_https_registry():
    client = _oci.RegistryClient('ghcr.io', username='me', password=PASSWORD)
    with pytest.raises(_oci.AuthError, match='unencrypted'):
        client._fetch_token({'realm': 'http://ghcr.io/token'}, 'repository:x:pull')
    assert client.request_count == 0


def test_401_without_challenge():
    with FakeRegistry(tags_repo(1)) as reg:
        reg.inject(r'/tags/list', 401, {}, b'')
        with pytest.raises(_oci.AuthError, match='without a usable WWW-Authenticate'):
            client_for(reg).list_tags(NAME)


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


# -- retries ---------------------------------------------------------------------


def test_500_then_success():
    with FakeRegistry(tags_repo(3)) as reg:
        reg.inject(r'/tags/list', 500)
        client = client_for(reg, backoff_base=0.5)
        assert len(client.list_tags(NAME)) == 3
    assert client.sleeps == [0.5]
    assert client.request_count == 2


def test_429_honours_retry_after_seconds():
    with FakeRegistry(tags_repo(3)) as reg:
        reg.inject(r'/manifests/', 429, {'Retry-After': '7'})
        client = client_for(reg)
        client.manifest_digest(NAME, 'v1.0.0')
    assert client.sleeps == [7.0]


def test_429_honours_retry_after_http_date():
    with FakeRegistry(tags_repo(3)) as reg:
        reg.inject(r'/tags/list', 429, {'Retry-After': email.utils.formatdate(time.time() + 20, usegmt=True)})
        client = client_for(reg)
        client.list_tags(NAME)
    assert len(client.sleeps) == 1
    assert 17 <= client.sleeps[0] <= 21


def test_retry_after_beyond_limit_fails_fast():
    with FakeRegistry(tags_repo(3)) as reg:
        reg.inject(r'/tags/list', 429, {'Retry-After': '3600'})
        client = client_for(reg, backoff_max=60)
        with pytest.raises(_oci.RegistryUnavailableError, match='retry after 3600 seconds'):
            client.list_tags(NAME)
    assert client.sleeps == []


def test_persistent_503_gives_up_with_exponential_backoff():
    with FakeRegistry(tags_repo(3)) as reg:
        reg.inject(r'/tags/list', 503, times=10)
        client = client_for(reg, max_retries=3, backoff_base=1)
        with pytest.raises(_oci.RegistryUnavailableError) as excinfo:
            client.list_tags(NAME)
    assert client.sleeps == [1, 2, 4]
    assert client.request_count == 4
    assert 'after 4 attempts' in str(excinfo.value)
    assert reg.host in str(excinfo.value)


def test_404_is_not_retried():
    with FakeRegistry(tags_repo(3)) as reg:
        client = client_for(reg)
        with pytest.raises(_oci.NotFoundError):
            client.manifest_digest(NAME, 'nope')
    assert client.sleeps == []


def test_connection_refused_is_retried_then_reported():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    sleeps = []
    client = _oci.RegistryClient(f'http://127.0.0.1:{port}', max_retries=2, sleep=sleeps.append, timeout=2)
    with pytest.raises(_oci.RegistryConnectionError) as excinfo:
        client.list_tags(NAME)
    assert len(sleeps) == 2
    assert f'127.0.0.1:{port}' in str(excinfo.value)


def test_timeout_is_reported():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(5)
    try:
        client = _oci.RegistryClient(f'http://127.0.0.1:{listener.getsockname()[1]}', timeout=0.2, max_retries=0)
        with pytest.raises(_oci.RegistryConnectionError, match='Timed out'):
            client.list_tags(NAME)
    finally:
        listener.close()


# -- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    return make_tls_files(str(tmp_path_factory.mktemp('tls')))


def test_tls_with_custom_ca(tls):
    ca_path, context = tls
    with FakeRegistry(tags_repo(3), tls_context=context) as reg:
        assert reg.url.startswith('https://')
        client = client_for(reg, ca_path=ca_path)
        assert len(client.list_tags(NAME)) == 3


def test_tls_unknown_ca_fails_with_advice(tls):
    _ca_path, context = tls
    with FakeRegistry(tags_repo(3), tls_context=context) as reg:
        client = client_for(reg)
        with pytest.raises(_oci.TLSError) as excinfo:
            client.list_tags(NAME)
    assert 'ca_path' in str(excinfo.value)
    assert 'validate_certs' in str(excinfo.value)
    assert client.sleeps == []  # not retried


def test_tls_validate_certs_off(tls):
    _ca_path, context = tls
    with FakeRegistry(tags_repo(3), tls_context=context) as reg:
        client = client_for(reg, validate_certs=False)
        assert len(client.list_tags(NAME)) == 3


def test_bad_ca_file(tmp_path):
    path = tmp_path / 'ca.pem'
    path.write_text('not a certificate')
    with pytest.raises(_oci.TLSError, match='ca_path'):
        _oci.RegistryClient('ghcr.io', ca_path=str(path))


# -- secrets -------------------------------------------------------------------


def test_error_body_echoing_password_is_redacted():
    with FakeRegistry(tags_repo(1)) as reg:
        body = (f'{{"errors":[{{"code":"DENIED","message":"bad token {PASSWORD}"}}]}}').encode()
        reg.inject(r'/tags/list', 403, {'Content-Type': 'application/json'}, body)
        client = client_for(reg, username='me', password=PASSWORD)
        with pytest.raises(_oci.AuthError) as excinfo:
            client.list_tags(NAME)
    assert PASSWORD not in str(excinfo.value)
    assert '********' in str(excinfo.value)


def test_request_counter_and_reset():
    with FakeRegistry(tags_repo(3)) as reg:
        client = client_for(reg)
        client.list_tags(NAME)
        assert client.request_count == 1
        assert client.request_log == [('GET', f'/v2/{NAME}/tags/list?n=100')]
        client.reset_counter()
        assert client.request_count == 0
        client.close()
