# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""State of bare servers after bootstrap + ghcr_login, checked on the hosts."""

import json
import os
import subprocess
import sys

import pytest
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")

REGISTRY = "ghcr.avatar.test"
IMAGE = REGISTRY + "/rayhu/avatar-mgmt/api:v1.2.0"


def playbook(name, *extra, limit=None):
    """Run one of this scenario's playbooks against the molecule inventory."""
    cmd = ["ansible-playbook", "-i", INVENTORY, os.path.join(SCENARIO, name), *extra]
    if limit:
        cmd += ["--limit", limit]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def test_docker_service_active_and_enabled(host):
    svc = host.service("docker")
    assert svc.is_running
    assert svc.is_enabled


def test_compose_v2(host):
    out = host.check_output("docker compose version --short")
    assert out.lstrip("v").startswith("2."), out


def test_deploy_user_runs_docker_without_password(host):
    assert host.user().name == "deploy"
    assert "docker" in host.user().groups
    # No sudo: the deploy user's own session talks to the daemon.
    cmd = host.run("docker ps --format '{{.ID}}'")
    assert cmd.rc == 0, cmd.stderr


def test_daemon_json(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert cfg["live-restore"] is True
    assert cfg["log-driver"] == "json-file"
    assert cfg["log-opts"]["max-size"]
    info = host.check_output("docker info --format '{{.LiveRestoreEnabled}}'")
    assert info == "true"


def test_registry_ca_installed(host):
    ca = host.file(f"/etc/docker/certs.d/{REGISTRY}/ca.crt")
    assert ca.exists
    assert ca.user == "root"
    assert ca.mode == 0o644
    assert "BEGIN CERTIFICATE" in ca.content_string


def test_directories(host):
    envdir = "/opt/deploy-avatar" if "stage" in host.backend.get_hostname() else "/opt/deploy-avatar-prod"
    d = host.file(envdir)
    assert d.is_directory
    assert d.user == "deploy"
    assert d.mode == 0o750
    for sub in ("uploads", "extensions", "schemas"):
        f = host.file(f"{envdir}/directus/{sub}")
        assert f.is_directory
        assert f.uid == 1000
        assert f.gid == 1000


def test_login_lets_host_pull(host):
    cfg = host.file("/home/deploy/.docker/config.json")
    assert cfg.mode == 0o600
    assert REGISTRY in json.loads(cfg.content_string)["auths"]
    pulled = host.run(f"docker pull -q {IMAGE}")
    assert pulled.rc == 0, pulled.stderr
    digests = host.check_output(f"docker image inspect -f '{{{{json .RepoDigests}}}}' {IMAGE}")
    assert "sha256:" in digests


@pytest.mark.parametrize("token", ["wrong-token-123"])
def test_wrong_token_fails_and_leaves_no_credential(host, token):
    name = host.backend.get_hostname()
    res = playbook("login.yml", "-e", "ghcr_login_token=" + token, limit=name)
    assert res.returncode != 0
    # The role's own refusal, naming the registry (not the recap's "failed=" or a task name).
    assert f"Login to {REGISTRY} as " in res.stdout + res.stderr
    assert token not in res.stdout + res.stderr
    cfg = json.loads(host.file("/home/deploy/.docker/config.json").content_string)
    assert REGISTRY not in cfg.get("auths", {})
    # Logging in again with the right token restores access for the other tests.
    again = playbook("login.yml", limit=name)
    assert again.returncode == 0, again.stdout[-2000:]


# The daemon test's one server: docker_host gets the same input on both (the same image, the same variables;
# docker_host.yml lies outside playbooks/, so neither environment's group_vars applies), and its four runs with
# their dockerd restarts are the slowest part of this scenario.
DAEMON_HOST = "mol-prod"


def test_daemon_change_keeps_containers_running():
    """A daemon.json change needing a restart keeps containers up (live-restore)."""
    name = DAEMON_HOST
    host = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
    host.run("docker rm -f dh-keepalive")
    cid = host.check_output(f"docker run -d --name dh-keepalive --entrypoint sleep {IMAGE} 600")
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' dh-keepalive")
    try:
        res = playbook("docker_host.yml", "-e", "docker_host_log_max_size=21m", limit=name)
        assert res.returncode == 0, res.stdout[-3000:]
        assert "21m" in host.file("/etc/docker/daemon.json").content_string
        state = host.check_output("docker inspect -f '{{.Id}} {{.State.Running}} {{.State.StartedAt}}' dh-keepalive")
        assert state == f"{cid} true {started}"

        # With live-restore off in the running daemon, a restart is refused and nothing is written.
        off = playbook(
            "docker_host.yml", "-e", "docker_host_log_max_size=21m", "-e", "docker_host_live_restore=false", limit=name
        )
        assert off.returncode == 0, off.stdout[-3000:]
        assert host.check_output("docker info --format '{{.LiveRestoreEnabled}}'") == "false"
        refused = playbook(
            "docker_host.yml", "-e", "docker_host_log_max_size=33m", "-e", "docker_host_live_restore=false", limit=name
        )
        assert refused.returncode != 0
        assert "would stop them" in refused.stdout + refused.stderr
        assert "33m" not in host.file("/etc/docker/daemon.json").content_string
        assert (
            host.check_output("docker inspect -f '{{.State.Running}} {{.State.StartedAt}}' dh-keepalive")
            == f"true {started}"
        )
    finally:
        # Without the container the restart back to the defaults is allowed again.
        host.run("docker rm -f dh-keepalive")
        back = playbook("docker_host.yml", limit=name)
    assert back.returncode == 0, back.stdout[-3000:]
    assert host.check_output("docker info --format '{{.LiveRestoreEnabled}}'") == "true"


def test_release_tag_from_the_server(host, tmp_path):
    """Channels and versions resolve on the server to the digests the registry itself reports."""
    sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
    from avatar_testlib import registry_digest

    name = host.backend.get_hostname()
    out = tmp_path / "resolved.json"
    res = playbook("release_tag.yml", "-e", f"out={out}", limit=name)
    assert res.returncode == 0, res.stdout[-3000:]
    latest, staging, v110, missing = json.loads((tmp_path / f"resolved.json.{name}").read_text())
    expected = {"latest": ("v1.2.0", False), "staging": ("v1.3.0-beta.1", True), "v1.1.0": ("v1.1.0", False)}
    for result in (latest, staging, v110):
        version, prerelease = expected[result["requested"]]
        assert result["version"] == version
        assert result["prerelease"] is prerelease
        assert result["changed"] is False
        for image in ("api", "frontend"):
            digest = registry_digest(image, version)
            assert result["images"][image]["digest"] == digest
            assert result["images"][image]["reference"] == f"{REGISTRY}/rayhu/avatar-mgmt/{image}@{digest}"
    assert latest["versions"][:3] == ["v1.3.0-beta.1", "v1.2.3", "v1.2.2"]
    assert "main" not in latest["versions"]
    assert "sha-3f2a9c1" not in latest["versions"]
    # The play keeps going (failed_when: false), so the failure shows as a message and no version.
    assert "version" not in missing
    assert "v9.9.9" in missing["msg"]
