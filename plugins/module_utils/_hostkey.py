# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether a server's SSH host key is the one recorded in a known_hosts file.

The same judgement ssh makes with ``StrictHostKeyChecking=yes``, made before any
task connects so the refusal can say what to do:

* ``known``: the server offers a key that is recorded for its name, and no recorded
  key of a type it offers differs from it;
* ``unknown``: nothing is recorded for the name (``[host]:port`` when the port is not 22);
* ``changed``: a key is recorded for the name but the server's key of that type is
  another one (or the server no longer offers that type).

Plain and hashed (``|1|salt|hash``) host names and ``*`` / ``?`` patterns are
understood; ``@revoked`` lines refuse the key they name; ``@cert-authority`` lines
are ignored (they do not record a host key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import shlex

__all__ = [
    'CHANGED',
    'KNOWN',
    'UNKNOWN',
    'advice',
    'fingerprint',
    'host_name',
    'judge',
    'parse_keyscan',
    'recorded_keys',
]

KNOWN = 'known'
UNKNOWN = 'unknown'
CHANGED = 'changed'


def host_name(host, port=22):
    """The name ssh looks up in known_hosts: ``host`` on port 22, else ``[host]:port``."""
    port = int(port)
    return str(host) if port == 22 else f'[{host}]:{port}'


def fingerprint(blob):
    """``SHA256:...`` of a base64 key blob, as ``ssh-keygen -l`` prints it."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f'not a base64 SSH key: {blob[:20]}...') from None
    return 'SHA256:' + base64.b64encode(hashlib.sha256(raw).digest()).decode('ascii').rstrip('=')


def _hashed_match(pattern, name):
    # |1|base64(salt)|base64(HMAC-SHA1(salt, name))
    parts = pattern.split('|')
    if len(parts) != 4 or parts[1] != '1':
        return False
    try:
        salt = base64.b64decode(parts[2])
        want = base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode('utf-8'), hashlib.sha1).digest(), want)


def _glob(pattern, name):
    """ssh's host patterns: ``*`` and ``?`` are wildcards, everything else (``[``, ``]``) is literal."""
    regex = ''.join('.*' if c == '*' else '.' if c == '?' else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name) is not None


def _names_match(field, name):
    """Whether the host field of a known_hosts line (comma-separated patterns, ``!`` negates) names ``name``."""
    if field.startswith('|'):
        return _hashed_match(field, name)
    matched = False
    for pattern in field.split(','):
        negated = pattern.startswith('!')
        pattern = pattern[1:] if negated else pattern
        if _glob(pattern, name):
            if negated:
                return False
            matched = True
    return matched


def recorded_keys(text, name):
    """The keys recorded for ``name``: ``(keys, revoked)``, each a list of ``(type, blob, line number)``."""
    keys, revoked = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        marker = ''
        if fields[0].startswith('@'):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            continue
        if marker == '@revoked':
            # A revoked key is refused whatever name it is offered under.
            revoked.append((fields[1], fields[2], number))
            continue
        if marker or not _names_match(fields[0], name):
            continue
        keys.append((fields[1], fields[2], number))
    return keys, revoked


def parse_keyscan(text):
    """The ``(type, blob)`` pairs in ``ssh-keyscan`` output (comment lines skipped)."""
    keys = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith('#'):
            keys.append((fields[1], fields[2]))
    return keys


def judge(offered, recorded, revoked=()):
    """``(state, details)``: what ssh would decide for a server that offers ``offered``.

    ``offered``: ``(type, blob)`` pairs from the server; ``recorded`` / ``revoked``:
    ``(type, blob, line)`` from :func:`recorded_keys`.  ``details`` lists the
    mismatching pairs ``(recorded type, recorded blob, line, offered blob or '')``.
    """
    offered_by_type = {}
    for key_type, blob in offered:
        offered_by_type.setdefault(key_type, blob)
    revoked_blobs = {blob for _t, blob, _n in revoked}
    if any(blob in revoked_blobs for _t, blob in offered):
        return CHANGED, [(t, b, n, offered_by_type.get(t, '')) for t, b, n in revoked if b in offered_by_type.values()]
    if not recorded:
        return UNKNOWN, []
    mismatches = [
        (key_type, blob, number, offered_by_type.get(key_type, ''))
        for key_type, blob, number in recorded
        if offered_by_type.get(key_type) != blob
    ]
    matches = [blob for key_type, blob, _n in recorded if offered_by_type.get(key_type) == blob]
    # ssh prefers the key types it has recorded; a recorded type whose key differs is refused.
    differing = [m for m in mismatches if m[3]]
    if matches and not differing:
        return KNOWN, []
    return CHANGED, mismatches


def _quote(text):
    return shlex.quote(str(text))


def advice(state, inventory_host, host, port, known_hosts, offered=(), details=()):
    """The refusal for ``unknown`` or ``changed``: what is wrong and the commands that fix it."""
    port = int(port)
    port_opt = f'-p {port} ' if port != 22 else ''
    name = host_name(host, port)
    where = f'{inventory_host} ({host}, port {port})'
    offers = ', '.join(f'{t} {fingerprint(b)}' for t, b in offered) or 'nothing'
    record = f'ssh-keyscan {port_opt}{_quote(host)} >> {_quote(known_hosts)}'
    check = (
        'Check the fingerprint with the server (on it: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) '
        'or its administrator, then record it'
    )
    if state == UNKNOWN:
        return (
            f'The SSH host key of {where} is not recorded in {known_hosts}, so the server cannot be told '
            f'from an impostor and Ansible does not connect to it. The server offers: {offers}. '
            f'{check}: {record} . Nothing was changed.'
        )
    if state == CHANGED:
        was = '; '.join(
            f'line {n}: {t} {fingerprint(b)} (the server offers {fingerprint(o) if o else "no " + t + " key"})'
            for t, b, n, o in details
        )
        return (
            f'The SSH host key of {where} is not the one recorded in {known_hosts} ({was}). '
            'The server may have been reinstalled, or someone may be intercepting the connection: '
            'Ansible does not connect to it. If the server was reinstalled, '
            f'{check[0].lower() + check[1:]} in place of the old one: '
            f'ssh-keygen -R {_quote(name)} -f {_quote(known_hosts)} && {record} . Nothing was changed.'
        )
    return ''
