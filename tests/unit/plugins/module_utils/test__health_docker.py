# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compose checks of _health.py against a real Docker engine, read through the Docker SDK.

A tiny compose project (`hvtest-<random>`) with three services:
``ready`` turns healthy after a few seconds, ``never`` never does, ``plain``
has no healthcheck; and one labelled container (`hvtest-sdk-<random>`) made
with the SDK for ``list_compose_containers``. Everything is created here and
removed in ``finally``. Skipped, with the reason, when no engine, no compose
plugin, no Docker SDK or no `avatar-test/debian:bookworm` image is available.
"""

from __future__ import annotations

import uuid

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _health
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._health import list_compose_containers, run_checks
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import real_docker

pytestmark = pytest.mark.docker

IMAGE = real_docker.IMAGE

COMPOSE_FILE = """\
services:
  ready:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep infinity"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 3
  never:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
    healthcheck:
      test: ["CMD-SHELL", "echo not ready yet; exit 1"]
      interval: 1s
      timeout: 2s
      retries: 2
  plain:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
"""


_sh = real_docker.sh


def _skip_reason():
    return real_docker.skip_reason(_health.HAS_DOCKER_SDK, IMAGE)


def _compose_project(tmp_path_factory, prefix, text):
    """Start the compose project ``text`` under a fresh name; yield its name; take it down again."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    workdir = tmp_path_factory.mktemp(name)
    compose_file = workdir / "compose.yml"
    compose_file.write_text(text.format(image=IMAGE))
    base = ["docker", "compose", "-p", name, "-f", str(compose_file)]
    try:
        rc, out, err = _sh(base + ["up", "--detach"])
        assert rc == 0, f"docker compose up failed: {out}{err}"
        yield name
    finally:
        _sh(base + ["down", "--volumes", "--remove-orphans", "--timeout", "0"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    yield from _compose_project(tmp_path_factory, "hvtest", COMPOSE_FILE)


def _image_id():
    rc, out, _err = _sh(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE])
    assert rc == 0
    return out.strip()


def test_compose_check_waits_for_healthy_and_reports_unhealthy(project):
    report = run_checks(
        [
            {"name": "app", "type": "compose", "project": project, "services": ["ready", "plain"]},
            {"name": "broken", "type": "compose", "project": project, "services": ["never"]},
        ],
        deadline=15,
        interval=0.5,
    )
    app, broken = report["checks"]

    assert app["ok"] is True, app["detail"]
    assert app["status"] == "healthy"
    # `ready` needs about 3 s to pass its healthcheck: the check was polled.
    assert app["attempts"] >= 2
    assert app["elapsed"] >= 2
    ready, plain = app["services"]
    assert (ready["service"], ready["state"], ready["health"], ready["ok"]) == ("ready", "running", "healthy", True)
    assert (plain["service"], plain["health"], plain["ok"]) == ("plain", None, True)
    assert plain["detail"] == "running (no healthcheck)"
    assert ready["image"] == IMAGE
    assert ready["image_id"] == _image_id()

    assert broken["ok"] is False
    assert broken["status"] == "unhealthy"
    assert broken["detail"] == "never: unhealthy (last healthcheck output: 'not ready yet')"
    assert broken["attempts"] > 2
    assert broken["elapsed"] >= 15
    assert report["summary"]["failed_names"] == ["broken"]
    assert report["healthy"] is False


def test_compose_check_of_all_services(project):
    report = run_checks([{"name": "all", "type": "compose", "project": project}], deadline=0)
    result = report["checks"][0]
    assert [s["service"] for s in result["services"]] == ["never", "plain", "ready"]
    assert result["ok"] is False
    assert result["detail"].startswith("never: ")
    assert all(s["containers"] == 1 for s in result["services"])


def test_exec_check_runs_the_command_in_the_service_container(project):
    ok, failing, absent = run_checks(
        [
            {
                "name": "query",
                "type": "exec",
                "project": project,
                "service": "plain",
                "command": ["sh", "-c", "echo 1"],
                "output_regex": r"^1\s*$",
            },
            {
                "name": "broken",
                "type": "exec",
                "project": project,
                "service": "plain",
                "command": ["sh", "-c", "echo 'no such table' >&2; exit 3"],
            },
            {"name": "absent", "type": "exec", "project": project, "service": "nothere", "command": ["true"]},
        ],
        deadline=0,
    )["checks"]
    assert (ok["ok"], ok["status"], ok["detail"]) == (True, 0, "exit code 0, output '1'")
    assert (failing["ok"], failing["status"], failing["detail"]) == (False, 3, "exit code 3: no such table")
    assert (absent["ok"], absent["status"]) == (False, "missing")


def test_compose_check_of_an_unknown_project():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"hvtest-absent-{uuid.uuid4().hex[:10]}"
    report = run_checks([{"name": "none", "type": "compose", "project": name}], deadline=0)
    result = report["checks"][0]
    assert result["ok"] is False
    assert result["status"] == "missing"
    assert result["detail"] == f"compose project {name!r} has no containers"


def test_list_compose_containers_through_the_sdk():
    """One labelled container of our own, made from a present image, read back by the SDK."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    client = _health.docker_client_from_env()
    suffix = uuid.uuid4().hex[:10]
    project = f"hvtest-sdk-{suffix}"
    labels = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": "probe",
        "com.docker.compose.oneoff": "False",
    }
    made = None
    try:
        made = client.containers.run(
            IMAGE, ["sleep", "infinity"], name=f"{project}-probe-1", labels=labels, detach=True, stop_signal="SIGKILL"
        )
        containers = list_compose_containers(project, client)
        assert len(containers) == 1
        found = containers[0]
        assert found["id"] == made.id
        assert found["name"] == f"{project}-probe-1"
        assert found["service"] == "probe"
        assert found["state"] == "running"
        assert found["health"] is None
        assert found["image"] == IMAGE
        assert found["image_id"] == _image_id()
        assert list_compose_containers(f"hvtest-sdk-absent-{suffix}", client) == []
    finally:
        if made is not None:
            made.remove(force=True)
        client.close()


# Healthchecks whose first scheduled run is an hour away: only the compose check's own first run can answer.
UNRUN_FILE = """\
services:
  works:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /etc/hostname && echo fine"]
      interval: 1h
  warming:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
    healthcheck:
      test: ["CMD-SHELL", "echo still warming; exit 3"]
      interval: 1h
  hangs:
    image: {image}
    pull_policy: never
    command: ["sleep", "infinity"]
    healthcheck:
      test: ["CMD", "sleep", "30"]
      interval: 1h
      timeout: 1s
"""


@pytest.fixture(scope="module")
def unrun(tmp_path_factory):
    yield from _compose_project(tmp_path_factory, "hvtest-unrun", UNRUN_FILE)


def _docker_health(project, service):
    fmt = "{{.State.Health.Status}} {{len .State.Health.Log}}"
    rc, out, _err = _sh(["docker", "inspect", "--format", fmt, f"{project}-{service}-1"])
    assert rc == 0
    return out.split()


def test_compose_check_runs_a_healthcheck_docker_has_not_run_yet(unrun):
    """Docker would first run these healthchecks an hour after the start; the check runs each once, now."""
    report = run_checks(
        [
            {"name": "works", "type": "compose", "project": unrun, "services": ["works"]},
            {"name": "warming", "type": "compose", "project": unrun, "services": ["warming"]},
            {"name": "hangs", "type": "compose", "project": unrun, "services": ["hangs"]},
        ],
        deadline=0,
    )
    works, warming, hangs = report["checks"]
    # Its own test passed when run in it: healthy at once, and said so.
    assert works["ok"] is True, works["detail"]
    assert works["services"][0]["health"] == "healthy"
    assert "its healthcheck passed when this check ran it (Docker had not yet)" in works["detail"]
    # A failing test leaves the container "starting" (not ready), with the test's answer.
    assert warming["ok"] is False
    assert warming["status"] == "starting"
    assert warming["detail"] == (
        "warming: starting (its healthcheck, run by this check before Docker ran it, exited 3; "
        "last healthcheck output: 'still warming')"
    )
    # A test that does not end is given the container's own healthcheck timeout (1 s), not more.
    assert hangs["ok"] is False
    assert "did not end within its timeout (1s)" in hangs["detail"]
    assert hangs["elapsed"] < 10
    # Docker's own status is untouched: it still has not run any of them.
    assert _docker_health(unrun, "works") == ["starting", "0"]
    assert _docker_health(unrun, "warming") == ["starting", "0"]
