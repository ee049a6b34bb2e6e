# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The placeholder test (documented in placeholder.yml beside this file)."""

from __future__ import annotations

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secrets import is_placeholder


class TestModule:
    """Jinja tests of avatar_mgmt.ops."""

    def tests(self):
        return {'placeholder': is_placeholder}
