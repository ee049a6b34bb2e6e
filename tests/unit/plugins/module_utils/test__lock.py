# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the deploy lock logic, on real files in tmp_path."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import threading
import time
import uuid

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock

CTX = multiprocessing.get_context('fork')
LEGACY = b'{"holder": "bob@ops-laptop", "since": "2024-05-01T10:00:00Z", "action": "rollback", "version": "v1.1.0"}\n'


def record(holder='alice', **kwargs):
    kwargs.setdefault('host', 'prod-1')
    kwargs.setdefault('version', 'v1.2.0')
    kwargs.setdefault('job_id', '4711')
    kwargs.setdefault('controller', _lock.controller_identity(os.getpid(), 'ctl'))
    return _lock.new_record(holder=holder, **kwargs)


def take(path, holder='alice', **kwargs):
    return _lock.acquire(str(path), record(holder), **kwargs)


def leftovers(directory, keep=()):
    return sorted(name for name in os.listdir(directory) if name not in keep)


def dead_pid():
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------
# Taking


def test_take_writes_complete_record_with_mode_0640(tmp_path):
    path = tmp_path / '.deploy.lock'
    result = take(path)
    assert result['acquired'] is True
    assert result['changed'] is True
    assert result['held'] is True
    assert result['waited'] < 1
    assert result['broken'] == {}
    assert len(result['token']) == 32
    int(result['token'], 16)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    data = json.loads(path.read_text())
    assert data['token'] == result['token']
    assert data['holder'] == 'alice'
    assert data['host'] == 'prod-1'
    assert data['action'] == 'deploy'
    assert data['version'] == 'v1.2.0'
    assert data['job_id'] == '4711'
    assert data['since'].endswith('Z')
    assert data['controller']['pid'] == os.getpid()
    assert 'token' not in result['lock']
    assert result['lock']['fingerprint'] == _lock.parse_lock(path.read_bytes())['fingerprint']
    assert leftovers(tmp_path) == ['.deploy.lock']


def test_held_lock_is_reported_without_its_token(tmp_path):
    path = tmp_path / '.deploy.lock'
    first = take(path)
    before = path.read_bytes()
    second = take(path, holder='bob')
    assert second['acquired'] is False
    assert second['changed'] is False
    assert second['held'] is True
    assert second['token'] == ''
    assert second['lock']['holder'] == 'alice'
    assert first['token'] not in repr(second)
    assert path.read_bytes() == before
    for fragment in (
        'alice',
        'prod-1',
        'deploy v1.2.0',
        'AWX job 4711',
        'since ' + second['lock']['since'],
        'break_lock=true',
    ):
        assert fragment in second['msg']
    assert second['msg'].endswith('Nothing was changed.')
    assert leftovers(tmp_path) == ['.deploy.lock']


def _racer(path, barrier, queue, index):
    barrier.wait()
    result = _lock.acquire(path, record(f'p{index}'))
    queue.put((index, result['acquired'], result['lock'].get('format'), result['lock'].get('holder')))


def race(racers, target, *args):
    """Start ``racers`` processes of ``target(*args, barrier, queue, index)`` behind one barrier; their outcomes."""
    barrier = CTX.Barrier(racers)
    queue = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, barrier, queue, i)) for i in range(racers)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=30) for _proc in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return outcomes


@pytest.mark.parametrize('round_', range(20))
def test_race_exactly_one_wins(tmp_path, round_):
    path = str(tmp_path / '.deploy.lock')
    outcomes = race(24, _racer, path)
    winners = [o for o in outcomes if o[1]]
    assert len(winners) == 1, outcomes
    winner = f'p{winners[0][0]}'
    # Every loser read the winner's complete record, never a partial one.
    assert all(o[2] == 'current' and o[3] == winner for o in outcomes)
    assert json.loads((tmp_path / '.deploy.lock').read_text())['holder'] == winner
    assert leftovers(tmp_path) == ['.deploy.lock']


# ---------------------------------------------------------------------------
# Failures: the cause is named, nothing is left behind


def test_missing_directory_fails_with_its_cause(tmp_path):
    path = tmp_path / 'nope' / '.deploy.lock'
    with pytest.raises(_lock.LockError) as excinfo:
        take(path)
    msg = str(excinfo.value)
    assert f'cannot create the lock {path}' in msg
    assert '(ENOENT)' in msg
    assert 'does not exist' in msg
    assert msg.endswith('Nothing was changed.')
    with pytest.raises(_lock.LockError, match='ENOENT'):
        take(path, check_mode=True)


def _raise(code):
    def fail(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    'target, code, name',
    [
        ('link', errno.ENOSPC, 'ENOSPC'),
        ('write', errno.ENOSPC, 'ENOSPC'),
        ('open', errno.EROFS, 'EROFS'),
        ('open', errno.EACCES, 'EACCES'),
        ('link', errno.EPERM, 'EPERM'),
        ('fsync', errno.EIO, 'EIO'),
        ('link', errno.EOPNOTSUPP, errno.errorcode[errno.EOPNOTSUPP]),  # ENOTSUP on Linux
    ],
)
def test_os_errors_are_named_and_leave_nothing(tmp_path, monkeypatch, target, code, name):
    path = tmp_path / '.deploy.lock'
    monkeypatch.setattr(_lock.os, target, _raise(code))
    with pytest.raises(_lock.LockError) as excinfo:
        take(path)
    monkeypatch.undo()
    msg = str(excinfo.value)
    assert f'cannot create the lock {path}: {os.strerror(code)} ({name})' in msg
    assert msg.endswith('Nothing was changed.')
    assert leftovers(tmp_path) == []


def test_directory_fsync_failure_removes_the_new_lock(tmp_path, monkeypatch):
    path = tmp_path / '.deploy.lock'
    monkeypatch.setattr(_lock, 'fsync_dir', _raise(errno.EIO))
    with pytest.raises(_lock.LockError, match=r'\(EIO\)'):
        take(path)
    assert leftovers(tmp_path) == []


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KiB tmpfs of our own, or a skip that says why there is none."""
    if os.geteuid() != 0 or not shutil.which('mount'):
        pytest.skip('mounting a tmpfs needs root and mount(8); the monkeypatched variants cover ENOSPC and EROFS')
    mountpoint = tmp_path / 'fs'
    mountpoint.mkdir()
    done = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'tmpfs', str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            f'mount -t tmpfs is not permitted here ({done.stderr.strip()}); the monkeypatched variants '
            'cover ENOSPC and EROFS'
        )
    try:
        yield mountpoint
    finally:
        subprocess.run(['umount', '-l', str(mountpoint)], check=False)


def test_real_read_only_filesystem(tmpfs):
    subprocess.run(['mount', '-o', 'remount,ro', str(tmpfs)], check=True)
    path = tmpfs / '.deploy.lock'
    for check_mode in (False, True):
        with pytest.raises(_lock.LockError) as excinfo:
            take(path, check_mode=check_mode)
        assert '(EROFS)' in str(excinfo.value)
        assert 'read-only' in str(excinfo.value)
    assert leftovers(tmpfs) == []


def test_real_full_filesystem(tmpfs):
    filler = tmpfs / 'filler'
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match='No space left') as excinfo:  # noqa: PT012 - write until full
            while True:
                os.write(fd, b'\0' * 4096)
        assert excinfo.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    path = tmpfs / '.deploy.lock'
    with pytest.raises(_lock.LockError) as excinfo:
        take(path)
    assert f'cannot create the lock {path}: No space left on device (ENOSPC)' in str(excinfo.value)
    assert leftovers(tmpfs) == ['filler']


# ---------------------------------------------------------------------------
# Waiting


def _release_later(path, delay):
    time.sleep(delay)
    os.unlink(path)


def test_waits_until_another_process_releases(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    releaser = CTX.Process(target=_release_later, args=(str(path), 1.0))
    releaser.start()
    try:
        result = take(path, timeout=10)
    finally:
        releaser.join(timeout=10)
    assert result['acquired'] is True
    assert 0.9 <= result['waited'] < 2.6
    assert json.loads(path.read_text())['holder'] == 'alice'


def test_timeout_expiry_fails_naming_the_holder(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    result = take(path, timeout=1, interval=0.25)
    assert result['acquired'] is False
    assert 1.0 <= result['waited'] < 2.0
    assert 'held by bob' in result['msg']
    assert 'Waited 1 s' in result['msg']
    assert result['msg'].endswith('Nothing was changed.')


def test_polls_once_per_interval(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    result = take(path, timeout=3, clock=lambda: now[0], sleep=sleep)
    assert sleeps == [1.0, 1.0, 1.0]
    assert result['waited'] == 3.0


def test_negative_timeout_is_refused(tmp_path):
    with pytest.raises(ValueError, match='timeout'):
        take(tmp_path / '.deploy.lock', timeout=-1)


# ---------------------------------------------------------------------------
# Check mode


def test_check_mode_takes_nothing(tmp_path):
    path = tmp_path / '.deploy.lock'
    result = take(path, check_mode=True)
    assert result['acquired'] is False
    assert result['changed'] is True
    assert result['token'] == ''
    assert leftovers(tmp_path) == []
    take(path, holder='bob')
    held = take(path, check_mode=True)
    assert held['held'] is True
    assert held['changed'] is False
    assert held['lock']['holder'] == 'bob'


def test_check_mode_break_reports_without_removing(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    before = path.read_bytes()
    fingerprint = _lock.parse_lock(before)['fingerprint']
    result = take(path, break_fingerprint=fingerprint, check_mode=True)
    assert result['changed'] is True
    assert result['broken']['holder'] == 'bob'
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------
# Breaking exactly one lock


def test_break_removes_exactly_the_judged_lock(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    fingerprint = _lock.parse_lock(path.read_bytes())['fingerprint']
    result = take(path, break_fingerprint=fingerprint)
    assert result['acquired'] is True
    assert result['broken']['holder'] == 'bob'
    assert 'token' not in result['broken']
    assert 'after removing the lock of bob' in result['msg']
    assert leftovers(tmp_path) == ['.deploy.lock']


def test_break_leaves_a_newer_lock_alone(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    before = path.read_bytes()
    result = take(path, break_fingerprint='0' * 64)
    assert result['acquired'] is False
    assert result['broken'] == {}
    assert path.read_bytes() == before


def test_remove_if_puts_back_a_lock_that_changed_under_it(tmp_path, monkeypatch):
    path = tmp_path / '.deploy.lock'
    take(path, holder='bob')
    fingerprint = _lock.parse_lock(path.read_bytes())['fingerprint']
    newer = _lock.encode_record(record('carol'))
    real_rename = os.rename

    def rename(src, dst):
        path.write_bytes(newer)  # carol's run replaced the lock just before our rename
        real_rename(src, dst)

    monkeypatch.setattr(_lock.os, 'rename', rename)
    assert _lock.remove_if(str(path), lambda lock: lock['fingerprint'] == fingerprint) is None
    monkeypatch.undo()
    assert path.read_bytes() == newer
    assert leftovers(tmp_path) == ['.deploy.lock']


# ---------------------------------------------------------------------------
# Releasing


def test_release_by_owner_removes(tmp_path):
    path = tmp_path / '.deploy.lock'
    token = take(path)['token']
    result = _lock.release(str(path), token=token)
    assert result['released'] is True
    assert result['changed'] is True
    assert result['held'] is False
    assert result['lock']['holder'] == 'alice'
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    'token, why',
    [
        ('f' * 32, 'another owner token'),
        ('', 'no owner token was given'),
    ],
)
def test_release_by_non_owner_changes_nothing(tmp_path, token, why):
    path = tmp_path / '.deploy.lock'
    owner = take(path)['token']
    before, inode = path.read_bytes(), path.stat().st_ino
    result = _lock.release(str(path), token=token)
    assert result['released'] is False
    assert result['changed'] is False
    assert result['held'] is True
    assert why in result['msg']
    assert 'held by alice' in result['msg']
    assert owner not in repr(result)
    assert path.read_bytes() == before
    assert path.stat().st_ino == inode
    assert leftovers(tmp_path) == ['.deploy.lock']


def test_release_without_lock_is_no_change(tmp_path):
    result = _lock.release(str(tmp_path / '.deploy.lock'), token='a' * 32)
    assert result == {
        'released': False,
        'changed': False,
        'held': False,
        'lock': {},
        'msg': f'There is no lock {tmp_path}/.deploy.lock: nothing to release.',
    }


@pytest.mark.parametrize('content', [None, LEGACY, b'', b'garbage'])
def test_release_with_force_removes_whatever_is_there(tmp_path, content):
    path = tmp_path / '.deploy.lock'
    if content is None:
        take(path)
    else:
        path.write_bytes(content)
    result = _lock.release(str(path), force=True)
    assert result['released'] is True
    assert 'by force' in result['msg']
    assert leftovers(tmp_path) == []


def test_release_with_force_and_fingerprint_spares_another_lock(tmp_path):
    path = tmp_path / '.deploy.lock'
    take(path)
    before = path.read_bytes()
    result = _lock.release(str(path), force=True, expected_fingerprint='0' * 64)
    assert result['released'] is False
    assert path.read_bytes() == before


def test_release_in_check_mode_removes_nothing(tmp_path):
    path = tmp_path / '.deploy.lock'
    token = take(path)['token']
    result = _lock.release(str(path), token=token, check_mode=True)
    assert result['changed'] is True
    assert result['released'] is False
    assert path.exists()


# ---------------------------------------------------------------------------
# Reading: query, old format, unreadable files


def test_query(tmp_path):
    path = tmp_path / '.deploy.lock'
    assert _lock.query(str(path))['held'] is False
    token = take(path)['token']
    result = _lock.query(str(path))
    assert result['held'] is True
    assert result['changed'] is False
    assert result['lock']['holder'] == 'alice'
    assert token not in repr(result)


def test_legacy_lock_is_read_and_reported(tmp_path):
    path = tmp_path / '.deploy.lock'
    path.write_bytes(LEGACY)
    result = take(path)
    assert result['acquired'] is False
    lock = result['lock']
    assert lock['format'] == 'legacy'
    assert lock['holder'] == 'bob@ops-laptop'
    assert lock['since'] == '2024-05-01T10:00:00Z'
    assert lock['action'] == 'rollback'
    assert lock['controller'] == {}
    assert 'bob@ops-laptop' in result['msg']
    assert 'rollback v1.1.0' in result['msg']
    assert 'earlier version of this collection' in result['msg']
    assert path.read_bytes() == LEGACY
    assert _lock.assess_owner(lock['controller'], {'host': 'ctl'}) == (
        None,
        'the lock does not record which controller run took it',
    )


@pytest.mark.parametrize(
    'content, problem',
    [
        (b'', 'the file is empty'),
        (b'\n', 'the file is empty'),
        (b'{"holder": "x"', 'the file is not valid JSON'),
        (b'\xff\xfe', 'the file is not valid JSON'),
        (b'["x"]', 'the file holds JSON but not an object'),
    ],
)
def test_unreadable_lock_is_held_by_unknown_owner(tmp_path, content, problem):
    path = tmp_path / '.deploy.lock'
    path.write_bytes(content)
    result = take(path)
    assert result['acquired'] is False
    assert result['lock']['format'] == 'invalid'
    assert result['lock']['problem'] == problem
    assert f'held by an unknown owner ({problem})' in result['msg']
    assert path.read_bytes() == content


def test_numeric_since_is_shown_as_utc(tmp_path):
    lock = _lock.parse_lock(b'{"holder": "bob", "since": 1714557600}')
    assert lock['since'] == '2024-05-01T10:00:00Z'


# ---------------------------------------------------------------------------
# Is the owner alive?


def here():
    return _lock.controller_identity(os.getpid(), 'ctl')


def test_owner_alive_when_pid_runs_with_same_start():
    stale, reason = _lock.assess_owner(here(), dict(here(), pid=1))
    assert stale is False
    assert f'pid {os.getpid()} on ctl' in reason


def test_this_very_run_is_named():
    assert _lock.assess_owner(here(), here()) == (False, f'pid {os.getpid()} on ctl: {_lock.THIS_RUN}')


def test_owner_gone_when_pid_not_running():
    recorded = dict(here(), pid=dead_pid(), pid_start=1)
    stale, reason = _lock.assess_owner(recorded, here())
    assert stale is True
    assert 'not running' in reason


def test_owner_gone_when_pid_was_reused():
    recorded = dict(here(), pid_start=here()['pid_start'] + 1)
    stale, reason = _lock.assess_owner(recorded, dict(here(), pid=1))
    assert stale is True
    assert 'another process' in reason


def test_owner_gone_after_reboot():
    recorded = dict(here(), boot_id=str(uuid.uuid4()))
    stale, reason = _lock.assess_owner(recorded, here())
    assert stale is True
    assert 'rebooted' in reason


@pytest.mark.parametrize(
    'recorded',
    [
        {'host': 'other-ctl', 'pid': 1, 'pid_start': 1, 'boot_id': 'x'},
        {},
        None,
        {'host': 'ctl'},
    ],
)
def test_owner_unknown(recorded):
    stale, _reason = _lock.assess_owner(recorded, here())
    assert stale is None


def test_process_start_reads_field_22_after_odd_comm(tmp_path):
    (tmp_path / '77').mkdir()
    fields = ['S'] + [str(n) for n in range(4, 22)] + ['123456', '0', '0']
    (tmp_path / '77' / 'stat').write_text('77 (a) (b c) ' + ' '.join(fields) + '\n')
    assert _lock.process_start(77, proc=str(tmp_path)) == 123456
    assert _lock.process_start(78, proc=str(tmp_path)) is None


def test_controller_identity_of_this_process():
    ident = here()
    assert ident['host'] == 'ctl'
    assert ident['pid'] == os.getpid()
    if os.path.exists('/proc/self/stat'):
        assert isinstance(ident['pid_start'], int)
        assert ident['boot_id']


@pytest.mark.parametrize(
    'stale, reason, fragments',
    [
        (True, 'pid 9 on ctl: that process is not running', ['It is stale', 'Run again with -e x=1 to remove it.']),
        (False, 'pid 9 on ctl', ['held by a live run (pid 9 on ctl)', 'wait for it', '-e x=1 plus -e f=1']),
        (None, 'it was taken from another controller (c2)', ['cannot be told', 'if it is gone, run again with -e x=1']),
    ],
)
def test_held_message(stale, reason, fragments):
    lock = _lock.parse_lock(_lock.encode_record(record()))
    msg = _lock.held_message(
        '/x/.deploy.lock', lock, stale=stale, reason=reason, break_hint='-e x=1', force_hint='-e f=1'
    )
    for fragment in fragments:
        assert fragment in msg
    assert msg.startswith('The lock /x/.deploy.lock is held by alice (host prod-1, deploy v1.2.0, AWX job 4711, since ')
    assert msg.endswith('Nothing was changed.')


def _breaker(path, fingerprint, barrier, queue, index):
    barrier.wait()
    result = _lock.acquire(path, record(f'p{index}'), break_fingerprint=fingerprint)
    queue.put((index, result['acquired']))


@pytest.mark.parametrize('round_', range(20))
def test_race_breaking_one_stale_lock_exactly_one_wins(tmp_path, round_):
    """Many runs break the same stale lock at once: one takes the lock, no winner's lock is removed by another."""
    path = tmp_path / '.deploy.lock'
    path.write_bytes(LEGACY)
    fingerprint = _lock.parse_lock(LEGACY)['fingerprint']
    outcomes = race(16, _breaker, str(path), fingerprint)
    winners = [index for index, acquired in outcomes if acquired]
    assert len(winners) == 1, outcomes
    assert json.loads(path.read_text())['holder'] == f'p{winners[0]}'
    assert leftovers(tmp_path) == ['.deploy.lock']


def test_a_live_process_of_another_user_is_not_stale():
    """pid 1 runs (os.kill answers EPERM unless root): alive, never judged gone."""
    recorded = dict(here(), pid=1, pid_start=_lock.process_start(1))
    stale, reason = _lock.assess_owner(recorded, here())
    assert stale is False
    assert reason == 'pid 1 on ctl'


def test_missing_start_or_boot_id_is_no_proof_of_death():
    recorded = dict(here(), pid_start=None, boot_id=None)
    assert _lock.assess_owner(recorded, dict(here(), pid=1, boot_id=str(uuid.uuid4())))[0] is False


def test_an_old_owner_cannot_release_the_lock_that_replaced_its_own(tmp_path):
    """Run A's lock was broken and run B took the lock: A's release with its token leaves B's lock alone."""
    path = tmp_path / '.deploy.lock'
    token_a = take(path, holder='alice')['token']
    fingerprint = _lock.parse_lock(path.read_bytes())['fingerprint']
    taken = take(path, holder='bob', break_fingerprint=fingerprint)
    assert taken['acquired'] is True
    before, inode = path.read_bytes(), path.stat().st_ino
    for force in (False, True):
        result = _lock.release(str(path), token=token_a, force=force, expected_fingerprint=fingerprint)
        assert result['released'] is False
        assert result['lock']['holder'] == 'bob'
    assert path.read_bytes() == before
    assert path.stat().st_ino == inode
    assert leftovers(tmp_path) == ['.deploy.lock']
    assert _lock.release(str(path), token=taken['token'])['released'] is True
    assert leftovers(tmp_path) == []


def test_a_breaker_never_removes_a_lock_taken_after_its_read(tmp_path, monkeypatch):
    """A breaker moves a NEWER lock (run A's) aside, finds it is not the stale one and links it back. Run C tries
    to take the lock in that instant, through the real create path: it must wait, then find A's lock."""
    path = tmp_path / '.deploy.lock'
    path.write_bytes(LEGACY)
    fingerprint = _lock.parse_lock(LEGACY)['fingerprint']
    lock_a, lock_c = _lock.encode_record(record('alice')), _lock.encode_record(record('carol'))
    real_rename, real_link = os.rename, os.link
    run_c = {}

    def take_as_c():
        run_c['created'] = _lock.create_exclusive(str(path), lock_c)

    def rename(src, dst):
        if src == str(path):
            path.unlink()
            path.write_bytes(lock_a)  # run A broke the stale lock and took it just before this rename
        real_rename(src, dst)

    def link(src, dst):
        if threading.current_thread() is threading.main_thread() and 'thread' not in run_c:
            run_c['thread'] = threading.Thread(target=take_as_c)
            run_c['thread'].start()
            run_c['thread'].join(0.5)  # C's whole chance to take the free place before the link-back
        real_link(src, dst)

    monkeypatch.setattr(_lock.os, 'rename', rename)
    monkeypatch.setattr(_lock.os, 'link', link)
    assert _lock.remove_if(str(path), lambda lock: lock['fingerprint'] == fingerprint) is None
    run_c['thread'].join(10)
    monkeypatch.undo()
    assert path.read_bytes() == lock_a, "run A's lock was removed: A and C both hold it"
    assert run_c['created'] is False, 'run C took a lock that run A holds'
