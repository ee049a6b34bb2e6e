# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP transport of the OCI client: a pooled ``requests`` session and the retry policy.

* The session comes from ``_http.make_session``: kept-alive connections per
  host, ``validate_certs`` / ``ca_path``, and the proxy environment
  (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``) honoured.
* :meth:`Transport.send` retries HTTP 429 and 5xx (not 501) and connection
  errors (not TLS errors) with exponential backoff, honouring ``Retry-After``
  (seconds or an HTTP date); a ``Retry-After`` longer than ``backoff_max`` fails
  at once. The loop is ours rather than urllib3's ``Retry`` so that the sleep
  function is injectable and every attempt is counted in ``request_count``.
* Redirects are not followed (registries answer tags and manifests directly).
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
import urllib.parse

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _http
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci_errors as errors

if _http.HAS_REQUESTS:
    from requests import exceptions as _rexc

__all__ = ['MAX_BODY_BYTES', 'Transport', 'parse_retry_after']

MAX_BODY_BYTES = 16 * 1024 * 1024

# A kept-alive connection the server closed between two requests shows up as one of these.
_CLOSED_UNEXPECTEDLY = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


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


def _retryable_status(status):
    return status == 429 or (500 <= status < 600 and status != 501)


class Transport:
    """Sends requests for one registry client; counts them and retries transient failures.

    :param host: the registry's ``host[:port]``, named in every error message.
    :param redact: callable masking secrets in a text (from the client's credentials).
    Other parameters as in ``RegistryClient``.

    ``request_count`` counts HTTP requests sent (every attempt, token requests included);
    ``request_log`` keeps ``(method, path?query)`` of each of them.
    """

    def __init__(
        self,
        host,
        timeout=30,
        validate_certs=True,
        ca_path=None,
        user_agent=None,
        max_retries=4,
        backoff_base=1.0,
        backoff_max=60.0,
        sleep=time.sleep,
        redact=str,
    ):
        self.host = host
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._sleep = sleep
        self._redact = redact
        if not _http.HAS_REQUESTS:
            raise errors.RegistryError(
                'The Python library requests is missing: install it (pip install requests, or the '
                'python3-requests package) where this client runs.',
                registry=host,
            )
        if validate_certs and ca_path:
            try:
                _http.check_ca_file(ca_path)
            except (OSError, ssl.SSLError) as exc:
                reason = str(exc) or exc.__class__.__name__
                raise errors.TLSError(
                    f'Cannot load the CA file {ca_path}: {reason}. Give a readable PEM file in ca_path.', registry=host
                )
        self._session = _http.make_session(validate_certs=validate_certs, ca_path=ca_path, user_agent=user_agent)
        self.request_count = 0
        self.request_log = []

    def reset_counter(self):
        self.request_count = 0
        self.request_log = []

    def close(self):
        self._session.close()

    # -- one exchange -----------------------------------------------------

    def send_once(self, method, url, headers, max_body=MAX_BODY_BYTES):
        """One HTTP exchange on a pooled connection, reconnecting once if a kept-alive one went stale."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ('http', 'https'):
            raise errors.ProtocolError(
                f'Unsupported URL scheme {parts.scheme!r} from registry {self.host}', registry=self.host
            )
        path = parts.path or '/'
        if parts.query:
            path += '?' + parts.query
        netloc = parts.netloc
        for attempt in (0, 1):
            self.request_count += 1
            self.request_log.append((method, path))
            try:
                result = _http.send(
                    self._session, method, url, headers=headers, timeout=self.timeout, max_body=max_body
                )
            except _http.BodyError as exc:
                failure = exc.cause
            except (_rexc.RequestException, OSError, http.client.HTTPException) as exc:
                failure = exc
            else:
                failure = None
            if failure is not None:
                closed = _http.find_cause(failure, _CLOSED_UNEXPECTEDLY)
                if closed is not None and attempt == 0 and not isinstance(failure, _rexc.ProxyError):
                    continue  # a stale keep-alive connection: reconnect once, at once
                raise self._connection_error(netloc, failure, closed)
            if result.truncated:
                raise errors.ProtocolError(
                    f'The response of {method} {parts.path} from registry {self.host} is larger than {max_body} bytes.',
                    registry=self.host,
                )
            return result
        raise AssertionError('unreachable')  # pragma: no cover

    def _connection_error(self, netloc, exc, closed=None):
        """The RegistryConnectionError (or TLSError) that tells what went wrong with ``exc``."""
        if isinstance(exc, _rexc.SSLError):
            return self._tls_error(netloc, exc)
        if isinstance(exc, _rexc.ProxyError):
            return errors.RegistryConnectionError(
                f'Cannot reach {netloc} through the proxy set in the environment (https_proxy / http_proxy): '
                f'{self._reason(_http.os_cause(exc) or exc)}. Check the proxy, or list the registry in no_proxy.',
                registry=self.host,
            )
        if _http.is_timeout(exc):
            return errors.RegistryConnectionError(
                f'Timed out after {self.timeout} seconds waiting for {netloc}. Check the network or raise timeout.',
                registry=self.host,
            )
        if closed is not None:
            return errors.RegistryConnectionError(
                f'The connection to {netloc} was closed unexpectedly ({closed.__class__.__name__}).', registry=self.host
            )
        return errors.RegistryConnectionError(
            f'Cannot reach {netloc}: {self._reason(exc)}. Check the registry name, DNS and network access.',
            registry=self.host,
        )

    def _reason(self, exc):
        return self._redact(_http.describe_exception(exc, self.timeout))

    def _tls_error(self, netloc, exc):
        reason = _http.certificate_failure(exc)
        if reason is not None:
            return errors.TLSError(
                f'TLS certificate verification failed for {netloc}: {reason}. Give the CA that signed the registry '
                'certificate in ca_path, or set validate_certs=false only for a registry you trust.',
                registry=self.host,
            )
        tls = _http.find_cause(exc, ssl.SSLError)
        reason = (getattr(tls, 'reason', None) or tls) if tls is not None else self._reason(exc)
        return errors.TLSError(
            f'TLS handshake with {netloc} failed: {reason}. Check that the registry speaks HTTPS on that '
            'port and that ca_path / validate_certs fit it.',
            registry=self.host,
        )

    # -- retries ----------------------------------------------------------

    def backoff_delay(self, attempt, response):
        delay = None
        if response is not None:
            delay = parse_retry_after(response.header('Retry-After'))
        if delay is None:
            delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        return delay

    def send(self, method, url, headers, max_body=MAX_BODY_BYTES):
        """Send with retries on 429 / 5xx / connection errors, honouring Retry-After."""
        attempt = 0
        while True:
            try:
                response = self.send_once(method, url, headers, max_body)
            except errors.TLSError:
                raise
            except errors.RegistryConnectionError as exc:
                if attempt >= self.max_retries:
                    raise errors.RegistryConnectionError(
                        f'{exc.message} (gave up after {attempt + 1} attempts)', registry=self.host
                    ) from exc
                self._sleep(self.backoff_delay(attempt, None))
                attempt += 1
                continue
            if _retryable_status(response.status):
                what = 'rate limited the client (429)' if response.status == 429 else f'answered {response.status}'
                if attempt >= self.max_retries:
                    raise errors.RegistryUnavailableError(
                        f'Registry {self.host} {what} for {method} {urllib.parse.urlsplit(url).path}, still after '
                        f'{attempt + 1} attempts. Try again later.{errors.error_detail(response, self._redact)}',
                        registry=self.host,
                        status=response.status,
                    )
                delay = self.backoff_delay(attempt, response)
                if delay > self.backoff_max:
                    raise errors.RegistryUnavailableError(
                        f'Registry {self.host} {what} and asked to retry after {delay:.0f} seconds, more than the '
                        f'{self.backoff_max:.0f} seconds this client waits. Try again later.',
                        registry=self.host,
                        status=response.status,
                    )
                self._sleep(delay)
                attempt += 1
                continue
            return response
