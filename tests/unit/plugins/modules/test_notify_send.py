# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.notify_send module glue, against a real local webhook receiver."""

from __future__ import annotations

import json

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.modules import notify_send
from ansible_collections.avatar_mgmt.ops.tests.support.webhook_receiver import WebhookReceiver
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import FailJson
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.ports import closed_port

EVENT = {'action': 'backup', 'result': 'failed', 'environment': 'staging', 'stage': 'lock', 'reason': 'held'}


@pytest.fixture
def receiver(monkeypatch):
    module_harness.patch_exits(monkeypatch)
    with WebhookReceiver() as svc:
        yield svc


def run(args, expect=module_harness.ExitJson):
    return module_harness.run_module(notify_send, args, expect)


def test_documentation_matches_argument_spec(monkeypatch):
    spec = module_harness.module_kwargs(monkeypatch, notify_send)['argument_spec']
    doc = module_harness.assert_documented_options(notify_send, spec)
    for parent in ('targets', 'smtp'):
        assert set(doc['options'][parent]['suboptions']) == set(spec[parent]['options']), parent
        for name, option in doc['options'][parent]['suboptions'].items():
            assert option['type'] == spec[parent]['options'][name]['type'], (parent, name)
    assert spec['targets']['options']['url']['no_log'] is True
    assert spec['targets']['options']['headers']['no_log'] is True
    assert spec['smtp']['options']['password']['no_log'] is True
    assert set(module_harness.assert_documented_returns(notify_send)) == {'results', 'subject', 'text'}


def test_sends_and_reports_no_change(receiver):
    result = run({'event': EVENT, 'targets': [{'type': 'webhook', 'name': 'hook', 'url': receiver.url + '/h/TOKEN'}]})
    assert result['changed'] is False
    assert result['results'] == [{'name': 'hook', 'type': 'webhook', 'sent': True, 'error': ''}]
    assert result['subject'] == '[avatar-mgmt staging] backup failed'
    (sent,) = receiver.received
    assert json.loads(sent['body'])['reason'] == 'held'


def test_an_unreachable_target_is_no_failure(receiver):
    url = f'http://127.0.0.1:{closed_port()}/h/TOKEN'
    result = run({'event': EVENT, 'targets': [{'type': 'slack', 'url': url}]})
    assert result['results'][0]['sent'] is False
    assert result['results'][0]['error'] == 'Connection refused'
    assert 'TOKEN' not in json.dumps(result)


def test_check_mode_sends_nothing_and_names_bad_targets(receiver):
    targets = [{'type': 'webhook', 'url': receiver.url}, {'type': 'email', 'to': ['a@b.test']}]
    result = run({'event': EVENT, 'targets': targets, '_ansible_check_mode': True})
    assert receiver.received == []
    assert [r['sent'] for r in result['results']] == [False, False]
    assert result['results'][0]['error'] == ''
    assert 'notify_smtp_host' in result['results'][1]['error']


def test_an_unknown_type_is_refused(receiver):
    result = run({'event': EVENT, 'targets': [{'type': 'pager'}]}, expect=FailJson)
    assert 'webhook, slack, email' in result['msg']
