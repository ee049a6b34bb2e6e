# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Semantic Versioning 2.0.0 parsing and precedence for release tags.

Release tags of avatar-mgmt look like ``v1.2.0`` or ``v1.2.0-beta.1``.  This
module parses them strictly by the grammar of https://semver.org/spec/v2.0.0.html
with one extension: an optional leading lowercase ``v``.

Decisions:

* Only a lowercase ``v`` prefix is accepted.  ``V1.2.0`` is rejected: the
  upstream release workflow only produces lowercase tags and OCI tags are case
  sensitive, so an uppercase tag would never match what was pushed.
* Build metadata (``+...``) is parsed and kept but ignored for precedence, as
  section 10 of the spec requires.  ``compare()`` therefore returns 0 for two
  versions that differ only in build metadata or in the ``v`` prefix.
  ``sort_key()`` / ``sort_tags()`` add tie-breakers (build identifiers, then the
  original string) so that sorting is a total, deterministic order.

Nothing here imports from AnsibleModule; errors are ValueError.
"""

from __future__ import annotations

import re

__all__ = [
    'CHANNEL_PRERELEASE',
    'CHANNEL_RELEASE',
    'Version',
    'channel_of',
    'compare',
    'is_prerelease',
    'is_valid',
    'parse',
    'sort_key',
    'sort_tags',
]

CHANNEL_RELEASE = 'latest'
CHANNEL_PRERELEASE = 'staging'

# Longest input considered; OCI tags are at most 128 characters anyway.
_MAX_LENGTH = 256

_NUM = r'(?:0|[1-9][0-9]*)'
_PRE_IDENT = r'(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)'
_BUILD_IDENT = r'[0-9A-Za-z-]+'

# re.ASCII: \d and friends are not used, but keep the intent explicit.  \Z
# (not $) so that a trailing newline is rejected.
_SEMVER_RE = re.compile(
    r'(?P<prefix>v?)'
    r'(?P<major>' + _NUM + r')\.(?P<minor>' + _NUM + r')\.(?P<patch>' + _NUM + r')'
    r'(?:-(?P<prerelease>' + _PRE_IDENT + r'(?:\.' + _PRE_IDENT + r')*))?'
    r'(?:\+(?P<build>' + _BUILD_IDENT + r'(?:\.' + _BUILD_IDENT + r')*))?'
    r'\Z',
    re.ASCII,
)

_CORE_RE = re.compile(r'v?[0-9]+\.[0-9]+\.[0-9]+', re.ASCII)


def _explain(text):
    """Return a short reason why ``text`` is not a valid version."""
    if text == '':
        return 'it is empty'
    if text != text.strip():
        return 'it has leading or trailing whitespace'
    if text[:1] == 'V':
        return 'only a lowercase "v" prefix is allowed'
    if not _CORE_RE.match(text):
        return 'it does not start with MAJOR.MINOR.PATCH (three dot-separated numbers, optional "v" prefix)'
    core = re.match(r'v?([0-9]+)\.([0-9]+)\.([0-9]+)', text).groups()
    if any(len(part) > 1 and part.startswith('0') for part in core):
        return 'numeric parts must not have leading zeros'
    rest = text[_CORE_RE.match(text).end() :]
    if rest and rest[0] not in '-+':
        return 'only "-PRERELEASE" and "+BUILD" may follow MAJOR.MINOR.PATCH'
    pre, _sep, build = rest.partition('+')
    if pre.startswith('-'):
        for ident in pre[1:].split('.'):
            if not ident:
                return 'a pre-release identifier is empty'
            if not re.match(r'[0-9A-Za-z-]+\Z', ident, re.ASCII):
                return 'pre-release identifiers may only contain [0-9A-Za-z-]'
            if ident.isdigit() and len(ident) > 1 and ident.startswith('0'):
                return 'numeric pre-release identifiers must not have leading zeros'
    if _sep:
        for ident in build.split('.'):
            if not ident:
                return 'a build metadata identifier is empty'
            if not re.match(r'[0-9A-Za-z-]+\Z', ident, re.ASCII):
                return 'build metadata identifiers may only contain [0-9A-Za-z-]'
    return 'it does not follow the Semantic Versioning 2.0.0 grammar'


class Version:
    """A parsed semantic version (immutable).

    ``major``, ``minor``, ``patch`` are ints; ``prerelease`` is a tuple of
    identifiers where numeric identifiers are ints and the others str;
    ``build`` is a tuple of str; ``prefix`` is ``'v'`` or ``''``; ``original``
    is the string that was parsed.
    """

    __slots__ = ('build', 'major', 'minor', 'original', 'patch', 'prefix', 'prerelease')

    def __init__(self, major, minor, patch, prerelease=(), build=(), prefix='', original=None):
        object.__setattr__(self, 'major', int(major))
        object.__setattr__(self, 'minor', int(minor))
        object.__setattr__(self, 'patch', int(patch))
        object.__setattr__(self, 'prerelease', tuple(prerelease))
        object.__setattr__(self, 'build', tuple(build))
        if prefix not in ('', 'v'):
            raise ValueError(f'Version prefix must be "v" or empty, got {prefix!r}')
        object.__setattr__(self, 'prefix', prefix)
        object.__setattr__(self, 'original', original if original is not None else self.format())

    def __setattr__(self, name, value):
        raise AttributeError('Version objects are immutable')

    @property
    def is_prerelease(self):
        return bool(self.prerelease)

    @property
    def channel(self):
        return CHANNEL_PRERELEASE if self.prerelease else CHANNEL_RELEASE

    def format(self, prefix=None):
        """Return the canonical string; ``parse(v.format()) == v`` (identity, not just precedence).

        ``prefix`` overrides the parsed prefix (``'v'`` or ``''``).
        """
        text = f'{self.prefix if prefix is None else prefix}{self.major}.{self.minor}.{self.patch}'
        if self.prerelease:
            text += '-' + '.'.join(str(ident) for ident in self.prerelease)
        if self.build:
            text += '+' + '.'.join(self.build)
        return text

    def __str__(self):
        return self.format()

    def __repr__(self):
        return f'Version({self.format()!r})'

    def precedence_key(self):
        """Key whose ordering is SemVer precedence (spec section 11)."""
        # A release ranks above all its pre-releases: (1,) > (0, ...).
        if not self.prerelease:
            pre = (1,)
        else:
            # Numeric identifiers rank below alphanumeric ones (11.4.3);
            # ints compare numerically, strs in ASCII order.
            pre = (0,) + tuple((0, ident, '') if isinstance(ident, int) else (1, 0, ident) for ident in self.prerelease)
        return (self.major, self.minor, self.patch, pre)

    def identity(self):
        """Everything that distinguishes two versions (prefix included)."""
        return (self.major, self.minor, self.patch, self.prerelease, self.build, self.prefix)

    def __eq__(self, other):
        if not isinstance(other, Version):
            return NotImplemented
        return self.identity() == other.identity()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash(self.identity())


def parse(text):
    """Parse ``text`` into a Version; raise ValueError naming the problem."""
    if not isinstance(text, str):
        # ValueError, not TypeError: callers handle one exception type for bad input.
        raise ValueError(f'A version must be a string, got {type(text).__name__}')  # noqa: TRY004
    shown = text if len(text) <= 64 else text[:61] + '...'
    if len(text) > _MAX_LENGTH:
        raise ValueError(f'Invalid version {shown!r}: it is longer than {_MAX_LENGTH} characters')
    match = _SEMVER_RE.match(text)
    if not match:
        raise ValueError(
            f'Invalid version {shown!r}: {_explain(text)}. Expected SemVer 2.0.0 such as v1.2.0 or v1.2.0-beta.1'
        )
    prerelease = ()
    if match.group('prerelease'):
        prerelease = tuple(int(ident) if ident.isdigit() else ident for ident in match.group('prerelease').split('.'))
    build = tuple(match.group('build').split('.')) if match.group('build') else ()
    return Version(
        match.group('major'),
        match.group('minor'),
        match.group('patch'),
        prerelease,
        build,
        match.group('prefix'),
        original=text,
    )


def is_valid(text):
    """True when ``text`` parses as a version."""
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _coerce(value):
    return value if isinstance(value, Version) else parse(value)


def compare(a, b):
    """Compare precedence of two versions (str or Version): -1, 0 or 1.

    Build metadata and the ``v`` prefix do not count.
    """
    key_a = _coerce(a).precedence_key()
    key_b = _coerce(b).precedence_key()
    return (key_a > key_b) - (key_a < key_b)


def is_prerelease(value):
    """True for a pre-release such as ``v1.2.0-rc.1``; ValueError if not a version."""
    return _coerce(value).is_prerelease


def channel_of(value):
    """The channel tag a version moves: ``staging`` for a pre-release, ``latest`` for a release."""
    return _coerce(value).channel


def sort_key(value):
    """Total-order key consistent with compare().

    Versions of equal precedence are ordered by build metadata, then by the
    original string, so that sorting is deterministic whatever the input order.
    """
    version = _coerce(value)
    build = tuple((0, int(ident), '') if ident.isdigit() else (1, 0, ident) for ident in version.build)
    return (version.precedence_key(), build, version.original)


def sort_tags(tags, reverse=True):
    """Return the semver tags of ``tags``, newest first (``reverse=False``: oldest first).

    Tags that are not versions (``latest``, ``staging``, ``main``,
    ``sha-3f2a9c1``, ``20240101``, ...) are dropped; duplicates are removed.
    """
    parsed = {}
    for tag in tags:
        if not isinstance(tag, str) or tag in parsed:
            continue
        try:
            parsed[tag] = parse(tag)
        except ValueError:
            continue
    return sorted(parsed, key=lambda tag: sort_key(parsed[tag]), reverse=bool(reverse))
