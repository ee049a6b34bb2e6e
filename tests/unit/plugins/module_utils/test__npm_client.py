# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _npm_client: URLs, login, errors without secrets, the call log."""

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm_client
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import ports
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import FakeNPM

ADMIN = 'admin@example.com'
PASSWORD = 'Client-Pa55-literal'


@pytest.fixture
def npm():
    with FakeNPM({ADMIN: PASSWORD}) as server:
        yield server


@pytest.mark.parametrize('url', ['', 'ftp://npm:81', 'npm:81', 'http://'])
def test_url_must_be_http(url):
    with pytest.raises(ValueError, match='url must be'):
        _npm_client.NPMClient(url, ADMIN, PASSWORD)


@pytest.mark.parametrize('suffix', ['', '/', '/api', '/api/'])
def test_api_suffix_is_optional(npm, suffix):
    client = _npm_client.NPMClient(npm.url + suffix, ADMIN, PASSWORD, timeout=5)
    assert client.status()['setup'] is True
    assert client.url == npm.url


def test_url_user_info_never_shown():
    url = f'http://user:{PASSWORD}@127.0.0.1:{ports.closed_port()}'
    pauses = []
    client = _npm_client.NPMClient(url, ADMIN, PASSWORD, timeout=2, sleep=pauses.append)
    with pytest.raises(_npm_client.NPMConnectionError) as excinfo:
        client.status()
    assert PASSWORD not in str(excinfo.value)
    assert 'connection refused' in str(excinfo.value)
    # A read is tried three times, 0.5 s then 1 s apart; a write once (it may have been applied).
    assert pauses == [0.5, 1.0]
    with pytest.raises(_npm_client.NPMConnectionError):
        client.request('POST', '/tokens', {'identity': ADMIN}, auth=False)
    assert pauses == [0.5, 1.0]


def test_token_fetched_once_and_calls_logged(npm):
    client = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    client.list_proxy_hosts()
    client.list_certificates()
    assert client.calls == [
        ('POST', '/api/tokens'),
        ('GET', '/api/nginx/proxy-hosts'),
        ('GET', '/api/nginx/certificates'),
    ]
    assert client.write_count == 0
    assert [request[2] for request in npm.requests] == [False, True, True]


def test_api_error_quotes_npm(npm):
    client = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    body = {'domain_names': ['a.example.com'], 'forward_scheme': 'http', 'forward_host': 'x', 'forward_port': 1}
    client.create_proxy_host(body)
    with pytest.raises(_npm_client.NPMAPIError) as excinfo:
        client.create_proxy_host(body)
    assert excinfo.value.status == 400
    assert excinfo.value.npm_message == 'a.example.com is already in use'
    assert client.write_count == 2


def test_missing_credentials(npm):
    with pytest.raises(_npm_client.NPMAuthError, match='needs username'):
        _npm_client.NPMClient(npm.url, ADMIN, '').login()
