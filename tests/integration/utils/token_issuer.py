# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A token issuer (the ``realm`` of a Distribution registry in ``auth.token`` mode), GHCR-like.

``GET /token?service=SERVICE&scope=repository:NAME:ACTIONS`` with Basic credentials
(user + token, as GHCR takes them) or anonymously returns
``{"token": JWT, "access_token": JWT, ...}``.  The JWT is RS256-signed by hand
(``cryptography``, PKCS#1 v1.5 + SHA-256) with claims iss, sub, aud, exp, nbf, iat,
jti and ``access``, and carries the signing certificate in the ``x5c`` header,
which is how Distribution 2.8 finds the key (it trusts the certificate through
``auth.token.rootcertbundle``).

* wrong credentials: 401;
* valid credentials without a grant for the repository, or anonymous access to a
  repository that is not ``public/*``: a token with an empty ``access`` list
  (the registry then refuses it), as Docker Hub and GHCR do.

The registry itself never calls the issuer; only the client does.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import time
import urllib.parse

from ansible_collections.avatar_mgmt.ops.tests.support.local_server import LocalHTTPService, QuietHandler
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def make_jwt(claims, private_key, cert_der):
    """An RS256 JWT whose header carries ``cert_der`` in ``x5c`` (standard base64, RFC 7515)."""
    header = {'typ': 'JWT', 'alg': 'RS256', 'x5c': [base64.b64encode(cert_der).decode('ascii')]}
    signing_input = '{}.{}'.format(
        b64url(json.dumps(header, separators=(',', ':')).encode()),
        b64url(json.dumps(claims, separators=(',', ':')).encode()),
    )
    signature = private_key.sign(signing_input.encode('ascii'), padding.PKCS1v15(), hashes.SHA256())
    return f'{signing_input}.{b64url(signature)}'


class TokenIssuer(LocalHTTPService):
    """Start with ``with TokenIssuer(...) as issuer:``; ``issuer.realm`` is the URL to configure.

    :param users: ``{username: (token, {repository glob: [actions]})}``.
    :param public: repository globs anonymous users may pull.
    :param issuer: the ``iss`` claim (must equal the registry's ``auth.token.issuer``).
    :param service: the ``aud`` claim / ``service`` (the registry's ``auth.token.service``).
    :param tls_context: server SSLContext (HTTPS) or None (HTTP).
    """

    thread_name = 'token-issuer'

    def __init__(self, private_key, cert_der, users, issuer, service, public=('public/*',), tls_context=None, ttl=300):
        super().__init__(tls_context)
        self.private_key = private_key
        self.cert_der = cert_der
        self.users = users
        self.public = tuple(public)
        self.issuer = issuer
        self.service = service
        self.ttl = ttl
        self.log = []  # (user or None, scopes, status)

    # -- policy -------------------------------------------------------------

    def _granted(self, user, name, wanted):
        if user is None:
            allowed = ['pull'] if any(fnmatch.fnmatchcase(name, glob) for glob in self.public) else []
        else:
            allowed = []
            for glob, actions in self.users[user][1].items():
                if fnmatch.fnmatchcase(name, glob):
                    allowed.extend(actions)
        return [action for action in wanted if action in allowed]

    def _authenticate(self, header):
        """Return (ok, user): user None is anonymous."""
        if not header:
            return True, None
        scheme, _sep, value = header.partition(' ')
        if scheme.lower() != 'basic':
            return False, None
        try:
            user, _sep, password = base64.b64decode(value.strip(), validate=True).decode('utf-8').partition(':')
        except (ValueError, UnicodeDecodeError):
            return False, None
        entry = self.users.get(user)
        if entry is None or not secrets.compare_digest(entry[0], password):
            return False, user
        return True, user

    def issue(self, user, scopes, service, ttl=None):
        """Return ``(jwt, access)`` for ``user`` (None: anonymous); a negative ``ttl`` makes it expired."""
        ttl = self.ttl if ttl is None else ttl
        access = []
        for scope in scopes:
            parts = scope.split(':')
            if len(parts) < 3 or parts[0] != 'repository':
                continue
            name, wanted = ':'.join(parts[1:-1]), parts[-1].split(',')
            granted = self._granted(user, name, wanted)
            if granted:
                access.append({'type': 'repository', 'name': name, 'actions': granted})
        now = int(time.time())
        claims = {
            'iss': self.issuer,
            'sub': user or '',
            'aud': service,
            'exp': now + ttl,
            'nbf': min(now, now + ttl) - 5,
            'iat': now,
            'jti': secrets.token_hex(16),
            'access': access,
        }
        return make_jwt(claims, self.private_key, self.cert_der), access

    # -- server -------------------------------------------------------------

    def _handler(self):
        issuer = self

        class Handler(QuietHandler):
            def _reply(self, status, doc, headers=()):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                scopes = query.get('scope', [])
                if url.path != '/token':
                    self._reply(404, {'errors': [{'code': 'NOT_FOUND', 'message': 'no such endpoint'}]})
                    return
                service = (query.get('service') or [''])[0]
                ok, user = issuer._authenticate(self.headers.get('Authorization'))
                if not ok:
                    with issuer._lock:
                        issuer.log.append((user, scopes, 401))
                    self._reply(
                        401,
                        {'errors': [{'code': 'UNAUTHORIZED', 'message': 'authentication required'}]},
                        [('WWW-Authenticate', 'Basic realm="token issuer"')],
                    )
                    return
                if service != issuer.service:
                    with issuer._lock:
                        issuer.log.append((user, scopes, 400))
                    self._reply(400, {'errors': [{'code': 'DENIED', 'message': 'unknown service'}]})
                    return
                token, _access = issuer.issue(user, scopes, service)
                with issuer._lock:
                    issuer.log.append((user, scopes, 200))
                self._reply(
                    200,
                    {
                        'token': token,
                        'access_token': token,
                        'expires_in': issuer.ttl,
                        'issued_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                    },
                )

        return Handler

    @property
    def realm(self):
        return f'{self.url}/token'
