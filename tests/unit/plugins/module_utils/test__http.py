# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_http.py, the HTTP helper shared by _oci* and _health."""

from __future__ import annotations

import socket
import ssl

import pytest
import requests
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _http
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import FakeRegistry, Manifest


@pytest.mark.parametrize(
    'url, shown',
    [
        ('http://127.0.0.1:3000/health', 'http://127.0.0.1:3000/health'),
        ('https://user:pw@api.example.com/x?y=1', 'https://api.example.com/x?y=1'),
        ('http://token@[::1]:8080/', 'http://[::1]:8080/'),
    ],
)
def test_redact_url(url, shown):
    assert _http.redact_url(url) == shown


@pytest.mark.parametrize(
    'text, secrets, shown',
    [
        (
            "ProxyError('Cannot connect to proxy', http://bob:hunter2@proxy:3128/)",
            (),
            "ProxyError('Cannot connect to proxy', http://proxy:3128/)",
        ),
        (
            'HTTPSConnectionPool(host=ghcr.io) token=abcdef',
            ('abcdef',),
            'HTTPSConnectionPool(host=ghcr.io) token=********',
        ),
        ('short ab stays', ('ab',), 'short ab stays'),
        ('secret and secret-longer', ('secret', 'secret-longer'), '******** and ********'),
    ],
)
def test_safe_message(text, secrets, shown):
    assert _http.safe_message(text, secrets) == shown


def _wrapped(outer, inner):
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:  # noqa: BLE001
        return exc


@pytest.mark.parametrize(
    'exc, reason',
    [
        (
            _wrapped(requests.exceptions.ConnectionError('x'), ConnectionRefusedError(111, 'Connection refused')),
            'connection refused',
        ),
        (
            _wrapped(requests.exceptions.ConnectionError('x'), ConnectionResetError(104, 'reset')),
            'connection reset by peer',
        ),
        (
            _wrapped(requests.exceptions.ConnectionError('x'), socket.gaierror(-2, 'Name or service not known')),
            'name resolution failed: Name or service not known',
        ),
        (requests.exceptions.ReadTimeout('x'), 'timed out after 2.5s'),
        (_wrapped(requests.exceptions.ConnectionError('x'), TimeoutError('timed out')), 'timed out after 2.5s'),
        (_wrapped(requests.exceptions.SSLError('x'), ssl.SSLError(1, 'WRONG_VERSION_NUMBER')), 'TLS error: '),
        (requests.exceptions.TooManyRedirects('x'), 'too many redirects'),
        (
            _wrapped(requests.exceptions.ProxyError('x'), ConnectionRefusedError(111, 'Connection refused')),
            'the proxy from the environment (https_proxy / http_proxy) failed: connection refused',
        ),
        (ValueError('http://u:pw@host/ is odd'), 'ValueError: http://host/ is odd'),
    ],
)
def test_describe_exception(exc, reason):
    assert _http.describe_exception(exc, 2.5).startswith(reason)


def test_exception_chain_follows_reason_args_cause_and_context():
    root = ConnectionRefusedError(111, 'Connection refused')
    middle = _wrapped(OSError('new connection failed'), root)
    holder = Exception('max retries')
    holder.reason = middle
    outer = requests.exceptions.ConnectionError(holder)
    assert _http.find_cause(outer, ConnectionRefusedError) is root
    assert _http.find_cause(outer, KeyError) is None


@pytest.mark.parametrize(
    'content_type, charset',
    [
        ('text/plain; charset=ISO-8859-1', 'iso-8859-1'),
        ('application/json', None),
        ('text/html', None),  # no ISO-8859-1 guess as requests' Response.encoding would make
        (None, None),
    ],
)
def test_content_charset(content_type, charset):
    headers = requests.structures.CaseInsensitiveDict()
    if content_type:
        headers['Content-Type'] = content_type
    assert _http.content_charset(headers) == charset


@pytest.mark.parametrize(
    'validate_certs, ca_path, verify',
    [
        (True, None, True),
        (True, '/ca.pem', '/ca.pem'),
        (False, '/ca.pem', False),
    ],
)
def test_make_session(validate_certs, ca_path, verify):
    session = _http.make_session(validate_certs=validate_certs, ca_path=ca_path, user_agent='ua/1')
    assert session.trust_env is True  # proxies from the environment
    assert session.verify == verify
    assert session.headers['User-Agent'] == 'ua/1'
    assert session.max_redirects == 10
    assert session.get_adapter('https://x/').max_retries.total == 0
    session.close()


def test_check_ca_file(tmp_path):
    bad = tmp_path / 'ca.pem'
    bad.write_text('nothing')
    with pytest.raises((OSError, ssl.SSLError)):
        _http.check_ca_file(str(bad))
    with pytest.raises(FileNotFoundError):
        _http.check_ca_file(str(tmp_path / 'missing.pem'))


def test_send_limits_the_body_and_reuses_connections():
    name = 'a/b'
    big = b'x' * 300000
    with FakeRegistry({name: {'v1': Manifest(1)}}) as reg:
        session = _http.make_session()
        url = f'{reg.url}/v2/{name}/manifests/v1'
        head = _http.send(session, 'HEAD', url, timeout=5)
        full = _http.send(session, 'GET', url, timeout=5)
        reg.inject(r'/manifests/', 200, {}, big)
        cut = _http.send(session, 'GET', url, timeout=5, max_body=10)
        after = _http.send(session, 'GET', url, timeout=5)
        session.close()
    assert (head.status, head.body, head.truncated) == (200, b'', False)
    assert full.body == Manifest(1).body
    assert not full.truncated
    assert (cut.body, cut.truncated) == (b'x' * 10, True)
    assert after.body == full.body
    assert full.header('docker-content-digest') == Manifest(1).digest  # case-insensitive
    # HEAD and the full GET share one connection; the cut one is closed, not reused.
    assert len(set(reg.peers[:2])) == 1
    assert reg.peers[3] != reg.peers[2]
