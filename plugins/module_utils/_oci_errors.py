# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The exceptions of the OCI distribution client (``_oci``).

Every message names the registry and says what to do; none carries a
password, a token or a Basic credential.
"""

from __future__ import annotations

import json

__all__ = [
    'AuthError',
    'NotFoundError',
    'ProtocolError',
    'RegistryConnectionError',
    'RegistryError',
    'RegistryUnavailableError',
    'TLSError',
    'error_detail',
    'ghcr_hint',
]

MAX_ERROR_BODY = 2048


class RegistryError(Exception):
    """Base class of every error raised by the OCI client."""

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
    """The registry could not be reached (DNS, refused, timeout, reset, proxy)."""


class TLSError(RegistryConnectionError):
    """TLS handshake or certificate verification failed."""


class ProtocolError(RegistryError):
    """The registry answered something this client does not understand."""


def ghcr_hint(host):
    """Advice appended to authentication errors of ghcr.io."""
    if host == 'ghcr.io':
        return (
            ' For GHCR use your GitHub user name and a personal access token (classic)'
            ' with the read:packages scope, and check that the package is visible to that user.'
        )
    return ''


def error_detail(response, redact):
    """`` Registry said: CODE: message.`` from an OCI error body (first 3 errors), or ``''``.

    ``redact`` masks secrets a registry may echo back (a token in a message).
    """
    body = (response.body or b'')[:MAX_ERROR_BODY]
    try:
        data = json.loads(body.decode('utf-8'))
    except (ValueError, UnicodeDecodeError):
        return ''
    errors = data.get('errors') if isinstance(data, dict) else None
    if not errors or not isinstance(errors, list):
        return ''
    parts = []
    for err in errors[:3]:
        if isinstance(err, dict):
            parts.append('{}: {}'.format(err.get('code', '?'), err.get('message', '')))
    if not parts:
        return ''
    return redact(' Registry said: {}.'.format('; '.join(parts)))
