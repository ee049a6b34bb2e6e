# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The real nginx-proxy-manager in front of the stack, its proxy hosts as code (after test_faults.py)."""

import json
import os
import re
import shlex
import subprocess
import sys
import time

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import (
    DIR,
    DOMAINS,
    INVENTORY,
    PROJECT,
    STATE,
    Load,
    container_env,
    forward_to,
    ledger,
    npm_upstream,
    playbook,
    server,
    vault,
)

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")

PATHS = {"frontend": "/", "api": "/health", "directus": "/server/health"}
HTTP_PORT = server()["http_port"]  # the server's port 80 on the control node


def _conf_state(host):
    """The proxy hosts' nginx files (name -> sha256) and the nginx worker PIDs (a reload replaces them)."""
    files = host.check_output(f"sudo sh -c 'cd {DIR}/jc21/data/nginx/proxy_host && sha256sum *.conf'")
    workers = host.check_output(
        f"docker exec {PROJECT}-proxy-1 sh -c "
        "'for p in /proc/[0-9]*; do tr \"\\0\" \" \" < $p/cmdline 2>/dev/null"
        " | grep -q \"^nginx: worker\" && basename $p; done | sort'"
    )
    return files, workers


def test_the_proxy_is_the_real_npm_pinned(host):
    image = host.check_output(f"docker inspect -f '{{{{.Config.Image}}}}' {PROJECT}-proxy-1")
    assert image.endswith("/jc21/nginx-proxy-manager:2.15.1")
    api = json.loads(host.check_output("curl -s http://127.0.0.1:81/api/"))
    assert api["version"] == {"major": 2, "minor": 15, "revision": 1}
    assert api["setup"] is True


def test_every_domain_answers_over_http_and_https(host):
    for service, domain in DOMAINS.items():
        path = PATHS[service]
        code = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {domain}' http://127.0.0.1{path}")
        assert code == "200", (service, "http", code)
        # HTTPS with the uploaded certificate, verified against the test CA the server trusts.
        code = host.check_output(
            f"curl -s -o /dev/null -w '%{{http_code}}' --resolve {domain}:443:127.0.0.1 https://{domain}{path}"
        )
        assert code == "200", (service, "https", code)
    unknown = host.check_output("curl -s -o /dev/null -w '%{http_code}' -H 'Host: nobody.example' http://127.0.0.1/")
    assert unknown == "200"  # NPM's default site, not one of ours
    assert "Congratulations" not in host.check_output(f"curl -s -H 'Host: {DOMAINS['frontend']}' http://127.0.0.1/")


def test_a_second_run_writes_nothing_and_does_not_reload(host):
    before = _conf_state(host)
    res = playbook("proxy.yml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "changed=0" in res.stdout.split("PLAY RECAP")[-1]
    assert _conf_state(host) == before


def test_an_invalid_snippet_is_refused_and_the_previous_config_keeps_serving(host):
    before = _conf_state(host)
    res = playbook(os.path.join(os.path.dirname(__file__), "..", "bad_snippet.yml"), "-e", f"domain={DOMAINS['api']}")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert 'unknown directive "not_a_directive"' in out, out[-3000:]
    code = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {DOMAINS['api']}' http://127.0.0.1/health"
    )
    assert code == "200"
    assert _conf_state(host)[0] == before[0]


def test_no_secret_in_verbose_output(host):
    res = playbook("proxy.yml", "-vvv")
    assert res.returncode == 0, res.stdout[-3000:]
    out = res.stdout + res.stderr
    assert vault()["vault_npm_admin_password"] not in out
    with open(os.path.join(STATE, "proxy", "tls.key")) as f:
        key_body = [line for line in f.read().splitlines() if line and "PRIVATE KEY" not in line]
    assert not any(line in out for line in key_body[:5]), "a line of the TLS private key was printed"


def test_switching_the_api_upstream_under_load_loses_no_request(host):
    running_version = json.loads(
        host.check_output(f"curl -s -H 'Host: {DOMAINS['api']}' http://127.0.0.1/api/version")
    )["backend"]["version"]
    other = "v1.1.0" if running_version != "v1.1.0" else "v1.2.0"
    # The other version's api image, as the ledger recorded it (its images are kept on the host).
    image = next(r["images"]["api"]["reference"] for r in reversed(ledger(host)["releases"]) if r["version"] == other)
    name = f"{PROJECT}-api-green"
    host.run(f"docker rm -f {name}")
    # The env file is written for Compose (KEY="value", escaped), which `docker run --env-file` would take
    # literally: the second api gets the serving api's values of the env file's keys instead.
    keys = host.check_output(f"sudo sed -n 's/=.*//p' {DIR}/.env.prod.api").split()
    serving = container_env(host, "api")
    env_args = " ".join(f"-e {shlex.quote(f'{k}={serving[k]}')}" for k in keys if k in serving)
    host.check_output(
        f"docker run -d --name {name} --network {PROJECT}_backend --network-alias api-green {env_args} {image}"
    )
    try:
        end = time.monotonic() + 60
        while not host.run(f"docker exec {name} wget -q -O - http://127.0.0.1:3000/health").succeeded:
            assert time.monotonic() < end, "the second api did not come up"
            time.sleep(1)
        with Load(DOMAINS["api"], "/health", HTTP_PORT) as load:
            time.sleep(2)
            forward_to(DOMAINS["api"], "api-green", other)
            time.sleep(3)
            forward_to(DOMAINS["api"], "api", running_version)
            time.sleep(12)  # past NPM's resolver cache, before the green container goes
        figures = {"ok": load.ok, "failed": len(load.failures), "worst_s": round(load.worst, 3)}
        with open(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".cache", "proxy-switch.json"), "w") as f:
            json.dump(figures, f)
        assert load.failures == [], load.failures[:5]
        assert load.ok >= 200, load.ok
        assert load.worst < 2.0, load.worst
    finally:
        host.run(f"docker rm -f {name}")


NPM_DATABASE = DIR + "/jc21/data/database.sqlite"


def _npm_database_state(host):
    """NPM's database file as the declaration's record keeps it (size, times in ns, inode, device)."""
    script = (
        "import json, os; st = os.stat('" + NPM_DATABASE + "'); print(json.dumps({'size': st.st_size,"
        " 'mtime_ns': st.st_mtime_ns, 'ctime_ns': st.st_ctime_ns, 'inode': st.st_ino, 'device': st.st_dev}))"
    )
    return json.loads(host.check_output(f"sudo python3 -c {shlex.quote(script)}"))


def _npm_record(host):
    """The record of the last declaration of the proxy hosts, on the server."""
    return json.loads(host.check_output(f"sudo cat {DIR}/.npm-declared"))


def test_a_deploy_that_changes_nothing_leaves_out_a_declaration_npm_holds_and_redeclares_after_any_change(host):
    version = json.loads(host.check_output(f"curl -s -H 'Host: {DOMAINS['api']}' http://127.0.0.1/api/version"))[
        "backend"
    ]["version"]
    held = "The proxy hosts were not declared again"
    first = playbook("deploy.yml", "-e", f"image_tag={version}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    # The record on the server names NPM's database as the first run left it.
    recorded = _npm_record(host)
    assert recorded["database"] == NPM_DATABASE
    assert recorded["state"] == _npm_database_state(host)
    second = playbook("deploy.yml", "-e", f"image_tag={version}")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert held in second.stdout, "nothing changed NPM since the first run's declaration"
    # Not declared again, as the host shows it: NPM's database was not written and the record is the same.
    assert _npm_database_state(host) == recorded["state"]
    assert _npm_record(host) == recorded
    # NPM changed outside the collection, as from its web UI: the api's proxy host names the api container itself.
    container = host.check_output(
        f"docker ps --filter label=com.docker.compose.project={PROJECT} "
        "--filter label=com.docker.compose.service=api --format '{{.Names}}'"
    )
    forward_to(DOMAINS["api"], container, version)
    assert npm_upstream(host, DOMAINS["api"]) == container
    changed_by_hand = _npm_database_state(host)
    assert changed_by_hand != recorded["state"]
    third = playbook("deploy.yml", "-e", f"image_tag={version}")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-2000:]
    assert held not in third.stdout
    # Declared again: NPM's database written, and the new record names its state now.
    assert _npm_database_state(host) != changed_by_hand
    assert _npm_record(host)["state"] == _npm_database_state(host)
    assert npm_upstream(host, DOMAINS["api"]) == "api", "the declaration put the proxy host back on the service name"
    fourth = playbook("deploy.yml", "-e", f"image_tag={version}")
    assert fourth.returncode == 0, fourth.stdout[-3000:] + fourth.stderr[-2000:]
    assert held in fourth.stdout


def test_a_switch_keeps_a_declaration_npm_holds_on_record_unless_npm_changes_beside_it(host):
    """A switch writes only the forward hosts it hands over and puts them back: when those were NPM's only changes,
    the declaration stays on record and is left out; any other change of NPM's database during the switch (here
    its file touched while two api containers run) and the proxy hosts are declared again."""
    version = json.loads(host.check_output(f"curl -s -H 'Host: {DOMAINS['api']}' http://127.0.0.1/api/version"))[
        "backend"
    ]["version"]
    other = "v1.1.0" if version != "v1.1.0" else "v1.2.0"
    held = "The proxy hosts were not declared again"
    # The run before this one declared or held the declaration: it is on record now.
    first = playbook("deploy.yml", "-e", f"image_tag={version}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    switch = playbook("deploy.yml", "-e", f"image_tag={other}", "-e", "compose_deploy_backup_before_deploy=false")
    assert switch.returncode == 0, switch.stdout[-3000:] + switch.stderr[-2000:]
    # The summary line, as the YAML (') or the JSON (") result format quotes it.
    assert re.search(r"recreated: (api, frontend|frontend, api)['\"]", switch.stdout), switch.stdout[-3000:]
    assert held in switch.stdout
    said = " ".join(switch.stdout.split())
    assert "own writes were the only changes of NPM" in said
    # Nothing left between the switch and the record: the switch recorded the release in its own call, as the
    # role's record would have (the ledger's entry, the release's files kept, the lock given back).
    assert "the switch recorded the release" in said
    entry = ledger(host)["releases"][-1]
    assert (entry["version"], entry["result"], entry["stage"], entry["action"]) == (
        other,
        "success",
        "verify",
        "deploy",
    )
    assert sorted(entry["recreated"]) == ["api", "frontend"]
    assert entry["compose_sha256"] == host.file(f"{DIR}/docker-compose.prod.yml").sha256sum
    assert sorted(entry["env_checksums"]) == [".env.prod.api", ".env.prod.directus"]
    assert host.file(f"{DIR}/releases/{entry['id']}/.env.prod.api").mode == 0o600
    assert ledger(host)["current"] == entry["id"]
    assert not host.file(f"{DIR}/.deploy.lock").exists
    assert npm_upstream(host, DOMAINS["api"]) == "api", "the switch put the proxy host back on the service name"
    assert (
        json.loads(host.check_output(f"curl -s -H 'Host: {DOMAINS['api']}' http://127.0.0.1/api/version"))["backend"][
            "version"
        ]
        == other
    )

    # On the server itself (no round trip): as soon as the handover's second api container exists, before the
    # switch moves the proxy to it, NPM's database file is touched, as any write of someone else would change it.
    api = f"--filter label=com.docker.compose.project={PROJECT} --filter label=com.docker.compose.service=api"
    script = (
        f"for i in $(seq 1 2400); do if [ $(docker ps -q {api} | wc -l) -ge 2 ]; then "
        f"touch {DIR}/jc21/data/database.sqlite; echo touched; exit 0; fi; sleep 0.05; done; exit 1"
    )
    beside = subprocess.Popen(
        ["docker", "exec", server()["name"], "sh", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    back = playbook("deploy.yml", "-e", f"image_tag={version}", "-e", "compose_deploy_backup_before_deploy=false")
    touched = beside.communicate(timeout=180)[0]
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
    assert touched.strip() == "touched", "the handover ran with two api containers at some point"
    assert held not in back.stdout, "NPM changed beside the switch: the proxy hosts were declared again"
    # The result line may be coloured (the molecule run forces colour); skipped, it would read "skipping:".
    declared = r"TASK \[avatar_mgmt\.ops\.npm_proxy : Declare the proxy hosts\] \*+\n(?:\x1b\[[0-9;]*m)?(ok|changed): "
    assert re.search(declared, back.stdout), "the declaration ran (not skipped)"
    assert "switch recorded the release" not in " ".join(back.stdout.split())
    entry = ledger(host)["releases"][-1]
    assert (entry["version"], entry["result"]) == (version, "success"), "the role recorded it after the declaration"
    assert not host.file(f"{DIR}/.deploy.lock").exists
    assert npm_upstream(host, DOMAINS["api"]) == "api"
