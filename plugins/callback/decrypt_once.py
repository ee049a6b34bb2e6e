# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Decrypt the inventory's inline vault values once, in the controller's main process, when a play starts.

Ansible runs each task in a worker forked from the main process, and an inline vault value
(``!vault |``) decrypts itself on first use and keeps the plaintext on the object: in the worker,
which ends with the task. Every task that templates a secret (the env files, the input checks, the
registry login) decrypted it again, 4-5 ms a value, 14 values in the sandbox's vault. Decrypted once
here, before the first worker forks, every worker inherits the plaintext.

Nothing is printed, logged or written: the plaintext stays where Ansible keeps it anyway (the
memory of the controller's process). A value that cannot be decrypted here (no vault password for
it) is left alone; the task that uses it fails as it would have.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: decrypt_once
type: aggregate
short_description: Decrypt inline vault values once per run instead of once per task
description:
  - When a play starts, decrypts every inline vault value in the variables of the inventory's hosts in the
    controller's main process, so that the workers Ansible forks for each task inherit the plaintext instead of
    decrypting it again.
  - Prints, logs and writes nothing. A value it cannot decrypt is left as it is.
  - The collection's C(ansible.cfg) enables it; another project enables it with
    C(callbacks_enabled = avatar_mgmt.ops.decrypt_once).
requirements:
  - enabled in ansible.cfg or with E(ANSIBLE_CALLBACKS_ENABLED)
"""

# ansible-test's validate-modules wants the imports below DOCUMENTATION.
from ansible.plugins.callback import CallbackBase  # noqa: E402

try:
    from ansible.parsing.vault import EncryptedString
except ImportError:  # ansible-core before 2.19: its vault values keep no plaintext, there is nothing to do
    EncryptedString = None

# Nested structures are walked this deep (inventory variables are shallow; this bounds a cycle).
_MAX_DEPTH = 12


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'avatar_mgmt.ops.decrypt_once'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # ids of the values already looked at (decrypted or not decryptable): each is tried once.
        self._seen = set()
        # The hosts whose variables were walked: each once per run (a play starts again for every serial batch).
        self._walked = set()
        self.decrypted = 0

    def v2_playbook_on_play_start(self, play):
        if EncryptedString is None:
            return
        try:
            manager = play.get_variable_manager()
            play_vars = manager.get_vars(play=play)
            hostvars = play_vars['hostvars']
            # The hosts of this batch of the play (--limit and serial applied), else every host.
            names = play_vars.get('ansible_play_batch') or play_vars['groups']['all']
        except Exception:  # noqa: BLE001 - an optimisation: never a reason for a run to fail
            return
        for name in names:
            if name in self._walked:
                continue
            self._walked.add(name)
            try:
                self._walk(hostvars.raw_get(name), 0)
            except Exception:  # noqa: BLE001
                continue
        if self._display.verbosity >= 4:
            self._display.vvvv(
                f'decrypt_once: {self.decrypted} vault value(s) decrypted, {len(self._walked)} host(s) walked'
            )

    def _walk(self, value, depth):
        if isinstance(value, EncryptedString):
            if id(value) not in self._seen:
                self._seen.add(id(value))
                try:
                    len(value)  # decrypts, and the value keeps its plaintext
                except Exception:  # noqa: BLE001 - no password for it here: the task that uses it says so
                    return
                self.decrypted += 1
            return
        if depth >= _MAX_DEPTH or isinstance(value, (str, bytes)):
            return
        if isinstance(value, dict):
            for item in value.values():
                self._walk(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._walk(item, depth + 1)
