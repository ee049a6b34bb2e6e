# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The record of the last declaration of the proxy hosts, and whether NPM changed since.

avatar_mgmt.ops.npm_proxy_host (option ``declared_marker``) writes, after a declaration that
succeeded, a small JSON file: the declaration's ``key`` (a hash the caller computes from every
setting of the declaration, secrets included: a slow, salted digest, so that no secret can cheaply be
guessed from it) and the state of NPM's database file then (size,
modification and change times in ns, inode, device). NPM (better-sqlite3, rollback journal) rewrites that file on every
change of a proxy host, certificate, access list, user or setting, whoever makes it: the
collection, the web UI or NPM itself (a renewal).

avatar_mgmt.ops.release_info (option ``proxy_marker``) reads the file back: ``current`` is true only
when the file is a regular file of this user, writable by it alone, names the same database, and
that database has exactly the recorded state. The caller then knows that NPM holds what the
declaration with ``key`` left, without asking NPM. Anything else (no file, a damaged one, another
database, any change) is not current, and the caller declares again.
"""

from __future__ import annotations

import json
import os
import stat

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _files

MAX_BYTES = 4096


def database_state(path):
    """``{size, mtime_ns, ctime_ns, inode, device}`` of the regular file ``path`` (links followed), or None.

    The change time cannot be set back: a file put back from a copy (a restore) differs in it.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return {
        'size': st.st_size,
        'mtime_ns': st.st_mtime_ns,
        'ctime_ns': st.st_ctime_ns,
        'inode': st.st_ino,
        'device': st.st_dev,
    }


def remove(path):
    """Remove the marker (a declaration is under way or failed); True when there was one."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def write(path, key, database, state=None):
    """Record ``key`` with the database's state (now, or ``state`` as the caller saw it), whole or not at all
    (mode 0600); False without a database."""
    state = state or database_state(database)
    if state is None:
        remove(path)
        return False
    text = json.dumps({'key': key, 'database': database, 'state': state}, sort_keys=True)
    tmp = _files.write_synced_temp(path, text.encode('utf-8'), 0o600)
    try:
        os.replace(tmp, path)
    except BaseException:
        _files.unlink_quietly(tmp)
        raise
    return True


def read(path, database):
    """``{key, current, reason}``: the recorded key ('' when none) and whether NPM is unchanged since."""
    return _read(path, database)[0]


def _read(path, database):
    """``(read()'s answer, the database's state it was compared with)``: the state is None when not current."""

    def answer(reason, key=''):
        return {'key': key, 'current': False, 'reason': reason}, None

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return answer('no declaration recorded')
    except OSError as exc:
        return answer(f'the record cannot be read ({exc.strerror or exc})')
    if not stat.S_ISREG(st.st_mode):
        return answer('the record is not a regular file')
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return answer('the record is not this user\'s alone')
    if st.st_size > MAX_BYTES:
        return answer('the record is too large')
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
        key, recorded, state = data['key'], data['database'], data['state']
        if not isinstance(key, str) or not isinstance(state, dict):
            raise TypeError('bad types')
    except (OSError, ValueError, KeyError, TypeError):
        return answer('the record is damaged')
    if recorded != database:
        return answer(f'the record names another database ({recorded})', key)
    now = database_state(database)
    if now is None:
        return answer(f'NPM\'s database {database} is not there', key)
    if now != state:
        return answer('NPM\'s database changed since the declaration', key)
    return {'key': key, 'current': True, 'reason': 'NPM\'s database is unchanged since the declaration'}, now


class Chain:
    """A declaration NPM held when a switch began, kept on record through the switch's own writes.

    A switch (avatar_mgmt.ops.compose_switch) writes to NPM only the forward host of the proxy hosts it hands over,
    and puts each back where it was. When the record was current as the switch began (NPM held the declaration with
    that key), every change of the database since was one of the switch's own writes (the state is compared before
    each of them with the state after the one before: NPM answers a write only once its database writes, audit log
    and nginx status included, are done) and each proxy host forwards where it did before, NPM holds that declaration
    still: :meth:`record` writes the key again with the database's state now, and the caller need not declare again.
    Any other change of the database, a write that failed, or a host left elsewhere, and nothing is recorded.
    """

    def __init__(self, path, database):
        self.path, self.database = path, database
        found, state = _read(path, database)
        self.key = found['key']
        self.reason = found['reason']
        # The state every next look must find (the very state the record was compared with); None once the
        # chain is broken (or never held).
        self._expected = state

    def _check(self):
        """The database's state now, when it is the expected one; else the chain breaks (None)."""
        if self._expected is None:
            return None
        now = database_state(self.database)
        if now != self._expected:
            self.broken('NPM\'s database changed during the switch, and not by the switch')
            return None
        return now

    def forget(self, reason):
        """Break the chain and remove the record on disk: what NPM holds is unknown until it is declared again."""
        self.broken(reason)
        try:
            remove(self.path)
        except OSError:
            pass  # a record that cannot be removed is checked against the database's state as ever

    def broken(self, reason):
        if self._expected is not None:
            self._expected = None
            self.reason = reason

    def before_write(self):
        self._check()

    def after_write(self):
        if self._expected is not None:
            self._expected = database_state(self.database)

    def record(self, moved_back):
        """``{current, key, reason}``: whether the declaration was recorded again (``moved_back``: hosts put back)."""
        state = self._check()
        if state is not None and not moved_back:
            self.broken('a proxy host was left forwarding elsewhere than before the switch')
            state = None
        if state is None:
            return {'current': False, 'key': self.key, 'reason': self.reason}
        try:
            # The state just compared, not a new look: a write of someone else since then makes the record stale.
            if not write(self.path, self.key, self.database, state):
                return {'current': False, 'key': self.key, 'reason': f'NPM\'s database {self.database} is not there'}
        except OSError as exc:
            return {'current': False, 'key': self.key, 'reason': f'the record could not be written ({exc.strerror})'}
        return {
            'current': True,
            'key': self.key,
            'reason': 'the switch\'s own writes were the only changes of NPM\'s database since the declaration, '
            'and each proxy host forwards where it did before',
        }
