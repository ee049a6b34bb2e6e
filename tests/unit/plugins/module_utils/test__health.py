# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_health.py.

HTTP checks run against a real HTTP server on 127.0.0.1 (ephemeral port) in a
thread; TCP checks against real sockets; compose checks with a fake Docker SDK
client that serves recorded ``docker inspect`` documents. Deadlines use a fake clock.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _health
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._health import (
    HealthSpecError,
    failure_message,
    lookup_json_path,
    normalize_check,
    parse_json_path,
    redact_url,
    run_checks,
    values_equal,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import ports
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_docker import FakeDockerClient
from docker import errors as docker_errors

VERSION_DOC = {
    "frontend": {"version": "v1.2.0", "commitHash": "abc123"},
    "backend": {"version": "v1.2.0", "commitHash": "def456"},
    "system": {"environment": "production", "uptime": 12.5},
    "items": [{"name": "a"}, {"name": "b"}],
    "count": 3,
    "enabled": True,
    "nothing": None,
}
SECRET = "Bearer s3cret-token-value"


# ---------------------------------------------------------------------------
# A real HTTP server
# ---------------------------------------------------------------------------


class _App:
    def __init__(self):
        self.lock = threading.Lock()
        self.hits = {}
        self.peers = []  # (client port, Cookie header) of every request
        self.flaky_failures = 0
        self.crash_after = 1  # /crashloop answers 200 this many times, then 503
        self.slow_seconds = 0.6

    def count(self, path):
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            return self.hits[path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _send(self, status, body, content_type="text/plain; charset=utf-8", headers=None):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status, doc):
        self._send(status, json.dumps(doc), "application/json")

    def do_GET(self):
        app = self.server.app
        path = self.path.split("?", 1)[0]
        hits = app.count(path)
        with app.lock:
            app.peers.append((self.client_address[1], self.headers.get("Cookie")))
        if path == "/health":
            self._send(200, "ok")
        elif path == "/flaky":
            if hits <= app.flaky_failures:
                self._send(503, "starting up")
            else:
                self._send(200, "ok")
        elif path == "/crashloop":
            if hits <= app.crash_after:
                self._send(200, "ok")
            else:
                self._send(503, "restarting")
        elif path == "/api/version":
            self._json(200, VERSION_DOC)
        elif path == "/api/old-version":
            doc = copy.deepcopy(VERSION_DOC)
            doc["backend"]["version"] = "v1.1.0"
            self._json(200, doc)
        elif path == "/server/health":
            self._json(200, {"status": "ok", "releaseId": "11.8.0"})
        elif path == "/server/warn":
            self._json(200, {"status": "warn"})
        elif path == "/text":
            self._send(200, "hello world, all systems nominal")
        elif path == "/slow":
            time.sleep(app.slow_seconds)
            self._send(200, "ok")
        elif path == "/host":
            self._send(200, f"host={self.headers.get('Host')}")
        elif path == "/auth":
            if self.headers.get("Authorization") == SECRET:
                self._send(200, "welcome")
            else:
                self._send(401, "denied")
        elif path == "/redirect":
            self._send(302, "", headers={"Location": "/health"})
        elif path == "/redirect-host":
            self._send(302, "", headers={"Location": "/host"})
        elif path == "/latin1":
            self._send(200, "caf\u00e9".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif path == "/nocharset":
            self._send(200, "caf\u00e9".encode("utf-8"), "text/plain")
        elif path == "/short-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only part")
            self.close_connection = True
        elif path == "/error":
            self._send(500, "boom", headers={"Set-Cookie": "session=from-the-server; Path=/"})
        else:
            self._send(404, "not found")

    do_HEAD = do_GET


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.app = _App()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


class FakeClock:
    """Time moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def _one(check, **kwargs):
    kwargs.setdefault("deadline", 0)
    report = run_checks([check], **kwargs)
    return report["checks"][0]


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, options, ok, status, detail",
    [
        ("/health", {}, True, 200, "HTTP 200"),
        ("/health", {"body_contains": "ok"}, True, 200, "body contains 'ok'"),
        ("/health", {"method": "HEAD"}, True, 200, "HTTP 200"),
        ("/text", {"body_contains": "ok"}, False, 200, "the body does not contain 'ok' (body: 'hello world"),
        ("/text", {"body_regex": r"^hello\s+world"}, True, 200, "body matches"),
        ("/text", {"body_regex": r"^world"}, False, 200, "does not match /^world/"),
        (
            "/api/version",
            {"json_path": "backend.version", "json_value": "v1.2.0"},
            True,
            200,
            "json_path 'backend.version' == \"v1.2.0\"",
        ),
        (
            "/api/old-version",
            {"json_path": "backend.version", "json_value": "v1.2.0"},
            False,
            200,
            "json_path 'backend.version' is \"v1.1.0\", expected \"v1.2.0\"",
        ),
        ("/api/version", {"json_path": "frontend.version", "json_value": "v1.2.0"}, True, 200, "=="),
        ("/api/version", {"json_path": "items.1.name", "json_value": "b"}, True, 200, "=="),
        (
            "/api/version",
            {"json_path": "items.5.name", "json_value": "b"},
            False,
            200,
            "index 5 out of range at items (length 2)",
        ),
        (
            "/api/version",
            {"json_path": "backend.branch", "json_value": "main"},
            False,
            200,
            "json_path 'backend.branch' was not found: key 'branch' missing at backend",
        ),
        ("/api/version", {"json_path": "count.value"}, False, 200, "count is a number, cannot descend"),
        ("/api/version", {"json_path": "items.first"}, False, 200, "items is a list; 'first' is not an index"),
        ("/api/version", {"json_path": "system"}, True, 200, "json_path 'system' present"),
        ("/api/version", {"json_path": "nothing"}, True, 200, "present (null)"),
        ("/api/version", {"json_path": "count", "json_value": 3}, True, 200, "=="),
        ("/api/version", {"json_path": "count", "json_value": "3"}, True, 200, "=="),
        ("/api/version", {"json_path": "enabled", "json_value": True}, True, 200, "=="),
        ("/api/version", {"json_path": "enabled", "json_value": "true"}, True, 200, "=="),
        ("/api/version", {"json_path": "enabled", "json_value": 1}, False, 200, "is true, expected 1"),
        ("/server/health", {"json_path": "status", "json_value": "ok"}, True, 200, "json_path 'status' =="),
        (
            "/server/warn",
            {"json_path": "status", "json_value": "ok"},
            False,
            200,
            "json_path 'status' is \"warn\", expected \"ok\"",
        ),
        ("/text", {"json_path": "status", "json_value": "ok"}, False, 200, "the body is not JSON"),
        ("/error", {}, False, 500, "HTTP 500, expected 200 (body: 'boom')"),
        ("/error", {"status_code": [500, 503]}, True, 500, "HTTP 500"),
        ("/missing", {"status_code": [200, 204]}, False, 404, "HTTP 404, expected one of 200, 204"),
        ("/redirect", {}, False, 302, "HTTP 302, expected 200"),
        ("/redirect", {"status_code": [301, 302]}, True, 302, "HTTP 302"),
        ("/redirect", {"follow_redirects": True, "body_contains": "ok"}, True, 200, "body contains 'ok'"),
    ],
)
def test_http_expectations(server, path, options, ok, status, detail):
    check = dict({"name": "probe", "type": "http", "url": server.base + path}, **options)
    result = _one(check)
    assert result["ok"] is ok, result["detail"]
    assert result["status"] == status
    assert detail in result["detail"]
    assert result["attempts"] == 1
    assert result["type"] == "http"
    assert result["url"] == server.base + path
    assert result["method"] == options.get("method", "GET")


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_http_becomes_healthy_after_n_requests(server, failures):
    server.app.flaky_failures = failures
    result = _one({"name": "flaky", "url": server.base + "/flaky", "body_contains": "ok"}, deadline=10, interval=0.01)
    assert result["ok"] is True
    assert result["attempts"] == failures + 1
    assert server.app.hits["/flaky"] == failures + 1
    assert result["status"] == 200


def test_polls_reuse_one_connection_and_send_no_cookie_back(server):
    clock = FakeClock()
    checks = [
        {"name": "a", "url": server.base + "/error"},
        {"name": "b", "url": server.base + "/error", "headers": {"X-Check": "b"}},
    ]
    report = run_checks(checks, deadline=4, interval=1, clock=clock, sleep=clock.sleep)
    assert [r["attempts"] for r in report["checks"]] == [5, 5]
    assert server.app.hits["/error"] == 10
    assert len({port for port, _cookie in server.app.peers}) == 1  # one kept-alive connection for the run
    assert [cookie for _port, cookie in server.app.peers] == [None] * 10


def test_checks_with_other_validate_certs_do_not_share_a_session(server):
    checks = [
        {"name": "a", "url": server.base + "/health"},
        {"name": "b", "url": server.base + "/health", "validate_certs": False},
    ]
    assert run_checks(checks, deadline=0)["healthy"] is True
    assert len({port for port, _cookie in server.app.peers}) == 2


@pytest.mark.parametrize(
    "deadline, interval, attempts, sleeps",
    [
        (10, 2, 6, [2, 2, 2, 2, 2]),
        (5, 2, 4, [2, 2, 1]),
        (1, 0.25, 5, [0.25, 0.25, 0.25, 0.25]),
        (0, 1, 1, []),
    ],
)
def test_deadline_expiry_counts_attempts(server, deadline, interval, attempts, sleeps):
    clock = FakeClock()
    report = run_checks(
        [{"name": "broken", "url": server.base + "/error"}],
        deadline=deadline,
        interval=interval,
        clock=clock,
        sleep=clock.sleep,
    )
    result = report["checks"][0]
    assert result["ok"] is False
    assert result["attempts"] == attempts
    assert server.app.hits["/error"] == attempts
    assert clock.sleeps == sleeps
    assert result["elapsed"] == pytest.approx(deadline)
    assert report["summary"]["elapsed"] == pytest.approx(deadline)
    assert report["healthy"] is False


def test_passing_checks_stop_being_polled(server):
    clock = FakeClock()
    server.app.flaky_failures = 2
    report = run_checks(
        [
            {"name": "api", "url": server.base + "/health", "body_contains": "ok"},
            {"name": "flaky", "url": server.base + "/flaky"},
            {"name": "broken", "url": server.base + "/error"},
        ],
        deadline=6,
        interval=1.5,
        clock=clock,
        sleep=clock.sleep,
    )
    api, flaky, broken = report["checks"]
    assert (api["ok"], api["attempts"], api["elapsed"]) == (True, 1, 0.0)
    assert (flaky["ok"], flaky["attempts"], flaky["elapsed"]) == (True, 3, 3.0)
    assert (broken["ok"], broken["attempts"], broken["elapsed"]) == (False, 5, 6.0)
    assert server.app.hits["/health"] == 1
    assert report["summary"] == {
        "total": 3,
        "passed": 2,
        "failed": 1,
        "failed_names": ["broken"],
        "elapsed": 6.0,
        "held": None,
    }


@pytest.mark.parametrize(
    "timeout, ok, detail",
    [
        (0.2, False, "timed out after 0.2s"),
        (5, True, "HTTP 200"),
    ],
)
def test_slow_response_against_timeout(server, timeout, ok, detail):
    result = _one({"name": "slow", "url": server.base + "/slow", "timeout": timeout})
    assert result["ok"] is ok
    assert detail in result["detail"]
    assert result["status"] == (200 if ok else None)


def test_connection_refused():
    result = _one({"name": "down", "url": f"http://127.0.0.1:{ports.closed_port()}/health"})
    assert result["ok"] is False
    assert result["status"] is None
    assert result["detail"] == "connection refused"


def test_host_header_reaches_the_server(server):
    result = _one(
        {
            "name": "routed",
            "url": server.base + "/host",
            "headers": {"Host": "api.daidai.amis.hk"},
            "body_contains": "host=api.daidai.amis.hk",
        }
    )
    assert result["ok"] is True, result["detail"]


@pytest.mark.parametrize(
    "headers, ok, status",
    [
        ({"secret_headers": {"Authorization": SECRET}}, True, 200),
        ({"headers": {"Authorization": SECRET}}, True, 200),
        ({"headers": {"Authorization": "Bearer wrong"}, "secret_headers": {"Authorization": SECRET}}, True, 200),
        ({"secret_headers": {"Authorization": "Bearer wrong-" + SECRET}}, False, 401),
    ],
)
def test_header_values_are_sent_but_never_reported(server, headers, ok, status):
    check = dict({"name": "auth", "url": server.base + "/auth"}, **headers)
    report = run_checks([check], deadline=0)
    result = report["checks"][0]
    assert (result["ok"], result["status"]) == (ok, status)
    text = json.dumps(report) + failure_message(report)
    assert "s3cret" not in text
    assert "Authorization" not in text


def test_host_header_is_not_carried_to_a_redirect_target(server):
    result = _one(
        {
            "name": "routed",
            "url": server.base + "/redirect-host",
            "follow_redirects": True,
            "headers": {"Host": "api.daidai.amis.hk"},
            "body_contains": "host=127.0.0.1",
        }
    )
    assert result["ok"] is True, result["detail"]


@pytest.mark.parametrize("path, text", [("/latin1", "caf\u00e9"), ("/nocharset", "caf\u00e9")])
def test_body_charset_from_content_type_else_utf8(server, path, text):
    result = _one({"name": "charset", "url": server.base + path, "body_contains": text})
    assert result["ok"] is True, result["detail"]


def test_body_cut_short_keeps_the_status(server):
    result = _one({"name": "short", "url": server.base + "/short-body"})
    assert result["ok"] is False
    assert result["status"] == 200
    assert result["detail"].startswith("HTTP 200, then reading the body failed: ")


def test_http_without_requests(monkeypatch, server):
    monkeypatch.setattr(_health, "HAS_REQUESTS", False)
    result = _one({"name": "api", "url": server.base + "/health"})
    assert result["ok"] is False
    assert result["detail"] == (
        "the Python library requests (python3-requests) is missing on this host: run playbooks/bootstrap.yml"
    )


def test_url_credentials_are_not_reported(server):
    url = f"http://operator:hunter2@127.0.0.1:{server.server_address[1]}/health"
    report = run_checks([{"name": "creds", "url": url}], deadline=0)
    assert report["checks"][0]["url"] == server.base + "/health"
    assert "hunter2" not in json.dumps(report)


# ---------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------


@pytest.fixture
def listener():
    with ports.listening_port(8) as port:
        yield port


def test_tcp_open_port(listener):
    result = _one({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": listener})
    assert result == {
        "name": "db",
        "type": "tcp",
        "ok": True,
        "attempts": 1,
        "elapsed": result["elapsed"],
        "status": "connected",
        "detail": f"127.0.0.1:{listener} accepts connections",
        "host": "127.0.0.1",
        "port": listener,
    }


def test_tcp_closed_port_polled_until_deadline():
    clock = FakeClock()
    port = ports.closed_port()
    result = _one(
        {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": port},
        deadline=3,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result["ok"] is False
    assert result["status"] == "refused"
    assert result["attempts"] == 4
    assert result["detail"] == f"127.0.0.1:{port}: connection refused"


# ---------------------------------------------------------------------------
# Compose (recorded `docker inspect` documents served by a fake SDK client)
# ---------------------------------------------------------------------------

IMAGE_ID = "sha256:7b6041e5d1e429dbc07b0527341d40744e5578c4e0bff6bc201c20b985d381b7"


def container(
    service,
    status="running",
    health="healthy",
    output="",
    project="avatar",
    number=1,
    exit_code=0,
    oneoff=False,
    image="ghcr.io/rayhu/avatar-mgmt/api:v1.2.0",
):
    """One `docker inspect` document (the SDK's ``Container.attrs``), trimmed to the fields docker 20.10+ prints."""
    cid = f"{service}{number}".encode().hex().ljust(64, "0")[:64]
    state = {
        "Status": status,
        "Running": status == "running",
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 4242,
        "ExitCode": exit_code,
        "Error": "",
    }
    if health is not None:
        state["Health"] = {
            "Status": health,
            "FailingStreak": 0 if health == "healthy" else 2,
            "Log": [
                {
                    "Start": "2025-01-01T00:00:00Z",
                    "End": "2025-01-01T00:00:01Z",
                    "ExitCode": 0 if health == "healthy" else 1,
                    "Output": output,
                }
            ],
        }
    return {
        "Id": cid,
        "Name": f"/{project}-{service}-{number}",
        "Image": IMAGE_ID,
        "State": state,
        "Config": {
            "Image": image,
            "Labels": {
                "com.docker.compose.oneoff": "True" if oneoff else "False",
                "com.docker.compose.project": project,
                "com.docker.compose.service": service,
                "com.docker.compose.version": "2.26.1",
            },
        },
    }


STACK = [
    container("db", image="postgres:15.7"),
    container("directus", image="directus/directus:11.8.0"),
    container("api"),
    container("frontend", health=None),
]


def test_compose_all_services_healthy():
    docker = FakeDockerClient(STACK + [container("api", project="other")])
    result = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert result["ok"] is True
    assert result["status"] == "healthy"
    assert result["project"] == "avatar"
    assert [s["service"] for s in result["services"]] == ["api", "db", "directus", "frontend"]
    api = result["services"][0]
    assert api == {
        "service": "api",
        "ok": True,
        "containers": 1,
        "state": "running",
        "health": "healthy",
        "image": "ghcr.io/rayhu/avatar-mgmt/api:v1.2.0",
        "image_id": IMAGE_ID,
        "detail": "healthy",
    }
    assert result["services"][3]["detail"] == "running (no healthcheck)"
    # One query, as `docker ps --all --filter label=...` then `docker inspect` did.
    assert docker.calls == [
        {"all": True, "filters": {"label": "com.docker.compose.project=avatar"}, "ignore_removed": True}
    ]
    assert docker.closed is False  # an injected client belongs to the caller


@pytest.mark.parametrize(
    "snapshot, services, status, detail",
    [
        (STACK, ["api", "worker"], "missing", "worker: no container in the project"),
        (
            [c for c in STACK if c["Config"]["Labels"]["com.docker.compose.service"] != "db"],
            ["db", "api"],
            "missing",
            "db: no container in the project",
        ),
        ([], [], "missing", "compose project 'avatar' has no containers"),
        (
            [container("api", health="unhealthy", output="curl: (7) Failed to connect\n")],
            ["api"],
            "unhealthy",
            "api: unhealthy (last healthcheck output: 'curl: (7) Failed to connect')",
        ),
        ([container("api", health="starting")], ["api"], "starting", "api: starting"),
        (
            [container("api", status="exited", health="unhealthy", exit_code=137)],
            ["api"],
            "exited",
            "api: exited (exit code 137)",
        ),
        (
            [container("api", status="restarting", health=None, exit_code=1)],
            ["api"],
            "restarting",
            "api: restarting (exit code 1)",
        ),
        ([container("api", status="created", health=None)], [], "created", "api: created"),
        (
            [container("api"), container("api", number=2, health="unhealthy")],
            ["api"],
            "unhealthy",
            "api: unhealthy in avatar-api-2 of 2 containers",
        ),
        (
            [container("api", health="starting"), container("db", status="exited", exit_code=1)],
            [],
            "exited",
            "api: starting; db: exited (exit code 1)",
        ),
    ],
)
def test_compose_failures(snapshot, services, status, detail):
    docker = FakeDockerClient(snapshot)
    result = _one({"name": "stack", "type": "compose", "project": "avatar", "services": services}, docker_client=docker)
    assert result["ok"] is False
    assert result["status"] == status
    assert result["detail"] == detail


def test_compose_ignores_one_off_containers():
    docker = FakeDockerClient([container("api"), container("api", number=9, status="exited", oneoff=True)])
    result = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert result["ok"] is True
    assert result["services"][0]["containers"] == 1


def test_compose_polls_until_healthy():
    clock = FakeClock()
    docker = FakeDockerClient(
        [container("db", health="starting"), container("api", health="starting")],
        [container("db"), container("api", health="starting")],
        [container("db"), container("api")],
    )
    result = _one(
        {"name": "stack", "type": "compose", "project": "avatar", "services": ["db", "api"]},
        deadline=30,
        interval=2,
        docker_client=docker,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result["ok"] is True
    assert result["attempts"] == 3
    assert result["elapsed"] == 4.0
    assert clock.sleeps == [2, 2]


def _raised(outer, inner):
    """``outer`` raised while handling ``inner``, as the SDK wraps socket errors."""
    try:
        try:
            raise inner
        except OSError as exc:
            raise outer from exc
    except Exception as exc:  # noqa: BLE001 - whatever outer is
        return exc


@pytest.mark.parametrize(
    "error, detail",
    [
        (
            _raised(
                docker_errors.DockerException(
                    "Error while fetching server API version: ('Connection aborted.', PermissionError(13, 'Permission "
                    "denied'))"
                ),
                PermissionError(13, "Permission denied"),
            ),
            (
                "permission denied on the Docker socket: run the task as root (become: true) or as a member of the "
                "docker group"
            ),
        ),
        (
            _raised(
                requests.exceptions.ConnectionError("Connection aborted."),
                FileNotFoundError(2, "No such file or directory"),
            ),
            "the Docker daemon does not answer on its socket: check that the docker service runs",
        ),
        (
            docker_errors.APIError(
                "500 Server Error for http+docker://localhost/v1.45/containers/json",
                explanation="filter: invalid filter 'label'",
            ),
            "the Docker API answered an error: filter: invalid filter 'label'",
        ),
    ],
)
def test_compose_docker_errors_are_reported(error, detail):
    result = _one(
        {"name": "stack", "type": "compose", "project": "avatar"}, docker_client=FakeDockerClient(STACK, error=error)
    )
    assert result["ok"] is False
    assert result["status"] == "error"
    assert result["detail"] == (
        f"cannot list the containers of compose project 'avatar' through the Docker Engine API: {detail}"
    )
    assert result["services"] == []


def test_compose_tolerates_a_container_removed_during_inspect():
    docker = FakeDockerClient(STACK, removed_ids=[STACK[3]["Id"]])
    result = _one(
        {"name": "stack", "type": "compose", "project": "avatar", "services": ["db", "directus", "api"]},
        docker_client=docker,
    )
    assert result["ok"] is True
    assert docker.calls[0]["ignore_removed"] is True


def test_compose_without_docker_sdk(monkeypatch):
    monkeypatch.setattr(_health, "HAS_DOCKER_SDK", False)
    result = _one({"name": "stack", "type": "compose", "project": "avatar"})
    assert result["ok"] is False
    assert result["status"] == "error"
    assert result["detail"] == (
        "the Python Docker SDK (python3-docker) is missing on this host: run playbooks/bootstrap.yml"
    )


# ---------------------------------------------------------------------------
# exec: a command in a running container of a compose service (the database query)
# ---------------------------------------------------------------------------

DB_QUERY = {
    "name": "database query",
    "type": "exec",
    "project": "avatar",
    "service": "db",
    "command": ["psql", "-U", "directus", "-d", "directus", "-tAc", "select 1"],
    "output_regex": r"^1\s*$",
}


def _psql(answers):
    """An exec handler answering each call with the next of ``answers`` (the last one repeating)."""
    answers = list(answers)

    def handler(attrs, cmd):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return handler


def test_exec_runs_the_command_in_the_running_container_of_the_service():
    docker = FakeDockerClient(
        STACK + [container("db", project="other"), container("db", number=2, status="exited")],
        exec_handler=_psql([(0, (b"1\n", None))]),
    )
    result = _one(DB_QUERY, docker_client=docker)
    assert result["ok"] is True
    assert result["status"] == 0
    assert result["detail"] == "exit code 0, output '1'"
    assert (result["project"], result["service"]) == ("avatar", "db")
    assert docker.execs == [{"id": STACK[0]["Id"], "cmd": DB_QUERY["command"], "demux": True}]
    assert docker.calls[0]["filters"] == {
        "label": ["com.docker.compose.project=avatar", "com.docker.compose.service=db"]
    }


@pytest.mark.parametrize(
    "answer, status, detail",
    [
        (
            (2, (b"", b'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed\n')),
            2,
            'exit code 2: psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed',
        ),
        ((0, (b"0\n", b"")), 0, "exit code 0 but the output '0' does not match the regex ^1\\s*$"),
        ((1, (None, None)), 1, "exit code 1: no output"),
    ],
)
def test_exec_failures(answer, status, detail):
    result = _one(DB_QUERY, docker_client=FakeDockerClient(STACK, exec_handler=_psql([answer])))
    assert result["ok"] is False
    assert result["status"] == status
    assert result["detail"] == detail


def test_an_exec_that_passed_without_any_output_is_asked_once_more():
    docker = FakeDockerClient(STACK, exec_handler=_psql([(0, (None, None)), (0, (b"1\n", None))]))
    result = _one(DB_QUERY, docker_client=docker)
    assert (result["ok"], result["detail"]) == (True, "exit code 0, output '1'")
    assert len(docker.execs) == 2
    # Twice nothing: fails as before, after the second try only.
    docker = FakeDockerClient(STACK, exec_handler=_psql([(0, (b"", b""))]))
    result = _one(DB_QUERY, docker_client=docker)
    assert result["ok"] is False
    assert result["detail"] == "exit code 0 but the output '' does not match the regex ^1\\s*$"
    assert len(docker.execs) == 2
    # Output that does not match, a failing exit code, or no regex: one run, as before.
    for answer, check in (
        ((0, (b"0\n", None)), DB_QUERY),
        ((2, (None, None)), DB_QUERY),
        ((0, (None, None)), dict(DB_QUERY, output_regex=None)),
    ):
        docker = FakeDockerClient(STACK, exec_handler=_psql([answer]))
        _one(check, docker_client=docker)
        assert len(docker.execs) == 1, answer


def test_exec_without_a_running_container_and_engine_errors():
    stopped = [c for c in STACK if c["Config"]["Labels"]["com.docker.compose.service"] != "db"]
    stopped.append(container("db", status="exited", exit_code=137))
    result = _one(DB_QUERY, docker_client=FakeDockerClient(stopped))
    assert (result["ok"], result["status"]) == (False, "missing")
    assert result["detail"] == "no running container of service 'db' in compose project 'avatar'"
    error = docker_errors.APIError("409 Client Error: Conflict", explanation="container is restarting")
    result = _one(DB_QUERY, docker_client=FakeDockerClient(STACK, exec_error=error))
    assert (result["ok"], result["status"]) == (False, "error")
    assert result["detail"] == (
        "cannot run the command in service 'db': the Docker API answered an error: container is restarting"
    )


def test_exec_is_polled_until_the_database_answers_and_held_with_the_others():
    clock = FakeClock()
    docker = FakeDockerClient(
        STACK,
        exec_handler=_psql([(2, (b"", b"psql: error: the database system is starting up\n")), (0, (b"1\n", None))]),
    )
    report = run_checks(
        [{"name": "stack", "type": "compose", "project": "avatar", "services": ["db"]}, DB_QUERY],
        deadline=10,
        interval=1,
        hold=2,
        docker_client=docker,
        clock=clock,
        sleep=clock.sleep,
    )
    assert report["healthy"] is True
    # Two attempts until it answers, then three hold rounds (at once, after 1 s, at the end).
    assert [r["attempts"] for r in report["checks"]] == [4, 5]
    assert len(docker.execs) == 5


@pytest.mark.parametrize(
    "check, message",
    [
        ({"project": "p", "command": ["true"]}, "an exec check needs 'service'"),
        ({"service": "db", "command": ["true"]}, "an exec check needs 'project'"),
        ({"project": "p", "service": "db"}, "command must be a non-empty list"),
        ({"project": "p", "service": "db", "command": "psql -c 'select 1'"}, "command must be a non-empty list"),
        ({"project": "p", "service": "db", "command": ["true"], "output_regex": "("}, "output_regex '(' does not"),
        ({"project": "p", "service": "db", "command": ["true"], "url": "http://x/"}, "'url' does not apply"),
        ({"project": "p", "services": ["db"], "output_regex": "x"}, "'output_regex' does not apply to a compose"),
    ],
)
def test_invalid_exec_definitions(check, message):
    check_type = "compose" if "services" in check else "exec"
    with pytest.raises(HealthSpecError) as excinfo:
        run_checks([{"name": "q", "type": check_type, **check}], deadline=0)
    assert message in str(excinfo.value)


def test_compose_makes_one_client_from_the_environment_per_run_and_closes_it(monkeypatch):
    made = []

    def from_env():
        made.append(FakeDockerClient([container("api", health="starting")], [container("api")]))
        return made[-1]

    monkeypatch.setattr(_health, "docker_client_from_env", from_env)
    clock = FakeClock()
    report = run_checks(
        [
            {"name": "a", "type": "compose", "project": "avatar"},
            {"name": "b", "type": "compose", "project": "avatar", "services": ["api"]},
        ],
        deadline=10,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert report["healthy"] is True
    assert len(made) == 1
    # Round one: a sees api starting, b (next snapshot) healthy; round two: only a, healthy.
    assert len(made[0].calls) == 3
    assert [r["attempts"] for r in report["checks"]] == [2, 1]
    assert made[0].closed is True


def test_compose_engine_that_does_not_answer_yet_is_polled(monkeypatch):
    attempts = []

    def from_env():
        attempts.append(1)
        if len(attempts) < 3:
            raise _raised(
                docker_errors.DockerException("Error while fetching server API version"),
                ConnectionRefusedError(111, "Connection refused"),
            )
        return FakeDockerClient([container("api")])

    monkeypatch.setattr(_health, "docker_client_from_env", from_env)
    clock = FakeClock()
    result = _one(
        {"name": "stack", "type": "compose", "project": "avatar"},
        deadline=10,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result["ok"] is True
    assert result["attempts"] == 3


def test_compose_engine_unreachable_detail(monkeypatch):
    def from_env():
        raise _raised(
            docker_errors.DockerException("Error while fetching server API version"),
            FileNotFoundError(2, "No such file or directory"),
        )

    monkeypatch.setattr(_health, "docker_client_from_env", from_env)
    result = _one({"name": "stack", "type": "compose", "project": "avatar"})
    assert result["detail"] == (
        "cannot connect to the Docker Engine: the Docker daemon does not answer on its "
        "socket: check that the docker service runs"
    )


# ---------------------------------------------------------------------------
# Definitions, helpers, messages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "checks, message",
    [
        ([], "checks must be a non-empty list"),
        ([{"type": "http", "url": "http://x/"}], "every check needs a non-empty 'name'"),
        ([{"name": "a", "type": "udp"}], "type must be one of http, tcp, compose, exec"),
        ([{"name": "a"}], "an http check needs 'url'"),
        ([{"name": "a", "url": "ftp://host/file"}], "url must be an absolute http:// or https:// URL"),
        ([{"name": "a", "url": "/health"}], "url must be an absolute"),
        ([{"name": "a", "url": "http://x/", "method": "DELETE"}], "method must be one of GET, HEAD"),
        ([{"name": "a", "url": "http://x/", "status_code": [999]}], "status_code 999 is not an HTTP status"),
        ([{"name": "a", "url": "http://x/", "body_regex": "("}], "body_regex '(' does not compile"),
        ([{"name": "a", "url": "http://x/", "json_value": "ok"}], "json_value needs json_path"),
        ([{"name": "a", "url": "http://x/", "json_path": "a..b"}], "has an empty segment"),
        ([{"name": "a", "url": "http://x/", "method": "HEAD", "body_contains": "ok"}], "a HEAD request has no body"),
        ([{"name": "a", "url": "http://x/", "timeout": 0}], "timeout must be greater than 0"),
        ([{"name": "a", "type": "tcp", "host": "db"}], "a tcp check needs an integer 'port'"),
        ([{"name": "a", "type": "tcp", "port": 5432}], "a tcp check needs 'host'"),
        ([{"name": "a", "type": "tcp", "host": "db", "port": 70000}], "port must be between 1 and 65535"),
        (
            [{"name": "a", "type": "tcp", "host": "db", "port": 1, "url": "http://x/"}],
            "option 'url' does not apply to a tcp check",
        ),
        ([{"name": "a", "type": "compose"}], "a compose check needs 'project'"),
        (
            [{"name": "a", "type": "compose", "project": "p", "body_contains": "x"}],
            "option 'body_contains' does not apply to a compose check",
        ),
        ([{"name": "a", "url": "http://x/", "bogus": 1}], "unknown option 'bogus'"),
        ([{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}], "'a' appears twice"),
    ],
)
def test_invalid_definitions(checks, message):
    with pytest.raises(HealthSpecError, match=None) as excinfo:
        run_checks(checks, deadline=0)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    "deadline, interval, message", [(-1, 1, "deadline must be 0 or more"), (5, 0, "interval must be more than 0")]
)
def test_invalid_timing(deadline, interval, message):
    with pytest.raises(HealthSpecError, match=message):
        run_checks([{"name": "a", "type": "tcp", "host": "127.0.0.1", "port": 1}], deadline=deadline, interval=interval)


def test_unset_options_of_other_types_are_accepted():
    check = normalize_check(
        {"name": "db", "type": "tcp", "host": "h", "port": 1, "url": None, "headers": {}, "services": []}
    )
    assert check == {"name": "db", "type": "tcp", "timeout": 10.0, "host": "h", "port": 1}


def test_http_defaults():
    check = normalize_check({"name": "a", "url": "https://x/"})
    assert check["type"] == "http"
    assert check["method"] == "GET"
    assert check["status_code"] == [200]
    assert check["validate_certs"] is True
    assert check["follow_redirects"] is False


@pytest.mark.parametrize(
    "path, segments",
    [("status", ["status"]), ("backend.version", ["backend", "version"]), ("items.0", ["items", "0"])],
)
def test_parse_json_path(path, segments):
    assert parse_json_path(path) == segments


@pytest.mark.parametrize(
    "segments, value",
    [
        (["backend", "version"], "v1.2.0"),
        (["items", "0", "name"], "a"),
        (["items", "-1", "name"], "b"),
        (["nothing"], None),
    ],
)
def test_lookup_json_path(segments, value):
    assert lookup_json_path(VERSION_DOC, segments) == value


def test_lookup_json_path_digit_key_in_object():
    assert lookup_json_path({"0": "zero"}, ["0"]) == "zero"


@pytest.mark.parametrize(
    "actual, expected, equal",
    [
        ("ok", "ok", True),
        ("ok", "OK", False),
        (3, 3, True),
        (3, "3", True),
        (3.5, "3.5", True),
        (True, True, True),
        (True, "true", True),
        (True, 1, False),
        (1, True, False),
        (None, "null", True),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, '{"a": 1}', False),
        ([1, 2], [1, 2], True),
    ],
)
def test_values_equal(actual, expected, equal):
    assert values_equal(actual, expected) is equal


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://127.0.0.1:3000/health", "http://127.0.0.1:3000/health"),
        ("https://user:pw@api.example.com/x?y=1", "https://api.example.com/x?y=1"),
        ("http://token@[::1]:8080/", "http://[::1]:8080/"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_failure_message_is_one_sentence_naming_each_failure(server):
    clock = FakeClock()
    report = run_checks(
        [
            {"name": "api health", "url": server.base + "/health", "body_contains": "ok"},
            {
                "name": "api version",
                "url": server.base + "/api/old-version",
                "json_path": "backend.version",
                "json_value": "v1.2.0",
            },
            {"name": "database", "type": "tcp", "host": "127.0.0.1", "port": ports.closed_port()},
        ],
        deadline=4,
        interval=2,
        clock=clock,
        sleep=clock.sleep,
    )
    message = failure_message(report, deadline=4)
    assert message.startswith(
        "2 of 3 health checks did not pass within the 4s deadline: api version (http check, "
        "3 attempts: HTTP 200 but json_path 'backend.version' is \"v1.1.0\", "
        "expected \"v1.2.0\"); database (tcp check, 3 attempts: 127.0.0.1:"
    )
    assert message.endswith("connection refused).")
    assert "api health" not in message
    assert "\n" not in message


def test_success_message():
    report = {"checks": [], "summary": {"total": 2, "passed": 2, "failed": 0, "failed_names": []}}
    assert failure_message(report) == "All 2 health checks passed."


# ---------------------------------------------------------------------------
# Hold: all checks pass together for a window after each has passed once
# ---------------------------------------------------------------------------


def test_hold_rounds_probe_every_check_together(server):
    clock = FakeClock()
    server.app.flaky_failures = 2
    report = run_checks(
        [{"name": "api", "url": server.base + "/health"}, {"name": "flaky", "url": server.base + "/flaky"}],
        deadline=30,
        interval=1,
        hold=2.5,
        clock=clock,
        sleep=clock.sleep,
    )
    assert report["healthy"] is True
    # Polling: api passes at once, flaky at its third attempt (2 sleeps). Hold: rounds at 0, 1, 2, 2.5.
    assert clock.sleeps == [1, 1, 1, 1, 0.5]
    assert server.app.hits == {"/health": 1 + 4, "/flaky": 3 + 4}
    assert [r["attempts"] for r in report["checks"]] == [5, 7]
    assert report["summary"]["held"] == pytest.approx(2.5)
    assert failure_message(report) == "All 2 health checks passed, and all passed together for 2.5s."


@pytest.mark.parametrize("crash_after, failed_at", [(1, 0), (2, 2), (3, 4)])
def test_a_check_that_passes_then_fails_in_the_hold_fails_the_run(server, crash_after, failed_at):
    clock = FakeClock()
    server.app.crash_after = crash_after
    report = run_checks(
        [{"name": "api", "url": server.base + "/crashloop"}, {"name": "directus", "url": server.base + "/health"}],
        deadline=30,
        interval=2,
        hold=5,
        clock=clock,
        sleep=clock.sleep,
    )
    assert report["healthy"] is False
    api, directus = report["checks"]
    assert api["ok"] is False
    assert api["status"] == 503
    assert (
        api["detail"]
        == f"passed, then failed {failed_at}s into the 5s hold: HTTP 503, expected 200 (body: 'restarting')"
    )
    assert directus["ok"] is True
    # The first failed round ends the run: no more requests after it, and both checks were in it.
    assert server.app.hits["/crashloop"] == crash_after + 1
    assert server.app.hits["/health"] == crash_after + 1
    assert report["summary"]["failed_names"] == ["api"]
    assert report["summary"]["held"] == pytest.approx(failed_at)
    message = failure_message(report, deadline=30)
    assert message.startswith("All 2 health checks passed, then 1 failed in the hold that followed: api (http check")
    assert "deadline" not in message


def test_hold_zero_adds_no_round(server):
    clock = FakeClock()
    report = run_checks(
        [{"name": "api", "url": server.base + "/crashloop"}], deadline=30, clock=clock, sleep=clock.sleep
    )
    assert report["healthy"] is True
    assert server.app.hits["/crashloop"] == 1
    assert report["summary"]["held"] is None
    assert failure_message(report) == "All 1 health checks passed."


def test_no_hold_when_a_check_never_passed(server):
    clock = FakeClock()
    report = run_checks(
        [{"name": "api", "url": server.base + "/health"}, {"name": "broken", "url": server.base + "/error"}],
        deadline=4,
        interval=2,
        hold=10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert report["healthy"] is False
    assert server.app.hits == {"/health": 1, "/error": 3}
    assert report["summary"]["held"] is None
    assert "within the 4s deadline" in failure_message(report, deadline=4)


def test_hold_in_real_time(server):
    started = time.monotonic()
    report = run_checks([{"name": "api", "url": server.base + "/health"}], deadline=5, interval=0.1, hold=0.3)
    assert report["healthy"] is True
    assert time.monotonic() - started >= 0.3
    assert server.app.hits["/health"] >= 4  # the first pass, then rounds at 0, 0.1, 0.2 and 0.3 s
    assert report["summary"]["held"] >= 0.3


@pytest.mark.parametrize(
    "hold, message", [(-1, "hold must be 0 or more seconds, got -1"), ("soon", "hold must be a number")]
)
def test_invalid_hold(hold, message):
    with pytest.raises(HealthSpecError, match=message):
        run_checks([{"name": "a", "type": "tcp", "host": "127.0.0.1", "port": 1}], deadline=0, hold=hold)


# A healthcheck Docker has not run yet, run by the compose check (fake engine: what 20.10's inspect prints).


class _FakeExecAPI:
    """The low-level exec calls of the Docker SDK (``client.api``): each run answers ``results`` in turn."""

    def __init__(self, *results, hang=None):
        self.results = list(results)
        self.runs = []
        self.hang = hang

    def exec_create(self, container_id, cmd, stdout=True, stderr=True):
        self.runs.append((container_id, cmd))
        return {"Id": f"exec{len(self.runs)}"}

    def exec_start(self, exec_id):
        if self.hang is not None:
            self.hang.wait(10)
        code, output = self.results[min(len(self.runs), len(self.results)) - 1]
        self._code = code
        return output.encode()

    def exec_inspect(self, exec_id):
        return {"ExitCode": self._code}


def _unrun(service, restarts=0, shell=None, started="2026-12-02T10:00:00.0Z"):
    item = container(service, health="starting")
    item["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": None}
    item["State"]["StartedAt"] = started
    item["RestartCount"] = restarts
    item["Config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "wget -q -O - http://127.0.0.1:3000/health"], "Timeout": 2e9}
    if shell:
        item["Config"]["Shell"] = shell
    return item


@pytest.fixture(autouse=True)
def _fresh_first_runs():
    _health._FIRST_RUNS.clear()
    yield
    _health._FIRST_RUNS.clear()


def test_a_healthcheck_docker_has_not_run_is_run_once_as_docker_would_and_counts_when_it_passes():
    docker = FakeDockerClient([_unrun("api", shell=["/bin/bash", "-o", "pipefail", "-c"])])
    docker.api = _FakeExecAPI((0, "ok\n"))
    result = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert result["ok"] is True
    assert "its healthcheck passed when this check ran it (Docker had not yet)" in result["detail"]
    # The container's own shell, then the test's arguments, each its own argument (as Docker builds it).
    assert docker.api.runs == [
        (container("api")["Id"], ["/bin/bash", "-o", "pipefail", "-c", "wget -q -O - http://127.0.0.1:3000/health"])
    ]


def test_a_container_that_restarted_is_never_taken_healthy_on_a_healthcheck_run_by_the_check():
    """A crash loop: Docker resets the health of a restarted container to "starting" with no log when it never
    lived one interval; the check's own run of its test must not make it healthy."""
    docker = FakeDockerClient([_unrun("api", restarts=1)])
    docker.api = _FakeExecAPI((0, "ok\n"))
    result = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert result["ok"] is False
    assert result["status"] == "starting"
    assert docker.api.runs == []


def test_a_failing_first_healthcheck_is_reported_and_not_run_again_within_a_second():
    docker = FakeDockerClient([_unrun("api")], [_unrun("api")])
    docker.api = _FakeExecAPI((7, "connection refused\n"))
    first = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert first["ok"] is False
    assert first["detail"] == (
        "api: starting (its healthcheck, run by this check before Docker ran it, exited 7; "
        "last healthcheck output: 'connection refused')"
    )
    _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert len(docker.api.runs) == 1, "the answer stands for a second: the gate's quick polls do not rerun it"


def test_a_healthcheck_that_hangs_is_not_run_again_beside_itself():
    import threading

    release = threading.Event()
    docker = FakeDockerClient([_unrun("api")], [_unrun("api")], [_unrun("api")])
    docker.api = _FakeExecAPI((0, "ok\n"), hang=release)
    try:
        for _round in range(3):
            result = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
            assert result["ok"] is False
            assert "did not end within its timeout (2s)" in result["detail"]
        assert len(docker.api.runs) == 1
    finally:
        release.set()


def test_a_healthcheck_that_ends_after_its_timeout_failed_whatever_it_answered():
    import threading
    import time as _time

    release = threading.Event()
    threading.Timer(2.4, release.set).start()
    docker = FakeDockerClient([_unrun("api")], [_unrun("api")])
    docker.api = _FakeExecAPI((0, "ok\n"), hang=release)
    first = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert "did not end within its timeout (2s)" in first["detail"]
    _time.sleep(0.6)  # the run ended (exit 0) after 2.4 s, past its 2-s timeout
    again = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert again["ok"] is False
    assert "did not end within its timeout (2s)" in again["detail"]
    assert len(docker.api.runs) == 1


def test_a_restarted_instance_of_a_container_gets_a_run_of_its_own():
    docker = FakeDockerClient(
        [_unrun("api", started="2026-12-02T10:00:00Z")], [_unrun("api", started="2026-12-02T10:00:05Z")]
    )
    docker.api = _FakeExecAPI((3, "not yet\n"), (0, "ok\n"))
    first = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert first["ok"] is False
    second = _one({"name": "stack", "type": "compose", "project": "avatar"}, docker_client=docker)
    assert second["ok"] is True, "another StartedAt: not the first instance's answer"
    assert len(docker.api.runs) == 2
