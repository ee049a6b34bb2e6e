# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake OCI distribution registry on 127.0.0.1 for unit tests and the bench.

It serves tag lists (paginated: ``n``, ``last``, ``Link: <...>; rel="next"``),
manifests (HEAD and GET), and optionally Basic auth or Bearer auth with a
token endpoint, over HTTP or HTTPS.  Failures can be injected per request.
Everything listens on 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import urllib.parse

from ansible_collections.avatar_mgmt.ops.tests.support.local_server import LocalHTTPService, QuietHandler
from ansible_collections.avatar_mgmt.ops.tests.support.pki import TestPKI

OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'


class Manifest:
    """A manifest body with its media type; ``digest`` is the sha256 of the body."""

    def __init__(self, seed, media_type=OCI_INDEX):
        self.media_type = media_type
        doc = {'schemaVersion': 2, 'mediaType': media_type, 'annotations': {'seed': str(seed)}}
        if media_type in (OCI_INDEX, DOCKER_LIST):
            doc['manifests'] = []
        else:
            doc['config'] = {
                'mediaType': 'application/vnd.oci.image.config.v1+json',
                'size': 2,
                'digest': 'sha256:' + hashlib.sha256(str(seed).encode()).hexdigest(),
            }
            doc['layers'] = []
        self.body = json.dumps(doc, sort_keys=True).encode()
        self.digest = 'sha256:' + hashlib.sha256(self.body).hexdigest()


class FakeRegistry(LocalHTTPService):
    """Start with ``with FakeRegistry(...) as reg:``; ``reg.url`` is its base URL.

    :param repos: ``{name: {tag: Manifest}}``.
    :param auth: None, ``'basic'`` or ``'bearer'``.
    :param username/password: the accepted credentials (None: anonymous bearer tokens only).
    :param anonymous: bearer only: whether anonymous tokens are issued (and grant pull).
    :param page_max: largest page served (the registry's own cap on ``n``).
    :param link: ``'relative'``, ``'absolute'`` or ``None`` (no Link header; clients use ``last``).
    :param digest_header: send ``Docker-Content-Digest``.
    :param head_allowed: answer HEAD on manifests (else 405).
    :param token_key: ``'token'`` or ``'access_token'`` in the token response.
    :param tls_context: a server-side SSLContext to serve HTTPS.
    """

    thread_name = 'fake-registry'
    poll_interval = 0.05

    def __init__(
        self,
        repos,
        auth=None,
        username=None,
        password=None,
        anonymous=True,
        page_max=1000,
        link='relative',
        digest_header=True,
        head_allowed=True,
        token_key='token',
        tls_context=None,
        accept_tokens=True,
    ):
        super().__init__(tls_context)
        self.repos = repos
        self.auth = auth
        self.username = username
        self.password = password
        self.anonymous = anonymous
        self.page_max = page_max
        self.link = link
        self.digest_header = digest_header
        self.head_allowed = head_allowed
        self.token_key = token_key
        self.accept_tokens = accept_tokens
        self.tokens = {}
        self.log = []  # (method, path, headers dict)
        self.peers = []  # client (host, port) of each request: one port per TCP connection
        self.token_log = []  # (query dict, authorization header or None)
        self._injected = []  # [regex, method or None, (status, headers, body)]

    # -- control -----------------------------------------------------------

    def inject(self, path_regex, status, headers=None, body=b'', method=None, times=1):
        """Answer the next ``times`` matching requests with this response instead."""
        for _time in range(times):
            self._injected.append([re.compile(path_regex), method, (status, headers or {}, body)])

    def requests(self, method=None, contains=None):
        return [
            (m, p) for m, p, _h in self.log if (method is None or m == method) and (contains is None or contains in p)
        ]

    def _handler(self):
        registry = self

        class Handler(_Handler):
            reg = registry

        return Handler

    def take_injected(self, method, path):
        with self._lock:
            for i, (regex, want_method, response) in enumerate(self._injected):
                if regex.search(path) and (want_method is None or want_method == method):
                    del self._injected[i]
                    return response
        return None


class _Handler(QuietHandler):
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    reg = None  # set by FakeRegistry._handler

    def _send(self, status, headers=None, body=b'', head=False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault('Content-Length', str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status, data, headers=None, head=False):
        headers = dict(headers or {})
        headers['Content-Type'] = 'application/json'
        self._send(status, headers, json.dumps(data).encode(), head=head)

    def _error(self, status, code, message, headers=None, head=False):
        self._json(status, {'errors': [{'code': code, 'message': message}]}, headers, head=head)

    def do_GET(self):
        self._dispatch('GET')

    def do_HEAD(self):
        self._dispatch('HEAD')

    def _dispatch(self, method):
        reg = self.reg
        reg.log.append((method, self.path, dict(self.headers.items())))
        reg.peers.append(self.client_address)
        injected = reg.take_injected(method, self.path)
        if injected is not None:
            status, headers, body = injected
            self._send(status, headers, body, head=method == 'HEAD')
            return
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == '/token':
            self._token(query)
            return
        match = re.match(r'/v2/(?P<name>.+)/(?P<kind>tags/list|manifests/(?P<ref>[^/]+))\Z', parts.path)
        if not match:
            self._error(404, 'NOT_FOUND', 'no such endpoint', head=method == 'HEAD')
            return
        name = match.group('name')
        if not self._authorized(name, method):
            return
        if name not in reg.repos:
            self._error(404, 'NAME_UNKNOWN', 'repository name not known to registry', head=method == 'HEAD')
            return
        if match.group('kind') == 'tags/list':
            self._tags(name, query, parts.path)
        else:
            self._manifest(name, urllib.parse.unquote(match.group('ref')), method)

    def _authorized(self, name, method):
        reg = self.reg
        head = method == 'HEAD'
        auth = self.headers.get('Authorization')
        if reg.auth == 'basic':
            expected = 'Basic ' + base64.b64encode((f'{reg.username}:{reg.password}').encode()).decode()
            if auth != expected:
                self._error(
                    401,
                    'UNAUTHORIZED',
                    'authentication required',
                    {'WWW-Authenticate': 'Basic realm="fake registry"'},
                    head=head,
                )
                return False
        elif reg.auth == 'bearer':
            scope = f'repository:{name}:pull'
            token = auth[len('Bearer ') :] if auth and auth.startswith('Bearer ') else None
            if not reg.accept_tokens or token is None or reg.tokens.get(token) != scope:
                challenge = f'Bearer realm="{reg.url}/token",service="fake,registry",scope="{scope}"'
                self._error(401, 'UNAUTHORIZED', 'authentication required', {'WWW-Authenticate': challenge}, head=head)
                return False
        return True

    def _token(self, query):
        reg = self.reg
        auth = self.headers.get('Authorization')
        reg.token_log.append((query, auth))
        if auth:
            expected = 'Basic ' + base64.b64encode((f'{reg.username}:{reg.password}').encode()).decode()
            if reg.username is None or auth != expected:
                self._json(401, {'errors': [{'code': 'UNAUTHORIZED', 'message': 'bad credentials'}]})
                return
        elif not reg.anonymous:
            self._json(401, {'errors': [{'code': 'UNAUTHORIZED', 'message': 'login required'}]})
            return
        token = secrets.token_hex(16)
        reg.tokens[token] = query.get('scope')
        self._json(200, {reg.token_key: token, 'expires_in': 300})

    def _tags(self, name, query, path):
        reg = self.reg
        tags = sorted(reg.repos[name])
        count = min(int(query.get('n', reg.page_max)), reg.page_max)
        last = query.get('last')
        if last is not None:
            tags = [t for t in tags if t > last]
        page = tags[:count]
        headers = {}
        if len(tags) > count and reg.link:
            link = '{}?{}'.format(path, urllib.parse.urlencode({'n': count, 'last': page[-1]}))
            if reg.link == 'absolute':
                link = reg.url + link
            headers['Link'] = f'<{link}>; rel="next"'
        self._json(200, {'name': name, 'tags': page}, headers)

    def _manifest(self, name, ref, method):
        reg = self.reg
        head = method == 'HEAD'
        if head and not reg.head_allowed:
            self._send(405, {}, b'', head=True)
            return
        manifest = reg.repos[name].get(ref)
        if manifest is None and ref.startswith('sha256:'):
            manifest = next((m for m in reg.repos[name].values() if m.digest == ref), None)
        if manifest is None:
            self._error(404, 'MANIFEST_UNKNOWN', 'manifest unknown', head=head)
            return
        headers = {'Content-Type': manifest.media_type}
        if reg.digest_header:
            headers['Docker-Content-Digest'] = manifest.digest
        self._send(200, headers, manifest.body, head=head)


def make_tls_files(directory):
    """Write a CA and a server certificate for localhost / 127.0.0.1 into ``directory``.

    Returns ``(ca_path, server_context)``.
    """
    pki = TestPKI(directory, token_signer=False)
    return pki.ca_path, pki.server_context()
