# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of plugins/module_utils/_oci_errors.py: the exception hierarchy and registry error bodies."""

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci, _oci_errors
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import FakeRegistry
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.oci_client import NAME, PASSWORD, client_for, tags_repo


class _Body:
    def __init__(self, body):
        self.body = body


@pytest.mark.parametrize(
    'body, detail',
    [
        (b'{"errors":[{"code":"DENIED","message":"no"}]}', ' Registry said: DENIED: no.'),
        (
            b'{"errors":[{"code":"A","message":"1"},{"code":"B","message":"2"},{"code":"C"},{"code":"D"}]}',
            ' Registry said: A: 1; B: 2; C: .',
        ),
        (b'{"errors":[{"message":"m"}]}', ' Registry said: ?: m.'),
        (b'{"errors":[]}', ''),
        (b'{"errors":"x"}', ''),
        (b'<html>', ''),
        (b'\xff\xfe', ''),
        (b'', ''),
        (None, ''),
    ],
)
def test_error_detail(body, detail):
    assert _oci_errors.error_detail(_Body(body), str) == detail


def test_hierarchy_and_attributes():
    assert issubclass(_oci_errors.TLSError, _oci_errors.RegistryConnectionError)
    for cls in (
        _oci_errors.AuthError,
        _oci_errors.NotFoundError,
        _oci_errors.ProtocolError,
        _oci_errors.RegistryUnavailableError,
        _oci_errors.RegistryConnectionError,
    ):
        assert issubclass(cls, _oci_errors.RegistryError)
    err = _oci_errors.NotFoundError('gone', registry='ghcr.io', image='a/b', reference='v1')
    assert (str(err), err.registry, err.status, err.image, err.reference) == ('gone', 'ghcr.io', 404, 'a/b', 'v1')


def test_ghcr_hint_only_for_ghcr():
    assert 'read:packages' in _oci_errors.ghcr_hint('ghcr.io')
    assert _oci_errors.ghcr_hint('registry.example.com') == ''


# -- secrets -------------------------------------------------------------------


def test_error_body_echoing_password_is_redacted():
    with FakeRegistry(tags_repo(1)) as reg:
        body = (f'{{"errors":[{{"code":"DENIED","message":"bad token {PASSWORD}"}}]}}').encode()
        reg.inject(r'/tags/list', 403, {'Content-Type': 'application/json'}, body)
        client = client_for(reg, username='me', password=PASSWORD)
        with pytest.raises(_oci.AuthError) as excinfo:
            client.list_tags(NAME)
    assert PASSWORD not in str(excinfo.value)
    assert '********' in str(excinfo.value)
