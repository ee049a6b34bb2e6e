# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers shared by the unit tests of the OCI client (``test__oci*.py``)."""

from __future__ import annotations

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import Manifest

NAME = 'rayhu/avatar-mgmt/api'
PASSWORD = 'ghp_s3cretTokenValue'


def tags_repo(count, prefix='v1.0.'):
    return {NAME: {f'{prefix}{i}': Manifest(i) for i in range(count)}}


def client_for(reg, **kwargs):
    """A client of ``reg`` that records its sleeps in ``client.sleeps`` instead of sleeping."""
    sleeps = []
    kwargs.setdefault('sleep', sleeps.append)
    kwargs.setdefault('timeout', 5)
    client = _oci.RegistryClient(reg.url, **kwargs)
    client.sleeps = sleeps
    return client
