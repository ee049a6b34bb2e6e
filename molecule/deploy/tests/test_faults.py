# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fault scenarios on the real server, after test_deploy.py (which leaves v1.2.0 running, no lock).
Each test checks what runs (container ids, image digests), the ledger and the lock, and leaves
v1.2.0 running with no lock for the next one."""

import os
import sys

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import DIR, INVENTORY, ledger, playbook, registry_digest, running

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")


def _current(book):
    return next(r for r in book["releases"] if r["id"] == book["current"])


def test_crash_looping_release_fails_the_hold_and_is_rolled_back(host):
    """v1.2.3's api passes every check, then exits 4 s after each start (Docker restarts it):
    each check passes once, so only the hold catches it."""
    good = running(host)
    assert good["api"][1] == registry_digest("api", "v1.2.0")
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.3")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert "in the hold that followed" in out, out[-3000:]
    assert "Rolled back automatically: v1.2.0" in out, out[-3000:]
    now = running(host)
    assert now["api"][1] == registry_digest("api", "v1.2.0")
    assert now["frontend"][1] == registry_digest("frontend", "v1.2.0")
    assert now["db"][0] == good["db"][0]
    book = ledger(host)
    last = book["releases"][-1]
    assert (last["version"], last["result"], last["stage"]) == ("v1.2.3", "rolled_back", "verify")
    assert _current(book)["version"] == "v1.2.0"
    assert not host.file(DIR + "/.deploy.lock").exists
