# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hack/vault_inline.py: a vault file turned into one !vault value per variable, and read back.

The tool runs in-process on files in a temporary folder, with ansible-core's real vault code;
ansible-vault itself makes the file encrypted as a whole that an operator has today.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location('vault_inline', ROOT / 'hack' / 'vault_inline.py')
vault_inline = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(vault_inline)

PLAIN = """\
# Copyright header and comments stay.
---
# The registry.
vault_ghcr_username: avatar-bot
vault_ghcr_token: !unsafe 'tok{{ x }}$HOME'  # a comment after the value stays
# The database.
vault_db_password: "quoted \\" and \\\\ and {% raw %}"
vault_key: !unsafe |
  -----BEGIN KEY-----
  abc{{ y }}
  -----END KEY-----
vault_number_as_text: '0644'
vault_todo: !unsafe CHANGE_ME
"""
VALUES = {
    'vault_ghcr_username': 'avatar-bot',
    'vault_ghcr_token': 'tok{{ x }}$HOME',
    'vault_db_password': 'quoted " and \\ and {% raw %}',
    'vault_key': '-----BEGIN KEY-----\nabc{{ y }}\n-----END KEY-----\n',
    'vault_number_as_text': '0644',
    'vault_todo': 'CHANGE_ME',
}


@pytest.fixture
def vault(tmp_path):
    folder = tmp_path / 'group_vars' / 'all'
    folder.mkdir(parents=True)
    path = folder / 'vault.yml'
    path.write_text(PLAIN)
    path.chmod(0o600)
    (tmp_path / 'password').write_text('a test password\n')
    return path


def _id(path, vault_id='prod'):
    return ['--vault-id', f'{vault_id}@{path.parents[2] / "password"}']


def _run(capsys, *argv):
    rc = vault_inline.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _view(capsys, path, vault_id='prod'):
    rc, out, err = _run(capsys, 'view', path, '--json', *_id(path, vault_id))
    assert rc == 0, err
    return json.loads(out)


def test_encrypt_turns_every_value_into_vault_and_back(vault, capsys):
    rc, out, err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 0, err
    assert 'encrypted with vault id prod: vault_ghcr_username, vault_ghcr_token,' in out
    assert 'Still placeholders (a deploy refuses them): vault_todo.' in out
    for value in VALUES.values():
        if value not in ('CHANGE_ME', 'avatar-bot'):
            assert value not in out + err
    text = vault.read_text()
    for value in VALUES.values():
        assert value.splitlines()[0] not in text
    # Names, order and comments stay; each value is one !vault block with the vault id.
    names = [line.split(':')[0] for line in text.splitlines() if line.startswith('vault_')]
    assert names == list(VALUES)
    assert text.count(': !vault |') == len(VALUES)
    assert text.count('$ANSIBLE_VAULT;1.2;AES256;prod\n') == len(VALUES)
    for comment in ('# Copyright header and comments stay.', '# The registry.', '# The database.'):
        assert comment + '\n' in text
    assert 'vault_ghcr_token: !vault |  # a comment after the value stays\n' in text
    assert _view(capsys, vault) == VALUES
    assert stat.S_IMODE(vault.stat().st_mode) == 0o600
    assert sorted(p.name for p in vault.parent.iterdir()) == ['vault.yml']


def test_a_second_run_changes_nothing(vault, capsys):
    assert _run(capsys, 'encrypt', vault, *_id(vault))[0] == 0
    before = vault.read_bytes()
    rc, out, _err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 0
    assert 'every value is already !vault; nothing to do' in out
    assert vault.read_bytes() == before


def test_a_new_plaintext_value_is_encrypted_and_the_others_are_kept(vault, capsys):
    assert _run(capsys, 'encrypt', vault, *_id(vault))[0] == 0
    before = vault.read_text()
    vault.write_text(before + 'vault_new: !unsafe new{{ z }}\n')
    rc, out, _err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 0
    assert 'encrypted with vault id prod: vault_new.' in out
    assert vault.read_text().startswith(before)
    assert _view(capsys, vault) == {**VALUES, 'vault_new': 'new{{ z }}'}


def test_a_file_encrypted_as_a_whole_is_converted(vault, capsys):
    subprocess.run(
        [Path(sys.executable).parent / 'ansible-vault', 'encrypt', *_id(vault), '--encrypt-vault-id', 'prod', vault],
        check=True,
        capture_output=True,
    )
    assert vault.read_text().startswith('$ANSIBLE_VAULT;1.2;AES256;prod\n')
    assert _view(capsys, vault) == VALUES
    rc, _out, err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 0, err
    assert vault.read_text().startswith('# Copyright header and comments stay.\n---\n')
    assert _view(capsys, vault) == VALUES


@pytest.mark.parametrize(
    'line, message',
    [
        ('vault_list: [a, b]', 'vault_list is a list or mapping: inline vault encrypts strings only'),
        ('vault_port: 5432', "vault_port is not text (int): quote it, e.g. vault_port: '...'"),
        ('vault_flag: !unsafe yes', 'Ansible reads vault_flag (!unsafe) as bool, not as text, even quoted'),
        ("vault_mode: !unsafe '0644'", "Ansible reads vault_mode (!unsafe) as int, not as text, even quoted: write it"),
        ('vault_none: !unsafe', 'vault_none is empty'),
        ('vault_empty:', 'vault_empty is empty: fill it in (or remove it) first'),
        ('vault_ghcr_username: again', 'defines vault_ghcr_username twice: keep one'),
    ],
)
def test_what_is_not_one_string_is_refused_and_nothing_changes(vault, capsys, line, message):
    vault.write_text(PLAIN + line + '\n')
    before = vault.read_bytes()
    rc, out, err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 1
    assert message in err
    assert 'Nothing was changed.' in err
    assert not out
    assert vault.read_bytes() == before
    assert sorted(p.name for p in vault.parent.iterdir()) == ['vault.yml']


def test_a_wrong_password_is_refused(vault, capsys):
    assert _run(capsys, 'encrypt', vault, *_id(vault))[0] == 0
    before = vault.read_bytes()
    (vault.parents[2] / 'other').write_text('another password\n')
    rc, _out, err = _run(capsys, 'view', vault, '--vault-id', f'prod@{vault.parents[2] / "other"}')
    assert rc == 1
    assert 'vault_ghcr_username does not decrypt with the vault ids given (prod)' in err
    vault.write_text(before.decode() + 'vault_new: x\n')
    rc, _out, err = _run(capsys, 'encrypt', vault, '--vault-id', f'prod@{vault.parents[2] / "other"}')
    assert rc == 0, 'values already !vault are kept, not decrypted'
    rc, _out, err = _run(capsys, 'view', vault, *_id(vault))
    assert rc == 1
    assert 'vault_new does not decrypt' in err


def test_the_vault_id_to_encrypt_with_must_be_clear(vault, capsys):
    two = [*_id(vault, 'prod'), *_id(vault, 'staging')]
    rc, _out, err = _run(capsys, 'encrypt', vault, *two)
    assert rc == 1
    assert "say which vault id to encrypt with: --encrypt-vault-id ID (given: ['prod', 'staging'])" in err
    rc, _out, err = _run(capsys, 'encrypt', vault, *two, '--encrypt-vault-id', 'staging')
    assert rc == 0, err
    assert vault.read_text().count('$ANSIBLE_VAULT;1.2;AES256;staging\n') == len(VALUES)
    rc, _out, err = _run(capsys, 'encrypt', vault, *_id(vault), '--encrypt-vault-id', 'qa')
    assert rc == 0, 'nothing left to encrypt'
    vault.write_text(vault.read_text() + 'vault_new: x\n')
    rc, _out, err = _run(capsys, 'encrypt', vault, *_id(vault), '--encrypt-vault-id', 'qa')
    assert rc == 1
    assert 'no password for vault id qa: add --vault-id qa@prompt' in err


def test_view_prints_one_value(vault, capsys):
    assert _run(capsys, 'encrypt', vault, *_id(vault))[0] == 0
    rc, out, _err = _run(capsys, 'view', vault, '--name', 'vault_key', *_id(vault))
    assert rc == 0
    assert out == VALUES['vault_key'] + '\n'
    rc, _out, err = _run(capsys, 'view', vault, '--name', 'vault_nope', *_id(vault))
    assert rc == 1
    assert 'has no variable vault_nope' in err


def test_check_names_plaintext_secrets_never_their_values(vault, capsys):
    rc, _out, err = _run(capsys, 'check', vault)
    assert rc == 1
    assert 'holds plaintext values: vault_ghcr_username, vault_ghcr_token, vault_db_password, vault_key,' in err
    assert 'vault_todo' not in err  # a placeholder is no secret
    for value in VALUES.values():
        assert value.splitlines()[0] not in err
    assert _run(capsys, 'encrypt', vault, *_id(vault))[0] == 0
    assert _run(capsys, 'check', vault)[0] == 0


def test_the_shipped_vault_files_hold_no_plaintext_secret(capsys):
    files = sorted((ROOT / 'inventories').glob('*/group_vars/*/vault.yml'))
    assert [f.parts[-4] for f in files] == ['prod', 'sandbox', 'staging']
    rc, _out, err = _run(capsys, 'check', *files)
    assert rc == 0, err


def test_plaintext_already_in_git_history_is_reported(vault, capsys):
    git = ['git', '-C', str(vault.parent), '-c', 'user.name=t', '-c', 'user.email=t@example.invalid']
    env = {k: v for k, v in os.environ.items() if not k.startswith('GIT_')}
    subprocess.run([*git, 'init', '-q'], check=True, env=env)
    subprocess.run([*git, 'add', 'vault.yml'], check=True, env=env)
    subprocess.run([*git, 'commit', '-q', '-m', 'plaintext'], check=True, env=env)
    rc, _out, err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 0
    assert 'git history holds these values in plaintext' in err
    assert 'vault_ghcr_username, vault_ghcr_token, vault_db_password, vault_key, vault_number_as_text.' in err
    # Once the encrypted file is committed, nothing is reported.
    subprocess.run([*git, 'commit', '-q', '-am', 'encrypted'], check=True, env=env)
    vault.write_text(vault.read_text() + 'vault_new: x\n')
    rc, _out, err = _run(capsys, 'encrypt', vault, *_id(vault))
    assert rc == 0
    assert not err
