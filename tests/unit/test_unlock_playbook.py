# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/unlock.yml on this machine (connection local, the lock in a temporary project folder): a lock left by a
run that has ended is removed and named; a second run finds none. Real ansible and ansible-playbook runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(BIN, 'ansible-playbook')), reason='no ansible')


def _run(tool, tmp_path, *args):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(
        f'all:\n  hosts:\n    localhost:\n      ansible_connection: local\n'
        f'      ansible_python_interpreter: {sys.executable}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
        ANSIBLE_NOCOLOR='1',
    )
    argv = [os.path.join(BIN, tool), '-i', str(inventory), *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_lock_left_by_an_ended_run_is_removed_and_named(tmp_path):
    project = tmp_path / 'project'
    project.mkdir()
    lock = project / '.deploy.lock'
    taken = _run(
        'ansible',
        tmp_path,
        'localhost',
        '-m',
        'avatar_mgmt.ops.deploy_lock',
        '-a',
        f'path={lock} state=present holder=killed-run action=deploy version=v9.9.9',
    )
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert lock.exists()
    unlock = ['playbooks/unlock.yml', '-e', f'compose_deploy_project_dir={project}']
    res = _run('ansible-playbook', tmp_path, *unlock)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert not lock.exists()
    assert f'Removed the lock {lock} held by killed-run (deploy v9.9.9' in ' '.join(out.split()), out[-3000:]
    again = _run('ansible-playbook', tmp_path, *unlock)
    assert again.returncode == 0, again.stdout[-3000:]
    assert 'nothing to remove' in again.stdout, again.stdout[-3000:]


def test_a_bad_unlock_force_is_refused_before_anything(tmp_path):
    project = tmp_path / 'project'
    project.mkdir()
    res = _run(
        'ansible-playbook',
        tmp_path,
        'playbooks/unlock.yml',
        '-e',
        f'compose_deploy_project_dir={project}',
        '-e',
        'unlock_force=maybe',
    )
    assert res.returncode != 0
    assert "unlock_force must be true or false; got 'maybe'" in ' '.join(res.stdout.split()), res.stdout[-3000:]


def test_a_lock_it_cannot_judge_is_kept_until_forced(tmp_path):
    """A lock taken on another control node (another AWX execution node, another laptop): whether its run ended
    cannot be told from here, so unlock.yml keeps it, byte for byte, and says who holds it; unlock_force removes it."""
    from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock

    project = tmp_path / 'project'
    project.mkdir()
    lock = project / '.deploy.lock'
    elsewhere = _lock.controller_identity(os.getpid(), 'awx-ee-elsewhere')
    record = _lock.new_record(
        holder='awx:deploy-prod', host='localhost', version='v1.2.0', job_id='4711', controller=elsewhere
    )
    lock.write_bytes(_lock.encode_record(record))
    before = lock.read_bytes()
    unlock = ['playbooks/unlock.yml', '-e', f'compose_deploy_project_dir={project}']
    res = _run('ansible-playbook', tmp_path, *unlock)
    out = ' '.join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out[-3000:]
    assert lock.read_bytes() == before
    assert f'Unlock refused, nothing was changed: the lock {lock} is held by awx:deploy-prod' in out, out[-3000:]
    assert 'AWX job 4711' in out, out[-3000:]
    assert '-e unlock_force=true' in out, out[-3000:]
    forced = _run('ansible-playbook', tmp_path, *unlock, '-e', 'unlock_force=true')
    assert forced.returncode == 0, forced.stdout[-3000:]
    assert not lock.exists()
    assert 'Removed the lock' in forced.stdout, forced.stdout[-3000:]
    assert 'awx:deploy-prod' in forced.stdout, forced.stdout[-3000:]


def test_the_take_over_breaks_only_the_lock_it_read():
    """Between the read (state=query) and the take-over another run may take a free lock, or replace the one that was
    read: the take-over runs only when a lock was read, and breaks only that one (deploy_lock break_only; its
    refusal of another lock is tested in tests/unit/plugins/action/test_deploy_lock.py)."""
    import yaml

    with open(os.path.join(ROOT, 'playbooks', 'unlock.yml'), encoding='utf-8') as handle:
        (play,) = yaml.safe_load(handle)
    (take,) = [t for t in play['tasks'] if t.get('avatar_mgmt.ops.deploy_lock', {}).get('state') == 'present']
    assert take['avatar_mgmt.ops.deploy_lock']['break_only'] == '{{ __unlock_found.lock.fingerprint }}'
    assert take['when'] == '(__unlock_found.lock | default({})) | length > 0'
