# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module tests of avatar_mgmt.ops.npm_proxy_host against a fake NPM API on 127.0.0.1.

exit_json / fail_json are patched to raise, as community.general's tests do.
"""

from __future__ import annotations

import json
import types

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.modules import npm_proxy_host
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness, npm_module
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import FakeNPM
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.npm_module import ADMIN

PASSWORD = 'Adm1n-Pa55word-literal'
KEY_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7-private'
KEY = f'-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----'
CERT = '-----BEGIN CERTIFICATE-----\nMIIDazCCAlOgAwIBAgIUpublic\n-----END CERTIFICATE-----'
ACL_PASSWORD = 'basic-auth-literal-42'


@pytest.fixture
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


@pytest.fixture
def npm():
    with FakeNPM({ADMIN: PASSWORD}) as server:
        yield server


@pytest.fixture
def fresh_npm():
    with FakeNPM() as server:
        yield server


def _args(server, **kw):
    args = {
        'domain_names': ['avatar.example.com'],
        'forward_host': 'avatar-api-blue',
        'forward_port': 8080,
        'block_exploits': True,
        'allow_websocket_upgrade': True,
    }
    return npm_module.module_args(server, PASSWORD, **dict(args, **kw))


def _run(args, expect=ExitJson):
    return module_harness.run_module(npm_proxy_host, args, expect)


def _assert_no_secret(server, *results):
    npm_module.assert_no_secret(server, [PASSWORD, KEY, KEY_BODY, ACL_PASSWORD], *results)


# ---------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------


def test_documentation_matches_argument_spec(monkeypatch):
    npm_module.assert_documentation(monkeypatch, npm_proxy_host)


# ---------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures('patched')
def test_created_from_nothing_on_a_fresh_npm_then_idempotent(fresh_npm):
    refused = _run(_args(fresh_npm), FailJson)
    assert 'INITIAL_ADMIN_EMAIL' in refused['msg']
    assert refused['changed'] is False

    first = _run(_args(fresh_npm, initial_setup=True))
    assert first['changed'] is True
    assert first['admin_created'] is True
    assert first['id'] == 1
    assert first['host']['forward_host'] == 'avatar-api-blue'
    assert first['host']['meta']['nginx_online'] is True
    assert fresh_npm.served[1]['domain_names'] == ['avatar.example.com']
    reloads = fresh_npm.reloads
    writes = len(fresh_npm.writes())

    second = _run(_args(fresh_npm, initial_setup=True, domain_names=['AVATAR.example.com']))
    assert second['changed'] is False
    assert second['admin_created'] is False
    assert fresh_npm.reloads == reloads
    assert len(fresh_npm.writes()) == writes
    _assert_no_secret(fresh_npm, refused, first, second)


@pytest.mark.usefixtures('patched')
def test_a_changed_field_is_one_put(npm):
    _run(_args(npm))
    before = len(npm.writes())
    result = _run(_args(npm, forward_host='avatar-api-green', _ansible_diff=True))
    assert result['changed'] is True
    assert npm.writes()[before:] == [('PUT', '/api/nginx/proxy-hosts/1')]
    assert result['diff']['before']['forward_host'] == 'avatar-api-blue'
    assert result['diff']['after']['forward_host'] == 'avatar-api-green'
    assert result['changes']['fields'] == ['forward_host']
    assert npm.served[1]['forward_host'] == 'avatar-api-green'


@pytest.mark.usefixtures('patched')
def test_check_mode_makes_no_write(npm, fresh_npm):
    result = _run(_args(npm, _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['changes']['host'] == 'create'
    assert result['id'] is None
    assert npm.writes() == []
    _run(_args(npm))
    writes, reloads = len(npm.writes()), npm.reloads
    result = _run(_args(npm, forward_port=9000, _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['diff']['after']['forward_port'] == 9000
    assert (len(npm.writes()), npm.reloads) == (writes, reloads)
    assert npm.hosts[1]['forward_port'] == 8080
    # A fresh NPM in check mode: the admin would be created, nothing is.
    result = _run(_args(fresh_npm, initial_setup=True, _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['admin_created'] is True
    assert fresh_npm.users == {}
    assert fresh_npm.writes() == []


@pytest.mark.usefixtures('patched')
def test_invalid_advanced_config_fails_with_nginx_error_and_previous_record_back_online(npm):
    _run(_args(npm, advanced_config='client_max_body_size 50m;\n'))
    result = _run(_args(npm, forward_host='avatar-api-green', advanced_config='proxy_bogus_directive on;\n'), FailJson)
    assert result['failed'] is True
    assert result['changed'] is True
    assert 'unknown directive "proxy_bogus_directive"' in result['msg']
    assert 'unknown directive "proxy_bogus_directive"' in result['nginx_err']
    assert 'previous configuration keeps serving' in result['msg']
    assert result['restored'] is True
    record = npm.hosts[1]
    assert record['meta'] == {'nginx_online': True, 'nginx_err': None}
    assert record['forward_host'] == 'avatar-api-blue'
    assert record['advanced_config'] == 'client_max_body_size 50m;\n'
    assert npm.served[1]['forward_host'] == 'avatar-api-blue'
    # The previous options still converge without a write.
    writes = len(npm.writes())
    assert _run(_args(npm, advanced_config='client_max_body_size 50m;\n'))['changed'] is False
    assert len(npm.writes()) == writes


@pytest.mark.usefixtures('patched')
def test_domain_owned_by_another_host_fails_naming_it(npm):
    _run(_args(npm, domain_names=['directus.example.com']))
    _run(_args(npm))
    writes = len(npm.writes())
    result = _run(_args(npm, domain_names=['avatar.example.com', 'directus.example.com']), FailJson)
    assert 'proxy host id 1 (domains: directus.example.com) already serves directus.example.com' in result['msg']
    assert result['changed'] is False
    assert len(npm.writes()) == writes


@pytest.mark.usefixtures('patched')
def test_certificate_and_access_list_and_no_secret_anywhere(npm, monkeypatch):
    args = _args(
        npm,
        ssl_forced=True,
        http2_support=True,
        certificate_upload={'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY},
        access_list_spec={
            'name': 'staff',
            'satisfy_any': True,
            'items': [{'username': 'ops', 'password': ACL_PASSWORD}],
            'clients': [{'address': '10.0.0.0/8'}],
        },
        _ansible_diff=True,
    )
    first = _run(args)
    assert first['changes'] == {
        'host': 'create',
        'fields': [
            'domain_names',
            'forward_host',
            'forward_port',
            'certificate_id',
            'access_list_id',
            'block_exploits',
            'allow_websocket_upgrade',
            'http2_support',
            'ssl_forced',
        ],
        'certificate': 'create',
        'access_list': 'create',
    }
    assert first['host']['certificate']['nice_name'] == 'avatar'
    assert first['host']['access_list'] == {'id': 1, 'name': 'staff'}
    assert npm.certs[1]['meta']['certificate_key'] == KEY
    second = _run(args)
    assert second['changed'] is False
    # A wrong password: the message names the user, never the password or the key.
    failed = _run(dict(args, password='Wrong-literal-pw'), FailJson)
    assert ADMIN in failed['msg']
    assert 'Wrong-literal-pw' not in json.dumps(failed)
    # NPM echoing a secret in an error is masked too.
    real_handle = npm.handle

    def echo(method, path, query, body, files, authorized):
        if method == 'PUT':
            from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import APIError

            raise APIError(500, f'boom {PASSWORD} {ACL_PASSWORD} {KEY} {npm.last_token}')
        return real_handle(method, path, query, body, files, authorized)

    monkeypatch.setattr(npm, 'handle', echo)
    echoed = _run(dict(args, forward_port=9999), FailJson)
    assert 'boom' in echoed['msg']
    _assert_no_secret(npm, first, second, failed, echoed)


@pytest.mark.usefixtures('patched')
def test_ssl_without_certificate_is_refused_before_any_write(npm):
    result = _run(_args(npm, ssl_forced=True), FailJson)
    assert 'ssl_forced needs a certificate' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert npm.writes() == []


@pytest.mark.usefixtures('patched')
def test_unreachable_npm(npm):
    url = npm.url
    npm.stop()
    result = _run(_args(types.SimpleNamespace(url=url)), FailJson)
    assert f'Cannot reach NPM at {url}' in result['msg']
    assert 'connection refused' in result['msg']


# ---------------------------------------------------------------------------
# Let's Encrypt (certificate_request): the API exchange only; these machines cannot reach Let's Encrypt
# ---------------------------------------------------------------------------

LE_EMAIL = 'ops@example.com'


def _le_args(server, **kw):
    return _args(
        server,
        ssl_forced=True,
        certificate_request={'nice_name': 'avatar-le', 'email': LE_EMAIL},
        **kw,
    )


def _cert_posts(server):
    return [w for w in server.writes() if w == ('POST', '/api/nginx/certificates')]


@pytest.mark.usefixtures('patched')
def test_certificate_request_is_sent_once_then_reused(npm):
    first = _run(_le_args(npm, _ansible_diff=True))
    assert first['changed'] is True
    assert first['changes']['certificate'] == 'request'
    # The certificate is requested before the host is written.
    assert npm.writes() == [('POST', '/api/nginx/certificates'), ('POST', '/api/nginx/proxy-hosts')]
    cert = npm.certs[1]
    assert cert['provider'] == 'letsencrypt'
    assert cert['nice_name'] == 'avatar-le'
    assert cert['domain_names'] == ['avatar.example.com']
    assert cert['meta'] == {
        'letsencrypt_email': LE_EMAIL,
        'letsencrypt_agree': True,
        'dns_challenge': False,
        'key_type': 'rsa',
    }
    assert npm.hosts[1]['certificate_id'] == 1
    assert npm.hosts[1]['ssl_forced'] is True
    assert first['host']['certificate']['nice_name'] == 'avatar-le'
    assert first['diff']['after']['certificate'] == 'avatar-le'
    assert first['diff']['after']['certificate_request']['domain_names'] == ['avatar.example.com']

    writes, reloads = len(npm.writes()), npm.reloads
    second = _run(_le_args(npm))
    assert second['changed'] is False
    assert second['changes']['certificate'] is None
    assert (len(npm.writes()), npm.reloads) == (writes, reloads)

    # Another host naming the same certificate uses it as is: no second request.
    other = _run(
        _le_args(npm, domain_names=['api.example.com'], forward_host='api'),
    )
    assert other['changed'] is True
    assert other['changes']['certificate'] is None
    assert len(_cert_posts(npm)) == 1
    assert npm.hosts[2]['certificate_id'] == 1


@pytest.mark.usefixtures('patched')
def test_certificate_request_domains_and_key_type(npm):
    result = _run(
        _args(
            npm,
            certificate_request={
                'nice_name': 'shared',
                'email': LE_EMAIL,
                'domain_names': ['avatar.example.com', 'API.example.com'],
                'key_type': 'ecdsa',
            },
        )
    )
    assert result['changed'] is True
    assert npm.certs[1]['domain_names'] == ['avatar.example.com', 'api.example.com']
    assert npm.certs[1]['meta']['key_type'] == 'ecdsa'


@pytest.mark.usefixtures('patched')
def test_certificate_request_failure_quotes_npm_and_writes_nothing_else(npm):
    _run(_args(npm))
    host_before = json.dumps(npm.hosts, sort_keys=True)
    writes = len(npm.writes())
    npm.letsencrypt_reachable = False
    result = _run(_le_args(npm, forward_host='avatar-api-green'), FailJson)
    assert 'acme-v02.api.letsencrypt.org' in result['msg']  # NPM's own text
    assert 'Network is unreachable' in result['msg']
    assert 'port 80' in result['msg']
    assert 'resolve' in result['msg']
    assert 'Nothing else was written' in result['msg']
    assert result['changed'] is False
    assert npm.writes()[writes:] == [('POST', '/api/nginx/certificates')]
    assert npm.certs == {}
    assert json.dumps(npm.hosts, sort_keys=True) == host_before
    # A new host is not created either.
    result = _run(_le_args(npm, domain_names=['new.example.com']), FailJson)
    assert 'new.example.com' in result['msg']
    assert [h['domain_names'] for h in npm.hosts.values()] == [['avatar.example.com']]
    _assert_no_secret(npm, result)


@pytest.mark.usefixtures('patched')
def test_certificate_request_check_mode_writes_nothing(npm):
    result = _run(_le_args(npm, _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['changes']['certificate'] == 'request'
    assert result['changes']['host'] == 'create'
    assert npm.writes() == []
    assert npm.certs == {}
    # An existing host would get the certificate: reported, not written.
    _run(_args(npm))
    writes = len(npm.writes())
    result = _run(_le_args(npm, _ansible_check_mode=True))
    assert result['changed'] is True
    assert 'certificate_id' in result['changes']['fields']
    assert len(npm.writes()) == writes
    assert npm.certs == {}
    assert npm.hosts[1]['certificate_id'] == 0


@pytest.mark.usefixtures('patched')
def test_certificate_request_and_upload_are_mutually_exclusive(npm):
    result = _run(
        _le_args(npm, certificate_upload={'nice_name': 'avatar-le', 'certificate': CERT, 'certificate_key': KEY}),
        FailJson,
    )
    assert 'mutually exclusive' in result['msg']
    assert 'certificate_request' in result['msg']
    assert 'certificate_upload' in result['msg']
    assert npm.writes() == []
    _assert_no_secret(npm, result)


# ---------------------------------------------------------------------------
# The promises, attacked: minimum requests, no write when nothing differs, put back, never printed
# ---------------------------------------------------------------------------


def _requests_of_a_run(server, args, expect=ExitJson):
    start = len(server.requests)
    result = _run(args, expect)
    return result, [request[:2] for request in server.requests[start:]]


@pytest.mark.usefixtures('patched')
def test_each_run_sends_the_minimum_of_requests(npm):
    _result, sent = _requests_of_a_run(npm, _args(npm))
    assert sent == [
        ('POST', '/api/tokens'),
        ('GET', '/api/nginx/proxy-hosts'),
        ('POST', '/api/nginx/proxy-hosts'),
        ('GET', '/api/nginx/proxy-hosts/1'),
    ]
    _result, sent = _requests_of_a_run(npm, _args(npm))
    assert sent == [('POST', '/api/tokens'), ('GET', '/api/nginx/proxy-hosts')]
    upload = {'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY}
    acl = {'name': 'staff', 'items': [{'username': 'ops', 'password': ACL_PASSWORD}]}
    args = _args(npm, ssl_forced=True, certificate_upload=upload, access_list_spec=acl)
    _run(args)
    _result, sent = _requests_of_a_run(npm, args)
    assert sent == [
        ('POST', '/api/tokens'),
        ('GET', '/api/nginx/proxy-hosts'),
        ('GET', '/api/nginx/certificates'),
        ('GET', '/api/nginx/access-lists'),
    ]


@pytest.mark.usefixtures('patched')
def test_same_options_with_certificate_and_access_list_write_nothing_and_do_not_reload(npm):
    args = _args(
        npm,
        ssl_forced=True,
        certificate_upload={'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY},
        access_list_spec={'name': 'staff', 'items': [{'username': 'ops', 'password': ACL_PASSWORD}]},
        advanced_config='client_max_body_size 50m;\n',
        locations=[{'path': '/cms', 'forward_host': 'directus', 'forward_port': 8055}],
        enabled=True,
    )
    assert _run(args)['changed'] is True
    writes, reloads = len(npm.writes()), npm.reloads
    again = _run(dict(args, domain_names=['Avatar.Example.com'], advanced_config='client_max_body_size 50m;'))
    assert again['changed'] is False
    assert again['changes'] == {'host': None, 'fields': [], 'certificate': None, 'access_list': None}
    assert (len(npm.writes()), npm.reloads) == (writes, reloads)


@pytest.mark.usefixtures('patched')
def test_nginx_rejection_puts_every_field_back_online_and_prints_no_secret(npm):
    acl = {'name': 'staff', 'items': [{'username': 'ops', 'password': ACL_PASSWORD}]}
    upload = {'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY}
    good = _args(npm, ssl_forced=True, certificate_upload=upload, access_list_spec=acl, advanced_config='gzip on;')
    _run(good)
    before = json.dumps({k: v for k, v in npm.hosts[1].items() if k != 'modified_on'}, sort_keys=True)
    served_before = npm.served[1]['forward_host']
    bad = dict(
        good, forward_host='avatar-api-green', forward_port=9999, block_exploits=False, advanced_config='bogus on;'
    )
    failed = _run(dict(bad, _ansible_diff=True), FailJson)
    assert failed['restored'] is True
    assert failed['changed'] is True
    assert 'unknown directive "bogus"' in failed['nginx_err']
    after = json.dumps({k: v for k, v in npm.hosts[1].items() if k != 'modified_on'}, sort_keys=True)
    assert after == before
    assert npm.hosts[1]['meta'] == {'nginx_online': True, 'nginx_err': None}
    assert npm.served[1]['forward_host'] == served_before == 'avatar-api-blue'
    # The same in check mode: nothing is sent, so nothing to put back.
    writes, reloads = len(npm.writes()), npm.reloads
    checked = _run(dict(bad, _ansible_check_mode=True, _ansible_diff=True))
    assert (len(npm.writes()), npm.reloads) == (writes, reloads)
    _assert_no_secret(npm, failed, checked)


@pytest.mark.usefixtures('patched')
def test_no_secret_in_any_result_check_diff_or_failure(npm, monkeypatch):
    from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import APIError

    acl = {'name': 'staff', 'items': [{'username': 'ops', 'password': ACL_PASSWORD}]}
    upload = {'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY}
    args = _args(npm, ssl_forced=True, certificate_upload=upload, access_list_spec=acl, _ansible_diff=True)
    results = [_run(dict(args, _ansible_check_mode=True)), _run(args)]
    assert npm.certs[1]['meta']['certificate_key'] == KEY  # the secrets did reach NPM
    new_key = KEY.replace('private', 'rotated')
    rotated = dict(args, certificate_upload=dict(upload, certificate=CERT + '\n', certificate_key=new_key))
    results += [
        _run(dict(rotated, update_password='always', _ansible_check_mode=True)),
        _run(dict(rotated, update_password='always')),
    ]
    assert results[-1]['changes']['certificate'] == 'upload'
    assert results[-1]['changes']['access_list'] == 'update'
    results.append(_run(dict(args, password=PASSWORD + 'x'), FailJson))
    real_handle = npm.handle
    secrets = f'{PASSWORD} {ACL_PASSWORD} {KEY} {new_key}'

    def echo(method, path, query, body, files, authorized):
        # NPM quoting the request (secrets, the token) in its errors, on every kind of call.
        if path != '/api/tokens' and (method != 'GET' or path.endswith('access-lists')):
            raise APIError(500, f'boom {secrets} {npm.last_token}')
        return real_handle(method, path, query, body, files, authorized)

    monkeypatch.setattr(npm, 'handle', echo)
    results.append(_run(dict(args, forward_port=9999), FailJson))
    results.append(_run(dict(args, forward_port=9999, _ansible_check_mode=True), FailJson))
    assert all('boom' in r['msg'] for r in results[-2:])
    _assert_no_secret(npm, *results)
    assert new_key not in json.dumps(results)


# ---------------------------------------------------------------------------
# Several hosts in one call (hosts): one login, one read, writes only where a host differs
# ---------------------------------------------------------------------------

DOMAINS = {'frontend': 'avatar.example.com', 'api': 'api.example.com', 'directus': 'directus.example.com'}


def _list_args(server, **kw):
    """The npm_proxy role's call: the shared options at the top, one entry per host."""
    args = npm_module.module_args(
        server,
        PASSWORD,
        forward_scheme='http',
        block_exploits=True,
        allow_websocket_upgrade=True,
        http2_support=True,
        ssl_forced=True,
        certificate='avatar',
        certificate_upload={'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY},
        hosts=[
            {'domain_names': [DOMAINS['frontend']], 'forward_host': 'frontend', 'forward_port': 80},
            {'domain_names': [DOMAINS['api']], 'forward_host': 'api', 'forward_port': 3000},
            {
                'domain_names': [DOMAINS['directus']],
                'forward_host': 'directus',
                'forward_port': 8055,
                'access_list_spec': {'name': 'staff', 'items': [{'username': 'ops', 'password': ACL_PASSWORD}]},
            },
        ],
    )
    args.update(kw)
    return args


def _logins(server, start=0):
    return [r for r in server.requests[start:] if r[:2] == ('POST', '/api/tokens')]


@pytest.mark.usefixtures('patched')
def test_list_form_creates_every_host_over_one_login_then_writes_nothing(npm):
    first = _run(_list_args(npm, _ansible_diff=True))
    assert first['changed'] is True
    assert len(_logins(npm)) == 1
    assert [r['domain_names'] for r in first['results']] == [[d] for d in DOMAINS.values()]
    assert [r['changes']['host'] for r in first['results']] == ['create', 'create', 'create']
    # The certificate is created and uploaded once, by the first host; the others use it.
    assert [r['changes']['certificate'] for r in first['results']] == ['create', None, None]
    assert [r['changes']['access_list'] for r in first['results']] == [None, None, 'create']
    assert len(npm.certs) == 1
    assert npm.certs[1]['meta']['certificate_key'] == KEY
    assert {
        h['forward_host']: (h['certificate_id'], h['access_list_id'], h['ssl_forced']) for h in npm.hosts.values()
    } == {
        'frontend': (1, 0, True),
        'api': (1, 0, True),
        'directus': (1, 1, True),
    }
    assert sorted(r['forward_host'] for r in npm.served.values()) == ['api', 'directus', 'frontend']
    assert [d['before_header'] for d in first['diff']] == list(DOMAINS.values())
    assert first['diff'][1]['after']['forward_port'] == 3000

    start, writes, reloads = len(npm.requests), len(npm.writes()), npm.reloads
    second = _run(_list_args(npm))
    assert second['changed'] is False
    assert [r['changed'] for r in second['results']] == [False, False, False]
    assert [r['id'] for r in second['results']] == [1, 2, 3]
    assert (len(npm.writes()), npm.reloads) == (writes, reloads)
    # A no-op is four requests for the three hosts: one login (NPM is up and set up), one read of each kind.
    assert [r[:2] for r in npm.requests[start:]] == [
        ('POST', '/api/tokens'),
        ('GET', '/api/nginx/proxy-hosts'),
        ('GET', '/api/nginx/certificates'),
        ('GET', '/api/nginx/access-lists'),
    ]
    _assert_no_secret(npm, first, second)


@pytest.mark.usefixtures('patched')
def test_list_form_writes_only_the_host_that_differs(npm):
    _run(_list_args(npm))
    args = _list_args(npm, _ansible_diff=True)
    args['hosts'][1]['forward_host'] = 'api-green'
    start, writes = len(npm.requests), len(npm.writes())
    result = _run(args)
    assert result['changed'] is True
    assert [r['changed'] for r in result['results']] == [False, True, False]
    assert result['results'][1]['changes']['fields'] == ['forward_host']
    assert result['diff'][1]['before']['forward_host'] == 'api'
    assert result['diff'][1]['after']['forward_host'] == 'api-green'
    assert npm.writes()[writes:] == [('PUT', '/api/nginx/proxy-hosts/2')]
    assert npm.served[2]['forward_host'] == 'api-green'
    assert len(_logins(npm, start)) == 1


@pytest.mark.usefixtures('patched')
def test_list_form_entry_overrides_the_top_level_and_unset_takes_it(npm):
    args = _list_args(npm)
    args['hosts'][0].update(block_exploits=False, state='present')
    args['hosts'][1]['enabled'] = False
    result = _run(args)
    assert result['changed'] is True
    assert npm.hosts[1]['block_exploits'] is False
    assert npm.hosts[2]['block_exploits'] is True
    assert npm.hosts[2]['enabled'] is False
    assert npm.hosts[3]['enabled'] is True
    # state absent at the top applies to every entry.
    gone = _run(dict(_list_args(npm), state='absent'))
    assert [r['changes']['host'] for r in gone['results']] == ['delete', 'delete', 'delete']
    assert npm.hosts == {}


@pytest.mark.usefixtures('patched')
def test_list_form_check_mode_writes_nothing_and_plans_shared_objects_once(npm, fresh_npm):
    result = _run(_list_args(npm, _ansible_check_mode=True, _ansible_diff=True))
    assert result['changed'] is True
    assert npm.writes() == []
    assert (npm.hosts, npm.certs, npm.acls) == ({}, {}, {})
    assert [r['changes']['host'] for r in result['results']] == ['create', 'create', 'create']
    # The certificate the first host would create counts as there for the others: no refusal, no second create.
    assert [r['changes']['certificate'] for r in result['results']] == ['create', None, None]
    assert [r['diff']['after']['certificate'] for r in result['results']] == ['avatar'] * 3
    # A fresh NPM in check mode: admin would be created; nothing can be read, nothing is written.
    fresh = _run(_list_args(fresh_npm, initial_setup=True, _ansible_check_mode=True))
    assert fresh['admin_created'] is True
    assert fresh['changed'] is True
    assert fresh_npm.users == {}
    assert fresh_npm.writes() == []
    _assert_no_secret(npm, result, fresh)


@pytest.mark.usefixtures('patched')
def test_a_later_host_referring_to_a_certificate_an_earlier_one_creates(npm):
    args = _list_args(npm)
    del args['certificate_upload']
    args['hosts'][0]['certificate_upload'] = {'nice_name': 'avatar', 'certificate': CERT, 'certificate_key': KEY}
    result = _run(args)
    assert result['changed'] is True
    assert [h['certificate_id'] for h in npm.hosts.values()] == [1, 1, 1]
    assert _run(args)['changed'] is False


@pytest.mark.usefixtures('patched')
def test_list_form_invalid_host_fails_before_any_write_naming_it(npm):
    args = _list_args(npm)
    args['hosts'][2]['hsts_subdomains'] = True  # without hsts_enabled: NPM would store false
    result = _run(args, FailJson)
    assert result['msg'].startswith(f'proxy host {DOMAINS["directus"]} (hosts[2]): ')
    assert 'hsts_subdomains needs hsts_enabled' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert result['changed'] is False
    assert result['results'] == []
    assert npm.writes() == []


@pytest.mark.parametrize(
    'hosts, message',
    [
        ([], 'hosts is empty'),
        (
            [{'domain_names': ['a.example.com']}, {'domain_names': ['b.example.com', 'A.example.com']}],
            'a.example.com is in hosts[0] and hosts[1]',
        ),
        ([{'domain_names': [' ']}], 'hosts[0] needs domain_names'),
    ],
)
@pytest.mark.usefixtures('patched')
def test_list_form_refused_before_any_request(npm, hosts, message):
    result = _run(npm_module.module_args(npm, PASSWORD, forward_host='x', forward_port=1, hosts=hosts), FailJson)
    assert message in result['msg']
    assert result['msg'].endswith('Nothing was changed.')
    assert npm.requests == []


@pytest.mark.usefixtures('patched')
def test_list_form_and_domain_names_are_mutually_exclusive(npm):
    result = _run(_list_args(npm, domain_names=['x.example.com']), FailJson)
    assert 'mutually exclusive' in result['msg']
    assert npm.requests == []
    result = _run(npm_module.module_args(npm, PASSWORD, forward_host='x', forward_port=1), FailJson)
    assert 'hosts' in result['msg']
    assert 'domain_names' in result['msg']


@pytest.mark.usefixtures('patched')
def test_list_form_nginx_rejection_names_the_host_and_keeps_the_earlier_writes(npm):
    _run(_list_args(npm))
    args = _list_args(npm)
    args['hosts'][0]['forward_port'] = 8080
    args['hosts'][1]['advanced_config'] = 'bogus_directive on;'
    args['hosts'][2]['forward_port'] = 9055
    result = _run(args, FailJson)
    assert result['msg'].startswith(f'proxy host {DOMAINS["api"]} (hosts[1]): ')
    assert 'unknown directive "bogus_directive"' in result['nginx_err']
    assert result['restored'] is True
    assert result['changed'] is True
    # The first host was written and stays; the third was not reached.
    assert [r['changes']['fields'] for r in result['results']] == [['forward_port']]
    assert npm.served[1]['forward_port'] == 8080
    assert npm.hosts[2]['advanced_config'] == ''
    assert npm.served[2]['forward_port'] == 3000
    assert npm.hosts[3]['forward_port'] == 8055
    _assert_no_secret(npm, result)


@pytest.mark.usefixtures('patched')
def test_api_timeout_waits_while_npm_starts(npm, monkeypatch):
    from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import APIError

    real_handle = npm.handle
    starting = {'left': 4}

    def starting_up(method, path, query, body, files, authorized):
        # NPM's nginx answers 502 to everything until its backend is up.
        if starting['left']:
            starting['left'] -= 1
            raise APIError(502, 'Bad Gateway')
        return real_handle(method, path, query, body, files, authorized)

    monkeypatch.setattr(npm, 'handle', starting_up)
    refused = _run(_list_args(npm), FailJson)
    assert '502' in refused['msg']
    assert npm.writes() == []
    result = _run(_list_args(npm, api_timeout=10))
    assert result['changed'] is True
    assert [r[:2] for r in npm.requests].count(('GET', '/api/')) == 3, 'one without api_timeout, two with it'
    assert starting['left'] == 0


@pytest.mark.usefixtures('patched')
def test_a_declaration_that_succeeds_is_recorded_and_check_mode_or_a_failure_records_nothing(npm, tmp_path):
    from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _proxy_marker

    database = tmp_path / 'database.sqlite'
    database.write_bytes(b'SQLite format 3\x00')
    marker = tmp_path / '.npm-declared'
    declared = {'path': str(marker), 'key': 'k1', 'database': str(database)}
    preview = _run(_args(npm, declared_marker=declared, _ansible_check_mode=True))
    assert 'declared_marker' not in preview
    assert not marker.exists()
    _run(_args(npm, domain_names=['taken.example.com']))
    _run(_args(npm))
    both = ['avatar.example.com', 'taken.example.com']
    refused = _run(_args(npm, declared_marker=declared, domain_names=both), FailJson)
    assert 'already serves taken.example.com' in refused['msg']
    assert not marker.exists()
    result = _run(_args(npm, declared_marker=declared))
    assert result['declared_marker'] is True
    assert _proxy_marker.read(str(marker), str(database)) == {
        'key': 'k1',
        'current': True,
        'reason': "NPM's database is unchanged since the declaration",
    }
    assert PASSWORD not in marker.read_text()
    database.unlink()
    gone = _run(_args(npm, declared_marker=dict(declared, key='k2')))
    assert gone['declared_marker'] is False
    assert not marker.exists()
