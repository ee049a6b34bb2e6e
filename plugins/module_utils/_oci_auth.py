# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Authentication of the OCI client: challenges, Basic, Bearer tokens cached per scope.

A request goes out with what is already known (a cached token for its scope,
or Basic credentials for a host that asked for them). A 401 is answered once:
Bearer fetches a token from the realm the registry names (GHCR, Docker Hub,
Distribution's token auth), Basic resends with the credentials. A second 401
is an :class:`AuthError` that says what to check.

Credentials are sent to a token endpoint only over HTTPS when the registry
itself is HTTPS, and never appear in messages (:meth:`Authenticator.redact`).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _http
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci_errors import (
    AuthError,
    ProtocolError,
    error_detail,
    ghcr_hint,
)

__all__ = ['Authenticator', 'basic_header', 'parse_www_authenticate']

_TOKEN68_RE = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)')


def parse_www_authenticate(value):
    """Parse a WWW-Authenticate header into a list of ``(scheme, params)``.

    ``scheme`` is lower-cased; ``params`` is a dict with lower-cased keys.
    Quoted strings may contain commas and backslash escapes, e.g.
    ``Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"``.
    """
    challenges = []
    pos = 0
    length = len(value or '')
    value = value or ''
    current = None
    while pos < length:
        # skip separators
        while pos < length and value[pos] in ' \t,':
            pos += 1
        if pos >= length:
            break
        match = _TOKEN68_RE.match(value, pos)
        if not match:
            break
        token = match.group(1)
        after = match.end()
        # An auth-param looks like token "=" (token / quoted-string).
        rest = value[after:].lstrip(' \t')
        if current is not None and rest.startswith('=') and not rest.startswith('=='):
            eq_pos = value.index('=', after)
            pos = eq_pos + 1
            while pos < length and value[pos] in ' \t':
                pos += 1
            if pos < length and value[pos] == '"':
                pos += 1
                chars = []
                while pos < length and value[pos] != '"':
                    if value[pos] == '\\' and pos + 1 < length:
                        pos += 1
                    chars.append(value[pos])
                    pos += 1
                pos += 1  # closing quote
                param_value = ''.join(chars)
            else:
                end = pos
                while end < length and value[end] not in ', \t':
                    end += 1
                param_value = value[pos:end]
                pos = end
            current[1][token.lower()] = param_value
            continue
        # A new challenge: scheme [token68]
        current = (token.lower(), {})
        challenges.append(current)
        pos = after
    return challenges


def basic_header(username, password):
    """The ``Authorization`` value of HTTP Basic auth."""
    raw = (f'{username}:{password}').encode()
    return 'Basic ' + base64.b64encode(raw).decode('ascii')


class Authenticator:
    """Credentials of one registry client, its token cache (scope -> token) and the challenge dance.

    :param host: the registry's ``host[:port]`` (for messages).
    :param scheme: ``https`` or ``http``, the registry's scheme.
    :param username: optional; with ``password`` for Basic auth or for the token endpoint.
    """

    def __init__(self, host, scheme, username=None, password=None):
        self.host = host
        self.scheme = scheme
        self.base_url = f'{scheme}://{host}'
        self.username = username or None
        self._password = password or None
        self.tokens = {}  # scope -> bearer token
        self.basic_hosts = set()  # hosts (netloc) known to want Basic auth

    def redact(self, text):
        """``text`` without the password, the Basic credential, any token or URL user info."""
        secrets = [self._password] + list(self.tokens.values())
        if self.username and self._password:
            secrets.append(basic_header(self.username, self._password)[len('Basic ') :])
        return _http.safe_message(text, secrets)

    def _basic(self):
        return basic_header(self.username, self._password)

    def headers_for(self, scope, netloc):
        """What to send up front: the cached token of ``scope``, or Basic for a host that asked for it."""
        if scope in self.tokens:
            return {'Authorization': 'Bearer ' + self.tokens[scope]}
        if netloc in self.basic_hosts and self.username:
            return {'Authorization': self._basic()}
        return {}

    def fetch_token(self, transport, challenge, scope):
        """Ask the realm of a Bearer ``challenge`` for a token of ``scope``; returns the token."""
        host = self.host
        realm = challenge.get('realm')
        if not realm:
            raise AuthError(
                f'Registry {host} sent a Bearer challenge without a realm; cannot get a token.',
                registry=host,
                status=401,
            )
        realm_url = urllib.parse.urljoin(self.base_url + '/', realm)
        realm_parts = urllib.parse.urlsplit(realm_url)
        if realm_parts.scheme not in ('http', 'https'):
            raise AuthError(
                f'Registry {host} named a token endpoint with an unsupported scheme ({realm_parts.scheme}).',
                registry=host,
                status=401,
            )
        query = []
        if challenge.get('service'):
            query.append(('service', challenge['service']))
        token_scope = challenge.get('scope') or scope
        if token_scope:
            query.append(('scope', token_scope))
        sep = '&' if realm_parts.query else '?'
        url = realm_url + (sep + urllib.parse.urlencode(query) if query else '')
        headers = {'Accept': 'application/json'}
        if self.username:
            if realm_parts.scheme != 'https' and self.scheme == 'https':
                raise AuthError(
                    f'Registry {host} asks for credentials at a plain-HTTP token endpoint '
                    f'({realm_parts.scheme}://{realm_parts.netloc}); refusing to send them unencrypted.',
                    registry=host,
                    status=401,
                )
            headers['Authorization'] = self._basic()
        response = transport.send('GET', url, headers)
        if response.status in (401, 403):
            if self.username:
                raise AuthError(
                    f'The token endpoint of registry {host} ({realm_parts.netloc}) refused the '
                    f'credentials of user {self.username!r} (HTTP {response.status}). Check username '
                    f'and password/token.{ghcr_hint(host)}',
                    registry=host,
                    status=response.status,
                )
            raise AuthError(
                f'The token endpoint of registry {host} ({realm_parts.netloc}) refused anonymous '
                f'access (HTTP {response.status}). The image is probably private: give username and '
                f'password (a token).{ghcr_hint(host)}',
                registry=host,
                status=response.status,
            )
        if response.status != 200:
            raise ProtocolError(
                f'The token endpoint of registry {host} ({realm_parts.netloc}) answered HTTP '
                f'{response.status}.{error_detail(response, self.redact)}',
                registry=host,
                status=response.status,
            )
        try:
            data = json.loads(response.body.decode('utf-8'))
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError(
                f'The token endpoint of registry {host} returned something that is not JSON.', registry=host
            )
        token = data.get('token') or data.get('access_token') if isinstance(data, dict) else None
        if not token or not isinstance(token, str):
            raise ProtocolError(f'The token endpoint of registry {host} returned no token.', registry=host)
        return token

    def request(self, transport, method, url, scope, accept=None, max_body=None):
        """Send an authenticated request through ``transport``, answering at most one auth challenge."""
        host = self.host
        netloc = urllib.parse.urlsplit(url).netloc
        kwargs = {} if max_body is None else {'max_body': max_body}
        base_headers = {}
        if accept:
            base_headers['Accept'] = accept
        headers = dict(base_headers)
        headers.update(self.headers_for(scope, netloc))
        response = transport.send(method, url, headers, **kwargs)
        if response.status != 401:
            return response
        sent_auth = 'Authorization' in headers
        challenges = parse_www_authenticate(response.header('WWW-Authenticate') or '')
        by_scheme = dict(challenges)
        if 'bearer' in by_scheme:
            token = self.fetch_token(transport, by_scheme['bearer'], scope)
            self.tokens[scope] = token
            headers = dict(base_headers)
            headers['Authorization'] = 'Bearer ' + token
            kind = 'bearer'
        elif 'basic' in by_scheme:
            if not self.username:
                raise AuthError(
                    f'Registry {host} requires a login (Basic auth) for {urllib.parse.urlsplit(url).path}: '
                    f'give username and password.{ghcr_hint(host)}',
                    registry=host,
                    status=401,
                )
            if sent_auth and netloc in self.basic_hosts:
                raise AuthError(
                    f'Registry {host} rejected the credentials of user {self.username!r} (HTTP 401). '
                    f'Check username and password.{ghcr_hint(host)}',
                    registry=host,
                    status=401,
                )
            self.basic_hosts.add(netloc)
            headers = dict(base_headers)
            headers['Authorization'] = self._basic()
            kind = 'basic'
        else:
            raise AuthError(
                f'Registry {host} answered 401 without a usable WWW-Authenticate challenge (Basic or Bearer).',
                registry=host,
                status=401,
            )
        response = transport.send(method, url, headers, **kwargs)
        if response.status == 401:
            if kind == 'bearer':
                self.tokens.pop(scope, None)
                who = f'user {self.username!r}' if self.username else 'anonymous access'
                raise AuthError(
                    f'Registry {host} refused a freshly issued token for {scope} ({who}, HTTP 401): the token does '
                    'not grant pull access to that repository. Check that the credentials are right and can read '
                    f'the package (a GitHub token needs read:packages).{ghcr_hint(host)}',
                    registry=host,
                    status=401,
                )
            raise AuthError(
                f'Registry {host} rejected the credentials of user {self.username!r} (HTTP 401). Check '
                f'username and password.{ghcr_hint(host)}',
                registry=host,
                status=401,
            )
        return response
