# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventories as AWX imports them and as a play reads them.

AWX imports an inventory with ``ansible-inventory --list --export -i inventories/<env> --playbook-dir
playbooks`` and cannot give that import a vault password; the job's Vault credential decrypts the
values at run time. Real ansible-inventory and ansible-playbook runs (connection local, nothing
contacted), with no vault password anywhere in the configuration unless a test passes one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOOL = [sys.executable, str(ROOT / 'hack' / 'vault_inline.py')]
SANDBOX_PASSWORD = ROOT / 'inventories' / 'sandbox' / 'vault-password.txt'
# Each environment's hosts and groups (hosts.yml), the vault id its values are encrypted with.
ENVIRONMENTS = {
    'staging': ({'staging-1'}, {'staging'}, 'staging'),
    'prod': ({'prod-1'}, {'production'}, 'prod'),
    'sandbox': ({'sandbox-stage-1', 'sandbox-prod-1'}, {'sandbox', 'staging', 'production'}, 'sandbox'),
}
VAULT_FILE = Path('group_vars', 'all', 'vault.yml')

pytestmark = pytest.mark.skipif(not (BIN / 'ansible-inventory').exists(), reason='no ansible-inventory')


@pytest.fixture(scope='module')
def no_vault_config(tmp_path_factory):
    """ansible.cfg without its vault identity (the sandbox password): no vault password at all."""
    text = (ROOT / 'ansible.cfg').read_text()
    cfg = re.sub(r'(?m)^vault_identity_list\s*=.*\n', '', text)
    assert 'vault_identity_list' in text
    assert 'vault_identity' not in cfg
    assert 'vault_password' not in cfg
    path = tmp_path_factory.mktemp('cfg') / 'ansible.cfg'
    path.write_text(cfg)
    return path


def _env(cfg):
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / '.collections'),
        ANSIBLE_ROLES_PATH=str(ROOT / 'roles'),
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_INVENTORY_IGNORE_REGEX='^known_hosts$',
    )
    return env


def _export(inventory, cfg):
    """AWX's import command, with no vault password."""
    argv = [str(BIN / 'ansible-inventory'), '--list', '--export', '-i', str(inventory)]
    argv += ['--playbook-dir', str(ROOT / 'playbooks')]
    return subprocess.run(argv, cwd=ROOT, env=_env(cfg), capture_output=True, text=True, timeout=120, check=False)


def _members(export):
    """group -> every host in it (through its children), from an --export listing."""

    def hosts(group, seen=()):
        entry = export.get(group, {})
        found = set(entry.get('hosts', []))
        for child in entry.get('children', []):
            if child not in seen:
                found |= hosts(child, (*seen, group))
        return found

    return {group: hosts(group) for group in export if group != '_meta'}


def _leaks(output, value):
    """Whether ``value`` appears in ``output`` as written, JSON-escaped, or by its longest run of letters and digits."""
    forms = {value, json.dumps(value)[1:-1]}
    runs = re.findall(r'[A-Za-z0-9]{12,}', value)
    forms.update(runs)
    return any(form in output for form in forms if form)


def _sandbox_values():
    """The sandbox's secrets, decrypted by the tool (each value with ansible-core's vault code)."""
    vault = ROOT / 'inventories' / 'sandbox' / VAULT_FILE
    argv = [*TOOL, 'view', '--json', '--vault-id', f'sandbox@{SANDBOX_PASSWORD}', str(vault)]
    return json.loads(subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


ZEROS = 'sha256:' + '0' * 64
# deploy.yml's checks of settings and secrets, which run before any server is contacted.
CHECKS = {
    'name': "deploy.yml's checks before any server is contacted",
    'hosts': 'all',
    'gather_facts': False,
    'vars': {
        'compose_deploy_release': {
            'version': 'v1.2.0',
            'images': {
                'api': {'reference': f'example/api@{ZEROS}', 'digest': ZEROS},
                'frontend': {'reference': f'example/frontend@{ZEROS}', 'digest': ZEROS},
            },
        },
        'compose_deploy_action': 'deploy',
    },
    'tasks': [
        {
            'name': 'Check settings and secrets',
            'ansible.builtin.include_role': {'name': 'avatar_mgmt.ops.compose_deploy', 'tasks_from': 'validate.yml'},
        }
    ],
}


def _play(tmp_path, inventory, names, cfg, vault_args, checks=False):
    """A real play (connection local) writes what each variable holds, read as the roles read them (a variable
    that templates the vault variable), to tmp_path/out.json; with ``checks``, deploy's checks run after it.
    Beside the playbook: the collection's playbooks/group_vars, as for the collection's own playbooks."""
    out = tmp_path / 'out.json'
    content = '{{ {' + ', '.join(f"'{name}': read_{name}" for name in names) + '} | to_json }}'
    read = {
        'name': 'Read the vault values as a play does',
        'hosts': 'all',
        'connection': 'local',
        'gather_facts': False,
        'vars': {f'read_{name}': '{{ ' + name + ' }}' for name in names},
        'tasks': [
            {
                'name': 'Write them',
                'ansible.builtin.copy': {'content': content, 'dest': str(out), 'mode': '0600'},
                'no_log': True,
            }
        ],
    }
    (tmp_path / 'group_vars').symlink_to(ROOT / 'playbooks' / 'group_vars')
    playbook = tmp_path / 'play.yml'
    playbook.write_text(json.dumps([read, CHECKS] if checks else [read]))
    argv = [str(BIN / 'ansible-playbook'), str(playbook), '-i', str(inventory), *vault_args]
    argv += ['-e', json.dumps({'ansible_python_interpreter': sys.executable})]
    proc = subprocess.run(argv, cwd=ROOT, env=_env(cfg), capture_output=True, text=True, timeout=300, check=False)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.parametrize('env', sorted(ENVIRONMENTS))
def test_awx_imports_the_inventory_without_a_vault_password(env, no_vault_config):
    """The export lists the hosts and groups and every vault variable by name; the sandbox's secrets, decrypted
    here, are not in it (each is there as ciphertext). staging and prod ship placeholders (see the next tests)."""
    hosts, groups, vault_id = ENVIRONMENTS[env]
    proc = _export(ROOT / 'inventories' / env, no_vault_config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = json.loads(proc.stdout)
    members = _members(export)
    assert members['all'] == hosts
    assert groups <= set(members)
    text = (ROOT / 'inventories' / env / VAULT_FILE).read_text()
    names = re.findall(r'(?m)^(vault_\w+):', text)
    assert len(names) >= 12
    assert set(names) <= set(export['all']['vars'])
    if env == 'sandbox':
        secret_values = _sandbox_values()
        assert sorted(secret_values) == sorted(names)
        for name, value in secret_values.items():
            assert len(value) >= 8, name
            assert not _leaks(proc.stdout, value), f'{name} is in the export'
            assert export['all']['vars'][name]['__ansible_vault'].startswith(f'$ANSIBLE_VAULT;1.2;AES256;{vault_id}\n')


def test_a_vault_encrypted_as_a_whole_is_what_awx_cannot_import(tmp_path, no_vault_config):
    """The control: without a password, the same inventory with its vault encrypted as one file fails to import."""
    inventory = tmp_path / 'sandbox'
    shutil.copytree(ROOT / 'inventories' / 'sandbox', inventory)
    vault = inventory / VAULT_FILE
    vault.write_text('---\nvault_ghcr_token: not-a-real-token\n')
    subprocess.run(
        [str(BIN / 'ansible-vault'), 'encrypt', '--vault-id', f'sandbox@{SANDBOX_PASSWORD}', str(vault)],
        env=_env(no_vault_config),
        capture_output=True,
        check=True,
    )
    proc = _export(inventory, no_vault_config)
    assert proc.returncode != 0
    assert 'no vault secrets' in proc.stderr, proc.stderr[-3000:]


def test_a_play_reads_every_sandbox_value_as_written(tmp_path, no_vault_config):
    """With the password (the CLI's --vault-id, as AWX's Vault credential passes it), a play reads each value."""
    secret_values = _sandbox_values()
    vault_args = ['--vault-id', f'sandbox@{SANDBOX_PASSWORD}', '--limit', 'sandbox-prod-1']
    proc, read = _play(tmp_path, ROOT / 'inventories' / 'sandbox', sorted(secret_values), no_vault_config, vault_args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert read.keys() == secret_values.keys()
    for name, value in secret_values.items():
        assert read[name] == value, name


# Made-up secrets for a copy of staging or prod: what a template must never touch.
TRICKY = {
    'vault_ghcr_username': 'avatar-bot',
    'vault_ghcr_token': "ghp_{{ lookup('env', 'HOME') }}_{{ x }}",
    'vault_db_password': 'a{% if true %}b{% endif %}c $HOME ${PATH} $$ #not-a-comment',
    'vault_directus_key': 'quotes \' " and \\ backslash, \u00fc and a trailing space ',
    'vault_jwt_secret': '{{ undefined_variable }}',
    'vault_backup_repository_ssh_key': '-----BEGIN KEY-----\nline {{ two }}\n-----END KEY-----\n',
}


def _encrypt(inventory, vault_id, password_file, fill):
    """The shipped vault of a copy of staging or prod encrypted value by value with the tool, as an operator does;
    with ``fill``, its placeholders first replaced by made-up values (each !unsafe, as the file says) and a
    multi-line one added. Returns every value."""
    vault = inventory / VAULT_FILE
    text = vault.read_text()
    wanted = dict.fromkeys(re.findall(r'(?m)^(vault_\w+): !unsafe CHANGE_ME$', text), 'CHANGE_ME')
    if fill:
        for name in wanted:
            wanted[name] = TRICKY.get(name, secrets.token_urlsafe(24))
            text = text.replace(f'{name}: !unsafe CHANGE_ME\n', f'{name}: !unsafe {json.dumps(wanted[name])}\n')
        name = 'vault_backup_repository_ssh_key'
        wanted[name] = TRICKY[name]
        text += f'{name}: !unsafe |\n' + ''.join(f'  {line}\n' for line in wanted[name].splitlines())
        vault.write_text(text)
    argv = [*TOOL, 'encrypt', str(vault), '--vault-id', f'{vault_id}@{password_file}']
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert ('Still placeholders (a deploy refuses them): vault_ghcr_username' in proc.stdout) is not fill
    for value in wanted.values():
        assert value == 'CHANGE_ME' or not _leaks(proc.stdout + proc.stderr, value)
    assert not re.search(r'(?m)^vault_\w+: !unsafe', vault.read_text())
    return wanted


@pytest.mark.parametrize(
    'env, vault_args',
    [
        ('staging', ['--vault-id', 'staging@{password}']),
        ('prod', ['--vault-password-file', '{password}']),
    ],
)
def test_a_filled_in_environment_imports_without_password_and_plays_read_it_verbatim(
    env, vault_args, tmp_path, no_vault_config
):
    """staging/prod as an operator fills them in: the export holds no value; a play with the password (--vault-id
    ENV@file, or --vault-password-file: vault id default) reads each value exactly as written ({{ }}, {% %}, $,
    quotes, newlines never templated), and deploy's checks pass."""
    _hosts, _groups, vault_id = ENVIRONMENTS[env]
    inventory = tmp_path / env
    shutil.copytree(ROOT / 'inventories' / env, inventory)
    password_file = tmp_path / 'password'
    password_file.write_text(secrets.token_urlsafe(16) + '\n')
    wanted = _encrypt(inventory, vault_id, password_file, fill=True)
    assert len(wanted) >= 13

    proc = _export(inventory, no_vault_config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = json.loads(proc.stdout)['all']['vars']
    for name, value in wanted.items():
        if name != 'vault_ghcr_username':
            assert not _leaks(proc.stdout, value), f'{name} is in the export'
        assert exported[name]['__ansible_vault'].startswith(f'$ANSIBLE_VAULT;1.2;AES256;{vault_id}\n')

    vault_args = [arg.format(password=password_file) for arg in vault_args]
    proc, read = _play(tmp_path, inventory, sorted(wanted), no_vault_config, vault_args, checks=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert read == wanted


def test_encrypted_placeholders_are_still_refused(tmp_path, no_vault_config):
    """The shipped staging vault encrypted as it is: deploy's checks decrypt the placeholders and refuse them by
    name, before any server is contacted."""
    inventory = tmp_path / 'staging'
    shutil.copytree(ROOT / 'inventories' / 'staging', inventory)
    password_file = tmp_path / 'password'
    password_file.write_text(secrets.token_urlsafe(16) + '\n')
    wanted = _encrypt(inventory, 'staging', password_file, fill=False)
    proc, read = _play(
        tmp_path, inventory, sorted(wanted), no_vault_config, ['--vault-id', f'staging@{password_file}'], checks=True
    )
    assert read == wanted
    out = proc.stdout + proc.stderr
    assert 'These secrets are empty or still a placeholder: api DIRECTUS_TOKEN' in out, out[-3000:]
    assert proc.returncode != 0


def _names(path):
    """The variable names a vars file (or every .yml file of a vars folder) sets."""
    files = sorted(path.glob('*.yml')) if path.is_dir() else [path]
    names = set()
    for f in files:
        text = f.read_text()
        names.update(re.findall(r'(?m)^([A-Za-z_][A-Za-z0-9_]*):', text))
    return names


def _inventory_names(inventory):
    """Every variable an inventory sets: its group_vars and host_vars, and the vars of hosts.yml."""
    names = set()
    for folder in ('group_vars', 'host_vars'):
        for path in sorted((inventory / folder).glob('*')):
            names |= _names(path)
    hosts = (inventory / 'hosts.yml').read_text()
    # hosts.yml: a key under `vars:`/a host, i.e. any mapping key that is not a group's structure.
    structure = {'all', 'children', 'hosts', 'vars'}
    names |= {n for n in re.findall(r'(?m)^\s+([A-Za-z_][A-Za-z0-9_]*):', hosts) if n not in structure}
    return names


def test_no_inventory_setting_is_also_set_by_the_playbooks_group_vars():
    """AWX imports an inventory as an inventory script: its variables then rank below the project's
    playbooks/group_vars (even group_vars/all), so a variable set in both would silently take the playbooks'
    value in AWX and the inventory's on the command line."""
    playbook_names = set()
    for path in sorted((ROOT / 'playbooks' / 'group_vars').glob('*')):
        playbook_names |= _names(path)
    assert 'compose_deploy_api_env' in playbook_names  # the parse finds what the files set
    for env in ENVIRONMENTS:
        inventory = _inventory_names(ROOT / 'inventories' / env)
        assert 'ansible_port' in inventory or 'ansible_host' in inventory or env != 'sandbox'
        assert not inventory & playbook_names, (
            f'{env} sets what playbooks/group_vars sets: {inventory & playbook_names}'
        )
