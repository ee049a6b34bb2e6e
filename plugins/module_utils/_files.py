# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small file helpers shared by the lock and the ledger: durable temp files, directory fsync, reading bytes.

Runs on managed hosts and on the controller (Python 3.9+, standard library only).
"""

from __future__ import annotations

import errno
import os
import secrets

__all__ = ['fsync_dir', 'private_name', 'read_bytes', 'unlink_quietly', 'write_synced_temp']

_NOT_SUPPORTED = (errno.EINVAL, getattr(errno, 'EOPNOTSUPP', -1), getattr(errno, 'ENOTSUP', -1))


def read_bytes(path, limit=-1):
    """The bytes of ``path`` (at most ``limit``), or None when it does not exist; other OSErrors are raised."""
    try:
        with open(path, 'rb') as handle:
            return handle.read(limit)
    except FileNotFoundError:
        return None


def unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def fsync_dir(directory):
    """Make a rename or link in ``directory`` durable.

    A filesystem that cannot fsync a directory is no error: the rename/link is then as durable as it gets.
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NOT_SUPPORTED:
            raise
    finally:
        os.close(fd)


def private_name(path, suffix):
    """A hidden, random name next to ``path``: ``.<name>.<16 hex>.<suffix>``."""
    return os.path.join(os.path.dirname(path) or '.', f'.{os.path.basename(path)}.{secrets.token_hex(8)}.{suffix}')


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_synced_temp(path, data, mode, uid=-1, gid=-1):
    """Write ``data`` (bytes) to a new private file next to ``path`` with ``mode`` (and owner), fsynced.

    Returns the temp file's path; the caller links or renames it into place and removes it.  On any failure
    the OSError is raised and no temp file is left.
    """
    tmp = private_name(path, 'tmp')
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_quietly(tmp)
        raise
    return tmp
