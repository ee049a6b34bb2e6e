# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small, read-only client for the OCI distribution API (standard library only).

It lists tags (following pagination) and looks up manifest digests, handling
the registry's authentication challenge (Basic, or Bearer with a token
endpoint as GHCR and Docker Hub use), TLS options, timeouts and retries with
exponential backoff on 429 and 5xx.

Credentials and tokens never appear in exception messages.
Proxy environment variables are not used: connections go straight to the
registry (and to the token endpoint it names).
"""

from __future__ import annotations

import base64
import collections
import email.utils
import hashlib
import http.client
import json
import re
import ssl
import time
import urllib.parse

__all__ = [
    'MANIFEST_MEDIA_TYPES',
    'AuthError',
    'ManifestInfo',
    'NotFoundError',
    'ProtocolError',
    'RegistryClient',
    'RegistryConnectionError',
    'RegistryError',
    'RegistryUnavailableError',
    'TLSError',
    'is_valid_name',
    'is_valid_tag',
    'parse_link_header',
    'parse_retry_after',
    'parse_www_authenticate',
]

MEDIA_OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
MEDIA_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
MEDIA_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
MEDIA_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
MANIFEST_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST)

USER_AGENT = 'avatar_mgmt.ops-oci-client/1.0'

# Repository name and tag grammar of the OCI distribution spec.
_NAME_RE = re.compile(r'[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\Z')
_TAG_RE = re.compile(r'[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z')
_DIGEST_RE = re.compile(r'[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z')
_HOST_RE = re.compile(r'(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
                      r'(?::[0-9]{1,5})?\Z|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?\Z')

_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024
_MAX_ERROR_BODY = 2048

ManifestInfo = collections.namedtuple('ManifestInfo', ['digest', 'media_type'])


def is_valid_name(name):
    """True when ``name`` is a valid OCI repository name such as ``rayhu/avatar-mgmt/api``."""
    return isinstance(name, str) and len(name) <= 255 and bool(_NAME_RE.match(name))


def is_valid_tag(tag):
    """True when ``tag`` is a valid OCI tag (``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``)."""
    return isinstance(tag, str) and bool(_TAG_RE.match(tag))


class RegistryError(Exception):
    """Base class of every error raised by this module."""

    def __init__(self, message, registry=None, status=None):
        super().__init__(message)
        self.message = message
        self.registry = registry
        self.status = status

    def __str__(self):
        return self.message


class AuthError(RegistryError):
    """The registry refused the credentials (or asked for some that were not given)."""


class NotFoundError(RegistryError):
    """The repository or the manifest (tag) does not exist."""

    def __init__(self, message, registry=None, status=404, image=None, reference=None):
        super().__init__(message, registry=registry, status=status)
        self.image = image
        self.reference = reference


class RegistryUnavailableError(RegistryError):
    """429 or 5xx persisted after the allowed retries."""


class RegistryConnectionError(RegistryError):
    """The registry could not be reached (DNS, refused, timeout, reset)."""


class TLSError(RegistryConnectionError):
    """TLS handshake or certificate verification failed."""


class ProtocolError(RegistryError):
    """The registry answered something this client does not understand."""


# ---------------------------------------------------------------------------
# Header parsing helpers (pure functions, unit-tested directly)
# ---------------------------------------------------------------------------

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


_LINK_RE = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')


def parse_link_header(value):
    """Return ``{rel: url}`` from an RFC 8288 ``Link`` header (URLs not resolved)."""
    links = {}
    for match in _LINK_RE.finditer(value or ''):
        url = match.group(1).strip()
        for param in match.group(2).split(';'):
            key, _sep, val = param.strip().partition('=')
            if key.strip().lower() == 'rel':
                for rel in val.strip().strip('"').split():
                    links.setdefault(rel.lower(), url)
    return links


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _ghcr_hint(host):
    if host == 'ghcr.io':
        return (' For GHCR use your GitHub user name and a personal access token (classic)'
                ' with the read:packages scope, and check that the package is visible to that user.')
    return ''


# ---------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------

class _Response:
    __slots__ = ('body', 'headers', 'status', 'url')

    def __init__(self, status, headers, body, url):
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def header(self, name):
        return self.headers.get(name.lower())


class RegistryClient:
    """Read-only OCI distribution API client.

    :param registry: host[:port] such as ``ghcr.io``; ``https://`` is assumed.
        ``http://host:port`` or ``https://host:port`` selects the scheme.
    :param username: optional user for Basic auth or for the token endpoint.
    :param password: optional password or token (never shown in errors).
    :param ca_path: optional PEM file of CA certificates to trust.
    :param validate_certs: verify TLS certificates (default True).
    :param timeout: socket timeout in seconds for every request.
    :param page_size: ``n`` asked for when listing tags.
    :param max_retries: retries after a 429/5xx or a connection error.
    :param backoff_base: first backoff delay in seconds (doubled each retry).
    :param backoff_max: longest single wait; a longer ``Retry-After`` fails at once.
    :param sleep: the sleep function (injectable for tests).
    :param max_pages: safety bound on tag list pages.

    ``request_count`` counts HTTP requests sent (token requests included);
    ``request_log`` keeps ``(method, path)`` of each of them.
    """

    def __init__(self, registry='ghcr.io', username=None, password=None, ca_path=None,
                 validate_certs=True, timeout=30, page_size=100, max_retries=4,
                 backoff_base=1.0, backoff_max=60.0, sleep=time.sleep, max_pages=10000,
                 user_agent=USER_AGENT):
        scheme, host = self.split_registry(registry)
        self.scheme = scheme
        self.host = host
        self.registry = host
        self.base_url = f'{scheme}://{host}'
        if bool(password) != bool(username):
            raise ValueError(f'Give both username and password (a token) for registry {host}, or neither for '
                             'anonymous access')
        self._username = username or None
        self._password = password or None
        self.timeout = timeout
        self.page_size = int(page_size)
        if self.page_size < 1:
            raise ValueError('page_size must be at least 1')
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_pages = int(max_pages)
        self._sleep = sleep
        self.user_agent = user_agent
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self._ssl_context = self._make_ssl_context(ca_path, validate_certs)
        self._connections = {}
        self._tokens = {}          # scope -> bearer token
        self._basic_hosts = set()  # hosts known to want Basic auth
        self.request_count = 0
        self.request_log = []

    # -- configuration ----------------------------------------------------

    @staticmethod
    def split_registry(registry):
        """Return ``(scheme, host)`` of a registry given as ``host[:port]`` or URL."""
        if not isinstance(registry, str) or not registry.strip():
            raise ValueError('The registry must be a host name such as ghcr.io')
        registry = registry.strip()
        scheme = 'https'
        lowered = registry.lower()
        for candidate in ('https://', 'http://'):
            if lowered.startswith(candidate):
                scheme = candidate[:-3]
                registry = registry[len(candidate):]
                break
        registry = registry.rstrip('/')
        if not _HOST_RE.match(registry):
            raise ValueError(f'Invalid registry {registry!r}: expected host[:port] such as ghcr.io '
                             '(optionally prefixed by https:// or http://)')
        return scheme, registry.lower()

    @staticmethod
    def _make_ssl_context(ca_path, validate_certs):
        if not validate_certs:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f'Cannot load the CA file {ca_path}: {exc.__class__.__name__ if not str(exc) else exc}. Give a readable PEM file in ca_path.')

    def reset_counter(self):
        self.request_count = 0
        self.request_log = []

    def close(self):
        for conn in self._connections.values():
            conn.close()
        self._connections = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _redact(self, text):
        text = str(text)
        secrets = [self._password] + list(self._tokens.values())
        if self._username and self._password:
            secrets.append(base64.b64encode(
                (f'{self._username}:{self._password}').encode()).decode('ascii'))
        for secret in secrets:
            if secret and len(secret) >= 3:
                text = text.replace(secret, '********')
        return text

    # -- low level transport ----------------------------------------------

    def _connection(self, scheme, netloc):
        key = (scheme, netloc)
        conn = self._connections.get(key)
        if conn is None:
            if scheme == 'https':
                conn = http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._ssl_context)
            elif scheme == 'http':
                conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
            else:
                raise ProtocolError(f'Unsupported URL scheme {scheme!r} from registry {self.host}',
                                    registry=self.host)
            self._connections[key] = conn
        return conn

    def _drop_connection(self, scheme, netloc):
        conn = self._connections.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def _send_once(self, method, url, headers, max_body):
        """One HTTP exchange; reuses a kept-alive connection, reconnecting once if it went stale."""
        parts = urllib.parse.urlsplit(url)
        path = parts.path or '/'
        if parts.query:
            path += '?' + parts.query
        send_headers = {'User-Agent': self.user_agent}
        send_headers.update(headers)
        for attempt in (0, 1):
            conn = self._connection(parts.scheme, parts.netloc)
            reused = getattr(conn, 'sock', None) is not None
            self.request_count += 1
            self.request_log.append((method, path))
            try:
                conn.request(method, path, headers=send_headers)
                resp = conn.getresponse()
                if method == 'HEAD':
                    body = b''
                    resp.read()
                else:
                    body = resp.read(max_body + 1)
                    if len(body) > max_body:
                        self._drop_connection(parts.scheme, parts.netloc)
                        raise ProtocolError(f'The response of {method} {parts.path} from registry {self.host} '
                                            f'is larger than {max_body} bytes.', registry=self.host)
                if resp.will_close:
                    self._drop_connection(parts.scheme, parts.netloc)
                resp_headers = {}
                for name, value in resp.getheaders():
                    lname = name.lower()
                    resp_headers[lname] = resp_headers[lname] + ', ' + value if lname in resp_headers else value
                return _Response(resp.status, resp_headers, body, url)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.BadStatusLine) as exc:
                self._drop_connection(parts.scheme, parts.netloc)
                if reused and attempt == 0:
                    continue  # stale keep-alive connection: reconnect once
                raise RegistryConnectionError(
                    f'The connection to {parts.netloc} was closed unexpectedly ({exc.__class__.__name__}).',
                    registry=self.host)
            except ssl.SSLCertVerificationError as exc:
                self._drop_connection(parts.scheme, parts.netloc)
                raise TLSError(
                    'TLS certificate verification failed for {}: {}. Give the CA that signed the registry '
                    'certificate in ca_path, or set validate_certs=false only for a registry you trust.'.format(parts.netloc, getattr(exc, 'verify_message', None) or exc.reason or exc),
                    registry=self.host)
            except ssl.SSLError as exc:
                self._drop_connection(parts.scheme, parts.netloc)
                raise TLSError(f'TLS handshake with {parts.netloc} failed: {exc.reason or exc}. Check that the registry speaks HTTPS on that '
                               'port and that ca_path / validate_certs fit it.',
                               registry=self.host)
            except TimeoutError:
                self._drop_connection(parts.scheme, parts.netloc)
                raise RegistryConnectionError(
                    f'Timed out after {self.timeout} seconds waiting for {parts.netloc}. Check the network or raise timeout.', registry=self.host)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection(parts.scheme, parts.netloc)
                raise RegistryConnectionError(
                    f'Cannot reach {parts.netloc}: {self._redact(exc.strerror or exc) if isinstance(exc, OSError) else exc}. Check the registry name, DNS and network access.',
                    registry=self.host)
        raise AssertionError('unreachable')  # pragma: no cover

    def _backoff_delay(self, attempt, response):
        delay = None
        if response is not None:
            delay = parse_retry_after(response.header('Retry-After'))
        if delay is None:
            delay = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return delay

    def _send(self, method, url, headers, max_body=_MAX_BODY_BYTES):
        """Send with retries on 429 / 5xx / connection errors, honouring Retry-After."""
        attempt = 0
        while True:
            try:
                response = self._send_once(method, url, headers, max_body)
            except TLSError:
                raise
            except RegistryConnectionError as exc:
                if attempt >= self.max_retries:
                    raise RegistryConnectionError(f'{exc.message} (gave up after {attempt + 1} attempts)',
                                                  registry=self.host) from exc
                self._sleep(self._backoff_delay(attempt, None))
                attempt += 1
                continue
            if response.status == 429 or (500 <= response.status < 600 and response.status != 501):
                what = 'rate limited the client (429)' if response.status == 429 else f'answered {response.status}'
                if attempt >= self.max_retries:
                    raise RegistryUnavailableError(
                        f'Registry {self.host} {what} for {method} {urllib.parse.urlsplit(url).path}, still after '
                        f'{attempt + 1} attempts. Try again later.{self._error_detail(response)}',
                        registry=self.host, status=response.status)
                delay = self._backoff_delay(attempt, response)
                if delay > self.backoff_max:
                    raise RegistryUnavailableError(
                        f'Registry {self.host} {what} and asked to retry after {delay:.0f} seconds, more than the '
                        f'{self.backoff_max:.0f} seconds this client waits. Try again later.',
                        registry=self.host, status=response.status)
                self._sleep(delay)
                attempt += 1
                continue
            return response

    # -- authentication ---------------------------------------------------

    def _basic_header(self):
        raw = (f'{self._username}:{self._password}').encode()
        return 'Basic ' + base64.b64encode(raw).decode('ascii')

    def _auth_headers(self, scope, netloc):
        if scope in self._tokens:
            return {'Authorization': 'Bearer ' + self._tokens[scope]}
        if netloc in self._basic_hosts and self._username:
            return {'Authorization': self._basic_header()}
        return {}

    def _fetch_token(self, challenge, scope):
        realm = challenge.get('realm')
        if not realm:
            raise AuthError(f'Registry {self.host} sent a Bearer challenge without a realm; cannot get a token.', registry=self.host, status=401)
        realm_url = urllib.parse.urljoin(self.base_url + '/', realm)
        realm_parts = urllib.parse.urlsplit(realm_url)
        if realm_parts.scheme not in ('http', 'https'):
            raise AuthError(f'Registry {self.host} named a token endpoint with an unsupported scheme ({realm_parts.scheme}).', registry=self.host, status=401)
        query = []
        if challenge.get('service'):
            query.append(('service', challenge['service']))
        token_scope = challenge.get('scope') or scope
        if token_scope:
            query.append(('scope', token_scope))
        sep = '&' if realm_parts.query else '?'
        url = realm_url + (sep + urllib.parse.urlencode(query) if query else '')
        headers = {'Accept': 'application/json'}
        if self._username:
            if realm_parts.scheme != 'https' and self.scheme == 'https':
                raise AuthError(f'Registry {self.host} asks for credentials at a plain-HTTP token endpoint ({realm_parts.scheme}://{realm_parts.netloc}); '
                                'refusing to send them unencrypted.', registry=self.host, status=401)
            headers['Authorization'] = self._basic_header()
        response = self._send('GET', url, headers)
        if response.status in (401, 403):
            if self._username:
                raise AuthError(f'The token endpoint of registry {self.host} ({realm_parts.netloc}) refused the '
                                f'credentials of user {self._username!r} (HTTP {response.status}). Check username '
                                f'and password/token.{_ghcr_hint(self.host)}',
                                registry=self.host, status=response.status)
            raise AuthError(f'The token endpoint of registry {self.host} ({realm_parts.netloc}) refused anonymous '
                            f'access (HTTP {response.status}). The image is probably private: give username and '
                            f'password (a token).{_ghcr_hint(self.host)}',
                            registry=self.host, status=response.status)
        if response.status != 200:
            raise ProtocolError(f'The token endpoint of registry {self.host} ({realm_parts.netloc}) answered HTTP '
                                f'{response.status}.{self._error_detail(response)}',
                                registry=self.host, status=response.status)
        try:
            data = json.loads(response.body.decode('utf-8'))
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError(f'The token endpoint of registry {self.host} returned something that is not JSON.', registry=self.host)
        token = data.get('token') or data.get('access_token') if isinstance(data, dict) else None
        if not token or not isinstance(token, str):
            raise ProtocolError(f'The token endpoint of registry {self.host} returned no token.',
                                registry=self.host)
        return token

    def _request(self, method, url, scope, accept=None, max_body=_MAX_BODY_BYTES):
        """Send an authenticated request, answering at most one auth challenge."""
        netloc = urllib.parse.urlsplit(url).netloc
        base_headers = {}
        if accept:
            base_headers['Accept'] = accept
        headers = dict(base_headers)
        headers.update(self._auth_headers(scope, netloc))
        response = self._send(method, url, headers, max_body)
        if response.status != 401:
            return response
        sent_auth = 'Authorization' in headers
        challenges = parse_www_authenticate(response.header('WWW-Authenticate') or '')
        by_scheme = dict(challenges)
        if 'bearer' in by_scheme:
            token = self._fetch_token(by_scheme['bearer'], scope)
            self._tokens[scope] = token
            headers = dict(base_headers)
            headers['Authorization'] = 'Bearer ' + token
            kind = 'bearer'
        elif 'basic' in by_scheme:
            if not self._username:
                raise AuthError(f'Registry {self.host} requires a login (Basic auth) for {urllib.parse.urlsplit(url).path}: give username and password.{_ghcr_hint(self.host)}',
                                registry=self.host, status=401)
            if sent_auth and netloc in self._basic_hosts:
                raise AuthError(f'Registry {self.host} rejected the credentials of user {self._username!r} (HTTP 401). Check username and '
                                f'password.{_ghcr_hint(self.host)}',
                                registry=self.host, status=401)
            self._basic_hosts.add(netloc)
            headers = dict(base_headers)
            headers['Authorization'] = self._basic_header()
            kind = 'basic'
        else:
            raise AuthError(f'Registry {self.host} answered 401 without a usable WWW-Authenticate challenge (Basic or '
                            'Bearer).', registry=self.host, status=401)
        response = self._send(method, url, headers, max_body)
        if response.status == 401:
            if kind == 'bearer':
                self._tokens.pop(scope, None)
                who = f'user {self._username!r}' if self._username else 'anonymous access'
                raise AuthError(
                    f'Registry {self.host} refused a freshly issued token for {scope} ({who}, HTTP 401): the token does not grant '
                    'pull access to that repository. Check that the credentials are right and can read the '
                    f'package (a GitHub token needs read:packages).{_ghcr_hint(self.host)}', registry=self.host, status=401)
            raise AuthError(f'Registry {self.host} rejected the credentials of user {self._username!r} (HTTP 401). Check username and '
                            f'password.{_ghcr_hint(self.host)}',
                            registry=self.host, status=401)
        return response

    def _error_detail(self, response):
        body = (response.body or b'')[:_MAX_ERROR_BODY]
        try:
            data = json.loads(body.decode('utf-8'))
            errors = data.get('errors') if isinstance(data, dict) else None
            if errors and isinstance(errors, list):
                parts = []
                for err in errors[:3]:
                    if isinstance(err, dict):
                        parts.append('{}: {}'.format(err.get('code', '?'), err.get('message', '')))
                if parts:
                    return self._redact(' Registry said: {}.'.format('; '.join(parts)))
        except (ValueError, UnicodeDecodeError):
            pass
        return ''

    def _check_status(self, response, image, reference, what):
        status = response.status
        if status == 403:
            raise AuthError(f'Registry {self.host} denied access to {image} (HTTP 403).{self._error_detail(response)} Check that the credentials can read this '
                            f'repository (a GitHub token needs read:packages).{_ghcr_hint(self.host)}',
                            registry=self.host, status=403)
        if status == 404:
            if reference is None:
                message = (f'Repository {self.host}/{image} was not found (HTTP 404) while {what}.{self._error_detail(response)} Check the repository and image '
                           'names; a private repository may also look missing without the right credentials.')
            else:
                message = (f'Tag {reference} of image {self.host}/{image} was not found (HTTP 404).{self._error_detail(response)} Check that the tag was pushed for '
                           'this image.')
            raise NotFoundError(message, registry=self.host, image=image, reference=reference)
        if not 200 <= status < 300:
            raise ProtocolError(f'Registry {self.host} answered HTTP {status} while {what}.'
                                f'{self._error_detail(response)}',
                                registry=self.host, status=status)

    # -- public API -------------------------------------------------------

    def _check_name(self, name):
        if not is_valid_name(name):
            raise ValueError(f'Invalid repository name {name!r}: use lowercase path components such as '
                             'rayhu/avatar-mgmt/api')

    @staticmethod
    def scope_for(name):
        return f'repository:{name}:pull'

    def list_tags(self, name):
        """Return every tag of repository ``name`` (all pages, in registry order, no duplicates)."""
        self._check_name(name)
        scope = self.scope_for(name)
        base_path = f'/v2/{name}/tags/list'
        url = '{}{}?{}'.format(self.base_url, base_path, urllib.parse.urlencode({'n': self.page_size}))
        tags = []
        seen = set()
        visited = set()
        uses_link = False
        for _page in range(self.max_pages):
            visited.add(url)
            response = self._request('GET', url, scope, accept='application/json')
            self._check_status(response, name, None, 'listing tags')
            try:
                data = json.loads(response.body.decode('utf-8'))
            except (ValueError, UnicodeDecodeError):
                raise ProtocolError(f'Registry {self.host} returned a tag list for {name} that is not JSON.',
                                    registry=self.host)
            page = data.get('tags') if isinstance(data, dict) else None
            page = page or []
            if not isinstance(page, list):
                raise ProtocolError(f'Registry {self.host} returned a malformed tag list for {name}.',
                                    registry=self.host)
            new = 0
            for tag in page:
                if isinstance(tag, str) and tag not in seen:
                    seen.add(tag)
                    tags.append(tag)
                    new += 1
            next_link = parse_link_header(response.header('Link') or '').get('next')
            if next_link:
                uses_link = True
                next_url = urllib.parse.urljoin(url, next_link)
                if urllib.parse.urlsplit(next_url)[:2] != urllib.parse.urlsplit(self.base_url)[:2]:
                    raise ProtocolError(f'Registry {self.host} sent a next-page link to another server ({urllib.parse.urlsplit(next_url).netloc}); not following it.', registry=self.host)
                if next_url in visited:
                    break
                url = next_url
                continue
            # A registry that never sends Link: ask for the next page with ``last`` while pages
            # come back full (a short page is the last one; a longer one means the registry
            # ignores ``n`` and sent everything).
            if not uses_link and new and len(page) == self.page_size:
                url = '{}{}?{}'.format(self.base_url, base_path,
                                   urllib.parse.urlencode({'n': self.page_size, 'last': page[-1]}))
                if url in visited:
                    break
                continue
            break
        else:
            raise ProtocolError(f'Registry {self.host} kept sending tag pages for {name} beyond '
                                f'{self.max_pages} pages; giving up.', registry=self.host)
        return tags

    def manifest_digest(self, name, reference):
        """Return ManifestInfo(digest, media_type) of ``name:reference``.

        Uses HEAD and the ``Docker-Content-Digest`` header; falls back to GET (and
        the sha256 of the body) when HEAD is refused or the header is missing.
        Raises NotFoundError naming image and tag on 404.
        """
        self._check_name(name)
        if not isinstance(reference, str) or not (_TAG_RE.match(reference) or _DIGEST_RE.match(reference)):
            raise ValueError(f'Invalid tag or digest {reference!r} for image {name}')
        scope = self.scope_for(name)
        url = '{}/v2/{}/manifests/{}'.format(self.base_url, name, urllib.parse.quote(reference, safe=':'))
        accept = ', '.join(MANIFEST_MEDIA_TYPES)
        what = f'looking up {name}:{reference}'
        response = self._request('HEAD', url, scope, accept=accept)
        if response.status in (404, 403):
            self._check_status(response, name, reference, what)
        if 200 <= response.status < 300:
            digest = (response.header('Docker-Content-Digest') or '').strip()
            media_type = self._media_type(response)
            if digest and media_type:
                return ManifestInfo(self._valid_digest(digest, name, reference), media_type)
        # HEAD refused (405 etc.) or incomplete: GET the manifest itself.
        response = self._request('GET', url, scope, accept=accept, max_body=_MAX_MANIFEST_BYTES)
        self._check_status(response, name, reference, what)
        digest = (response.header('Docker-Content-Digest') or '').strip()
        if not digest:
            digest = 'sha256:' + hashlib.sha256(response.body).hexdigest()
        media_type = self._media_type(response)
        if not media_type:
            try:
                media_type = json.loads(response.body.decode('utf-8')).get('mediaType')
            except (ValueError, UnicodeDecodeError, AttributeError):
                media_type = None
        return ManifestInfo(self._valid_digest(digest, name, reference), media_type or None)

    @staticmethod
    def _media_type(response):
        value = response.header('Content-Type') or ''
        value = value.split(';', 1)[0].strip()
        return value or None

    def _valid_digest(self, digest, name, reference):
        if not _DIGEST_RE.match(digest):
            raise ProtocolError(f'Registry {self.host} returned an invalid digest {digest[:80]!r} for {name}:{reference}.', registry=self.host)
        return digest
