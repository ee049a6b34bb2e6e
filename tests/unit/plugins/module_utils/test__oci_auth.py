# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_oci_auth.py: challenge parsing, Basic, Bearer tokens per scope.

The flows run through the public client against the fake registry (tests/unit/utils/fake_registry.py).
"""

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci, _oci_auth
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import FakeRegistry
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.oci_client import NAME, PASSWORD, client_for, tags_repo

# -- WWW-Authenticate ------------------------------------------------------------


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
    assert _oci_auth.parse_www_authenticate(header) == expected


def test_basic_header():
    assert _oci_auth.basic_header('me', 'pw') == 'Basic bWU6cHc='


def test_redact_masks_password_basic_credential_tokens_and_url_user_info():
    auth = _oci_auth.Authenticator('ghcr.io', 'https', username='me', password=PASSWORD)
    auth.tokens['repository:a/b:pull'] = 'tok-123456'
    basic = _oci_auth.basic_header('me', PASSWORD)[len('Basic ') :]
    text = auth.redact(f'{PASSWORD} {basic} tok-123456 http://me:{PASSWORD}@proxy.example:3128/')
    assert PASSWORD not in text
    assert basic not in text
    assert 'tok-123456' not in text
    assert text == '******** ******** ******** http://proxy.example:3128/'


def test_token_cache_is_shared_with_the_client():
    client = _oci.RegistryClient('ghcr.io')
    client._tokens['repository:a/b:pull'] = 'cached'
    assert client._auth.headers_for('repository:a/b:pull', 'ghcr.io') == {'Authorization': 'Bearer cached'}
    assert client._auth.headers_for('repository:a/c:pull', 'ghcr.io') == {}


# -- flows -----------------------------------------------------------------------


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
        client._auth.fetch_token(client._transport, {'realm': 'http://ghcr.io/token'}, 'repository:x:pull')
    assert client.request_count == 0


def test_401_without_challenge():
    with FakeRegistry(tags_repo(1)) as reg:
        reg.inject(r'/tags/list', 401, {}, b'')
        with pytest.raises(_oci.AuthError, match='without a usable WWW-Authenticate'):
            client_for(reg).list_tags(NAME)
