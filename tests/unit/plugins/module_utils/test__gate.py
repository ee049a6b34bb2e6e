# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The switch's health gate: real HTTP checks against a local server, compose checks against recorded inspect data."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _gate
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._health import HealthSpecError
from ansible_collections.avatar_mgmt.ops.tests.unit.plugins.module_utils.test__health import container
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_docker import FakeDockerClient


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = self.server.answers.pop(0) if len(self.server.answers) > 1 else self.server.answers[0]
        body = b'ok\n' if status == 200 else b'down\n'
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    """``api.answers``: the statuses to answer in turn, the last one repeating."""
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    httpd.daemon_threads = True
    httpd.answers = [200]
    threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()
    httpd.check = {
        'name': 'api health',
        'url': f'http://127.0.0.1:{httpd.server_address[1]}/health',
        'body_regex': '^ok',
    }
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


COMPOSE = {'name': 'containers', 'type': 'compose', 'project': 'avatar', 'services': ['api']}
OLD = container('api', status='exited', exit_code=137, number=1)
NEW = container('api', number=2)


def _gate_with(client, checks, **kw):
    kw.setdefault('hold', 0.3)
    kw.setdefault('interval', 0.1)
    kw.setdefault('deadline', 2)
    return _gate.Gate(checks, docker_factory=lambda: client, **kw)


def test_the_containers_a_handover_retires_are_left_out_of_the_compose_checks(api):
    # The old container is stopped while the gate holds: left out, it does not fail the gate.
    gate = _gate_with(FakeDockerClient([OLD, NEW]), [COMPOSE, api.check])
    gate.start(retired=[OLD['Id']])
    assert gate.wait_done() is None
    assert gate.finish(time.monotonic()) is None
    result = gate.result()
    assert result['healthy'] is True
    assert result['msg'] == 'All 2 health checks passed, and all passed together for 0.3s.'
    # Not left out, the same stopped container fails it.
    gate = _gate_with(FakeDockerClient([OLD, NEW]), [COMPOSE, api.check])
    gate.start()
    problem = gate.wait_done()
    assert 'exited (exit code 137) in avatar-api-1 of 2 containers' in problem
    assert gate.result()['healthy'] is False


def test_a_check_that_fails_in_the_hold_fails_the_gate_after_it_passed(api):
    api.answers = [200, 200, 503]
    gate = _gate_with(FakeDockerClient([NEW]), [api.check], hold=1)
    gate.start()
    problem = gate.wait_done()
    assert 'passed, then failed' in problem
    assert 'into the 1s hold' in problem
    assert gate.result()['healthy'] is False


def test_a_check_that_never_passes_ends_the_wait_with_why(api):
    api.answers = [503]
    gate = _gate_with(FakeDockerClient([NEW]), [api.check], deadline=0.5)
    gate.start()
    problem = gate.wait_done()
    assert problem.startswith('1 of 1 health checks did not pass within the 0.5s deadline: api health')
    assert gate.passed_at is None


def test_one_more_round_when_the_hold_ended_before_the_switch_did(api):
    gate = _gate_with(FakeDockerClient([NEW]), [api.check], hold=0.2)
    gate.start()
    assert gate.wait_done() is None
    # The switch's last step ended after the hold: its state gets a round of its own, which fails here.
    api.answers = [503]
    problem = gate.finish(time.monotonic() + 5)
    assert problem.startswith('in the round taken once the switch was over, after the hold: 1 of 1 health checks')
    assert gate.result()['final_round'] is True
    assert gate.result()['healthy'] is False


def test_no_extra_round_when_the_hold_outlasted_the_switch(api):
    gate = _gate_with(FakeDockerClient([NEW]), [api.check], hold=0.5)
    gate.start()
    assert gate.wait_done() is None
    assert gate.finish(gate.passed_at) is None
    assert gate.result()['final_round'] is False
    # Rounds every 0.1s for 0.5s, no more: the hold's last round came after the switch's last step.
    assert gate.report['checks'][0]['attempts'] <= 8


def test_cancel_stops_the_checks_at_their_next_wait(api):
    api.answers = [503]
    gate = _gate_with(FakeDockerClient([NEW]), [api.check], deadline=60)
    gate.start()
    time.sleep(0.2)
    began = time.monotonic()
    gate.cancel()
    gate._thread.join(5)
    assert gate._done.is_set()
    assert time.monotonic() - began < 2
    assert gate.problem() == 'stopped: the switch ended first'


def test_the_docker_client_is_closed_and_an_engine_that_cannot_be_reached_is_a_failed_check(api):
    client = FakeDockerClient([NEW])
    gate = _gate_with(client, [COMPOSE], hold=0)
    gate.start()
    assert gate.wait_done() is None
    assert gate.finish(time.monotonic()) is None
    assert client.closed

    def unreachable():
        raise RuntimeError('cannot connect to the Docker Engine: the Docker daemon does not answer on its socket')

    gate = _gate.Gate([COMPOSE], hold=0, interval=0.1, deadline=0.3, docker_factory=unreachable)
    gate.start()
    assert 'the Docker daemon does not answer' in gate.wait_done()


@pytest.mark.parametrize(
    'checks, kw, message',
    [
        ([{'name': 'x', 'type': 'nope'}], {}, 'type must be one of'),
        ([{'name': 'x', 'url': 'http://h/', 'project': 'p'}], {}, "option 'project' does not apply"),
        ([COMPOSE], {'interval': 0}, 'gate interval must be more than seconds'),
        ([COMPOSE], {'hold': -1}, 'gate hold must be 0 or more seconds'),
    ],
)
def test_a_gate_that_cannot_run_is_refused_when_it_is_made(checks, kw, message):
    with pytest.raises(HealthSpecError, match=message):
        _gate.Gate(checks, **kw)
