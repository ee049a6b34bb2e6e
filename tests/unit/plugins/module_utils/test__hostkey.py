# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of _hostkey: known_hosts lookup and the known / unknown / changed judgement."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _hostkey

ED_A = base64.b64encode(b'\x00\x00\x00\x0bssh-ed25519' + b'A' * 36).decode()
ED_B = base64.b64encode(b'\x00\x00\x00\x0bssh-ed25519' + b'B' * 36).decode()
RSA_A = base64.b64encode(b'\x00\x00\x00\x07ssh-rsa' + b'R' * 60).decode()


def hashed(name, salt=b'0123456789abcdefghij'):
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f'|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}'


@pytest.mark.parametrize('host, port, name', [('h.example', 22, 'h.example'), ('127.0.0.1', 2222, '[127.0.0.1]:2222')])
def test_host_name(host, port, name):
    assert _hostkey.host_name(host, port) == name


def test_fingerprint_is_ssh_keygens(tmp_path):
    key = tmp_path / 'k'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(key)], check=True)
    blob = (tmp_path / 'k.pub').read_text().split()[1]
    printed = subprocess.run(['ssh-keygen', '-lf', str(key) + '.pub'], check=True, capture_output=True, text=True)
    assert _hostkey.fingerprint(blob) == printed.stdout.split()[1]


def test_fingerprint_refuses_garbage():
    with pytest.raises(ValueError, match='not a base64 SSH key'):
        _hostkey.fingerprint('not base64!')


@pytest.mark.parametrize(
    'line',
    [
        f'[127.0.0.1]:2222 ssh-ed25519 {ED_A}',
        f'other,[127.0.0.1]:2222 ssh-ed25519 {ED_A} comment',
        f'[127.0.0.1]:22?? ssh-ed25519 {ED_A}',
        f'{hashed("[127.0.0.1]:2222")} ssh-ed25519 {ED_A}',
    ],
)
def test_recorded_keys_finds_the_name(line):
    text = f'# header\n\n[127.0.0.1]:2223 ssh-ed25519 {ED_B}\n{line}\n'
    keys, revoked = _hostkey.recorded_keys(text, '[127.0.0.1]:2222')
    assert keys == [('ssh-ed25519', ED_A, 4)]
    assert revoked == []


@pytest.mark.parametrize(
    'line',
    [
        f'127.0.0.1 ssh-ed25519 {ED_A}',  # port 22's name, not port 2222's
        f'[127.0.0.1]:2222,![127.0.0.1]:2222 ssh-ed25519 {ED_A}',  # negated
        f'{hashed("[127.0.0.1]:2223")} ssh-ed25519 {ED_A}',
        f'@cert-authority [127.0.0.1]:2222 ssh-ed25519 {ED_A}',
        '[127.0.0.1]:2222 ssh-ed25519',  # truncated
    ],
)
def test_recorded_keys_ignores_other_names(line):
    assert _hostkey.recorded_keys(line + '\n', '[127.0.0.1]:2222') == ([], [])


def test_parse_keyscan():
    out = (
        '# 127.0.0.1:2222 SSH-2.0-OpenSSH_10.0\n'
        f'[127.0.0.1]:2222 ssh-ed25519 {ED_A}\n'
        f'[127.0.0.1]:2222 ssh-rsa {RSA_A}\n'
    )
    assert _hostkey.parse_keyscan(out) == [('ssh-ed25519', ED_A), ('ssh-rsa', RSA_A)]


OFFERED = [('ssh-ed25519', ED_A), ('ssh-rsa', RSA_A)]


@pytest.mark.parametrize(
    'recorded, state',
    [
        ([], _hostkey.UNKNOWN),
        ([('ssh-ed25519', ED_A, 1)], _hostkey.KNOWN),
        ([('ssh-rsa', RSA_A, 1)], _hostkey.KNOWN),
        ([('ssh-ed25519', ED_A, 1), ('ssh-rsa', RSA_A, 2)], _hostkey.KNOWN),
        ([('ssh-ed25519', ED_B, 1)], _hostkey.CHANGED),
        # One recorded type matches, another recorded type differs: ssh may pick the differing one.
        ([('ssh-ed25519', ED_B, 1), ('ssh-rsa', RSA_A, 2)], _hostkey.CHANGED),
        # A recorded type the server no longer offers, nothing else recorded.
        ([('ecdsa-sha2-nistp256', ED_A, 1)], _hostkey.CHANGED),
    ],
)
def test_judge(recorded, state):
    assert _hostkey.judge(OFFERED, recorded)[0] == state


def test_judge_refuses_a_revoked_key():
    state, details = _hostkey.judge(OFFERED, [('ssh-ed25519', ED_A, 1)], [('ssh-ed25519', ED_A, 3)])
    assert state == _hostkey.CHANGED
    assert details == [('ssh-ed25519', ED_A, 3, ED_A)]


def test_advice_unknown_says_how_to_record():
    msg = _hostkey.advice(_hostkey.UNKNOWN, 'prod-1', '127.0.0.1', 2222, '/inv/prod/known_hosts', OFFERED)
    assert 'prod-1 (127.0.0.1, port 2222) is not recorded in /inv/prod/known_hosts' in msg
    assert 'ssh-keyscan -p 2222 127.0.0.1 >> /inv/prod/known_hosts' in msg
    assert _hostkey.fingerprint(ED_A) in msg
    assert 'ssh-keygen -lf' in msg
    assert msg.endswith('Nothing was changed.')


def test_advice_changed_names_both_keys_and_the_replacement():
    details = _hostkey.judge(OFFERED, [('ssh-ed25519', ED_B, 7)])[1]
    msg = _hostkey.advice(_hostkey.CHANGED, 'prod-1', 'h.example', 22, '/k h', OFFERED, details)
    assert f'line 7: ssh-ed25519 {_hostkey.fingerprint(ED_B)} (the server offers {_hostkey.fingerprint(ED_A)})' in msg
    assert "ssh-keygen -R h.example -f '/k h' && ssh-keyscan h.example >> '/k h'" in msg
    assert 'intercepting' in msg
