#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: notify_send
short_description: Tell webhooks, Slack-compatible webhooks and e-mail how a deploy, rollback, backup or restore ended
version_added: 0.1.0
description:
  - Sends one event (what ran, on which environment, how it ended, at which stage it failed and why, what runs now)
    to every target of O(targets). A V(webhook) target receives the event as a JSON C(POST) with C(subject) and
    C(text) added; a V(slack) target (Slack, Mattermost, Rocket.Chat, any Slack-compatible incoming webhook)
    receives a JSON object with the one key C(text); an V(email) target receives a plain-text mail through O(smtp).
  - A target that cannot be reached, answers an HTTP error or is misconfigured is a warning naming the target
    (by its O(targets[].name), else its type and host), never a failure; the run being reported on goes on.
    The task fails only when its own options are invalid.
  - Target URLs (a webhook's token is in its path), their headers and the SMTP password are never shown, in
    results, warnings or error messages.
  - The avatar_mgmt.ops.notify role calls it on the control node (C(delegate_to) V(localhost)).
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
requirements:
  - Python 3.9 or later (standard library only).
attributes:
  check_mode:
    support: full
    description: Nothing is sent; RV(results) lists what would be sent, each with RV(results[].sent=false).
  diff_mode:
    support: none
    description: A message is not state to compare.
  idempotent:
    support: full
    description:
      - A message changes nothing this collection manages, so the task never reports a change (a deploy that
        changed nothing stays at C(changed=0)); each run sends its messages again.
options:
  event:
    description:
      - What to report. Keys used in the text, all optional except C(action) and C(result) -
        C(action) (V(deploy), V(rollback), V(backup), V(restore)), C(result) (V(success), V(failed),
        V(rolled_back)), C(environment), C(version), C(stage), C(reason), C(running) (a mapping with
        C(version), C(release), or C(containers) when the version is unknown), C(hosts), C(operator),
        C(job_id). A webhook receives every key as given.
      - Must not hold secrets; it is sent as is and shown in the task's result.
    type: dict
    required: true
  targets:
    description: Where to send it. An empty list sends nothing.
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description: V(webhook) (the JSON event), V(slack) (a JSON object with the one key C(text)) or V(email).
        type: str
        required: true
        choices: [webhook, slack, email]
      name:
        description: How the target is named in results and warnings; default its type and host.
        type: str
      url:
        description: The webhook's URL (V(webhook), V(slack)); http or https. Secret (never shown).
        type: str
      headers:
        description: Extra HTTP headers (V(webhook), V(slack)), such as an C(Authorization) header. Secret (never shown).
        type: dict
      to:
        description: Recipients (V(email)).
        type: list
        elements: str
  smtp:
    description: The mail server of V(email) targets.
    type: dict
    default: {}
    suboptions:
      host:
        description: Its host name.
        type: str
      port:
        description: Its port; default V(465) with O(smtp.security=ssl), else V(25).
        type: int
      security:
        description: V(starttls) (upgrade the connection, required), V(ssl) (TLS from the start) or V(none).
        type: str
        choices: [starttls, ssl, none]
        default: starttls
      username:
        description: Log in as this user (none when empty).
        type: str
      password:
        description: That user's password. Secret (never shown).
        type: str
  sender:
    description: The mails' C(From) address.
    type: str
    default: avatar-mgmt@localhost
  timeout:
    description: Seconds to wait for each target.
    type: int
    default: 10
  validate_certs:
    description: Check the TLS certificates of https URLs and of the mail server. V(false) only for a target you trust.
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Tell the team the deploy failed
  avatar_mgmt.ops.notify_send:
    event:
      action: deploy
      result: rolled_back
      environment: production
      version: v1.2.1
      stage: verify
      reason: api /health answered 503
      running: {version: v1.2.0, release: 20261128T101500Z-v1.2.0}
    targets:
      - {type: slack, name: ops channel, url: "{{ vault_slack_webhook_url }}"}
      - {type: email, to: [ops@example.com]}
    smtp: {host: smtp.example.com, username: avatar, password: "{{ vault_smtp_password }}"}
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
results:
  description: One entry per target, in the order of O(targets).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The target's name (O(targets[].name), else its type and host; never its URL).
      type: str
      sample: ops channel
    type:
      description: The target's type.
      type: str
      sample: slack
    sent:
      description: Whether the message was accepted (HTTP 2xx, or the mail server took it).
      type: bool
      sample: true
    error:
      description: Why it was not sent (empty when it was, and in check mode).
      type: str
      sample: 'Connection refused'
  sample: [{name: ops channel, type: slack, sent: true, error: ''}]
subject:
  description: The subject line of the message.
  returned: always
  type: str
  sample: '[avatar-mgmt production] deploy of v1.2.1 failed and was rolled back'
text:
  description: The text of the message.
  returned: always
  type: str
  sample: "Deploy of v1.2.1 on production failed and was rolled back.\nStage: verify."
'''

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _notify
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule


def main():
    module = SecretSafeModule(
        argument_spec={
            'event': {'type': 'dict', 'required': True},
            'targets': {
                'type': 'list',
                'elements': 'dict',
                'default': [],
                'options': {
                    'type': {'type': 'str', 'required': True, 'choices': list(_notify.TYPES)},
                    'name': {'type': 'str'},
                    'url': {'type': 'str', 'no_log': True},
                    'headers': {'type': 'dict', 'no_log': True},
                    'to': {'type': 'list', 'elements': 'str'},
                },
            },
            'smtp': {
                'type': 'dict',
                'default': {},
                'options': {
                    'host': {'type': 'str'},
                    'port': {'type': 'int'},
                    'security': {'type': 'str', 'choices': list(_notify.SECURITIES), 'default': 'starttls'},
                    'username': {'type': 'str'},
                    'password': {'type': 'str', 'no_log': True},
                },
            },
            'sender': {'type': 'str', 'default': 'avatar-mgmt@localhost'},
            'timeout': {'type': 'int', 'default': 10},
            'validate_certs': {'type': 'bool', 'default': True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        subject, text = _notify.compose(p['event'])
    except ValueError as exc:
        module.fail_json(msg=f'event: {exc}.')
    targets = [{k: v for k, v in t.items() if v is not None} for t in p['targets']]
    smtp = {k: v for k, v in (p['smtp'] or {}).items() if v is not None}
    if module.check_mode:
        results = []
        for index, target in enumerate(targets):
            problems = _notify.target_problems(target, smtp)
            results.append(
                {
                    'name': _notify.label(target, index),
                    'type': target['type'],
                    'sent': False,
                    'error': '; '.join(problems),
                }
            )
    else:
        results = _notify.deliver(
            targets, p['event'], smtp=smtp, sender=p['sender'], timeout=p['timeout'], validate_certs=p['validate_certs']
        )
    for result in results:
        if result['error']:
            module.warn(f'Notification to {result["name"]} ({result["type"]}) not sent: {result["error"]}')
    module.exit_json(changed=False, results=results, subject=subject, text=text)


if __name__ == '__main__':
    main()
