# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _npm: normalisation, comparison, matching, planning, and the calls made to a fake NPM."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import fake_npm
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import FakeNPM, FakeNPMPublic

ADMIN = 'admin@example.com'
PASSWORD = 'Adm1n-Pa55word'
CERT = '-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n'
CERT2 = '-----BEGIN CERTIFICATE-----\nMIIBnewcert\n-----END CERTIFICATE-----\n'
KEY = '-----BEGIN PRIVATE KEY-----\nMIIEprivatekeymaterial\n-----END PRIVATE KEY-----\n'


# ---------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'names, expected',
    [
        (['b.example.com', 'A.example.com'], ['a.example.com', 'b.example.com']),
        ([' a.example.com ', 'a.example.com'], ['a.example.com']),
        ([], []),
        (None, []),
    ],
)
def test_normalize_domains(names, expected):
    assert _npm.normalize_domains(names) == expected


def test_normalize_locations_defaults_types_and_order():
    given = [
        {'path': '/b', 'forward_host': 'app', 'forward_port': '8080'},
        {
            'path': '/a',
            'forward_scheme': 'https',
            'forward_host': 'api',
            'forward_port': 443,
            'advanced_config': 'x;\n',
        },
    ]
    assert _npm.normalize_locations(given) == [
        {
            'path': '/a',
            'forward_scheme': 'https',
            'forward_host': 'api',
            'forward_port': 443,
            'forward_path': '',
            'advanced_config': 'x;',
        },
        {
            'path': '/b',
            'forward_scheme': 'http',
            'forward_host': 'app',
            'forward_port': 8080,
            'forward_path': '',
            'advanced_config': '',
        },
    ]


def test_location_without_target_is_refused():
    with pytest.raises(ValueError, match='lacks forward_host'):
        _npm.normalize_locations([{'path': '/x', 'forward_port': 80}])


@pytest.mark.parametrize('flag', [1, True, 'true'])
def test_normalize_host_booleans(flag):
    record = {'domain_names': ['A.example.com'], 'forward_host': 'app', 'forward_port': '80', 'block_exploits': flag}
    norm = _npm.normalize_host(record)
    assert norm['block_exploits'] is True
    assert norm['caching_enabled'] is False
    assert norm['forward_port'] == 80
    assert norm['domain_names'] == ['a.example.com']
    assert norm['certificate_id'] == 0


def _spec(**kw):
    spec = {'domain_names': ['a.example.com'], 'forward_host': 'app', 'forward_port': 8080}
    spec.update(kw)
    return spec


def test_changed_fields_ignores_order_case_and_types():
    current = _npm.normalize_host(
        {
            'domain_names': ['b.example.com', 'a.example.com'],
            'forward_host': 'app',
            'forward_port': 8080,
            'block_exploits': 1,
            'advanced_config': 'client_max_body_size 5m;\n',
            'enabled': 1,
        }
    )
    desired = _npm.desired_fields(
        _spec(
            domain_names=['A.example.com', 'b.example.com'],
            block_exploits=True,
            advanced_config='client_max_body_size 5m;',
            enabled=True,
        )
    )
    assert _npm.changed_fields(current, desired) == []


def test_changed_fields_lists_only_differences_and_enabled_last():
    current = _npm.normalize_host({'domain_names': ['a.example.com'], 'forward_host': 'app', 'forward_port': 8080})
    desired = _npm.desired_fields(_spec(forward_port=9090, caching_enabled=True, enabled=False))
    assert _npm.changed_fields(current, desired) == ['forward_port', 'caching_enabled', 'enabled']


def test_unset_options_are_not_compared():
    current = _npm.normalize_host(
        {'domain_names': ['a.example.com'], 'forward_host': 'app', 'forward_port': 8080, 'caching_enabled': True}
    )
    assert _npm.changed_fields(current, _npm.desired_fields(_spec())) == []


@pytest.mark.parametrize(
    'current, desired, problem',
    [
        ({}, {'ssl_forced': True}, 'ssl_forced needs a certificate'),
        ({}, {'http2_support': True}, 'http2_support needs a certificate'),
        ({'certificate_id': 3}, {'hsts_enabled': True}, 'hsts_enabled needs ssl_forced'),
        ({'certificate_id': 3, 'ssl_forced': True}, {'hsts_subdomains': True}, 'hsts_subdomains needs hsts_enabled'),
    ],
)
def test_ssl_consistency_refuses_what_npm_would_drop(current, desired, problem):
    with pytest.raises(ValueError, match=problem):
        _npm.check_ssl_consistency(current, desired)


@pytest.mark.parametrize('cert', [3, _npm.NEW])
def test_ssl_consistency_accepts_a_certificate(cert):
    _npm.check_ssl_consistency({}, {'certificate_id': cert, 'ssl_forced': True, 'hsts_enabled': True})


HOSTS = [
    {'id': 1, 'domain_names': ['a.example.com', 'www.a.example.com']},
    {'id': 2, 'domain_names': ['b.example.com']},
]


@pytest.mark.parametrize(
    'wanted, match_id, conflict_ids',
    [
        (['c.example.com'], None, []),
        (['a.example.com'], 1, []),
        (['www.a.example.com', 'new.example.com'], 1, []),
        (['a.example.com', 'b.example.com'], 1, [2]),
        (['c.example.com', 'a.example.com', 'b.example.com'], None, [1, 2]),
    ],
)
def test_match_host(wanted, match_id, conflict_ids):
    record, conflicts = _npm.match_host(HOSTS, wanted)
    assert (record or {}).get('id') == match_id
    assert [c['id'] for c in conflicts] == conflict_ids


def test_conflict_message_names_the_other_host():
    text = _npm.conflict_message([HOSTS[1]], ['a.example.com', 'b.example.com'])
    assert 'proxy host id 2 (domains: b.example.com) already serves b.example.com' in text
    assert 'Nothing was changed.' in text


CERTS = [
    {'id': 1, 'provider': 'other', 'nice_name': 'site', 'meta': {'certificate': CERT, 'certificate_key': KEY}},
    {'id': 2, 'provider': 'letsencrypt', 'nice_name': 'le', 'meta': {}},
]


def _upload(name='site', cert=CERT, key=KEY):
    return {'nice_name': name, 'certificate': cert, 'certificate_key': key, 'intermediate_certificate': None}


@pytest.mark.parametrize(
    'name, upload, expected',
    [
        (None, None, (None, None)),
        ('none', None, (0, None)),
        ('', None, (0, None)),
        ('le', None, (2, None)),
        (None, _upload(), (1, None)),
        (None, _upload(cert=CERT.strip() + '\r\n'), (1, None)),
        (None, _upload(cert=CERT2), (1, 'upload')),
        (None, _upload(name='other'), (_npm.NEW, 'create')),
    ],
)
def test_plan_certificate(name, upload, expected):
    assert _npm.plan_certificate(CERTS, name, upload) == expected


def _request(name):
    return {'nice_name': name, 'email': 'ops@example.com', 'domain_names': None, 'key_type': 'rsa'}


@pytest.mark.parametrize(
    'request_, expected',
    [
        (_request('new-le'), (_npm.NEW, 'request')),
        (_request('le'), (2, None)),  # existing: used as is, never requested again
        (_request('site'), (1, None)),
    ],
)
def test_plan_certificate_request(request_, expected):
    assert _npm.plan_certificate(CERTS, None, None, request_) == expected


def test_plan_certificate_request_and_upload_refused():
    with pytest.raises(ValueError, match='mutually exclusive'):
        _npm.plan_certificate(CERTS, None, _upload(), _request('le'))


@pytest.mark.parametrize(
    'name, upload, message',
    [
        ('missing', None, 'no certificate named'),
        (None, _upload(name='le'), 'NPM uploads only to custom ones'),
    ],
)
def test_plan_certificate_refusals(name, upload, message):
    with pytest.raises(ValueError, match=message):
        _npm.plan_certificate(CERTS, name, upload)


ACLS = [
    {
        'id': 4,
        'name': 'staff',
        'satisfy_any': 1,
        'pass_auth': 0,
        'items': [{'username': 'ops', 'password': 'p*****'}],
        'clients': [{'address': '10.0.0.0/8', 'directive': 'allow'}],
    }
]


def _acl_spec(**kw):
    spec = {
        'name': 'staff',
        'satisfy_any': True,
        'pass_auth': False,
        'items': [{'username': 'ops', 'password': 'new-secret'}],
        'clients': [{'address': '10.0.0.0/8', 'directive': 'allow'}],
    }
    spec.update(kw)
    return spec


@pytest.mark.parametrize(
    'spec, update_password, action',
    [
        (_acl_spec(), 'on_create', None),
        (_acl_spec(), 'always', 'update'),
        (_acl_spec(satisfy_any=False), 'on_create', 'update'),
        (_acl_spec(clients=[]), 'on_create', 'update'),
        (_acl_spec(items=[{'username': 'dev', 'password': 'x'}]), 'on_create', 'update'),
        (_acl_spec(name='guests'), 'on_create', 'create'),
    ],
)
def test_plan_access_list(spec, update_password, action):
    acl_id, got, _before, after = _npm.plan_access_list(ACLS, None, spec, update_password)
    assert got == action
    assert acl_id == (_npm.NEW if action == 'create' else 4)
    assert 'password' not in repr(after)


def test_access_list_body_sends_passwords_only_for_new_users_on_create():
    spec = _acl_spec(items=[{'username': 'ops', 'password': 'kept'}, {'username': 'dev', 'password': 'fresh'}])
    body = _npm._acl_body(spec, {'ops'}, 'on_create')
    assert body['items'] == [{'username': 'ops', 'password': ''}, {'username': 'dev', 'password': 'fresh'}]
    body = _npm._acl_body(spec, {'ops'}, 'always')
    assert body['items'][0]['password'] == 'kept'


def test_public_host_keeps_no_secret():
    record = {
        'id': 3,
        'domain_names': ['a.example.com'],
        'owner': {'email': ADMIN},
        'certificate': {'id': 1, 'nice_name': 'site', 'meta': {'certificate_key': KEY}},
        'access_list': {'id': 4, 'name': 'staff', 'items': [{'username': 'ops', 'password': 'hash'}]},
        'meta': {'nginx_online': True, 'nginx_err': None, 'letsencrypt_email': 'x'},
        'ssl_forced': 1,
    }
    out = _npm.public_host(record)
    assert out['certificate'] == dict.fromkeys(('provider', 'expires_on', 'domain_names'), None) | {
        'id': 1,
        'nice_name': 'site',
    }
    assert out['access_list'] == {'id': 4, 'name': 'staff'}
    assert out['ssl_forced'] is True
    assert 'owner' not in out
    assert 'PRIVATE' not in repr(out)
    assert 'hash' not in repr(out)


def test_redact_masks_every_secret_option():
    params = {
        'password': PASSWORD,
        'certificate_upload': {'certificate_key': KEY},
        'access_list_spec': {'items': [{'username': 'ops', 'password': 'acl-secret'}]},
    }
    text = _npm.redact(f'{PASSWORD} {KEY} acl-secret', params)
    assert PASSWORD not in text
    assert KEY not in text
    assert 'acl-secret' not in text


# ---------------------------------------------------------------------------
# Against a fake NPM: which calls are made
# ---------------------------------------------------------------------------


@pytest.fixture
def npm():
    with FakeNPM({ADMIN: PASSWORD}) as server:
        yield server


def _client(server):
    # The client's own pauses between tries of a read are real time, not the tests' clock: none here.
    return _npm.NPMClient(server.url, ADMIN, PASSWORD, timeout=5, sleep=lambda _seconds: None)


def _full_spec(**kw):
    spec = {
        'domain_names': ['a.example.com'],
        'state': 'present',
        'forward_scheme': None,
        'forward_host': 'blue',
        'forward_port': 8080,
        'certificate': None,
        'certificate_upload': None,
        'certificate_request': None,
        'access_list': None,
        'access_list_spec': None,
        'update_password': 'on_create',
        'advanced_config': None,
        'locations': None,
        'enabled': None,
        **dict.fromkeys(_npm.BOOL_FIELDS),
    }
    spec.update(kw)
    return spec


def _writes(client):
    return [call for call in client.calls if call[0] in ('POST', 'PUT', 'DELETE') and call[1] != '/api/tokens']


def test_create_then_nothing(npm):
    client = _client(npm)
    result = _npm.ensure_proxy_host(client, _full_spec(block_exploits=True))
    assert result['changed'] is True
    assert _writes(client) == [('POST', '/api/nginx/proxy-hosts')]
    assert npm.hosts[1]['forward_scheme'] == 'http'
    assert npm.reloads == 1
    client = _client(npm)
    result = _npm.ensure_proxy_host(client, _full_spec(block_exploits=True))
    assert result['changed'] is False
    assert _writes(client) == []
    assert client.calls == [('POST', '/api/tokens'), ('GET', '/api/nginx/proxy-hosts')]
    assert npm.reloads == 1


def test_one_changed_field_is_one_put_of_that_field(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    client = _client(npm)
    result = _npm.ensure_proxy_host(client, _full_spec(forward_port=9090))
    assert result['changes']['fields'] == ['forward_port']
    assert _writes(client) == [('PUT', '/api/nginx/proxy-hosts/1')]
    assert npm.served[1]['forward_port'] == 9090
    assert (result['diff']['before']['forward_port'], result['diff']['after']['forward_port']) == (8080, 9090)


@pytest.mark.parametrize('start, want, calls', [(True, False, ['disable']), (False, True, ['enable'])])
def test_enable_disable_only_when_it_differs(npm, start, want, calls):
    _npm.ensure_proxy_host(_client(npm), _full_spec(enabled=start))
    client = _client(npm)
    _npm.ensure_proxy_host(client, _full_spec(enabled=want))
    assert [call[1].rsplit('/', 1)[1] for call in _writes(client)] == calls
    client = _client(npm)
    assert _npm.ensure_proxy_host(client, _full_spec(enabled=want))['changed'] is False
    assert _writes(client) == []


def test_check_mode_writes_nothing(npm):
    client = _client(npm)
    result = _npm.ensure_proxy_host(client, _full_spec(), check_mode=True)
    assert result['changed'] is True
    assert result['changes']['host'] == 'create'
    assert npm.writes() == []


def test_invalid_advanced_config_puts_the_previous_record_back(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec(advanced_config='client_max_body_size 5m;'))
    client = _client(npm)
    with pytest.raises(_npm.NginxOfflineError) as excinfo:
        _npm.ensure_proxy_host(client, _full_spec(forward_host='green', advanced_config='proxy_bogus on;'))
    err = excinfo.value
    assert 'unknown directive "proxy_bogus"' in err.nginx_err
    assert err.restored is True
    assert 'previous configuration keeps serving' in str(err)
    assert _writes(client) == [('PUT', '/api/nginx/proxy-hosts/1'), ('PUT', '/api/nginx/proxy-hosts/1')]
    record = npm.hosts[1]
    assert record['meta']['nginx_online'] is True
    assert (record['forward_host'], record['advanced_config']) == ('blue', 'client_max_body_size 5m;')
    assert npm.served[1]['forward_host'] == 'blue'


def test_new_host_rejected_by_nginx_is_deleted_again(npm):
    client = _client(npm)
    with pytest.raises(_npm.NginxOfflineError, match='deleted again'):
        _npm.ensure_proxy_host(client, _full_spec(advanced_config='bogus;'))
    assert npm.hosts == {}
    assert npm.served == {}
    assert _writes(client) == [('POST', '/api/nginx/proxy-hosts'), ('DELETE', '/api/nginx/proxy-hosts/1')]


def test_offline_host_is_written_again(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    npm.hosts[1]['meta'] = {'nginx_online': False, 'nginx_err': 'broken by hand'}
    client = _client(npm)
    result = _npm.ensure_proxy_host(client, _full_spec())
    assert result['changes']['host'] == 'reapply'
    assert result['host']['meta']['nginx_online'] is True
    assert len(_writes(client)) == 1
    assert npm.hosts[1]['meta'] == {'nginx_online': True, 'nginx_err': None}
    assert npm.served[1]['forward_host'] == 'blue'


def test_domain_on_another_host_fails_naming_it(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec(domain_names=['b.example.com', 'c.example.com']))
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    client = _client(npm)
    with pytest.raises(_npm.DomainConflictError) as excinfo:
        _npm.ensure_proxy_host(client, _full_spec(domain_names=['a.example.com', 'c.example.com']))
    assert 'proxy host id 1 (domains: b.example.com, c.example.com) already serves c.example.com' in str(excinfo.value)
    assert _writes(client) == []


def test_certificate_reupload_reloads_through_a_noop_put(npm):
    spec = _full_spec(certificate_upload=_upload(), ssl_forced=True)
    client = _client(npm)
    _npm.ensure_proxy_host(client, spec)
    assert [call[1] for call in _writes(client)] == [
        '/api/nginx/certificates',
        '/api/nginx/certificates/1/upload',
        '/api/nginx/proxy-hosts',
    ]
    assert npm.hosts[1]['certificate_id'] == 1
    reloads = npm.reloads
    client = _client(npm)
    assert _npm.ensure_proxy_host(client, spec)['changed'] is False
    client = _client(npm)
    result = _npm.ensure_proxy_host(client, dict(spec, certificate_upload=_upload(cert=CERT2)))
    assert result['changes'] == {'host': None, 'fields': [], 'certificate': 'upload', 'access_list': None}
    assert result['diff']['before']['certificate_sha256'] == _npm._sha256(CERT)
    assert result['diff']['after']['certificate_sha256'] == _npm._sha256(CERT2)
    assert _writes(client) == [('POST', '/api/nginx/certificates/1/upload'), ('PUT', '/api/nginx/proxy-hosts/1')]
    assert npm.reloads == reloads + 1
    assert npm.certs[1]['meta']['certificate'] == CERT2


def test_access_list_created_and_passwords_kept_on_update(npm):
    spec = _full_spec(access_list_spec=_acl_spec(items=[{'username': 'ops', 'password': 'first'}]))
    _npm.ensure_proxy_host(_client(npm), spec)
    assert npm.hosts[1]['access_list_id'] == 1
    assert npm.acl_passwords == {(1, 'ops'): 'first'}
    client = _client(npm)
    spec = _full_spec(access_list_spec=_acl_spec(items=[{'username': 'ops', 'password': 'second'}]))
    assert _npm.ensure_proxy_host(client, spec)['changed'] is False
    client = _client(npm)
    spec['update_password'] = 'always'
    assert _npm.ensure_proxy_host(client, spec)['changes']['access_list'] == 'update'
    assert npm.acl_passwords == {(1, 'ops'): 'second'}


def test_absent(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec(domain_names=['a.example.com', 'www.a.example.com']))
    with pytest.raises(ValueError, match=r'also serves www\.a\.example\.com'):
        _npm.ensure_proxy_host(_client(npm), _full_spec(state='absent'))
    client = _client(npm)
    spec = _full_spec(domain_names=['www.a.example.com', 'a.example.com'], state='absent')
    assert _npm.ensure_proxy_host(client, spec, check_mode=True)['changed'] is True
    assert _writes(client) == []
    assert _npm.ensure_proxy_host(client, spec)['changed'] is True
    assert npm.hosts == {}
    assert _npm.ensure_proxy_host(_client(npm), spec)['changed'] is False


def test_connect_initial_setup_only_while_not_set_up():
    with FakeNPM() as fresh:
        params = {'url': fresh.url, 'username': ADMIN, 'password': PASSWORD, 'validate_certs': True, 'timeout': 5}
        with pytest.raises(_npm.NotSetUpError, match='INITIAL_ADMIN_EMAIL'):
            _npm.connect(params)
        client, created = _npm.connect(params, initial_setup=True, check_mode=True)
        assert created is True
        assert fresh.users == {}
        client, created = _npm.connect(params, initial_setup=True)
        assert created is True
        assert list(fresh.users) == [ADMIN]
        client, created = _npm.connect(params, initial_setup=True)
        assert created is False
        assert client.calls == [('POST', '/api/tokens')], 'an NPM that is set up costs the login alone'


def test_connect_with_a_wrong_password_fails_as_the_login_does(npm):
    params = {'url': npm.url, 'username': ADMIN, 'password': 'wrong-password-123', 'validate_certs': True, 'timeout': 5}
    with pytest.raises(_npm.NPMAuthError) as excinfo:
        _npm.connect(params, initial_setup=True)
    assert str(excinfo.value).startswith(f'NPM at {npm.url} refused the login of {ADMIN}')
    assert 'wrong-password-123' not in str(excinfo.value)
    assert ('POST', '/api/users') not in [r[:2] for r in npm.requests], 'a set-up NPM never gets a first user'


def test_login_refused_names_the_user_not_the_password(npm):
    client = _npm.NPMClient(npm.url, ADMIN, 'wrong-password-123', timeout=5)
    with pytest.raises(_npm.NPMAuthError) as excinfo:
        client.login()
    assert ADMIN in str(excinfo.value)
    assert 'wrong-password-123' not in str(excinfo.value)


# ---------------------------------------------------------------------------
# Waiting for the API; several hosts in one run
# ---------------------------------------------------------------------------


class _Clock:
    """A clock that moves only when the code under test sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep=None):
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.sleeps += 1
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def test_wait_for_api_retries_a_refused_port_until_npm_listens():
    npm = FakeNPM({ADMIN: PASSWORD})
    npm.start()
    npm.stop()  # the port stays known and refuses connections: NPM's container is starting
    server = {}

    def start_npm(sleeps):
        if sleeps == 3:
            server['http'] = ThreadingHTTPServer(('127.0.0.1', npm.port), npm._handler())
            threading.Thread(target=server['http'].serve_forever, daemon=True).start()

    clock = _Clock(start_npm)
    client = _client(npm)
    try:
        info = _npm.wait_for_api(client, timeout=90, clock=clock, sleep=clock.sleep)
    finally:
        if 'http' in server:
            server['http'].shutdown()
            server['http'].server_close()
    assert info['setup'] is True
    assert clock.sleeps == 3
    assert client.calls == [('GET', '/api/')] * 4


def test_wait_for_api_gives_up_at_the_timeout_naming_it():
    npm = FakeNPM()
    npm.start()
    npm.stop()
    clock = _Clock()
    with pytest.raises(_npm.NPMConnectionError) as excinfo:
        _npm.wait_for_api(_client(npm), timeout=5, clock=clock, sleep=clock.sleep)
    assert 'Cannot reach NPM' in str(excinfo.value)
    assert 'within api_timeout (5s, 6 attempts)' in str(excinfo.value)
    assert clock.now <= 5
    # 0: one attempt, NPM's own error.
    with pytest.raises(_npm.NPMConnectionError) as excinfo:
        _npm.wait_for_api(_client(npm), timeout=0, clock=clock, sleep=clock.sleep)
    assert 'api_timeout' not in str(excinfo.value)


def test_wait_for_api_fails_at_once_on_an_answer_that_is_not_a_start(npm, monkeypatch):
    real_handle = npm.handle

    def not_found(method, path, *args):
        if path == '/api/':
            raise fake_npm.APIError(404, 'Not Found')
        return real_handle(method, path, *args)

    monkeypatch.setattr(npm, 'handle', not_found)
    clock = _Clock()
    with pytest.raises(_npm.NPMAPIError, match='404'):
        _npm.wait_for_api(_client(npm), timeout=90, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == 0


def test_connect_waits_for_the_api_with_api_timeout(npm, monkeypatch):
    real_handle = npm.handle
    answers = iter([502, 503, 502])

    def starting(method, path, *args):
        # NPM's nginx answers 5xx to everything until its backend is up.
        status = next(answers, None)
        if status:
            raise fake_npm.APIError(status, 'Bad Gateway')
        return real_handle(method, path, *args)

    monkeypatch.setattr(npm, 'handle', starting)
    clock = _Clock()
    params = {'url': npm.url, 'username': ADMIN, 'password': PASSWORD, 'validate_certs': True, 'timeout': 5}
    client, created = _npm.connect(dict(params, api_timeout=30), clock=clock, sleep=clock.sleep)
    assert created is False
    assert clock.sleeps == 2
    # The login first; it fails while NPM starts, so GET /api/ waits for it, then the login again.
    assert client.calls == [('POST', '/api/tokens')] + [('GET', '/api/')] * 3 + [('POST', '/api/tokens')]


def test_ensure_proxy_hosts_one_read_for_all_and_nothing_written_when_equal(npm):
    specs = [_full_spec(domain_names=[f'{name}.example.com'], forward_host=name) for name in ('a', 'b', 'c')]
    _npm.ensure_proxy_hosts(_client(npm), specs)
    client = _client(npm)
    results = _npm.ensure_proxy_hosts(client, specs)
    assert [r['changed'] for r in results] == [False, False, False]
    assert client.calls == [('POST', '/api/tokens'), ('GET', '/api/nginx/proxy-hosts')]


def test_ensure_proxy_hosts_moves_a_domain_from_one_host_to_the_next(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec(domain_names=['a.example.com', 'b.example.com']))
    _npm.ensure_proxy_host(_client(npm), _full_spec(domain_names=['c.example.com'], forward_host='c'))
    specs = [
        _full_spec(domain_names=['a.example.com']),
        _full_spec(domain_names=['c.example.com', 'b.example.com'], forward_host='c'),
    ]
    client = _client(npm)
    planned = _npm.ensure_proxy_hosts(client, specs, check_mode=True)
    assert [r['changes']['fields'] for r in planned] == [['domain_names'], ['domain_names']]
    assert _writes(client) == []
    results = _npm.ensure_proxy_hosts(client, specs)
    assert [r['changed'] for r in results] == [True, True]
    assert npm.hosts[1]['domain_names'] == ['a.example.com']
    assert npm.hosts[2]['domain_names'] == ['c.example.com', 'b.example.com']
    # The hosts were read again after the first write, not before.
    assert [c for c in client.calls if c[0] == 'GET' and c[1] == '/api/nginx/proxy-hosts'] == [
        ('GET', '/api/nginx/proxy-hosts')
    ] * 3


def test_ensure_proxy_hosts_conflict_fails_before_any_write_naming_the_host(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec(domain_names=['x.example.com']))
    _npm.ensure_proxy_host(_client(npm), _full_spec(domain_names=['b.example.com']))
    specs = [_full_spec(domain_names=['a.example.com']), _full_spec(domain_names=['b.example.com', 'x.example.com'])]
    client = _client(npm)
    with pytest.raises(_npm.DomainConflictError) as excinfo:
        _npm.ensure_proxy_hosts(client, specs)
    assert str(excinfo.value).startswith(
        'proxy host b.example.com, x.example.com (hosts[1]): proxy host id 1 (domains: x.example.com)'
    )
    assert excinfo.value.results == []
    assert _writes(client) == []


def test_host_specs_entries_take_the_top_level_values():
    params = _full_spec(domain_names=None, forward_port=80, block_exploits=True, state='present')
    params['hosts'] = [
        dict.fromkeys(_npm.HOST_OPTIONS) | {'domain_names': ['a.example.com'], 'forward_host': 'a'},
        dict.fromkeys(_npm.HOST_OPTIONS)
        | {'domain_names': ['b.example.com'], 'forward_port': 81, 'block_exploits': False},
    ]
    specs = _npm.host_specs(params)
    assert [(s['forward_host'], s['forward_port'], s['block_exploits'], s['state']) for s in specs] == [
        ('a', 80, True, 'present'),
        ('blue', 81, False, 'present'),
    ]
    assert _npm.host_specs(_full_spec()) == [_full_spec()]


# ---------------------------------------------------------------------------
# The forward switch
# ---------------------------------------------------------------------------


def _forward(**kw):
    spec = {'domain_names': ['a.example.com'], 'forward_host': 'green', 'forward_port': 8080, 'forward_scheme': None}
    spec.update(kw)
    return spec


def test_switch_forward_changes_only_the_target_and_verifies(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec(block_exploits=True, advanced_config='client_max_body_size 5m;'))
    npm.reload_lag = 2
    with FakeNPMPublic(npm) as public:
        client = _client(npm)
        spec = _forward(verify_url=f'{public.url}/health', verify_expect='green:8080', verify_interval=0.05)
        result = _npm.switch_forward(client, spec)
    assert result['changed'] is True
    assert result['previous'] == {'forward_scheme': 'http', 'forward_host': 'blue', 'forward_port': 8080}
    assert _writes(client) == [('PUT', '/api/nginx/proxy-hosts/1')]
    assert result['verify']['attempts'] == 3
    assert npm.hosts[1]['block_exploits'] is True
    assert npm.hosts[1]['advanced_config'] == 'client_max_body_size 5m;'
    client = _client(npm)
    assert _npm.switch_forward(client, _forward())['changed'] is False
    assert _writes(client) == []


def test_switch_forward_check_mode_and_unknown_host(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    client = _client(npm)
    result = _npm.switch_forward(client, _forward(), check_mode=True)
    assert result['diff']['after']['forward_host'] == 'green'
    assert _writes(client) == []
    with pytest.raises(ValueError, match=r'no proxy host of NPM serves z\.example\.com'):
        _npm.switch_forward(client, _forward(domain_names=['z.example.com']))


def test_switch_forward_verify_deadline(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    with FakeNPMPublic(npm) as public:
        spec = _forward(verify_url=public.url, verify_expect='never-shown', verify_timeout=0.2, verify_interval=0.05)
        with pytest.raises(_npm.VerifyError, match="did not show 'never-shown'") as excinfo:
            _npm.switch_forward(_client(npm), spec)
    assert excinfo.value.result['previous']['forward_host'] == 'blue'


def test_switch_forward_rejected_by_nginx_puts_the_previous_target_back(npm, monkeypatch):
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    real = fake_npm.nginx_test

    def refuse_broken(host_id, record):
        if record['forward_host'] == 'broken':
            return 'nginx: [emerg] invalid port in upstream "broken"'
        return real(host_id, record)

    monkeypatch.setattr(fake_npm, 'nginx_test', refuse_broken)
    with pytest.raises(_npm.NginxOfflineError, match='previous configuration keeps serving'):
        _npm.switch_forward(_client(npm), _forward(forward_host='broken'))
    assert npm.hosts[1]['forward_host'] == 'blue'
    assert npm.hosts[1]['meta'] == {'nginx_online': True, 'nginx_err': None}
    assert npm.served[1]['forward_host'] == 'blue'


@pytest.mark.parametrize(
    'answer, used',
    [
        ({'id': 3, 'enabled': True, 'meta': {'nginx_online': True, 'nginx_err': None}}, True),
        ({'id': 3, 'enabled': 1, 'meta': {'nginx_online': False, 'nginx_err': 'emerg'}}, True),
        # NPM configures no nginx for a disabled host: its meta is the old one, read again.
        ({'id': 3, 'enabled': False, 'meta': {'nginx_online': True}}, False),
        ({'id': 4, 'enabled': True, 'meta': {'nginx_online': True}}, False),
        ({'id': 3, 'enabled': True, 'meta': {}}, False),
        ({'id': 'x', 'meta': {'nginx_online': True}}, False),
        (None, False),
        ([], False),
    ],
)
def test_a_write_is_read_back_unless_npm_answered_with_nginx_verdict(answer, used):
    assert (_npm._answered(answer, 3) is not None) is used
    if used:
        assert _npm._answered(answer, 3) is answer


def test_a_forward_written_again_with_its_record_lists_and_reads_nothing(npm):
    _npm.ensure_proxy_host(_client(npm), _full_spec())
    client = _client(npm)
    result, record = _npm.forward_host_record(client, _forward(forward_host='green'))
    assert result['previous']['forward_host'] == 'blue'
    assert record['forward_host'] == 'green'
    assert record['meta']['nginx_online'] is True
    assert [c[0] for c in client.calls] == ['POST', 'GET', 'PUT']  # the login, the listing, the write
    again = _client(npm)
    result, record = _npm.forward_host_record(again, _forward(forward_host='blue'), record=record)
    assert result['previous']['forward_host'] == 'green'
    assert [c[0] for c in again.calls] == ['POST', 'PUT']
    assert npm.served[1]['forward_host'] == 'blue'


def test_locations_order_does_not_count_and_a_bad_location_is_put_back(npm):
    locations = [
        {'path': '/api', 'forward_host': 'api', 'forward_port': 8080},
        {'path': '/cms', 'forward_scheme': 'http', 'forward_host': 'directus', 'forward_port': '8055'},
    ]
    _npm.ensure_proxy_host(_client(npm), _full_spec(locations=locations))
    client = _client(npm)
    assert _npm.ensure_proxy_host(client, _full_spec(locations=list(reversed(locations))))['changed'] is False
    assert _writes(client) == []
    ghost = locations + [{'path': '/old', 'forward_host': 'ghost-app', 'forward_port': 80}]
    with pytest.raises(_npm.NginxOfflineError, match='host not found in upstream "ghost-app"') as excinfo:
        _npm.ensure_proxy_host(_client(npm), _full_spec(locations=ghost))
    assert excinfo.value.restored is True
    assert [loc['path'] for loc in npm.hosts[1]['locations']] == ['/api', '/cms']
    assert npm.hosts[1]['meta']['nginx_online'] is True
    assert [loc['path'] for loc in npm.served[1]['locations']] == ['/api', '/cms']


def test_connect_keeps_a_session_for_the_next_run_with_token_cache(npm, tmp_path):
    cache = tmp_path / '.npm-session'
    params = {
        'url': npm.url,
        'username': ADMIN,
        'password': PASSWORD,
        'validate_certs': True,
        'timeout': 5,
        'token_cache': str(cache),
    }
    client = _npm.connect(params, check_mode=True)[0]
    assert client.calls == [('POST', '/api/tokens')]
    assert not cache.exists(), 'check mode writes nothing'
    client = _npm.connect(params)[0]
    assert client.calls == [('POST', '/api/tokens'), ('GET', '/api/tokens')], 'the login, then a 15-minute token kept'
    assert cache.stat().st_mode & 0o777 == 0o600
    kept = json.loads(cache.read_text())['token']
    assert '-15m-' in kept
    client, created = _npm.connect(params)
    assert created is False
    # The next run resumes the session (no login): its token traded for one of a day, a new 15-minute one kept.
    assert client.calls == [('GET', '/api/tokens'), ('GET', '/api/tokens')]
    assert '-1d-' in client._token
    client.list_proxy_hosts()
    assert json.loads(cache.read_text())['token'] not in (kept, client._token), 'each run keeps a new session'
    kept_text = cache.read_text()
    client = _npm.connect(params, check_mode=True)[0]
    assert client.calls == [('GET', '/api/tokens')], 'check mode resumes too'
    assert cache.read_text() == kept_text, 'and writes nothing'
    with pytest.raises(_npm.NPMAuthError, match='refused the login'):
        _npm.connect(dict(params, password='a-wrong-password-7'))  # a kept session does not hide a wrong password
    npm.tokens.clear()  # NPM no longer knows it (expired, or NPM's keys changed)
    client = _npm.connect(params)[0]
    assert client.calls == [('GET', '/api/tokens'), ('POST', '/api/tokens'), ('GET', '/api/tokens')]
    assert client.list_proxy_hosts() == []
