# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.filter import envfile

FILTERS = envfile.FilterModule().filters()


def test_filters_are_registered():
    assert sorted(FILTERS) == ['env_changed_keys', 'env_problems', 'env_quote']


def test_env_quote():
    assert FILTERS['env_quote']('a$b"c\\d') == '"a$$b\\"c\\\\d"'


def test_env_quote_error_names_the_filter_not_the_value():
    with pytest.raises(AnsibleFilterError, match=r'^env_quote: the value holds a newline') as err:
        FILTERS['env_quote']('hunter2\nX=1')
    assert 'hunter2' not in str(err.value)


def test_env_problems_default_name():
    assert FILTERS['env_problems']({'K': 'a\nb'})[0].startswith('env.K holds a newline')
    assert FILTERS['env_problems']({'K': 'a\nb'}, 'my_env')[0].startswith('my_env.K holds a newline')


def test_env_changed_keys_new_first():
    assert FILTERS['env_changed_keys']('A="2"\n', 'A="1"\nB="x"\n') == ['A', 'B']
    assert FILTERS['env_changed_keys']('A="1"\n') == ['A']


@pytest.mark.parametrize('name', sorted(FILTERS))
def test_sidecar_documentation(name):
    path = pathlib.Path(envfile.__file__).with_name(name + '.yml')
    doc = yaml.safe_load(path.read_text())
    assert doc['DOCUMENTATION']['name'] == name
    assert '_input' in doc['DOCUMENTATION']['options']
    assert '_value' in doc['RETURN']
    assert yaml.safe_load(doc['EXAMPLES'])
