# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Env files that Docker Compose reads literally.

Pure logic for the ``avatar_mgmt.ops.env_*`` filters (rendering of
``roles/compose_deploy/templates/env.j2``, validation before anything changes,
the names of the keys a new env file changes).  Standard library only (Python
3.9+), nothing from Ansible.

How Compose v2 (compose-go's dotenv parser, measured with Compose 2.26.1) reads
a double-quoted value ``KEY="..."``: the text up to the closing unescaped ``"``
is taken, the escapes ``\\\\`` -> ``\\``, ``\\"`` -> ``"`` (and ``\\n``, ``\\t``
... as Go escapes) are expanded, then ``$`` interpolation runs, in which ``$$``
is a literal ``$``.  ``#``, ``'``, spaces and tabs inside the quotes are kept.
So writing ``\\`` as ``\\\\``, ``"`` as ``\\"`` and ``$`` as ``$$`` gives back
every value byte for byte, except a newline, a carriage return and NUL, which
an env file cannot carry reliably: those values are refused.

Nothing here ever puts a value into an error message or a result: only key
names leave.
"""

from __future__ import annotations

import re

__all__ = ['KEY_PATTERN', 'changed_keys', 'keys_of', 'problems', 'quote']

KEY_PATTERN = r'^[A-Za-z_][A-Za-z0-9_]*$'
_KEY = re.compile(KEY_PATTERN)
_LINE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)=(.*)$')

# What an env file cannot hold, and the word for it in a message.
_FORBIDDEN = (('\n', 'a newline'), ('\r', 'a carriage return'), ('\x00', 'a NUL byte'))


def _text(value):
    """The text a value becomes in the file: strings as they are, booleans and numbers as YAML wrote them."""
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return value if isinstance(value, str) else str(value)


def quote(value):
    """``value`` as a double-quoted env file value that Compose reads back literally.

    Raises ValueError (without the value) when it holds a newline, a carriage return or NUL.
    """
    text = _text(value)
    for char, word in _FORBIDDEN:
        if char in text:
            raise ValueError(f'the value holds {word}, which an env file cannot carry')
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"').replace('$', '$$') + '"'


def problems(env, name='env'):
    """Sentences naming each key of the mapping ``env`` (the variable ``name``) that cannot be written, or [].

    A key must be a shell-style name; a value must not hold a newline, a carriage return or NUL.  The
    sentences name the variable and the key, never the value.
    """
    if env is None:
        return []
    if not isinstance(env, dict):
        return [f'{name} must be a mapping of variable names to values, got a {type(env).__name__}.']
    found = []
    for key in sorted(env, key=str):
        if not isinstance(key, str) or not _KEY.match(key):
            found.append(
                f'{name} has the key {str(key)!r}, which is not a variable name '
                '(letters, digits and _, not starting with a digit): rename it.'
            )
            continue
        value = env[key]
        if isinstance(value, (dict, list)):
            found.append(f'{name}.{key} is a {type(value).__name__}: give a string.')
            continue
        text = _text(value)
        for char, word in _FORBIDDEN:
            if char in text:
                found.append(
                    f'{name}.{key} holds {word}, which an env file cannot carry (it would end the value or add '
                    'another variable): remove it from the value, or encode the value (for example base64) '
                    'and decode it in the application.'
                )
                break
    return found


def _lines(text):
    """key -> the text after ``=`` on its line, for every ``KEY=...`` line of an env file's ``text``."""
    found = {}
    for line in (text or '').splitlines():
        match = _LINE.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def keys_of(text):
    """The keys an env file's ``text`` sets, sorted."""
    return sorted(_lines(text))


def changed_keys(old_text, new_text):
    """The keys whose line differs between two env files' texts (added, removed or changed), sorted.

    The comparison is of the lines as written, so a value written differently (for example unquoted by
    an older version of this collection) counts as changed, as it does for Compose, which compares the
    file's result.
    """
    old, new = _lines(old_text), _lines(new_text)
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
