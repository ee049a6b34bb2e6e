# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module tests of avatar_mgmt.ops.npm_forward against a fake NPM API and its public side on 127.0.0.1."""

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm
from ansible_collections.avatar_mgmt.ops.plugins.modules import npm_forward
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import fake_npm, module_harness, npm_module
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import FakeNPM, FakeNPMPublic
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.npm_module import ADMIN

PASSWORD = 'Forward-Pa55-literal'


@pytest.fixture
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


@pytest.fixture
def npm():
    with FakeNPM({ADMIN: PASSWORD}) as server:
        client = _npm.NPMClient(server.url, ADMIN, PASSWORD, timeout=5)
        client.create_proxy_host(
            {
                'domain_names': ['avatar.example.com'],
                'forward_scheme': 'http',
                'forward_host': 'avatar-api-blue',
                'forward_port': 8080,
                'block_exploits': True,
            }
        )
        with FakeNPMPublic(server) as public:
            server.public = public
            yield server


def _args(server, **kw):
    args = {
        'domain_names': ['avatar.example.com'],
        'forward_host': 'avatar-api-green',
        'forward_port': 8081,
        'verify_url': f'{server.public.url}/health',
        'verify_expect': 'avatar-api-green:8081',
        'verify_interval': 0.05,
        'verify_timeout': 5,
    }
    return npm_module.module_args(server, PASSWORD, **dict(args, **kw))


def _run(args, expect=ExitJson):
    return module_harness.run_module(npm_forward, args, expect)


def test_documentation_matches_argument_spec(monkeypatch):
    kwargs = npm_module.assert_documentation(monkeypatch, npm_forward)
    assert kwargs['required_together'] == [('verify_url', 'verify_expect')]


@pytest.mark.usefixtures('patched')
def test_switch_verifies_and_returns_the_previous_target(npm):
    npm.reload_lag = 3
    reloads = npm.reloads
    result = _run(_args(npm))
    assert result['changed'] is True
    assert result['previous'] == {'forward_scheme': 'http', 'forward_host': 'avatar-api-blue', 'forward_port': 8080}
    assert result['host']['forward_host'] == 'avatar-api-green'
    assert result['host']['block_exploits'] is True
    assert result['verify']['attempts'] == 4
    assert npm.reloads == reloads + 1
    # Idempotent: nothing written, still verified.
    again = _run(_args(npm))
    assert again['changed'] is False
    assert again['verify']['attempts'] >= 1
    assert npm.reloads == reloads + 1
    # Switch back with what the first run returned.
    back = _run(_args(npm, verify_url=None, verify_expect=None, **result['previous']))
    assert back['changed'] is True
    assert npm.served[1]['forward_host'] == 'avatar-api-blue'
    npm_module.assert_no_secret(npm, [PASSWORD], result, again, back)


@pytest.mark.usefixtures('patched')
def test_check_mode_writes_nothing(npm):
    writes = len(npm.writes())
    result = _run(_args(npm, _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['verify'] == {}
    assert len(npm.writes()) == writes
    assert npm.hosts[1]['forward_host'] == 'avatar-api-blue'


@pytest.mark.usefixtures('patched')
def test_verify_deadline_fails_with_previous(npm):
    result = _run(_args(npm, verify_expect='something-else', verify_timeout=1, verify_interval=0.2), FailJson)
    assert result['changed'] is True
    assert "did not show 'something-else'" in result['msg']
    assert result['previous']['forward_host'] == 'avatar-api-blue'
    # Documented: a failed verification does not switch back by itself.
    assert npm.hosts[1]['forward_host'] == 'avatar-api-green'
    npm_module.assert_no_secret(npm, [PASSWORD], result)


@pytest.mark.usefixtures('patched')
def test_unknown_domain(npm):
    result = _run(_args(npm, domain_names=['nope.example.com']), FailJson)
    assert 'no proxy host of NPM serves nope.example.com' in result['msg']
    assert result['changed'] is False
    assert npm.writes() == [('POST', '/api/nginx/proxy-hosts')]  # the fixture's host only


@pytest.mark.usefixtures('patched')
def test_a_switch_sends_the_minimum_of_requests(npm):
    start = len(npm.requests)
    _run(_args(npm, verify_url=None, verify_expect=None))
    assert [request[:2] for request in npm.requests[start:]] == [
        ('POST', '/api/tokens'),
        ('GET', '/api/nginx/proxy-hosts'),
        # NPM's answer to the PUT holds nginx's verdict (meta.nginx_online): nothing is read back.
        ('PUT', '/api/nginx/proxy-hosts/1'),
    ]


@pytest.mark.usefixtures('patched')
def test_switch_rejected_by_nginx_puts_the_previous_target_back_online(npm, monkeypatch):
    real = fake_npm.nginx_test

    def refuse_green(host_id, record):
        if record['forward_host'] == 'avatar-api-green':
            return f'nginx: [emerg] host not found in upstream "avatar-api-green" {PASSWORD} {npm.last_token}'
        return real(host_id, record)

    monkeypatch.setattr(fake_npm, 'nginx_test', refuse_green)
    reloads = npm.reloads
    result = _run(_args(npm), FailJson)
    assert result['restored'] is True
    assert result['changed'] is True
    assert 'host not found in upstream' in result['nginx_err']
    record = npm.hosts[1]
    assert (record['forward_host'], record['forward_port']) == ('avatar-api-blue', 8080)
    assert record['block_exploits'] is True
    assert record['meta'] == {'nginx_online': True, 'nginx_err': None}
    assert npm.served[1]['forward_host'] == 'avatar-api-blue'
    assert npm.reloads == reloads + 2  # the rejected switch, then the previous target
    npm_module.assert_no_secret(npm, [PASSWORD], result)
