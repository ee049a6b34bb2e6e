# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lock: one file per environment that says who deploys.

Rules (see the docs of the deploy_lock module):

* Only "the file exists" means held.  The full JSON record is written to a
  private temp file in the same directory and fsynced, then hard-linked to the
  lock path (``os.link`` fails with EEXIST when the lock is held), the temp
  file is removed and the directory fsynced.  A reader never sees a half
  written lock, and a failure leaves neither a temp file nor a lock behind.
* The record carries a random owner token.  Results never show another
  owner's token, only the ``fingerprint`` (SHA-256 of the file's bytes), which
  names one exact lock without giving the power to release it.
* A release removes the lock only when it still carries the caller's token (or
  with force, optionally only the lock with a given fingerprint).  The file is
  renamed to a private name, checked again and only then unlinked; a lock that
  turned out not to match is linked back.
* A lock that is empty or not JSON, or in the format of the earlier shell
  version (holder, since, action, version, no token), is held by an owner that
  cannot be identified.
* Whether the run that took a lock is still alive can only be told on the
  controller that ran it: same host, same boot, the pid runs and started at
  the recorded time (``/proc/<pid>/stat`` field 22).  ``assess_owner``
  answers True (gone), False (alive) or None (cannot tell).

This file runs on managed hosts (Python 3.9+, standard library only) and on
the controller (the action plugin imports it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import datetime, timezone

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._files import (
    fsync_dir,
    private_name,
    read_bytes,
    unlink_quietly,
    write_synced_temp,
)

__all__ = [
    'DEFAULT_BREAK_HINT',
    'LOCK_MODE',
    'LockError',
    'acquire',
    'assess_owner',
    'boot_id',
    'controller_identity',
    'describe_oserror',
    'encode_record',
    'give_back',
    'held_message',
    'new_record',
    'new_token',
    'parse_lock',
    'pid_alive',
    'process_start',
    'public_view',
    'query',
    'read_raw',
    'release',
    'remove_if',
    'take_options',
]

LOCK_MODE = 0o640
RECORD_FORMAT = 2
# A lock record is a few hundred bytes; anything bigger is not ours.
MAX_LOCK_BYTES = 64 * 1024
_CONTROLLER_KEYS = ('host', 'pid', 'pid_start', 'boot_id')
THIS_RUN = 'this very run took it earlier'
# The default of the module's break_hint option (the action plugin uses it when the task sets none).
DEFAULT_BREAK_HINT = '-e compose_deploy_break_lock=true'


class LockError(Exception):
    """The lock file could not be created, read or removed; the message names the cause and what to do."""


# ---------------------------------------------------------------------------
# Messages for OS errors


def describe_oserror(exc):
    """``No space left on device (ENOSPC)`` for an OSError."""
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else 'no errno'
    text = exc.strerror or str(exc) or exc.__class__.__name__
    return f'{text} ({code})'


def _user():
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f'uid {os.geteuid()}'


def _advice(exc, directory):
    user = _user()
    if exc.errno == errno.ENOENT:
        return f'the directory {directory} does not exist; create it first (bootstrap the host)'
    if exc.errno == errno.ENOTDIR:
        return f'{directory} is not a directory'
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f'user {user} may not write to {directory}; give that user the directory or run with become'
    if exc.errno == errno.EROFS:
        return f'the filesystem of {directory} is mounted read-only; remount it read-write'
    if exc.errno == errno.ENOSPC:
        return f'the filesystem of {directory} is full; free some space'
    if exc.errno == getattr(errno, 'EDQUOT', -1):
        return f'the disk quota of user {user} is used up; free some space'
    if exc.errno in (getattr(errno, 'EOPNOTSUPP', -1), getattr(errno, 'ENOTSUP', -1)):
        return f'the filesystem of {directory} does not support hard links; put the lock on a local filesystem'
    return 'fix the cause and run again'


def _error(verb, path, exc):
    directory = os.path.dirname(path) or '.'
    return LockError(
        f'cannot {verb} the lock {path}: {describe_oserror(exc)}; {_advice(exc, directory)}. Nothing was changed.'
    )


# ---------------------------------------------------------------------------
# Records


def new_token():
    """A random owner token: 32 hex digits."""
    return secrets.token_hex(16)


def _iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _utc_now():
    return _iso(datetime.now(timezone.utc))


def _text(value):
    if value is None:
        return ''
    return value if isinstance(value, str) else str(value)


def _controller(value):
    """Keep only the known controller keys; anything missing is None."""
    if not isinstance(value, dict):
        return {}
    result = dict.fromkeys(_CONTROLLER_KEYS)
    result['host'] = _text(value.get('host')) or None
    result['boot_id'] = _text(value.get('boot_id')) or None
    for key in ('pid', 'pid_start'):
        item = value.get(key)
        if isinstance(item, bool):
            item = None
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item.strip())
        result[key] = item if isinstance(item, int) else None
    if not any(result.values()):
        return {}
    return result


def new_record(holder='', host='', action='deploy', version='', job_id='', controller=None, token=None, since=None):
    """The dict written into a new lock file (``token`` included)."""
    return {
        'format': RECORD_FORMAT,
        'holder': _text(holder),
        'host': _text(host),
        'action': _text(action),
        'version': _text(version),
        'since': since or _utc_now(),
        'job_id': _text(job_id),
        'controller': _controller(controller),
        'token': token or new_token(),
    }


def encode_record(record):
    return (json.dumps(record, sort_keys=True, indent=2) + '\n').encode('utf-8')


def _since(value):
    if isinstance(value, bool):
        return _text(value)
    if isinstance(value, (int, float)):
        try:
            return _iso(datetime.fromtimestamp(value, timezone.utc))
        except (OverflowError, OSError, ValueError):
            return _text(value)
    return _text(value)


def parse_lock(raw):
    """Read the bytes of a lock file into a dict (``token`` included: never return it as is).

    ``format`` is ``current`` (written by this module), ``legacy`` (JSON without
    a token, such as the shell version's ``{"holder", "since", "action",
    "version"}``) or ``invalid`` (empty or not a JSON object, ``problem`` says
    which).  ``fingerprint`` is the SHA-256 of the bytes.
    """
    lock = {
        'format': 'invalid',
        'holder': '',
        'host': '',
        'action': '',
        'version': '',
        'since': '',
        'job_id': '',
        'controller': {},
        'fingerprint': hashlib.sha256(raw).hexdigest(),
        'token': None,
    }
    try:
        data = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        lock['problem'] = 'the file is empty' if not raw.strip() else 'the file is not valid JSON'
        return lock
    if not isinstance(data, dict):
        lock['problem'] = 'the file holds JSON but not an object'
        return lock
    for key in ('holder', 'host', 'action', 'version', 'job_id'):
        lock[key] = _text(data.get(key))
    lock['since'] = _since(data.get('since'))
    lock['controller'] = _controller(data.get('controller'))
    token = data.get('token')
    if isinstance(token, str) and token:
        lock['token'] = token
        lock['format'] = 'current'
    else:
        lock['format'] = 'legacy'
    return lock


def public_view(lock):
    """A parsed lock without its token (what results may show)."""
    if not lock:
        return {}
    return {key: value for key, value in lock.items() if key != 'token'}


# ---------------------------------------------------------------------------
# Files


def read_raw(path):
    """The bytes of the lock file, or None when there is none."""
    try:
        return read_bytes(path, MAX_LOCK_BYTES)
    except OSError as exc:
        raise _error('read', path, exc)


@contextlib.contextmanager
def _serialized(path):
    """Hold an exclusive flock on the lock's directory: creating and removing a lock never interleave.

    remove_if moves the lock aside for an instant; without this a run could create
    its lock in that instant and the link-back of a newer lock would fail (two
    holders). A directory flock leaves no file behind; where flock is not
    supported the old best-effort behaviour remains.
    """
    try:
        fd = os.open(os.path.dirname(path) or '.', os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def create_exclusive(path, data, mode=LOCK_MODE):
    """Create ``path`` holding ``data`` atomically; False when it exists already.

    Raises LockError naming the cause for any other failure, leaving no temp
    file and no lock behind.
    """
    try:
        tmp = write_synced_temp(path, data, mode)
    except OSError as exc:
        raise _error('create', path, exc)
    try:
        with _serialized(path):
            os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _error('create', path, exc)
    finally:
        unlink_quietly(tmp)
    try:
        fsync_dir(os.path.dirname(path) or '.')
    except OSError as exc:
        unlink_quietly(path)
        raise _error('create', path, exc)
    return True


def remove_if(path, matches, check_mode=False):
    """Remove the lock when ``matches(parsed_lock)`` holds; return the removed parsed lock or None.

    The file is renamed to a private name first and checked again there, so a
    lock that another run put in place after the first read is not removed: it
    is linked back.  Removers and creators are serialized (_serialized), so no
    third run can take the lock while it is aside.
    """
    raw = read_raw(path)
    if raw is None:
        return None
    lock = parse_lock(raw)
    if not matches(lock):
        return None
    if check_mode:
        return lock
    with _serialized(path):
        return _remove_aside(path, matches)


def _remove_aside(path, matches):
    aside = private_name(path, 'release')
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _error('remove', path, exc)
    try:
        raw = read_raw(aside)
        moved = parse_lock(raw) if raw is not None else None
        if moved is not None and matches(moved):
            os.unlink(aside)
            fsync_dir(os.path.dirname(path) or '.')
            return moved
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # a newer lock took the place: that one stands
        unlink_quietly(aside)
        return None
    except OSError as exc:
        if os.path.lexists(aside) and not os.path.lexists(path):
            try:
                os.link(aside, path)
            except OSError:
                pass
        unlink_quietly(aside)
        raise _error('remove', path, exc)


def _check_creatable(path):
    """In check mode: fail the way a real run would when the directory cannot take the lock."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        code = errno.ENOTDIR if os.path.exists(directory) else errno.ENOENT
        raise _error('create', path, OSError(code, os.strerror(code)))
    try:
        readonly = bool(os.statvfs(directory).f_flag & getattr(os, 'ST_RDONLY', 1))
    except (OSError, AttributeError):
        readonly = False
    if readonly:
        raise _error('create', path, OSError(errno.EROFS, os.strerror(errno.EROFS)))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _error('create', path, OSError(errno.EACCES, os.strerror(errno.EACCES)))


# ---------------------------------------------------------------------------
# Operations


def _owner_phrase(lock):
    return lock.get('holder') or 'an unknown owner'


def acquire(
    path,
    record,
    timeout=0,
    interval=1.0,
    break_fingerprint='',
    check_mode=False,
    break_hint='',
    force_hint='',
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Take the lock at ``path`` with ``record`` (from new_record).

    With ``break_fingerprint``, the lock with exactly that fingerprint is
    removed first (a different lock is left alone).  While the lock is held,
    the file is polled every ``interval`` seconds until ``timeout`` seconds
    have passed.  ``break_hint`` and ``force_hint`` are quoted in the message
    about a held lock.

    Returns a dict: ``acquired``, ``changed``, ``held``, ``lock`` (public view
    of our lock, or of the lock that is held), ``token`` (ours when taken),
    ``waited``, ``broken`` (public view of a removed lock or {}), ``msg``.
    In check mode nothing is written: ``acquired`` is False and ``changed``
    says whether the lock would be taken.  Raises LockError on I/O failures.
    """
    if timeout < 0:
        raise ValueError(f'timeout must be 0 or more seconds, got {timeout}')
    start = clock()
    broken = {}
    if break_fingerprint:
        removed = remove_if(path, lambda lock: lock['fingerprint'] == break_fingerprint, check_mode=check_mode)
        if removed is not None:
            broken = public_view(removed)
    removed_note = (
        f' after removing the lock of {_owner_phrase(broken)} (since {broken.get("since") or "?"})' if broken else ''
    )
    data = encode_record(record)

    def outcome(*, acquired, changed, held, lock, msg, elapsed=None):
        return {
            'acquired': acquired,
            'changed': changed,
            'held': held,
            'lock': lock,
            'token': record['token'] if acquired else '',
            'waited': round(clock() - start if elapsed is None else elapsed, 3),
            'broken': broken,
            'msg': msg,
        }

    while True:
        if check_mode:
            raw = None if broken else read_raw(path)
            if raw is None:
                _check_creatable(path)
                msg = f'Check mode: the lock {path} would be taken{removed_note}.'
                return outcome(acquired=False, changed=True, held=bool(broken), lock={}, msg=msg)
        elif create_exclusive(path, data):
            lock = public_view(parse_lock(data))
            return outcome(
                acquired=True, changed=True, held=True, lock=lock, msg=f'Took the lock {path}{removed_note}.'
            )
        else:
            raw = read_raw(path)
            if raw is None:
                continue  # released between the link attempt and the read: try again at once
        while True:
            elapsed = clock() - start
            if elapsed >= timeout:
                lock = parse_lock(raw)
                msg = held_message(
                    path,
                    lock,
                    waited=elapsed if timeout else None,
                    removed=broken if not check_mode else None,
                    break_hint=break_hint,
                    force_hint=force_hint,
                )
                changed = bool(broken) and not check_mode
                return outcome(
                    acquired=False, changed=changed, held=True, lock=public_view(lock), msg=msg, elapsed=elapsed
                )
            sleep(max(0.0, min(interval, timeout - elapsed)))
            newer = read_raw(path)
            if newer is None:
                break
            raw = newer


def take_options():
    """The argument spec of taking the lock, shared by deploy_lock and release_info's ``lock`` option
    (``_controller``, ``_inventory_host`` and ``_break_fingerprint`` are set by the action plugin)."""
    return {
        'holder': {'type': 'str', 'default': ''},
        'action': {'type': 'str', 'default': 'deploy'},
        'version': {'type': 'str', 'default': ''},
        'job_id': {'type': 'str', 'default': ''},
        'timeout': {'type': 'int', 'default': 0},
        'break_lock': {'type': 'bool', 'default': False},
        'force': {'type': 'bool', 'default': False},
        'break_hint': {'type': 'str', 'default': DEFAULT_BREAK_HINT},
        'force_hint': {'type': 'str', 'default': ''},
        # Read by the action plugin only (plugin_utils/_lock_action.py): break no lock but the one with this fingerprint.
        'break_only': {'type': 'str', 'default': ''},
        '_controller': {'type': 'dict', 'default': {}},
        '_inventory_host': {'type': 'str', 'default': ''},
        '_break_fingerprint': {'type': 'str', 'default': ''},
    }


def empty_result():
    """The result fields of a lock task before anything happened (what a failure returns besides its message)."""
    return {
        'token': '',
        'acquired': False,
        'released': False,
        'held': False,
        'lock': {},
        'stale': None,
        'waited': 0.0,
        'broken': {},
    }


def take(path, options, check_mode=False, default_host=''):
    """Take the lock from a task's options (holder, action, version, job_id, timeout, break_hint, force_hint and
    the action plugin's _controller, _inventory_host, _break_fingerprint), as deploy_lock's state=present does.

    Returns the task result (``empty_result()`` updated with :func:`acquire`'s answer); raises LockError. The caller
    fails the task when the result is ``held`` by another run and not ``acquired``.
    """
    record = new_record(
        holder=options['holder'],
        host=options['_inventory_host'] or default_host,
        action=options['action'],
        version=options['version'],
        job_id=options['job_id'],
        controller=options['_controller'],
    )
    result = empty_result()
    result.update(
        acquire(
            path,
            record,
            timeout=options['timeout'],
            break_fingerprint=options['_break_fingerprint'],
            check_mode=check_mode,
            break_hint=options['break_hint'],
            force_hint=options['force_hint'],
        )
    )
    return result


def refused(result):
    """Whether a take left the lock with another run (the task must fail, in check mode too)."""
    return not result['acquired'] and result['held'] and bool(result['lock'])


def _nothing_to_release(path):
    return {
        'released': False,
        'changed': False,
        'held': False,
        'lock': {},
        'msg': f'There is no lock {path}: nothing to release.',
    }


def release(path, token='', force=False, expected_fingerprint='', check_mode=False):
    """Remove the lock when it carries ``token``, or with ``force`` whatever is there
    (only the lock with ``expected_fingerprint`` when that is given).

    Returns ``released``, ``changed``, ``held`` (a lock exists afterwards),
    ``lock`` (public view of the removed lock, or of the lock left in place),
    ``msg``.  A lock that is not ours is left untouched and is no failure.
    """
    raw = read_raw(path)
    if raw is None:
        return _nothing_to_release(path)

    def ours(lock):
        if force:
            return not expected_fingerprint or hmac.compare_digest(lock['fingerprint'], expected_fingerprint)
        return bool(token) and lock['token'] is not None and hmac.compare_digest(lock['token'], token)

    removed = remove_if(path, ours, check_mode=check_mode)
    if removed is not None:
        forced = force and not (token and removed['token'] == token)
        how = ' by force' if forced else ''
        if check_mode:
            return {
                'released': False,
                'changed': True,
                'held': True,
                'lock': public_view(removed),
                'msg': f'Check mode: the lock {path} held by {_describe(removed)} would be released{how}.',
            }
        return {
            'released': True,
            'changed': True,
            'held': os.path.lexists(path),
            'lock': public_view(removed),
            'msg': f'Released{how} the lock {path} held by {_describe(removed)}.',
        }
    raw = read_raw(path)
    if raw is None:
        return _nothing_to_release(path)
    lock = parse_lock(raw)
    if force:
        why = 'it is not the lock that was to be removed (it changed in the meantime)'
    elif not token:
        why = 'no owner token was given (pass the token that state=present returned, or force)'
    else:
        why = 'it carries another owner token'
    return {
        'released': False,
        'changed': False,
        'held': True,
        'lock': public_view(lock),
        'msg': f'Left the lock {path} in place: it is held by {_describe(lock)}, and {why}. Nothing was changed.',
    }


def release_lock_option():
    """The argument spec of a module's ``release_lock`` option: the lock (``path``) and ``token`` this run took,
    given back by the module once its own work succeeded (:func:`release_after`)."""
    return {
        'type': 'dict',
        'options': {
            'path': {'type': 'path', 'required': True},
            'token': {'type': 'str', 'required': True, 'no_log': True},
        },
    }


def release_after(option, check_mode=False):
    """Give back the lock of a ``release_lock`` option (:func:`give_back`); never raises.

    Returns ``(fields, warning)``: the result fields ``lock_released``, ``released_lock`` (the lock removed, without
    its token, or ``{}``) and ``lock_msg``, and the message to warn with when the lock could not be removed (or '').
    ``option`` None gives the fields of no release.
    """
    if option is None:
        return {'lock_released': False, 'released_lock': {}, 'lock_msg': ''}, ''
    given_back = give_back(option['path'], option['token'], check_mode)
    fields = {
        'lock_released': given_back['released'],
        'released_lock': given_back['lock'] if given_back['released'] else {},
        'lock_msg': given_back['msg'],
    }
    return fields, given_back['msg'] if given_back['error'] else ''


def give_back(path, token, check_mode=False):
    """Release the lock a task took, once that task's own work is done (``release`` by ``token``); never raises.

    Returns :func:`release`'s answer plus ``error``: True when the lock could not be removed, and ``msg`` then says
    why and what to do (the task that did its work reports it rather than failing).
    """
    try:
        answer = release(path, token=token, check_mode=check_mode)
    except LockError as exc:
        return {
            'released': False,
            'changed': False,
            'held': os.path.lexists(path),
            'lock': {},
            'error': True,
            'msg': (
                f'The lock {path} this task took could not be released: {exc}. Remove it with '
                'avatar_mgmt.ops.deploy_lock (state=absent, force=true) once no run is in progress.'
            ),
        }
    return dict(answer, error=False)


def query(path):
    """Read only: ``held`` and the public view of the lock."""
    raw = read_raw(path)
    if raw is None:
        return {'held': False, 'lock': {}, 'changed': False, 'msg': f'There is no lock {path}.'}
    lock = parse_lock(raw)
    return {
        'held': True,
        'lock': public_view(lock),
        'changed': False,
        'msg': f'The lock {path} is held by {_describe(lock)}.',
    }


# ---------------------------------------------------------------------------
# Whether the owner is alive (evaluated on the controller)


def process_start(pid, proc='/proc'):
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    try:
        with open(os.path.join(proc, str(int(pid)), 'stat'), 'rb') as handle:
            stat = handle.read().decode('ascii', 'replace')
    except (OSError, ValueError):
        return None
    # Field 2 (comm) is in parentheses and may hold spaces or ')': split after the last ')'.
    rest = stat[stat.rfind(')') + 1 :].split()
    try:
        return int(rest[19])  # rest starts at field 3
    except (IndexError, ValueError):
        return None


def boot_id(proc='/proc'):
    try:
        with open(os.path.join(proc, 'sys', 'kernel', 'random', 'boot_id')) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def controller_identity(pid, hostname, proc='/proc'):
    """What a lock records about the controller run: ``host``, ``pid``, ``pid_start``, ``boot_id``."""
    return {'host': hostname, 'pid': pid, 'pid_start': process_start(pid, proc), 'boot_id': boot_id(proc)}


def assess_owner(recorded, here, alive=pid_alive, start_of=process_start):
    """Is the controller run that took a lock gone?

    ``recorded`` is the lock's ``controller`` dict, ``here`` the identity of
    this controller (controller_identity).  Returns ``(stale, reason)``:
    True when the run is provably gone, False when it provably runs, None when
    this controller cannot tell (another host, nothing recorded).
    """
    recorded = _controller(recorded)
    host, pid = recorded.get('host'), recorded.get('pid')
    if not host or not pid or pid <= 0:
        return None, 'the lock does not record which controller run took it'
    if host != here.get('host'):
        return (
            None,
            f'it was taken from another controller ({host}), which this controller ({here.get("host")}) cannot look into',
        )
    if recorded.get('boot_id') and here.get('boot_id') and recorded['boot_id'] != here['boot_id']:
        return True, f'pid {pid} on {host}: {host} has rebooted since'
    if not alive(pid):
        return True, f'pid {pid} on {host}: that process is not running'
    if recorded.get('pid_start') is not None:
        now = start_of(pid)
        if now is not None and now != recorded['pid_start']:
            return True, f'pid {pid} on {host}: that pid now belongs to another process'
    if pid == here.get('pid') and recorded.get('pid_start') == here.get('pid_start'):
        return False, f'pid {pid} on {host}: {THIS_RUN}'
    return False, f'pid {pid} on {host}'


def _describe(lock):
    if lock.get('format') == 'invalid':
        return f'an unknown owner ({lock.get("problem", "unreadable record")})'
    parts = []
    if lock.get('host'):
        parts.append(f'host {lock["host"]}')
    what = ' '.join(item for item in (lock.get('action'), lock.get('version')) if item)
    if what:
        parts.append(what)
    if lock.get('job_id'):
        parts.append(f'AWX job {lock["job_id"]}')
    parts.append(f'since {lock.get("since") or "?"}')
    if lock.get('format') == 'legacy':
        parts.append('written by an earlier version of this collection')
    return f'{lock.get("holder") or "an unknown holder"} ({", ".join(parts)})'


def held_message(
    path, lock, stale=None, reason='', break_hint='', force_hint='', waited=None, refused_break=False, removed=None
):
    """Why a lock could not be taken and what to do.

    Ends with "Nothing was changed." unless ``removed`` (public view of a lock
    that this call did remove before another run took the lock) says otherwise.
    """
    break_hint = break_hint or 'break_lock=true'
    force_hint = force_hint or 'force=true'
    text = f'The lock {path} is held by {_describe(lock)}.'
    if waited is not None:
        text += f' Waited {waited:.0f} s for it to be released.'
    if refused_break:
        text += (
            f' It belongs to a live run ({reason}), so {break_hint} does not remove it: wait for that run to finish, '
            f'or, only if you are sure it must go, run again with {break_hint} plus {force_hint}.'
        )
    elif stale is True:
        text += f' It is stale: the run that took it ({reason}) is gone. Run again with {break_hint} to remove it.'
    elif stale is False and THIS_RUN in reason:
        text += (
            f' This very run took it earlier ({reason}): release it first (state=absent with the token it returned) '
            'before taking it again.'
        )
    elif stale is False:
        text += (
            f' It is held by a live run ({reason}): wait for it to finish. Only if you are sure that run must go, '
            f'run again with {break_hint} plus {force_hint}.'
        )
    elif reason:
        text += (
            f' Whether the run that took it is alive cannot be told ({reason}). Wait for that run to finish; '
            f'if it is gone, run again with {break_hint} to remove the lock.'
        )
    else:
        text += f' Wait for that run to finish; if it died, run again with {break_hint} to remove the lock.'
    if removed:
        return text + (
            f' The lock of {_describe(removed)} was removed first, but this run did not get the lock: '
            'the lock above was taken in the meantime.'
        )
    return text + ' Nothing was changed.'
