# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nightly backup without AWX (contrib/systemd): the units pass `systemd-analyze verify`, and the service's own
ExecStart line - read from the unit, with %i, the credentials folder and the checkout's path put in as systemd
and the installation would - is a valid run of backup.yml: syntax, the hosts of the environment, and the vault
password read from the credential file only (a wrong one fails). Running it against the sandbox servers needs
the Docker platform: see contrib/systemd/README.md for the platform run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
UNITS = os.path.join(ROOT, 'contrib', 'systemd')
SERVICE = os.path.join(UNITS, 'avatar-backup@.service')
TIMER = os.path.join(UNITS, 'avatar-backup@.timer')
INSTALL_DIR = '/opt/avatar-mgmt'
BIN = os.path.dirname(sys.executable)


def _unit(path):
    """{section: [(key, value), ...]} of a unit file (keys may repeat, as Environment= does)."""
    sections, current = {}, None
    with open(path, encoding='utf-8') as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith(('#', ';')):
                continue
            if line.startswith('['):
                current = sections.setdefault(line.strip('[]'), [])
                continue
            key, _sep, value = line.partition('=')
            current.append((key.strip(), value.strip()))
    return sections


def _values(section, key):
    return [v for k, v in section if k == key]


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='no systemd-analyze')
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    proc = subprocess.run(
        ['systemd-analyze', 'verify', SERVICE, TIMER], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'avatar-backup' not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    # The check can fail: the same service with a command that does not exist is refused.
    broken = tmp_path / 'avatar-backup@.service'
    broken.write_text(
        Path(SERVICE).read_text(encoding='utf-8').replace('ExecStart=/usr/bin/env ', 'ExecStart=/nonexistent/env ')
    )
    proc = subprocess.run(
        ['systemd-analyze', 'verify', str(broken)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0


def test_the_timer_runs_nightly_and_catches_up():
    timer = _unit(TIMER)
    assert _values(timer['Timer'], 'OnCalendar') == ['*-*-* 02:00:00 UTC']
    assert _values(timer['Timer'], 'Persistent') == ['true']
    assert _values(timer['Install'], 'WantedBy') == ['timers.target']
    service = _unit(SERVICE)['Service']
    assert _values(service, 'Type') == ['oneshot']
    # The password file stays root-only: the run reads systemd's private copy of it.
    assert _values(service, 'LoadCredential') == ['vault-pass:/etc/avatar-mgmt/%i.vault-pass']


def _exec_start(instance, credentials):
    """ExecStart's argv and environment of avatar-backup@<instance>.service, as systemd would run it from here."""
    service = _unit(SERVICE)['Service']
    env = {'HOME': str(credentials), 'CREDENTIALS_DIRECTORY': str(credentials)}
    for assignment in _values(service, 'Environment'):
        key, _sep, value = assignment.partition('=')
        env[key] = value.replace(INSTALL_DIR, ROOT)
    env['PATH'] = env['PATH'].replace(f'{ROOT}/.venv/bin', BIN)
    (line,) = _values(service, 'ExecStart')
    line = line.replace('%i', instance).replace('${CREDENTIALS_DIRECTORY}', str(credentials))
    (workdir,) = _values(service, 'WorkingDirectory')
    assert workdir == INSTALL_DIR
    return shlex.split(line), env


@pytest.fixture
def credentials(tmp_path):
    folder = tmp_path / 'credentials'
    folder.mkdir(mode=0o700)
    shutil.copy(os.path.join(ROOT, 'inventories', 'sandbox', 'vault-password.txt'), folder / 'vault-pass')
    os.chmod(folder / 'vault-pass', 0o400)
    return folder


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, 'ansible-playbook')), reason='no ansible-playbook')
def test_the_service_command_is_a_valid_backup_run(credentials):
    argv, env = _exec_start('sandbox', credentials)
    assert argv[:3] == ['/usr/bin/env', 'ansible-playbook', 'playbooks/backup.yml']
    assert argv[argv.index('--vault-id') + 1] == f'sandbox@{credentials}/vault-pass'
    assert argv[argv.index('-e') + 1] == 'backup_schedule=avatar-backup@sandbox'
    for extra in (['--syntax-check'], ['--list-hosts']):
        proc = subprocess.run(argv + extra, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'sandbox-prod-1' in proc.stdout
    assert 'sandbox-stage-1' in proc.stdout


PROBE = '''
- name: Open one vaulted value on the control node
  hosts: sandbox-prod-1
  gather_facts: false
  tasks:
    - name: Template it (debug connects to nothing)
      ansible.builtin.debug:
        msg: "length {{ vault_db_password | length }}"
'''


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, 'ansible-playbook')), reason='no ansible-playbook')
@pytest.mark.parametrize('good', [True, False])
def test_the_vault_opens_with_the_credential_file_only(credentials, tmp_path, good):
    """A vaulted variable of the inventory the command names, templated on the control node (debug connects to
    nothing) with the command's -i and --vault-id and no other (the checkout's ansible.cfg also lists the sandbox's own
    password file: replaced here, so only the credential can open the vault)."""
    if not good:
        os.chmod(credentials / 'vault-pass', 0o600)
        (credentials / 'vault-pass').write_text('not the password\n')
    argv, env = _exec_start('sandbox', credentials)
    vault_id = argv[argv.index('--vault-id') + 1]
    env['ANSIBLE_VAULT_IDENTITY_LIST'] = vault_id
    probe = tmp_path / 'probe.yml'
    probe.write_text(PROBE)
    proc = subprocess.run(
        [os.path.join(BIN, 'ansible-playbook'), str(probe), '-i', argv[argv.index('-i') + 1], '--vault-id', vault_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if good:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert 'length ' in proc.stdout
    else:
        assert proc.returncode != 0
        assert 'Decryption failed' in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
