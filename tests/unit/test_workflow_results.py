# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Results for AWX workflows on the failure path: the collection's own playbooks (rollback.yml, backup.yml), run by
ansible-playbook against a "server" that is this machine (connection local) with a real release ledger and a lock
that another run holds. Each run must fail (rc != 0) after reporting set_stats (avatar_rollback, avatar_backup:
result, stage, reason, what runs now) and notifying a local webhook receiver; nothing is changed (the other run's
lock stays). The success path needs Docker: the platform runs (molecule) cover it.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _ledger
from ansible_collections.avatar_mgmt.ops.tests.support.webhook_receiver import WebhookReceiver

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
DIGEST = 'sha256:' + '1' * 64
OLD = '20261101T100000Z-v1.1.0'
NEW = '20261120T100000Z-v1.2.0'
ALICE = {'holder': 'alice@laptop', 'since': '2026-11-28T10:00:00Z', 'action': 'deploy', 'version': 'v1.3.0'}

pytestmark = pytest.mark.skipif(not os.path.exists(ANSIBLE_PLAYBOOK), reason='no ansible-playbook')


def _release(release_id, version):
    images = {
        s: {'reference': f'ghcr.avatar.test/rayhu/avatar-mgmt/{s}@{DIGEST}', 'digest': DIGEST}
        for s in ('api', 'frontend')
    }
    return {'id': release_id, 'version': version, 'result': 'success', 'images': images, 'environment': 'production'}


@pytest.fixture
def world(tmp_path):
    """A project folder with a ledger (v1.1.0 then v1.2.0, current) and alice's lock, and an inventory whose one
    production host is this machine."""
    project = tmp_path / 'project'
    releases = project / 'releases'
    releases.mkdir(parents=True)
    ledger = {'current': '', 'releases': []}
    for release_id, version in ((OLD, 'v1.1.0'), (NEW, 'v1.2.0')):
        ledger, _kept, _warnings = _ledger.apply_record(ledger, _ledger.build_entry(_release(release_id, version)), 5)
    (releases / 'index.json').write_text(_ledger.serialize(ledger))
    (releases / 'current').write_text(ledger['current'] + '\n')
    (project / '.deploy.lock').write_text(json.dumps(ALICE))
    inventory = tmp_path / 'inventory'
    inventory.mkdir()
    (inventory / 'group_vars').symlink_to(os.path.join(ROOT, 'inventories', 'sandbox', 'group_vars'))
    host = {
        'ansible_connection': 'local',
        'ansible_python_interpreter': sys.executable,
        'compose_deploy_project_dir': str(project),
        'compose_deploy_user': getpass.getuser(),
    }
    hosts = {'all': {'children': {'sandbox': {'children': {'production': {'hosts': {'prod-local': host}}}}}}}
    (inventory / 'hosts.yml').write_text('---\n' + yaml.safe_dump(hosts))
    return tmp_path


def _run(world, playbook, receiver, *extra):
    settings = {'notify_on': ['failure'], 'notify_targets': [{'type': 'webhook', 'url': f'{receiver.url}/hook'}]}
    (world / 'notify.json').write_text(json.dumps(settings))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
        ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
        ANSIBLE_SHOW_CUSTOM_STATS='true',
        ANSIBLE_NOCOLOR='1',
    )
    argv = [ANSIBLE_PLAYBOOK, playbook, '-i', str(world / 'inventory'), '-e', f'@{world / "notify.json"}', *extra]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    try:
        stats = json.loads(proc.stdout)['global_custom_stats']
    except (ValueError, KeyError):
        pytest.fail(f'no JSON result (rc {proc.returncode}): {proc.stdout[-3000:]} {proc.stderr[-3000:]}')
    return proc, stats


@pytest.fixture
def receiver():
    with WebhookReceiver() as svc:
        yield svc


def test_a_rollback_refused_by_the_lock_reports_and_fails(world, receiver):
    proc, stats = _run(world, 'rollback.yml', receiver)
    assert proc.returncode != 0
    report = stats['avatar_rollback']
    assert report['result'] == 'failed'
    assert report['stage'] == 'lock'
    assert 'alice@laptop' in report['reason']
    assert report['running'] == {'version': 'v1.2.0', 'release': NEW}
    assert report['version'] == 'v1.1.0'
    assert report['environment'] == 'production'
    assert report['by_host']['prod-local']['stage'] == 'lock'
    (sent,) = receiver.received
    event = json.loads(sent['body'])
    assert (event['action'], event['result'], event['stage']) == ('rollback', 'failed', 'lock')
    assert 'Runs now: v1.2.0' in event['text']
    assert json.loads((world / 'project' / '.deploy.lock').read_text()) == ALICE


def test_a_rollback_without_a_target_reports_the_choice_stage(world, receiver):
    proc, stats = _run(world, 'rollback.yml', receiver, '-e', 'rollback_to=v9.9.9')
    assert proc.returncode != 0
    report = stats['avatar_rollback']
    assert (report['result'], report['stage']) == ('failed', 'choose')
    assert 'v9.9.9' in report['reason']
    assert report['running'] == {'version': 'v1.2.0', 'release': NEW}
    assert len(receiver.received) == 1


def test_a_manual_backup_refused_by_the_lock_reports_at_once_and_fails(world, receiver):
    proc, stats = _run(world, 'backup.yml', receiver)
    assert proc.returncode != 0
    report = stats['avatar_backup']
    assert (report['result'], report['stage']) == ('failed', 'lock')
    assert 'alice@laptop' in report['reason']
    assert report['running'] == {'version': 'v1.2.0', 'release': NEW}
    # A backup run by hand does not wait.
    assert 'Waited' not in report['reason']
    (sent,) = receiver.received
    assert json.loads(sent['body'])['action'] == 'backup'
    assert json.loads((world / 'project' / '.deploy.lock').read_text()) == ALICE


class LockWatcher:
    """Removes alice's lock after ``release_after`` seconds, then keeps the first other lock it sees (the run's)."""

    def __init__(self, path, release_after):
        self.path = path
        self.release_after = release_after
        self.seen = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        time.sleep(self.release_after)
        self.path.unlink()
        while not self._stop.is_set() and self.seen is None:
            try:
                self.seen = json.loads(self.path.read_text())
            except (OSError, ValueError):
                time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


@pytest.mark.parametrize(
    'extra, holder, job_id',
    [
        # An AWX schedule: the job has no user; awx_schedule_name makes it a scheduled backup.
        (['-e', '{"awx_schedule_name": "nightly backup", "awx_job_id": 412}'], 'schedule:nightly backup', '412'),
        # The systemd timer (contrib/systemd) names its unit.
        (['-e', 'backup_schedule=avatar-backup@production'], 'schedule:avatar-backup@production', ''),
    ],
)
def test_a_scheduled_backup_waits_for_the_lock_then_runs_as_its_schedule(world, receiver, extra, holder, job_id):
    lock = world / 'project' / '.deploy.lock'
    started = time.monotonic()
    with LockWatcher(lock, release_after=4) as watcher:
        proc, stats = _run(world, 'backup.yml', receiver, '-e', 'backup_scheduled_lock_timeout=120', *extra)
    took = time.monotonic() - started
    # It waited for alice's run, took the lock as its schedule and job, then went on to the backup itself, which
    # needs a Docker stack this machine does not run: it fails there, not at the lock.
    assert took >= 4
    assert watcher.seen is not None, 'the run never took the lock'
    assert (watcher.seen['holder'], watcher.seen['job_id'], watcher.seen['action']) == (holder, job_id, 'backup')
    assert proc.returncode != 0
    report = stats['avatar_backup']
    assert report['stage'] == 'backup', report
    assert report['job_id'] == job_id
    assert not lock.exists()  # given back


def test_a_scheduled_backup_gives_up_after_its_timeout(world, receiver):
    started = time.monotonic()
    proc, stats = _run(
        world, 'backup.yml', receiver, '-e', 'awx_schedule_name=nightly', '-e', 'backup_scheduled_lock_timeout=3'
    )
    assert time.monotonic() - started >= 3
    assert proc.returncode != 0
    report = stats['avatar_backup']
    assert report['stage'] == 'lock'
    assert 'alice@laptop' in report['reason']
    assert 'Waited 3 s for it to be released.' in report['reason']
    assert json.loads((world / 'project' / '.deploy.lock').read_text()) == ALICE
