# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a playbook the way AWX runs a job template's job: with ansible-runner on a private data directory.

What AWX puts there, and so what this puts there:
- ``project/``: the project's checkout (here: the files git tracks, copied);
- ``inventory/hosts``: an executable script printing the inventory as JSON. AWX's inventory is what its
  inventory source imported with ``ansible-inventory --list --export``, run here on ``inventories/<env>``
  WITHOUT a vault password (the import cannot have one): inline ``!vault`` values stay encrypted in it;
- ``env/extravars``: the survey answers and AWX's ``awx_*`` variables;
- ``env/passwords``: the vault password, answered on ``--vault-id <id>@prompt`` to the prompt AWX expects;
- ``env/ssh_key``: the machine credential's key (ansible-runner loads it into an ssh-agent);
- ``env/envvars``: an empty HOME and the collections path: the collection comes from its built artifact,
  installed the way the execution environment installs it (never from this checkout).

``Job.run`` returns rc, status, stdout, the events (every file AWX would store) and the ``set_stats`` data.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import uuid

RUNNER_BIN = "ansible-runner"


def _bin(root, name):
    return os.path.join(root, ".venv", "bin", name)


def export_inventory(root, inventory_dir, env=None):
    """``ansible-inventory --list --export`` of ``inventory_dir`` as AWX's inventory import runs it: no vault
    password (an inherited ANSIBLE_VAULT_PASSWORD_FILE is removed). Returns (returncode, parsed JSON or None,
    stderr)."""
    environ = dict(env or os.environ)
    for name in ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST"):
        environ.pop(name, None)
    proc = subprocess.run(
        [
            _bin(root, "ansible-inventory"),
            "--list",
            "--export",
            "-i",
            os.path.join(root, inventory_dir),
            "--playbook-dir",
            os.path.join(root, "playbooks"),
        ],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    data = json.loads(proc.stdout) if proc.returncode == 0 else None
    return proc.returncode, data, proc.stderr


def install_collection(root, dest):
    """Build the collection's artifact and install it into ``dest`` (an ANSIBLE_COLLECTIONS_PATH entry), as the
    execution environment installs it. Returns ``dest``."""
    build = os.path.join(dest, ".build")
    os.makedirs(build, exist_ok=True)
    subprocess.run(
        [_bin(root, "ansible-galaxy"), "collection", "build", "--force", "--output-path", build, root],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    (artifact,) = glob.glob(os.path.join(build, "avatar_mgmt-ops-*.tar.gz"))
    subprocess.run(
        [_bin(root, "ansible-galaxy"), "collection", "install", "--force", "--no-deps", "-p", dest, artifact],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return dest


class Job:
    """One AWX-like job template: a project copy, an exported inventory, credentials; ``run`` launches a job."""

    def __init__(self, root, base, *, inventory, ssh_key, vault_id, vault_password, collections, platform_state=""):
        self.root, self.base = root, base
        self.platform_state = platform_state
        self.inventory, self.ssh_key = inventory, ssh_key
        self.vault_id, self.vault_password = vault_id, vault_password
        self.collections = collections
        self.project = os.path.join(base, "project")
        if not os.path.isdir(self.project):
            files = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout.split(
                b"\0"
            )
            for rel in (f.decode() for f in files if f):
                src = os.path.join(root, rel)
                if rel.startswith(".collections/") or not os.path.lexists(src):
                    continue
                dst = os.path.join(self.project, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst, follow_symlinks=False)

    def run(
        self,
        playbook,
        extravars=None,
        *,
        job_id,
        user="admin",
        schedule="",
        limit="",
        check=False,
        diff=False,
        verbosity=0,
        timeout=900,
    ):
        """Launch ``playbook`` (relative to the project) as job ``job_id``; returns a ``Result``."""
        pdd = os.path.join(self.base, f"job-{job_id}")
        shutil.rmtree(pdd, ignore_errors=True)
        os.makedirs(os.path.join(pdd, "env"))
        os.makedirs(os.path.join(pdd, "inventory"))
        os.symlink(self.project, os.path.join(pdd, "project"))
        hosts = os.path.join(pdd, "inventory", "hosts")
        with open(hosts, "w", encoding="utf-8") as handle:
            handle.write(f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(self.inventory)!r})\n")
        os.chmod(hosts, 0o700)
        awx = {
            "awx_job_id": job_id,
            "awx_job_template_name": os.path.basename(playbook),
            "awx_job_launch_type": "scheduled" if schedule else "manual",
            "awx_project_revision": "",
            "tower_job_id": job_id,
        }
        if schedule:
            awx.update(awx_schedule_name=schedule, tower_schedule_name=schedule)
        else:
            awx.update(awx_user_name=user, awx_user_id=1, tower_user_name=user)
        self._write(pdd, "extravars", dict(awx, **(extravars or {})))
        self._write(pdd, "passwords", {rf"Vault password \({self.vault_id}\):\s*?$": self.vault_password})
        with open(os.path.join(pdd, "env", "ssh_key"), "w", encoding="utf-8") as handle, open(self.ssh_key) as key:
            handle.write(key.read())
        home = os.path.join(pdd, "home")
        os.makedirs(home)
        self._write(
            pdd,
            "envvars",
            {
                "HOME": home,
                "ANSIBLE_COLLECTIONS_PATH": os.path.join(pdd, "requirements_collections") + ":" + self.collections,
                "ANSIBLE_FORCE_COLOR": "False",
                "JOB_ID": str(job_id),
                # The sandbox inventory finds the test platform's CA and keys here (AWX: the job template's
                # environment, e.g. from a custom credential).
                "AVATAR_PLATFORM_STATE": self.platform_state,
                "AWX_PRIVATE_DATA_DIR": pdd,
            },
        )
        cmdline = ["--vault-id", f"{self.vault_id}@prompt"]
        if limit:
            cmdline += ["--limit", limit]
        if check:
            cmdline.append("--check")
        if diff:
            cmdline.append("--diff")
        if verbosity:
            cmdline.append("-" + "v" * verbosity)
        with open(os.path.join(pdd, "env", "cmdline"), "w", encoding="utf-8") as handle:
            handle.write(" ".join(cmdline))
        self._write(pdd, "settings", {"job_timeout": timeout, "suppress_ansible_output": True})
        ident = uuid.uuid4().hex
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
        environ["PATH"] = os.path.join(self.root, ".venv", "bin") + ":" + environ.get("PATH", "/usr/bin:/bin")
        proc = subprocess.run(
            [_bin(self.root, RUNNER_BIN), "run", pdd, "-p", playbook, "--ident", ident],
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout + 120,
            check=False,
        )
        return Result(os.path.join(pdd, "artifacts", ident), proc)

    @staticmethod
    def _write(pdd, name, data):
        path = os.path.join(pdd, "env", name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.chmod(path, 0o600)


class Result:
    """What AWX keeps of a job: its rc and status, its stdout, every event, and the ``set_stats`` data."""

    def __init__(self, artifacts, proc):
        self.artifacts, self.proc = artifacts, proc

        def read(name, default=""):
            try:
                with open(os.path.join(artifacts, name), encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError:
                return default

        self.rc = int(read("rc", "-1") or -1)
        self.status = read("status")
        self.stdout = read("stdout")
        self.events = []
        for path in sorted(glob.glob(os.path.join(artifacts, "job_events", "*.json"))):
            with open(path, encoding="utf-8") as handle:
                self.events.append(json.load(handle))
        stats = [e for e in self.events if e.get("event") == "playbook_on_stats"]
        self.stats = (stats[-1].get("event_data") or {}).get("artifact_data", {}) if stats else {}

    def raw_events(self):
        """Every event file's bytes as text, as AWX stores them (for secret searches)."""
        texts = []
        for path in sorted(glob.glob(os.path.join(self.artifacts, "job_events", "*.json"))):
            with open(path, encoding="utf-8") as handle:
                texts.append(handle.read())
        return "\n".join(texts)

    def why(self):
        """Enough of the run to see why it did what it did (for assertion messages)."""
        return f"rc={self.rc} status={self.status}\n{self.stdout[-4000:]}\n{self.proc.stderr[-2000:]}"
