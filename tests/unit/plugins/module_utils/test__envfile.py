# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _envfile

SECRET = 'Kx$Abc123#tail \'q\' "dq" sp'


@pytest.mark.parametrize(
    'value, written',
    [
        (SECRET, '"Kx$$Abc123#tail \'q\' \\"dq\\" sp"'),
        ('back\\slash', '"back\\\\slash"'),
        ('\\n is two bytes', '"\\\\n is two bytes"'),
        ('${HOME} $$', '"$${HOME} $$$$"'),
        ('{{ not a template }}', '"{{ not a template }}"'),
        (' lead and trail ', '" lead and trail "'),
        ('tab\there', '"tab\there"'),
        ('', '""'),
        (None, '""'),
        (True, '"true"'),
        (False, '"false"'),
        (5432, '"5432"'),
        ('üñí€', '"üñí€"'),
    ],
)
def test_quote(value, written):
    assert _envfile.quote(value) == written


@pytest.mark.parametrize('char, word', [('\n', 'a newline'), ('\r', 'a carriage return'), ('\x00', 'a NUL byte')])
def test_quote_refuses_without_the_value(char, word):
    with pytest.raises(ValueError, match=word) as err:
        _envfile.quote(f'top{char}secret')
    assert 'secret' not in str(err.value)


def test_problems_name_variable_and_key_never_the_value():
    env = {'GOOD': SECRET, 'JWT_SECRET': 'line1\nINJECTED=1', 'CR': 'a\rb', 'NUL': 'a\x00b', 'PORT': 3000}
    found = _envfile.problems(env, 'compose_deploy_api_env')
    assert len(found) == 3
    assert found[0].startswith('compose_deploy_api_env.CR holds a carriage return')
    assert found[1].startswith('compose_deploy_api_env.JWT_SECRET holds a newline')
    assert found[2].startswith('compose_deploy_api_env.NUL holds a NUL byte')
    assert all('INJECTED' not in s and 'line1' not in s for s in found)
    assert all('encode the value' in s for s in found)


@pytest.mark.parametrize(
    'env, expected',
    [
        ({}, []),
        (None, []),
        ({'9LIVES': 'x'}, ["e has the key '9LIVES', which is not a variable name"]),
        ({'A-B': 'x'}, ["e has the key 'A-B', which is not a variable name"]),
        ({'LIST': ['a']}, ['e.LIST is a list: give a string']),
        ({'MAP': {'a': 1}}, ['e.MAP is a dict: give a string']),
        ('KEY=value', ['e must be a mapping of variable names to values, got a str']),
    ],
)
def test_problems_shapes(env, expected):
    found = _envfile.problems(env, 'e')
    assert len(found) == len(expected)
    for sentence, start in zip(found, expected, strict=True):
        assert sentence.startswith(start)


def render(env):
    return '# header\n\n' + ''.join(f'{k}={_envfile.quote(v)}\n' for k, v in sorted(env.items()))


def test_changed_keys_names_added_removed_and_changed():
    old = render({'A': '1', 'B': SECRET, 'C': 'x'})
    new = render({'A': '1', 'B': SECRET + '!', 'D': 'y'})
    assert _envfile.changed_keys(old, new) == ['B', 'C', 'D']
    assert _envfile.changed_keys(old, old) == []
    assert _envfile.changed_keys('', new) == ['A', 'B', 'D']
    assert _envfile.changed_keys(None, '') == []


def test_changed_keys_sees_a_format_change():
    """An unquoted file from an older version and the quoted one differ for Compose: every key counts."""
    assert _envfile.changed_keys('A=1\nB=two\n', render({'A': '1', 'B': 'two'})) == ['A', 'B']


def test_comments_and_blank_lines_are_not_keys():
    assert _envfile.keys_of('# A=1\n\nB="2"\n  C=3\n') == ['B']
