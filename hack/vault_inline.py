# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An inventory's vault file with each value encrypted on its own (inline ``!vault``).

The variable names stay readable, so ``ansible-inventory --list --export`` (AWX's inventory
import, which cannot be given a vault password) reads the inventory without a password, and a
play decrypts the values with ``--vault-id`` / ``--ask-vault-pass`` or AWX's Vault credential.
A ``!vault`` value is never templated: ``{{``, ``{%`` and ``$`` reach the task as written.

    hack/vault-inline.sh encrypt FILE --vault-id ID@prompt [--encrypt-vault-id ID]
        Every plaintext value of FILE becomes a !vault value encrypted with vault id ID;
        values already !vault are kept; a FILE encrypted as a whole is decrypted first.
        FILE is replaced only after every new value decrypts back to the original, in one
        rename: no plaintext copy is left beside it. Comments and order are kept.
    hack/vault-inline.sh view FILE --vault-id ID@SOURCE [--name VAR | --json]
        The decrypted values (one, with --name; all as JSON, with --json).
    hack/vault-inline.sh check FILE...
        Fails when a value is plaintext other than a placeholder (CHANGE_ME, ...), naming the
        variable (never the value). No password needed.

ID@SOURCE is ansible-vault's form: SOURCE is ``prompt`` or a password file (or script);
--vault-password-file FILE and --ask-vault-pass mean the vault id ``default``. Only the vault ids
given here are used (not ansible.cfg's vault_identity_list).

Runs with the Python of the virtual environment (it uses ansible-core's vault code).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import stat
import subprocess
import sys
import tempfile

import yaml
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret, get_file_vault_secret, is_encrypted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secrets import is_placeholder  # noqa: E402

STR_TAG = 'tag:yaml.org,2002:str'
NULL_TAG = 'tag:yaml.org,2002:null'
NOTHING = 'Nothing was changed.'


class VaultInlineError(Exception):
    """A refusal: the message says what is wrong and what to do."""


class Entry:
    """One top-level variable of a vault file: its lines in the file and its value."""

    def __init__(self, name, first, last, comment, encrypted=None, plaintext=None):
        self.name = name
        self.first = first  # first line (0-based)
        self.last = last  # line after the value
        self.comment = comment  # a comment after a one-line value, kept
        self.encrypted = encrypted  # the ciphertext of a !vault value
        self.plaintext = plaintext  # the string of a plaintext value


def _secrets(vault_ids, password_files, ask, confirm):
    """[(vault id, secret)] for ansible-vault's ID@SOURCE forms; a prompt asks twice when ``confirm``."""
    specs = list(vault_ids or [])
    specs += [f'default@{path}' for path in password_files or []]
    if ask:
        specs.append('default@prompt')
    secrets = []
    loader = DataLoader()
    for spec in specs:
        vault_id, _sep, source = spec.rpartition('@')
        vault_id = vault_id or 'default'
        if source in ('prompt', 'prompt_ask_vault_pass'):
            password = getpass.getpass(f'Vault password ({vault_id}): ')
            if not password:
                raise VaultInlineError(f'the password for vault id {vault_id} is empty. {NOTHING}')
            if confirm and getpass.getpass(f'Confirm vault password ({vault_id}): ') != password:
                raise VaultInlineError(f'the two passwords for vault id {vault_id} differ. {NOTHING}')
            secret = VaultSecret(password.encode('utf-8'))
        else:
            try:
                secret = get_file_vault_secret(filename=source, vault_id=vault_id, loader=loader)
                secret.load()
            except AnsibleError as exc:
                raise VaultInlineError(f'vault id {vault_id}: {exc.message}. {NOTHING}') from None
        secrets.append((vault_id, secret))
    return secrets


def _decrypt(vault, ciphertext, what):
    try:
        return vault.decrypt(ciphertext.encode('utf-8')).decode('utf-8')
    except AnsibleError:
        raise VaultInlineError(
            f'{what} does not decrypt with the vault ids given ({", ".join(i for i, _s in vault.secrets) or "none"}): '
            f'give the right one with --vault-id ID@prompt (or ID@password-file). {NOTHING}'
        ) from None


def _string(node, name):
    """The string a plaintext value stands for, as Ansible reads it; refuses what is not a string."""
    if not isinstance(node, yaml.ScalarNode):
        raise VaultInlineError(f'{name} is a list or mapping: inline vault encrypts strings only. {NOTHING}')
    tag = node.tag
    if tag == '!unsafe':
        # Ansible resolves the type of an !unsafe value as for a plain one, even when it is quoted.
        tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, node.value, (True, False))
        if tag not in (STR_TAG, NULL_TAG):
            raise VaultInlineError(
                f'Ansible reads {name} (!unsafe) as {tag.rpartition(":")[2]}, not as text, even quoted: '
                f"write it quoted without !unsafe, e.g. {name}: '...', so that it is encrypted as written. {NOTHING}"
            )
    if tag == NULL_TAG:
        raise VaultInlineError(f'{name} is empty: fill it in (or remove it) first. {NOTHING}')
    if tag != STR_TAG:
        raise VaultInlineError(
            f"{name} is not text ({tag.rpartition(':')[2]}): quote it, e.g. {name}: '...', "
            f'so that it is encrypted as written. {NOTHING}'
        )
    return node.value


def parse(text, path):
    """The entries of a vault file's text (plaintext YAML, values plaintext or !vault)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise VaultInlineError(f'{path} is not valid YAML: {exc}. {NOTHING}') from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise VaultInlineError(f'{path} must be a mapping of variables, one per line. {NOTHING}')
    lines = text.splitlines(keepends=True)
    entries, seen = [], set()
    for key, value in root.value:
        name = key.value
        if name in seen:
            raise VaultInlineError(f'{path} defines {name} twice: keep one. {NOTHING}')
        seen.add(name)
        end = value.end_mark
        last, comment = end.line, ''
        if end.column > 0:
            rest = lines[end.line][end.column :].strip() if end.line < len(lines) else ''
            comment = rest if rest.startswith('#') else ''
            last = end.line + 1
        entry = Entry(name, key.start_mark.line, last, comment)
        if value.tag == '!vault':
            entry.encrypted = value.value
        else:
            entry.plaintext = _string(value, name)
        entries.append(entry)
    return entries


def _render(name, ciphertext, comment):
    head = f'{name}: !vault |' + (f'  {comment}' if comment else '')
    return [head + '\n'] + [f'  {line}\n' for line in ciphertext.splitlines()]


def read_text(path, vault):
    """The file's plaintext YAML text (a file encrypted as a whole is decrypted)."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    if is_encrypted(text):
        text = _decrypt(vault, text, f'{path} (encrypted as a whole)')
    return text


def values(path, vault):
    """name -> decrypted value of every variable of the file."""
    return {
        e.name: _decrypt(vault, e.encrypted, e.name) if e.encrypted is not None else e.plaintext
        for e in parse(read_text(path, vault), path)
    }


def encrypt(path, vault, vault_id):
    """Turn every plaintext value of ``path`` into !vault; returns {name: plaintext} of the values
    encrypted, or None when there was nothing to do."""
    with open(path, encoding='utf-8') as handle:
        whole = is_encrypted(handle.read())
    text = read_text(path, vault)
    entries = parse(text, path)
    todo = [e for e in entries if e.encrypted is None]
    if not todo and not whole:
        return None
    secret = dict(vault.secrets).get(vault_id)
    if secret is None:
        raise VaultInlineError(f'no password for vault id {vault_id}: add --vault-id {vault_id}@prompt. {NOTHING}')
    lines = text.splitlines(keepends=True)
    for entry in reversed(todo):
        ciphertext = vault.encrypt(entry.plaintext, secret=secret, vault_id=vault_id).decode('utf-8')
        lines[entry.first : entry.last] = _render(entry.name, ciphertext, entry.comment)
    new = ''.join(lines)
    # The new text holds the same variables in the same order, each !vault, the new ones decrypting to their value.
    check = parse(new, path)
    plain = {e.name: e.plaintext for e in todo}
    if [e.name for e in check] != [e.name for e in entries] or any(
        e.encrypted is None or (e.name in plain and _decrypt(vault, e.encrypted, e.name) != plain[e.name])
        for e in check
    ):
        raise VaultInlineError(f'the encrypted file would not read back as the original (a bug). {NOTHING}')
    _replace(path, new)
    return plain


def _replace(path, text):
    """Write ``text`` to a new file beside ``path`` (same mode) and rename it over ``path``."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix='.vault-inline-')
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def committed_plaintext(path):
    """Names whose value git's HEAD holds in plaintext (not a placeholder): the history keeps them."""
    folder, base = os.path.split(os.path.abspath(path))
    proc = subprocess.run(['git', '-C', folder, 'show', f'HEAD:./{base}'], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or is_encrypted(proc.stdout):
        return []
    try:
        entries = parse(proc.stdout, path)
    except VaultInlineError:
        return []
    return [e.name for e in entries if e.encrypted is None and not is_placeholder(e.plaintext)]


def plaintext_secrets(path):
    """Names of the file's plaintext values that are not placeholders."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    if is_encrypted(text):
        return []
    return [e.name for e in parse(text, path) if e.encrypted is None and not is_placeholder(e.plaintext)]


def _vault_args(parser):
    parser.add_argument('--vault-id', action='append', default=[], metavar='ID@SOURCE')
    parser.add_argument('--vault-password-file', action='append', default=[], metavar='FILE')
    parser.add_argument('--ask-vault-pass', action='store_true')


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='hack/vault-inline.sh', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest='command', required=True)
    enc = sub.add_parser('encrypt', help='encrypt every plaintext value of FILE on its own (!vault)')
    enc.add_argument('file')
    enc.add_argument(
        '--encrypt-vault-id', metavar='ID', help='the vault id to encrypt with (default: the only one given)'
    )
    _vault_args(enc)
    view = sub.add_parser('view', help='print the decrypted values')
    view.add_argument('file')
    out = view.add_mutually_exclusive_group()
    out.add_argument('--name', metavar='VAR', help='print only this variable')
    out.add_argument('--json', action='store_true', help='all variables as a JSON object')
    _vault_args(view)
    chk = sub.add_parser('check', help='fail when a file holds a plaintext value that is not a placeholder')
    chk.add_argument('files', nargs='+', metavar='FILE')
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except VaultInlineError as exc:
        print(f'vault-inline: {exc}', file=sys.stderr)
        return 1


def _run(args):
    if args.command == 'check':
        bad = {path: plaintext_secrets(path) for path in args.files}
        for path, names in bad.items():
            if names:
                print(
                    f'vault-inline: {path} holds plaintext values: {", ".join(names)}. Encrypt them: '
                    f'hack/vault-inline.sh encrypt {path} --vault-id <env>@prompt',
                    file=sys.stderr,
                )
        return 1 if any(bad.values()) else 0
    if not os.path.isfile(args.file):
        raise VaultInlineError(f'{args.file} is not a file. {NOTHING}')
    confirm = args.command == 'encrypt'
    vault = VaultLib(_secrets(args.vault_id, args.vault_password_file, args.ask_vault_pass, confirm))
    if args.command == 'view':
        found = values(args.file, vault)
        if args.name:
            if args.name not in found:
                raise VaultInlineError(f'{args.file} has no variable {args.name}.')
            print(found[args.name])
        elif args.json:
            print(json.dumps(found))
        else:
            for name, value in found.items():
                print(f'{name}: {json.dumps(value)}')
        return 0
    ids = [vault_id for vault_id, _s in vault.secrets]
    vault_id = args.encrypt_vault_id or (ids[0] if len(set(ids)) == 1 else None)
    if vault_id is None:
        raise VaultInlineError(f'say which vault id to encrypt with: --encrypt-vault-id ID (given: {ids}). {NOTHING}')
    encrypted = encrypt(args.file, vault, vault_id)
    if encrypted is None:
        print(f'{args.file}: every value is already !vault; nothing to do.')
        return 0
    print(f'{args.file}: encrypted with vault id {vault_id}: {", ".join(encrypted) or "(the file, value by value)"}.')
    placeholders = [name for name, value in encrypted.items() if is_placeholder(value)]
    if placeholders:
        print(f'Still placeholders (a deploy refuses them): {", ".join(placeholders)}.')
    leaked = committed_plaintext(args.file)
    if leaked:
        print(
            f'Warning: git history holds these values in plaintext ({args.file} as committed): {", ".join(leaked)}. '
            'Change those secrets where they are used, then encrypt the new values; commit only encrypted values.',
            file=sys.stderr,
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
