# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared pytest setup for the unit tests of avatar_mgmt.ops."""

import os
import sys

import pytest

# Make `ansible_collections.avatar_mgmt.ops` importable: .collections holds
# ansible_collections/avatar_mgmt/ops -> the repository root.
COLLECTIONS_PATH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".collections"))
if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a docker engine (skipped when none answers)")


@pytest.fixture(scope="session")
def restic_template(tmp_path_factory):
    """A restic repository ``restic init`` made once for the session, its key cheap to derive
    (tests/unit/utils/restic_repo.py); tests copy it."""
    from ansible_collections.avatar_mgmt.ops.tests.unit.utils import restic_repo  # pylint: disable=import-outside-toplevel

    repo = restic_repo.make_template(str(tmp_path_factory.mktemp("restic-template")))
    if repo is None:
        pytest.skip("restic is not installed (make unit installs it)")
    return repo
