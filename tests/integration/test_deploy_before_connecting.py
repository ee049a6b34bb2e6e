# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""deploy.yml refuses bad input and a registry that refuses the credentials on the
control node, before any server is contacted.

The "servers" of this inventory are a TCP listener on 127.0.0.1 that counts the
connections it receives; ``ansible-playbook deploy.yml`` (the root playbook an
operator types) runs against the real registry of the integration tests. A
control run with good input proves that the listener does see the connection
attempt of play 2, so a count of 0 means something.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.tests.integration.utils.vault_vars import SECRETS

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), '..', '..'))


class Listener:
    """Accepts and counts TCP connections on 127.0.0.1 until closed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener():
    srv = Listener()
    try:
        yield srv
    finally:
        srv.close()


def _inventory(tmp_path, target, port, password, **secrets):
    host_vars = {
        'ansible_host': '127.0.0.1',
        'ansible_port': port,
        'ansible_user': 'deploy',
        'ansible_ssh_common_args': '-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o ConnectTimeout=3',
        'ghcr_login_registry': target.host,
        'release_registry_ca_path': target.ca_path,
        'vault_ghcr_username': target.username,
        'vault_ghcr_token': password,
    }
    host_vars.update({name: f'itest-{name}-s3cret' for name in SECRETS})
    host_vars.update(secrets)
    for name in [name for name, value in host_vars.items() if value is None]:
        del host_vars[name]
    inventory = {'all': {'children': {'production': {'hosts': {'itest-prod-1': host_vars, 'itest-prod-2': host_vars}}}}}
    path = tmp_path / 'hosts.yml'
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


def _deploy(inventory, *extra):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
    )
    cmd = [os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), 'deploy.yml', '-i', inventory, *extra]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize('image_tag', ['v1.2', '1.2.0.0', 'v1.2.0; rm -rf /', 'V1.2.0', 'v9.9.9'])
def test_bad_image_tag_is_refused_before_connecting(tmp_path, real_registries, listener, image_tag):
    target = real_registries.basic
    rc, out = _deploy(
        _inventory(tmp_path, target, listener.port, target.password), '-e', json.dumps({'image_tag': image_tag})
    )
    assert rc != 0, out[-3000:]
    assert f'image_tag={image_tag} cannot be deployed' in out, out[-3000:]
    assert 'No server was contacted' in out
    assert listener.count == 0, 'a server was contacted: ' + out[-3000:]


def test_wrong_registry_password_is_refused_before_connecting(tmp_path, real_registries, listener):
    target = real_registries.basic
    rc, out = _deploy(_inventory(tmp_path, target, listener.port, target.wrong_password), '-e', 'image_tag=v1.2.0')
    assert rc != 0, out[-3000:]
    assert 'ghcr_login_token' in out, out[-3000:]
    assert 'image_tag=v1.2.0 cannot be deployed' in out, out[-3000:]
    assert target.wrong_password not in out
    assert listener.count == 0, 'a server was contacted: ' + out[-3000:]


def test_env_value_with_a_newline_is_refused_before_connecting(tmp_path, real_registries, listener):
    """A newline in a value would end it in the env file and inject another variable: refused, naming the
    variable and key (never the value), before any server is contacted."""
    target = real_registries.basic
    secret = 'itest-first-line\nINJECTED=itest-second-line'
    rc, out = _deploy(
        _inventory(tmp_path, target, listener.port, target.password, vault_jwt_secret=secret),
        '-e',
        'image_tag=v1.2.0',
    )
    assert rc != 0, out[-3000:]
    assert 'compose_deploy_api_env.JWT_SECRET holds a newline' in out, out[-3000:]
    assert 'Nothing was changed' in out
    assert 'itest-first-line' not in out
    assert 'itest-second-line' not in out
    assert listener.count == 0, 'a server was contacted: ' + out[-3000:]


@pytest.mark.parametrize('password', [None, 'CHANGE_ME'])
def test_missing_proxy_password_is_refused_before_connecting(tmp_path, real_registries, listener, password):
    """The handover switch logs in to the proxy's API: without its password (unset, or the vault example's
    placeholder) the run is refused by name before any server is contacted, not half-way with "is undefined"."""
    target = real_registries.basic
    rc, out = _deploy(
        _inventory(tmp_path, target, listener.port, target.password, vault_npm_admin_password=password),
        '-e',
        'image_tag=v1.2.0',
    )
    assert rc != 0, out[-3000:]
    assert 'compose_deploy_npm_password (by default the vault\'s vault_npm_admin_password) is unset' in out, out[-3000:]
    assert 'Nothing was changed' in out
    assert listener.count == 0, 'a server was contacted: ' + out[-3000:]


def test_good_input_goes_on_to_the_servers(tmp_path, real_registries, listener):
    """The control case: with input the registry accepts, play 2 does try the servers."""
    target = real_registries.basic
    rc, out = _deploy(_inventory(tmp_path, target, listener.port, target.password), '-e', 'image_tag=v1.2.0')
    assert rc != 0  # the listener is no SSH server
    assert 'cannot be deployed' not in out, out[-3000:]
    assert listener.count >= 1, out[-3000:]


def test_ad_hoc_module_from_the_checkout(real_registries):
    """What a new operator types first works from the checkout: the sandbox inventory (ansible.cfg's
    default) applies nothing to the implicit localhost, and no variable needs exporting."""
    target = real_registries.basic
    env = {k: v for k, v in os.environ.items() if not k.startswith(('AVATAR_', 'ANSIBLE_'))}
    env['ANSIBLE_CONFIG'] = os.path.join(ROOT, 'ansible.cfg')
    args = (
        f'tag=latest registry={target.host} ca_path={target.ca_path} '
        f'username={target.username} password={target.password}'
    )
    res = subprocess.run(
        [os.path.join(ROOT, '.venv', 'bin', 'ansible'), 'localhost', '-m', 'avatar_mgmt.ops.release_tag', '-a', args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert 'SUCCESS' in out
    assert '\n    version: v1.2.0\n' in out.replace('\r', '')
    assert target.password not in out


@pytest.mark.parametrize('image_tag', ['v1.3.0-beta.1', 'staging'])
def test_production_refuses_a_prerelease_before_connecting(tmp_path, real_registries, listener, image_tag):
    """A pre-release, asked for or the one a channel points at, is refused for production before any
    server is contacted; -e compose_deploy_allow_prerelease=true lets the same run go on to the servers."""
    target = real_registries.basic
    inventory = _inventory(tmp_path, target, listener.port, target.password)
    rc, out = _deploy(inventory, '-e', f'image_tag={image_tag}')
    assert rc != 0, out[-3000:]
    assert f'image_tag={image_tag} cannot be deployed to production' in out, out[-3000:]
    assert 'the pre-release v1.3.0-beta.1' in out
    assert '-e compose_deploy_allow_prerelease=true' in out
    assert listener.count == 0, 'a server was contacted: ' + out[-3000:]
    rc, out = _deploy(inventory, '-e', f'image_tag={image_tag}', '-e', 'compose_deploy_allow_prerelease=true')
    assert rc != 0  # the listener is no SSH server
    assert 'cannot be deployed' not in out, out[-3000:]
    assert listener.count >= 1, out[-3000:]
