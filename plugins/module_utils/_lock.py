# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The environment's deploy lock: a file whose existence means "held".

Taking it writes the whole record to a private temporary file, fsyncs it and
hard-links it to the lock's name: ``link`` is atomic and fails with EEXIST when
the lock exists, so a reader never sees a half-written lock and exactly one of
many contenders wins. Every other error (missing directory, permissions, a
read-only or full disk) is raised with its cause, and no temporary file is left.

The record names the holder, host, action, version, time, the AWX job and the
run that took it (the controller's host, the ansible-playbook PID, that PID's
start time and the boot id), so a lock whose run is provably gone can be told
from a live one. An owner token, random per take, is kept in the file so that
only its owner releases it; other runs only ever see its hash.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import time

__all__ = [
    'LockError',
    'boot_id',
    'describe',
    'process_start',
    'public_view',
    'read_lock',
    'release',
    'staleness',
    'take',
    'token_hash',
    'try_take',
]


class LockError(Exception):
    """The lock could not be taken, read or released for a reason other than "held"."""


def token_hash(token):
    """Short public fingerprint of an owner token."""
    return hashlib.sha256(token.encode('utf-8')).hexdigest()[:16] if token else ''


def _cause(exc):
    name = errno.errorcode.get(exc.errno, '') if exc.errno else ''
    return f"{exc.strerror or exc}{' (' + name + ')' if name else ''}"


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_lock(path):
    """The lock's record, ``None`` when there is no lock.

    A lock that is empty or not a JSON object (an older format, or damage) is
    returned as ``{'unreadable': True, 'raw': <first bytes>}`` and still counts as held.
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read(65536)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f'cannot read the lock {path}: {_cause(exc)}')
    try:
        record = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        record = None
    if not isinstance(record, dict):
        return {'unreadable': True, 'raw': raw[:200].decode('utf-8', 'replace')}
    return record


def try_take(path, record):
    """Create the lock with ``record`` atomically.

    Returns ``(True, None)`` when taken, ``(False, existing record)`` when held.
    Raises LockError for any other failure, leaving nothing behind.
    """
    directory = os.path.dirname(os.path.abspath(path)) or '.'
    if not os.path.isdir(directory):
        raise LockError(f'cannot create the lock {path}: its directory {directory} does not exist '
                        '(run playbooks/bootstrap.yml, which creates the deploy directory)')
    data = (json.dumps(record, sort_keys=True, indent=2) + '\n').encode('utf-8')
    tmp = os.path.join(directory, f'.{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except OSError as exc:
        raise LockError(f'cannot create the lock {path}: {_cause(exc)}')
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False, read_lock(path) or {'unreadable': True, 'raw': ''}
        _fsync_dir(directory)
        return True, None
    except OSError as exc:
        raise LockError(f'cannot create the lock {path}: {_cause(exc)}')
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def take(path, record, timeout=0, interval=1.0, clock=time.monotonic, sleep=time.sleep):
    """Take the lock, waiting up to ``timeout`` seconds for a held one to go.

    Returns ``(acquired, existing record or None, seconds waited)``.
    """
    start = clock()
    while True:
        acquired, existing = try_take(path, record)
        waited = round(clock() - start, 1)
        if acquired or waited >= timeout:
            return acquired, existing, waited
        sleep(min(interval, max(0.05, timeout - waited)))


def release(path, token='', force=False, expected_hash=''):
    """Remove the lock if it is ours (``token``), or any lock with ``force``.

    ``expected_hash`` with ``force`` removes the lock only while it is still the
    one whose token hash was seen (not a newer lock taken meanwhile).
    Returns ``(released, record that was found or None)``.
    """
    current = read_lock(path)
    if current is None:
        return False, None
    theirs = current.get('token', '') if not current.get('unreadable') else ''
    if force:
        if expected_hash and token_hash(theirs) != expected_hash:
            return False, current
    elif not token or theirs != token:
        return False, current
    # Move it aside under a private name, then check it is still the one we meant:
    # a lock taken by someone else in between is put back untouched.
    aside = f'{path}.release-{secrets.token_hex(4)}'
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False, None
    except OSError as exc:
        raise LockError(f'cannot release the lock {path}: {_cause(exc)}')
    moved = read_lock(aside) or {}
    moved_token = moved.get('token', '') if not moved.get('unreadable') else ''
    if moved_token != theirs:
        try:
            os.link(aside, path)
        except OSError:
            pass
        os.unlink(aside)
        return False, moved
    os.unlink(aside)
    _fsync_dir(os.path.dirname(os.path.abspath(path)) or '.')
    return True, current


def process_start(pid):
    """Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        with open(f'/proc/{int(pid)}/stat', encoding='ascii', errors='replace') as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    try:
        return int(stat.rsplit(')', 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def boot_id():
    try:
        with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as f:
            return f.read().strip()
    except OSError:
        return ''


def staleness(lock, here):
    """Whether the run that holds ``lock`` is provably gone, as seen from controller ``here``.

    ``here`` = {'host', 'boot_id'}. True: stale (same controller, and another boot
    or its PID not running or running another process); False: provably alive;
    None: cannot tell (another controller, or a lock without run details).
    """
    run = (lock or {}).get('controller') or {}
    if not run or not run.get('host') or run.get('host') != here.get('host'):
        return None
    if run.get('boot_id') and here.get('boot_id') and run['boot_id'] != here['boot_id']:
        return True
    pid = run.get('pid')
    if not isinstance(pid, int) or pid <= 0:
        return None
    started = process_start(pid)
    if started is None:
        return True
    return bool(run.get('pid_start') is not None and run['pid_start'] != started)


def public_view(lock):
    """The record as other runs may see it: the token replaced by its hash."""
    if lock is None:
        return {}
    view = {k: v for k, v in lock.items() if k != 'token'}
    if lock.get('token'):
        view['token_hash'] = token_hash(lock['token'])
    return view


def describe(lock):
    """One line naming who holds the lock, for messages."""
    if not lock:
        return 'nobody'
    if lock.get('unreadable'):
        return f"an unknown run (the lock file is not readable as a lock: {lock.get('raw', '')[:80]!r})"
    run = lock.get('controller') or {}
    parts = [str(lock.get('holder') or 'unknown')]
    if lock.get('host'):
        parts.append(f"on {lock['host']}")
    parts.append(f"since {lock.get('since') or '?'}")
    parts.append(f"({lock.get('action') or 'deploy'}{' ' + lock['version'] if lock.get('version') else ''})")
    if lock.get('job_id'):
        parts.append(f"AWX job {lock['job_id']}")
    if run.get('host'):
        parts.append(f"run: pid {run.get('pid', '?')} on {run['host']}")
    return ' '.join(parts)
