# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Notifications of a run's outcome (deploy, rollback, backup, restore) to webhooks, Slack-compatible
webhooks and e-mail: the logic of the avatar_mgmt.ops.notify_send module.

* :func:`compose` turns an event (``action``, ``result``, ``environment``, ``version``, ``stage``,
  ``reason``, ``running``, ``hosts``, ``operator``, ``job_id``) into a subject and a text.
* :func:`body` is what a target receives: the event as JSON plus ``subject`` and ``text`` for a
  ``webhook``, ``{"text": ...}`` for ``slack``, a plain-text mail for ``email``.
* :func:`target_problems` checks a target's settings; :func:`deliver` sends to every target and
  returns, per target, whether it was sent and why not. A target that cannot be reached is a
  result, never an exception: the caller warns, the run it reports on goes on.

Messages never carry a target's URL (a webhook's token is in its path), its headers, or the SMTP
password: a target is named by its ``name``, else its type and the host it talks to.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
from email.message import EmailMessage

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

TYPES = ('webhook', 'slack', 'email')
RESULTS = ('success', 'failed', 'rolled_back')
SECURITIES = ('starttls', 'ssl', 'none')


def outcome(result):
    """``success`` or ``failure`` (``failed`` and ``rolled_back``): what ``notify_on`` selects."""
    return 'success' if result == 'success' else 'failure'


def compose(event):
    """(subject, text) of an event, one line of subject, a few lines of text."""
    if not isinstance(event, dict):
        raise ValueError('the event must be a mapping (action, result, environment, ...)')
    action = str(event.get('action') or 'run')
    result = str(event.get('result') or 'failed')
    env = str(event.get('environment') or '?')
    version = str(event.get('version') or '')
    running = event.get('running') or {}
    if not isinstance(running, dict):
        running = {'version': str(running)}
    what = f'{action} of {version}' if version else action
    word = {'success': 'succeeded', 'rolled_back': 'failed and was rolled back'}.get(result, 'failed')
    subject = f'[avatar-mgmt {env}] {what} {word}'
    lines = [f'{what.capitalize()} on {env} {word}.']
    if result != 'success' and event.get('stage'):
        lines.append(f'Stage: {event["stage"]}.')
    if result != 'success' and event.get('reason'):
        lines.append(f'Reason: {event["reason"]}')
    runs = running.get('version') or running.get('containers') or ''
    if runs:
        release = running.get('release') or ''
        lines.append(f'Runs now: {runs}' + (f' (release {release})' if release else '') + '.')
    hosts = event.get('hosts') or []
    if hosts:
        lines.append('Hosts: ' + ', '.join(str(h) for h in hosts) + '.')
    who = [str(event[k]) for k in ('operator',) if event.get(k)]
    if event.get('job_id'):
        who.append(f'job {event["job_id"]}')
    if who:
        lines.append('By ' + ', '.join(who) + '.')
    return subject, '\n'.join(lines)


def body(kind, event, subject, text):
    """The bytes a webhook target receives (JSON)."""
    data = {'text': f'{subject}\n{text}'} if kind == 'slack' else dict(event, subject=subject, text=text)
    return json.dumps(data, sort_keys=True, default=str).encode('utf-8')


def label(target, index):
    """How a target is named in results and warnings: its name, else type #n (host); never its URL."""
    if target.get('name'):
        return str(target['name'])
    host = ''
    if target.get('url'):
        try:
            host = urllib.parse.urlsplit(str(target['url'])).hostname or ''
        except ValueError:
            host = ''
    elif target.get('to'):
        host = 'to ' + ', '.join(str(t) for t in target['to'])
    return f'{target.get("type", "?")} #{index + 1}' + (f' ({host})' if host else '')


def target_problems(target, smtp=None):
    """What is wrong with one target's settings ([] when nothing)."""
    if not isinstance(target, dict):
        return ['a target must be a mapping with a type (webhook, slack or email)']
    kind = target.get('type')
    if kind not in TYPES:
        return [f'type must be one of {", ".join(TYPES)}; got {kind!r}']
    problems = []
    if kind in ('webhook', 'slack'):
        url = str(target.get('url') or '')
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ('http', 'https') or not parts.hostname:
            problems.append(f'{kind} needs url, an http:// or https:// URL')
    else:
        to = target.get('to')
        if not isinstance(to, list) or not to or not all(isinstance(t, str) and '@' in t for t in to):
            problems.append('email needs to, a list of e-mail addresses')
        smtp = smtp or {}
        if not smtp.get('host'):
            problems.append('email needs the SMTP host (notify_smtp_host)')
        if smtp.get('security', 'starttls') not in SECURITIES:
            problems.append(f'the SMTP security must be one of {", ".join(SECURITIES)}')
    return problems


def post_json(url, data, headers=None, timeout=10, validate_certs=True):
    """POST ``data`` (bytes, JSON) to ``url`` (ansible's open_url: proxies from the environment, TLS checks);
    raises OSError (URLError, HTTPError) or open_url's ConnectionError on any failure."""
    sent = {'Content-Type': 'application/json'}
    sent.update({str(k): str(v) for k, v in (headers or {}).items()})
    response = open_url(
        url,
        data=data,
        headers=sent,
        method='POST',
        timeout=timeout,
        validate_certs=validate_certs,
        follow_redirects='none',
    )
    with response:
        response.read(65536)
        return response.status


def send_mail(smtp, sender, to, subject, text, timeout=10, context=None):
    """Send one plain-text mail through ``smtp`` (host, port, security, username, password)."""
    message = EmailMessage()
    message['Subject'] = subject
    message['From'] = sender
    message['To'] = ', '.join(to)
    message.set_content(text)
    security = smtp.get('security', 'starttls')
    host, port = smtp['host'], int(smtp.get('port') or (465 if security == 'ssl' else 25))
    if security == 'ssl':
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if security == 'starttls':
            client.starttls(context=context)
        if smtp.get('username'):
            client.login(smtp['username'], smtp.get('password') or '')
        client.send_message(message)


def describe(exc):
    """A failure to reach a target, in words that carry no URL."""
    if isinstance(exc, urllib.error.HTTPError):
        return f'the server answered HTTP {exc.code} {exc.reason}'
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return 'timed out'
    if isinstance(exc, smtplib.SMTPException):
        return f'SMTP error: {exc}'
    if isinstance(exc, ssl.SSLError):
        return f'TLS error: {exc.reason or exc}'
    if isinstance(exc, UrlsConnectionError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f'{type(exc).__name__}: {exc}'


def deliver(targets, event, smtp=None, sender='avatar-mgmt@localhost', timeout=10, validate_certs=True, send=None):
    """Send the event to every target. Returns a list of ``{name, type, sent, error}``, in target order.

    ``send``: replaces the transports (``{'http': post_json, 'mail': send_mail}``), for tests.
    """
    send = dict({'http': post_json, 'mail': send_mail}, **(send or {}))
    smtp = smtp or {}
    subject, text = compose(event)
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    secrets = [str(smtp.get('password') or '')]
    results = []
    for index, target in enumerate(targets):
        name = label(target, index) if isinstance(target, dict) else f'target #{index + 1}'
        kind = target.get('type') if isinstance(target, dict) else None
        secrets += [str(target.get('url') or '')] if isinstance(target, dict) else []
        problems = target_problems(target, smtp)
        if problems:
            results.append({'name': name, 'type': kind, 'sent': False, 'error': '; '.join(problems)})
            continue
        try:
            if kind == 'email':
                send['mail'](smtp, sender, target['to'], subject, text, timeout=timeout, context=context)
            else:
                data = body(kind, event, subject, text)
                send['http'](
                    target['url'], data, headers=target.get('headers'), timeout=timeout, validate_certs=validate_certs
                )
        except (OSError, smtplib.SMTPException, UrlsConnectionError, ValueError) as exc:
            results.append({'name': name, 'type': kind, 'sent': False, 'error': _mask(describe(exc), secrets)})
            continue
        results.append({'name': name, 'type': kind, 'sent': True, 'error': ''})
    return results


def _mask(text, secrets):
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, '********')
    return text
