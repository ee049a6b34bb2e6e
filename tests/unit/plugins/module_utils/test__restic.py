# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The off-host copy's logic against a real restic (Debian's package; `make unit` installs it) with a
local repository: the repository is made on first use, a second copy of unchanged files adds almost
nothing, retention forgets by kind, the repository's files hold no plaintext, and no secret reaches a
message. Parsing and command building are tested on their own too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _restic
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import restic_repo

RESTIC = shutil.which("restic")
needs_restic = pytest.mark.skipif(RESTIC is None, reason="restic is not installed (make unit installs it)")
PASSWORD = restic_repo.PASSWORD
ROW = "grace-hopper-row-value-7f3a9c"


@pytest.mark.parametrize(
    "repo, want",
    [
        ("sftp:avatar-production@backup-1:/repo", ("sftp", "avatar-production", "backup-1", "", "/repo")),
        ("sftp:backup-1:/srv/restic/prod", ("sftp", "", "backup-1", "", "/srv/restic/prod")),
        ("sftp://avatar@backup-1:2222//srv/repo", ("sftp", "avatar", "backup-1", "2222", "/srv/repo")),
        ("sftp://avatar@backup-1/repo", ("sftp", "avatar", "backup-1", "", "~/repo")),
        ("/mnt/backup/repo", ("local", "", "", "", "/mnt/backup/repo")),
        ("rest:https://backup.example:8000/prod", ("rest", "", "", "", "https://backup.example:8000/prod")),
        ("s3:s3.amazonaws.com/bucket/prod", ("s3", "", "", "", "s3.amazonaws.com/bucket/prod")),
    ],
)
def test_parse_repository(repo, want):
    got = _restic.parse_repository(repo)
    assert (got["kind"], got["user"], got["host"], got["port"], got["path"]) == want


@pytest.mark.parametrize(
    "repo, message",
    [
        ("", "backup_repository is empty"),
        ("relative/path", "is not a restic repository"),
        ("ftp://host/x", "is not a restic repository"),
        ("rest:https://user:s3cret@backup.example/prod", "must not carry a password"),
    ],
)
def test_parse_repository_refuses(repo, message):
    with pytest.raises(ValueError, match=message) as err:
        _restic.parse_repository(repo)
    assert "s3cret" not in str(err.value)


def test_sftp_command_puts_no_secret_on_the_command_line():
    parsed = _restic.parse_repository("sftp://avatar@backup-1:2253//repo")
    cmd = _restic.sftp_command(parsed, "/etc/avatar-mgmt/backup/production/ssh_config")
    assert cmd == "ssh -F /etc/avatar-mgmt/backup/production/ssh_config -p 2253 avatar@backup-1 -s sftp"
    assert _restic.sftp_command(_restic.parse_repository("/tmp/repo"), "x") == ""
    config = _restic.ssh_config_text("/k/id", "/k/known_hosts")
    assert "StrictHostKeyChecking yes" in config
    assert "UserKnownHostsFile /k/known_hosts" in config
    assert "StrictHostKeyChecking no" not in config


def test_tags_and_display():
    assert _restic.tags("production", "20261128T020005Z", "scheduled", "v1.2.0") == [
        "avatar-mgmt",
        "env:production",
        "id:20261128T020005Z",
        "kind:scheduled",
        "release:v1.2.0",
    ]
    assert "release:" not in " ".join(_restic.tags("production", "20261128T020005Z", "safety", ""))
    with pytest.raises(ValueError, match="comma"):
        _restic.tags("production", "20261128T020005Z", "scheduled", "v1,2")
    assert _restic.display("rest:https://u:pw@backup.example/prod") == "rest:https://u:********@backup.example/prod"
    assert _restic.display("sftp://avatar@backup-1:2253//repo") == "sftp://avatar@backup-1:2253//repo"


def test_redact_takes_out_each_line_of_a_key():
    key = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
            "-----END OPENSSH PRIVATE KEY-----",
        ]
    )
    text = "error near b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ and s3cr3t-value"
    out = _restic.redact(text, [key, "s3cr3t-value", ""])
    assert "b3BlbnNzaC1" not in out
    assert "s3cr3t" not in out


def test_policies():
    pols = dict(_restic.policies(7, 4, 0, 2))
    assert pols["kind:scheduled"] == ["--keep-daily", "7", "--keep-weekly", "4"]
    assert pols["kind:pre-deploy"] == ["--keep-last", "2"]
    assert pols["kind:safety"] == ["--keep-last", "2"]
    assert dict(_restic.policies(0, 0, 0, 0))["kind:scheduled"] == ["--keep-last", "1"]
    with pytest.raises(ValueError, match="backup_repository_keep_daily"):
        _restic.policies(-1, 0, 0, 0)


def test_backup_summary_and_errors():
    out = "\n".join(
        [
            '{"message_type":"status","percent_done":1}',
            '{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/x/y"}',
            (
                '{"message_type":"summary","files_new":2,"files_changed":1,"files_unmodified":5,"data_added":1234,'
                '"total_files_processed":8,"total_bytes_processed":99,"total_duration":0.5,"snapshot_id":"abcd1234"}'
            ),
        ]
    )
    summary, errors = _restic.backup_summary(out)
    assert summary["snapshot_id"] == "abcd1234"
    assert (summary["files_new"], summary["files_changed"], summary["files_unmodified"]) == (2, 1, 5)
    assert summary["data_added"] == summary["data_added_packed"] == 1234
    assert errors == ["/x/y: permission denied"]
    with pytest.raises(ValueError, match="no summary"):
        _restic.backup_summary('{"message_type":"status"}')


def test_last_error_names_what_ssh_said():
    err = "\n".join(
        [
            "subprocess ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
            "subprocess ssh: @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
            "subprocess ssh: Host key for backup-1 has changed and you have requested strict checking.",
            "subprocess ssh: Host key verification failed.",
            "Fatal: unable to open repository at sftp:a@backup-1:/repo: unable to start the sftp session, error: EOF",
        ]
    )
    why = _restic.last_error(err)
    assert why.startswith("Fatal: unable to open repository")
    assert why.endswith("requested strict checking. Host key verification failed.)")
    # restic exited before passing on ssh's last lines: the telling one it did pass on is named.
    cut = "\n".join(err.splitlines()[:2] + err.splitlines()[-1:] + ["subprocess ssh: Please contact your admin."])
    assert "(ssh: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!)" in _restic.last_error(cut)


@pytest.mark.parametrize(
    "line, want",
    [
        (
            (
                "Load(<data/9304b97502>, 3145886, 0) returned error, retrying after 1.582392691s: open "
                "/r/data/93/9304b97502e4: no such file or directory"
            ),
            ("9304b97502", "open /r/data/93/9304b97502e4: no such file or directory"),
        ),
        (
            (
                "Load(<data/3d91522b15>, 1863, 3980974) returned error, retrying after 22.26s: <data/3d91522b15> "
                "does not exist"
            ),
            ("3d91522b15", "<data/3d91522b15> does not exist"),
        ),
        (
            (
                "Load(<data/ab12cd34ef>, 0, 0) returned error, retrying after 498ms: open /srv/repo/data/ab/ab12: "
                "file does not exist"
            ),
            ("ab12cd34ef", "open /srv/repo/data/ab/ab12: file does not exist"),
        ),
        # A lock that another restic removed, a connection that broke: worth restic's retries.
        ("Load(<lock/e623a33abd>, 0, 0) returned error, retrying after 552ms: open /r/locks/e6: no such file", None),
        ("Load(<data/9304b97502>, 0, 0) returned error, retrying after 552ms: connection reset by peer", None),
        ("ignoring error for /src/a: StreamPack: open /r/data/93/9304: no such file or directory", None),
    ],
)
def test_missing_data_is_a_data_pack_that_is_not_there(line, want):
    assert _restic.missing_data("restoring <Snapshot 2e7e1045>\n" + line + "\n") == want


def test_last_error_prefers_fatal():
    err = "some noise\nFatal: unable to open config file: stat /r/config: no such file\nIs there a repository?\n"
    assert _restic.last_error(err).startswith("Fatal: unable to open config file")


# --- against a real restic -------------------------------------------------------------------


@pytest.fixture
def world(tmp_path):
    """A published backup folder, a project folder with uploads, a password file, a repository path."""
    backup = tmp_path / "backups" / "20261128T020005Z"
    backup.mkdir(parents=True)
    (backup / "db.dump").write_bytes(b"PGDMP" + f"INSERT {ROW}".encode() * 50)
    (backup / "manifest.json").write_text(json.dumps({"id": "20261128T020005Z", "kind": "scheduled"}))
    project = tmp_path / "project"
    uploads = project / "directus" / "uploads"
    uploads.mkdir(parents=True)
    upload = os.urandom(3 << 20)
    (uploads / "model.glb").write_bytes(upload)
    logs = project / "jc21" / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "access.log").write_text("GET /\n")
    (project / "jc21" / "data" / "database.sqlite").write_bytes(b"sqlite" * 10)
    pw = tmp_path / "password"
    pw.write_text(PASSWORD)
    pw.chmod(0o600)
    return {
        "tmp": tmp_path,
        "backup": backup,
        "project": project,
        "upload": upload,
        "params": {
            "repository": str(tmp_path / "repo"),
            "password_file": str(pw),
            "ssh_config": "",
            "env": {"AWS_SECRET_ACCESS_KEY": "aws-secret-never-shown-123"},
            "secret_values": [],
            "cache_dir": str(tmp_path / "cache"),
            "restic": RESTIC or "restic",
            "environment": "production",
            "id": "20261128T020005Z",
            "kind": "scheduled",
            "version": "v1.2.0",
            "paths": [
                str(backup / "db.dump"),
                str(backup / "manifest.json"),
                str(project / "directus" / "uploads"),
                str(project / "directus" / "extensions"),
                str(project / "jc21" / "data"),
            ],
            "excludes": [str(project / "jc21" / "data" / "logs" / "*")],
            "manifest": str(backup / "manifest.json"),
            "keep_daily": 7,
            "keep_weekly": 4,
            "keep_monthly": 6,
            "keep_last_other": 1,
            "check_subset": "5%",
        },
    }


@pytest.fixture
def new_repository(world, restic_template):
    """Puts a copy of the repository ``restic init`` made once (conftest ``restic_template``) at the world's
    repository path; the tests of the first copy let the code under test run ``restic init`` itself."""

    def make():
        shutil.copytree(restic_template, world["params"]["repository"], symlinks=True)

    return make


def run_restic(world, *args):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(world["tmp"]),
        "RESTIC_PASSWORD_FILE": world["params"]["password_file"],
    }
    env["RESTIC_CACHE_DIR"] = str(world["tmp"] / "cache")
    return subprocess.run(
        [RESTIC, "-r", world["params"]["repository"], *args], env=env, capture_output=True, text=True, check=True
    ).stdout


def snapshots(world):
    return json.loads(run_restic(world, "snapshots", "--json"))


@needs_restic
def test_first_copy_makes_the_repository_and_a_tagged_snapshot(world):
    res = _restic.offsite(world["params"])
    assert res["initialized"] is True
    assert res["files_new"] == 4  # db.dump, manifest.json, model.glb, database.sqlite (logs excluded)
    assert res["data_added"] > 3 << 20
    assert res["missing"] == [world["params"]["paths"][3]]  # no extensions folder: left out, named
    (snap,) = snapshots(world)
    assert snap["hostname"] == "production"
    assert sorted(snap["tags"]) == sorted(
        ["avatar-mgmt", "env:production", "id:20261128T020005Z", "kind:scheduled", "release:v1.2.0"]
    )
    assert snap["id"].startswith(res["snapshot_id"])
    listing = run_restic(world, "ls", snap["id"])
    assert "model.glb" in listing
    assert "access.log" not in listing
    # The manifest records the snapshot (the copy inside the snapshot is the one of before).
    note = json.loads((world["backup"] / "manifest.json").read_text())["offsite"]
    assert note["snapshot_id"] == res["snapshot_id"]
    assert note["host"] == "production"
    # Encrypted: neither a row value nor the upload's bytes nor the password in any file of the repository.
    for root, _dirs, files in os.walk(world["params"]["repository"]):
        for name in files:
            data = (world["tmp"] / root / name).read_bytes()
            assert ROW.encode() not in data
            assert world["upload"][1000:1064] not in data
            assert PASSWORD.encode() not in data


@needs_restic
def test_second_copy_of_unchanged_files_adds_almost_nothing(world, new_repository):
    new_repository()
    first = _restic.offsite(world["params"])
    backup2 = world["tmp"] / "backups" / "20261129T020005Z"
    shutil.copytree(world["backup"], backup2)
    (backup2 / "db.dump").write_bytes(b"PGDMP" + f"INSERT {ROW} again".encode() * 50)
    params = dict(world["params"], id="20261129T020005Z", manifest=str(backup2 / "manifest.json"))
    params["paths"] = [str(backup2 / "db.dump"), str(backup2 / "manifest.json"), *world["params"]["paths"][2:]]
    second = _restic.offsite(params)
    assert second["initialized"] is False
    assert second["parent"].startswith(first["snapshot_id"])
    assert second["data_added"] < first["data_added"] / 10
    assert second["files_unmodified"] >= 1  # the upload was not read again
    # Both are of today: daily retention keeps the newest one of the day.
    (snap,) = snapshots(world)
    assert "id:20261129T020005Z" in snap["tags"]
    assert [f["tags"][2] for f in second["forgotten"]] == ["id:20261128T020005Z"]


def _next_backup(world, backup_id, dump=b"again"):
    """Another published backup beside the world's one (a later id), its manifest without an off-host note."""
    folder = world["tmp"] / "backups" / backup_id
    folder.mkdir()
    (folder / "db.dump").write_bytes(b"PGDMP" + f"INSERT {ROW} ".encode() + dump)
    (folder / "manifest.json").write_text(json.dumps({"id": backup_id, "kind": "scheduled"}))
    params = dict(world["params"], id=backup_id, manifest=str(folder / "manifest.json"))
    params["paths"] = [str(folder / "db.dump"), str(folder / "manifest.json"), *world["params"]["paths"][2:]]
    return params


def _recording(params):
    commands = []

    class Recording(_restic.Runner):
        def run(self, args, timeout=None):
            commands.append([a for a in args if a in ("snapshots", "backup", "forget", "init", "prune", "--parent")])
            return super().run(args, timeout)

    return Recording("restic", _restic.restic_env(params, "")), commands


@needs_restic
def test_the_next_copy_takes_its_parent_from_the_last_manifest_without_asking_the_repository(world, new_repository):
    """The parent snapshot is the one the last copy recorded in its backup's manifest.json: the second night runs
    restic backup and its retention only (no snapshots run), and unchanged uploads are still not read again."""
    new_repository()
    first = _restic.offsite(world["params"])
    assert json.loads((world["backup"] / "manifest.json").read_text())["offsite"]["snapshot_id"] == first["snapshot_id"]
    params = _next_backup(world, "20261129T020005Z")
    runner, commands = _recording(params)
    second = _restic.offsite(params, runner)
    # (and prune: restic dates both snapshots today, so daily retention forgets the first)
    assert [c[0] for c in commands] == ["backup", "forget", "prune"], commands
    assert "--parent" in commands[0]
    assert second["parent"] == first["snapshot_id"]
    assert second["files_unmodified"] >= 1
    assert "parent" not in second["timings"]
    parents = world["tmp"] / "backups" / ".offsite-parents.json"
    assert parents.stat().st_mode & 0o777 == 0o600
    assert json.loads(parents.read_text()) == {f"production {world['params']['repository']}": second["snapshot_id"]}


@needs_restic
def test_the_recorded_parent_outlives_the_local_retention(world, new_repository):
    """The local retention removed the previous backup's folder (one backup kept on the host, or two of one day):
    the parent still comes from the file beside the backups, not from a restic snapshots run."""
    new_repository()
    first = _restic.offsite(world["params"])
    shutil.rmtree(world["backup"])
    params = _next_backup(world, "20261129T020005Z")
    runner, commands = _recording(params)
    second = _restic.offsite(params, runner)
    assert "snapshots" not in [c[0] for c in commands], commands
    assert second["parent"] == first["snapshot_id"]
    assert second["files_unmodified"] >= 1


@needs_restic
@pytest.mark.parametrize("gone", ["forgotten", "another repository"])
def test_a_recorded_parent_the_repository_lacks_falls_back_to_asking_it(world, new_repository, gone):
    """The recorded snapshot was forgotten and pruned, or the repository at that address is a new one: restic
    refuses the parent before writing anything, and the copy finds the parent (or makes the repository) the long
    way - one snapshot made, none lost."""
    new_repository()
    first = _restic.offsite(world["params"])
    if gone == "forgotten":
        run_restic(world, "forget", "--prune", first["snapshot_id"])
    else:
        shutil.rmtree(world["params"]["repository"])
    params = _next_backup(world, "20261129T020005Z")
    runner, commands = _recording(params)
    second = _restic.offsite(params, runner)
    assert [c[0] for c in commands][:2] == ["backup", "snapshots"], commands
    assert "backup_recorded_parent" in second["timings"]
    assert second["initialized"] is (gone == "another repository")
    (snap,) = snapshots(world)
    assert "id:20261129T020005Z" in snap["tags"]
    assert snap["id"].startswith(second["snapshot_id"])


@needs_restic
@pytest.mark.parametrize(
    "rc, stderr, falls_back",
    [
        # restic 0.16 and later load a full id directly: another wording than 0.14's "invalid id".
        (1, "Fatal: failed to load snapshot {id}: load <snapshot/{id}>: file does not exist\n", True),
        (10, "Fatal: repository does not exist: unable to open config file\n", True),
        (12, "Fatal: wrong password or no key found\n", False),
        (1, "Fatal: wrong password or no key found\n", False),
        (11, "Fatal: unable to create lock in backend: repository is already locked by PID 7\n", False),
        # The backup host's key changed: ssh's words are the answer, not a reason to ask the repository again.
        (
            1,
            (
                "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n"
                "Fatal: unable to open repository at sftp:u@h:/repo: unable to start the sftp session, error: EOF\n"
            ),
            False,
        ),
    ],
)
def test_a_refused_recorded_parent_falls_back_whatever_restic_calls_it(world, new_repository, rc, stderr, falls_back):
    """The recorded parent's backup attempt refused as restic versions word it (the real restic runs everything
    else): a parent the repository lacks, or no repository, makes the copy ask the repository and copy; a wrong
    password, a lock or an SSH failure is the answer, reported as it is (restic 0.14 here: its words are faked)."""
    new_repository()
    _restic.offsite(world["params"])
    params = _next_backup(world, "20261129T020005Z")
    recorded = _restic.recorded_parent(params["manifest"], str(world["params"]["repository"]), "production")
    assert recorded
    runner, commands = _recording(params)
    real = runner.run

    def run(args, timeout=None):
        if "--parent" in args and recorded in args:
            commands.append(["backup", "--parent"])
            return rc, "", stderr.format(id=recorded)
        return real(args, timeout)

    runner.run = run
    if falls_back:
        second = _restic.offsite(params, runner)
        assert [c[0] for c in commands][:2] == ["backup", "snapshots"], commands
        assert "backup_recorded_parent" in second["timings"]
        assert any("id:20261129T020005Z" in s["tags"] for s in snapshots(world))
    else:
        with pytest.raises(_restic.ResticError) as err:
            _restic.offsite(params, runner)
        assert [c[0] for c in commands] == ["backup"], commands
        assert f"(exit {rc})" in str(err.value)
        assert not any("id:20261129T020005Z" in s["tags"] for s in snapshots(world))


def test_recorded_parent_reads_only_earlier_manifests_of_this_repository_and_host(tmp_path):
    root = tmp_path / "backups"
    for backup_id, note in (
        ("20261127T020005Z", {"repository": "sftp:r", "host": "production", "snapshot_id": "aaaaaaaa"}),
        ("20261128T020005Z", {"repository": "sftp:other", "host": "production", "snapshot_id": "bbbbbbbb"}),
        ("20261128T030005Z", {"repository": "sftp:r", "host": "staging", "snapshot_id": "cccccccc"}),
        ("20261128T040005Z", {"repository": "sftp:r", "host": "production", "snapshot_id": "not an id; rm"}),
        ("20261130T020005Z", {"repository": "sftp:r", "host": "production", "snapshot_id": "dddddddd"}),
    ):
        (root / backup_id).mkdir(parents=True)
        (root / backup_id / "manifest.json").write_text(json.dumps({"offsite": note}))
    (root / "20261128T050005Z").mkdir()
    (root / "20261128T050005Z" / "manifest.json").write_text("{not json")
    manifest = str(root / "20261129T020005Z" / "manifest.json")
    assert _restic.recorded_parent(manifest, "sftp:r", "production") == "aaaaaaaa"
    # The file beside the backups comes first; a broken one is passed over.
    assert _restic.record_parent(manifest, "sftp:r", "production", "eeeeeeee") is True
    assert _restic.recorded_parent(manifest, "sftp:r", "production") == "eeeeeeee"
    assert _restic.recorded_parent(manifest, "sftp:r", "staging") == "cccccccc"
    assert _restic.record_parent(manifest, "sftp:r", "production", "not an id") is False
    (root / ".offsite-parents.json").write_text("[1, 2")
    assert _restic.recorded_parent(manifest, "sftp:r", "production") == "aaaaaaaa"
    assert _restic.recorded_parent(manifest, "sftp:r", "staging") == "cccccccc"
    assert _restic.recorded_parent(manifest, "sftp:none", "production") == ""
    assert _restic.recorded_parent("", "sftp:r", "production") == ""
    assert _restic.recorded_parent(str(tmp_path / "gone" / "x" / "manifest.json"), "sftp:r", "production") == ""


@needs_restic
def test_retention_by_kind(world, new_repository):
    new_repository()
    params = world["params"]
    ids = ["20261128T020005Z", "20261128T030005Z", "20261128T040005Z"]
    for backup_id in ids:
        _restic.offsite(dict(params, id=backup_id, kind="pre-deploy", manifest=""))
    _restic.offsite(dict(params, id="20261128T050005Z", kind="scheduled", manifest=""))
    # keep_last_other=1: only the newest pre-deploy snapshot stays; the scheduled one is not touched by it.
    kept = sorted(t for s in snapshots(world) for t in s["tags"] if t.startswith("id:"))
    assert kept == ["id:20261128T040005Z", "id:20261128T050005Z"]
    # Scheduled: keep_daily=1 keeps the newest of the day.
    _restic.offsite(dict(params, id="20261128T060005Z", manifest="", keep_daily=1, keep_weekly=0, keep_monthly=0))
    scheduled = [s for s in snapshots(world) if "kind:scheduled" in s["tags"]]
    assert [t for t in scheduled[0]["tags"] if t.startswith("id:")] == ["id:20261128T060005Z"]
    assert len(scheduled) == 1


@needs_restic
def test_a_copy_applies_only_its_own_kinds_retention(world, new_repository):
    """Retention runs once per copy, for the kind it added (the real restic, its commands recorded)."""
    new_repository()
    params = world["params"]

    commands = []

    class Recording(_restic.Runner):
        def run(self, args, timeout=None):
            commands.append(list(args))
            return super().run(args, timeout)

    runner = Recording("restic", _restic.restic_env(params, ""))
    for hour, kind in (("09", "scheduled"), ("10", "pre-deploy"), ("11", "safety")):
        commands.clear()
        _restic.offsite(dict(params, id=f"20261128T{hour}0005Z", kind=kind, manifest=""), runner)
        forgets = [c for c in commands if "forget" in c]
        assert len(forgets) == 1, commands
        assert forgets[0][forgets[0].index("--tag") + 1] == "kind:" + kind


@needs_restic
def test_check_reads_a_subset(world, new_repository):
    new_repository()
    _restic.offsite(world["params"])
    res = _restic.check(dict(world["params"], action="check"))
    assert res["snapshots"] == 1
    assert res["subset"] == "5%"
    with pytest.raises(ValueError, match="backup_repository_check_subset"):
        _restic.check(dict(world["params"], check_subset="all of it"))


@needs_restic
def test_check_of_a_missing_repository_says_so(world):
    with pytest.raises(_restic.ResticError, match="there is no repository"):
        _restic.check(world["params"])


@needs_restic
def test_wrong_password_fails_without_showing_secrets(world, new_repository):
    new_repository()
    _restic.offsite(world["params"])
    bad = world["tmp"] / "bad"
    bad.write_text("not the password")
    with pytest.raises(_restic.ResticError) as err:
        _restic.offsite(dict(world["params"], password_file=str(bad), id="20261129T020005Z"))
    msg = str(err.value)
    assert "wrong password" in msg
    assert "backup_repository_password" in msg
    assert PASSWORD not in msg
    assert "aws-secret" not in msg


@needs_restic
def test_unreachable_repository_names_the_error(world):
    params = dict(world["params"], repository="/proc/nonexistent-dir/repo")
    with pytest.raises(_restic.ResticError) as err:
        _restic.offsite(params)
    assert "/proc/nonexistent-dir/repo" in str(err.value)


def test_refusals_before_anything_runs(world):
    p = world["params"]
    with pytest.raises(ValueError, match="password_file"):
        _restic.offsite(dict(p, password_file=str(world["tmp"] / "none")))
    with pytest.raises(ValueError, match="not a backup id"):
        _restic.offsite(dict(p, id="../../etc"))
    with pytest.raises(ValueError, match="not absolute"):
        _restic.offsite(dict(p, paths=["relative"]))
    with pytest.raises(ValueError, match="needs ssh_config"):
        _restic.offsite(dict(p, repository="sftp:u@h:/repo"))
    assert not (world["tmp"] / "repo").exists()


def test_check_mode_runs_nothing(world):
    res = _restic.offsite(world["params"], check_mode=True)
    assert res["snapshot_id"] == ""
    assert res["tags"][1] == "env:production"
    assert not (world["tmp"] / "repo").exists()


# --- restore from the repository (a new server) ----------------------------------------------------


def snap(backup_id, kind, time):
    return {"id": backup_id.lower() * 2, "time": time, "tags": ["avatar-mgmt", f"id:{backup_id}", f"kind:{kind}"]}


def test_choose_snapshot_latest_is_the_newest_scheduled_never_a_safety_one():
    snaps = [
        snap("20261127T020000Z", "scheduled", "2026-11-27T02:00:05Z"),
        snap("20261128T020000Z", "scheduled", "2026-11-28T02:00:05Z"),
        snap("20261128T090000Z", "safety", "2026-11-28T09:00:05Z"),
        snap("20261128T120000Z", "pre-deploy", "2026-11-28T12:00:05Z"),
        {"id": "ffff", "time": "2026-11-29T00:00:00Z", "tags": ["someone-else", "kind:scheduled"]},
    ]
    assert _restic.tag_value(_restic.choose_snapshot(snaps, "latest", "production"), "id") == "20261128T020000Z"
    # A named id is taken whatever its kind.
    assert (
        _restic.tag_value(_restic.choose_snapshot(snaps, "20261128T090000Z", "production"), "id") == "20261128T090000Z"
    )


@pytest.mark.parametrize(
    "request_, message",
    [
        ("latest", r"no scheduled snapshot of production .*snapshots: 20261128T090000Z \(safety\).*backup_restore_id"),
        ("20261130T000000Z", r"no snapshot of backup 20261130T000000Z of production \(backup_restore_id\)"),
        ("../etc", r"neither latest nor an id .*\(backup_restore_id\)"),
    ],
)
def test_choose_snapshot_refusals_name_the_variable(request_, message):
    with pytest.raises(ValueError, match=message):
        _restic.choose_snapshot([snap("20261128T090000Z", "safety", "2026-11-28T09:00:05Z")], request_, "production")


def test_snapshot_layout_finds_the_backup_and_project_folders():
    paths = [
        "/var/backups/avatar-mgmt/production/20261128T020005Z/db.dump",
        "/var/backups/avatar-mgmt/production/20261128T020005Z/manifest.json",
        "/opt/deploy-avatar-prod/directus/uploads",
        "/opt/deploy-avatar-prod/jc21/data",
    ]
    assert _restic.snapshot_layout(paths, ["directus/uploads", "jc21/data"]) == (
        "/var/backups/avatar-mgmt/production/20261128T020005Z",
        "/opt/deploy-avatar-prod",
    )
    with pytest.raises(ValueError, match=r"holds no db\.dump"):
        _restic.snapshot_layout(paths[2:], ["directus/uploads"])


def test_space_problem_names_what_is_needed():
    assert _restic.space_problem(100 << 20, 200 << 20) == ""
    why = _restic.space_problem(100 << 20, 120 << 20)
    assert "needs 164 MB" in why
    assert "only 120 MB are free" in why


def restore_params(world, **extra):
    params = dict(
        world["params"],
        action="restore",
        id="latest",
        restore_dir=str(world["tmp"] / "newserver" / "backups"),
        project_paths=["directus/uploads", "directus/extensions", "jc21/data", "jc21/letsencrypt"],
    )
    params.update(extra)
    return params


@needs_restic
def test_restore_brings_back_the_newest_scheduled_snapshot_into_a_private_folder(world, new_repository):
    new_repository()
    _restic.offsite(world["params"])
    # A later safety snapshot is not "latest".
    backup2 = world["tmp"] / "backups" / "20261129T020005Z"
    shutil.copytree(world["backup"], backup2)
    safety = dict(world["params"], id="20261129T020005Z", kind="safety", manifest=str(backup2 / "manifest.json"))
    safety["paths"] = [str(backup2 / "db.dump"), str(backup2 / "manifest.json"), *world["params"]["paths"][2:]]
    _restic.offsite(safety)
    res = _restic.restore_snapshot(restore_params(world))
    try:
        assert res["backup_id"] == "20261128T020005Z"
        assert res["kind"] == "scheduled"
        assert res["version"] == "v1.2.0"
        assert os.stat(res["tmp"]).st_mode & 0o777 == 0o700
        assert os.path.dirname(res["tmp"]) == restore_params(world)["restore_dir"]
        assert res["path"] == res["tmp"] + str(world["backup"])
        assert res["tree"] == res["tmp"] + str(world["project"])
        assert res["manifest"]["id"] == "20261128T020005Z"
        with open(os.path.join(res["tree"], "directus/uploads/model.glb"), "rb") as handle:
            assert handle.read() == world["upload"]
        with open(os.path.join(res["path"], "db.dump"), "rb") as handle:
            assert handle.read(5) == b"PGDMP"
        assert res["size"] > 3 << 20
        assert f"restic -r {world['params']['repository']} restore {res['snapshot_id']}" in res["command"]
    finally:
        shutil.rmtree(res["tmp"])
    # By id: the safety snapshot.
    res = _restic.restore_snapshot(restore_params(world, id="20261129T020005Z"))
    shutil.rmtree(res["tmp"])
    assert (res["backup_id"], res["kind"]) == ("20261129T020005Z", "safety")


@needs_restic
def test_restore_refuses_without_room_and_leaves_nothing(world, new_repository):
    new_repository()
    _restic.offsite(world["params"])
    params = restore_params(world)
    with pytest.raises(ValueError, match=r"needs \d+ MB .* but only 1 MB are free under .*backup_restore_dir"):
        _restic.restore_snapshot(params, free_space=lambda _path: 1 << 20)
    assert os.listdir(params["restore_dir"]) == []


@needs_restic
def test_restore_refusals_before_anything_is_written(world, new_repository):
    with pytest.raises(ValueError, match=r"there is no repository at .*\(backup_repository\)"):
        _restic.restore_snapshot(restore_params(world))
    new_repository()
    _restic.offsite(world["params"])
    with pytest.raises(ValueError, match=r"no snapshot of backup 20261130T000000Z of production"):
        _restic.restore_snapshot(restore_params(world, id="20261130T000000Z"))
    with pytest.raises(ValueError, match=r"no scheduled snapshot of staging"):
        _restic.restore_snapshot(restore_params(world, environment="staging"))
    assert (
        not os.path.exists(restore_params(world)["restore_dir"])
        or os.listdir(restore_params(world)["restore_dir"]) == []
    )


@needs_restic
def test_a_failed_restic_restore_removes_its_folder(world, new_repository):
    """The repository loses its data packs (a damaged backup host): the snapshot is found, its size read
    (the trees are in restic's cache), the restore fails, and the folder made for it is gone."""
    new_repository()
    _restic.offsite(world["params"])
    params = restore_params(world)
    big = [
        os.path.join(root, name)
        for root, _dirs, files in os.walk(os.path.join(world["params"]["repository"], "data"))
        for name in files
        if os.path.getsize(os.path.join(root, name)) > 1 << 20
    ]
    assert big
    for path in big:
        os.remove(path)
    started = time.monotonic()
    with pytest.raises(_restic.ResticError, match=r"restic restore on .* failed") as err:
        _restic.restore_snapshot(params)
    assert os.listdir(params["restore_dir"]) == []
    # restic 0.14 would retry the missing pack for about 45 s: it is stopped at its first retry, the message
    # names the pack, and restic's lock is gone.
    lost = os.path.basename(big[0])
    assert f"data pack {lost[:10]} is missing from the repository" in str(err.value)
    assert time.monotonic() - started < 30
    assert os.listdir(os.path.join(world["params"]["repository"], "locks")) == []


# restic may exit before it has passed on ssh's last words: ssh is asked again on its own, once.

SFTP_EOF = (
    "Fatal: unable to open repository at sftp:u@h:/repo: unable to start the sftp session, error: error receiving "
    "version packet from server: server unexpectedly closed connection: unexpected EOF\n"
)


def _sftp_repository(tmp_path, monkeypatch, ssh_rc, ssh_says):
    """An sftp repository whose ssh is a stand-in on PATH: it logs its argv and stdin, says ``ssh_says``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ssh.log"
    script = bindir / "ssh"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\ncat >> {log}\nprintf "%s\\n" "{ssh_says}" >&2\nexit {ssh_rc}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    params = {"repository": "sftp:u@h:/repo", "ssh_config": str(tmp_path / "ssh_config")}
    return _restic.Repository(params, runner=object()), log


def test_ssh_is_asked_again_when_restic_passed_on_none_of_its_words(tmp_path, monkeypatch):
    repo, log = _sftp_repository(tmp_path, monkeypatch, 255, "Host key verification failed.")
    said = repo.explain("backup", 1, SFTP_EOF)
    assert said.endswith("unexpected EOF (ssh, asked again on its own: Host key verification failed.)")
    # The very command restic runs, its input closed.
    assert log.read_text() == f"-F {tmp_path / 'ssh_config'} u@h -s sftp\n"


def test_ssh_is_not_asked_again_when_restic_passed_its_words_on_or_failed_otherwise(tmp_path, monkeypatch):
    repo, log = _sftp_repository(tmp_path, monkeypatch, 255, "Host key verification failed.")
    told = "subprocess ssh: Host key verification failed.\n" + SFTP_EOF
    assert "asked again" not in repo.explain("backup", 1, told)
    assert "asked again" not in repo.explain("backup", 12, "Fatal: wrong password or no key found\n")
    assert not log.exists()


def test_an_ssh_that_connects_adds_nothing(tmp_path, monkeypatch):
    repo, log = _sftp_repository(tmp_path, monkeypatch, 0, "")
    assert "asked again" not in repo.explain("backup", 1, SFTP_EOF)
    assert log.exists()
