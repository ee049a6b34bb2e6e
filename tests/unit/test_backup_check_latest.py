# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""backup.yml -e backup_check_id=latest chooses what restore.yml's latest chooses: the newest scheduled backup,
never a pre-deploy or safety one. The choosing tasks of roles/backup/tasks/check.yml (up to the refusal), run by a
real ansible-playbook on this machine against backup folders written as backup_create writes their manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(BIN, 'ansible-playbook')), reason='no ansible')


def _manifest(folder, **fields):
    folder.mkdir(parents=True)
    text = json.dumps({'id': folder.name, 'files': {}, **fields}, indent=2, sort_keys=True, separators=(',', ': '))
    (folder / 'manifest.json').write_text(text + '\n')


def _choose(tmp_path, backups):
    with open(os.path.join(ROOT, 'roles', 'backup', 'tasks', 'check.yml'), encoding='utf-8') as handle:
        tasks = yaml.safe_load(handle)
    last = next(i for i, t in enumerate(tasks) if t['name'].startswith('Refuse latest'))
    for task in tasks[: last + 1]:
        task.pop('become', None)
    (tmp_path / 'choose.yml').write_text(yaml.safe_dump(tasks[: last + 1]))
    play = [
        {
            'hosts': 'localhost',
            'gather_facts': False,
            'vars': {'backup_dir': str(backups), 'backup_check_id': 'latest'},
            'tasks': [
                {'ansible.builtin.include_tasks': str(tmp_path / 'choose.yml')},
                {'ansible.builtin.debug': {'msg': 'chosen={{ _backup_id }}'}},
            ],
        }
    ]
    (tmp_path / 'play.yml').write_text(yaml.safe_dump(play))
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    argv = [
        os.path.join(BIN, 'ansible-playbook'),
        '-i',
        'localhost,',
        '-c',
        'local',
        '-e',
        f'ansible_python_interpreter={sys.executable}',
        str(tmp_path / 'play.yml'),
    ]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_latest_is_the_newest_scheduled_backup(tmp_path):
    backups = tmp_path / 'backups'
    _manifest(backups / '20261128T020005Z')  # no kind: an older backup, scheduled
    _manifest(backups / '20261129T020005Z', kind='scheduled', verification={'result': 'ok'})
    _manifest(backups / '20261130T020005Z', kind='pre-deploy')
    _manifest(backups / '20261130T030005Z', kind='safety')
    _manifest(backups / '20261130T035005Z', kind='manual')  # any other kind is not a scheduled one either
    _manifest(backups / '20261130T036005Z', offsite={'kind': 'safety'})  # a nested kind is not the backup's
    (backups / '20261130T040005Z').mkdir()  # no manifest: not a backup
    _manifest(backups / '.del-20261130T050005Z', kind='scheduled')  # being removed
    res = _choose(tmp_path, backups)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert 'chosen=20261130T036005Z' in res.stdout, res.stdout[-3000:]


def test_latest_without_a_scheduled_backup_is_refused(tmp_path):
    backups = tmp_path / 'backups'
    _manifest(backups / '20261130T020005Z', kind='safety')
    res = _choose(tmp_path, backups)
    out = ' '.join(res.stdout.split())
    assert res.returncode != 0
    assert 'backup_check_id=latest names the newest scheduled backup, and there is none in' in out, out[-3000:]
    assert 'chosen=' not in out


def test_latest_passes_over_a_kind_of_its_own(tmp_path):
    """backup_create takes any kind: only an empty one or scheduled is a scheduled backup, as for a restore."""
    backups = tmp_path / 'backups'
    _manifest(backups / '20261129T020005Z', kind='scheduled')
    _manifest(backups / '20261130T020005Z', kind='manual')
    res = _choose(tmp_path, backups)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert 'chosen=20261129T020005Z' in res.stdout, res.stdout[-3000:]
