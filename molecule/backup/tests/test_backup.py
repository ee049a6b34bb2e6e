# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backups proven on a real server: rows and files survive losing the database and
the uploads; corruption is caught; restore needs its confirmation; retention keeps
the right backups; every backup is copied into an encrypted, deduplicated restic
repository on a second server (the backup host). Ordered: each test builds on the last."""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import DIR, INVENTORY, PLATFORM, PROJECT, leaked, playbook, registry_digest, running, server, vault

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("production")

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


# --- the off-host copy (restic, repository on the backup host) -------------------------------------

REPO_HOST = "mol-backup-repo"
REPO_FILES = "/srv/restic/avatar-production/repo"
CONF = "/etc/avatar-mgmt/backup/production"
RESTIC = (
    f"sudo RESTIC_PASSWORD_FILE={CONF}/password restic -r sftp:avatar-production@{REPO_HOST}:/repo"
    f" -o sftp.command='ssh -F {CONF}/ssh_config avatar-production@{REPO_HOST} -s sftp'"
)


def repo_host():
    return testinfra.get_host(f"ansible://{REPO_HOST}?ansible_inventory={INVENTORY}")


def snapshots(host):
    """The repository's snapshots, listed with restic from the production server as an operator would."""
    return json.loads(host.check_output(f"{RESTIC} snapshots --json"))


def tag(snap, prefix):
    return next((t.split(":", 1)[1] for t in snap["tags"] if t.startswith(prefix + ":")), None)


def test_each_backup_is_a_snapshot_in_the_repository_on_the_backup_host(host):
    snaps = snapshots(host)
    newest = backups(host)[-1]
    note = manifest(host, newest)["offsite"]
    (snap,) = [s for s in snaps if s["id"].startswith(note["snapshot_id"])]
    assert snap["hostname"] == "production"  # a new server finds them by the environment's name
    assert tag(snap, "id") == newest
    assert tag(snap, "env") == "production"
    # The release as the backup's manifest names it (none after the corrupt-ledger test's backup).
    assert tag(snap, "release") == (manifest(host, newest)["release"]["version"] or None)
    assert "avatar-mgmt" in snap["tags"]
    listing = host.check_output(f"{RESTIC} ls {snap['id']}")
    for name in ("db.dump", "manifest.json", "directus/uploads/scan-1.bin", "jc21/data"):
        assert name in listing, name
    assert [line for line in listing.splitlines() if "/jc21/data/logs/" in line] == []  # logs are not state
    # The safety backup the restore of the first test took: labelled as such, with its release.
    assert any(tag(s, "kind") == "safety" and tag(s, "release") == "v1.2.0" for s in snaps), snaps
    # The repository's settings on the production server: root only.
    # (read with sudo: the deploy user cannot even look into the folder)
    assert host.check_output(f"sudo stat -c '%a %U' {CONF}") == "700 root"
    for name in ("password", "id_backup", "known_hosts", "ssh_config"):
        assert host.check_output(f"sudo stat -c '%a %U' {CONF}/{name}") == "600 root", name
    assert not host.run(f"ls {CONF}").succeeded
    assert "StrictHostKeyChecking yes" in host.check_output(f"sudo cat {CONF}/ssh_config")
    # The backup account on the backup host: no shell, SFTP only in its chroot.
    assert repo_host().user("avatar-production").shell == "/usr/sbin/nologin"
    effective = repo_host().check_output("sudo sshd -T -C user=avatar-production,host=client,addr=10.0.0.1")
    assert "forcecommand internal-sftp" in effective


def test_the_repository_holds_no_plaintext(host):
    """The backup host's files of the repository: no row value, upload bytes or secret in them."""
    upload = host.check_output(f"sudo od -An -tx1 -j 1048576 -N 48 {DIR}/directus/uploads/scan-1.bin").split()
    secrets = vault()
    needles = [
        b"margaret",
        b"public.avatars",  # in the manifest, uncompressed
        FILE[:40],
        bytes.fromhex("".join(upload)),
        secrets["vault_backup_repository_password"].encode(),
        secrets["vault_directus_admin_token"].encode(),
        secrets["vault_backup_repository_ssh_key"].splitlines()[1].encode(),
    ]
    script = "\n".join(
        [
            "import os",
            f"needles = [bytes.fromhex(h) for h in {[n.hex() for n in needles]!r}]",
            "hits = size = 0",
            f"for d, _, fs in os.walk({REPO_FILES!r}):",
            "    for f in fs:",
            "        data = open(os.path.join(d, f), 'rb').read()",
            "        size += len(data)",
            "        hits += sum(x in data for x in needles)",
            "print(hits, size)",
        ]
    )
    encoded = base64.b64encode(script.encode()).decode()
    hits, size = repo_host().check_output(f"echo {encoded} | base64 -d | sudo python3 -").split()
    assert int(size) > 6 << 20  # the uploads are in there ...
    assert int(hits) == 0  # ... but nothing of them, of the rows or of a secret can be read


def test_a_second_backup_of_unchanged_uploads_adds_little(host):
    res = playbook("backup.yml", "-e", "backup_keep_daily=30")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    one = manifest(host, backups(host)[-1])["offsite"]
    res = playbook("backup.yml", "-e", "backup_keep_daily=30")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    two = manifest(host, backups(host)[-1])["offsite"]
    assert one["snapshot_id"] != two["snapshot_id"]
    uploads = int(host.check_output(f"sudo du -sb {DIR}/directus/uploads").split()[0])
    assert uploads > 6 << 20
    # Nothing changed but the dump and the manifest: well under a tenth of the uploads.
    assert two["data_added"] < uploads / 10, (two, uploads)
    assert "snapshot " + two["snapshot_id"] in res.stdout


def test_repository_retention_forgets_by_kind(host):
    snaps = snapshots(host)
    scheduled = sorted((s for s in snaps if tag(s, "kind") == "scheduled"), key=lambda s: s["time"])
    # Several scheduled backups were copied today: daily retention keeps the newest of the day. restic
    # 0.17 and later also keep the oldest snapshot of a group while there are fewer days of snapshots than
    # the policy asks for (a young repository), so at most those two are left.
    assert tag(scheduled[-1], "id") == backups(host)[-1]
    assert len(scheduled) <= 2, [s["tags"] for s in scheduled]
    assert len([s for s in snaps if tag(s, "kind") == "safety"]) <= 3


def test_repository_check_and_no_secret_in_verbose_output(host):
    res = playbook("backup.yml", "-e", "backup_check_repository=true", "-vvv")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "reading back 5%" in out
    res2 = playbook("backup.yml", "-vvv")
    out += res2.stdout + res2.stderr
    assert res2.returncode == 0, out[-3000:]
    secrets = vault()
    for name in ("vault_backup_repository_password", "vault_backup_repository_ssh_key"):
        assert not leaked(out, secrets[name]), name


def test_a_failed_off_host_copy_fails_the_run_and_keeps_the_local_backup(host):
    """A backup host whose key is not the recorded one: refused (host keys are checked), the run fails."""
    wrong = host.check_output("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    before = set(backups(host))
    res = playbook("backup.yml", "-e", json.dumps({"backup_repository_known_hosts": f"{REPO_HOST} {' '.join(wrong)}"}))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    (new,) = set(backups(host)) - before
    assert (
        f"the off-host copy of backup {new} to sftp:avatar-production@mol-backup-repo:/repo failed"
        f" (the local backup {new} is published and kept)"
    ) in out, out[-3000:]
    # ssh's own words, passed on (restic may exit before passing on its last line)
    assert "Host key verification failed" in out or "REMOTE HOST IDENTIFICATION HAS CHANGED" in out, out[-3000:]
    assert manifest(host, new)["verification"]["result"] == "ok"
    assert not host.file(f"{DIR}/.deploy.lock").exists
    # The right key again for whatever runs next.
    assert playbook("backup.yml").returncode == 0


def test_a_repository_without_password_is_refused_before_anything_changes(host):
    before = backups(host)
    res = playbook("backup.yml", "-e", json.dumps({"backup_repository_password": ""}))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "backup_repository_password is empty" in out
    assert backups(host) == before


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
    # The rows when the last scheduled backup was taken (no test adds rows between margaret and katherine).
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


# --- the disaster-recovery drill: the server is lost, a new one is restored from the repository (LAST: it
# replaces the production server) -----------------------------------------------------------------------


def table_counts(host, tables):
    """Row count of each table, read in the database itself."""
    quoted = {t: ".".join('"' + part + '"' for part in t.split(".", 1)) for t in tables}
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {quoted[t]}" for t in tables)
    out = host.check_output(f"{COMPOSE} exec -T db psql -X -U directus -d directus -At -F ' ' <<'SQL'\n{sql};\nSQL")
    return {name: int(count) for name, count in (line.split() for line in out.splitlines() if line.strip())}


def files_state(host, *folders):
    """path -> (sha256, owner uid:gid, mode) of every file under the folders (relative to the project folder)."""
    paths = " ".join(f"{DIR}/{f}" for f in folders)
    sums = host.check_output(f"sudo sh -c 'find {paths} -type f -exec sha256sum {{}} + 2>/dev/null; true'")
    stat = 'stat -c "%n %u:%g %a"'
    owners = host.check_output(f"sudo sh -c 'find {paths} -type f -exec {stat} {{}} + 2>/dev/null; true'")
    digest = {line.split(None, 1)[1]: line.split(None, 1)[0] for line in sums.splitlines() if line.strip()}
    meta = {line.rsplit(" ", 2)[0]: tuple(line.rsplit(" ", 2)[1:]) for line in owners.splitlines() if line.strip()}
    return {path: (digest[path], *meta[path]) for path in digest}


def test_disaster_recovery_restores_a_new_server_from_the_repository(host):
    """The nightly backup goes to the repository; the server is destroyed (container and volumes); a new one
    of the same name is bootstrapped and restored from the repository alone. Everything comes back."""
    res = playbook("backup.yml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    nightly = backups(host)[-1]
    info = manifest(host, nightly)
    assert info.get("kind", "scheduled") == "scheduled"
    version = info["release"]["version"] or "v1.2.0"
    tables = sorted(info["row_counts"])
    counts = table_counts(host, tables)
    assert counts == info["row_counts"]
    assert counts["public.avatars"] > 0
    names = wait_cms()
    uploads = files_state(host, "directus/uploads")
    assert f"{DIR}/directus/uploads/scan-1.bin" in uploads
    assert uploads[f"{DIR}/directus/uploads/scan-1.bin"][1] == "1000:1000"
    certs = files_state(host, "jc21/letsencrypt", "jc21/data/custom_ssl")
    assert certs, "the proxy holds no certificate file to compare"

    # Lose the server: its container and its Docker data (volumes) are removed; a new bare one takes its name.
    me = server()
    subprocess.run(["bash", PLATFORM, "rm", me["name"]], check=True)
    gone = subprocess.run(["docker", "volume", "inspect", me["name"] + "-docker"], capture_output=True, check=False)
    assert gone.returncode != 0, "the server's Docker volume survived platform.sh rm"
    subprocess.run(["bash", PLATFORM, "server", me["name"], str(me["ssh_port"]), str(me["http_port"])], check=True)
    assert not host.file(DIR + "/" + "docker-compose.prod.yml").exists
    assert not host.run(f"sudo ls {BACKUPS}").succeeded or backups(host) == []

    res = playbook("bootstrap.yml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    res = playbook(
        "restore.yml", "-e", "backup_source=repository", "-e", "backup_id=latest", "-e", "confirm_restore=production"
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert f"backup {nightly} (scheduled, taken" in out, out[-3000:]
    assert "restic -r sftp:avatar-production@mol-backup-repo:/repo restore" in out, out[-3000:]
    assert "ran no production stack before this restore" in out, out[-3000:]
    assert f"Restored backup {nightly} (scheduled" in out, out[-3000:]

    # The release the backup names runs, by digest, and is healthy through the proxy.
    now = running(host)
    assert now["api"][1] == registry_digest("api", version)
    assert now["frontend"][1] == registry_digest("frontend", version)
    assert {"db", "directus", "proxy", "api"} <= running_services(host)
    wait_directus(host)
    assert wait_cms() == names
    assert cms("/assets/model.glb") == FILE
    # Every row, every upload byte for byte with its owner, the proxy's certificate files.
    assert table_counts(host, tables) == counts
    assert files_state(host, "directus/uploads") == uploads
    assert files_state(host, "jc21/letsencrypt", "jc21/data/custom_ssl") == certs
    # The private folder the snapshot was restored into is gone; no lock is left.
    assert not host.run(f"sudo sh -c 'ls -d {BACKUPS}/.restore-*'").succeeded
    assert not host.file(f"{DIR}/.deploy.lock").exists
