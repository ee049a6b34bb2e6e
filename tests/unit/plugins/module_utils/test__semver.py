# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import functools
import itertools

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _semver
from hypothesis import given, settings
from hypothesis import strategies as st

SPEC_ORDER = [
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-alpha.beta',
    '1.0.0-beta',
    '1.0.0-beta.2',
    '1.0.0-beta.11',
    '1.0.0-rc.1',
    '1.0.0',
    '2.0.0',
    '2.1.0',
    '2.1.1',
]


@pytest.mark.parametrize('lower, higher', list(itertools.pairwise(SPEC_ORDER)))
@pytest.mark.parametrize('prefix', ['', 'v'])
def test_spec_section_11_precedence(lower, higher, prefix):
    assert _semver.compare(prefix + lower, prefix + higher) == -1
    assert _semver.compare(prefix + higher, prefix + lower) == 1


@pytest.mark.parametrize('a, b', list(itertools.combinations(SPEC_ORDER, 2)))
def test_spec_order_is_transitive(a, b):
    assert _semver.compare(a, b) == -1


@pytest.mark.parametrize(
    'a, b, expected',
    [
        ('v1.10.0', 'v1.9.0', 1),
        ('v1.9.0', 'v1.10.0', -1),
        ('v1.0.10', 'v1.0.9', 1),
        ('v10.0.0', 'v9.99.99', 1),
        ('v1.2.0', '1.2.0', 0),
        ('v1.2.0+build.1', 'v1.2.0+build.2', 0),
        ('v1.2.0+build.1', 'v1.2.0', 0),
        ('1.0.0-alpha.10', '1.0.0-alpha.9', 1),
        ('1.0.0-alpha.1', '1.0.0-alpha.a', -1),
        ('1.0.0-1', '1.0.0-a', -1),
        ('1.0.0-alpha-1', '1.0.0-alpha', 1),
        ('1.0.0-Beta', '1.0.0-alpha', -1),  # ASCII: uppercase sorts before lowercase
        ('1.0.0-rc.1', '1.0.0-rc.1.0', -1),
    ],
)
def test_compare(a, b, expected):
    assert _semver.compare(a, b) == expected
    assert _semver.compare(_semver.parse(a), _semver.parse(b)) == expected


@pytest.mark.parametrize(
    'text, fields',
    [
        ('v1.2.3', (1, 2, 3, (), (), 'v')),
        ('1.2.3', (1, 2, 3, (), (), '')),
        ('v0.0.0', (0, 0, 0, (), (), 'v')),
        ('v1.2.0-beta.1', (1, 2, 0, ('beta', 1), (), 'v')),
        ('v1.0.0-rc.1+build.5', (1, 0, 0, ('rc', 1), ('build', '5'), 'v')),
        ('1.0.0+001', (1, 0, 0, (), ('001',), '')),
        ('1.0.0-0A.is.legal', (1, 0, 0, ('0A', 'is', 'legal'), (), '')),
        ('1.0.0-x-y-z.--', (1, 0, 0, ('x-y-z', '--'), (), '')),
        ('1.0.0-0', (1, 0, 0, (0,), (), '')),
        ('99999999999999999999.0.0', (99999999999999999999, 0, 0, (), (), '')),
    ],
)
def test_parse_fields(text, fields):
    version = _semver.parse(text)
    assert (version.major, version.minor, version.patch, version.prerelease, version.build, version.prefix) == fields
    assert version.original == text
    assert version.format() == text
    assert _semver.parse(version.format()) == version


@pytest.mark.parametrize(
    'text, reason',
    [
        ('', 'empty'),
        (' ', 'whitespace'),
        (' v1.2.0', 'whitespace'),
        ('v1.2.0 ', 'whitespace'),
        ('v1.2.0\n', 'whitespace'),
        ('V1.2.0', 'lowercase'),
        ('v1.2', 'MAJOR.MINOR.PATCH'),
        ('1', 'MAJOR.MINOR.PATCH'),
        ('1234567', 'MAJOR.MINOR.PATCH'),
        ('20240101', 'MAJOR.MINOR.PATCH'),
        ('1.2.0.0', 'may follow'),
        ('v1.2.0; rm -rf /', 'may follow'),
        ('v01.2.0', 'leading zeros'),
        ('v1.02.0', 'leading zeros'),
        ('v1.2.00', 'leading zeros'),
        ('v1.2.0-01', 'leading zeros'),
        ('v1.2.0-beta.01', 'leading zeros'),
        ('v1.2.0-', 'empty'),
        ('v1.2.0-beta..1', 'empty'),
        ('v1.2.0+', 'empty'),
        ('v1.2.0+a..b', 'empty'),
        ('v1.2.0-beta_1', '[0-9A-Za-z-]'),
        ('v1.2.0+build_1', '[0-9A-Za-z-]'),
        ('vv1.2.0', 'MAJOR.MINOR.PATCH'),
        ('latest', 'MAJOR.MINOR.PATCH'),
        ('sha-3f2a9c1', 'MAJOR.MINOR.PATCH'),
        ('v1.2.0-\u00e9', '[0-9A-Za-z-]'),
        ('\uff11.2.0', 'MAJOR.MINOR.PATCH'),
        ('v' + '1' * 300 + '.0.0', 'longer'),
    ],
)
def test_parse_rejects(text, reason):
    with pytest.raises(ValueError, match='Invalid version') as excinfo:
        _semver.parse(text)
    assert reason in str(excinfo.value)
    assert not _semver.is_valid(text)


@pytest.mark.parametrize('value', [None, 1, 1.2, b'v1.2.0', ['v1.2.0']])
def test_parse_rejects_non_strings(value):
    with pytest.raises(ValueError, match='must be a string'):
        _semver.parse(value)


@pytest.mark.parametrize(
    'text, expected',
    [
        ('v1.2.0', False),
        ('v1.2.0+build', False),
        ('v1.2.0-beta.1', True),
        ('1.0.0-rc.1+b', True),
    ],
)
def test_is_prerelease_and_channel(text, expected):
    assert _semver.is_prerelease(text) is expected
    assert _semver.channel_of(text) == ('staging' if expected else 'latest')


def test_channel_of_rejects_invalid():
    with pytest.raises(ValueError, match='Invalid version'):
        _semver.channel_of('latest')


def test_sort_tags_drops_noise_and_sorts_newest_first():
    tags = [
        'sha-3f2a9c1',
        'main',
        'v1.9.0',
        'buildcache',
        'latest',
        'v1.10.0',
        'staging',
        '20240101',
        '1234567',
        'v1.10.0-rc.1',
        'V2.0.0',
        'v1.10.0',
        'v1.2',
    ]
    assert _semver.sort_tags(tags) == ['v1.10.0', 'v1.10.0-rc.1', 'v1.9.0']
    assert _semver.sort_tags(tags, reverse=False) == ['v1.9.0', 'v1.10.0-rc.1', 'v1.10.0']


def test_sort_tags_spec_order():
    shuffled = list(reversed(SPEC_ORDER))
    assert _semver.sort_tags(shuffled, reverse=False) == SPEC_ORDER


def test_sort_tags_ties_are_deterministic():
    tags = ['v1.0.0+b', '1.0.0', 'v1.0.0', '1.0.0+a']
    results = {tuple(_semver.sort_tags(perm)) for perm in itertools.permutations(tags)}
    assert len(results) == 1


def test_version_is_immutable_and_hashable():
    version = _semver.parse('v1.2.3')
    with pytest.raises(AttributeError):
        version.major = 2
    assert {version, _semver.parse('v1.2.3')} == {version}
    assert version != _semver.parse('1.2.3')  # identity keeps the prefix
    assert _semver.compare(version, '1.2.3') == 0
    assert repr(version) == "Version('v1.2.3')"


def test_format_prefix_override():
    assert _semver.parse('1.2.3-rc.1').format(prefix='v') == 'v1.2.3-rc.1'
    assert _semver.parse('v1.2.3').format(prefix='') == '1.2.3'


# -- property tests -----------------------------------------------------------

_num = st.integers(min_value=0, max_value=10**6)
_alnum_ident = st.from_regex(r'\A[0-9]*[A-Za-z-][0-9A-Za-z-]{0,6}\Z')
_pre_ident = st.one_of(_num, _alnum_ident)
_build_ident = st.from_regex(r'\A[0-9A-Za-z-]{1,6}\Z')

versions = st.builds(
    _semver.Version,
    _num,
    _num,
    _num,
    st.lists(_pre_ident, max_size=4).map(tuple),
    st.lists(_build_ident, max_size=2).map(tuple),
    st.sampled_from(['', 'v']),
)


@settings(max_examples=300, deadline=None, database=None)
@given(versions)
def test_property_round_trip(version):
    text = version.format()
    parsed = _semver.parse(text)
    assert parsed == version
    assert parsed.format() == text
    assert _semver.compare(parsed, version) == 0


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(versions, max_size=12))
def test_property_sort_is_consistent_with_compare(items):
    tags = [v.format() for v in items]
    ordered = _semver.sort_tags(tags, reverse=False)
    assert len(ordered) == len(set(tags))
    for a, b in itertools.pairwise(ordered):
        assert _semver.compare(a, b) <= 0
        assert _semver.sort_key(a) < _semver.sort_key(b)  # strict: total order on distinct tags
    assert _semver.sort_tags(tags) == list(reversed(ordered))
    # The same order as a comparison sort driven by compare() (ties by sort_key).
    by_compare = sorted(
        set(tags),
        key=functools.cmp_to_key(
            lambda a, b: (
                _semver.compare(a, b)
                or (_semver.sort_key(a) > _semver.sort_key(b)) - (_semver.sort_key(a) < _semver.sort_key(b))
            )
        ),
    )
    assert by_compare == ordered


@settings(max_examples=200, deadline=None, database=None)
@given(versions, versions, versions)
def test_property_compare_is_a_total_preorder(x, y, z):
    # Not named a, b, c: pylint's arguments-out-of-order would flag compare(b, a),
    # which is the point of the antisymmetry check.
    assert _semver.compare(x, y) == -_semver.compare(y, x)
    assert _semver.compare(x, x) == 0
    if _semver.compare(x, y) <= 0 and _semver.compare(y, z) <= 0:
        assert _semver.compare(x, z) <= 0


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=20))
def test_property_parse_never_crashes(text):
    try:
        version = _semver.parse(text)
    except ValueError:
        return
    assert version.format() == text
