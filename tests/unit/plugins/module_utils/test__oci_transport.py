# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_oci_transport.py: retries, Retry-After, timeouts, TLS, proxies, pooling.

Everything runs against fake services on 127.0.0.1; sleeps are recorded, not slept.
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import threading
import time
import urllib.parse

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci, _oci_transport
from ansible_collections.avatar_mgmt.ops.tests.support.local_server import LocalHTTPService, QuietHandler
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import ports
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import FakeRegistry, make_tls_files
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.oci_client import NAME, client_for, tags_repo

PROXY_VARS = (
    'http_proxy',
    'https_proxy',
    'no_proxy',
    'all_proxy',
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'NO_PROXY',
    'ALL_PROXY',
)


def test_parse_retry_after():
    now = time.time()
    assert _oci_transport.parse_retry_after('7') == 7.0
    assert _oci_transport.parse_retry_after(None) is None
    assert _oci_transport.parse_retry_after('soon') is None
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= _oci_transport.parse_retry_after(date, now=now) <= 31
    assert _oci_transport.parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


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
    port = ports.closed_port()
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


def test_ca_bundle_from_the_environment_does_not_override_ca_path(tls, monkeypatch, tmp_path):
    """requests lets REQUESTS_CA_BUNDLE beat a Session's verify; the transport passes verify per request."""
    ca_path, context = tls
    other, _context = make_tls_files(str(tmp_path))  # a CA that did not sign the registry
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', other)
    monkeypatch.setenv('CURL_CA_BUNDLE', other)
    with FakeRegistry(tags_repo(3), tls_context=context) as reg:
        assert len(client_for(reg, ca_path=ca_path).list_tags(NAME)) == 3
        assert len(client_for(reg, validate_certs=False).list_tags(NAME)) == 3
        with pytest.raises(_oci.TLSError, match='certificate verification failed'):
            client_for(reg).list_tags(NAME)  # default trust store: the environment's bundle


# -- connections -----------------------------------------------------------------


def test_one_kept_alive_connection_serves_every_page():
    with FakeRegistry(tags_repo(250)) as reg:
        client = client_for(reg, page_size=100)
        assert len(client.list_tags(NAME)) == 250
        client.manifest_digest(NAME, 'v1.0.1')
        client.close()
    assert client.request_count == 4
    assert len(reg.peers) == 4
    assert len(set(reg.peers)) == 1


class _ClosingRegistry(FakeRegistry):
    """Closes every connection after its response without saying ``Connection: close``."""

    def _handler(self):
        base = super()._handler()

        class Handler(base):
            def _send(self, *args, **kwargs):
                super()._send(*args, **kwargs)
                self.close_connection = True

        return Handler


def test_a_connection_dropped_by_the_server_is_replaced_without_a_retry():
    with _ClosingRegistry(tags_repo(250)) as reg:
        client = client_for(reg, page_size=100)
        assert len(client.list_tags(NAME)) == 250
    assert client.sleeps == []
    # The server answered each page once, each on a new connection.
    assert len(reg.peers) == 3
    assert len(set(reg.peers)) == 3
    # For each of the two later pages the client may first try the pooled connection the
    # server has just closed (it has not seen the FIN yet): that attempt never reaches the
    # server and is sent again at once on a new connection, with no backoff. Whether it does,
    # page by page, is a race of the kernel's: 3 attempts, or up to one more per later page.
    assert 3 <= client.request_count <= 5
    # Each extra attempt is the same page sent again at once: three distinct requests in all.
    log = client.request_log
    assert len([entry for i, entry in enumerate(log) if i == 0 or log[i - 1] != entry]) == 3


def test_a_body_larger_than_the_limit_is_refused():
    with FakeRegistry(tags_repo(1)) as reg:
        reg.inject(r'/tags/list', 200, {'Content-Type': 'application/json'}, b'x' * 1000)
        transport = _oci_transport.Transport(reg.host, timeout=5, sleep=lambda _s: None)
        with pytest.raises(_oci.ProtocolError, match='larger than 100 bytes'):
            transport.send_once('GET', f'{reg.url}/v2/{NAME}/tags/list', {}, max_body=100)
        # The oversized answer's connection is not reused; the next request still works.
        assert transport.send_once('GET', f'{reg.url}/v2/{NAME}/tags/list', {}).status == 200


def test_netrc_is_not_read(monkeypatch, tmp_path):
    netrc = tmp_path / 'netrc'
    netrc.write_text('machine 127.0.0.1 login someone password from-netrc\n')
    netrc.chmod(0o600)
    monkeypatch.setenv('NETRC', str(netrc))
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / '.netrc').write_text(netrc.read_text())
    (tmp_path / '.netrc').chmod(0o600)
    with FakeRegistry(tags_repo(1)) as reg:
        client_for(reg).list_tags(NAME)
    assert 'Authorization' not in reg.log[0][2]


# -- proxies from the environment ------------------------------------------------


class _ForwardProxy(LocalHTTPService):
    """A plain-HTTP forward proxy: takes absolute-form requests and sends them to ``upstream`` (host:port)."""

    thread_name = 'forward-proxy'

    def __init__(self, upstream):
        super().__init__()
        self.upstream = upstream
        self.log = []  # (method, absolute URL, Proxy-Authorization or None)

    def _handler(self):
        proxy = self

        class Handler(QuietHandler):
            def _forward(self):
                proxy.log.append((self.command, self.path, self.headers.get('Proxy-Authorization')))
                parts = urllib.parse.urlsplit(self.path)
                path = parts.path + ('?' + parts.query if parts.query else '')
                conn = http.client.HTTPConnection(proxy.upstream, timeout=5)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ('proxy-authorization', 'proxy-connection')
                }
                conn.request(self.command, path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ('content-length', 'connection', 'transfer-encoding'):
                        self.send_header(key, value)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                if self.command != 'HEAD':
                    self.wfile.write(body)
                conn.close()

            do_GET = _forward
            do_HEAD = _forward

        return Handler


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize('variable', ['HTTP_PROXY', 'http_proxy'])
def test_requests_go_through_the_proxy_from_the_environment(clean_proxy_env, variable):
    with FakeRegistry(tags_repo(3)) as reg, _ForwardProxy(reg.host) as proxy:
        clean_proxy_env.setenv(variable, f'http://proxyuser:proxypass@{proxy.host}')
        # A name that does not resolve: only the proxy can reach it.
        client = _oci.RegistryClient('http://oci.proxy-test.invalid:5000', sleep=lambda _s: None, timeout=5)
        assert len(client.list_tags(NAME)) == 3
    assert proxy.log[-1][:2] == ('GET', f'http://oci.proxy-test.invalid:5000/v2/{NAME}/tags/list?n=100')
    assert proxy.log[-1][2].startswith('Basic ')  # the proxy credentials went to the proxy only
    assert 'Proxy-Authorization' not in reg.log[-1][2]


def test_no_proxy_bypasses_the_proxy(clean_proxy_env):
    clean_proxy_env.setenv('HTTP_PROXY', f'http://127.0.0.1:{ports.closed_port()}')
    clean_proxy_env.setenv('NO_PROXY', '127.0.0.1,localhost')
    with FakeRegistry(tags_repo(3)) as reg:
        assert len(client_for(reg).list_tags(NAME)) == 3


def test_an_unreachable_proxy_is_named_without_its_credentials(clean_proxy_env):
    port = ports.closed_port()
    clean_proxy_env.setenv('HTTP_PROXY', f'http://proxyuser:proxy-s3cret@127.0.0.1:{port}')
    client = _oci.RegistryClient('http://oci.proxy-test.invalid:5000', sleep=lambda _s: None, timeout=5, max_retries=1)
    with pytest.raises(_oci.RegistryConnectionError) as excinfo:
        client.list_tags(NAME)
    message = str(excinfo.value)
    assert 'proxy' in message
    assert 'no_proxy' in message
    assert 'proxy-s3cret' not in message
    assert 'proxyuser' not in message
    assert client.request_count == 2  # retried like any connection error


class _ConnectRecorder:
    """A proxy that records the first request line of each connection, then closes it."""

    def __init__(self):
        self.lines = []
        self._sock = socket.socket()
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.host = f'127.0.0.1:{self._sock.getsockname()[1]}'
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.lines.append(conn.recv(4096).split(b'\r\n', 1)[0].decode('latin-1'))
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.mark.parametrize('variable', ['HTTPS_PROXY', 'https_proxy'])
def test_https_registries_go_through_https_proxy(clean_proxy_env, variable):
    proxy = _ConnectRecorder()
    try:
        clean_proxy_env.setenv(variable, f'http://{proxy.host}')
        client = _oci.RegistryClient('oci.proxy-test.invalid:5443', sleep=lambda _s: None, timeout=5, max_retries=0)
        with pytest.raises(_oci.RegistryConnectionError, match='proxy'):
            client.list_tags(NAME)
    finally:
        proxy.close()
    # Every attempt (a closed tunnel may be retried once, as a stale connection) asked the proxy.
    assert {line.rsplit(' ', 1)[0] for line in proxy.lines} == {'CONNECT oci.proxy-test.invalid:5443'}


def test_no_proxy_bypasses_https_proxy(clean_proxy_env, tls):
    ca_path, context = tls
    proxy = _ConnectRecorder()
    try:
        clean_proxy_env.setenv('HTTPS_PROXY', f'http://{proxy.host}')
        clean_proxy_env.setenv('NO_PROXY', '127.0.0.1')
        with FakeRegistry(tags_repo(3), tls_context=context) as reg:
            assert len(client_for(reg, ca_path=ca_path).list_tags(NAME)) == 3
    finally:
        proxy.close()
    assert proxy.lines == []
