# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the avatar_mgmt.ops.health_verify module glue.

exit_json / fail_json are patched to raise, as community.general's tests do.
"""

from __future__ import annotations

import contextlib
import json
import socket

import pytest
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.modules import health_verify

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args=None):
        args = dict(args or {})
        args.setdefault("_ansible_remote_tmp", "/tmp")
        args.setdefault("_ansible_keep_remote_files", False)
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        with mock.patch.object(basic, "_ANSIBLE_ARGS", payload):
            yield


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, msg="", **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs)


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)


def _run(args, expect):
    with patch_module_args(args), pytest.raises(expect) as excinfo:
        health_verify.main()
    return excinfo.value.args[0]


@pytest.fixture
def open_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _tcp(name, port):
    return {"name": name, "type": "tcp", "host": "127.0.0.1", "port": port}


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize("check_mode", [False, True])
def test_all_checks_pass(open_port, check_mode):
    result = _run(
        {"checks": [_tcp("db", open_port)], "deadline": 0, "_ansible_check_mode": check_mode}, AnsibleExitJson
    )
    assert result["changed"] is False
    assert result["healthy"] is True
    assert result["summary"] == {
        "total": 1,
        "passed": 1,
        "failed": 0,
        "failed_names": [],
        "elapsed": pytest.approx(result["summary"]["elapsed"]),
    }
    assert result["checks"][0]["status"] == "connected"
    assert result["checks"][0]["attempts"] == 1
    assert result["msg"] == "All 1 health checks passed."


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize(
    "fail_on_error, expect",
    [(True, AnsibleFailJson), (False, AnsibleExitJson)],
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
    result = _run({"checks": checks}, AnsibleFailJson)
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
    with patch_module_args(args), pytest.raises(SystemExit):
        health_verify.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert secret not in out
    assert result["healthy"] is False
    assert result["checks"][0]["detail"] == "connection refused"


class _Docker:
    def __init__(self, containers):
        self.containers = containers
        self.calls = []

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        if args[1] == "ps":
            return 0, "".join(c["Id"] + "\n" for c in self.containers), ""
        return 0, json.dumps(self.containers), ""


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
    [("healthy", AnsibleExitJson, True), ("unhealthy", AnsibleFailJson, False)],
)
def test_compose_check_uses_run_command(monkeypatch, health, expect, healthy):
    docker = _Docker([_container("api", health), _container("frontend", None)])
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: "/usr/bin/docker")
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: docker.run_command(args, **kw))
    result = _run({"checks": [{"name": "stack", "type": "compose", "project": "avatar"}], "deadline": 0}, expect)
    assert result["healthy"] is healthy
    services = result["checks"][0]["services"]
    assert [(s["service"], s["ok"]) for s in services] == [("api", healthy), ("frontend", True)]
    assert services[0]["image"] == "ghcr.io/rayhu/avatar-mgmt/api:v1.2.0"
    assert docker.calls[0][:2] == ["/usr/bin/docker", "ps"]


@pytest.mark.usefixtures("patched")
def test_compose_check_without_docker_cli(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: None)
    result = _run(
        {"checks": [{"name": "stack", "type": "compose", "project": "avatar"}], "deadline": 0}, AnsibleFailJson
    )
    assert "stack (compose check, 1 attempt: the docker CLI was not found on the target host)" in result["msg"]
