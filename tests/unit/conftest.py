# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared pytest setup for the unit tests of avatar_mgmt.ops."""

import os
import sys

# Make `ansible_collections.avatar_mgmt.ops` importable: .collections holds
# ansible_collections/avatar_mgmt/ops -> the repository root.
COLLECTIONS_PATH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".collections"))
if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a docker engine (skipped when none answers)")
