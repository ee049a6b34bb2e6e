# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the avatar_mgmt.ops.health_verify module glue.

exit_json / fail_json are patched to raise, as community.general's tests do.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _health, _lock
from ansible_collections.avatar_mgmt.ops.plugins.modules import health_verify
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness, ports
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_docker import FakeDockerClient
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson


@pytest.fixture
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)


def _run(args, expect):
    return module_harness.run_module(health_verify, args, expect)


@pytest.fixture
def open_port():
    with ports.listening_port(4) as port:
        yield port


@pytest.fixture
def closed_port():
    return ports.closed_port()


def _tcp(name, port):
    return {"name": name, "type": "tcp", "host": "127.0.0.1", "port": port}


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize("check_mode", [False, True])
def test_all_checks_pass(open_port, check_mode):
    result = _run({"checks": [_tcp("db", open_port)], "deadline": 0, "_ansible_check_mode": check_mode}, ExitJson)
    assert result["changed"] is False
    assert result["healthy"] is True
    assert result["summary"] == {
        "total": 1,
        "passed": 1,
        "failed": 0,
        "failed_names": [],
        "elapsed": pytest.approx(result["summary"]["elapsed"]),
        "held": None,
    }
    assert result["checks"][0]["status"] == "connected"
    assert result["checks"][0]["attempts"] == 1
    assert result["msg"] == "All 1 health checks passed."


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize(
    "fail_on_error, expect",
    [(True, FailJson), (False, ExitJson)],
)
def test_fail_on_error(open_port, closed_port, fail_on_error, expect):
    args = {
        "checks": [_tcp("db", open_port), _tcp("redis", closed_port)],
        "deadline": 1,
        "interval": 0.2,
        "fail_on_error": fail_on_error,
    }
    result = _run(args, expect)
    assert result["changed"] is False
    assert result["healthy"] is False
    assert result.get("failed", False) is fail_on_error
    assert result["summary"]["failed_names"] == ["redis"]
    assert result["checks"][0]["attempts"] == 1
    assert result["checks"][1]["attempts"] >= 2
    assert result["msg"].startswith("1 of 2 health checks did not pass within the 1s deadline: redis (tcp check, ")
    assert result["msg"].endswith(f"127.0.0.1:{closed_port}: connection refused).")


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize(
    "checks, message",
    [
        ([{"name": "a", "type": "tcp", "host": "h"}], "type is tcp but all of the following are missing: port"),
        ([{"name": "a", "type": "http"}], "type is http but all of the following are missing: url"),
        ([{"name": "a", "type": "compose"}], "type is compose but all of the following are missing: project"),
        ([{"name": "a", "url": "http://x/", "json_value": "ok"}], "json_path"),
        (
            [{"name": "a", "type": "tcp", "host": "h", "port": 1, "url": "http://x/"}],
            "Invalid health check definition: check 'a': option 'url' does not apply to a tcp check",
        ),
        (
            [{"name": "a", "url": "http://x/", "body_regex": "(["}],
            "Invalid health check definition: check 'a': body_regex '([' does not compile",
        ),
        ([], "Invalid health check definition: checks must be a non-empty list"),
    ],
)
def test_invalid_arguments_fail_with_a_message(checks, message):
    result = _run({"checks": checks}, FailJson)
    assert message in result["msg"]


def test_type_defaults_do_not_leak_into_other_types():
    spec = {
        "name": "db",
        "type": "tcp",
        "host": "h",
        "port": 1,
        "method": "GET",
        "status_code": [200],
        "validate_certs": True,
        "follow_redirects": False,
        "services": [],
        "url": None,
    }
    assert health_verify._user_check(spec) == {"name": "db", "type": "tcp", "host": "h", "port": 1, "url": None}


def test_secret_headers_are_no_log():
    options = health_verify.argument_spec()["checks"]["options"]
    assert options["secret_headers"]["no_log"] is True


def test_secret_header_values_never_reach_the_output(capsys, closed_port):
    """Unpatched exit_json: what Ansible would really print."""
    secret = "Bearer do-not-print-me-42"
    args = {
        "checks": [
            {
                "name": "cms",
                "url": f"http://127.0.0.1:{closed_port}/server/health",
                "secret_headers": {"Authorization": secret},
                "headers": {"Host": "directus.example.test"},
            }
        ],
        "deadline": 0,
        "fail_on_error": False,
    }
    with module_harness.patch_module_args(args), pytest.raises(SystemExit):
        health_verify.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert secret not in out
    assert result["healthy"] is False
    assert result["checks"][0]["detail"] == "connection refused"


def _container(service, health):
    state = {"Status": "running", "Running": True, "ExitCode": 0}
    if health:
        state["Health"] = {"Status": health, "Log": []}
    return {
        "Id": service * 8,
        "Name": f"/avatar-{service}-1",
        "Image": "sha256:" + "ab" * 32,
        "State": state,
        "Config": {
            "Image": f"ghcr.io/rayhu/avatar-mgmt/{service}:v1.2.0",
            "Labels": {
                "com.docker.compose.project": "avatar",
                "com.docker.compose.service": service,
                "com.docker.compose.oneoff": "False",
            },
        },
    }


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize(
    "health, expect, healthy",
    [("healthy", ExitJson, True), ("unhealthy", FailJson, False)],
)
def test_compose_check_reads_the_docker_api(monkeypatch, health, expect, healthy):
    docker = FakeDockerClient([_container("api", health), _container("frontend", None)])
    monkeypatch.setattr(_health, "docker_client_from_env", lambda: docker)
    result = _run({"checks": [{"name": "stack", "type": "compose", "project": "avatar"}], "deadline": 0}, expect)
    assert result["healthy"] is healthy
    services = result["checks"][0]["services"]
    assert [(s["service"], s["ok"]) for s in services] == [("api", healthy), ("frontend", True)]
    assert services[0]["image"] == "ghcr.io/rayhu/avatar-mgmt/api:v1.2.0"
    assert docker.calls[0]["filters"] == {"label": "com.docker.compose.project=avatar"}
    assert docker.closed is True


@pytest.mark.usefixtures("patched")
def test_exec_check_through_the_argument_spec(monkeypatch):
    answers = [(2, (b"", b"psql: error: the database system is starting up")), (0, (b"1\n", b""))]
    docker = FakeDockerClient([_container("db", "healthy")], exec_handler=lambda attrs, cmd: answers.pop(0))
    monkeypatch.setattr(_health, "docker_client_from_env", lambda: docker)
    query = {
        "name": "database query",
        "type": "exec",
        "project": "avatar",
        "service": "db",
        "command": ["psql", "-U", "directus", "-d", "directus", "-tAc", "select 1"],
        "output_regex": "^1\\s*$",
    }
    result = _run({"checks": [query], "deadline": 5, "interval": 0.01}, ExitJson)
    assert result["healthy"] is True
    assert result["checks"][0]["attempts"] == 2
    assert result["checks"][0]["service"] == "db"
    assert [e["cmd"] for e in docker.execs] == [query["command"]] * 2
    # Without its command, the definition is refused by the argument spec.
    failed = _run({"checks": [{k: v for k, v in query.items() if k != "command"}]}, FailJson)
    assert "command" in failed["msg"]
    monkeypatch.setattr(_health, "HAS_DOCKER_SDK", False)
    failed = _run({"checks": [query], "deadline": 0}, FailJson)
    assert "Compose and exec checks need the Docker SDK" in failed["msg"]


@pytest.mark.usefixtures("patched")
def test_compose_check_without_docker_sdk(monkeypatch):
    monkeypatch.setattr(_health, "HAS_DOCKER_SDK", False)
    monkeypatch.setattr(_health, "DOCKER_SDK_IMPORT_ERROR", "Traceback: No module named 'docker'")
    result = _run({"checks": [{"name": "stack", "type": "compose", "project": "avatar"}], "deadline": 0}, FailJson)
    assert (
        "the Python Docker SDK (python3-docker) is missing on this host: run playbooks/bootstrap.yml" in result["msg"]
    )
    assert "Nothing was checked" in result["msg"]
    assert "No module named 'docker'" in result["exception"]


@pytest.mark.usefixtures("patched")
def test_http_check_without_requests(monkeypatch):
    monkeypatch.setattr(_health, "HAS_REQUESTS", False)
    result = _run({"checks": [{"name": "api", "url": "http://127.0.0.1:1/"}], "deadline": 0}, FailJson)
    assert (
        "the Python library requests (python3-requests) is missing on this host: run playbooks/bootstrap.yml"
        in result["msg"]
    )


@pytest.mark.usefixtures("patched")
def test_tcp_checks_need_neither_library(monkeypatch, open_port):
    monkeypatch.setattr(_health, "HAS_REQUESTS", False)
    monkeypatch.setattr(_health, "HAS_DOCKER_SDK", False)
    result = _run({"checks": [_tcp("db", open_port)], "deadline": 0}, ExitJson)
    assert result["healthy"] is True


# release_lock: a deploy that changed nothing gives its lock back in the health round, only when healthy.


def _take_lock(tmp_path, holder="alice"):
    path = str(tmp_path / ".deploy.lock")
    taken = _lock.acquire(path, _lock.new_record(holder=holder, action="deploy", version="v1.1.0"))
    assert taken["acquired"]
    return path, taken["token"], _lock.query(path)["lock"]["fingerprint"]


@pytest.mark.usefixtures("patched")
def test_a_healthy_round_gives_the_lock_back(tmp_path, open_port):
    path, token, fingerprint = _take_lock(tmp_path)
    result = _run(
        {"checks": [_tcp("db", open_port)], "deadline": 0, "release_lock": {"path": path, "token": token}}, ExitJson
    )
    assert result["healthy"] is True
    assert result["lock_released"] is True
    assert result["released_lock"]["fingerprint"] == fingerprint, "names the very lock it removed"
    assert not os.path.lexists(path)
    assert result["lock_msg"].startswith(f"Released the lock {path} held by alice")
    assert token not in json.dumps(result), "the owner token is never returned"


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize("fail_on_error, expect", [(True, FailJson), (False, ExitJson)])
def test_a_failed_round_keeps_the_lock(tmp_path, closed_port, fail_on_error, expect):
    """The caller rolls back under the lock: a check that fails does not give it back."""
    path, token, fingerprint = _take_lock(tmp_path)
    args = {
        "checks": [_tcp("db", closed_port)],
        "deadline": 0,
        "fail_on_error": fail_on_error,
        "release_lock": {"path": path, "token": token},
    }
    result = _run(args, expect)
    assert result["healthy"] is False
    assert result["lock_released"] is False
    assert result["released_lock"] == {}
    assert _lock.query(path)["lock"]["fingerprint"] == fingerprint


@pytest.mark.usefixtures("patched")
def test_another_runs_lock_is_left_alone(tmp_path, open_port):
    path, _token, fingerprint = _take_lock(tmp_path, holder="bob")
    result = _run(
        {"checks": [_tcp("db", open_port)], "deadline": 0, "release_lock": {"path": path, "token": "not-bobs"}},
        ExitJson,
    )
    assert result["healthy"] is True
    assert result["lock_released"] is False
    assert _lock.query(path)["lock"]["fingerprint"] == fingerprint, "bob's lock is still there"
    assert "bob" in result["lock_msg"]


@pytest.mark.usefixtures("patched")
def test_check_mode_keeps_the_lock(tmp_path, open_port):
    path, token, fingerprint = _take_lock(tmp_path)
    args = {
        "checks": [_tcp("db", open_port)],
        "deadline": 0,
        "release_lock": {"path": path, "token": token},
        "_ansible_check_mode": True,
    }
    result = _run(args, ExitJson)
    assert result["lock_released"] is False
    assert _lock.query(path)["lock"]["fingerprint"] == fingerprint
