# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the molecule scenarios' testinfra tests share: the sandbox vault, the GHCR
stand-in's own answers, running the collection's playbooks, and the stack's state."""

import base64
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml

ROOT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
STATE = os.environ.get("AVATAR_PLATFORM_STATE", os.path.join(ROOT, ".cache/platform"))

PROJECT = "avatar-production"
DIR = "/opt/deploy-avatar-prod"
PLATFORM = os.path.join(ROOT, "tests/platform/platform.sh")
# The production proxy hosts of the sandbox inventory (what Host header reaches which service through NPM).
DOMAINS = {"frontend": "daidai.amis.hk", "api": "api.daidai.amis.hk", "directus": "directus.daidai.amis.hk"}
INSPECT_FORMAT = '{{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}} {{.Id}}'


def server():
    """The scenario's (first) server as its molecule.yml names it: ``name`` (its container on this machine's
    Docker), ``ssh_port``, ``http_port`` (its port 80 on the control node), and ``second_server`` if it has one."""
    with open(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "molecule.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["platforms"][0]


def vault():
    """The sandbox vault's values (vault_* -> text), decrypted value by value by hack/vault_inline.py, the one
    reader of the inline !vault form (tests/platform/platform.sh reads the registry token with it too)."""
    out = subprocess.run(
        [
            os.path.join(ROOT, ".venv/bin/python"),
            os.path.join(ROOT, "hack/vault_inline.py"),
            "view",
            "--json",
            "--vault-id",
            "sandbox@" + os.path.join(ROOT, "inventories/sandbox/vault-password.txt"),
            os.path.join(ROOT, "inventories/sandbox/group_vars/all/vault.yml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {k: v for k, v in json.loads(out).items() if k.startswith("vault_")}


def leaked(output, value):
    """Whether ``value`` appears in ``output`` as it is or in a form output escapes it to (JSON, YAML,
    an env file), or its longest run of letters and digits does (a partly escaped copy)."""
    if not value:
        return False
    env_form = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    forms = {value, json.dumps(value)[1:-1], env_form, json.dumps(env_form)[1:-1], repr(value)[1:-1]}
    runs = re.findall(r"[A-Za-z0-9]{8,}", value)
    forms.update(run for run in runs if len(run) >= 12 or run == max(runs, key=len))
    if not runs and len(value) >= 16:
        forms.update({value[:12], env_form[:12]})
    return any(form in output for form in forms)


def container_env(host, service):
    """The environment the engine gave the running container of ``service`` (from docker inspect)."""
    labels = f"--filter label=com.docker.compose.project={PROJECT} --filter label=com.docker.compose.service={service}"
    cid = host.check_output(f"docker ps -q {labels}").split()[0]
    env = json.loads(host.check_output(f"docker inspect --format '{{{{json .Config.Env}}}}' {cid}"))
    return dict(item.split("=", 1) for item in env)


def registry_digest(image, tag):
    """What the GHCR stand-in itself says the tag's digest is."""
    secrets = vault()
    ctx = ssl.create_default_context(cafile=os.path.join(STATE, "ca/ca.crt"))
    req = urllib.request.Request(
        f"https://127.0.0.1:5443/v2/rayhu/avatar-mgmt/{image}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.oci.image.index.v1+json, "
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "Authorization": "Basic "
            + base64.b64encode(
                ("{}:{}".format(secrets["vault_ghcr_username"], secrets["vault_ghcr_token"])).encode()
            ).decode(),
        },
    )
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return resp.headers["Docker-Content-Digest"]


def playbook(name, *extra):
    """Run a playbook as an operator types it at the repository root (deploy.yml imports playbooks/deploy.yml)."""
    cmd = [os.path.join(ROOT, ".venv/bin/ansible-playbook"), name, "-i", INVENTORY, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)


def playbook_notified(name, *extra):
    """``playbook()`` with the notify role sending every outcome to a webhook receiver on this machine (the control
    node, where the role sends from). Returns the run and the events received: what set_stats reported too."""
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    from ansible_collections.avatar_mgmt.ops.tests.support.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as receiver, tempfile.NamedTemporaryFile("w", suffix=".json") as settings:
        json.dump(
            {"notify_on": ["success", "failure"], "notify_targets": [{"type": "webhook", "url": receiver.url}]},
            settings,
        )
        settings.flush()
        res = playbook(name, "-e", "@" + settings.name, *extra)
        return res, [json.loads(r["body"]) for r in receiver.received]


def running(host):
    """service -> (container id, image digest it runs)."""
    out = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={PROJECT}")
    result = {}
    for cid in out.split():
        svc, image, full = host.check_output(f"docker inspect -f '{INSPECT_FORMAT}' {cid}").split()
        result[svc] = (full, image.split("@", 1)[1] if "@" in image else image)
    return result


def npm_upstream_command(domain=None):
    """A shell command that prints what NPM's proxy hosts forward to, as nginx loads it (the ``set $server "...";``
    line of each proxy host's file, read in the proxy container: no API credentials needed); only the host that
    serves ``domain`` when given. :func:`npm_upstreams` reads its output."""
    files = "/data/nginx/proxy_host/*.conf"
    if domain:
        files = f'$(grep -l "server_name {domain};" {files})'
    return f"docker exec {PROJECT}-proxy-1 sh -c 'grep -h \"set \\$server\" {files}'"


def npm_upstreams(output):
    """The upstreams in the output of :func:`npm_upstream_command`, in its order."""
    return [line.split('"')[1] for line in output.splitlines() if "set $server" in line]


def npm_all_upstreams(host):
    """What every proxy host of NPM forwards to, sorted."""
    return sorted(npm_upstreams(host.check_output(npm_upstream_command())))


def npm_upstream(host, domain):
    """The one upstream NPM's proxy host for ``domain`` forwards to."""
    found = npm_upstreams(host.check_output(npm_upstream_command(domain)))
    assert len(found) == 1, f"NPM has {len(found)} proxy host files for {domain}: {found}"
    return found[0]


def forward_to(domain, forward_host, expect):
    """Point ``domain``'s proxy host at ``forward_host`` with molecule/faults/forward.yml (npm_forward, as an
    operator's or a killed run's write would leave it); it checks the proxy serves ``expect``."""
    res = playbook(
        os.path.join(ROOT, "molecule", "faults", "forward.yml"),
        "-e",
        f"domain={domain}",
        "-e",
        f"forward_host={forward_host}",
        "-e",
        f"expect={expect}",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def ledger(host):
    return json.loads(host.file(DIR + "/releases/index.json").content_string)


class Load:
    """40 requests/s through the proxy (the server's published port on the control node) until stopped; bounded.

    Every request that does not answer 200 within 5 s counts as failed, with its reason.
    """

    def __init__(self, domain, path, port, rate=40, limit_s=180):
        self.url = f"http://127.0.0.1:{port}{path}"
        self.domain, self.interval, self.limit_s = domain, 1.0 / rate, limit_s
        self.ok, self.failures, self.worst = 0, [], 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        start = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - start < self.limit_s:
            t0 = time.monotonic()
            try:
                req = urllib.request.Request(self.url, headers={"Host": self.domain})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    resp.read()
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"HTTP {resp.status}")
            except Exception as exc:  # noqa: BLE001 - every failure of a request counts, whatever it is
                self.failures.append(repr(exc))
            took = time.monotonic() - t0
            self.worst = max(self.worst, took)
            time.sleep(max(0.0, self.interval - took))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
