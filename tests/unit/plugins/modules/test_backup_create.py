# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.backup_create module glue (exit_json / fail_json patched to raise)."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup_create
from ansible_collections.avatar_mgmt.ops.plugins.modules import backup_create
from ansible_collections.avatar_mgmt.ops.tests.unit.plugins.module_utils.test__backup_create import (
    OLD_KEYS,
    FakeDocker,
    make_project,
    params,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / 'project')


@pytest.fixture
def docker(monkeypatch):
    fake = FakeDocker()
    monkeypatch.setattr(_backup_create, 'Runner', lambda: fake)
    return fake


def run(args, expect=ExitJson):
    return module_harness.run_module(backup_create, args, expect)


def test_documentation_matches_argument_spec(monkeypatch):
    kwargs = module_harness.module_kwargs(monkeypatch, backup_create)
    spec = kwargs['argument_spec']
    doc = module_harness.assert_documented_options(backup_create, spec)
    suboptions = doc['options']['archives']['suboptions']
    assert set(suboptions) == set(spec['archives']['options'])
    returns = module_harness.assert_documented_returns(backup_create)
    assert {'id', 'path', 'manifest', 'files', 'verification', 'reused', 'space', 'timings'} <= set(returns)
    assert set(returns['manifest']['sample']) == OLD_KEYS | {'sources', 'reused'}
    assert kwargs['supports_check_mode'] is True


def test_a_backup_is_a_change_and_returns_its_manifest(tmp_path, project, docker):
    result = run(params(tmp_path, project))
    assert result['changed'] is True
    folder = tmp_path / 'backups' / '20261128T020005Z'
    assert result['path'] == str(folder)
    assert json.loads((folder / 'manifest.json').read_text()) == result['manifest']
    assert result['verification']['result'] == 'ok'
    assert result['timings']['total'] >= result['timings']['dump']


def test_check_mode_changes_nothing(tmp_path, project, docker):
    result = run(dict(params(tmp_path, project), _ansible_check_mode=True))
    assert result['changed'] is True
    assert not (tmp_path / 'backups').exists()


def test_bad_input_fails_naming_it_and_changes_nothing(tmp_path, project, docker):
    result = run(params(tmp_path, project, id='latest'), FailJson)
    assert result['msg'] == "Backup refused: id 'latest' is not a backup id like 20261128T020005Z. Nothing was changed."
    assert result['changed'] is False
    assert not (tmp_path / 'backups').exists()


def test_a_failed_backup_says_it_was_removed(tmp_path, project, docker):
    docker.dump_rc = 1
    result = run(params(tmp_path, project), FailJson)
    assert result['msg'].startswith('pg_dump failed (exit status 1)')
    assert result['msg'].endswith('The partial backup was removed.')
    assert 'dump' in result['timings']
    assert os.listdir(tmp_path / 'backups') == []


def test_retention_and_the_ledgers_release_in_the_same_call(tmp_path, project, docker):
    (project / 'releases').mkdir()
    (project / 'releases' / 'index.json').write_text(
        json.dumps({'current': 'r-1', 'releases': [{'id': 'r-1', 'version': 'v1.2.0', 'backup': '20261120T020000Z'}]})
    )
    for backup_id in ('20261120T020000Z', '20261121T020000Z'):
        (tmp_path / 'backups' / backup_id).mkdir(parents=True)
    args = dict(params(tmp_path, project), retention={'daily': 1, 'weekly': 0, 'monthly': 0})
    del args['release']
    result = run(args)
    assert result['release'] == {'id': 'r-1', 'version': 'v1.2.0'}
    assert result['manifest']['release'] == result['release']
    assert result['retention']['removed'] == ['20261121T020000Z']
    assert result['retention']['protected'] == ['20261120T020000Z']
    assert sorted(os.listdir(tmp_path / 'backups')) == ['20261120T020000Z', '20261128T020005Z']


def test_a_corrupt_ledger_is_a_warning(tmp_path, project, docker, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    (project / 'releases').mkdir()
    (project / 'releases' / 'index.json').write_text('{"current": "2026')
    args = params(tmp_path, project)
    del args['release']
    result = run(args)
    assert result['manifest']['release'] == {'id': '', 'version': ''}
    assert len(warned) == 1
    assert 'index.json is corrupt' in warned[0]
    assert 'warnings' not in result


def test_a_failed_retention_fails_saying_the_backup_is_published(tmp_path, project, docker, monkeypatch):
    (tmp_path / 'backups' / '20261121T020000Z').mkdir(parents=True)

    def rmtree(path, *args, **kwargs):
        raise OSError(30, 'Read-only file system', path)

    monkeypatch.setattr(_backup_create.shutil, 'rmtree', rmtree)
    args = dict(params(tmp_path, project), retention={'daily': 1, 'weekly': 0, 'monthly': 0})
    result = run(args, FailJson)
    assert result['msg'].startswith('Backup 20261128T020005Z was taken and published in ')
    assert 'Read-only file system' in result['msg']
    assert result['msg'].endswith(
        'Removed before the failure: none. The new backup is kept; the next backup applies retention again.'
    )
    assert result['published'] is True
    assert result['changed'] is True
    assert result['retention']['removed'] == []
    # Renamed before its removal failed: no longer counted as a backup.
    assert sorted(os.listdir(tmp_path / 'backups')) == ['.del-20261121T020000Z', '20261128T020005Z']
    assert (tmp_path / 'backups' / '20261128T020005Z' / 'manifest.json').is_file()


def test_check_mode_reports_retention_and_removes_nothing(tmp_path, project, docker):
    (tmp_path / 'backups' / '20261121T020000Z').mkdir(parents=True)
    args = dict(params(tmp_path, project), retention={'daily': 1, 'weekly': 0, 'monthly': 0}, _ansible_check_mode=True)
    result = run(args)
    assert result['retention']['removed'] == ['20261121T020000Z']
    assert os.listdir(tmp_path / 'backups') == ['20261121T020000Z']
