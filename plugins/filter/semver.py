# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Semantic Versioning 2.0.0 filters: semver_sort, semver_compare,
semver_is_prerelease and semver_channel (documented in the YAML files beside
this one)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _semver


def _text(value, filter_name, what):
    if not isinstance(value, str):
        raise AnsibleFilterError(f'{filter_name}: {what} must be a string, got {type(value).__name__}')
    return str(value)


def semver_sort(tags, reverse=True):
    """SemVer tags of a list, newest first (``reverse=False``: oldest first); other tags dropped."""
    if isinstance(tags, (str, bytes, Mapping)) or not hasattr(tags, '__iter__'):
        raise AnsibleFilterError(f'semver_sort: input must be a list of tags, got {type(tags).__name__}')
    if not isinstance(reverse, bool):
        raise AnsibleFilterError(f'semver_sort: reverse must be a boolean, got {reverse!r}')
    return _semver.sort_tags([str(tag) for tag in tags if isinstance(tag, str)], reverse=reverse)


def semver_compare(a, b):
    """-1, 0 or 1 as version ``a`` has lower, equal or higher precedence than ``b``."""
    try:
        return _semver.compare(
            _text(a, 'semver_compare', 'the first version'), _text(b, 'semver_compare', 'the second version')
        )
    except ValueError as exc:
        raise AnsibleFilterError(f'semver_compare: {exc}')


def semver_is_prerelease(version):
    """True when ``version`` is a pre-release such as v1.2.0-rc.1."""
    try:
        return _semver.is_prerelease(_text(version, 'semver_is_prerelease', 'the version'))
    except ValueError as exc:
        raise AnsibleFilterError(f'semver_is_prerelease: {exc}')


def semver_channel(version):
    """``staging`` for a pre-release, ``latest`` for a release."""
    try:
        return _semver.channel_of(_text(version, 'semver_channel', 'the version'))
    except ValueError as exc:
        raise AnsibleFilterError(f'semver_channel: {exc}')


class FilterModule:
    """SemVer filters."""

    def filters(self):
        return {
            'semver_sort': semver_sort,
            'semver_compare': semver_compare,
            'semver_is_prerelease': semver_is_prerelease,
            'semver_channel': semver_channel,
        }
