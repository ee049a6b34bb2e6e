# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.backup_restore module glue (exit_json / fail_json patched to raise)."""

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup_restore
from ansible_collections.avatar_mgmt.ops.plugins.modules import backup_restore
from ansible_collections.avatar_mgmt.ops.tests.unit.plugins.module_utils.test__backup_restore import (
    NIGHTLY,
    NIGHTLY_ID,
    OLD,
    SAFETY_ID,
    FakeDocker,
    make_backup,
    params,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / 'project'
    for rel in ('directus/uploads', 'directus/extensions', 'directus/schemas', 'jc21/data/logs', 'jc21/letsencrypt'):
        (root / rel).mkdir(parents=True)
    return root


@pytest.fixture
def docker(monkeypatch):
    fake = FakeDocker()
    monkeypatch.setattr(_backup_restore, 'Runner', lambda: fake)
    return fake


def backups(tmp_path, damage=None):
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, NIGHTLY_ID, NIGHTLY, {'model.glb': b'model'}, damage=damage)
    make_backup(backup_dir, SAFETY_ID, OLD, {}, kind='safety')
    return backup_dir


def args(folder, project, **extra):
    return {k: v for k, v in params(folder, project, **extra).items() if v is not None}


def run(module_args, expect=ExitJson):
    return module_harness.run_module(backup_restore, module_args, expect)


def test_documentation_matches_argument_spec(monkeypatch):
    kwargs = module_harness.module_kwargs(monkeypatch, backup_restore)
    spec = kwargs['argument_spec']
    doc = module_harness.assert_documented_options(backup_restore, spec)
    assert set(doc['options']['archives']['suboptions']) == set(spec['archives']['options'])
    returns = module_harness.assert_documented_returns(backup_restore)
    assert {'id', 'path', 'kind', 'restored', 'services', 'safety_id', 'recovered', 'error', 'timings'} <= set(returns)
    assert kwargs['supports_check_mode'] is True


def test_a_restore_is_a_change(tmp_path, project, docker):
    result = run(args(backups(tmp_path), project, id='latest'))
    assert result['changed'] is True
    assert result['id'] == NIGHTLY_ID
    assert docker.rows == NIGHTLY


def test_by_path(tmp_path, project, docker):
    folder = backups(tmp_path) / NIGHTLY_ID
    result = run(args(folder.parent, project, path=str(folder), backup_dir=None, id=None))
    assert result['id'] == NIGHTLY_ID
    assert docker.rows == NIGHTLY


def test_check_mode_changes_nothing(tmp_path, project, docker):
    result = run(dict(args(backups(tmp_path), project), _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['restored'] == ['db', 'directus', 'proxy']
    assert docker.rows == OLD
    assert docker.restores == 0


def test_a_refusal_says_nothing_was_changed(tmp_path, project, docker):
    result = run(args(backups(tmp_path), project, id='../../etc'), FailJson)
    assert result['msg'] == (
        "Restore refused: backup id '../../etc' is neither latest nor an id like 20261128T020005Z "
        '(backup_restore_id). Nothing was changed.'
    )
    assert result['changed'] is False


def test_a_recovered_failure_fails_with_the_safety_backup_named(tmp_path, project, docker):
    result = run(args(backups(tmp_path, damage='db.dump'), project), FailJson)
    assert result['changed'] is True
    assert result['recovered'] is True
    assert result['safety_id'] == SAFETY_ID
    assert f'The safety backup {SAFETY_ID} taken just before was restored' in result['msg']
    assert docker.rows == OLD
