# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The files of a release (env files and plain files such as the compose file), compared and written in one go.

Pure logic of the ``avatar_mgmt.ops.release_files`` module; runs on the managed host (Python 3.9+, standard
library only, nothing from Ansible).

``plan()`` reads what is on the host and works out, for each file, what writing it would change; it never
writes.  ``apply()`` writes what a plan says differs: each file through a temp file in its own folder, fsynced and
renamed over the old one, so a reader sees the old or the new file, never half of one.  ``report()`` and
``diff()`` give what may leave the host: for an env file the names of the keys that change, never a value.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _envfile
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._files import (
    fsync_dir,
    read_bytes,
    unlink_quietly,
    write_synced_temp,
)

__all__ = ['ENV_MODE', 'FILE_MODE', 'ReleaseFilesError', 'apply', 'diff', 'parse_mode', 'plan', 'report']

ENV_MODE = 0o600
FILE_MODE = 0o640


class ReleaseFilesError(Exception):
    """A file could not be written; the message names it and the files written before it (``written``)."""

    def __init__(self, msg, written):
        super().__init__(msg)
        self.written = written


def parse_mode(mode, default, where):
    """The permission bits of ``mode``: an octal string (``'0600'``, ``'600'``) or an int; ``default`` when None."""
    if mode is None or mode == '':
        return default
    if isinstance(mode, bool):
        raise ValueError(f'{where} must be an octal string such as "0600", got {mode!r}')
    if isinstance(mode, int):
        value = mode
    else:
        text = str(mode).strip()
        try:
            value = int(text, 8)
        except ValueError:
            raise ValueError(f'{where} must be an octal string such as "0600", got {text!r}') from None
    if not 0 <= value <= 0o7777:
        raise ValueError(f'{where} must be between 0000 and 7777, got {oct(value)}')
    return value


def _resolve(kind, name, lookup):
    """The numeric id of ``name`` (a number or a name), -1 (leave as it is) when empty."""
    if name is None or name == '':
        return -1
    text = str(name)
    if text.isdigit():
        return int(text)
    try:
        return lookup(text)
    except KeyError:
        raise ValueError(f'{kind} {text} does not exist on this host: create it first or give another {kind}') from None


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _entry(spec, env, index, default_mode):
    """One file's spec, checked: path, content (bytes or None), source, mode."""
    where = f"{'env_files' if env else 'files'}[{index}]"
    path = spec.get('path') or ''
    if not os.path.isabs(path):
        raise ValueError(f'{where}.path must be an absolute path, got {path!r}')
    content = spec.get('content')
    source = spec.get('source') or ''
    if content is None and not source:
        raise ValueError(f'{where} ({path}) needs content or source: give the text to write or a file to copy')
    if source and not os.path.isabs(source):
        raise ValueError(f'{where}.source must be an absolute path, got {source!r}')
    if spec.get('source_required') and not source:
        raise ValueError(f'{where} ({path}) has source_required but no source: name the source file')
    if isinstance(content, str):
        content = content.encode('utf-8', 'surrogateescape')
    return {
        'path': path,
        'env': env,
        'content': content,
        'source': os.path.normpath(source) if source else '',
        'source_required': bool(spec.get('source_required')),
        'mode': parse_mode(spec.get('mode'), default_mode, f'{where}.mode'),
        'return_content': bool(spec.get('return_content')) and not env,
    }


def _read_regular(path, what):
    """The bytes of the regular file ``path``, or None when there is none; ValueError for anything else."""
    st = _lstat(path)
    if st is None:
        return None, None
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(
            f'{what} {path} is a symbolic link: this module writes regular files only; replace the link by the file'
        )
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f'{what} {path} exists and is not a regular file: move it away')
    try:
        return read_bytes(path), st
    except OSError as exc:
        raise ValueError(
            f'{what} {path} cannot be read ({exc.strerror}): run the module as a user that can read it'
        ) from None


def _text(data):
    return '' if data is None else data.decode('utf-8', 'surrogateescape')


def plan(env_files=(), files=(), owner='', group=''):
    """Read the host and work out what writing each file would change, env files first; never writes.

    ``env_files`` and ``files`` are lists of specs: ``path`` (absolute), ``content`` (str) and/or ``source`` (a
    file on the host whose bytes are taken instead of ``content`` when it exists; with no ``content`` a missing
    source leaves the file as it is, unless ``source_required`` refuses it), ``mode`` (octal string; 0600 for env files, 0640 otherwise) and, for plain
    files, ``return_content``.  Raises ValueError, naming the option and the file, for anything that would stop
    the write half-way: so nothing is written unless every file can be.
    """
    specs = [_entry(s, True, i, ENV_MODE) for i, s in enumerate(env_files or ())]
    specs += [_entry(s, False, i, FILE_MODE) for i, s in enumerate(files or ())]
    if not specs:
        raise ValueError('env_files and files are both empty: name at least one file')
    seen = set()
    for spec in specs:
        if os.path.normpath(spec['path']) in seen:
            raise ValueError(f"{spec['path']} is given twice: name each file once")
        seen.add(os.path.normpath(spec['path']))
    uid = _resolve('owner', owner, lambda name: pwd.getpwnam(name).pw_uid)
    gid = _resolve('group', group, lambda name: grp.getgrnam(name).gr_gid)

    plans = []
    for spec in specs:
        path = spec['path']
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            raise ValueError(f'the folder {folder} of {path} does not exist: create it first')
        current, st = _read_regular(path, 'the file')
        desired, from_source = spec['content'], False
        if spec['source']:
            kept, _st = _read_regular(spec['source'], 'the source')
            if kept is not None:
                desired, from_source = kept, True
            elif spec['source_required']:
                raise ValueError(f"the source {spec['source']} of {path} does not exist: there is nothing to put back")
        item = dict(spec, current=current, stat=st, desired=desired, from_source=from_source)
        item['unsourced'] = desired is None
        item['uid'] = uid if uid != -1 else (st.st_uid if st else -1)
        item['gid'] = gid if gid != -1 else (st.st_gid if st else -1)
        item['differs'] = desired is not None and desired != current
        item['attrs_differ'] = (
            desired is not None
            and st is not None
            and not item['differs']
            and (
                stat.S_IMODE(st.st_mode) != spec['mode']
                or (uid != -1 and st.st_uid != uid)
                or (gid != -1 and st.st_gid != gid)
            )
        )
        item['keys'] = _envfile.changed_keys(_text(current), _text(desired)) if spec['env'] and item['differs'] else []
        plans.append(item)
    return plans


def _write(item):
    path = item['path']
    tmp = write_synced_temp(path, item['desired'], item['mode'], item['uid'], item['gid'])
    try:
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    try:
        fsync_dir(os.path.dirname(path))
    except OSError:
        pass  # the rename is done; a folder that cannot be synced is as durable as it gets


def _fix_attrs(item):
    path = item['path']
    if item['uid'] != -1 or item['gid'] != -1:
        os.chown(path, item['uid'], item['gid'], follow_symlinks=False)
    os.chmod(path, item['mode'])


def _changes(item):
    return item['differs'] or item['attrs_differ']


def apply(plans):
    """Write every file of ``plans`` that differs (or fix its mode and owner); return the paths changed."""
    done = []
    for item in plans:
        if not _changes(item):
            continue
        try:
            if item['differs']:
                _write(item)
            else:
                _fix_attrs(item)
        except OSError as exc:
            written = ', '.join(done) if done else 'none'
            raise ReleaseFilesError(
                f"{item['path']} could not be written ({exc.strerror or exc}); files written before it: {written}. "
                'Fix the cause and run again: the files already written stay as they are.',
                done,
            ) from None
        done.append(item['path'])
    return done


def argument_options():
    """The argument spec of env_files and files (release_files, and release_info's compare): one definition."""
    base = {
        'path': {'type': 'path', 'required': True},
        'source': {'type': 'path'},
        'source_required': {'type': 'bool', 'default': False},
    }
    env_files = dict(base, content={'type': 'str', 'no_log': True}, mode={'type': 'raw', 'default': '0600'})
    files = dict(
        base,
        content={'type': 'str'},
        mode={'type': 'raw', 'default': '0640'},
        return_content={'type': 'bool', 'default': False},
    )
    return {
        'env_files': {'type': 'list', 'elements': 'dict', 'default': [], 'options': env_files},
        'files': {'type': 'list', 'elements': 'dict', 'default': [], 'options': files},
        'owner': {'type': 'str', 'default': ''},
        'group': {'type': 'str', 'default': ''},
    }


def identical(plans):
    """Whether writing would change nothing: every file exists with the wanted bytes, mode, owner and group."""
    return all(
        item['unsourced'] or (item['current'] is not None and not item['differs'] and not item['attrs_differ'])
        for item in plans
    )


def report(plans, state):
    """What may leave the host, by path: never the content of an env file, only the names of its changed keys."""
    found = {}
    for item in plans:
        entry = {
            'env': item['env'],
            'exists': item['current'] is not None,
            'differs': item['differs'],
            'attrs_differ': bool(item['attrs_differ']),
            'changed': state == 'present' and _changes(item),
            'keys': item['keys'],
            'from_source': item['from_source'],
            'unsourced': item['unsourced'],
            'mode': f"{item['mode']:04o}",
        }
        if item['return_content']:
            entry['content'] = '' if item['current'] is None else item['current'].decode('utf-8', 'replace')
        found[item['path']] = entry
    return found


def _env_lines(text, keys, side):
    marks = dict.fromkeys(keys, f'<{side} value hidden>')
    return ''.join(f"{key}={marks.get(key, '<unchanged, hidden>')}\n" for key in _envfile.keys_of(text))


def diff(plans):
    """Ansible diffs of the files that change: text for plain files, key names only for env files."""
    found = []
    for item in plans:
        if not _changes(item):
            continue
        before_header = item['path'] if item['current'] is not None else '(absent)'
        if item['env']:
            before = _env_lines(_text(item['current']), item['keys'], 'old')
            after = _env_lines(_text(item['desired']), item['keys'], 'new')
        else:
            before = _text(item['current'])
            after = _text(item['desired'])
        st = item['stat']
        if st is not None:
            # Mode and owner as comment lines, so a change of them alone shows too.
            before += f'# mode {stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid}\n'
            after += f"# mode {item['mode']:04o}, owner {item['uid']}:{item['gid']}\n"
        found.append({'before_header': before_header, 'after_header': item['path'], 'before': before, 'after': after})
    return found
