# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small, read-only client for the OCI distribution API, on ``requests``.

It lists tags (following pagination) and looks up manifest digests. The
concerns live in their own files, as community.docker's ``_api`` package does:

* ``_oci_errors``: the exceptions (re-exported here);
* ``_oci_auth``: WWW-Authenticate parsing, Basic, Bearer tokens cached per scope;
* ``_oci_transport``: the pooled ``requests`` session, TLS options, timeouts,
  retries with exponential backoff on 429 and 5xx honouring ``Retry-After``;
* ``_http``: the session factory and credential-free messages, shared with ``_health``.

Import the public names from here (``from .._oci import RegistryClient, ...``).

Credentials and tokens never appear in exception messages.
Proxy environment variables are honoured (``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY``, also lowercase) for the registry and for the token endpoint it
names; ``~/.netrc`` is not read. Needs the Python library requests (2.25 or later).
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import time
import urllib.parse

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci_auth import Authenticator
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci_errors import (
    AuthError,
    NotFoundError,
    ProtocolError,
    RegistryConnectionError,
    RegistryError,
    RegistryUnavailableError,
    TLSError,
    error_detail,
    ghcr_hint,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci_transport import Transport

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
_HOST_RE = re.compile(
    r'(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
    r'(?::[0-9]{1,5})?\Z|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?\Z'
)

_MAX_MANIFEST_BYTES = 4 * 1024 * 1024

ManifestInfo = collections.namedtuple('ManifestInfo', ['digest', 'media_type'])


def is_valid_name(name):
    """True when ``name`` is a valid OCI repository name such as ``rayhu/avatar-mgmt/api``."""
    return isinstance(name, str) and len(name) <= 255 and bool(_NAME_RE.match(name))


def is_valid_tag(tag):
    """True when ``tag`` is a valid OCI tag (``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``)."""
    return isinstance(tag, str) and bool(_TAG_RE.match(tag))


# ---------------------------------------------------------------------------
# Header parsing helpers (pure functions, unit-tested directly)
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------


class RegistryClient:
    """Read-only OCI distribution API client.

    :param registry: host[:port] such as ``ghcr.io``; ``https://`` is assumed.
        ``http://host:port`` or ``https://host:port`` selects the scheme.
    :param endpoint: optional ``host[:port]`` (or URL) to connect to instead of ``registry``;
        references still name ``registry``.
    :param username: optional user for Basic auth or for the token endpoint.
    :param password: optional password or token (never shown in errors).
    :param ca_path: optional PEM file of CA certificates to trust.
    :param validate_certs: verify TLS certificates (default True).
    :param timeout: connect and read timeout in seconds for every request.
    :param page_size: ``n`` asked for when listing tags.
    :param max_retries: retries after a 429/5xx or a connection error.
    :param backoff_base: first backoff delay in seconds (doubled each retry).
    :param backoff_max: longest single wait; a longer ``Retry-After`` fails at once.
    :param sleep: the sleep function (injectable for tests).
    :param max_pages: safety bound on tag list pages.

    Proxies come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``).
    ``request_count`` counts HTTP requests sent (token requests included);
    ``request_log`` keeps ``(method, path)`` of each of them.
    """

    def __init__(
        self,
        registry='ghcr.io',
        username=None,
        password=None,
        ca_path=None,
        validate_certs=True,
        timeout=30,
        page_size=100,
        max_retries=4,
        backoff_base=1.0,
        backoff_max=60.0,
        sleep=time.sleep,
        max_pages=10000,
        user_agent=USER_AGENT,
        endpoint=None,
    ):
        # ``registry`` names the images (``registry/repository/image@digest``); ``endpoint``, when
        # given, is where this client connects instead (a mirror, a tunnel, a published port).
        self.registry = self.split_registry(registry)[1]
        scheme, host = self.split_registry(endpoint or registry)
        self.scheme = scheme
        self.host = host
        self.base_url = f'{scheme}://{host}'
        if bool(password) != bool(username):
            raise ValueError(
                f'Give both username and password (a token) for registry {host}, or neither for anonymous access'
            )
        self.page_size = int(page_size)
        if self.page_size < 1:
            raise ValueError('page_size must be at least 1')
        self.max_pages = int(max_pages)
        self._auth = Authenticator(host, scheme, username=username, password=password)
        self._transport = Transport(
            host,
            timeout=timeout,
            validate_certs=validate_certs,
            ca_path=ca_path,
            user_agent=user_agent,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
            redact=self._auth.redact,
        )

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
                registry = registry[len(candidate) :]
                break
        registry = registry.rstrip('/')
        if not _HOST_RE.match(registry):
            raise ValueError(
                f'Invalid registry {registry!r}: expected host[:port] such as ghcr.io '
                '(optionally prefixed by https:// or http://)'
            )
        return scheme, registry.lower()

    @property
    def request_count(self):
        return self._transport.request_count

    @property
    def request_log(self):
        return self._transport.request_log

    @property
    def _tokens(self):
        """The Bearer token cache, scope -> token (shared with the authenticator)."""
        return self._auth.tokens

    def reset_counter(self):
        self._transport.reset_counter()

    def close(self):
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ---------------------------------------------------------

    def _request(self, method, url, scope, accept=None, max_body=None):
        """Send an authenticated request, answering at most one auth challenge."""
        return self._auth.request(self._transport, method, url, scope, accept=accept, max_body=max_body)

    def _error_detail(self, response):
        return error_detail(response, self._auth.redact)

    def _check_status(self, response, image, reference, what):
        status = response.status
        if status == 403:
            raise AuthError(
                f'Registry {self.host} denied access to {image} (HTTP 403).{self._error_detail(response)} Check that the credentials can read this '
                f'repository (a GitHub token needs read:packages).{ghcr_hint(self.host)}',
                registry=self.host,
                status=403,
            )
        if status == 404:
            if reference is None:
                message = (
                    f'Repository {self.host}/{image} was not found (HTTP 404) while {what}.{self._error_detail(response)} Check the repository and image '
                    'names; a private repository may also look missing without the right credentials.'
                )
            else:
                message = (
                    f'Tag {reference} of image {self.host}/{image} was not found (HTTP 404).{self._error_detail(response)} Check that the tag was pushed for '
                    'this image.'
                )
            raise NotFoundError(message, registry=self.host, image=image, reference=reference)
        if not 200 <= status < 300:
            raise ProtocolError(
                f'Registry {self.host} answered HTTP {status} while {what}.{self._error_detail(response)}',
                registry=self.host,
                status=status,
            )

    # -- public API -------------------------------------------------------

    def _check_name(self, name):
        if not is_valid_name(name):
            raise ValueError(
                f'Invalid repository name {name!r}: use lowercase path components such as rayhu/avatar-mgmt/api'
            )

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
                raise ProtocolError(
                    f'Registry {self.host} returned a tag list for {name} that is not JSON.', registry=self.host
                )
            page = data.get('tags') if isinstance(data, dict) else None
            page = page or []
            if not isinstance(page, list):
                raise ProtocolError(
                    f'Registry {self.host} returned a malformed tag list for {name}.', registry=self.host
                )
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
                    raise ProtocolError(
                        f'Registry {self.host} sent a next-page link to another server ({urllib.parse.urlsplit(next_url).netloc}); not following it.',
                        registry=self.host,
                    )
                if next_url in visited:
                    break
                url = next_url
                continue
            # A registry that never sends Link: ask for the next page with ``last`` while pages
            # come back full (a short page is the last one; a longer one means the registry
            # ignores ``n`` and sent everything).
            if not uses_link and new and len(page) == self.page_size:
                url = '{}{}?{}'.format(
                    self.base_url, base_path, urllib.parse.urlencode({'n': self.page_size, 'last': page[-1]})
                )
                if url in visited:
                    break
                continue
            break
        else:
            raise ProtocolError(
                f'Registry {self.host} kept sending tag pages for {name} beyond {self.max_pages} pages; giving up.',
                registry=self.host,
            )
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
            raise ProtocolError(
                f'Registry {self.host} returned an invalid digest {digest[:80]!r} for {name}:{reference}.',
                registry=self.host,
            )
        return digest
