# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secrets import is_placeholder


@pytest.mark.parametrize(
    'value',
    [
        None,
        '',
        '   ',
        'CHANGE_ME',
        'CHANGEME',
        'CHANGE_ME_TOKEN',
        'changeme',
        'REPLACE_ME',
        '<ghcr token>',
        'your_token',
        'TODO',
        'TODO: fill',
        'xxx',
        'xxxxxx',
        'CHANGE_ME\n',
    ],
)
def test_placeholders(value):
    assert is_placeholder(value)


@pytest.mark.parametrize(
    'value', ['ghp_0123456789abcdef', 'Kx$Abc123#tail', 'x', 'xx', 'change-me-not', 'a<b>', 0, 12345]
)
def test_real_values(value):
    assert not is_placeholder(value)
