# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The REST client of nginx-proxy-manager (NPM 2.12 or later), on ``requests`` through ``_http``.

One concern per part, as the OCI client keeps them:

* the exceptions (:class:`NPMError` and its subclasses): every message names
  the NPM URL and says what to do; none carries the password or the token;
* :class:`NPMClient`: the session (``validate_certs``, ``ca_path``, proxies
  from the environment), login (``POST /api/tokens``), first-run setup
  (``GET /api/`` and the unauthenticated ``POST /api/users``) and one method per
  endpoint used. It has no rules of its own; those live in ``_npm``.

Pointing the client somewhere else is only a URL: ``NPMClient('http://127.0.0.1:81', ...)``
(a real NPM, a fake one in the unit tests). ``calls`` logs ``(method, path)`` of every
request, for tests and for counting writes.

NPM answers errors as ``{"error": {"code": 400, "message": "..."}}``; the message
is quoted (redacted) in :class:`NPMAPIError`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import ssl
import stat
import tempfile
import time
import urllib.parse

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _http

if _http.HAS_REQUESTS:
    from requests import exceptions as _rexc

__all__ = [
    'NPMAPIError',
    'NPMAuthError',
    'NPMClient',
    'NPMConnectionError',
    'NPMError',
]

MAX_BODY_BYTES = 8 * 1024 * 1024
WRITE_METHODS = ('POST', 'PUT', 'DELETE')
LETSENCRYPT_TIMEOUT = 180  # seconds: NPM answers a Let's Encrypt request only once certbot is done


class NPMError(Exception):
    """Base class of every error of the NPM client and of ``_npm``."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self):
        return self.message


class NPMConnectionError(NPMError):
    """NPM could not be reached (refused, DNS, timeout, TLS, proxy) or answered something that is not JSON."""


class NPMAuthError(NPMError):
    """NPM refused the credentials or the token."""


class NPMAPIError(NPMError):
    """NPM answered an HTTP error; ``npm_message`` is NPM's own text (redacted)."""

    def __init__(self, message, status=None, npm_message=''):
        super().__init__(message, status=status)
        self.npm_message = npm_message


def _npm_message(data):
    if isinstance(data, dict):
        err = data.get('error')
        if isinstance(err, dict) and err.get('message'):
            return str(err['message'])
        if isinstance(err, str):
            return err
    return ''


# How long a session kept between module runs (NPMClient.keep) stays valid: one deploy's calls, or a run
# repeated soon after. Every run that uses it keeps a new one for as long again.
SESSION_EXPIRY = '15m'
# How long the token of a resumed session lives in the run that resumed it (longer than any module run).
IN_USE_EXPIRY = '1d'


def _password_check(password, salt):
    """What a kept session holds to know the password it was made with: PBKDF2-SHA256, salted."""
    return hashlib.pbkdf2_hmac('sha256', password.encode('utf-8'), bytes.fromhex(salt), 50000).hex()


def _password_matches(password, salt, check):
    """Whether a kept session's ``salt`` and ``check`` were made with ``password``; False for anything damaged."""
    try:
        if not (isinstance(salt, str) and isinstance(check, str) and salt and check):
            return False
        return hmac.compare_digest(check.encode('ascii'), _password_check(password, salt).encode('ascii'))
    except (ValueError, TypeError, UnicodeError):
        return False


def _read_session(path):
    """The session kept at ``path``, or None: missing, unreadable, not a regular file owned by this user alone
    (mode 0600), or not what :func:`_write_session` writes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        with os.fdopen(fd, 'r', encoding='utf-8') as handle:
            fd = None
            data = json.loads(handle.read(65536))
    except (OSError, ValueError):
        return None
    finally:
        if fd is not None:
            os.close(fd)
    return data if isinstance(data, dict) else None


def _write_session(path, session):
    """Write ``session`` to ``path`` with mode 0600 (a temporary file beside it, then renamed)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.npm-session.', dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump(session, handle)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class NPMClient:
    """One NPM instance's API under ``url`` (``http://127.0.0.1:81``; ``/api`` is added).

    ``username`` is the admin e-mail, ``password`` its secret. The token is
    fetched on the first authenticated call and kept in memory, unless a module asks to keep a short-lived
    session between its runs (:meth:`keep`, :meth:`resume`: the ``token_cache`` option).
    """

    def __init__(
        self,
        url,
        username='',
        password='',
        validate_certs=True,
        ca_path=None,
        timeout=30,
        user_agent='avatar_mgmt.ops-npm',
        sleep=time.sleep,
    ):
        parts = urllib.parse.urlsplit(url or '')
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError(f'url must be http(s)://host[:port] of NPM\'s admin side, not {_http.redact_url(url)!r}')
        self.url = _http.redact_url(url).rstrip('/')
        self._base = url.rstrip('/')
        if self._base.endswith('/api'):
            self._base = self._base[: -len('/api')]
            self.url = self.url[: -len('/api')]
        self.username = username or ''
        self._password = password or ''
        self._token = None
        self.timeout = timeout
        # The pause between two tries of a read whose connection broke (tests pass their own).
        self._sleep = sleep
        self.calls = []
        if not _http.HAS_REQUESTS:
            raise NPMError(
                'The Python library requests is missing: install it (pip install requests, or the '
                'python3-requests package) where this module runs.'
            )
        if validate_certs and ca_path:
            try:
                _http.check_ca_file(ca_path)
            except (OSError, ssl.SSLError) as exc:
                raise NPMConnectionError(
                    f'Cannot load the CA file {ca_path}: {exc or type(exc).__name__}. Give a readable PEM file in ca_path.'
                )
        self._session = _http.make_session(validate_certs=validate_certs, ca_path=ca_path, user_agent=user_agent)

    # -- secrets ----------------------------------------------------------

    def redact(self, text):
        """``text`` without the password, the token or URL user info."""
        return _http.safe_message(text, [self._password, self._token or ''])

    def close(self):
        self._session.close()

    @property
    def write_count(self):
        """Requests sent that change something in NPM (POST/PUT/DELETE other than the login)."""
        return sum(1 for method, path in self.calls if method in WRITE_METHODS and path != '/api/tokens')

    # -- one exchange -------------------------------------------------------

    def request(self, method, path, body=None, files=None, auth=True, timeout=None):
        """Send one request to ``/api`` + ``path``; return the decoded JSON (None for an empty body)."""
        timeout = timeout or self.timeout
        headers = {'Accept': 'application/json'}
        data = None
        if body is not None:
            data = json.dumps(body).encode('utf-8')
            headers['Content-Type'] = 'application/json'
        if auth:
            if self._token is None:
                self.login()
            headers['Authorization'] = f'Bearer {self._token}'
        api_path = '/api' + path
        self.calls.append((method, api_path.split('?', 1)[0]))
        # A read is tried again when the connection broke (a reload may still be under way); a write is not
        # (it may have been applied).
        for attempt in range(3 if method == 'GET' else 1):
            try:
                result = self._send(method, api_path, headers, timeout, data, files)
                break
            except NPMConnectionError:
                if attempt == (2 if method == 'GET' else 0):
                    raise
                self._sleep(0.5 * (attempt + 1))
        if method != 'GET':
            # NPM's admin port is an nginx that a write reloads: its old worker closes the kept-alive
            # connection under the next request (connection reset). The next request opens a new one.
            self._session.close()
        text = result.body.decode('utf-8', 'replace')
        try:
            decoded = json.loads(text) if text.strip() else None
        except ValueError:
            decoded = None
            if result.status < 400:
                raise NPMConnectionError(
                    self.redact(
                        f'NPM at {self.url} answered {result.status} to {method} {api_path} with something '
                        'that is not JSON. Is url the admin side of NPM (port 81)?'
                    ),
                    status=result.status,
                )
        if result.status >= 400:
            said = self.redact(_npm_message(decoded) or text[:300].strip())
            if result.status in (401, 403):
                raise NPMAuthError(
                    f'NPM at {self.url} refused {method} {api_path} ({result.status}): {said}. '
                    'Check username and password and that the user may manage proxy hosts.',
                    status=result.status,
                )
            raise NPMAPIError(
                f'NPM at {self.url} refused {method} {api_path} ({result.status}): {said}.',
                status=result.status,
                npm_message=said,
            )
        return decoded

    def _send(self, method, api_path, headers, timeout, data, files):
        try:
            return _http.send(
                self._session,
                method,
                self._base + api_path,
                headers=headers,
                timeout=timeout,
                max_body=MAX_BODY_BYTES,
                data=data,
                files=files,
            )
        except _http.BodyError as exc:
            raise NPMConnectionError(
                self.redact(
                    f'NPM at {self.url} broke off its answer to {method} {api_path} ({exc.status}): '
                    f'{_http.describe_exception(exc.cause, timeout)}.'
                )
            )
        except (_rexc.RequestException, OSError, http.client.HTTPException) as exc:
            raise NPMConnectionError(
                self.redact(
                    f'Cannot reach NPM at {self.url} ({method} {api_path}): '
                    f'{_http.describe_exception(exc, timeout)}. Check url, that NPM runs and its admin '
                    'port (81) is reachable from where the module runs.'
                )
            )

    # -- setup and login -------------------------------------------------

    def status(self):
        """``GET /api/``: ``{status, setup, version}``; ``setup`` is false until the first user exists."""
        data = self.request('GET', '/', auth=False)
        if not isinstance(data, dict) or 'status' not in data:
            raise NPMConnectionError(
                f'NPM at {self.url} did not answer GET /api/ as NPM does. Is url NPM\'s admin side?'
            )
        return data

    def create_first_user(self, name='Administrator', nickname='Admin'):
        """The unauthenticated ``POST /api/users`` NPM accepts only while it has no user (``setup`` false)."""
        body = {
            'name': name,
            'nickname': nickname,
            'email': self.username,
            'roles': ['admin'],
            'is_disabled': False,
            'auth': {'type': 'password', 'secret': self._password},
        }
        user = self.request('POST', '/users', body=body, auth=False)
        return {'id': user.get('id'), 'email': user.get('email')} if isinstance(user, dict) else {}

    def login(self):
        """``POST /api/tokens``; keeps the token (never returned, never in a message)."""
        if not self.username or not self._password:
            raise NPMAuthError(f'NPM at {self.url} needs username (the admin e-mail) and password.')
        try:
            data = self.request(
                'POST', '/tokens', body={'identity': self.username, 'secret': self._password}, auth=False
            )
        except NPMAPIError as exc:
            raise NPMAuthError(
                f'NPM at {self.url} refused the login of {self.username}: {exc.npm_message or exc.status}. '
                'Check username and password.',
                status=exc.status,
            )
        except NPMAuthError as exc:
            raise NPMAuthError(
                f'NPM at {self.url} refused the login of {self.username} ({exc.status}). Check username and password.',
                status=exc.status,
            )
        token = data.get('token') if isinstance(data, dict) else None
        if not token:
            if isinstance(data, dict) and data.get('requires_2fa'):
                raise NPMAuthError(
                    f'The NPM user {self.username} has two-factor authentication on; this client cannot answer '
                    'the challenge. Use a user without 2FA for automation.'
                )
            raise NPMAuthError(f'NPM at {self.url} answered the login of {self.username} without a token.')
        self._token = str(token)

    # -- a session kept between module runs ---------------------------------

    def fresh_token(self, expiry, timeout=None):
        """``GET /api/tokens?expiry=...``: a new token of the logged-in user that lives ``expiry`` (NPM's period
        syntax, such as ``15m``); the token in use stays. Raises NPMError (a token NPM cannot verify: 500)."""
        data = self.request('GET', f'/tokens?expiry={urllib.parse.quote(expiry)}', timeout=timeout)
        token = data.get('token') if isinstance(data, dict) else None
        if not token:
            raise NPMAuthError(f'NPM at {self.url} answered GET /api/tokens without a token.')
        return str(token)

    def resume(self, path):
        """Use the session that :meth:`keep` wrote at ``path`` for this NPM, user and password: no login (whose
        bcrypt check costs NPM about half a second). The kept token is traded at once for one that lives
        :data:`IN_USE_EXPIRY` (a module run never outlives it). False, and no token in use, when there is no
        such session (no file, a file this user does not own alone, a damaged file, another NPM, user or
        password) or NPM refuses it (expired)."""
        session = _read_session(path)
        if not session or session.get('url') != self.url or session.get('username') != self.username:
            return False
        if not _password_matches(self._password, session.get('salt'), session.get('check')):
            return False  # the password changed (or is wrong): the login says which
        kept = session.get('token')
        if not isinstance(kept, str) or not kept:
            return False
        self._token = kept
        try:
            self._token = self.fresh_token(IN_USE_EXPIRY)
        except NPMError:
            self._token = None
            return False
        return True

    def keep(self, path, timeout=None):
        """Write a token that lives :data:`SESSION_EXPIRY` (:meth:`fresh_token`) to ``path`` (0600, written whole
        or not at all) for the next module run's :meth:`resume`, with a salted check of the password (PBKDF2),
        never the password. A cache: it never raises, and writes nothing when anything fails."""
        try:
            if not self._token:
                return
            salt = os.urandom(16).hex()
            session = {
                'url': self.url,
                'username': self.username,
                'salt': salt,
                'check': _password_check(self._password, salt),
                'token': self.fresh_token(SESSION_EXPIRY, timeout=timeout),
            }
            _write_session(path, session)
        except Exception:  # noqa: BLE001 - a cache: whatever went wrong, the next run logs in
            pass

    # -- proxy hosts -------------------------------------------------------

    def list_proxy_hosts(self):
        return self.request('GET', '/nginx/proxy-hosts?expand=certificate,access_list') or []

    def get_proxy_host(self, host_id):
        return self.request('GET', f'/nginx/proxy-hosts/{int(host_id)}?expand=certificate,access_list')

    def create_proxy_host(self, body):
        return self.request('POST', '/nginx/proxy-hosts', body=body)

    def update_proxy_host(self, host_id, body):
        return self.request('PUT', f'/nginx/proxy-hosts/{int(host_id)}', body=body)

    def delete_proxy_host(self, host_id):
        return self.request('DELETE', f'/nginx/proxy-hosts/{int(host_id)}')

    def enable_proxy_host(self, host_id):
        return self.request('POST', f'/nginx/proxy-hosts/{int(host_id)}/enable')

    def disable_proxy_host(self, host_id):
        return self.request('POST', f'/nginx/proxy-hosts/{int(host_id)}/disable')

    # -- certificates --------------------------------------------------------

    def list_certificates(self):
        """Every certificate. Custom ones carry their PEMs, private key included, in ``meta``: never show them."""
        return self.request('GET', '/nginx/certificates') or []

    def create_custom_certificate(self, nice_name):
        return self.request('POST', '/nginx/certificates', body={'provider': 'other', 'nice_name': nice_name})

    def request_letsencrypt_certificate(self, nice_name, domain_names, email, key_type='rsa'):
        """``POST /nginx/certificates`` with provider ``letsencrypt`` (HTTP-01 challenge, terms agreed).

        NPM runs certbot before it answers, which can take minutes: the timeout is at least
        :data:`LETSENCRYPT_TIMEOUT`.
        """
        body = {
            'provider': 'letsencrypt',
            'nice_name': nice_name,
            'domain_names': list(domain_names),
            'meta': {
                'letsencrypt_email': email,
                'letsencrypt_agree': True,
                'dns_challenge': False,
                'key_type': key_type,
            },
        }
        return self.request(
            'POST', '/nginx/certificates', body=body, timeout=max(self.timeout or 0, LETSENCRYPT_TIMEOUT)
        )

    def upload_certificate(self, cert_id, certificate, certificate_key, intermediate_certificate=None):
        """``POST /{id}/upload`` (multipart). NPM answers with the PEMs; only the fact of success is kept."""
        files = {
            'certificate': ('cert.pem', certificate.encode('utf-8'), 'application/x-pem-file'),
            'certificate_key': ('key.pem', certificate_key.encode('utf-8'), 'application/x-pem-file'),
        }
        if intermediate_certificate:
            files['intermediate_certificate'] = (
                'chain.pem',
                intermediate_certificate.encode('utf-8'),
                'application/x-pem-file',
            )
        self.request('POST', f'/nginx/certificates/{int(cert_id)}/upload', files=files)

    # -- access lists ----------------------------------------------------------

    def list_access_lists(self):
        return self.request('GET', '/nginx/access-lists?expand=items,clients') or []

    def create_access_list(self, body):
        return self.request('POST', '/nginx/access-lists', body=body)

    def update_access_list(self, acl_id, body):
        return self.request('PUT', f'/nginx/access-lists/{int(acl_id)}', body=body)
