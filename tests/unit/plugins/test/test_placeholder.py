# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.avatar_mgmt.ops.plugins.test.placeholder import TestModule as PlaceholderTests


def test_the_test_is_registered():
    placeholder = PlaceholderTests().tests()['placeholder']
    assert placeholder('CHANGE_ME')
    assert not placeholder('s3cret')
