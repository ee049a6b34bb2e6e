# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The public key of an OpenSSH private key (what ``ssh-keygen -y`` prints), read from the key file's
own header: the ``openssh-key-v1`` format stores the public key unencrypted beside the private one, so
nothing is decrypted and the private key never has to be written anywhere."""

from __future__ import annotations

import base64
import re
import struct

MAGIC = b'openssh-key-v1\x00'
PEM_RE = re.compile(
    r'-----BEGIN OPENSSH PRIVATE KEY-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END OPENSSH PRIVATE KEY-----'
)


def _string(data, pos):
    if pos + 4 > len(data):
        raise ValueError('the key is truncated')
    (length,) = struct.unpack('>I', data[pos : pos + 4])
    end = pos + 4 + length
    if end > len(data):
        raise ValueError('the key is truncated')
    return data[pos + 4 : end], end


def public_key(private_key, comment=''):
    """``'<type> <base64>[ comment]'`` of an OpenSSH-format private key; ValueError for anything else
    (the message never contains the key)."""
    match = PEM_RE.search(private_key or '')
    if not match:
        raise ValueError(
            'not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----); '
            'convert it with ssh-keygen -p -f KEY, or give the public key'
        )
    try:
        data = base64.b64decode(re.sub(r'\s+', '', match['body']), validate=True)
    except ValueError:
        raise ValueError('the key is not valid base64') from None
    if not data.startswith(MAGIC):
        raise ValueError('the key is not in openssh-key-v1 format')
    pos = len(MAGIC)
    for _field in ('cipher', 'kdf', 'kdf options'):
        _value, pos = _string(data, pos)
    if pos + 4 > len(data):
        raise ValueError('the key is truncated')
    (count,) = struct.unpack('>I', data[pos : pos + 4])
    if count != 1:
        raise ValueError(f'the key file holds {count} keys, not 1')
    blob, _pos = _string(data, pos + 4)
    key_type, _rest = _string(blob, 0)
    line = f"{key_type.decode('ascii')} {base64.b64encode(blob).decode('ascii')}"
    return f'{line} {comment}' if comment else line
