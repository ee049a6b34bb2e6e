# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures of the integration tests: two real Distribution 2.8 registries in containers.

See ``utils/world.py`` for what runs where and what is seeded.
"""

from __future__ import annotations

import os
import sys

import pytest

# Make `ansible_collections.avatar_mgmt.ops` importable: .collections holds
# ansible_collections/avatar_mgmt/ops -> the repository root.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
COLLECTIONS_PATH = os.path.join(ROOT, '.collections')
if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)

from ansible_collections.avatar_mgmt.ops.tests.integration.utils import docker_registry  # noqa: E402
from ansible_collections.avatar_mgmt.ops.tests.integration.utils import world as registry_world  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line('markers', 'docker: needs a docker engine (skipped when none answers)')


@pytest.fixture(scope='session')
def real_registries(tmp_path_factory):
    """The two registries, seeded; removed (containers, volume, image tags) at the end of the session."""
    reason = docker_registry.unavailable_reason()
    if reason:
        pytest.skip(f'real registry tests need Docker: {reason}')
    world = registry_world.start(str(tmp_path_factory.mktemp('itest-registry')))
    try:
        yield world
    finally:
        registry_world.stop(world)


@pytest.fixture(params=['basic', 'token'])
def target(request, real_registries):
    """Each registry in turn: ``basic`` (htpasswd) and ``token`` (GHCR-like Bearer tokens)."""
    return real_registries.target(request.param)
