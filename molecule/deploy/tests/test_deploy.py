# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lifecycle on a real server, checked on the host (ordered: each test builds on the last)."""

import json
import os
import re
import subprocess
import sys
import tempfile

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import (
    DIR,
    INVENTORY,
    PLATFORM,
    PROJECT,
    STATE,
    container_env,
    leaked,
    ledger,
    playbook,
    playbook_notified,
    registry_digest,
    running,
    server,
    vault,
)

BACKUPS = "/var/backups/avatar-mgmt/production"

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")


def test_first_release_runs_registry_digests(host):
    now = running(host)
    assert set(now) == {"db", "directus", "api", "frontend", "proxy"}
    assert now["api"][1] == registry_digest("api", "v1.1.0")
    assert now["frontend"][1] == registry_digest("frontend", "v1.1.0")


def test_upgrade_recreates_only_release_services(host):
    before = running(host)
    res, events = playbook_notified("deploy.yml", "-e", "image_tag=v1.2.0")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    after = running(host)
    assert after["api"][1] == registry_digest("api", "v1.2.0")
    assert after["frontend"][1] == registry_digest("frontend", "v1.2.0")
    for svc in ("db", "directus", "proxy"):
        assert after[svc][0] == before[svc][0], svc + " was recreated"
    assert after["api"][0] != before["api"][0]
    book = ledger(host)
    cur = next(r for r in book["releases"] if r["id"] == book["current"])
    assert cur["version"] == "v1.2.0"
    assert cur["result"] == "success"
    assert cur["images"]["api"]["digest"] == after["api"][1]
    # What set_stats reports (avatar_deploy), as the notification carries it.
    (event,) = events
    assert (event["action"], event["result"], event["version"]) == ("deploy", "success", "v1.2.0")
    assert event["running"] == {"version": "v1.2.0", "release": book["current"]}
    assert event["digests"]["api"] == after["api"][1]


def test_same_deploy_reports_no_change(host):
    before = running(host)
    releases = len(ledger(host)["releases"])
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.0")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "changed=0" in res.stdout.split("PLAY RECAP")[-1]
    assert running(host) == before
    assert len(ledger(host)["releases"]) == releases


def test_a_container_changed_by_hand_is_reported_and_brought_back(host):
    """An operator recreates api by hand from an edited env file, then puts the file's bytes back: every file is
    as the release wants it and the ledger's digests still run, so only compose's view of the container shows the
    change. A re-run must not take that for a no-op: it names the drift, recreates api from the files (the hand
    edit gone), leaves the other services alone, and the run after it is a no-op again."""
    env_file = f"{DIR}/.env.prod.api"
    compose = f"docker compose -p {PROJECT} -f {DIR}/docker-compose.prod.yml"
    kept = host.file(env_file).sha256sum
    edit = host.run(
        f"sudo cp -p {env_file} /root/api-env.keep && echo HAND_EDIT=yes | sudo tee -a {env_file} >/dev/null"
        f" && sudo {compose} up -d --no-deps api && sudo cp -p /root/api-env.keep {env_file}"
        " && sudo rm -f /root/api-env.keep"
    )
    assert edit.rc == 0, edit.stderr
    assert host.file(env_file).sha256sum == kept
    assert container_env(host, "api").get("HAND_EDIT") == "yes"
    before = running(host)
    releases = len(ledger(host)["releases"])

    res = playbook("deploy.yml", "-e", "image_tag=v1.2.0")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "What runs drifted from the files on the host (changed outside this collection?): api;" in out, out[-3000:]
    assert "changed=0" not in out.split("PLAY RECAP")[-1]
    after = running(host)
    assert after["api"][0] != before["api"][0], "the drifted api container was left as it was"
    assert after["api"][1] == registry_digest("api", "v1.2.0")
    assert "HAND_EDIT" not in container_env(host, "api")
    for svc in ("db", "directus", "frontend", "proxy"):
        assert after[svc][0] == before[svc][0], svc + " was recreated for a drift of api"
    assert len(ledger(host)["releases"]) == releases + 1, "the run that changed a container recorded nothing"

    again = playbook("deploy.yml", "-e", "image_tag=v1.2.0")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1]
    assert "drifted" not in again.stdout
    assert running(host) == after


def test_check_mode_changes_nothing(host):
    before = running(host)
    compose = host.file(DIR + "/docker-compose.prod.yml").sha256sum
    res = playbook("deploy.yml", "-e", "image_tag=v1.1.0", "--check", "--diff")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Would recreate 2 service(s)" in res.stdout
    assert registry_digest("api", "v1.1.0") in res.stdout
    assert running(host) == before
    assert host.file(DIR + "/docker-compose.prod.yml").sha256sum == compose
    assert not host.file(DIR + "/.deploy.lock").exists


def test_unhealthy_release_is_rolled_back(host):
    good = running(host)
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.1")
    assert res.returncode != 0
    assert "Rolled back automatically: v1.2.0" in res.stdout + res.stderr
    now = running(host)
    assert now["api"][1] == good["api"][1] == registry_digest("api", "v1.2.0")
    assert now["db"][0] == good["db"][0]
    book = ledger(host)
    last = book["releases"][-1]
    assert last["version"] == "v1.2.1"
    assert last["result"] == "rolled_back"
    assert next(r for r in book["releases"] if r["id"] == book["current"])["version"] == "v1.2.0"
    assert not host.file(DIR + "/.deploy.lock").exists


def test_release_that_cannot_start_is_rolled_back(host):
    """v1.2.2's api has no entrypoint: its new container, started beside the running one, never becomes
    healthy; it is removed, the running api keeps its container and the run says so."""
    good = running(host)
    res, events = playbook_notified("deploy.yml", "-e", "image_tag=v1.2.2")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "failed at the switch stage" in out, out[-3000:]
    assert "Rolled back automatically: v1.2.0" in out
    assert "The running stack was not changed" not in out
    now = running(host)
    assert now["api"][1] == registry_digest("api", "v1.2.0")
    assert now["frontend"][1] == registry_digest("frontend", "v1.2.0")
    assert now["db"][0] == good["db"][0]
    assert now["api"][0] == good["api"][0]
    # api and frontend are handed over together (both change): nothing was switched for either.
    assert re.search(r"Nothing was switched for (frontend and )?api( and frontend)?", out), out[-3000:]
    book = ledger(host)
    last = book["releases"][-1]
    assert (last["version"], last["result"], last["stage"]) == ("v1.2.2", "rolled_back", "switch")
    assert next(r for r in book["releases"] if r["id"] == book["current"])["version"] == "v1.2.0"
    # The failure is reported (set_stats avatar_deploy, and the notification) before the run fails.
    (event,) = events
    assert (event["action"], event["result"], event["stage"], event["version"]) == (
        "deploy",
        "rolled_back",
        "switch",
        "v1.2.2",
    )
    assert event["running"] == {"version": "v1.2.0", "release": book["current"]}
    assert "api" in event["reason"], event["reason"]
    assert not host.file(DIR + "/.deploy.lock").exists


def test_production_refuses_a_prerelease(host):
    """Production takes no pre-release unless allowed: refused on the control node, the host untouched."""
    before = running(host)
    releases = ledger(host)["releases"]
    res = playbook("deploy.yml", "-e", "image_tag=v1.3.0-beta.1")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "the pre-release v1.3.0-beta.1" in out, out[-3000:]
    assert "-e compose_deploy_allow_prerelease=true" in out
    assert "No server was contacted; nothing was changed." in out
    assert running(host) == before
    assert ledger(host)["releases"] == releases
    assert not host.file(DIR + "/.deploy.lock").exists


def test_concurrent_deploy_is_refused(host):
    lock = json.dumps(
        {"holder": "alice@laptop", "since": "2026-11-28T10:00:00Z", "action": "deploy", "version": "v1.1.0"}
    )
    host.run(f"printf '%s' '{lock}' > {DIR}/.deploy.lock")
    # Not logged in to the registry, and a release whose images are not on the host: a run
    # that logged in before taking the lock would leave a credential behind.
    host.run("docker logout ghcr.avatar.test")
    login_before = host.run("cat ~/.docker/config.json").stdout
    assert "ghcr.avatar.test" not in login_before
    try:
        before = running(host)
        res = playbook("deploy.yml", "-e", "image_tag=v1.3.0-beta.1", "-e", "compose_deploy_allow_prerelease=true")
        assert res.returncode != 0
        out = res.stdout + res.stderr
        assert "alice@laptop" in out
        assert "2026-11-28T10:00:00Z" in out
        assert "v1.1.0" in out
        assert running(host) == before
        assert host.run("cat ~/.docker/config.json").stdout == login_before  # the login was not touched
        assert host.file(DIR + "/.deploy.lock").exists  # someone else's lock stays
        again = playbook("deploy.yml", "-e", "image_tag=v1.2.0", "-e", "compose_deploy_break_lock=true")
        assert again.returncode == 0, again.stdout[-3000:]
    finally:
        host.run(f"rm -f {DIR}/.deploy.lock")
    assert not host.file(DIR + "/.deploy.lock").exists


# $, #, quotes, spaces, a backslash and a Jinja expression: Compose must not interpolate the
# first, the env file must not cut at the second, and Ansible must not template the last
# (the vars file tags it !unsafe, as a vault value is written before it is encrypted; a !vault value
# is never templated either).
TRICKY = 'Kx$Abc123#tail \'q\' "dq" sp \\ {{ not_a_var }} ${HOME}'


def _tricky_vars():
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        handle.write("---\nvault_jwt_secret: !unsafe " + json.dumps(TRICKY) + "\n")
    return handle.name


def test_env_only_change_recreates_only_its_services_and_rollback_restores_it(host):
    """A new JWT_SECRET (the api env file only) is a change: reported by key, backed up first, api
    recreated with the secret byte for byte, nothing else touched; rollback.yml to the release before
    restores the env file that release ran with, even though the variables still hold the new value."""
    original = vault()["vault_jwt_secret"]
    # Where the test before leaves the stack (its last run deploys v1.2.0, lock broken and gone): no run to get there.
    assert running(host)["api"][1] == registry_digest("api", "v1.2.0")
    assert not host.file(DIR + "/.deploy.lock").exists
    before = running(host)
    book = ledger(host)
    previous = book["current"]
    assert container_env(host, "api")["JWT_SECRET"] == original
    tricky = _tricky_vars()
    try:
        res = playbook("deploy.yml", "-e", "image_tag=v1.2.0", "-e", "@" + tricky)
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        assert "env file .env.prod.api (keys JWT_SECRET; used by api)" in out, out[-3000:]
        assert not leaked(out, TRICKY), "the new secret was printed"
        after = running(host)
        assert after["api"][0] != before["api"][0], "api was not recreated"
        for svc in ("db", "directus", "frontend", "proxy"):
            assert after[svc][0] == before[svc][0], svc + " was recreated by an api env change"
        assert container_env(host, "api")["JWT_SECRET"] == TRICKY
        book = ledger(host)
        cur = next(r for r in book["releases"] if r["id"] == book["current"])
        assert cur["id"] != previous
        assert cur["result"] == "success"
        assert cur["backup"], "no pre-deploy backup for an env-only change"
        kept = f"{DIR}/releases/{cur['id']}/.env.prod.api"
        assert host.file(kept).mode == 0o600
        assert host.file(kept).sha256sum == host.file(f"{DIR}/.env.prod.api").sha256sum
        assert cur["env_checksums"][".env.prod.api"] == host.file(kept).sha256sum
        assert (
            cur["env_checksums"][".env.prod.api"]
            != next(r for r in book["releases"] if r["id"] == previous)["env_checksums"][".env.prod.api"]
        )

        # The variables still say TRICKY: the rollback must use the env file kept with the release.
        mid = running(host)
        back = playbook("rollback.yml", "-e", "rollback_to=" + previous, "-e", "@" + tricky)
        out = back.stdout + back.stderr
        assert back.returncode == 0, out[-3000:]
        assert "keys JWT_SECRET" in out
        assert not leaked(out, TRICKY)
        assert not leaked(out, original)
        assert container_env(host, "api")["JWT_SECRET"] == original
        now = running(host)
        assert now["api"][0] != mid["api"][0]
        for svc in ("db", "directus", "frontend", "proxy"):
            assert now[svc][0] == mid[svc][0], svc + " was recreated by the rollback of an api env change"
        assert host.file(f"{DIR}/.env.prod.api").mode == 0o600
        book = ledger(host)
        cur = next(r for r in book["releases"] if r["id"] == book["current"])
        assert (cur["action"], cur["source"]) == ("rollback", previous)
    finally:
        os.unlink(tricky)


def test_env_files_private_and_secrets_never_printed(host):
    for name in (".env.prod.api", ".env.prod.directus"):
        f = host.file(f"{DIR}/{name}")
        assert f.mode == 0o600
        assert f.user == "deploy"
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.0", "-vvv")
    assert res.returncode == 0, res.stdout[-3000:]
    out = res.stdout + res.stderr
    for key, value in vault().items():
        if key != "vault_ghcr_username":
            assert not leaked(out, value), key + " leaked into -vvv output"


def cut_registry():
    """The server loses the registry (the other scenarios' servers, running at the same time, keep it)."""
    subprocess.run(["bash", PLATFORM, "cut-registry", server()["name"]], check=True)


def restore_registry():
    subprocess.run(["bash", PLATFORM, "restore-registry", server()["name"]], check=True)


def test_registry_down_aborts_new_deploy(host):
    """The server cannot reach the registry (release_tag on the control node still resolves the release; a
    registry the control node cannot reach is release_tag's own test): the deploy stops before anything runs."""
    before = running(host)
    cut_registry()
    try:
        res = playbook("deploy.yml", "-e", "image_tag=v1.3.0-beta.1", "-e", "compose_deploy_allow_prerelease=true")
        assert res.returncode != 0
        assert "ghcr.avatar.test" in res.stdout + res.stderr
        assert running(host) == before
        assert not host.file(DIR + "/.deploy.lock").exists
    finally:
        restore_registry()


def test_rollback_works_with_registry_down(host):
    """rollback.yml uses the ledger and the images kept on the host: no registry needed."""
    v110 = registry_digest("api", "v1.1.0")
    v120 = registry_digest("api", "v1.2.0")
    assert running(host)["api"][1] == v120
    before = running(host)
    cut_registry()
    try:
        res = playbook("rollback.yml", "-e", "rollback_to=v1.1.0")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        now = running(host)
        assert now["api"][1] == v110
        assert now["db"][0] == before["db"][0]
        book = ledger(host)
        cur = next(r for r in book["releases"] if r["id"] == book["current"])
        assert cur["version"] == "v1.1.0"
        assert cur["action"] == "rollback"
        assert cur["result"] == "success"
        assert cur["source"]
        assert next(r for r in book["releases"] if r["id"] == cur["source"])["version"] == "v1.1.0"
        # With no target: the release before the one that runs now. v1.1.0 was the first release
        # here, so there is none; a rollback never goes forward again by itself.
        stay = running(host)
        none = playbook("rollback.yml")
        assert none.returncode != 0
        assert "No earlier successful release" in none.stdout + none.stderr, none.stdout[-3000:]
        assert running(host) == stay
        # Forward again only when asked for by name.
        back = playbook("rollback.yml", "-e", "rollback_to=v1.2.0")
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
        assert running(host)["api"][1] == v120
    finally:
        restore_registry()
    assert not host.file(DIR + "/.deploy.lock").exists


def backups(host):
    """The backup ids on the host (folders of the production backup dir)."""
    listing = host.run(f"sudo ls -1 {BACKUPS}")
    return sorted(n for n in listing.stdout.split() if not n.startswith("."))


def test_rollback_goes_back_never_forward_and_takes_no_backup(host):
    """After the rollbacks above v1.2.0 runs (a rollback to it). rollback.yml with no target goes to
    the release before it (v1.1.0) and says so, a second one finds nothing earlier instead of going
    forward again; neither takes a backup (production's default is one before every deploy)."""
    assert running(host)["api"][1] == registry_digest("api", "v1.2.0")
    taken = backups(host)
    res = playbook("rollback.yml")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "back from v1.2.0" in out
    assert "to v1.1.0 (release" in out
    assert running(host)["api"][1] == registry_digest("api", "v1.1.0")
    book = ledger(host)
    cur = next(r for r in book["releases"] if r["id"] == book["current"])
    assert (cur["version"], cur["action"], cur["result"]) == ("v1.1.0", "rollback", "success")
    assert not cur.get("backup")
    assert backups(host) == taken, "a rollback took a backup"
    again = playbook("rollback.yml")
    assert again.returncode != 0
    assert "No earlier successful release" in again.stdout + again.stderr, again.stdout[-3000:]
    assert running(host)["api"][1] == registry_digest("api", "v1.1.0")
    assert backups(host) == taken
    fwd = playbook("rollback.yml", "-e", "rollback_to=v1.2.0")
    assert fwd.returncode == 0, fwd.stdout[-3000:]
    assert backups(host) == taken


def test_first_managed_deploy_onto_existing_data_backs_it_up(host):
    """A project that runs and has its database but no ledger (deployed before the collection managed
    it): the first deploy takes the pre-deploy backup before switching."""
    host.run(f"sudo mv {DIR}/releases {DIR}/releases.aside")
    try:
        taken = backups(host)
        # No pruning by this one-entry ledger: the images of the releases set aside stay.
        res = playbook("deploy.yml", "-e", "image_tag=v1.1.0", "-e", "compose_deploy_prune_images=false")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        # Retention keeps the newest backup of a day, so compare names, not counts.
        new = set(backups(host)) - set(taken)
        assert len(new) == 1, (taken, new)
        book = ledger(host)
        assert len(book["releases"]) == 1
        assert book["releases"][0]["backup"] in new
    finally:
        host.run(f"sudo rm -rf {DIR}/releases && sudo mv {DIR}/releases.aside {DIR}/releases")
    # Back to the recorded release (the compose file on disk says v1.1.0, the ledger v1.2.0).
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.0")
    assert res.returncode == 0, res.stdout[-3000:]


def test_every_playbook_keeps_secrets_out_of_its_output(host):
    """Every playbook an operator runs, at -vvv, with a backup ping URL that carries a token: no vault
    value (in any of the forms output escapes it to) and not the ping token appears."""
    ping_token = "ping-token-5d1f0c3e9a7b"
    ping = ["-e", f"backup_ping_url=http://127.0.0.1:9/{ping_token}"]
    current = ledger(host)["current"]
    # The host's journal from here on: every module logs its invocation there ("Invoked with ...").
    since = host.run("date +%s").stdout.strip()
    runs = [
        ("bootstrap.yml",),
        ("deploy.yml", "-e", "image_tag=v1.2.0"),
        ("rollback.yml", "-e", "rollback_to=" + current),
        ("status.yml",),
        ("health.yml",),
        ("proxy.yml",),
        ("backup.yml", *ping),
        ("restore.yml", "-e", "backup_list=true"),
        ("restore.yml", "-e", "backup_id=latest", "-e", "confirm_restore=production", *ping),
    ]
    secrets = {k: v for k, v in vault().items() if k != "vault_ghcr_username"}
    for args in runs:
        res = playbook(*args, "-vvv")
        out = res.stdout + res.stderr
        assert res.returncode == 0, " ".join(args) + ": " + out[-3000:]
        for key, value in secrets.items():
            assert not leaked(out, value), f"{key} leaked into the -vvv output of {' '.join(args)}"
        assert ping_token not in out, "the backup ping URL was printed by " + " ".join(args)
    assert running(host)["api"][1] == registry_digest("api", "v1.2.0")
    journal = host.run(f"sudo journalctl --no-pager -o cat --since @{since}")
    assert journal.rc == 0, journal.stderr
    # Not a vacuous check: the modules of these runs logged their invocations.
    assert journal.stdout.count("Invoked with") > 20, journal.stdout[-2000:]
    for key, value in secrets.items():
        assert not leaked(journal.stdout, value), f"{key} leaked into the host's journal (a module's invocation log)"
    # The proxy's TLS private key (uploaded to NPM by proxy.yml and deploy.yml) is no vault value: checked by its lines.
    with open(os.path.join(STATE, "proxy", "tls.key"), encoding="ascii") as handle:
        body = [line for line in handle.read().splitlines() if line and not line.startswith("-----")]
    assert body
    assert not [line for line in body if line in journal.stdout], "the TLS private key leaked into the host's journal"
