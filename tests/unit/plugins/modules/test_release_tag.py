# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.release_tag module glue (exit_json / fail_json patched to raise)."""

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci, _oci_transport
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_tag
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import (
    FakeRegistry,
    Manifest,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson

REPO = 'rayhu/avatar-mgmt'
PASSWORD = 'ghp_moduleSecretToken'


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)
    # Never wait in retries.
    original_init = _oci.RegistryClient.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault('sleep', lambda _s: None)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(_oci.RegistryClient, '__init__', init)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError('no request may be sent')

    monkeypatch.setattr(_oci_transport.Transport, 'send_once', refuse)


def run(args, expect):
    return module_harness.run_module(release_tag, args, expect)


def repos():
    result = {}
    for image in ('api', 'frontend'):
        tags = {v: Manifest(image + v) for v in ('v1.0.0', 'v1.1.0', 'v1.2.0-rc.1')}
        tags['latest'] = tags['v1.1.0']
        tags['staging'] = tags['v1.2.0-rc.1']
        tags['sha-3f2a9c1'] = Manifest(image + 'sha')
        result[f'{REPO}/{image}'] = tags
    return result


@pytest.fixture(scope='module')
def registry():
    with FakeRegistry(repos(), auth='bearer', username='me', password=PASSWORD) as reg:
        yield reg


@pytest.mark.parametrize('check_mode', [False, True])
@pytest.mark.parametrize(
    'tag, version, prerelease',
    [
        ('latest', 'v1.1.0', False),
        ('staging', 'v1.2.0-rc.1', True),
        ('v1.0.0', 'v1.0.0', False),
        ('1.0.0', 'v1.0.0', False),
    ],
)
def test_resolves(registry, tag, version, prerelease, check_mode):
    result = run({'registry': registry.url, 'tag': tag, '_ansible_check_mode': check_mode}, ExitJson)
    assert result['changed'] is False
    assert result['version'] == version
    assert result['prerelease'] is prerelease
    assert result['requested'] == tag
    assert result['versions'] == ['v1.2.0-rc.1', 'v1.1.0', 'v1.0.0']
    assert sorted(result['images']) == ['api', 'frontend']
    api = result['images']['api']
    assert api['tag'] == f'{registry.host}/{REPO}/api:{version}'
    assert api['reference'] == '{}/{}/api@{}'.format(registry.host, REPO, api['digest'])
    assert ('channel' in result) is (tag in ('latest', 'staging'))


def test_credentials_and_custom_images(registry):
    result = run(
        {'registry': registry.url, 'tag': 'latest', 'images': ['api'], 'username': 'me', 'password': PASSWORD}, ExitJson
    )
    assert list(result['images']) == ['api']
    assert PASSWORD not in repr(result)


@pytest.mark.parametrize(
    'args, fragment',
    [
        ({'tag': 'V1.2.0'}, 'lowercase'),
        ({'tag': 'v1.2'}, 'Invalid tag'),
        ({'tag': 'v1.2.0; rm -rf /'}, 'Invalid tag'),
        ({'tag': 'production'}, 'Invalid tag'),
        ({'tag': 'v1.2.0+b1'}, 'build metadata'),
        ({'tag': 'latest', 'images': []}, 'at least one image'),
        ({'tag': 'latest', 'images': ['Api']}, 'Invalid image name'),
        ({'tag': 'latest', 'repository': 'rayhu//x'}, 'Invalid repository'),
        ({'tag': 'latest', 'registry': 'ghcr.io/evil path'}, 'Invalid registry'),
        ({'tag': 'latest', 'timeout': 0}, 'timeout'),
        ({'tag': 'latest', 'username': 'me'}, 'parameters are required together'),
    ],
)
def test_invalid_input_fails_before_any_request(no_network, args, fragment):
    result = run(args, FailJson)
    assert fragment in result['msg']
    assert result.get('changed', False) is False


def test_missing_version_fails_naming_image(registry):
    result = run({'registry': registry.url, 'tag': 'v9.9.9'}, FailJson)
    assert 'v9.9.9 is not tagged for image api' in result['msg']


def test_wrong_password_fails_without_leaking_it(registry):
    result = run({'registry': registry.url, 'tag': 'latest', 'username': 'me', 'password': 'wrong-pass-42'}, FailJson)
    assert 'refused the credentials' in result['msg']
    assert 'wrong-pass-42' not in result['msg']


def test_unreachable_registry_fails_clearly():
    with FakeRegistry({}) as reg:
        url = reg.url
    result = run({'registry': url, 'tag': 'latest', 'timeout': 2}, FailJson)
    assert 'Cannot reach' in result['msg']


def test_documentation_matches_argument_spec(monkeypatch):
    captured = module_harness.module_kwargs(monkeypatch, release_tag)
    spec = captured['argument_spec']
    assert captured['supports_check_mode'] is True
    module_harness.assert_documented_options(release_tag, spec)
    assert spec['password']['no_log'] is True
    module_harness.assert_documented_returns(release_tag)


@pytest.mark.parametrize('tag, version', [('staging', 'v1.2.0-rc.1'), ('v1.2.0-rc.1', 'v1.2.0-rc.1')])
def test_prerelease_refused_names_it(registry, tag, version):
    result = run({'registry': registry.url, 'tag': tag, 'allow_prerelease': False}, FailJson)
    assert result['refused_prerelease'] == version
    assert 'pre-releases are not allowed here (allow_prerelease=false)' in result['msg']
    assert 'version' not in result


def test_release_passes_when_prereleases_are_refused(registry):
    result = run({'registry': registry.url, 'tag': 'latest', 'allow_prerelease': False}, ExitJson)
    assert result['version'] == 'v1.1.0'
