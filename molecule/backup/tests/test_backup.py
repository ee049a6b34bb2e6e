# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backups proven on a real server: rows and files survive losing the database and
the uploads; corruption is caught; restore needs its confirmation; retention keeps
the right backups. Ordered: each test builds on the last."""

import json
import os
import sys
import time
import urllib.request

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import DIR, INVENTORY, PROJECT, playbook, vault

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")

BACKUPS = "/var/backups/avatar-mgmt/production"
PROXY = "http://127.0.0.1:8151"
CMS = "directus.daidai.amis.hk"
COMPOSE = f"docker compose -p {PROJECT} -f {DIR}/docker-compose.prod.yml"
NAMES = ["ada", "grace", "linus"]
FILE = b"avatar model bytes \x00\x01\x02 " * 100


def cms(path, data=None, content_type="application/json"):
    """Talk to the stand-in Directus through the proxy, as an operator's client would."""
    req = urllib.request.Request(
        PROXY + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={
            "Host": CMS,
            "Content-Type": content_type,
            "Authorization": "Bearer " + vault()["vault_directus_admin_token"],
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def rows():
    return sorted(r["name"] for r in json.loads(cms("/items/avatars"))["data"])


def wait_cms(deadline=90):
    end = time.monotonic() + deadline
    while True:
        try:
            return rows()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(1)


def wait_directus(host, deadline=120):
    """Directus answers inside the stack (not through the proxy)."""
    end = time.monotonic() + deadline
    probe = f"{COMPOSE} exec -T directus wget -q -O - http://127.0.0.1:8055/server/health"
    while not host.run(probe).succeeded:
        assert time.monotonic() < end, "Directus did not come up"
        time.sleep(2)


def backups(host):
    return sorted(host.check_output(f"sudo ls {BACKUPS}").split())


def manifest(host, backup_id):
    return json.loads(host.check_output(f"sudo cat {BACKUPS}/{backup_id}/manifest.json"))


def test_backup_restores_rows_and_files_after_loss(host):
    for name in NAMES:
        cms("/items/avatars", json.dumps({"name": name}).encode())
    cms("/files?filename=model.glb", FILE, "application/octet-stream")
    assert rows() == NAMES

    res = playbook("backup.yml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    (backup_id,) = backups(host)
    info = manifest(host, backup_id)
    assert info["row_counts"]["public.avatars"] == 3
    assert info["verification"]["result"] == "ok"
    assert info["verification"]["restored_row_counts"]["public.avatars"] == 3
    assert info["release"]["version"] == "v1.2.0"
    for name in ("db.dump", "directus.tar.gz", "proxy.tar.gz", "manifest.json"):
        f = host.file(f"{BACKUPS}/{backup_id}/{name}")
        assert f.mode == 0o600
    assert not host.run(f"sudo ls -d {BACKUPS}/.tmp-*").succeeded
    # The proxy's state is archived, its logs (written while tar reads) are not: only their folder.
    archived = host.check_output(f"sudo tar -tzf {BACKUPS}/{backup_id}/proxy.tar.gz").split()
    assert any(n.startswith("jc21/data/nginx/proxy_host/") and n.endswith(".conf") for n in archived), archived
    assert [n for n in archived if n.startswith("jc21/data/logs")] == ["jc21/data/logs/"], archived

    proxy_hosts = host.check_output(f"sudo sh -c 'cd {DIR}/jc21/data/nginx/proxy_host && sha256sum *.conf'")
    # Lose everything: the database volume, the uploads and the proxy's data (its hosts).
    host.check_output(f"{COMPOSE} down -v")
    host.check_output(f"sudo find {DIR}/directus/uploads {DIR}/jc21/data {DIR}/jc21/letsencrypt -mindepth 1 -delete")
    host.check_output(f"{COMPOSE} up -d")
    wait_directus(host)
    # A fresh nginx-proxy-manager knows none of the hosts: Directus is not reachable by its domain.
    try:
        rows()
        raise AssertionError("the proxy still served the Directus domain after its data was deleted")
    except (OSError, ValueError):
        pass

    res = playbook("restore.yml", "-e", "backup_id=latest", "-e", "confirm_restore=production")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert rows() == NAMES
    assert cms("/assets/model.glb") == FILE
    assert host.file(f"{DIR}/directus/uploads/model.glb").uid == 1000
    # The restored NPM serves the same hosts from the same files.
    assert host.check_output(f"sudo sh -c 'cd {DIR}/jc21/data/nginx/proxy_host && sha256sum *.conf'") == proxy_hosts
    # A safety backup of the state before the restore was taken, and labelled as such.
    safety = [b for b in backups(host) if b != backup_id]
    assert len(safety) == 1
    assert manifest(host, safety[0])["kind"] == "safety"


def test_restore_without_confirmation_changes_nothing(host):
    cms("/items/avatars", json.dumps({"name": "margaret"}).encode())
    before = backups(host)
    for confirm in ("staging", "", "yes"):
        res = playbook("restore.yml", "-e", "backup_id=latest", "-e", f"confirm_restore={confirm}")
        assert res.returncode != 0
        assert "Restore refused, nothing was changed" in res.stdout + res.stderr
    assert rows() == sorted([*NAMES, "margaret"])
    assert backups(host) == before
    assert not host.file(f"{DIR}/.deploy.lock").exists


def test_corrupted_dump_is_caught(host):
    latest = backups(host)[-1]
    host.check_output(f"sudo dd if=/dev/urandom of={BACKUPS}/{latest}/db.dump bs=1 count=64 seek=200 conv=notrunc")
    check = playbook("backup.yml", "-e", f"backup_check_id={latest}")
    assert check.returncode != 0
    assert "db.dump: sha256 differs from the manifest" in check.stdout + check.stderr
    restore = playbook("restore.yml", "-e", f"backup_id={latest}", "-e", "confirm_restore=production")
    assert restore.returncode != 0
    assert f"Backup {latest} is damaged" in restore.stdout + restore.stderr
    assert rows() == sorted([*NAMES, "margaret"])
    assert not host.file(f"{DIR}/.deploy.lock").exists


def test_backup_and_restore_respect_a_deploy_lock(host):
    lock = '{"holder": "alice@laptop", "since": "2026-11-28T10:00:00Z", "action": "deploy", "version": "v1.3.0"}'
    host.run(f"printf '%s' '{lock}' > {DIR}/.deploy.lock")
    try:
        before = backups(host)
        for res in (
            playbook("backup.yml"),
            playbook("restore.yml", "-e", "backup_id=latest", "-e", "confirm_restore=production"),
        ):
            assert res.returncode != 0
            assert "alice@laptop" in res.stdout + res.stderr
        assert backups(host) == before
        assert not host.run(f"sudo ls -d {BACKUPS}/.tmp-*").succeeded
        assert rows() == sorted([*NAMES, "margaret"])
        assert host.file(f"{DIR}/.deploy.lock").content_string == lock  # someone else's lock stays as it was
    finally:
        host.run(f"rm -f {DIR}/.deploy.lock")


def test_a_failed_backup_leaves_nothing_behind(host):
    before = backups(host)
    res = playbook("backup.yml", "-e", "backup_db_service=nosuch")
    assert res.returncode != 0
    assert "left no partial backup" in res.stdout + res.stderr
    assert backups(host) == before
    assert not host.run(f"sudo ls -d {BACKUPS}/.tmp-*").succeeded
    assert not host.file(f"{DIR}/.deploy.lock").exists


def test_retention_keeps_the_right_backups(host):
    fake = ["20261101T010000Z", "20261101T020000Z", "20261102T010000Z", "20261103T010000Z"]
    for backup_id in fake + [".tmp-20261101T000000Z", "20261103T050000Z"]:
        host.check_output(f"sudo install -d -o deploy -m 0700 {BACKUPS}/{backup_id}")
    # A pre-deploy backup later on Nov 3 than that day's nightly one: it does not take the nightly's slot.
    host.check_output(f"printf '%s' '{{\"kind\": \"pre-deploy\"}}' | sudo tee {BACKUPS}/20261103T050000Z/manifest.json")
    before = set(backups(host))
    res = playbook(
        "backup.yml",
        *("-e", "backup_keep_daily=3", "-e", "backup_keep_weekly=0", "-e", "backup_keep_monthly=0"),
        *("-e", "backup_keep_other=0"),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    after = backups(host)
    (new,) = set(after) - before
    # Newest scheduled backup of each of the last 3 days with one: today (the new one), Nov 3, Nov 2;
    # no pre-deploy or safety backup (backup_keep_other=0).
    assert after == sorted([new, "20261102T010000Z", "20261103T010000Z"])
    assert host.file(f"{BACKUPS}/.tmp-20261101T000000Z").is_directory  # being written: never touched


def test_a_corrupt_ledger_does_not_block_a_backup(host):
    """A damaged releases/index.json is reported, never blocks the nightly backup."""
    index = f"{DIR}/releases/index.json"
    saved = host.check_output(f"cat {index}")
    host.check_output(f"printf '%s' '{{\"current\": \"20261130T' > {index}")
    try:
        before = set(backups(host))
        res = playbook("backup.yml", "-e", "backup_keep_daily=30")
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        assert "index.json is corrupt" in out, out[-3000:]
        (new,) = set(backups(host)) - before
        info = manifest(host, new)
        assert info["verification"]["result"] == "ok"
        # Read only: the damaged file is left where it was for the operator (a deploy keeps it aside).
        assert host.check_output(f"cat {index}") == '{"current": "20261130T'
    finally:
        host.check_output(f"cat > {index} <<'JSON'\n{saved}\nJSON")


def running_services(host):
    return set(host.check_output(f"{COMPOSE} ps --services --status running").split())


def kind(host, backup_id):
    """The kind a backup's manifest records (scheduled when it names none); None without a manifest."""
    res = host.run(f"sudo cat {BACKUPS}/{backup_id}/manifest.json")
    return json.loads(res.stdout).get("kind", "scheduled") if res.succeeded else None


def last_scheduled(host):
    return [b for b in backups(host) if kind(host, b) == "scheduled"][-1]


def test_a_restore_that_fails_after_dropping_the_database_puts_the_previous_data_back(host):
    """The chosen backup's dump is cut short and its manifest made to match: the checksums pass, the
    database is dropped and pg_restore fails. The safety backup comes back by itself."""
    target = last_scheduled(host)
    folder = f"{BACKUPS}/{target}"
    cms("/items/avatars", json.dumps({"name": "katherine"}).encode())
    before = rows()
    assert "katherine" in before
    saved = "/tmp/avatar-test-saved"
    host.check_output(f"sudo install -d -m 0700 {saved} && sudo cp -p {folder}/db.dump {folder}/manifest.json {saved}/")
    try:
        size = int(host.check_output(f"sudo stat -c %s {folder}/db.dump"))
        host.check_output(f"sudo truncate -s {size * 6 // 10} {folder}/db.dump")
        fix = (
            "import hashlib, json, os, sys; d = sys.argv[1]; m = json.load(open(d + '/manifest.json')); "
            "b = open(d + '/db.dump', 'rb').read(); "
            "m['files']['db.dump'] = {'size': len(b), 'sha256': hashlib.sha256(b).hexdigest()}; "
            "json.dump(m, open(d + '/manifest.json', 'w'))"
        )
        host.check_output(f'sudo python3 -c "{fix}" {folder}')
        old = set(backups(host))
        res = playbook("restore.yml", "-e", f"backup_id={target}", "-e", "confirm_restore=production")
        out = res.stdout + res.stderr
        assert res.returncode != 0, out[-3000:]
        (safety,) = set(backups(host)) - old
        assert manifest(host, safety)["kind"] == "safety"
        assert f"Restore of backup {target} failed: pg_restore of " in out, out[-3000:]
        assert f"The safety backup {safety} taken just before was restored" in out, out[-3000:]
        assert "the previous data is back" in out
        assert f"restore.yml -e backup_id={target} -e confirm_restore=production" in out
        assert {"api", "directus", "proxy"} <= running_services(host)
        wait_directus(host)
        assert wait_cms() == before
        assert cms("/assets/model.glb") == FILE
        assert not host.file(f"{DIR}/.deploy.lock").exists
        # Nothing was staged in the db container.
        assert not host.run(f"{COMPOSE} exec -T db ls /tmp/avatar-restore.dump").succeeded
    finally:
        host.check_output(f"sudo cp -p {saved}/db.dump {saved}/manifest.json {folder}/ && sudo rm -rf {saved}")


def test_latest_is_the_last_scheduled_backup_never_the_safety_one(host):
    """Two restores of latest in a row restore the same nightly backup: the safety backup the first
    one took is not the second one's latest."""
    listed = playbook("restore.yml", "-e", "backup_list=true")
    assert listed.returncode == 0, listed.stdout[-3000:]
    assert " safety " in listed.stdout, listed.stdout[-3000:]
    assert " scheduled " in listed.stdout, listed.stdout[-3000:]
    scheduled = last_scheduled(host)
    assert kind(host, backups(host)[-1]) == "safety"  # the newest backup is the last restore's safety backup
    # The rows when the last scheduled backup was taken (test_a_corrupt_ledger_does_not_block_a_backup).
    expected = sorted([*NAMES, "margaret"])
    for attempt in range(2):
        cms("/items/avatars", json.dumps({"name": "dorothy"}).encode())
        old = set(backups(host))
        res = playbook("restore.yml", "-e", "backup_id=latest", "-e", "confirm_restore=production")
        out = res.stdout + res.stderr
        assert res.returncode == 0, f"restore {attempt + 1}: {out[-3000:]}"
        assert f"Restored backup {scheduled} (scheduled" in out, f"restore {attempt + 1}: {out[-3000:]}"
        (safety,) = set(backups(host)) - old
        assert manifest(host, safety)["kind"] == "safety"
        assert wait_cms() == expected
