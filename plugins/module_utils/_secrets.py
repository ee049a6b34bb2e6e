# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one rule for secrets that are not set yet: empty, or a placeholder copied
from an example file (CHANGE_ME, changeme, REPLACE_ME, <token>, your_token,
TODO, xxx)."""

from __future__ import annotations

import re

__all__ = ['PLACEHOLDER_PATTERN', 'is_placeholder']

PLACEHOLDER_PATTERN = r'^(|CHANGE_?ME.*|changeme.*|REPLACE_?ME.*|<.*>|your_.*|TODO.*|xxx+)$'
_PLACEHOLDER_RE = re.compile(PLACEHOLDER_PATTERN, re.DOTALL)


def is_placeholder(value):
    """True when ``value`` is missing, empty (after trimming) or a placeholder."""
    if value is None:
        return True
    if not isinstance(value, str):
        value = str(value)
    return bool(_PLACEHOLDER_RE.match(value.strip()))
