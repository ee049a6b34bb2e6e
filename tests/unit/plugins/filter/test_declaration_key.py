# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""declaration_key: stable for equal settings, different for any change, slow to guess a secret from."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.filter.declaration_key import ITERATIONS, FilterModule

KEY = FilterModule().filters()['declaration_key']
SETTINGS = {'domains': {'api': 'api.example.com'}, 'password': 'Adm1n-literal', 'users': [{'password': 'x'}]}


def test_equal_settings_give_the_same_key_whatever_the_key_order():
    reordered = dict(reversed(list(SETTINGS.items())))
    assert KEY(SETTINGS, 'prod-1') == KEY(reordered, 'prod-1')
    assert len(KEY(SETTINGS, 'prod-1')) == 64


@pytest.mark.parametrize(
    'changed',
    [
        dict(SETTINGS, password='Adm1n-literal2'),
        dict(SETTINGS, users=[{'password': 'y'}]),
        dict(SETTINGS, domains={'api': 'api2.example.com'}),
    ],
)
def test_any_change_gives_another_key(changed):
    assert KEY(changed, 'prod-1') != KEY(SETTINGS, 'prod-1')


def test_the_context_salts_it_and_it_is_no_plain_hash():
    assert KEY(SETTINGS, 'prod-1') != KEY(SETTINGS, 'prod-2')
    text = json.dumps(SETTINGS, sort_keys=True, separators=(',', ':'))
    assert KEY(SETTINGS, 'prod-1') != hashlib.sha256(text.encode()).hexdigest()
    assert ITERATIONS >= 100_000
    assert 'Adm1n' not in KEY(SETTINGS, 'prod-1')


def test_data_json_cannot_hold_is_refused_without_showing_it():
    with pytest.raises(AnsibleFilterError) as err:
        KEY({('tuple', 'key'): 'Adm1n-literal'})
    assert 'Adm1n-literal' not in str(err.value)
