# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lock's rules, on real files: atomic take under contention, causes of
failures, owner-only release, waiting, and stale detection."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import threading
import time

import pytest

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock

HERE = {'host': 'ctl-1', 'boot_id': _lock.boot_id()}


def _record(holder='alice', token='t0ken'):
    me = os.getpid()
    return {'holder': holder, 'host': 'prod-1', 'action': 'deploy', 'version': 'v1.2.0', 'since': '2026-11-30T10:00:00Z',
            'job_id': '', 'token': token,
            'controller': {'host': 'ctl-1', 'pid': me, 'pid_start': _lock.process_start(me), 'boot_id': _lock.boot_id()}}


def _contend(path, index, start, results):
    start.wait()
    try:
        won, existing = _lock.try_take(path, _record(holder=f'p{index}', token=f'tok{index}'))
        # A loser always reads a complete record.
        results.put((index, won, None if won else existing.get('holder')))
    except Exception as exc:  # pragma: no cover - reported by the test
        results.put((index, 'error', repr(exc)))


@pytest.mark.parametrize('round_', range(20))
def test_exactly_one_of_twenty_processes_wins(tmp_path, round_):
    path = str(tmp_path / '.deploy.lock')
    ctx = multiprocessing.get_context('fork')
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(path, i, start, results)) for i in range(24)]
    for p in procs:
        p.start()
    start.set()
    outcomes = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    assert not [o for o in outcomes if o[1] == 'error'], outcomes
    winners = [o[0] for o in outcomes if o[1] is True]
    assert len(winners) == 1, outcomes
    assert all(o[2] == f'p{winners[0]}' for o in outcomes if o[1] is False), outcomes
    assert json.loads(open(path).read())['holder'] == f'p{winners[0]}'
    assert sorted(os.listdir(tmp_path)) == ['.deploy.lock'], 'no temporary file may stay'


def test_missing_directory_names_the_cause(tmp_path):
    with pytest.raises(_lock.LockError, match='does not exist'):
        _lock.try_take(str(tmp_path / 'nope' / '.deploy.lock'), _record())


@pytest.mark.parametrize('code, where', [(errno.ENOSPC, 'write'), (errno.EROFS, 'open'), (errno.EACCES, 'open'),
                                         (errno.ENOSPC, 'fsync'), (errno.EIO, 'link')])
def test_disk_errors_fail_with_their_cause_and_leave_nothing(tmp_path, monkeypatch, code, where):
    real = {'write': os.write, 'open': os.open, 'fsync': os.fsync, 'link': os.link}[where]

    def broken(*args, **kwargs):
        if where == 'open' and not str(args[0]).endswith('.tmp'):
            return real(*args, **kwargs)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, where, broken)
    with pytest.raises(_lock.LockError) as info:
        _lock.try_take(str(tmp_path / '.deploy.lock'), _record())
    assert os.strerror(code) in str(info.value) and errno.errorcode[code] in str(info.value)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def _mount(*args):
    return subprocess.run(['mount', *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_tmpfs(tmp_path):
    target = tmp_path / 'fs'
    target.mkdir()
    res = _mount('-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(target))
    if res.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here ({res.stderr.strip()}); the monkeypatched variants cover the causes')
    try:
        yield target
    finally:
        subprocess.run(['umount', '-l', str(target)], check=False)


def test_real_full_disk(small_tmpfs):
    fd = os.open(small_tmpfs / 'filler', os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b'\0' * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    # Leave too little room for a lock record of ~4 kB.
    with pytest.raises(_lock.LockError, match='ENOSPC'):
        _lock.try_take(str(small_tmpfs / '.deploy.lock'), dict(_record(), pad='x' * 8192))
    assert sorted(os.listdir(small_tmpfs)) == ['filler']


def test_real_read_only_disk(small_tmpfs):
    res = _mount('-o', 'remount,ro', str(small_tmpfs))
    if res.returncode != 0:
        pytest.skip(f'cannot remount read-only here: {res.stderr.strip()}')
    with pytest.raises(_lock.LockError, match='EROFS'):
        _lock.try_take(str(small_tmpfs / '.deploy.lock'), _record())


def test_release_by_another_owner_changes_nothing(tmp_path):
    path = str(tmp_path / '.deploy.lock')
    assert _lock.try_take(path, _record(token='mine'))[0]
    before = open(path, 'rb').read()
    assert _lock.release(path, token='not-mine') == (False, json.loads(before))
    assert _lock.release(path, token='') [0] is False
    assert open(path, 'rb').read() == before
    assert _lock.release(path, token='mine')[0] is True
    assert not os.path.exists(path)
    assert _lock.release(path, token='mine') == (False, None)


def test_forced_release_only_removes_the_lock_that_was_seen(tmp_path):
    path = str(tmp_path / '.deploy.lock')
    _lock.try_take(path, _record(token='first'))
    assert _lock.release(path, force=True, expected_hash=_lock.token_hash('other'))[0] is False
    assert os.path.exists(path)
    assert _lock.release(path, force=True, expected_hash=_lock.token_hash('first'))[0] is True


def test_waiting_takes_the_lock_once_released(tmp_path):
    path = str(tmp_path / '.deploy.lock')
    _lock.try_take(path, _record(token='first'))
    threading.Timer(1.0, lambda: _lock.release(path, token='first')).start()
    acquired, existing, waited = _lock.take(path, _record(holder='bob', token='second'), timeout=10, interval=0.2)
    assert acquired and existing is None
    assert 0.8 <= waited <= 5
    assert json.loads(open(path).read())['holder'] == 'bob'


def test_waiting_gives_up_at_the_deadline(tmp_path):
    path = str(tmp_path / '.deploy.lock')
    _lock.try_take(path, _record(token='first'))
    t0 = time.monotonic()
    acquired, existing, waited = _lock.take(path, _record(holder='bob'), timeout=1, interval=0.2)
    assert not acquired and existing['holder'] == 'alice'
    assert 1 <= waited and time.monotonic() - t0 < 4


def test_old_and_damaged_locks_count_as_held(tmp_path):
    path = tmp_path / '.deploy.lock'
    path.write_text(json.dumps({'holder': 'alice@laptop', 'since': '2026-11-28T10:00:00Z', 'action': 'deploy',
                                'version': 'v1.1.0'}))
    won, existing = _lock.try_take(str(path), _record())
    assert not won
    text = _lock.describe(existing)
    assert 'alice@laptop' in text and '2026-11-28T10:00:00Z' in text and 'v1.1.0' in text
    assert _lock.staleness(existing, HERE) is None
    path.write_text('')
    won, existing = _lock.try_take(str(path), _record())
    assert not won and existing['unreadable']


def test_staleness():
    me = os.getpid()
    alive = {'controller': {'host': 'ctl-1', 'pid': me, 'pid_start': _lock.process_start(me), 'boot_id': HERE['boot_id']}}
    assert _lock.staleness(alive, HERE) is False
    gone = subprocess.Popen(['true'])
    gone.wait()
    dead = {'controller': {'host': 'ctl-1', 'pid': gone.pid, 'pid_start': 1, 'boot_id': HERE['boot_id']}}
    assert _lock.staleness(dead, HERE) is True
    reused = {'controller': dict(alive['controller'], pid_start=(alive['controller']['pid_start'] or 0) + 1)}
    assert _lock.staleness(reused, HERE) is True
    rebooted = {'controller': dict(alive['controller'], boot_id='another-boot')}
    assert _lock.staleness(rebooted, HERE) is True
    elsewhere = {'controller': dict(alive['controller'], host='ctl-2')}
    assert _lock.staleness(elsewhere, HERE) is None


def test_public_view_hides_the_token():
    view = _lock.public_view(_record(token='s3cret-token'))
    assert 'token' not in view and 's3cret-token' not in json.dumps(view)
    assert view['token_hash'] == _lock.token_hash('s3cret-token')
