# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Resolve a requested release (``latest``, ``staging`` or a version) to one
version and the manifest digest of each image.

Rules (see docs of the release_tag module):

* The request is validated before any network call: ``latest``, ``staging``,
  or a SemVer 2.0.0 version with or without a leading lowercase ``v``
  (``v1.2.0``, ``v1.2.0-rc.1``, ``1.2.0``).  Build metadata (``+...``) is
  refused because ``+`` cannot appear in an OCI tag.
* A version resolves to itself and must be tagged in every image.  The tag is
  looked up first as written, then in the other spelling (``1.2.0`` finds
  ``v1.2.0``, the spelling the upstream release workflow pushes).
* A channel resolves, per image, to the version tag whose manifest digest equals
  the channel tag's digest.  Versions of the channel's kind (releases for
  ``latest``, pre-releases for ``staging``) are tried from the highest down, so
  the usual case costs one HEAD per image besides the channel itself; the other
  kind is tried only when none of its own kind matches.  Where several versions
  share the digest, the highest (of the channel's kind) wins.  All images must
  resolve to the same version.
* Where an image has no channel tag, ``latest`` falls back to the highest
  release and ``staging`` to the highest pre-release present in all images.
"""

from __future__ import annotations

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _semver
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci import (
    NotFoundError,
    is_valid_name,
)

__all__ = [
    'CHANNELS',
    'PrereleaseRefused',
    'Request',
    'ResolutionError',
    'parse_request',
    'resolve_release',
    'validate_inputs',
]

CHANNELS = (_semver.CHANNEL_RELEASE, _semver.CHANNEL_PRERELEASE)

_SHOW_VERSIONS = 5


class ResolutionError(Exception):
    """The registry content does not allow a consistent answer (missing tag, images disagree, ...)."""


class PrereleaseRefused(ResolutionError):
    """The request is, or resolves to, a pre-release and pre-releases are not allowed."""

    def __init__(self, requested, version):
        self.requested = requested
        self.version = version
        how = 'is' if requested == version else f'resolves to {version},'
        super().__init__(
            f'{requested} {how} a pre-release, and pre-releases are not allowed here (allow_prerelease=false)'
        )


class Request:
    """A validated request: ``channel`` (str or None) or ``version`` (Version or None)."""

    __slots__ = ('channel', 'requested', 'version')

    def __init__(self, requested, channel=None, version=None):
        self.requested = requested
        self.channel = channel
        self.version = version

    def candidate_tags(self):
        """Spellings of a requested version to look for, as written first."""
        if self.version is None:
            return []
        other = '' if self.version.prefix == 'v' else 'v'
        return [self.requested, self.version.format(prefix=other)]


def parse_request(tag):
    """Validate the requested tag; return a Request or raise ValueError."""
    if not isinstance(tag, str):
        raise ValueError('tag must be a string: latest, staging or a version such as v1.2.0')  # noqa: TRY004
    if tag in CHANNELS:
        return Request(tag, channel=tag)
    try:
        version = _semver.parse(tag)
    except ValueError as exc:
        raise ValueError(
            'Invalid tag {!r}: use latest, staging or a version such as v1.2.0 or v1.2.0-rc.1 ({})'.format(
                tag if len(tag) <= 64 else tag[:61] + '...', exc
            )
        )
    if version.build:
        raise ValueError(
            'Invalid tag {!r}: build metadata ("+...") cannot appear in an image tag; ask for {} instead'.format(
                tag, version.format().split('+', 1)[0]
            )
        )
    return Request(tag, version=version)


def validate_inputs(repository, images, tag):
    """Validate everything before any network call; return (Request, images without duplicates)."""
    request = parse_request(tag)
    if not isinstance(repository, str) or not is_valid_name(repository):
        raise ValueError(f'Invalid repository {repository!r}: use lowercase path components such as rayhu/avatar-mgmt')
    if not images:
        raise ValueError('images must list at least one image name, such as api')
    unique = []
    for image in images:
        if not isinstance(image, str) or not is_valid_name(f'{repository}/{image}'):
            raise ValueError(f'Invalid image name {image!r}: use a lowercase name such as api or frontend')
        if image not in unique:
            unique.append(image)
    return request, unique


class _Resolver:
    def __init__(self, client, repository, images, request, max_candidates):
        self.max_candidates = max_candidates
        self.client = client
        self.repository = repository
        self.images = images
        self.request = request
        self.registry = client.registry
        self._digests = {}

    def path(self, image):
        return f'{self.repository}/{image}'

    def full(self, image):
        return f'{self.registry}/{self.path(image)}'

    def digest(self, image, tag):
        key = (image, tag)
        if key not in self._digests:
            self._digests[key] = self.client.manifest_digest(self.path(image), tag)
        return self._digests[key]

    def run(self):
        tags = {image: self.client.list_tags(self.path(image)) for image in self.images}
        semver = {}
        for image in self.images:
            semver[image] = {}
            for tag in tags[image]:
                try:
                    semver[image][tag] = _semver.parse(tag)
                except ValueError:
                    pass
        common = set(semver[self.images[0]])
        for image in self.images[1:]:
            common &= set(semver[image])
        versions = _semver.sort_tags(common)

        if self.request.channel is None:
            version, how = self.resolve_version(tags, versions), dict.fromkeys(self.images, 'version')
        else:
            version, how = self.resolve_channel(semver, versions)

        result = {
            'version': version,
            'prerelease': _semver.is_prerelease(version),
            'requested': self.request.requested,
            'images': {},
            'versions': versions,
        }
        if self.request.channel is not None:
            result['channel'] = self.request.channel
        for image in self.images:
            info = self.digest(image, version)
            result['images'][image] = {
                'tag': f'{self.full(image)}:{version}',
                'digest': info.digest,
                'reference': f'{self.full(image)}@{info.digest}',
                'media_type': info.media_type,
                'resolved_by': how[image],
            }
        return result

    def _show(self, versions):
        if not versions:
            return 'none'
        shown = ', '.join(versions[:_SHOW_VERSIONS])
        return shown + (', ...' if len(versions) > _SHOW_VERSIONS else '')

    def resolve_version(self, tags, versions):
        candidates = self.request.candidate_tags()
        for candidate in candidates:
            if all(candidate in tags[image] for image in self.images):
                return candidate
        for image in self.images:
            if not any(candidate in tags[image] for candidate in candidates):
                raise ResolutionError(
                    f'Version {self.request.requested} is not tagged for image {image} ({self.full(image)}). '
                    f'Versions present for all images: {self._show(versions)}. Push the image or ask for another version.'
                )
        raise ResolutionError(
            'Version {} is tagged with different spellings ({}) across the images {}; tag it the same way '
            'in every image.'.format(self.request.requested, ' / '.join(candidates), ', '.join(self.images))
        )

    def resolve_channel(self, semver, versions):
        channel = self.request.channel
        want_pre = channel == _semver.CHANNEL_PRERELEASE
        kind = 'pre-release' if want_pre else 'release'
        found = {}
        how = {}
        for image in self.images:
            try:
                channel_info = self.digest(image, channel)
            except NotFoundError:
                fallback = [v for v in versions if semver[image][v].is_prerelease == want_pre]
                if not fallback:
                    raise ResolutionError(
                        'Image {} has no {} tag and no {} version is tagged in all images ({}); '
                        'ask for an explicit version.'.format(image, channel, kind, ', '.join(self.images))
                    )
                found[image] = fallback[0]
                how[image] = 'highest_%s' % ('prerelease' if want_pre else 'release')
                continue
            ordered = _semver.sort_tags(semver[image])
            candidates = [t for t in ordered if semver[image][t].is_prerelease == want_pre] + [
                t for t in ordered if semver[image][t].is_prerelease != want_pre
            ]
            match = None
            for candidate in candidates[: self.max_candidates]:
                try:
                    info = self.digest(image, candidate)
                except NotFoundError:
                    continue  # listed but its manifest is gone: not a match
                if info.digest == channel_info.digest:
                    match = candidate
                    break
            if match is None:
                searched = (
                    'any version tag'
                    if len(candidates) <= self.max_candidates
                    else f'the {self.max_candidates} highest version tags'
                )
                raise ResolutionError(
                    f'{self.full(image)}:{channel} ({channel_info.digest}) matches {searched} of image {image}; tag that image with its version, or ask '
                    'for an explicit version.'
                )
            found[image] = match
            how[image] = 'channel_digest'
        first = self.images[0]
        for image in self.images[1:]:
            if found[image] != found[first]:
                raise ResolutionError(
                    f'The images disagree on {channel}: image {first} resolves to {found[first]} but image {image} resolves to {found[image]}. Move the '
                    f'{channel} tag of image {image} to the same release, or ask for an explicit version.'
                )
        return found[first], how


def resolve_release(client, repository, images, tag, max_candidates=100, allow_prerelease=True):
    """Resolve ``tag`` for ``images`` of ``repository`` using ``client`` (a RegistryClient).

    Input is validated before any request.  Returns a dict with ``version``,
    ``prerelease``, ``requested``, ``channel`` (only for a channel request),
    ``images`` (per image: ``tag``, ``digest``, ``reference``, ``media_type``,
    ``resolved_by``) and ``versions`` (semver tags present for all images,
    newest first).  ``max_candidates`` bounds how many version tags per image
    are compared with a channel's digest (highest first).  With
    ``allow_prerelease`` false a pre-release is refused (PrereleaseRefused): a
    requested one before any request, one a channel points at after resolution.

    Raises ValueError for invalid input, ResolutionError when the registry
    content gives no consistent answer, and _oci.RegistryError subclasses for
    registry failures.
    """
    request, images = validate_inputs(repository, images, tag)
    if max_candidates < 1:
        raise ValueError('max_candidates must be at least 1')
    if not allow_prerelease and request.version is not None and request.version.is_prerelease:
        raise PrereleaseRefused(request.requested, request.requested)
    result = _Resolver(client, repository, images, request, max_candidates).run()
    if not allow_prerelease and result['prerelease']:
        raise PrereleaseRefused(request.requested, result['version'])
    return result
