# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A prod-like inventory checks SSH host keys against its own known_hosts, on a real sshd.

The server is a test-platform server (``platform.sh server``: Debian 13 with its own host
keys made at first boot). The inventory's group_vars are the prod inventory's own file
(``inventories/prod/group_vars/all/main.yml``), only the hosts are this server. Each
ansible run gets its own SSH ControlPath directory, so no multiplexed connection of an
earlier run can stand in for a new host key check.

unknown key -> deploy.yml and rollback.yml refuse with the ssh-keyscan advice, and ssh
itself refuses (ad-hoc command); the advice's own command recorded -> both connect;
the server's key changed -> refused again, by the check and by ssh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.tests.integration.utils.vault_vars import SECRETS

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), '..', '..'))
STATE = os.environ.get('AVATAR_PLATFORM_STATE') or os.path.join(ROOT, '.cache', 'platform')
SERVER = 'avatar-itest-hostkey'
SSH_PORT = 2281
HTTP_PORT = 8181
SERVER_IMAGE = 'avatar-test/server:trixie'


def _platform(*args):
    env = dict(os.environ, AVATAR_PLATFORM_STATE=STATE)
    return subprocess.run(
        ['bash', os.path.join(ROOT, 'tests', 'platform', 'platform.sh'), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope='module')
def server():
    if (
        shutil.which('docker') is None
        or subprocess.run(['docker', 'info'], capture_output=True, check=False).returncode != 0
    ):
        pytest.skip('host key tests need Docker')
    if subprocess.run(['docker', 'image', 'inspect', SERVER_IMAGE], capture_output=True, check=False).returncode != 0:
        pytest.skip(f'{SERVER_IMAGE} is not built (make images)')
    started = _platform('fresh-server', SERVER, str(SSH_PORT), str(HTTP_PORT))
    assert started.returncode == 0, started.stderr
    try:
        yield SERVER
    finally:
        _platform('rm', SERVER)


@pytest.fixture
def inventory(tmp_path):
    """A prod-like inventory dir: the prod inventory's group_vars file, this server as prod-1, an empty known_hosts."""
    inv = tmp_path / 'prod'
    (inv / 'group_vars' / 'all').mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, 'inventories', 'prod', 'group_vars', 'all', 'main.yml'), inv / 'group_vars' / 'all')
    (inv / 'known_hosts').write_text('# Host keys of the prod servers\n')
    return inv


def _write_hosts(inv, extra=None):
    host = {
        'ansible_host': '127.0.0.1',
        'ansible_port': SSH_PORT,
        'ansible_private_key_file': os.path.join(STATE, 'ssh', 'id_ed25519'),
    }
    host.update(extra or {})
    (inv / 'hosts.yml').write_text(yaml.safe_dump({'all': {'children': {'production': {'hosts': {'prod-1': host}}}}}))


def _env(tmp_path):
    control = tmp_path / f'cp{len(list(tmp_path.glob("cp*")))}'
    control.mkdir()
    return dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
        ANSIBLE_NOCOLOR='1',
    )


def _run(tmp_path, cmd):
    res = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    return res.returncode, res.stdout + res.stderr


def _rollback(tmp_path, inv):
    return _run(tmp_path, [os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), 'rollback.yml', '-i', str(inv)])


def _ad_hoc(tmp_path, inv):
    return _run(
        tmp_path,
        [
            os.path.join(ROOT, '.venv', 'bin', 'ansible'),
            'prod-1',
            '-i',
            str(inv),
            '-m',
            'ansible.builtin.command',
            '-a',
            'cat /etc/hostname',
        ],
    )


def _advice_command(out, known_hosts):
    """The record command the refusal gives, exactly as printed."""
    found = re.search(r'(ssh-keyscan -p \d+ \S+ >> \S+)', out)
    assert found, out[-3000:]
    assert found.group(1) == f'ssh-keyscan -p {SSH_PORT} 127.0.0.1 >> {known_hosts}'
    return found.group(1)


def _server_fingerprint():
    res = subprocess.run(
        ['docker', 'exec', SERVER, 'ssh-keygen', '-lf', '/etc/ssh/ssh_host_ed25519_key.pub'],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.split()[1]


def _wait_for_sshd():
    """Until the restarted sshd answers ssh-keyscan again (at most 15 s)."""
    for _attempt in range(50):
        res = subprocess.run(
            ['ssh-keyscan', '-T', '2', '-p', str(SSH_PORT), '127.0.0.1'], capture_output=True, text=True, check=False
        )
        if 'ssh-ed25519' in res.stdout:
            return
        time.sleep(0.3)
    raise AssertionError('sshd did not come back after its keys were regenerated')


# The ledger read of rollback.yml is the first task that connects: on a bare server it
# finds no release (so the run fails there), which proves the connection was made.
CONNECTED = 'Run again with -e rollback_to='
REFUSED_UNKNOWN = 'is not recorded in'
REFUSED_CHANGED = 'is not the one recorded in'


def test_unknown_recorded_changed(server, inventory, tmp_path):
    _write_hosts(inventory)
    known_hosts = str(inventory / 'known_hosts')

    # 1. Unknown key: refused with the advice, before the first task that connects.
    rc, out = _rollback(tmp_path, inventory)
    assert rc != 0, out[-3000:]
    refusal = f'The SSH host key of prod-1 (127.0.0.1, port {SSH_PORT}) {REFUSED_UNKNOWN} {known_hosts}'
    assert refusal in out, out[-3000:]
    assert _server_fingerprint() in out, 'the advice names the fingerprint to check: ' + out[-3000:]
    assert CONNECTED not in out, out[-3000:]
    # ssh itself refuses too (the inventory's ssh arguments check, not only the playbook task).
    rc, out = _ad_hoc(tmp_path, inventory)
    assert rc != 0, out[-3000:]
    assert 'Host key verification failed' in out, out[-3000:]

    # 2. The advice's command, run as printed: both connect.
    command = _advice_command(_rollback(tmp_path, inventory)[1], known_hosts)
    subprocess.run(command, shell=True, check=True, capture_output=True, timeout=60)
    assert f'[127.0.0.1]:{SSH_PORT} ssh-ed25519' in (inventory / 'known_hosts').read_text()
    rc, out = _rollback(tmp_path, inventory)
    assert rc != 0, out[-3000:]
    assert CONNECTED in out, out[-3000:]
    assert REFUSED_UNKNOWN not in out, out[-3000:]
    assert 'known_hosts as an inventory source' not in out, 'known_hosts beside hosts.yml is no inventory source'
    rc, out = _ad_hoc(tmp_path, inventory)
    assert rc == 0, out[-3000:]
    assert SERVER in out, out[-3000:]

    # 3. The server's keys change (a reinstall, or someone in between): refused again.
    old = _server_fingerprint()
    subprocess.run(
        ['docker', 'exec', SERVER, 'sh', '-c', 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh'],
        check=True,
        capture_output=True,
        timeout=60,
    )
    new = _server_fingerprint()
    assert new != old
    _wait_for_sshd()
    rc, out = _rollback(tmp_path, inventory)
    assert rc != 0, out[-3000:]
    assert REFUSED_CHANGED in out, out[-3000:]
    assert old in out, out[-3000:]
    assert new in out, out[-3000:]
    assert f"ssh-keygen -R '[127.0.0.1]:{SSH_PORT}' -f {known_hosts}" in out, out[-3000:]
    assert CONNECTED not in out, out[-3000:]
    rc, out = _ad_hoc(tmp_path, inventory)
    assert rc != 0, out[-3000:]
    assert 'REMOTE HOST IDENTIFICATION HAS CHANGED' in out, out[-3000:]


def test_deploy_refuses_an_unknown_key(server, inventory, tmp_path, real_registries):
    """The acceptance case: deploy.yml with the prod inventory's settings refuses to connect, with the advice."""
    target = real_registries.basic
    extra = {
        'ghcr_login_registry': target.host,
        'release_registry_ca_path': target.ca_path,
        'vault_ghcr_username': target.username,
        'vault_ghcr_token': target.password,
    }
    extra.update({name: f'itest-{name}-s3cret' for name in SECRETS})
    _write_hosts(inventory, extra)
    rc, out = _run(
        tmp_path,
        [
            os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'),
            'deploy.yml',
            '-i',
            str(inventory),
            '-e',
            'image_tag=v1.2.0',
        ],
    )
    assert rc != 0, out[-3000:]
    assert f'{REFUSED_UNKNOWN} {inventory / "known_hosts"}' in out, out[-3000:]
    _advice_command(out, str(inventory / 'known_hosts'))
    # Refused in play 1: play 2's first task on the host (the role's lock) never ran.
    assert "Take the environment's lock" not in out, out[-3000:]
