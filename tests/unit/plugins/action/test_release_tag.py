# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the release_tag action plugin: it resolves in the worker, as the module does.

The registry is a real HTTP server in the test (FakeRegistry, Bearer auth); no module is executed:
``_execute_module`` fails the test if the plugin calls it.
"""

from __future__ import annotations

import os
from unittest.mock import MagicMock

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.action.release_tag import ActionModule
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_tag
from ansible_collections.avatar_mgmt.ops.tests.unit.plugins.modules.test_release_tag import repos
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import FakeRegistry

PASSWORD = 'ghp_actionSecretToken'


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    original_init = _oci.RegistryClient.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault('sleep', lambda _s: None)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(_oci.RegistryClient, '__init__', init)


@pytest.fixture(scope='module')
def registry():
    with FakeRegistry(repos(), auth='bearer', username='me', password=PASSWORD) as reg:
        yield reg


def plugin_run(args, check_mode=False, environment=None, transport='local', module=None):
    task = MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = check_mode
    task.action = 'avatar_mgmt.ops.release_tag'
    task.environment = environment
    templar = MagicMock()
    templar.template = lambda value: value
    connection = MagicMock()
    connection.transport = transport
    action = ActionModule(task, connection, MagicMock(), MagicMock(), templar, MagicMock())

    def no_module(*_args, **_kwargs):
        raise AssertionError('release_tag resolves in the worker: no module run')

    action._execute_module = module or no_module
    return action.run(task_vars={})


def module_run(args, monkeypatch):
    module_harness.patch_exits(monkeypatch)
    return module_harness.run_module(release_tag, args, (module_harness.ExitJson, module_harness.FailJson))


@pytest.mark.parametrize('check_mode', [False, True])
@pytest.mark.parametrize('tag', ['latest', 'staging', 'v1.0.0', '1.0.0'])
def test_the_plugin_answers_as_the_module_does(registry, monkeypatch, tag, check_mode):
    args = {'registry': registry.url, 'tag': tag, 'username': 'me', 'password': PASSWORD}
    got = plugin_run(dict(args), check_mode)
    want = module_run(dict(args, _ansible_check_mode=check_mode), monkeypatch)
    assert not got.get('failed')
    for key in ('changed', 'version', 'prerelease', 'requested', 'images', 'versions'):
        assert got[key] == want[key]
    assert PASSWORD not in repr(got)


@pytest.mark.parametrize(
    'args, fragment',
    [
        ({'tag': 'V1.2.0'}, 'lowercase'),
        ({'tag': 'v9.9.9'}, 'not tagged'),
        ({}, 'missing required arguments: tag'),
        ({'tag': 'latest', 'username': 'me'}, 'required together'),
        ({'tag': 'latest', 'timeout': 'soon'}, 'timeout'),
        ({'tag': 'latest', 'color': 'red'}, 'color'),
    ],
)
def test_bad_input_and_unknown_versions_fail_naming_the_problem(registry, args, fragment):
    result = plugin_run(dict({'registry': registry.url}, **args))
    assert result['failed'] is True
    assert result['changed'] is False
    assert fragment in result['msg']


def test_a_refused_pre_release_names_it_and_a_wrong_password_never_shows(registry):
    refused = plugin_run({'registry': registry.url, 'tag': 'staging', 'allow_prerelease': False})
    assert refused['failed'] is True
    assert refused['refused_prerelease'] == 'v1.2.0-rc.1'
    wrong = 'not-the-token-' + PASSWORD[::-1]
    denied = plugin_run({'registry': registry.url, 'tag': 'latest', 'username': 'me', 'password': wrong})
    assert denied['failed'] is True
    assert wrong not in repr(denied)


def test_the_task_environment_reaches_the_requests_and_is_gone_afterwards(registry, monkeypatch):
    for name in ('HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'):
        monkeypatch.delenv(name, raising=False)
    args = {'registry': registry.url, 'tag': 'latest'}
    # A proxy that refuses connections: the request goes to it, so the resolution fails.
    refused = plugin_run(dict(args), environment=[{'HTTP_PROXY': 'http://127.0.0.1:9'}])
    assert refused['failed'] is True
    assert 'HTTP_PROXY' not in os.environ
    # The task's NO_PROXY names the registry: the same proxy is bypassed.
    direct = plugin_run(
        dict(args), environment=[{'HTTP_PROXY': 'http://127.0.0.1:9'}, {'NO_PROXY': '127.0.0.1,localhost'}]
    )
    assert direct['version'] == 'v1.1.0'
    assert 'NO_PROXY' not in os.environ


def test_a_task_on_another_host_runs_the_module_there():
    calls = []

    def module(module_name=None, task_vars=None, **_kwargs):
        calls.append(module_name)
        return {'changed': False, 'version': 'v1.1.0'}

    result = plugin_run({'registry': 'ghcr.avatar.test', 'tag': 'latest'}, transport='ssh', module=module)
    assert calls == ['avatar_mgmt.ops.release_tag']
    assert result['version'] == 'v1.1.0'
