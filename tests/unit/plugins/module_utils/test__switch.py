# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The switch's rules (what differs, handover or recreate) against a fake Docker and the fake NPM API on 127.0.0.1."""

from __future__ import annotations

import types

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm, _proxy_marker, _switch
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import fake_npm
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_compose import PROJECT, FakeDocker
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_npm import FakeNPM, FakeNPMPublic
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.npm_module import ADMIN

PASSWORD = 'Switch-Pa55-literal'
SERVICES = ['db', 'api', 'frontend', 'proxy']


@pytest.fixture
def npm():
    with FakeNPM({ADMIN: PASSWORD}) as server:
        client = _npm.NPMClient(server.url, ADMIN, PASSWORD, timeout=5)
        for service, domain in (('api', 'api.example.com'), ('frontend', 'example.com')):
            client.create_proxy_host(
                {'domain_names': [domain], 'forward_scheme': 'http', 'forward_host': service, 'forward_port': 3000}
            )
        with FakeNPMPublic(server) as public:
            server.public = public
            yield server


def _spec(npm, **kw):
    spec = {
        'project': PROJECT,
        'project_dir': '/opt/deploy-avatar',
        'files': ['docker-compose.prod.yml'],
        'all_services': SERVICES,
        'services': {
            'api': {'name': 'api', 'domain': 'api.example.com', 'port': 3000, 'health_path': '/health'},
            'frontend': {'name': 'frontend', 'domain': 'example.com', 'port': 3000, 'health_path': '/'},
        },
        'strategy': 'handover',
        # The fake public side answers "served by <host>:<port>": the new container numbered 2.
        'expect': '-2:3000',
        'proxy_url': npm.public.url,
        'drain': 0,
        'health_timeout': 5,
        'verify_timeout': 5,
        'validate_certs': True,
    }
    spec.update(kw)
    return spec


def _spec_without_npm():
    """A spec whose proxy is never reached (nothing listens on port 9)."""
    return _spec(types.SimpleNamespace(public=types.SimpleNamespace(url='http://127.0.0.1:9')))


def _connect(npm):
    return lambda: _npm.connect(
        {'url': npm.url, 'username': ADMIN, 'password': PASSWORD, 'validate_certs': True, 'timeout': 5}
    )[0]


def _pin_api(npm, container):
    """Point the api's proxy host at ``container``, as a handover killed after its switch leaves it."""
    client = _connect(npm)()
    host = next(h for h in client.list_proxy_hosts() if h['domain_names'] == ['api.example.com'])
    client.update_proxy_host(host['id'], {'forward_host': container})


def _switch_run(docker, npm, **kw):
    return _switch.switch(
        docker, _spec(npm, **kw), _connect(npm), sleep=lambda s: None, http_ok=lambda url: (True, 'ok')
    )


def _forward_hosts(npm):
    client = _npm.connect(
        {'url': npm.url, 'username': ADMIN, 'password': PASSWORD, 'validate_certs': True, 'timeout': 5}
    )[0]
    return {h['domain_names'][0]: h['forward_host'] for h in client.list_proxy_hosts()}


@pytest.mark.parametrize(
    'text, expected',
    [
        (' DRY-RUN MODE -  Container p-api-1  Recreated\n DRY-RUN MODE -  Container p-db-1  Running', ['api']),
        (' DRY-RUN MODE -  Container 8a9ea27cf760_p-api-1  Started', ['api']),
        (' DRY-RUN MODE -  Container p-frontend-1  Created', ['frontend']),
        (' DRY-RUN MODE -  Container p-db-1  Running\n DRY-RUN MODE -  Container p-api-1  Running', []),
    ],
)
def test_what_differs_is_what_compose_would_do(text, expected):
    assert _switch.changed_services(_switch.parse_dry_run(text, 'p', SERVICES), SERVICES) == expected


def test_a_service_whose_name_holds_another_is_not_confused():
    parsed = _switch.parse_dry_run(' DRY-RUN MODE -  Container p-api-worker-1  Recreated', 'p', ['api', 'api-worker'])
    assert parsed == {'api-worker': ['Recreated']}


def test_nothing_differs_touches_nothing_and_writes_nothing_to_npm(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    before = list(npm.requests)
    result = _switch.switch(docker, _spec(npm), _connect(npm))
    assert result['changed'] is False
    assert not [c for c in docker.calls if 'up' in c and '--dry-run' not in c]
    # The login ran beside the dry run; nothing else reached NPM.
    assert [r[:2] for r in npm.requests[len(before) :] if r[1] != '/api/tokens' and r[1] != '/api/'] == []
    assert any('planned: hand over nothing; recreate nothing' in s for s in result['steps'])


def test_check_mode_never_logs_in_to_npm():
    logins = []
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    spec = dict(_spec_without_npm(), all_services=None)
    result = _switch.switch(docker, spec, lambda: logins.append(1), check_mode=True)
    assert result['handover'] == ['api']
    assert logins == []
    # all_services not given: read from compose, once.
    assert len([c for c in docker.calls if 'config' in c]) == 1


def test_npm_unreachable_fails_a_handover_before_anything_starts_but_not_a_recreate(npm):
    def down():
        raise _npm.NPMConnectionError('connection refused')

    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(db='pg16')
    result = _switch.switch(docker, _spec(npm), down, sleep=lambda s: None)
    assert result['recreate'] == ['db']
    docker.desired.update(api='v2')
    (old,) = docker.of('api')
    with pytest.raises(_switch.SwitchError, match='needed to hand over api') as err:
        _switch.switch(docker, _spec(npm), down, sleep=lambda s: None)
    assert err.value.switched is False
    assert docker.of('api') == [old]


def test_a_release_hands_over_api_and_frontend_and_leaves_the_proxy_on_the_alias(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    old = {s: docker.of(s)[0] for s in ('api', 'frontend', 'db')}
    docker.desired.update(api='v2', frontend='v2')
    result = _switch_run(docker, npm)
    assert result['changed'] is True
    assert result['handover'] == ['api', 'frontend']
    assert result['recreate'] == []
    for service in ('api', 'frontend'):
        (now,) = docker.of(service)
        assert now != old[service]
        assert docker.containers[now]['config'] == 'v2'
        assert result['services'][service]['new']['name'] == f'{PROJECT}-{service}-2'
    assert docker.of('db') == [old['db']]
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}
    # Pinned to the old, switched to the new, back on the alias: in that order.
    api_steps = [s.split(':', 1)[1] for s in result['steps'] if ' api: proxy' in s]
    assert [s.split('forwards to ')[1].split(' ')[0] for s in api_steps] == [
        f'{PROJECT}-api-1',
        f'{PROJECT}-api-2',
        'api',
    ]
    assert _switch_run(docker, npm)['changed'] is False


def test_a_new_container_that_cannot_start_is_removed_and_nothing_was_switched(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, broken={'v2-broken'})
    (old,) = docker.of('api')
    docker.desired.update(api='v2-broken')
    with pytest.raises(_switch.SwitchError) as err:
        _switch_run(docker, npm)
    assert 'Nothing was switched for api' in str(err.value)
    assert 'cannot run' in str(err.value)
    assert err.value.switched is False
    assert docker.of('api') == [old]
    assert _forward_hosts(npm)['api.example.com'] == 'api'


def test_a_stateful_change_is_recreated_in_place_and_the_first_deploy_creates(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    (old_db,) = docker.of('db')
    docker.desired.update(db='pg16')
    result = _switch_run(docker, npm)
    assert result['recreate'] == ['db']
    assert result['handover'] == []
    assert docker.of('db') != [old_db]
    fresh = FakeDocker({})
    fresh.desired.update({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    result = _switch.switch(fresh, _spec(npm), lambda: pytest.fail('NPM contacted'))
    assert result['recreate'] == SERVICES
    assert all(len(fresh.of(s)) == 1 for s in SERVICES)


def test_strategy_recreate_never_hands_over(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    result = _switch.switch(docker, _spec(npm, strategy='recreate'), lambda: pytest.fail('NPM contacted'))
    assert result['recreate'] == ['api']
    assert result['handover'] == []


@pytest.mark.parametrize('bad', [{'name': 'api', 'health_path': 'health'}, {'name': 'api', 'verify_path': 'x'}])
def test_paths_must_be_absolute(bad):
    with pytest.raises(ValueError, match='must start with /'):
        _switch.service_specs([bad])


def test_an_unhealthy_new_container_fails_at_once_and_the_old_keeps_serving(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, unhealthy={'v2-sick'})
    (old,) = docker.of('api')
    (old_front,) = docker.of('frontend')
    docker.desired.update(api='v2-sick', frontend='v2')
    with pytest.raises(_switch.SwitchError) as err:
        _switch_run(docker, npm)
    assert 'Nothing was switched for api' in str(err.value)
    assert 'unhealthy' in str(err.value)
    assert docker.of('api') == [old]
    assert docker.of('frontend') == [old_front]  # the switch stops at the first failure
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}


def test_the_proxy_not_serving_the_new_version_switches_back(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    (old,) = docker.of('api')
    docker.desired.update(api='v2')
    with pytest.raises(_switch.SwitchError) as err:
        _switch_run(docker, npm, expect='never served', verify_timeout=1)
    assert 'Nothing was switched for api' in str(err.value)
    assert docker.of('api') == [old]
    assert _forward_hosts(npm)['api.example.com'] == 'api'


def _interrupted(npm, pinned_to):
    """api v1 serving, a killed run's api v2 started beside it, the proxy pinned to container ``pinned_to``."""
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    docker._create('api', 'v2')
    client = _connect(npm)()
    host = next(h for h in client.list_proxy_hosts() if h['domain_names'] == ['api.example.com'])
    client.update_proxy_host(host['id'], {'forward_host': f'{PROJECT}-api-{pinned_to}'})
    return docker


def test_a_handover_cut_short_on_the_old_container_keeps_it_then_hands_over(npm):
    docker = _interrupted(npm, pinned_to=1)
    old, leftover = docker.of('api')
    result = _switch_run(docker, npm)
    assert result['interrupted'] == ['api']
    assert result['handover'] == ['api']
    (now,) = docker.of('api')
    assert now not in (old, leftover)
    assert docker.containers[now]['config'] == 'v2'
    assert _forward_hosts(npm)['api.example.com'] == 'api'
    assert any('left by an interrupted handover' in s and f'keeping {PROJECT}-api-1' in s for s in result['steps'])
    assert _switch_run(docker, npm)['changed'] is False


def test_a_handover_cut_short_on_the_new_container_keeps_it_and_switches_nothing_more(npm):
    docker = _interrupted(npm, pinned_to=2)
    _old, new = docker.of('api')
    result = _switch_run(docker, npm)
    assert result['changed'] is True
    assert result['handover'] == []
    assert docker.of('api') == [new]
    assert _forward_hosts(npm)['api.example.com'] == 'api'
    assert _switch_run(docker, npm)['changed'] is False


def test_check_mode_reports_an_interrupted_handover_and_touches_nothing(npm):
    docker = _interrupted(npm, pinned_to=1)
    ids = docker.of('api')
    result = _switch.switch(docker, _spec(npm), lambda: pytest.fail('NPM contacted'), check_mode=True)
    assert result['interrupted'] == ['api']
    assert docker.of('api') == ids
    assert _forward_hosts(npm)['api.example.com'] == f'{PROJECT}-api-1'


def test_a_failure_after_settling_says_that_something_changed(npm):
    docker = _interrupted(npm, pinned_to=1)

    def failing_dry_run(argv, **kw):
        if '--dry-run' in argv:
            return 1, '', 'compose: no such file'
        return docker(argv, **kw)

    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(failing_dry_run, _spec(npm), _connect(npm), sleep=lambda s: None, http_ok=lambda u: (True, 'ok'))
    assert err.value.switched is True
    assert any('left by an interrupted handover' in s for s in err.value.result['steps'])
    assert len(docker.of('api')) == 1


def test_the_recreate_strategy_never_settles_through_the_proxy(npm):
    docker = _interrupted(npm, pinned_to=1)
    result = _switch.switch(
        docker, _spec(npm, strategy='recreate'), lambda: pytest.fail('NPM contacted'), sleep=lambda s: None
    )
    assert result['interrupted'] == []
    assert result['recreate'] == ['api']


def test_an_interrupted_handover_pinned_to_a_unhealthy_container_keeps_the_healthy_one(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, unhealthy={'v2-sick'})
    docker.desired.update(api='v2-sick')
    docker._create('api', 'v2-sick')
    old, _sick = docker.of('api')
    _pin_api(npm, f'{PROJECT}-api-2')
    with pytest.raises(_switch.SwitchError):
        _switch_run(docker, npm)  # the handover to the unhealthy release fails and is undone
    assert docker.of('api') == [old]
    assert _forward_hosts(npm)['api.example.com'] == 'api'


def test_an_interrupted_handover_pinned_to_a_new_container_that_crashes_keeps_both_and_says_so(npm):
    # A run killed right after moving the proxy to the new container: the next run settles that container
    # before it removes the old one; this one crashes while it settles.
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, crashing={'v2': 1})
    docker.desired.update(api='v2')
    docker._create('api', 'v2')
    old, new = docker.of('api')
    _pin_api(npm, f'{PROJECT}-api-2')
    with pytest.raises(_switch.SwitchError) as err:
        _timed_switch(docker, npm, settle=2)
    assert 'settling the interrupted handover of api failed' in str(err.value)
    assert 'must settle' in str(err.value)
    assert err.value.switched is True
    assert docker.of('api') == [old, new], 'nothing removed: the old container is still there'


def test_a_settled_container_that_answers_late_is_kept_and_one_that_never_answers_is_undone(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    answers = iter([True] + [False, False, True] * 3)
    ticks = iter(range(100_000))
    result = _switch.switch(
        docker,
        _spec(npm, settle=2),
        _connect(npm),
        clock=lambda: next(ticks) * 0.5,
        sleep=lambda s: None,
        http_ok=lambda url: (next(answers), 'slow'),
    )
    assert [docker.containers[c]['config'] for c in docker.of('api')] == ['v2']
    assert any('without a restart' in step for step in result['steps'])
    docker.desired.update(api='v3')
    before = docker.of('api')
    calls = []

    def first_only(url):
        calls.append(url)
        return (len(calls) == 1, 'connection refused')

    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(
            docker,
            _spec(npm, settle=2, verify_timeout=3, expect='-3:3000'),
            _connect(npm),
            clock=lambda: next(ticks) * 0.5,
            sleep=lambda s: None,
            http_ok=first_only,
        )
    assert err.value.switched is False
    assert 'stopped answering on its own address after the 2s it must settle (connection refused)' in str(err.value)
    assert docker.of('api') == before
    assert _forward_hosts(npm)['api.example.com'] == 'api'


def test_settle_zero_adds_no_docker_call(npm):
    counts = []
    for settle in (0, 2):
        docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
        docker.desired.update(api='v2')
        _timed_switch(docker, npm, settle=settle)
        counts.append(sum(1 for call in docker.calls if call[:2] == ['docker', 'inspect']))
    assert counts[0] < counts[1]


class _Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def _drain_run(docker, npm, drain):
    clock = _Clock()
    result = _switch.switch(
        docker, _spec(npm, drain=drain), _connect(npm), clock=clock, sleep=clock.sleep, http_ok=lambda url: (True, 'ok')
    )
    return result, clock


def _tops_before_rm(docker):
    """How many `docker top` calls came after the new containers' start and before the old ones were removed."""
    start = next(i for i, c in enumerate(docker.calls) if c[:2] == ['docker', 'start'])
    rm = next(i for i, c in enumerate(docker.calls) if c[:2] == ['docker', 'rm'])
    return len([c for c in docker.calls[start:rm] if c[:2] == ['docker', 'top']])


def test_the_drain_ends_when_the_proxy_workers_from_before_the_switch_have_exited(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    # Before the last switch: workers 10 and 11. Then 10 still finishes a request beside the new 12 and 13.
    docker.proxy_workers = [{'10', '11'}, {'10', '12', '13'}, {'10', '12', '13'}, {'12', '13'}]
    docker.pin_workers = [{'10', '11'}, {'10~', '11~', '12'}]  # the pins' reload took effect at the first look
    result, clock = _drain_run(docker, npm, drain=30)
    assert _tops_before_rm(docker) == 4
    assert clock.now < 2
    assert all(f'{PROJECT}-{s}-1' not in docker.name(c) for s in ('api', 'frontend') for c in docker.of(s))
    assert any("the proxy's old workers finished" in s for s in result['steps'])
    # Both old containers go in one stop and one rm.
    stops = [c for c in docker.calls if c[:2] == ['docker', 'stop']]
    assert len(stops) == 1
    assert len(stops[0]) == 6


def test_the_drain_is_bounded_when_an_old_worker_stays(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    docker.proxy_workers = [{'10', '11'}, {'11', '12'}]  # 11 holds a long-lived connection
    docker.pin_workers = [{'10', '11'}, {'10~', '11~', '12'}]
    result, clock = _drain_run(docker, npm, drain=3)
    assert 3 <= clock.now < 4
    assert any('1 old proxy worker(s) still open' in s for s in result['steps'])
    assert len(docker.of('api')) == 1
    assert docker.containers[docker.of('api')[0]]['config'] == 'v2'


def test_without_a_view_of_the_proxy_workers_the_drain_is_its_full_length(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    docker.proxy_workers = None  # docker top fails
    result, clock = _drain_run(docker, npm, drain=2.5)
    assert 2.5 in clock.slept
    assert any('after 2.5s of drain' in s for s in result['steps'])
    # Nor is the wait for the pins' reload skipped: it is given the drain's time too, and said.
    assert clock.slept.count(2.5) == 2
    assert any("2.5s for the pins' reload (the proxy's workers could not be read)" in s for s in result['steps'])


def test_a_container_that_cannot_be_removed_is_an_error_even_beside_one_already_gone():
    calls = []

    def run(argv):
        calls.append(argv)
        if argv[:2] == ['docker', 'rm']:
            return 1, '', 'Error: No such container: aaa\nError response from daemon: cannot remove bbb: device busy\n'
        return 0, '', ''

    docker = _switch._Docker(run, PROJECT, '/opt/deploy-avatar', ['docker-compose.prod.yml'])
    with pytest.raises(_switch.SwitchError, match='device busy'):
        docker.remove_all(['aaa', 'bbb'])
    docker_gone = _switch._Docker(
        lambda argv: (1, '', 'Error: No such container: aaa\n') if argv[1] == 'rm' else (0, '', ''),
        PROJECT,
        '/opt/deploy-avatar',
        ['docker-compose.prod.yml'],
    )
    docker_gone.remove_all(['aaa'])  # already gone: nothing to report


def test_a_new_container_whose_docker_healthcheck_has_not_run_yet_is_handed_over_once_it_answers(npm):
    # Docker's first healthcheck comes one interval after the start: the handover does not wait for it
    # (the deploy's health gate does); the answer on the container's own address is what counts.
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, starting={'v2'})
    docker.desired.update(api='v2')
    result = _switch_run(docker, npm)
    assert result['services']['api']['action'] == 'handover'
    assert [docker.containers[c]['config'] for c in docker.of('api')] == ['v2']
    ready = f'api: {PROJECT}-api-2 answers on its own address (Docker health starting)'
    assert any(step.endswith(ready) for step in result['steps'])


def test_a_new_container_that_does_not_answer_is_not_handed_over_whatever_docker_says(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, starting={'v2'})
    old = docker.of('api')
    docker.desired.update(api='v2')
    ticks = iter(range(10_000))
    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(
            docker,
            _spec(npm),
            _connect(npm),
            clock=lambda: float(next(ticks)),
            sleep=lambda s: None,
            http_ok=lambda url: (False, 'connection refused'),
        )
    assert err.value.switched is False
    assert 'did not become ready' in str(err.value)
    assert 'connection refused' in str(err.value)
    assert docker.of('api') == old


def _timed_switch(docker, npm, **kw):
    """The switch on a clock that advances 0.5 s per reading (settle waits in its own time)."""
    ticks = iter(range(100_000))
    return _switch.switch(
        docker,
        _spec(npm, **kw),
        _connect(npm),
        clock=lambda: next(ticks) * 0.5,
        sleep=lambda s: None,
        http_ok=lambda url: (True, 'ok'),
    )


def test_a_new_container_that_crashes_while_it_settles_is_undone_and_the_old_keeps_serving(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, crashing={'v2': 2})
    old = docker.of('api')
    docker.desired.update(api='v2')
    with pytest.raises(_switch.SwitchError) as err:
        _timed_switch(docker, npm, settle=3)
    assert err.value.switched is False
    assert 'stopped (state restarting, 1 restarts)' in str(err.value)
    assert 'within the 3s it must settle' in str(err.value)
    assert str(err.value).startswith('Nothing was switched for api')
    assert docker.of('api') == old
    assert _forward_hosts(npm)['api.example.com'] == 'api'


def test_new_containers_that_settle_replace_the_old_ones_after_the_settle_time(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    result = _timed_switch(docker, npm, settle=3)
    assert [docker.containers[c]['config'] for c in docker.of('api')] == ['v2']
    settled = [s for s in result['steps'] if 'without a restart' in s]
    assert len(settled) == 1
    ran = float(settled[0].split('ran ', 1)[1].split('s ', 1)[0])
    assert ran >= 3


def test_both_proxy_hosts_are_switched_before_either_is_verified(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    npm.public_requests.clear()
    result = _switch_run(docker, npm)
    puts = [i for i, r in enumerate(npm.requests) if r[0] == 'PUT']
    # Pinned (2 PUTs), switched to the new containers (2 PUTs), back on the alias (2 PUTs).
    assert len(puts) == 6
    second_switch = puts[3]
    assert npm.public_requests
    assert all(index > second_switch for index, _domain in npm.public_requests)
    # (the index is the number of API requests made before it: the fifth PUT's own index at most)
    assert all(index <= puts[4] for index, _domain in npm.public_requests)
    # The hosts are listed before the pins and again after the gate (NPM may have been edited meanwhile), not before
    # each write; no write is read back (NPM's answer to the PUT holds nginx's verdict).
    api = [r[:2] for r in npm.requests]
    assert api.count(('GET', '/api/nginx/proxy-hosts')) == 2, api
    assert not [r for r in api if r[0] == 'GET' and r[1].startswith('/api/nginx/proxy-hosts/')], api
    order = [s.split('s ', 1)[1] for s in result['steps'] if '-2' in s or 'serves' in s]
    assert order == [
        f'api: started {PROJECT}-api-2 beside {PROJECT}-api-1',
        f'frontend: started {PROJECT}-frontend-2 beside {PROJECT}-frontend-1',
        f'api: {PROJECT}-api-2 answers on its own address (Docker health healthy)',
        f'frontend: {PROJECT}-frontend-2 answers on its own address (Docker health healthy)',
        f'api: proxy forwards to {PROJECT}-api-2',
        f'frontend: proxy forwards to {PROJECT}-frontend-2',
        "api: the proxy serves '-2:3000'",
        "frontend: the proxy serves '-2:3000'",
    ]


def test_the_second_verification_failing_puts_both_services_back(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    old = {s: docker.of(s) for s in ('api', 'frontend')}
    docker.desired.update(api='v2', frontend='v2')
    spec = _spec(npm, verify_timeout=1)
    # frontend listens on 3001: the proxy serves "...-frontend-2:3001", never the expected "-2:3000".
    spec['services']['frontend'] = dict(spec['services']['frontend'], port=3001)
    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(docker, spec, _connect(npm), sleep=lambda s: None, http_ok=lambda url: (True, 'ok'))
    message = str(err.value)
    assert message.startswith('Nothing was switched for api and frontend:')
    assert "did not show '-2:3000'" in message
    assert err.value.switched is False
    steps = err.value.result['steps']
    # Both were moved to the new containers and api was verified before frontend's check failed.
    assert any(f'frontend: proxy forwards to {PROJECT}-frontend-2' in s for s in steps)
    assert any("api: the proxy serves '-2:3000'" in s for s in steps)
    # Each service pinned to its old container, moved to the new one, then the undo: back to the old one
    # and to the alias.
    for service in ('api', 'frontend'):
        assert docker.of(service) == old[service]
        targets = [s.split('forwards to ')[1] for s in steps if f' {service}: proxy forwards to ' in s]
        assert targets == [f'{PROJECT}-{service}-1', f'{PROJECT}-{service}-2', f'{PROJECT}-{service}-1', service]
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}


def test_the_drain_waits_for_workers_of_an_earlier_reload_that_started_after_the_snapshot(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    # Snapshot before the last PUT: 10 and 11. The first PUT's reload started 12 only after it; once the
    # last reload serves, 12 is shutting down (it may still send frontend requests to the old container).
    docker.proxy_workers = [{'10', '11'}, {'12~', '13', '14'}, {'12~', '13', '14'}, {'13', '14'}]
    result, clock = _drain_run(docker, npm, drain=30)
    assert _tops_before_rm(docker) == 4
    assert clock.now >= 0.2
    assert any("the proxy's old workers finished" in s for s in result['steps'])


# The health gate run beside the switch's last steps (the Gate itself: test__gate.py).


class _GateDouble:
    """Stands for _gate.Gate: records what the switch asked and when, answers as told."""

    def __init__(self, docker, fails_first=None, fails_after=None):
        self.docker = docker
        self.fails_first, self.fails_after = fails_first, fails_after
        self.hold, self.started, self.passed_at = 3.0, 0.0, 1.0
        self.events = []

    def start(self, retired=()):
        # What ran when the gate started: the old containers are still there.
        self.events.append(('start', sorted(retired), {s: len(self.docker.of(s)) for s in ('api', 'frontend')}))

    def wait_done(self):
        self.events.append(('wait_done', {s: len(self.docker.of(s)) for s in ('api', 'frontend')}))
        return self.fails_first

    def finish(self, since):
        self.events.append(('finish', {s: len(self.docker.of(s)) for s in ('api', 'frontend')}))
        return self.fails_after

    def cancel(self):
        self.events.append(('cancel',))

    def result(self):
        return {
            'healthy': not (self.fails_first or self.fails_after),
            'msg': self.fails_first or self.fails_after or 'ok',
            'final_round': False,
        }


def _gated_run(docker, npm, gate):
    return _switch.switch(
        docker, _spec(npm), _connect(npm), sleep=lambda s: None, http_ok=lambda url: (True, 'ok'), gate=gate
    )


def test_the_old_containers_are_removed_only_once_the_gate_passed(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    olds = sorted(docker.of('api') + docker.of('frontend'))
    docker.desired.update(api='v2', frontend='v2')
    gate = _GateDouble(docker)
    result = _gated_run(docker, npm, gate)
    assert [e[0] for e in gate.events] == ['start', 'wait_done', 'finish']
    # Started and held with old and new running side by side, the old ones left out; finished once they were gone.
    assert gate.events[0][1] == olds
    assert gate.events[0][2] == {'api': 2, 'frontend': 2}
    assert gate.events[1][1] == {'api': 2, 'frontend': 2}
    assert gate.events[2][1] == {'api': 1, 'frontend': 1}
    assert result['gate']['healthy'] is True
    assert any('health gate: ok' in s for s in result['steps'])
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}


def test_a_gate_that_fails_before_the_old_containers_go_switches_the_proxy_back(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    old = {s: docker.of(s) for s in ('api', 'frontend')}
    docker.desired.update(api='v2', frontend='v2')
    gate = _GateDouble(docker, fails_first='api version (http check: expected v2)')
    with pytest.raises(_switch.SwitchError) as err:
        _gated_run(docker, npm, gate)
    assert err.value.switched is False
    assert (
        'Nothing was switched for api and frontend: the health gate failed while the old containers still ran'
        in str(err.value)
    )
    assert 'expected v2' in str(err.value)
    assert {s: docker.of(s) for s in ('api', 'frontend')} == old
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}
    assert err.value.result['gate']['healthy'] is False
    assert ('cancel',) in gate.events


def test_a_gate_that_fails_after_the_old_containers_went_says_the_stack_was_switched(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    gate = _GateDouble(docker, fails_after='api health (passed, then failed 2s into the 3s hold)')
    with pytest.raises(_switch.SwitchError) as err:
        _gated_run(docker, npm, gate)
    assert err.value.switched is True
    assert str(err.value).startswith('the health gate failed after the switch: api health')
    assert err.value.result['gate']['healthy'] is False
    assert docker.containers[docker.of('api')[0]]['config'] == 'v2'


def test_only_a_handover_runs_the_gate(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    gate = _GateDouble(docker)
    assert 'gate' not in _gated_run(docker, npm, gate)
    # Recreated in place only (a first deploy, a stateful service): the caller checks after declaring the proxy.
    docker.desired.update(db='pg16', proxy='npm2')
    result = _gated_run(docker, npm, gate)
    assert result['recreate'] == ['db', 'proxy']
    assert 'gate' not in result
    assert gate.events == []


def test_a_compose_up_that_fails_part_way_counts_as_switched(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(db='pg16')

    def run(argv, **kw):
        if 'up' in argv and '--dry-run' not in argv:
            return 1, '', 'Error response from daemon: no space left on device'
        return docker(argv, **kw)

    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(run, _spec(npm), _connect(npm), sleep=lambda s: None, http_ok=lambda u: (True, 'ok'))
    assert err.value.switched is True
    assert 'no space left on device' in str(err.value)


def test_an_answer_that_cannot_be_read_after_the_switch_began_counts_as_switched(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(db='pg16')
    began = []

    def run(argv, **kw):
        if 'up' in argv and '--dry-run' not in argv:
            began.append(argv)
        if began and argv[:2] == ['docker', 'inspect']:
            return 0, 'not json', ''
        return docker(argv, **kw)

    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(run, _spec(npm), _connect(npm), sleep=lambda s: None, http_ok=lambda u: (True, 'ok'))
    assert began
    assert err.value.switched is True
    assert 'what runs now could not be read' in str(err.value)


@pytest.fixture
def declared(tmp_path, monkeypatch):
    """A declaration on record, and NPM's database file that each write through the proxy API changes (as NPM's)."""
    database = tmp_path / 'database.sqlite'
    database.write_bytes(b'SQLite format 3\x00')
    marker = tmp_path / '.npm-declared'
    _proxy_marker.write(str(marker), 'key-1', str(database))
    writes = []
    real = _npm.forward_host_record

    def forward(client, params, **kw):
        answer = real(client, params, **kw)
        with open(database, 'ab') as handle:
            handle.write(b'row')
        writes.append(params['forward_host'])
        return answer

    monkeypatch.setattr(_npm, 'forward_host_record', forward)
    return types.SimpleNamespace(marker=marker, database=database, writes=writes)


def _chained_run(docker, npm, declared, **kw):
    chain = _proxy_marker.Chain(str(declared.marker), str(declared.database))
    return _switch.switch(
        docker, _spec(npm, **kw), _connect(npm), sleep=lambda s: None, http_ok=lambda url: (True, 'ok'), marker=chain
    )


def test_a_handover_whose_writes_were_the_only_changes_of_npm_records_the_declaration_again(npm, declared):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    result = _chained_run(docker, npm, declared)
    assert len(declared.writes) == 6  # pinned, switched, back on the alias: two hosts
    assert result['proxy_marker']['current'] is True
    assert result['proxy_marker']['key'] == 'key-1'
    assert _proxy_marker.read(str(declared.marker), str(declared.database))['current'] is True
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}


def test_a_change_of_npm_beside_the_handover_records_nothing(npm, declared):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')

    def web_ui_while_the_new_containers_start(url):
        # Between the switch's pins and its switch to the new containers: someone else writes to NPM.
        if len(declared.writes) == 2:
            with open(declared.database, 'ab') as handle:
                handle.write(b'someone else')
        return True, 'ok'

    chain = _proxy_marker.Chain(str(declared.marker), str(declared.database))
    result = _switch.switch(
        docker,
        _spec(npm),
        _connect(npm),
        sleep=lambda s: None,
        http_ok=web_ui_while_the_new_containers_start,
        marker=chain,
    )
    assert len(declared.writes) == 6
    assert result['proxy_marker'] == {
        'current': False,
        'key': 'key-1',
        'reason': "NPM's database changed during the switch, and not by the switch",
    }
    assert _proxy_marker.read(str(declared.marker), str(declared.database))['current'] is False


def test_a_failed_handover_or_a_stale_record_records_nothing(npm, declared):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'}, unhealthy={'v2-sick'})
    docker.desired.update(api='v2-sick')
    with pytest.raises(_switch.SwitchError) as err:
        _chained_run(docker, npm, declared)
    assert 'proxy_marker' not in err.value.result
    assert _proxy_marker.read(str(declared.marker), str(declared.database))['current'] is False
    # The record is stale now: the next switch records nothing either, however it goes.
    docker.desired.update(api='v2')
    result = _chained_run(docker, npm, declared)
    assert result['proxy_marker']['current'] is False
    assert result['proxy_marker']['reason'] == "NPM's database changed since the declaration"


def test_a_switch_that_recreates_the_proxy_itself_records_nothing(npm, declared):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(proxy='npm-2.15.2', api='v2')
    result = _chained_run(docker, npm, declared)
    assert 'proxy' in result['recreate']
    assert result['proxy_marker'] == {
        'current': False,
        'key': 'key-1',
        'reason': 'the proxy container itself was recreated',
    }
    # Removed before the proxy was recreated: a switch failing after that leaves no record to take for current.
    assert not declared.marker.exists()
    # A switch that recreates only another stateful service in place leaves NPM as it was: recorded again.
    _proxy_marker.write(str(declared.marker), 'key-1', str(declared.database))
    docker.desired.update(db='pg16')
    result = _chained_run(docker, npm, declared)
    assert result['recreate'] == ['db']
    assert result['proxy_marker']['current'] is True


def test_a_proxy_host_left_on_another_port_than_before_records_nothing(npm, declared):
    """The declaration named port 8080; the switch forwards to the port its spec names (3000) and puts the
    host name back: not where it was before, so NPM no longer holds the declaration."""
    client = _connect(npm)()
    host = next(h for h in client.list_proxy_hosts() if h['domain_names'] == ['api.example.com'])
    client.update_proxy_host(host['id'], {'forward_port': 8080})
    _proxy_marker.write(str(declared.marker), 'key-1', str(declared.database))
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')
    result = _chained_run(docker, npm, declared)
    assert result['handover'] == ['api']
    assert result['proxy_marker'] == {
        'current': False,
        'key': 'key-1',
        'reason': 'a proxy host was left forwarding elsewhere than before the switch',
    }


def _targets(npm):
    return {h['domain_names'][0]: h['forward_host'] for h in npm.hosts.values()}


def test_the_new_containers_are_created_beside_the_pins_and_start_only_once_both_hosts_are_pinned(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    seen = []

    def run(argv, **kw):
        # Each Docker command with the proxy hosts' targets at that moment.
        if argv[:2] == ['docker', 'start'] or ('--no-start' in argv and '--dry-run' not in argv):
            seen.append((argv[1] if argv[1] == 'start' else 'create', _targets(npm)))
        return docker(argv, **kw)

    _switch.switch(run, _spec(npm), _connect(npm), sleep=lambda s: None, http_ok=lambda url: (True, 'ok'))
    assert [what for what, _hosts in seen] == ['create', 'start']
    # Started with both hosts pinned to the old containers (the service names give the new ones from then on).
    assert seen[1][1] == {'api.example.com': f'{PROJECT}-api-1', 'example.com': f'{PROJECT}-frontend-1'}
    started = next(argv for argv in docker.calls if argv[:2] == ['docker', 'start'])
    assert sorted(started[2:]) == sorted(docker.of('api') + docker.of('frontend'))


def test_new_containers_that_cannot_start_are_removed_and_the_old_ones_keep_serving(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    olds = {s: docker.of(s) for s in ('api', 'frontend')}
    docker.desired.update(api='v2', frontend='v2')

    def run(argv, **kw):
        if argv[:2] == ['docker', 'start']:
            return 1, '', 'Error response from daemon: failed to create task: exec: "/missing": no such file'
        return docker(argv, **kw)

    with pytest.raises(_switch.SwitchError) as err:
        _switch.switch(run, _spec(npm), _connect(npm), sleep=lambda s: None, http_ok=lambda url: (True, 'ok'))
    assert err.value.switched is False
    assert str(err.value).startswith('Nothing was switched for api and frontend: docker start')
    assert 'no such file' in str(err.value)
    assert {s: docker.of(s) for s in ('api', 'frontend')} == olds
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}


def test_a_pin_that_fails_while_the_new_containers_are_created_removes_them(npm, monkeypatch):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    olds = {s: docker.of(s) for s in ('api', 'frontend')}
    docker.desired.update(api='v2', frontend='v2')
    real = fake_npm.nginx_test

    def refuse_the_old_frontend(host_id, record):
        if record['forward_host'] == f'{PROJECT}-frontend-1':
            return 'nginx: [emerg] host not found in upstream'
        return real(host_id, record)

    monkeypatch.setattr(fake_npm, 'nginx_test', refuse_the_old_frontend)
    with pytest.raises(_switch.SwitchError) as err:
        _switch_run(docker, npm)
    assert err.value.switched is False
    assert f'removed {PROJECT}-api-2' in str(err.value), str(err.value)
    assert not [argv for argv in docker.calls if argv[:2] == ['docker', 'start']]
    assert {s: docker.of(s) for s in ('api', 'frontend')} == olds


def test_the_new_containers_start_once_the_pins_reload_took_effect(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    # Before the last pin: workers 1 and 2; the reload has not begun at the first look, then 1 and 2 shut down.
    docker.pin_workers = [{'1', '2'}, {'1', '2'}, {'1~', '2~', '3', '4'}]
    result, clock = _drain_run(docker, npm, drain=3)
    start = next(i for i, c in enumerate(docker.calls) if c[:2] == ['docker', 'start'])
    assert len([c for c in docker.calls[:start] if c[:2] == ['docker', 'top']]) == 3
    assert any('the proxy reloaded with the pins' in s for s in result['steps'])
    assert clock.slept[:1] == [0.05]


def test_the_wait_for_the_pins_reload_is_bounded_by_the_drain(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2', frontend='v2')
    docker.pin_workers = [{'1', '2'}]  # never reloads
    result, _clock = _drain_run(docker, npm, drain=1)
    assert any('2 proxy worker(s) from before the pins still active after 1s' in s for s in result['steps'])
    assert [docker.containers[c]['config'] for c in docker.of('api')] == ['v2']


def test_a_new_container_created_but_never_started_by_a_killed_run_is_removed_at_once(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    (old,) = docker.of('api')
    created = docker._create('api', 'v1')
    docker.containers[created]['state'] = 'created'
    _pin_api(npm, f'{PROJECT}-api-1')
    before = len(npm.requests)
    clock = _Clock()
    result = _switch.switch(
        docker, _spec(npm), _connect(npm), clock=clock, sleep=clock.sleep, http_ok=lambda u: (True, '')
    )
    assert result['interrupted'] == ['api']
    assert docker.of('api') == [old]
    assert _forward_hosts(npm)['api.example.com'] == 'api'
    assert any(f'removed {PROJECT}-api-2 (created, never started)' in s for s in result['steps'])
    # Never served: no drain, no settle, no pin; one write, the proxy host back on the service's name.
    assert clock.slept == []
    assert [r[0] for r in npm.requests[before:] if r[0] == 'PUT'] == ['PUT']


def test_a_proxy_host_edited_in_npm_while_the_gate_holds_is_read_again_before_the_last_writes(npm):
    """Someone moves the api host's port in NPM while the gate holds: the switch's last write reads the host again
    and puts it back on the service's name and port (a record kept from before the gate would see no change)."""
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(api='v2')

    class EditedDuringTheHold(_GateDouble):
        def wait_done(self):
            client = _connect(npm)()
            host = next(h for h in client.list_proxy_hosts() if h['domain_names'] == ['api.example.com'])
            client.update_proxy_host(host['id'], {'forward_port': 9999})
            return super().wait_done()

    _gated_run(docker, npm, EditedDuringTheHold(docker))
    (host,) = [h for h in npm.hosts.values() if h['domain_names'] == ['api.example.com']]
    assert (host['forward_host'], int(host['forward_port'])) == ('api', 3000)


def test_the_pins_reload_is_watched_on_the_proxy_container_the_switch_itself_recreated(npm):
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    docker.desired.update(proxy='npm-2.15.2', api='v2')
    docker.pin_workers = [{'1', '2'}, {'1', '2'}, {'1~', '2~', '3'}]
    result, _clock = _drain_run(docker, npm, drain=3)
    assert result['recreate'] == ['proxy']
    (proxy,) = docker.of('proxy')
    tops = [c for c in docker.calls if c[:2] == ['docker', 'top']]
    assert tops
    assert all(c[2] == proxy for c in tops), 'the recreated proxy container, not the one it replaced'
    assert any('the proxy reloaded with the pins' in s for s in result['steps'])


def test_a_new_container_docker_restarted_in_the_hold_fails_the_gate_while_the_old_ones_still_run(npm):
    # The gate's rounds all passed (they fell between the crashes), but Docker restarted the new api in the hold.
    docker = FakeDocker({'db': 'pg15', 'api': 'v1', 'frontend': 'v1', 'proxy': 'npm'})
    old = {s: docker.of(s) for s in ('api', 'frontend')}
    docker.desired.update(api='v2', frontend='v2')
    gate = _GateDouble(docker)
    real_wait = gate.wait_done

    def crash_in_the_hold():
        new_api = docker.of('api')[-1]
        docker.containers[new_api]['restarts'] = 1
        return real_wait()

    gate.wait_done = crash_in_the_hold
    with pytest.raises(_switch.SwitchError) as err:
        _gated_run(docker, npm, gate)
    assert err.value.switched is False
    assert err.value.gate_failed is True
    assert 'the health gate failed while the old containers still ran' in str(err.value)
    assert f'the new api container {PROJECT}-api-2 was restarted by Docker in the hold that followed' in str(err.value)
    assert {s: docker.of(s) for s in ('api', 'frontend')} == old
    assert _forward_hosts(npm) == {'api.example.com': 'api', 'example.com': 'frontend'}
