# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The declaration_key filter (documented in declaration_key.yml beside this file)."""

from __future__ import annotations

import hashlib
import json

from ansible.errors import AnsibleFilterError

ITERATIONS = 100_000


def declaration_key(data, context=''):
    """A slow, salted digest of ``data`` (as canonical JSON): equal data, equal key; no secret readable from it."""
    try:
        text = json.dumps(data, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f'declaration_key: the data cannot be written as JSON ({exc})') from None
    salt = f'avatar_mgmt.ops declaration {context}'.encode()
    return hashlib.pbkdf2_hmac('sha256', text.encode('utf-8'), salt, ITERATIONS).hex()


class FilterModule:
    """declaration_key."""

    def filters(self):
        return {'declaration_key': declaration_key}
