# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_notify: the message of an event, target checks, and delivery to a real local receiver and SMTP sink."""

from __future__ import annotations

import json

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _notify
from ansible_collections.avatar_mgmt.ops.tests.support.smtp_sink import SMTPSink
from ansible_collections.avatar_mgmt.ops.tests.support.webhook_receiver import WebhookReceiver
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.ports import closed_port, listening_port


@pytest.mark.parametrize(
    'event, subject, lines',
    [
        (
            {
                'action': 'deploy',
                'result': 'success',
                'environment': 'staging',
                'version': 'v1.2.0',
                'running': {'version': 'v1.2.0', 'release': 'r1'},
                'stage': 'ignored',
                'reason': 'ignored',
            },
            '[avatar-mgmt staging] deploy of v1.2.0 succeeded',
            ['Deploy of v1.2.0 on staging succeeded.', 'Runs now: v1.2.0 (release r1).'],
        ),
        (
            {
                'action': 'backup',
                'result': 'failed',
                'environment': 'production',
                'stage': 'lock',
                'reason': 'held by alice',
                'operator': 'schedule:nightly',
                'job_id': 7,
            },
            '[avatar-mgmt production] backup failed',
            ['Backup on production failed.', 'Stage: lock.', 'Reason: held by alice', 'By schedule:nightly, job 7.'],
        ),
        (
            {'action': 'rollback', 'result': 'failed', 'running': {'containers': 'api v1 running'}},
            '[avatar-mgmt ?] rollback failed',
            ['Rollback on ? failed.', 'Runs now: api v1 running.'],
        ),
    ],
)
def test_compose(event, subject, lines):
    got_subject, text = _notify.compose(event)
    assert got_subject == subject
    assert text.splitlines() == lines


def test_compose_refuses_a_non_mapping():
    with pytest.raises(ValueError, match='mapping'):
        _notify.compose(['deploy'])


@pytest.mark.parametrize(
    'target, smtp, problem',
    [
        ({'type': 'webhook', 'url': 'https://h.test/x'}, None, ''),
        ({'type': 'slack', 'url': 'h.test/x'}, None, 'slack needs url'),
        ({'type': 'email', 'to': ['a@b.test']}, {'host': 'mx'}, ''),
        ({'type': 'email', 'to': ['not an address']}, {'host': 'mx'}, 'email needs to'),
        ({'type': 'email', 'to': ['a@b.test']}, {}, 'notify_smtp_host'),
        ({'type': 'email', 'to': ['a@b.test']}, {'host': 'mx', 'security': 'tls'}, 'security must be one of'),
        ({'type': 'sms'}, None, 'type must be one of'),
        ('https://h.test', None, 'must be a mapping'),
    ],
)
def test_target_problems(target, smtp, problem):
    problems = _notify.target_problems(target, smtp)
    assert (problem in '; '.join(problems)) if problem else problems == []
    assert bool(problems) is bool(problem)


def test_label_never_shows_the_url():
    assert _notify.label({'type': 'slack', 'url': 'https://hooks.test/services/SECRET'}, 1) == 'slack #2 (hooks.test)'
    assert _notify.label({'type': 'webhook', 'name': 'ops', 'url': 'https://x.test/SECRET'}, 0) == 'ops'


EVENT = {'action': 'deploy', 'result': 'failed', 'environment': 'production', 'version': 'v1.2.1', 'stage': 'verify'}


def test_deliver_to_real_receivers():
    with WebhookReceiver() as web, SMTPSink() as sink:
        results = _notify.deliver(
            [
                {'type': 'webhook', 'url': f'{web.url}/hook/SECRET', 'headers': {'Authorization': 'Bearer B'}},
                {'type': 'slack', 'url': f'{web.url}/slack'},
                {'type': 'email', 'to': ['a@b.test']},
            ],
            EVENT,
            smtp={'host': '127.0.0.1', 'port': sink.port, 'security': 'none'},
            sender='s@b.test',
        )
    assert [r['sent'] for r in results] == [True, True, True], results
    hook, slack = web.received
    assert hook['headers']['Authorization'] == 'Bearer B'
    assert json.loads(hook['body'])['stage'] == 'verify'
    assert json.loads(slack['body']) == {
        'text': '[avatar-mgmt production] deploy of v1.2.1 failed\n'
        'Deploy of v1.2.1 on production failed.\nStage: verify.'
    }
    assert sink.messages[0]['to'] == ['a@b.test']


def test_deliver_reports_failures_without_raising_or_showing_secrets():
    with WebhookReceiver() as web, listening_port() as silent:
        results = _notify.deliver(
            [
                {'type': 'webhook', 'url': f'http://127.0.0.1:{closed_port()}/SECRET1'},
                {'type': 'webhook', 'url': f'{web.url}/status/404/SECRET2'},
                {'type': 'slack', 'url': f'http://127.0.0.1:{silent}/SECRET3'},
                {'type': 'email', 'to': ['a@b.test']},
            ],
            EVENT,
            smtp={'host': '127.0.0.1', 'port': closed_port(), 'security': 'none', 'password': 'PW-secret'},
            timeout=1,
        )
    assert [r['sent'] for r in results] == [False] * 4
    assert results[0]['error'] == 'Connection refused'
    assert results[1]['error'] == 'the server answered HTTP 404 Not Found'
    assert results[2]['error'] == 'timed out'
    assert results[3]['error'] == 'Connection refused'
    assert 'SECRET' not in json.dumps(results)
    assert 'PW-secret' not in json.dumps(results)


def test_a_bad_target_does_not_stop_the_others():
    with WebhookReceiver() as web:
        results = _notify.deliver(
            [{'type': 'webhook', 'url': 'nope'}, {'type': 'webhook', 'url': web.url + '/ok'}], EVENT
        )
    assert [r['sent'] for r in results] == [False, True]
    assert 'needs url' in results[0]['error']
