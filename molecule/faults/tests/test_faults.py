# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fault scenarios on the real server, from the state the converge leaves (v1.2.0 over v1.1.0, no lock).
Each test checks what runs (container ids, image digests), the ledger and the lock, and leaves
v1.2.0 running with no lock for the next one."""

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared"))
from avatar_testlib import (
    DIR,
    DOMAINS,
    INVENTORY,
    PLATFORM,
    PROJECT,
    ROOT,
    STATE,
    Load,
    forward_to,
    ledger,
    npm_upstream,
    npm_upstream_command,
    npm_upstreams,
    playbook,
    registry_digest,
    running,
    server,
)

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")


LOCK = DIR + "/.deploy.lock"
SERVER = server()["name"]  # the server's container on this machine's Docker
HTTP_PORT = server()["http_port"]  # the server's port 80 on the control node


def _current(book):
    return next(r for r in book["releases"] if r["id"] == book["current"])


def _start(*extra):
    """Start a playbook in its own process group (so the whole run can be killed as an operator's Ctrl-\\ would)."""
    cmd = [os.path.join(ROOT, ".venv/bin/ansible-playbook"), "deploy.yml", "-i", INVENTORY, *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _wait_for(what, predicate, seconds, proc=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}: {proc.stdout.read()[-3000:]}")
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _settled(host):
    """No docker compose left running on the host (a killed run's compose may finish on its own).
    The brackets keep pgrep from matching the shell that runs it."""
    return host.run("pgrep -f '[d]ocker[ -]compose'").rc != 0


def _api_runs(host, digest):
    """A running api container of the project uses ``digest`` (one docker call: containers come and go;
    --no-trunc, or docker ps leaves the digest out of the image name)."""
    out = host.run(
        f"docker ps --filter label=com.docker.compose.project={PROJECT} --filter label=com.docker.compose.service=api"
        " --no-trunc --format '{{.Image}}'"
    ).stdout
    return digest in out


def test_crash_looping_release_fails_the_hold_and_is_rolled_back(host):
    """v1.2.3's api passes every check, then exits 4 s after each start (Docker restarts it): each check passes
    once, so the hold catches it. On a loaded machine the switch's own checks of the new container can outlast
    those 4 s: the settle then catches it, before the gate (the hold itself is proven by
    tests/unit/plugins/module_utils/test__health.py and test__gate.py). Either way it is caught while the old
    containers still run, the proxy goes back to them, and the release is recorded as rolled back."""
    good = running(host)
    assert good["api"][1] == registry_digest("api", "v1.2.0")
    res = playbook("deploy.yml", "-e", "image_tag=v1.2.3")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    stage = ledger(host)["releases"][-1]["stage"]
    assert stage in ("verify", "switch"), out[-3000:]
    if stage == "verify":
        assert "in the hold that followed" in out, out[-3000:]
    assert "Rolled back automatically: v1.2.0" in out, out[-3000:]
    now = running(host)
    assert now["api"][1] == registry_digest("api", "v1.2.0")
    assert now["frontend"][1] == registry_digest("frontend", "v1.2.0")
    assert now["db"][0] == good["db"][0]
    # Caught while the old containers still ran (the switch's settle, or its gate and hold, both before the old ones
    # go): the proxy went back to them, the very containers that served before, never replaced.
    assert (now["api"][0], now["frontend"][0]) == (good["api"][0], good["frontend"][0]), out[-3000:]
    book = ledger(host)
    last = book["releases"][-1]
    assert (last["version"], last["result"]) == ("v1.2.3", "rolled_back")
    assert _current(book)["version"] == "v1.2.0"
    assert not host.file(DIR + "/.deploy.lock").exists


def _api_containers(host):
    """``[(container id, image digest)]`` of the project's api containers (running or not)."""
    out = host.check_output(
        f"docker ps -a --filter label=com.docker.compose.project={PROJECT}"
        " --filter label=com.docker.compose.service=api --no-trunc --format '{{.ID}} {{.Image}}'"
    )
    return sorted(
        (cid, image.split("@", 1)[1] if "@" in image else image)
        for cid, image in (line.split() for line in out.splitlines())
    )


def _project_containers(host):
    return sorted(
        host.check_output(f"docker ps -aq --no-trunc --filter label=com.docker.compose.project={PROJECT}").split()
    )


def test_killed_deploy_is_detected_and_recovered(host):
    """SIGKILL of the whole ansible-playbook process group, and of the module on the server, once the new api
    container runs beside the old one (the handover has started): two api containers, the proxy pinned to the
    old one. The lock stays and the ledger still names v1.2.0;
    status.yml says what runs does not agree and what to do; a deploy without break_lock is refused as stale
    and touches nothing; the advised deploy settles the stack on v1.1.0 under load without losing a request
    and records it."""
    v110, v120 = registry_digest("api", "v1.1.0"), registry_digest("api", "v1.2.0")
    assert [d for _id, d in _api_containers(host)] == [v120]
    known = [r["id"] for r in ledger(host)["releases"]]
    proc = _start("-e", "image_tag=v1.1.0")
    try:
        _wait_for("the lock", lambda: host.file(LOCK).exists, 300, proc)
        # The handover has started: the new release's api container runs (beside the old one).
        _wait_for("the new api container", lambda: _api_runs(host, v110), 300, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # The module on the server outlives its SSH connection and would finish the handover: kill it too
        # (the server's python processes; the stack's containers run none), as a reboot or OOM kill would.
        subprocess.run(["docker", "exec", SERVER, "pkill", "-9", "-f", "^/usr/bin/python3"], check=False)
    assert proc.returncode == -signal.SIGKILL
    _wait_for("compose on the host to finish", lambda: _settled(host), 120)
    time.sleep(2)

    assert host.file(LOCK).exists, "a killed run cannot release its lock"
    book = ledger(host)
    assert _current(book)["version"] == "v1.2.0", "the killed run recorded nothing"
    assert [r["id"] for r in book["releases"]] == known
    left = _project_containers(host)
    # Cut short mid-handover: the old api and the new one run side by side.
    assert sorted(d for _id, d in _api_containers(host)) == sorted([v110, v120])

    status = playbook("status.yml")
    out = status.stdout + status.stderr
    assert status.returncode == 0, out[-3000:]
    assert "DOES NOT AGREE with the ledger" in out
    assert "lock           : The lock" in out, out[-3000:]
    assert "is gone" in out, out[-3000:]
    assert "next step      : The lock of a deploy of v1.1.0" in out, out[-3000:]
    assert "compose_deploy_break_lock=true" in out

    refused = playbook("deploy.yml", "-e", "image_tag=v1.1.0")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "It is stale" in out, out[-3000:]
    assert _project_containers(host) == left
    assert host.file(LOCK).exists

    with Load(DOMAINS["api"], "/health", HTTP_PORT) as load:
        recover = playbook("deploy.yml", "-e", "image_tag=v1.1.0", "-e", "compose_deploy_break_lock=true")
    out = recover.stdout + recover.stderr
    assert recover.returncode == 0, out[-3000:]
    assert "What runs does not agree with the ledger" in out, out[-3000:]
    assert "The ledger names v1.2.0 as current: this run brings the stack to v1.1.0 and records it" in out
    assert load.failures == [], load.failures[:5]
    assert [d for _id, d in _api_containers(host)] == [v110], "one api container, of v1.1.0"
    now = running(host)
    assert now["frontend"][1] == registry_digest("frontend", "v1.1.0")
    book = ledger(host)
    cur = _current(book)
    assert (cur["version"], cur["result"]) == ("v1.1.0", "success")
    assert cur["images"]["api"]["digest"] == now["api"][1]
    assert cur["images"]["frontend"]["digest"] == now["frontend"][1]
    assert not host.file(LOCK).exists

    again = playbook("status.yml")
    assert again.returncode == 0
    assert "AGREES with the ledger" in again.stdout
    assert "lock           : none" in again.stdout
    assert "next step" not in again.stdout


def test_two_deploys_at_the_same_instant_exactly_one_proceeds(host):
    """Both start together: one takes the lock and deploys, the other is refused and changes nothing."""
    before = running(host)
    assert before["api"][1] == registry_digest("api", "v1.1.0")
    known = {r["id"] for r in ledger(host)["releases"]}
    runs = [_start("-e", "image_tag=v1.2.0"), _start("-e", "image_tag=v1.2.0")]
    outs = []
    for proc in runs:
        out, _err = proc.communicate(timeout=900)
        outs.append((proc.returncode, out))
    ok = [out for rc, out in outs if rc == 0]
    refused = [out for rc, out in outs if rc != 0]
    assert len(ok) == 1, [out[-2000:] for _rc, out in outs]
    assert len(refused) == 1
    assert "is held by" in refused[0], refused[0][-3000:]
    assert "changed=0" in refused[0].split("PLAY RECAP")[-1]
    now = running(host)
    assert now["api"][1] == registry_digest("api", "v1.2.0")
    assert now["db"][0] == before["db"][0]
    book = ledger(host)
    # Retention may drop old entries: count the new ones.
    assert len([r for r in book["releases"] if r["id"] not in known]) == 1, "exactly one run recorded a release"
    assert (_current(book)["version"], _current(book)["result"]) == ("v1.2.0", "success")
    assert not host.file(LOCK).exists


def _on_server(script):
    """``script``'s output, run in the server's shell straight through its container (no SSH round trip)."""
    done = subprocess.run(
        ["docker", "exec", SERVER, "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout


def _api_upstream_and_containers():
    """The api proxy host's upstream as NPM's nginx file names it, and ``{name: (id, image)}`` of the api
    containers that run: one look, on the server itself."""
    out = _on_server(
        npm_upstream_command(DOMAINS["api"]) + ";"
        f" docker ps --filter label=com.docker.compose.project={PROJECT}"
        " --filter label=com.docker.compose.service=api --no-trunc --format '{{.Names}} {{.ID}} {{.Image}}'"
    )
    # No upstream while NPM rewrites the proxy host's file (a write removes it first): '', the caller looks again.
    upstreams, containers = npm_upstreams(out), {}
    assert len(upstreams) <= 1, out
    for line in out.splitlines():
        if line.strip() and "set $server" not in line:
            name, cid, image = line.split()
            containers[name] = (cid, image.split("@", 1)[1] if "@" in image else image)
    return (upstreams or [""])[0], containers


def test_a_deploy_killed_while_its_gate_holds_is_recovered_keeping_the_container_the_proxy_serves(host):
    """SIGKILL once the proxy serves the new api container while the old one still runs (the health gate holds;
    the old containers go only after it): the deploy that recovers keeps the very container the proxy serves,
    removes the old one, records the release, and no request fails meanwhile."""
    v110, v120 = registry_digest("api", "v1.1.0"), registry_digest("api", "v1.2.0")
    assert [d for _id, d in _api_containers(host)] == [v120]
    proc = _start("-e", "image_tag=v1.1.0", "-e", "compose_deploy_backup_before_deploy=false")
    serving = None
    try:
        end = time.monotonic() + 300
        while serving is None and time.monotonic() < end and proc.poll() is None:
            upstream, containers = _api_upstream_and_containers()
            if len(containers) == 2 and containers.get(upstream, ("", ""))[1] == v110:
                serving = (upstream, containers[upstream][0])
            else:
                time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        subprocess.run(["docker", "exec", SERVER, "pkill", "-9", "-f", "^/usr/bin/python3"], check=False)
    assert serving is not None, f"the proxy never served the new api container beside the old: {proc.stdout.read()}"
    _wait_for("compose on the host to finish", lambda: _settled(host), 120)
    upstream, containers = _api_upstream_and_containers()
    # Cut short inside the hold: the proxy serves the new container, the old one still runs.
    assert upstream == serving[0]
    assert sorted(d for _cid, d in containers.values()) == sorted([v110, v120])
    assert host.file(LOCK).exists
    assert _current(ledger(host))["version"] == "v1.2.0"

    with Load(DOMAINS["api"], "/health", HTTP_PORT) as load:
        recover = playbook("deploy.yml", "-e", "image_tag=v1.1.0", "-e", "compose_deploy_break_lock=true")
    out = recover.stdout + recover.stderr
    assert recover.returncode == 0, out[-3000:]
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0
    # The container the proxy served is the one kept (not recreated), alone, behind the service name again.
    assert _api_containers(host) == [(serving[1], v110)]
    assert _api_upstream_and_containers()[0] == "api"
    cur = _current(ledger(host))
    assert (cur["version"], cur["result"]) == ("v1.1.0", "success")
    assert not host.file(LOCK).exists
    # v1.2.0 again for the next test.
    back = playbook("deploy.yml", "-e", "image_tag=v1.2.0", "-e", "compose_deploy_backup_before_deploy=false")
    assert back.returncode == 0, (back.stdout + back.stderr)[-3000:]
    assert [d for _id, d in _api_containers(host)] == [v120]


def test_a_container_a_killed_run_created_but_never_started_is_removed_at_once(host):
    """The state a run killed between the create of its new api container and its start leaves: the proxy host
    pinned to the old container, a new one created beside it (on no network, it never served). The next deploy sees
    it (a container that does not run), removes it without drain or settle, puts the proxy host back on the service's
    name and keeps the old container (same id); no request fails."""
    v120 = registry_digest("api", "v1.2.0")
    before = _api_containers(host)
    assert [d for _id, d in before] == [v120]
    old_name = host.check_output(f"docker inspect -f '{{{{.Name}}}}' {before[0][0]}").lstrip("/")
    host.check_output(
        f"sudo docker compose -p {PROJECT} -f {DIR}/docker-compose.prod.yml"
        " up --no-start --no-deps --no-recreate --scale api=2 api"
    )
    created = host.check_output(
        f"docker ps -a --filter status=created --filter label=com.docker.compose.project={PROJECT}"
        " --format '{{.Names}}'"
    ).split()
    assert len(created) == 1, created
    forward_to(DOMAINS["api"], old_name, "v1.2.0")
    assert npm_upstream(host, DOMAINS["api"]) == old_name

    with Load(DOMAINS["api"], "/health", HTTP_PORT) as load:
        res = playbook("deploy.yml", "-e", "image_tag=v1.2.0", "-e", "compose_deploy_backup_before_deploy=false", "-v")
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 0, out[-3000:]
    assert f"removed {created[0]} (created, never started)" in out, out[-3000:]
    # Not drained nor settled: nothing of that kind was waited for.
    assert "of drain" not in out, out[-3000:]
    assert "without a restart" not in out, out[-3000:]
    # The summary says what the run did: not "already running", though it recreated nothing.
    assert "recreated: nothing; settled the handover a killed run left of api" in out, out[-3000:]
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0
    assert _api_containers(host) == before
    assert npm_upstream(host, DOMAINS["api"]) == "api"
    assert _current(ledger(host))["version"] == "v1.2.0"
    assert not host.file(LOCK).exists


def test_a_full_disk_under_the_ledger_fails_the_record_and_the_previous_release_serves_on(host):
    """The ledger's filesystem is full (a tmpfs over releases/ holding a copy of the ledger, filled to the last
    page): the switch to v1.1.0 is done, its record fails (No space left on device), the run rolls back to v1.2.0
    under load without a failed request, cannot record that either, and says all of it. The ledger is left as it
    was and names what runs; no lock is left. Once there is space again, status agrees."""
    releases = DIR + "/releases"
    good = running(host)
    assert good["api"][1] == registry_digest("api", "v1.2.0")
    index_before = host.file(releases + "/index.json").content_string
    fill = (
        f"set -e; rm -rf /tmp/releases.copy; cp -a {releases} /tmp/releases.copy;"
        f" mount -t tmpfs -o size=64m,mode=0755 tmpfs {releases};"
        f" cp -a /tmp/releases.copy/. {releases}/; rm -rf /tmp/releases.copy;"
        f" dd if=/dev/zero of={releases}/.fill-1 bs=64k 2>/dev/null || true;"
        f" dd if=/dev/zero of={releases}/.fill-2 bs=4k 2>/dev/null || true;"
        # Full: not even two bytes more.
        f" if echo x 2>/dev/null > {releases}/.probe; then echo 'not full' >&2; exit 1; fi; rm -f {releases}/.probe"
    )
    # Whatever fails from here on, the mount goes (a full ledger left behind would fail every later test).
    unmount = (
        f"for i in 1 2 3 4 5; do mountpoint -q {releases} || exit 0; umount {releases} && exit 0; sleep 1; done;"
        f" umount -l {releases}"
    )
    try:
        host.run_expect([0], f"sudo sh -c {shlex.quote(fill)}")
        with Load(DOMAINS["api"], "/health", HTTP_PORT) as load:
            res = playbook("deploy.yml", "-e", "image_tag=v1.1.0", "-e", "compose_deploy_backup_before_deploy=false")
        out = " ".join((res.stdout + res.stderr).split())
        assert res.returncode != 0, out[-3000:]
        assert "No space left on device" in out, out[-3000:]
        assert "Rolled back automatically: v1.2.0" in out, out[-3000:]
        assert "could not be recorded" in out, out[-3000:]
        assert load.failures == [], load.failures[:5]
        now = running(host)
        assert now["api"][1] == registry_digest("api", "v1.2.0")
        assert now["frontend"][1] == registry_digest("frontend", "v1.2.0")
        assert now["db"][0] == good["db"][0]
        # Nothing of this run in the ledger: it names v1.2.0, which runs.
        assert host.file(releases + "/index.json").content_string == index_before
        assert not host.file(LOCK).exists
    finally:
        cleanup = host.run(f"sudo sh -c {shlex.quote(unmount)}")
    assert cleanup.rc == 0, cleanup.stderr
    assert host.file(releases + "/index.json").content_string == index_before
    status = playbook("status.yml")
    assert status.returncode == 0, status.stdout[-3000:]
    assert "DOES NOT AGREE" not in status.stdout, status.stdout[-3000:]


SECOND = server()["second_server"]["name"]
SECOND_SSH = server()["second_server"]["ssh_port"]


def test_serial_run_stops_after_the_first_host_and_says_the_second_was_skipped(host):
    """Two production hosts, deploy_serial=1, a release that fails its health gate: the first host is rolled
    back, the second is never touched, and the run names it as skipped."""
    # The second production server: started by create.yml, bootstrapped and brought to v1.2.0 by prepare.yml
    # and converge.yml beside the first (molecule/faults/second_server.yml). It joins the other tests' runs
    # only here, in an inventory beside molecule's (same group_vars).
    extra = os.path.join(os.path.dirname(INVENTORY), "second_host.yml")
    with open(extra, "w", encoding="utf-8") as handle:
        handle.write(
            "all:\n  children:\n    production:\n      hosts:\n"
            f"        {SECOND}:\n          ansible_host: 127.0.0.1\n          ansible_port: {SECOND_SSH}\n"
            f"          ansible_user: deploy\n          ansible_private_key_file: {STATE}/ssh/id_ed25519\n"
            f"    sandbox:\n      hosts:\n        {SECOND}: {{}}\n"
        )
    try:
        second = testinfra.get_host(
            f"ssh://deploy@127.0.0.1:{SECOND_SSH}",
            ssh_identity_file=f"{STATE}/ssh/id_ed25519",
            ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        )
        first_before, second_before = running(host), running(second)
        second_book = ledger(second)
        assert second_before["api"][1] == first_before["api"][1] == registry_digest("api", "v1.2.0")
        assert (_current(second_book)["version"], _current(second_book)["result"]) == ("v1.2.0", "success")
        assert not second.file(LOCK).exists

        res = playbook("deploy.yml", "-i", extra, "-e", "image_tag=v1.2.1", "-e", "deploy_serial=1")
        out = res.stdout + res.stderr
        assert res.returncode != 0
        assert "Rolled back automatically: v1.2.0" in out, out[-3000:]
        assert f"Skipped, left as they were (not reached: deploy_serial=1): {SECOND}." in out, out[-3000:]
        # The first host: rolled back, recorded as such.
        assert running(host)["api"][1] == registry_digest("api", "v1.2.0")
        last = ledger(host)["releases"][-1]
        assert (last["version"], last["result"]) == ("v1.2.1", "rolled_back")
        # The second host: the same containers, the same ledger, no lock.
        assert running(second) == second_before
        assert ledger(second) == second_book
        assert not second.file(LOCK).exists
    finally:
        # The tests after this one run beside no second server, as before it was started with the first.
        subprocess.run(["bash", PLATFORM, "rm", SECOND], check=False)
        os.remove(extra)
