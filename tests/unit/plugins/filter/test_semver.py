# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.filter import semver

FILTERS = semver.FilterModule().filters()
TAGS = ['latest', 'v1.9.0', 'staging', 'v1.10.0', 'sha-3f2a9c1', 'v1.10.0-rc.1', 'main', '20240101', 'V2.0.0']


def test_filters_are_registered():
    assert sorted(FILTERS) == ['semver_channel', 'semver_compare', 'semver_is_prerelease', 'semver_sort']


@pytest.mark.parametrize(
    'reverse, expected',
    [
        (True, ['v1.10.0', 'v1.10.0-rc.1', 'v1.9.0']),
        (False, ['v1.9.0', 'v1.10.0-rc.1', 'v1.10.0']),
    ],
)
def test_semver_sort(reverse, expected):
    assert FILTERS['semver_sort'](TAGS, reverse=reverse) == expected


def test_semver_sort_default_newest_first():
    assert FILTERS['semver_sort'](TAGS)[0] == 'v1.10.0'
    assert FILTERS['semver_sort']([]) == []
    assert FILTERS['semver_sort'](('v1.0.0', 3, None)) == ['v1.0.0']


@pytest.mark.parametrize(
    'value, reverse, fragment',
    [
        ('v1.0.0', True, 'input must be a list'),
        ({'v1.0.0': 1}, True, 'input must be a list'),
        (5, True, 'input must be a list'),
        (['v1.0.0'], 'yes', 'reverse must be a boolean'),
    ],
)
def test_semver_sort_errors(value, reverse, fragment):
    with pytest.raises(AnsibleFilterError, match='semver_sort: ' + fragment):
        FILTERS['semver_sort'](value, reverse=reverse)


@pytest.mark.parametrize(
    'a, b, expected',
    [
        ('v1.9.0', 'v1.10.0', -1),
        ('v1.10.0', 'v1.9.0', 1),
        ('v1.0.0', '1.0.0', 0),
        ('v1.0.0-rc.1', 'v1.0.0', -1),
        ('1.0.0-beta.11', '1.0.0-beta.2', 1),
    ],
)
def test_semver_compare(a, b, expected):
    assert FILTERS['semver_compare'](a, b) == expected


@pytest.mark.parametrize('a, b', [('latest', 'v1.0.0'), ('v1.0.0', 'V1.0.0'), (None, 'v1.0.0'), ('v1.0.0', 1)])
def test_semver_compare_errors(a, b):
    with pytest.raises(AnsibleFilterError, match=r'^semver_compare: '):
        FILTERS['semver_compare'](a, b)


@pytest.mark.parametrize(
    'value, prerelease, channel',
    [
        ('v1.2.0', False, 'latest'),
        ('v1.2.0-beta.1', True, 'staging'),
        ('1.0.0-rc.1+build', True, 'staging'),
    ],
)
def test_prerelease_and_channel(value, prerelease, channel):
    assert FILTERS['semver_is_prerelease'](value) is prerelease
    assert FILTERS['semver_channel'](value) == channel


@pytest.mark.parametrize('name', ['semver_is_prerelease', 'semver_channel'])
@pytest.mark.parametrize('value', ['latest', 'v1.2', '', None])
def test_single_value_errors(name, value):
    with pytest.raises(AnsibleFilterError, match=f'^{name}: '):
        FILTERS[name](value)


@pytest.mark.parametrize('name', sorted(FILTERS))
def test_sidecar_documentation(name):
    path = pathlib.Path(semver.__file__).with_name(name + '.yml')
    doc = yaml.safe_load(path.read_text())
    assert doc['DOCUMENTATION']['name'] == name
    assert '_input' in doc['DOCUMENTATION']['options']
    assert '_value' in doc['RETURN']
    assert yaml.safe_load(doc['EXAMPLES'])
