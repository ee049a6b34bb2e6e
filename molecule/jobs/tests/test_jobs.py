# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every job template's job, run the way AWX runs it (ansible-runner on a private data directory, the inventory
AWX imports from inventories/sandbox without a vault password, the vault password answered on its prompt, the
collection installed from its artifact), against the sandbox production server. Ordered: each test builds on the
last. Each checks what the host runs and records, the job's rc and status, and the set_stats a workflow reads."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
import awx_job
from avatar_testlib import DIR, INVENTORY, ROOT, STATE, leaked, ledger, registry_digest, running, vault

BACKUPS = "/var/backups/avatar-mgmt/production"
LOCK = DIR + "/.deploy.lock"
SCHEDULE = "Nightly backup (production)"

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")

# Every job's result, for the secret search at the end (AWX keeps every event of every job).
JOBS = []


@pytest.fixture(scope="module")
def awx(tmp_path_factory):
    """The job templates' common parts: the project, the imported inventory, the credentials."""
    base = tmp_path_factory.mktemp("awx")
    rc, inventory, err = awx_job.export_inventory(ROOT, "inventories/sandbox")
    assert rc == 0, err
    with open(os.path.join(ROOT, "inventories/sandbox/vault-password.txt"), encoding="utf-8") as handle:
        password = handle.read().strip()
    return awx_job.Job(
        ROOT,
        str(base),
        inventory=inventory,
        ssh_key=os.path.join(STATE, "ssh/id_ed25519"),
        vault_id="sandbox",
        vault_password=password,
        collections=awx_job.install_collection(ROOT, str(base / "collections")),
        platform_state=STATE,
    )


def launch(awx, playbook, extravars=None, **kwargs):
    kwargs.setdefault("limit", "production")
    result = awx.run("playbooks/" + playbook, extravars, **kwargs)
    JOBS.append((playbook, kwargs.get("job_id"), result))
    return result


def test_the_import_needs_no_vault_password_and_holds_no_secret():
    """AWX's inventory import of each environment, without a vault password: it succeeds, and the sandbox's
    secrets are in it only encrypted."""
    for env in ("staging", "prod", "sandbox"):
        rc, data, err = awx_job.export_inventory(ROOT, "inventories/" + env)
        assert rc == 0, f"{env}: {err[-2000:]}"
        assert data["_meta"]["hostvars"], env
    text = json.dumps(awx_job.export_inventory(ROOT, "inventories/sandbox")[1])
    for key, value in vault().items():
        if key != "vault_ghcr_username":
            assert not leaked(text, value), f"{key} is in the exported inventory in clear"


def test_deploy_job(host, awx):
    res = launch(awx, "deploy.yml", {"image_tag": "v1.2.0"}, job_id=101, user="alice")
    assert (res.rc, res.status) == (0, "successful"), res.why()
    assert running(host)["api"][1] == registry_digest("api", "v1.2.0")
    stats = res.stats["avatar_deploy"]
    assert (stats["result"], stats["version"]) == ("success", "v1.2.0"), res.stats
    last = ledger(host)["releases"][-1]
    assert (last["version"], last["operator"], str(last["job_id"])) == ("v1.2.0", "alice", "101")


def test_deploy_preview_job_changes_nothing(host, awx):
    before, book = running(host), ledger(host)
    res = launch(awx, "deploy.yml", {"image_tag": "v1.1.0"}, job_id=102, check=True, diff=True)
    assert (res.rc, res.status) == (0, "successful"), res.why()
    assert running(host) == before
    assert ledger(host) == book
    assert not host.file(LOCK).exists


def test_broken_release_job_fails_rolls_back_and_reports_it(host, awx):
    before = running(host)
    res = launch(awx, "deploy.yml", {"image_tag": "v1.2.1"}, job_id=103)
    assert (res.rc != 0, res.status) == (True, "failed"), res.why()
    stats = res.stats.get("avatar_deploy", {})
    assert stats.get("result") == "rolled_back", res.stats
    assert stats.get("running", {}).get("version", stats.get("running")) in ("v1.2.0", {"version": "v1.2.0"}), stats
    assert stats.get("stage"), stats
    assert stats.get("reason"), stats
    assert running(host)["api"][1] == before["api"][1]
    last = ledger(host)["releases"][-1]
    assert (last["version"], last["result"], str(last["job_id"])) == ("v1.2.1", "rolled_back", "103")


def test_status_and_health_jobs(host, awx):
    for job_id, book in ((104, "status.yml"), (105, "health.yml")):
        res = launch(awx, book, job_id=job_id, verbosity=3)
        assert (res.rc, res.status) == (0, "successful"), book + ": " + res.why()
        assert res.stats, book + " reports nothing a workflow can read"


def test_scheduled_backup_waits_for_a_deploy_then_runs(host, awx):
    """A deploy job holds the lock; the nightly backup job, launched by its schedule meanwhile, waits for it and
    then backs up; the manifest names the schedule and the job."""
    deploy = {}

    def run_deploy():
        deploy["res"] = launch(awx, "deploy.yml", {"image_tag": "v1.1.0"}, job_id=106, user="bob")

    thread = threading.Thread(target=run_deploy)
    thread.start()
    deadline = time.monotonic() + 120
    while not host.file(LOCK).exists and time.monotonic() < deadline:
        time.sleep(0.5)
    assert host.file(LOCK).exists, "the deploy job never took the lock"
    res = launch(awx, "backup.yml", job_id=107, schedule=SCHEDULE)
    thread.join(600)
    assert (deploy["res"].rc, deploy["res"].status) == (0, "successful"), deploy["res"].why()
    assert (res.rc, res.status) == (0, "successful"), res.why()
    newest = sorted(host.check_output(f"sudo ls {BACKUPS}").split())[-1]
    manifest = json.loads(host.check_output(f"sudo cat {BACKUPS}/{newest}/manifest.json"))
    assert manifest["operator"] == "schedule:" + SCHEDULE, manifest
    assert str(manifest["job_id"]) == "107", manifest
    assert manifest["release"]["version"] == "v1.1.0", "the backup ran before the deploy ended"
    assert res.stats["avatar_backup"]["result"] == "success", res.stats


def test_the_nightly_timer_service_command_backs_up(host, tmp_path):
    """Without AWX: the command of contrib/systemd's avatar-backup@sandbox.service, read from the unit and run as
    systemd would run it here (its environment, the vault password from the credential folder), restricted to this
    scenario's one server (-e target=production: the sandbox's staging server is not up here)."""
    spec = importlib.util.spec_from_file_location(
        "systemd_units", os.path.join(ROOT, "tests/unit/test_systemd_units.py")
    )
    units = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(units)
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    shutil.copy(os.path.join(ROOT, "inventories/sandbox/vault-password.txt"), credentials / "vault-pass")
    argv, env = units._exec_start("sandbox", credentials)
    env["AVATAR_PLATFORM_STATE"] = STATE
    # systemd gives the run its user's home (/home/avatar-ops): a short one here too, since ssh's ControlPath
    # (~/.ansible/cp/...) must fit a Unix socket path (108 bytes), which pytest's tmp_path does not.
    home = tempfile.mkdtemp(prefix="h", dir="/tmp")
    env["HOME"] = home
    before = set(host.check_output(f"sudo ls {BACKUPS}").split())
    try:
        proc = subprocess.run(
            [*argv, "-e", "target=production"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (new,) = set(host.check_output(f"sudo ls {BACKUPS}").split()) - before
    manifest = json.loads(host.check_output(f"sudo cat {BACKUPS}/{new}/manifest.json"))
    assert manifest["operator"] == "schedule:avatar-backup@sandbox", manifest
    assert manifest["verification"]["result"] == "ok", manifest


def test_rollback_job(host, awx):
    target = next(r["id"] for r in reversed(ledger(host)["releases"]) if r["version"] == "v1.2.0")
    res = launch(awx, "rollback.yml", {"rollback_to": target}, job_id=108)
    assert (res.rc, res.status) == (0, "successful"), res.why()
    assert running(host)["api"][1] == registry_digest("api", "v1.2.0")
    assert res.stats["avatar_rollback"]["result"] == "success", res.stats


def test_restore_job(host, awx):
    marker = "jobs-restore-marker"
    host.run(f"sudo touch /opt/deploy-avatar-prod/directus/uploads/{marker}")
    res = launch(awx, "restore.yml", {"backup_id": "latest", "confirm_restore": "production"}, job_id=109)
    assert (res.rc, res.status) == (0, "successful"), res.why()
    assert not host.file(f"/opt/deploy-avatar-prod/directus/uploads/{marker}").exists
    assert res.stats["avatar_restore"]["result"] == "success", res.stats


def test_restore_job_without_confirmation_is_refused(host, awx):
    before = running(host)
    res = launch(awx, "restore.yml", {"backup_id": "latest", "confirm_restore": ""}, job_id=110)
    assert (res.rc != 0, res.status) == (True, "failed"), res.why()
    assert running(host) == before


def test_unlock_job_removes_a_lock_left_behind_and_nothing_else(host, awx):
    """A lock whose run is gone (taken by an ansible run that has ended): the unlock job removes it, leaves the
    stack as it was, and says whose lock it was; a second unlock job finds none."""
    before = running(host)
    taken = subprocess.run(
        [
            os.path.join(ROOT, ".venv/bin/ansible"),
            "-i",
            INVENTORY,
            "sandbox-prod-1",
            "-m",
            "avatar_mgmt.ops.deploy_lock",
            "-a",
            f"path={LOCK} state=present holder=killed-run action=deploy version=v9.9.9",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert host.file(LOCK).exists
    res = launch(awx, "unlock.yml", job_id=111)
    assert (res.rc, res.status) == (0, "successful"), res.why()
    assert not host.file(LOCK).exists
    assert "held by killed-run" in res.stdout, res.why()
    assert res.stats["avatar_unlock"]["sandbox-prod-1"]["removed"] is True, res.stats
    assert running(host) == before
    again = launch(awx, "unlock.yml", job_id=112)
    assert (again.rc, again.status) == (0, "successful"), again.why()
    assert "nothing to remove" in again.stdout, again.why()


def test_no_secret_in_any_job_event():
    """AWX stores every event of every job: no vault value appears in any of them."""
    assert len(JOBS) >= 9
    secrets = {k: v for k, v in vault().items() if k != "vault_ghcr_username"}
    for playbook, job_id, res in JOBS:
        text = res.raw_events() + res.stdout
        for key, value in secrets.items():
            assert not leaked(text, value), f"{key} is in the events of job {job_id} ({playbook})"
