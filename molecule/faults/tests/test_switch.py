# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The handover switch under load (after test_faults.py and test_proxy.py): an upgrade, a rollback and the
automatic rollback of a release whose api cannot start lose no request at 40 requests/s through the real NPM."""

import json
import os
import re
import sys

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import (
    DIR,
    DOMAINS,
    INVENTORY,
    PROJECT,
    Load,
    ledger,
    npm_all_upstreams,
    playbook,
    registry_digest,
    running,
    server,
)

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")

HTTP_PORT = server()["http_port"]  # the server's port 80 on the control node
FIGURES = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".cache", "switch-under-load.json")


def _served_version(host):
    api = json.loads(host.check_output(f"curl -s -H 'Host: {DOMAINS['api']}' http://127.0.0.1/api/version"))
    front = json.loads(host.check_output(f"curl -s -H 'Host: {DOMAINS['frontend']}' http://127.0.0.1/version.json"))
    return api["backend"]["version"], front["version"]


def _under_load(name, *args):
    loads = [Load(DOMAINS["api"], "/health", HTTP_PORT), Load(DOMAINS["frontend"], "/", HTTP_PORT)]
    for load in loads:
        load.__enter__()
    try:
        res = playbook(*args)
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    figures = {}
    if os.path.exists(FIGURES):
        with open(FIGURES) as f:
            figures = json.load(f)
    figures[name] = [{"ok": x.ok, "failed": len(x.failures), "worst_s": round(x.worst, 3)} for x in loads]
    with open(FIGURES, "w") as f:
        json.dump(figures, f, indent=1)
    return res, loads


def _no_request_lost(loads):
    for load in loads:
        assert load.failures == [], (load.url, load.failures[:5])
        assert load.ok >= 100, load.ok


def _current(host):
    book = ledger(host)
    return next(r for r in book["releases"] if r["id"] == book["current"]), book


def test_an_upgrade_hands_over_without_losing_a_request(host):
    before = running(host)
    running_version = _served_version(host)[0]
    target = "v1.1.0" if running_version != "v1.1.0" else "v1.2.0"
    res, loads = _under_load("deploy", "deploy.yml", "-e", f"image_tag={target}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    _no_request_lost(loads)
    after = running(host)
    for svc in ("api", "frontend"):
        assert after[svc][0] != before[svc][0], svc + " was not switched"
        assert after[svc][1] == registry_digest(svc, target)
    for svc in ("db", "directus", "proxy"):
        assert after[svc][0] == before[svc][0], svc + " was recreated"
    assert _served_version(host) == (target, target)
    assert npm_all_upstreams(host) == sorted(["api", "frontend", "directus"])  # back on the service names
    cur = _current(host)[0]
    assert (cur["version"], cur["result"]) == (target, "success")
    again = playbook("deploy.yml", "-e", f"image_tag={target}")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1]
    assert running(host) == after


def test_a_rollback_hands_back_without_losing_a_request(host):
    cur, book = _current(host)
    before = running(host)
    earlier = next(r for r in reversed(book["releases"]) if r["result"] == "success" and r["version"] != cur["version"])
    res, loads = _under_load("rollback", "rollback.yml", "-e", f"rollback_to={earlier['version']}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    _no_request_lost(loads)
    after = running(host)
    assert after["api"][0] != before["api"][0]
    assert after["api"][1] == earlier["images"]["api"]["digest"]
    assert after["db"][0] == before["db"][0]
    assert _served_version(host) == (earlier["version"], earlier["version"])
    now = _current(host)[0]
    assert (now["version"], now["action"], now["result"]) == (earlier["version"], "rollback", "success")


def test_a_release_whose_api_cannot_start_changes_nothing_and_loses_no_request(host):
    """v1.2.2's api has a broken entrypoint: its new container never becomes healthy, so the proxy never moves,
    the new container is removed, the old one keeps serving (same container id) and the run says so."""
    good = _current(host)[0]
    before = running(host)
    res, loads = _under_load("broken", "deploy.yml", "-e", "image_tag=v1.2.2")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    _no_request_lost(loads)
    assert re.search(r"Nothing was switched for (frontend and )?api( and frontend)?", out), out[-3000:]
    assert f"Rolled back automatically: {good['version']}" in out, out[-3000:]
    assert running(host) == before
    assert _served_version(host) == (good["version"], good["version"])
    assert npm_all_upstreams(host) == sorted(["api", "frontend", "directus"])
    now, book = _current(host)
    assert now["id"] == good["id"]
    assert (book["releases"][-1]["version"], book["releases"][-1]["result"]) == ("v1.2.2", "rolled_back")


def test_a_failure_inside_the_automatic_rollback_is_recorded_and_reported(host):
    """The rollback target's recorded compose file is gone (set aside by hand): v1.2.1 (never healthy) fails,
    the rollback fails too; the ledger says failed_rollback and the run gives both errors and what runs now."""
    cur = _current(host)[0]
    before = running(host)
    path = f"{DIR}/releases/{cur['id']}/docker-compose.prod.yml"
    host.check_output(f"sudo mv {path} {path}.aside")
    try:
        res = playbook("deploy.yml", "-e", "image_tag=v1.2.1")
    finally:
        host.check_output(f"sudo mv {path}.aside {path}")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"the automatic rollback to {cur['version']} failed too" in out, out[-3000:]
    # The first error:
    assert re.search(r"Nothing was switched for (frontend and )?api( and frontend)?", out), out[-3000:]
    assert path in out  # the second: what the rollback could not read
    assert f"Runs now: {PROJECT}-" in out
    assert "Recorded as failed_rollback" in out
    last = ledger(host)["releases"][-1]
    assert (last["version"], last["result"]) == ("v1.2.1", "failed_rollback")
    assert "Rollback to" in last["message"]
    assert _current(host)[0]["id"] == cur["id"]
    # The handover had undone itself: the same containers serve.
    assert running(host) == before
    assert _served_version(host) == (cur["version"], cur["version"])


def _drop_reference(host, ref):
    """Remove an image's reference by hand, as an operator's `docker image prune -a` or `docker rmi -f` would
    (the running container keeps its image, but the host no longer has it under the ledger's reference)."""
    host.check_output(f"docker rmi -f {ref} >/dev/null")
    assert not host.run(f"docker image inspect {ref}").succeeded


def test_the_rollback_targets_missing_images_are_pulled_back_before_the_switch(host):
    """The images of the release that runs (the automatic rollback's target) are gone from the host, and the
    host is logged out of the registry. A deploy of v1.2.2 (api cannot start) logs in, pulls them back before
    switching, fails and is rolled back onto them. (The refusal when they cannot be pulled cannot be staged
    here: the running containers keep their images' content, and Docker restores a reference pulled by digest
    from that content without asking the registry, as tried with the server cut off from it.)"""
    cur = _current(host)[0]
    ref = cur["images"]["api"]["reference"]
    host.run("docker logout ghcr.avatar.test")
    _drop_reference(host, ref)
    before = running(host)
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.2")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"Rolled back automatically: {cur['version']}" in out, out[-3000:]
    assert host.run(f"docker image inspect {ref}").succeeded, "the rollback target's image was not pulled back"
    assert running(host) == before
    assert _current(host)[0]["id"] == cur["id"]

    # Leave the host as it was: the reference back for the tests that follow.
    assert playbook("deploy.yml", "-e", f"image_tag={cur['version']}").returncode == 0
    assert host.run(f"docker image inspect {ref}").succeeded
