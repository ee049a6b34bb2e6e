# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP plumbing shared by the OCI client (``_oci*``) and the health checks (``_health``).

* :func:`make_session` builds a ``requests.Session`` with connection pooling,
  TLS settings (``validate_certs``, a CA bundle) and the proxy environment
  (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, also lowercase) honoured
  through requests' ``trust_env``. ``~/.netrc`` is *not* read: credentials come
  only from the caller's headers. Redirects are not followed unless asked, and
  a ``Host`` header is not carried to a redirect target.
* :func:`send` makes one exchange and reads at most a given number of body bytes.
* :func:`redact_url`, :func:`safe_message` and :func:`describe_exception` turn
  URLs and exceptions into text that carries no credentials.

Works with requests 2.25 or later (Debian 12 and 13 ship 2.28 and 2.32).
Importing this file never fails: without requests, ``HAS_REQUESTS`` is False
and ``REQUESTS_IMPORT_ERROR`` holds the traceback for the module's message.
"""

from __future__ import annotations

import email.message
import http.client
import re
import socket
import ssl
import traceback
import urllib.parse
import warnings

try:
    import requests
    import requests.adapters
    import requests.auth
    import requests.exceptions
except ImportError:
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

try:
    from urllib3.exceptions import InsecureRequestWarning
except ImportError:  # urllib3 comes with requests; without it nothing here sends anyway
    InsecureRequestWarning = Warning

__all__ = [
    'HAS_REQUESTS',
    'REQUESTS_IMPORT_ERROR',
    'BodyError',
    'HTTPResult',
    'certificate_failure',
    'check_ca_file',
    'content_charset',
    'describe_exception',
    'exception_chain',
    'find_cause',
    'fmt_seconds',
    'is_timeout',
    'make_session',
    'os_cause',
    'redact_url',
    'safe_message',
    'send',
]

DEFAULT_POOL_SIZE = 4
DEFAULT_MAX_REDIRECTS = 10

# scheme://user:password@host -> scheme://host, anywhere in a text.
_URL_USERINFO_RE = re.compile(r'(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#\'"]*@')


# ---------------------------------------------------------------------------
# Text without credentials
# ---------------------------------------------------------------------------


def redact_url(url):
    """Drop ``user:password@`` from a URL before it is shown anywhere."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return '<unparsable url>'
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ''
    if ':' in netloc:
        netloc = f'[{netloc}]'
    if parts.port is not None:
        netloc = f'{netloc}:{parts.port}'
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def safe_message(text, secrets=()):
    """``text`` with the user info of every URL removed and each secret (3+ chars) masked."""
    text = _URL_USERINFO_RE.sub(r'\g<scheme>', str(text))
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, '********')
    return text


# ---------------------------------------------------------------------------
# Exceptions: find the cause behind requests' and urllib3's wrappers
# ---------------------------------------------------------------------------


def exception_chain(exc, limit=16):
    """``exc`` and the exceptions behind it (``__cause__``, ``__context__``, ``reason``, args), breadth first."""
    seen = []
    queue = [exc]
    while queue and len(seen) < limit:
        current = queue.pop(0)
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        queue.append(getattr(current, 'reason', None))
        queue.append(current.__cause__)
        queue.append(current.__context__)
        queue.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return seen


def find_cause(exc, types):
    """The first exception of ``types`` in :func:`exception_chain` of ``exc``, or None."""
    for item in exception_chain(exc):
        if isinstance(item, types):
            return item
    return None


def os_cause(exc):
    """The operating-system error behind ``exc`` (requests' own exceptions, OSError subclasses too, skipped)."""
    for item in exception_chain(exc):
        if isinstance(item, OSError) and not (HAS_REQUESTS and isinstance(item, requests.exceptions.RequestException)):
            return item
    return None


def is_timeout(exc):
    """True when ``exc`` (or an exception behind it) is a timeout."""
    if HAS_REQUESTS and isinstance(exc, requests.exceptions.Timeout):
        return True
    return find_cause(exc, (socket.timeout, TimeoutError)) is not None


def describe_exception(exc, timeout=None):
    """A short human reason for a network error, without URLs, headers or credentials.

    Examples: ``connection refused``, ``timed out after 0.2s``,
    ``TLS certificate verification failed (...); fix the certificate or set validate_certs: false``.
    """
    reason = certificate_failure(exc)
    if reason is not None:
        return f'TLS certificate verification failed ({reason}); fix the certificate or set validate_certs: false'
    if HAS_REQUESTS and isinstance(exc, requests.exceptions.ProxyError):
        cause = os_cause(exc)
        detail = describe_exception(cause, timeout) if cause is not None else 'no answer'
        return f'the proxy from the environment (https_proxy / http_proxy) failed: {detail}'
    if is_timeout(exc):
        return f'timed out after {fmt_seconds(timeout)}s' if timeout is not None else 'timed out'
    if find_cause(exc, ConnectionRefusedError) is not None:
        return 'connection refused'
    if find_cause(exc, ConnectionResetError) is not None:
        return 'connection reset by peer'
    gai = find_cause(exc, socket.gaierror)
    if gai is not None:
        return f'name resolution failed: {gai.strerror or gai}'
    tls = find_cause(exc, ssl.SSLError)
    if tls is not None:
        return f'TLS error: {getattr(tls, "reason", None) or tls}'
    if HAS_REQUESTS and isinstance(exc, requests.exceptions.TooManyRedirects):
        return 'too many redirects'
    bad = find_cause(exc, http.client.HTTPException)
    if bad is not None:
        return f'invalid HTTP response: {safe_message(bad) or type(bad).__name__}'
    oserror = os_cause(exc)
    if oserror is not None and getattr(oserror, 'strerror', None):
        return _os_reason(oserror)
    return safe_message(f'{type(exc).__name__}: {exc}')


def _os_reason(exc):
    text = getattr(exc, 'strerror', None) or str(exc) or type(exc).__name__
    return safe_message(text[:1].lower() + text[1:])


def certificate_failure(exc):
    """Why certificate verification failed behind ``exc`` (``verify_message``), or None if it did not."""
    cert = find_cause(exc, ssl.SSLCertVerificationError)
    if cert is None:
        return None
    return getattr(cert, 'verify_message', None) or getattr(cert, 'reason', None) or cert


def fmt_seconds(value):
    """``0.2`` -> ``'0.2'``, ``10.0`` -> ``'10'``: seconds as people write them."""
    return (f'{float(value):.3f}').rstrip('0').rstrip('.')


# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------


def check_ca_file(ca_path):
    """Raise OSError or ssl.SSLError when ``ca_path`` is not a readable PEM file of certificates."""
    ssl.create_default_context(cafile=ca_path)


if HAS_REQUESTS:

    class _HeadersOnly(requests.auth.AuthBase):
        """Leave the request as built: set as the session's auth so requests never reads ``~/.netrc``."""

        def __call__(self, request):
            return request

    class _Session(requests.Session):
        """A Session that drops some headers (``Host``) on redirects and never adds netrc credentials."""

        drop_on_redirect = ('Host',)

        def rebuild_auth(self, prepared_request, response):
            headers = prepared_request.headers
            for name in self.drop_on_redirect:
                headers.pop(name, None)
            if 'Authorization' in headers and self.should_strip_auth(response.request.url, prepared_request.url):
                # Credentials never follow a redirect to another host.
                del headers['Authorization']


def make_session(
    validate_certs=True, ca_path=None, user_agent=None, pool_size=DEFAULT_POOL_SIZE, max_redirects=DEFAULT_MAX_REDIRECTS
):
    """A pooled ``requests.Session``: proxies from the environment, TLS as asked, no retries of its own.

    ``ca_path`` (a PEM bundle) replaces the default trust store; with ``validate_certs=False``
    certificates are not checked at all. Retries are left to the caller (``max_retries=0``).
    """
    if not HAS_REQUESTS:
        raise RuntimeError('the Python library requests is not installed')
    session = _Session()
    session.trust_env = True  # HTTPS_PROXY / HTTP_PROXY / NO_PROXY (and REQUESTS_CA_BUNDLE)
    session.auth = _HeadersOnly()
    session.max_redirects = max_redirects
    if not validate_certs:
        session.verify = False
    elif ca_path:
        session.verify = ca_path
    else:
        session.verify = True
    if user_agent:
        session.headers['User-Agent'] = user_agent
    for prefix in ('https://', 'http://'):
        session.mount(
            prefix, requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        )
    return session


class BodyError(Exception):
    """The status line and headers came (``status``), then reading the body failed (``cause``)."""

    def __init__(self, status, cause):
        super().__init__(f'HTTP {status}, then reading the body failed: {type(cause).__name__}')
        self.status = status
        self.cause = cause


class HTTPResult:
    """One HTTP exchange: ``status``, ``headers`` (case-insensitive), ``body`` (bytes), ``url``, ``truncated``."""

    __slots__ = ('body', 'headers', 'status', 'truncated', 'url')

    def __init__(self, status, headers, body, url, truncated=False):
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        self.truncated = truncated

    def header(self, name):
        return self.headers.get(name)


def send(session, method, url, headers=None, timeout=None, max_body=None, allow_redirects=False, data=None, files=None):
    """One request through ``session``; reads at most ``max_body`` bytes of body (None: no limit).

    ``data`` (bytes or str) is the request body; ``files`` (a dict name -> (filename, content))
    makes it multipart/form-data, as requests does.

    Returns an :class:`HTTPResult`; ``truncated`` tells that the body was longer than
    ``max_body`` (the connection is then closed, not reused). requests' exceptions propagate;
    one raised while reading the body comes wrapped in :class:`BodyError` with the status.
    """
    with warnings.catch_warnings():
        if session.verify is False:
            warnings.simplefilter('ignore', InsecureRequestWarning)
        # verify is passed per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from
        # the environment override a Session's own verify (psf/requests#3829), which would
        # silently replace ca_path or turn validate_certs=false back on.
        response = session.request(
            method,
            url,
            headers=headers,
            timeout=timeout,
            stream=True,
            allow_redirects=allow_redirects,
            verify=session.verify,
            data=data,
            files=files,
        )
        try:
            chunks = []
            size = 0
            truncated = False
            # Read to the end even for HEAD (no body): a consumed response gives its
            # connection back to the pool instead of closing it.
            try:
                for chunk in response.iter_content(chunk_size=65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if max_body is not None and size > max_body:
                        truncated = True
                        break
            except (requests.exceptions.RequestException, OSError, http.client.HTTPException) as exc:
                raise BodyError(response.status_code, exc) from exc
            body = b''.join(chunks)
            if truncated:
                body = body[:max_body]
        finally:
            response.close()
    return HTTPResult(response.status_code, response.headers, body, response.url, truncated)


def content_charset(headers):
    """The ``charset`` parameter of the Content-Type header, or None (no ISO-8859-1 guessing)."""
    value = headers.get('Content-Type') if headers is not None else None
    if not value:
        return None
    message = email.message.Message()
    message['Content-Type'] = value
    return message.get_content_charset()
