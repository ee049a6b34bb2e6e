# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The notify role, run by ansible-playbook on localhost (connection local) against a local webhook receiver
and a local SMTP sink written for these tests: what each target receives, that an unreachable target or an
HTTP error is a warning and the play goes on, that secrets never show, and that bad settings are refused by
the preflight before anything else runs."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys

import pytest
from ansible_collections.avatar_mgmt.ops.tests.support.smtp_sink import SMTPSink
from ansible_collections.avatar_mgmt.ops.tests.support.webhook_receiver import WebhookReceiver
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.ports import closed_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
TOKEN = 'T0KEN-in-the-path-4b1d'
SMTP_PASSWORD = 'smtp-Pa55word-9f'
EVENT = {
    'action': 'deploy',
    'result': 'rolled_back',
    'environment': 'production',
    'version': 'v1.2.1',
    'stage': 'verify',
    'reason': 'api /health answered 503',
    'running': {'version': 'v1.2.0', 'release': '20261128T101500Z-v1.2.0'},
    'hosts': ['prod-1'],
    'operator': 'schedule:nightly',
    'job_id': '412',
}
PLAYBOOK = """
- name: Notify as the playbooks do
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check the notification settings
      ansible.builtin.include_role:
        name: avatar_mgmt.ops.notify
        tasks_from: preflight.yml

    - name: Notify
      ansible.builtin.include_role:
        name: avatar_mgmt.ops.notify

    - name: The play goes on
      ansible.builtin.debug:
        msg: play went on after notify
"""

pytestmark = pytest.mark.skipif(not os.path.exists(ANSIBLE_PLAYBOOK), reason='no ansible-playbook')


def _run(tmp_path, settings, *extra):
    (tmp_path / 'notify.yml').write_text(PLAYBOOK)
    (tmp_path / 'vars.json').write_text(json.dumps(settings))
    (tmp_path / 'hosts.ini').write_text('')
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_LOCALHOST_WARNING='false',
        ANSIBLE_INVENTORY_UNPARSED_WARNING='false',
        # No inventory: only the implicit localhost.
        ANSIBLE_INVENTORY=str(tmp_path / 'hosts.ini'),
    )
    argv = [ANSIBLE_PLAYBOOK, str(tmp_path / 'notify.yml'), '-e', f'@{tmp_path / "vars.json"}', *extra]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


@pytest.fixture
def receiver():
    with WebhookReceiver() as svc:
        yield svc


@pytest.fixture
def sink():
    with SMTPSink(password=SMTP_PASSWORD) as svc:
        yield svc


def _settings(receiver, sink, result='rolled_back', notify_on=('failure',)):
    return {
        'notify_on': list(notify_on),
        'notify_event': dict(EVENT, result=result),
        'notify_targets': [
            {'type': 'webhook', 'name': 'ops webhook', 'url': f'{receiver.url}/hooks/{TOKEN}'},
            {'type': 'slack', 'url': f'{receiver.url}/services/{TOKEN}/slack'},
            {'type': 'email', 'name': 'on-call', 'to': ['oncall@example.test', 'ops@example.test']},
        ],
        'notify_smtp_host': '127.0.0.1',
        'notify_smtp_port': sink.port,
        'notify_smtp_security': 'none',
        'notify_smtp_username': 'avatar',
        'notify_smtp_password': SMTP_PASSWORD,
        'notify_email_from': 'avatar-mgmt@example.test',
    }


def test_each_target_receives_the_event(tmp_path, receiver, sink):
    proc, out = _run(tmp_path, _settings(receiver, sink), '-vvv')
    assert proc.returncode == 0, out[-4000:]
    assert 'play went on after notify' in out
    by_path = {r['path']: r for r in receiver.received}
    assert set(by_path) == {f'/hooks/{TOKEN}', f'/services/{TOKEN}/slack'}, by_path.keys()
    hook = json.loads(by_path[f'/hooks/{TOKEN}']['body'])
    assert by_path[f'/hooks/{TOKEN}']['headers']['Content-Type'] == 'application/json'
    for key, value in EVENT.items():
        assert hook[key] == value, key
    assert hook['subject'] == '[avatar-mgmt production] deploy of v1.2.1 failed and was rolled back'
    assert 'Stage: verify.' in hook['text']
    assert 'Runs now: v1.2.0 (release 20261128T101500Z-v1.2.0).' in hook['text']
    slack = json.loads(by_path[f'/services/{TOKEN}/slack']['body'])
    assert list(slack) == ['text']
    assert slack['text'].startswith('[avatar-mgmt production] deploy of v1.2.1 failed and was rolled back\n')
    assert 'Reason: api /health answered 503' in slack['text']
    assert len(sink.messages) == 1
    mail = sink.messages[0]
    assert mail['auth'] == ('avatar', SMTP_PASSWORD)
    assert mail['from'] == 'avatar-mgmt@example.test'
    assert mail['to'] == ['oncall@example.test', 'ops@example.test']
    parsed = email.message_from_string(mail['data'])
    assert parsed['Subject'] == hook['subject']
    assert 'Runs now: v1.2.0' in parsed.get_payload()
    # Even at -vvv (module arguments are printed there), no URL token and no SMTP password.
    assert TOKEN not in out
    assert SMTP_PASSWORD not in out
    assert 'WARNING' not in out, out[-3000:]


@pytest.mark.parametrize(
    'result, notify_on, sent',
    [
        ('success', ['failure'], False),
        ('success', ['success'], True),
        # The default: nothing.
        ('failed', [], False),
    ],
)
def test_only_the_outcomes_asked_for_are_sent(tmp_path, receiver, sink, result, notify_on, sent):
    proc, out = _run(tmp_path, _settings(receiver, sink, result=result, notify_on=notify_on))
    assert proc.returncode == 0, out[-4000:]
    assert (len(receiver.received), len(sink.messages)) == ((2, 1) if sent else (0, 0))


def test_unreachable_targets_warn_and_the_play_goes_on(tmp_path, receiver, sink):
    settings = _settings(receiver, sink)
    port = closed_port()
    settings['notify_targets'] = [
        {'type': 'webhook', 'name': 'gone', 'url': f'http://127.0.0.1:{port}/hooks/{TOKEN}'},
        {'type': 'slack', 'url': f'{receiver.url}/status/500/{TOKEN}'},
        {'type': 'email', 'name': 'on-call', 'to': ['oncall@example.test']},
        {'type': 'webhook', 'name': 'still reached', 'url': f'{receiver.url}/hooks/{TOKEN}'},
    ]
    settings['notify_smtp_port'] = closed_port()
    proc, out = _run(tmp_path, settings, '-v')
    assert proc.returncode == 0, out[-4000:]
    assert 'play went on after notify' in out
    flat = ' '.join(out.split())
    assert 'Notification to gone (webhook) not sent: Connection refused' in flat, out[-3000:]
    assert 'Notification to slack #2 (127.0.0.1) (slack) not sent: the server answered HTTP 500' in flat
    assert 'Notification to on-call (email) not sent: Connection refused' in flat
    assert [r['path'] for r in receiver.received] == [f'/status/500/{TOKEN}', f'/hooks/{TOKEN}']
    assert 'failed=0' in out.split('PLAY RECAP')[-1]
    assert TOKEN not in out
    assert SMTP_PASSWORD not in out


# The other checks of a target's settings are those of _notify.target_problems (its unit tests): one refusal by the
# module's argument spec, one by those checks, through the role.
@pytest.mark.parametrize(
    'targets, smtp_host, says',
    [
        ([{'type': 'pager', 'url': 'https://x.test/'}], '', 'value of type must be one of: webhook, slack, email'),
        ([{'type': 'email', 'to': ['a@b.test']}], '', 'email needs the SMTP host (notify_smtp_host)'),
    ],
)
def test_bad_settings_are_refused_before_anything_else(tmp_path, receiver, sink, targets, smtp_host, says):
    settings = _settings(receiver, sink)
    settings['notify_targets'] = targets
    settings['notify_smtp_host'] = smtp_host
    proc, out = _run(tmp_path, settings)
    assert proc.returncode != 0
    flat = ' '.join(out.split())
    assert 'notify_targets (or notify_smtp_*) cannot work' in flat, out[-3000:]
    assert says in flat, out[-3000:]
    assert 'play went on after notify' not in out
    assert receiver.received == []
    assert TOKEN not in out
