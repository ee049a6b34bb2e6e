# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The dry runs of release_info's drift check and of compose_switch's plan against a real Docker engine.

Both ask ``docker compose up --dry-run --no-start`` (the create phase only: no wait on the
``depends_on`` health conditions). These tests hold their answers against compose's full
``up -d --dry-run`` (what ``up`` would really do) on a real project, a service of which waits for
another's health, in every state they must tell: nothing changed, a container stopped by hand, one that
never started, a service whose definition changed, one that a changed service depends on, a service the file no longer
has (orphans), a container removed.
Skipped, with the reason, when no engine, no compose plugin, no Docker SDK or no test image answers.
"""

from __future__ import annotations

import uuid

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_info, _switch
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_info
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness, real_docker

pytestmark = pytest.mark.docker

IMAGE = real_docker.IMAGE
SERVICES = ["db", "app", "web"]

COMPOSE = """\
services:
  db:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 2s
      retries: 3
  app:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
    depends_on:
      db:
        condition: service_healthy
  web:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
{web_extra}"""


_sh = real_docker.sh


class Project:
    def __init__(self, workdir, name):
        self.dir = workdir
        self.name = name
        self.file = workdir / "compose.yml"
        self.compose = ["docker", "compose", "-p", name, "-f", str(self.file)]

    def write(self, web_extra="", without_web=False):
        text = COMPOSE.format(image=IMAGE, web_extra=web_extra)
        if without_web:
            text = text[: text.index("  web:\n")]
        self.file.write_text(text)
        self.file.chmod(0o640)
        return text

    def drift(self, text):
        """release_info's answer, the module run as a task runs it (files identical: compose is asked)."""
        args = {
            "project_dir": str(self.dir),
            "project_name": self.name,
            "services": SERVICES,
            "compare": {
                "files": [{"path": str(self.file), "content": text}],
                "drift_compose_files": ["compose.yml"],
            },
        }
        result = module_harness.run_module(release_info, args)
        assert result["files_identical"] is True
        assert result["drift_error"] == ""
        return result["drift"]

    def switch_plan(self):
        """What compose_switch's plan takes as changed (its own dry run and containers, read as it reads them)."""
        docker = _switch._Docker(_sh, self.name, str(self.dir), [str(self.file)])
        services = docker.services()
        parsed = _switch.parse_dry_run(docker.dry_run(), self.name, services)
        changed = _switch.with_stopped(_switch.changed_services(parsed, services), services, docker.containers())
        return changed + (["orphans"] if _switch.orphans_change(parsed) else [])

    def full_dry_run(self):
        """What compose's whole ``up`` (start phase and its health waits included) would change."""
        rc, out, err = _sh(self.compose + ["config", "--services"])
        assert rc == 0, out + err
        services = out.split()  # as the module reads them: those of the file, the others' containers are orphans
        rc, out, err = _sh(self.compose + ["up", "-d", "--dry-run", "--remove-orphans"])
        assert rc == 0, out + err
        parsed = _switch.parse_dry_run(out + "\n" + err, self.name, services)
        changed = _switch.changed_services(parsed, services)
        return changed + (["orphans"] if _switch.orphans_change(parsed) else [])


@pytest.fixture
def project(tmp_path, monkeypatch):
    reason = real_docker.skip_reason(_release_info.HAS_DOCKER, IMAGE)
    if reason:
        pytest.skip(reason)
    module_harness.patch_exits(monkeypatch)
    proj = Project(tmp_path, f"ridrift-{uuid.uuid4().hex[:10]}")
    proj.write()
    try:
        rc, out, err = _sh(proj.compose + ["up", "--detach", "--wait"])
        assert rc == 0, f"docker compose up failed: {out}{err}"
        yield proj
    finally:
        proj.write()
        _sh(proj.compose + ["down", "--volumes", "--remove-orphans", "--timeout", "0"])


def _same(project, text):
    """release_info's drift, compose_switch's plan and compose's full dry run: one answer."""
    full = project.full_dry_run()
    assert project.drift(text) == full
    assert project.switch_plan() == full
    return full


def test_drift_matches_compose_full_dry_run_in_every_state(project):
    text = project.write()
    assert _same(project, text) == []

    # Stopped by hand: compose's up would start it again.
    assert _sh(["docker", "stop", "--time", "0", f"{project.name}-app-1"])[0] == 0
    assert _same(project, text) == ["app"]
    assert _sh(["docker", "start", f"{project.name}-app-1"])[0] == 0
    assert _same(project, text) == []

    # Never started (as after a failed start): the create phase alone does not print it; up would start it.
    assert _sh(project.compose + ["rm", "--stop", "--force", "web"])[0] == 0
    assert _sh(project.compose + ["create", "web"])[0] == 0
    rc, state, _err = _sh(["docker", "inspect", "--format", "{{.State.Status}}", f"{project.name}-web-1"])
    assert (rc, state.strip()) == (0, "created")
    assert _same(project, text) == ["web"]
    assert _sh(["docker", "start", f"{project.name}-web-1"])[0] == 0
    assert _same(project, text) == []

    # A definition that changed: recreated.
    changed = project.write(web_extra="    labels: {drift.test: changed}\n")
    assert _same(project, changed) == ["web"]

    # A service the file no longer has: its container is an orphan compose removes.
    fewer = project.write(without_web=True)
    assert _same(project, fewer) == ["orphans"]

    # A changed service that another depends on: whatever compose does to the dependent, all three say it.
    text = project.write()
    db_changed = text.replace(
        '    command: ["sleep", "infinity"]\n    healthcheck:', '    command: ["sleep", "99999"]\n    healthcheck:'
    )
    assert db_changed != text
    project.file.write_text(db_changed)
    assert "db" in _same(project, db_changed)

    # A container removed by hand: created again.
    text = project.write()
    assert _sh(["docker", "rm", "--force", f"{project.name}-db-1"])[0] == 0
    assert "db" in _same(project, text)
