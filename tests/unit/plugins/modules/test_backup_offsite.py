# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.backup_offsite module glue, against a real restic and a local repository."""

from __future__ import annotations

import shutil

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.modules import backup_offsite
from ansible_collections.avatar_mgmt.ops.tests.unit.plugins.module_utils.test__restic import (  # noqa: F401  # pylint: disable=unused-import
    new_repository,
    world,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import FailJson

needs_restic = pytest.mark.skipif(
    shutil.which("restic") is None, reason="restic is not installed (make unit installs it)"
)


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


def test_documentation_matches_the_argument_spec(monkeypatch):
    kwargs = module_harness.module_kwargs(monkeypatch, backup_offsite)
    module_harness.assert_documented_options(backup_offsite, kwargs["argument_spec"])
    module_harness.assert_documented_returns(backup_offsite)
    for secret in ("env", "secret_values"):
        assert kwargs["argument_spec"][secret]["no_log"] is True


@needs_restic
def test_backup_then_check(world):  # noqa: F811
    res = module_harness.run_module(backup_offsite, world["params"])
    assert res["changed"] is True
    assert res["copied"] is True
    assert res["initialized"] is True
    assert res["snapshot_id"]
    check = module_harness.run_module(
        backup_offsite,
        {k: world["params"][k] for k in ("repository", "password_file", "environment")} | {"action": "check"},
    )
    assert check["changed"] is False
    assert check["snapshots"] == 1


def test_bad_input_is_refused_and_names_the_option(world):  # noqa: F811
    res = module_harness.run_module(backup_offsite, dict(world["params"], repository="ftp://x/y"), FailJson)
    assert res["msg"].startswith(
        "the off-host copy of backup 20261128T020005Z to ftp://x/y failed (the local backup 20261128T020005Z is "
        "published and kept): refused: backup_repository 'ftp://x/y' is not a restic repository"
    )
    assert res["msg"].endswith("nothing was changed in the repository")
    assert res["published"] is True
    assert res["copied"] is False


@needs_restic
def test_a_restic_error_is_the_message_without_secrets(world, new_repository, tmp_path):  # noqa: F811
    new_repository()
    module_harness.run_module(backup_offsite, world["params"])
    bad = tmp_path / "wrong"
    bad.write_text("wrong password")
    res = module_harness.run_module(
        backup_offsite, dict(world["params"], password_file=str(bad), id="20261129T020005Z"), FailJson
    )
    assert "wrong password" in res["msg"]
    assert res["published"] is True
    assert "aws-secret" not in repr(res)


def test_check_mode_reports_without_running_restic(world):  # noqa: F811
    res = module_harness.run_module(
        backup_offsite, dict(world["params"], _ansible_check_mode=True, restic="no-such-restic")
    )
    assert res["changed"] is True
    assert res["snapshot_id"] == ""
    assert not (world["tmp"] / "repo").exists()
