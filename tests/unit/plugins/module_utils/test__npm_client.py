# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _npm_client: URLs, login, errors without secrets, the call log."""

from __future__ import annotations

import json
import os
import pathlib

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


# A session kept between module runs (token_cache): the next run skips the login (NPM's bcrypt check).


def test_a_kept_session_replaces_the_next_login(npm, tmp_path):
    path = str(tmp_path / '.npm-session')
    first = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    first.login()
    first.keep(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    kept = json.loads(pathlib.Path(path).read_text())
    assert kept['token'].endswith('-15m-eyJhbGciOiJSUzI1NiJ9'), 'a short-lived token is kept, not the login one'
    assert PASSWORD not in pathlib.Path(path).read_text()

    second = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    assert second.resume(path) is True
    second.list_proxy_hosts()
    assert second.calls == [('GET', '/api/tokens'), ('GET', '/api/nginx/proxy-hosts')], 'no login'
    assert '-1d-' in second._token, 'the kept token is traded for one that outlives the run'


@pytest.mark.parametrize('spoil', ['expired', 'other user', 'other npm', 'group readable', 'not json', 'missing'])
def test_a_session_that_cannot_be_used_is_not(npm, tmp_path, spoil):
    path = str(tmp_path / '.npm-session')
    first = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    first.login()
    first.keep(path)
    kept = json.loads(pathlib.Path(path).read_text())
    if spoil == 'expired':
        npm.tokens.clear()
    elif spoil == 'other user':
        kept['username'] = 'someone@example.com'
    elif spoil == 'other npm':
        kept['url'] = 'http://127.0.0.1:1'
    if spoil in ('other user', 'other npm'):
        pathlib.Path(path).write_text(json.dumps(kept))
    elif spoil == 'group readable':
        os.chmod(path, 0o640)
    elif spoil == 'not json':
        pathlib.Path(path).write_text('{')
    elif spoil == 'missing':
        os.unlink(path)
    second = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    assert second.resume(path) is False
    assert second._token is None
    second.list_proxy_hosts()
    assert second.calls[-2:] == [('POST', '/api/tokens'), ('GET', '/api/nginx/proxy-hosts')], 'it logs in'


def test_keeping_a_session_never_fails(npm, tmp_path):
    client = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    client.login()
    client.keep(str(tmp_path / 'no-such-folder' / '.npm-session'))
    client.list_proxy_hosts()
    assert not (tmp_path / 'no-such-folder').exists()
    # A password the hash cannot encode (a lone surrogate): nothing kept, no exception.
    odd = _npm_client.NPMClient(npm.url, ADMIN, 'pa\udc80ss', timeout=5)
    odd._token = client._token
    odd.keep(str(tmp_path / '.npm-session'))
    assert not (tmp_path / '.npm-session').exists()
    assert list(tmp_path.iterdir()) == [], 'no temporary file left behind'


@pytest.mark.parametrize(
    'spoil', ['a link', 'another owner', 'another password', 'a salt not hex', 'a check not ascii', 'no token']
)
def test_a_session_of_someone_else_is_not_used(npm, tmp_path, spoil):
    path = tmp_path / '.npm-session'
    first = _npm_client.NPMClient(npm.url, ADMIN, PASSWORD, timeout=5)
    first.login()
    first.keep(str(path))
    kept = json.loads(path.read_text())
    assert PASSWORD not in path.read_text()
    assert set(kept) == {'url', 'username', 'salt', 'check', 'token'}
    password = PASSWORD
    if spoil == 'a link':
        target = tmp_path / 'elsewhere'
        path.rename(target)
        path.symlink_to(target)
    elif spoil == 'another owner':
        if os.getuid() != 0:
            pytest.skip('only root can give the file to another user')
        os.chown(path, os.getuid() + 4242, -1)
    elif spoil == 'another password':
        password = 'the-password-changed-9'
        npm.users[ADMIN]['password'] = password
    else:
        damaged = {
            'a salt not hex': {'salt': 'zz1'},
            'a check not ascii': {'check': 'é' * 64},
            'no token': {'token': 7},
        }
        path.write_text(json.dumps(dict(kept, **damaged[spoil])))
    second = _npm_client.NPMClient(npm.url, ADMIN, password, timeout=5)
    assert second.resume(str(path)) is False
    assert second.calls == [], 'not even sent to NPM'
