# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""decrypt_once, with ansible-playbook: the inventory's inline vault values reach a task's worker already decrypted
(without the callback each worker holds them encrypted and decrypts them again); a value it cannot decrypt is left
alone; it prints nothing and never fails a run.

What the worker holds is read by a lookup of this test (it runs in the worker, before anything templates the value).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..', '..'))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')
PASSWORD = 'decrypt-once-test-password'
JWT = 'Kx$Abc123#tail'
NESTED = "it's \"quoted\" with spaces"

# Whether each named value is, in the worker, still encrypted or already holds its plaintext.
LOOKUP = '''
import json
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        states = {}
        for term in terms:
            value = variables
            for part in term.split('.'):
                value = value[part]
            try:
                states[term] = 'decrypted' if object.__getattribute__(value, '_plaintext') is not None else 'encrypted'
            except AttributeError:
                states[term] = type(value).__name__
        return [json.dumps(states, sort_keys=True)]
'''

PLAY = '''
- hosts: all
  gather_facts: false
  serial: "{{ batch | default(0) }}"
  tasks:
    - name: Say what the worker holds
      ansible.builtin.debug:
        msg: "STATES {{ lookup('worker_states', 'vault_jwt_secret', 'app.env.nested', 'vault_other_password') }}"
'''


def _vault(text, password, indent):
    ciphertext = VaultLib([('default', VaultSecret(password.encode()))]).encrypt(text).decode()
    return '!vault |\n' + textwrap.indent(ciphertext, ' ' * indent)


@pytest.fixture
def project(tmp_path):
    os.makedirs(tmp_path / 'group_vars' / 'all')
    os.makedirs(tmp_path / 'lookup_plugins')
    (tmp_path / 'lookup_plugins' / 'worker_states.py').write_text(LOOKUP)
    (tmp_path / 'play.yml').write_text(PLAY)
    (tmp_path / 'hosts.yml').write_text(
        'all:\n  hosts:\n    web-1:\n      ansible_connection: local\n    web-2:\n      ansible_connection: local\n'
    )
    (tmp_path / 'group_vars' / 'all' / 'vault.yml').write_text(
        f'vault_jwt_secret: {_vault(JWT, PASSWORD, 2)}\n'
        # Another vault's value: this run has no password for it.
        f'vault_other_password: {_vault("not-ours", "another-password", 2)}\n'
        f'app:\n  env:\n    nested: {_vault(NESTED, PASSWORD, 6)}\n'
    )
    (tmp_path / 'vault-password.txt').write_text(PASSWORD + '\n')
    return tmp_path


def _play(project, callback=True, password=True, verbosity='', extra=()):
    (project / 'ansible.cfg').write_text(
        '[defaults]\n'
        f'collections_path = {ROOT}/.collections\n'
        + (f'vault_identity_list = test@{project}/vault-password.txt\n' if password else '')
        + ('callbacks_enabled = avatar_mgmt.ops.decrypt_once\n' if callback else '')
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / 'ansible.cfg'))
    env.pop('ANSIBLE_CALLBACKS_ENABLED', None)
    argv = [ANSIBLE_PLAYBOOK, '-i', 'hosts.yml', 'play.yml', *extra] + ([verbosity] if verbosity else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(project), timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if 'STATES ' in line]
    found = [json.loads(json.loads('"' + line.split('STATES ', 1)[1].rstrip().rstrip('"') + '"')) for line in lines]
    # Every host's worker holds the same.
    assert all(states == found[0] for states in found), found
    return found[0], done


def test_a_worker_gets_the_values_decrypted_once_in_the_main_process(project):
    states, done = _play(project)
    assert states == {
        'vault_jwt_secret': 'decrypted',
        'app.env.nested': 'decrypted',
        'vault_other_password': 'encrypted',
    }
    assert 'WARNING' not in done.stdout + done.stderr


def test_without_the_callback_each_worker_holds_them_encrypted(project):
    # What the callback saves: without it, each task's worker would decrypt these again.
    states, _done = _play(project, callback=False)
    assert set(states.values()) == {'encrypted'}


def test_nothing_secret_is_printed_even_at_the_highest_verbosity(project):
    _states, done = _play(project, verbosity='-vvvvv')
    output = done.stdout + done.stderr
    assert 'avatar_mgmt.ops.decrypt_once' in output  # it did load
    assert JWT not in output
    assert 'quoted' not in output
    assert 'not-ours' not in output


def test_without_any_vault_password_it_decrypts_nothing_and_the_run_goes_on(project):
    states, done = _play(project, password=False)
    assert set(states.values()) == {'encrypted'}
    assert 'WARNING' not in done.stdout + done.stderr


def test_serial_batches_walk_each_host_once_and_limit_is_kept(project):
    # A play starts again for every serial batch: each batch walks only its new hosts, and --limit is kept.
    states, done = _play(project, verbosity='-vvvv', extra=('-e', 'batch=1'))
    assert states['vault_jwt_secret'] == 'decrypted'
    said = re.findall(r'decrypt_once: (\d+) vault value\(s\) decrypted, (\d+) host\(s\) walked', done.stdout)
    assert said == [('2', '1'), ('2', '2')], said
    _states, done = _play(project, verbosity='-vvvv', extra=('--limit', 'web-2'))
    said = re.findall(r'decrypt_once: (\d+) vault value\(s\) decrypted, (\d+) host\(s\) walked', done.stdout)
    assert said == [('2', '1')], said
