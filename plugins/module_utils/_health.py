# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Health checks polled until they pass or a deadline expires.

Pure logic for the ``avatar_mgmt.ops.health_verify`` module. It runs on the
target host (Python >= 3.9) and imports nothing from ``AnsibleModule``: the
Docker client, the clock and the sleep function are injectable, so the whole
file is unit-testable.

Four check types:

* ``http``: one request through ``_http`` (requests, the HTTP helper shared
  with the OCI client; environment proxies honoured); expected status, body
  substring, body regex and a value at a dotted JSON path.
* ``tcp``: a TCP connect to ``host:port``.
* ``compose``: the containers of a Docker Compose project, read through the
  Docker Engine API with the Docker SDK for Python (``docker.from_env()``):
  each expected service has a running container whose Docker health state is
  ``healthy`` (or that has no healthcheck).
* ``exec``: a command run in a running container of a compose service through
  the Docker Engine API (as ``docker compose exec -T``), such as a database
  query; it passes on exit code 0 and, optionally, output matching a regex.

Third-party libraries: requests (2.25+) for ``http`` checks, the Docker SDK
(5.0+) for ``compose`` checks; Debian's python3-requests and python3-docker.
Without them this file still imports; the check reports what is missing.

Header values are never copied into results or messages: they may hold
credentials.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import traceback
import urllib.parse

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _http
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._http import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    redact_url,
)

try:
    import docker
    from docker.errors import APIError, DockerException
except ImportError:
    docker = None
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        """Stands in for docker.errors.DockerException when the SDK is missing."""

    class APIError(DockerException):
        """Stands in for docker.errors.APIError when the SDK is missing."""
else:
    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR = None

if HAS_REQUESTS:
    from requests.exceptions import RequestException
else:

    class RequestException(Exception):
        """Stands in for requests.exceptions.RequestException when requests is missing."""


MISSING_DOCKER_SDK = "the Python Docker SDK (python3-docker) is missing on this host: run playbooks/bootstrap.yml"
MISSING_REQUESTS = "the Python library requests (python3-requests) is missing on this host: run playbooks/bootstrap.yml"


def missing_library(checks):
    """``(message, import traceback)`` when a library ``checks`` need is missing on this host, else None.

    HTTP checks (a check without ``type`` is one) need requests; compose and exec checks the Docker SDK.
    """
    types = {(check.get("type") or "http") for check in checks if isinstance(check, dict)}
    if "http" in types and not HAS_REQUESTS:
        return f"HTTP checks need requests, and {MISSING_REQUESTS}", REQUESTS_IMPORT_ERROR
    if types & {"compose", "exec"} and not HAS_DOCKER_SDK:
        return f"Compose and exec checks need the Docker SDK, and {MISSING_DOCKER_SDK}", DOCKER_SDK_IMPORT_ERROR
    return None


__all__ = [
    "CHECK_TYPES",
    "DOCKER_SDK_IMPORT_ERROR",
    "HAS_DOCKER_SDK",
    "HAS_REQUESTS",
    "MISSING_DOCKER_SDK",
    "MISSING_REQUESTS",
    "REQUESTS_IMPORT_ERROR",
    "HealthSpecError",
    "Outcome",
    "docker_client_from_env",
    "evaluate_http_response",
    "failure_message",
    "list_compose_containers",
    "lookup_json_path",
    "missing_library",
    "normalize_check",
    "normalize_checks",
    "parse_json_path",
    "probe",
    "probe_compose",
    "probe_exec",
    "probe_http",
    "probe_tcp",
    "redact_url",
    "run_checks",
    "values_equal",
]

CHECK_TYPES = ("http", "tcp", "compose", "exec")
HTTP_METHODS = ("GET", "HEAD")

DEFAULT_TIMEOUT = 10.0
MAX_BODY_BYTES = 1024 * 1024
EXCERPT_CHARS = 80

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"

# Options every check accepts, then the options of each type.
_COMMON_KEYS = ("name", "type", "timeout")
_TYPE_KEYS = {
    "http": (
        "url",
        "method",
        "status_code",
        "body_contains",
        "body_regex",
        "json_path",
        "json_value",
        "headers",
        "secret_headers",
        "validate_certs",
        "follow_redirects",
    ),
    "tcp": ("host", "port"),
    "compose": ("project", "services"),
    "exec": ("project", "service", "command", "output_regex"),
}

_MISSING = object()


class HealthSpecError(ValueError):
    """A check definition is invalid (raised before anything is probed)."""


class Outcome:
    """The result of one attempt of one check."""

    __slots__ = ("detail", "extra", "ok", "status")

    def __init__(self, ok, status, detail, extra=None):
        self.ok = bool(ok)
        self.status = status
        self.detail = detail
        self.extra = extra or {}


# ---------------------------------------------------------------------------
# Check definitions
# ---------------------------------------------------------------------------


def _is_set(value):
    return value is not None and value != [] and value != {}


def parse_json_path(path):
    """Split ``frontend.version`` / ``items.0.name`` into segments.

    A segment made of digits indexes a list (and is also tried as a key of an
    object). Raises HealthSpecError on an empty path or an empty segment.
    """
    if not isinstance(path, str) or not path.strip():
        raise HealthSpecError("json_path must be a non-empty string such as 'backend.version'")
    segments = path.strip().split(".")
    if any(segment == "" for segment in segments):
        raise HealthSpecError(
            f"json_path {path!r} has an empty segment; write keys separated by single dots "
            "and list indexes as numbers, e.g. 'items.0.name'"
        )
    return segments


def normalize_check(spec):
    """Validate one check definition and return a copy with defaults filled in.

    ``spec`` is a dict as given to the module (unset options may be ``None``).
    Raises HealthSpecError naming the check and the problem.
    """
    if not isinstance(spec, dict):
        raise HealthSpecError(f"each check must be a dict, got {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HealthSpecError("every check needs a non-empty 'name'")
    label = f"check {name!r}"

    check_type = spec.get("type") or "http"
    if check_type not in CHECK_TYPES:
        raise HealthSpecError(f"{label}: type must be one of {', '.join(CHECK_TYPES)}, got {check_type!r}")

    allowed = set(_COMMON_KEYS) | set(_TYPE_KEYS[check_type])
    known = set(_COMMON_KEYS)
    for keys in _TYPE_KEYS.values():
        known.update(keys)
    for key in sorted(spec):
        if key not in known:
            raise HealthSpecError(f"{label}: unknown option {key!r}")
        if key not in allowed and _is_set(spec[key]):
            raise HealthSpecError(f"{label}: option {key!r} does not apply to a {check_type} check")

    timeout = spec.get("timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise HealthSpecError(f"{label}: timeout must be a number of seconds, got {timeout!r}")
    if timeout <= 0:
        raise HealthSpecError(f"{label}: timeout must be greater than 0, got {timeout}")

    check = {"name": name, "type": check_type, "timeout": timeout}
    if check_type == "http":
        check.update(_normalize_http(spec, label))
    elif check_type == "tcp":
        check.update(_normalize_tcp(spec, label))
    elif check_type == "exec":
        check.update(_normalize_exec(spec, label))
    else:
        check.update(_normalize_compose(spec, label))
    return check


def _integer(value, problem):
    """``int(value)``, or HealthSpecError ``"<problem>, got <value>"``."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise HealthSpecError(f"{problem}, got {value!r}")


def _normalize_http(spec, label):
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise HealthSpecError(f"{label}: an http check needs 'url'")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HealthSpecError(f"{label}: url must be an absolute http:// or https:// URL, got {redact_url(url)!r}")

    method = (spec.get("method") or "GET").upper()
    if method not in HTTP_METHODS:
        raise HealthSpecError(f"{label}: method must be one of {', '.join(HTTP_METHODS)}, got {method!r}")

    status_code = spec.get("status_code")
    if status_code is None or status_code == []:
        status_code = [200]
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        status_code = [status_code]
    codes = []
    for code in status_code:
        code = _integer(code, f"{label}: status_code entries must be integers")
        if not 100 <= code <= 599:
            raise HealthSpecError(f"{label}: status_code {code} is not an HTTP status")
        codes.append(code)

    body_regex = spec.get("body_regex")
    compiled = None
    if body_regex is not None:
        try:
            compiled = re.compile(body_regex)
        except re.error as exc:
            raise HealthSpecError(f"{label}: body_regex {body_regex!r} does not compile: {exc}")

    json_path = spec.get("json_path")
    json_value = spec.get("json_value")
    segments = None
    if json_path is not None:
        try:
            segments = parse_json_path(json_path)
        except HealthSpecError as exc:
            raise HealthSpecError(f"{label}: {exc}")
    elif json_value is not None:
        raise HealthSpecError(f"{label}: json_value needs json_path (where to read the value)")

    body_checks = spec.get("body_contains") is not None or compiled is not None or segments is not None
    if method == "HEAD" and body_checks:
        raise HealthSpecError(
            f"{label}: a HEAD request has no body; use method GET with body_contains, body_regex or json_path"
        )

    headers = {}
    for option in ("headers", "secret_headers"):
        value = spec.get(option) or {}
        if not isinstance(value, dict):
            raise HealthSpecError(f"{label}: {option} must be a dict of header names to values")
        for key, val in value.items():
            headers[str(key)] = "" if val is None else str(val)

    validate_certs = spec.get("validate_certs")
    follow_redirects = spec.get("follow_redirects")
    return {
        "url": url,
        "method": method,
        "status_code": codes,
        "body_contains": spec.get("body_contains"),
        "body_regex": compiled,
        "json_path": json_path,
        "json_path_segments": segments,
        "json_value": _MISSING if json_value is None else json_value,
        "headers": headers,
        "validate_certs": True if validate_certs is None else bool(validate_certs),
        "follow_redirects": False if follow_redirects is None else bool(follow_redirects),
    }


def _normalize_tcp(spec, label):
    host = spec.get("host")
    if not isinstance(host, str) or not host:
        raise HealthSpecError(f"{label}: a tcp check needs 'host'")
    port = _integer(spec.get("port"), f"{label}: a tcp check needs an integer 'port'")
    if not 1 <= port <= 65535:
        raise HealthSpecError(f"{label}: port must be between 1 and 65535, got {port}")
    return {"host": host, "port": port}


def _normalize_compose(spec, label):
    project = spec.get("project")
    if not isinstance(project, str) or not project:
        raise HealthSpecError(f"{label}: a compose check needs 'project' (the compose project name)")
    services = spec.get("services") or []
    if isinstance(services, str):
        services = [services]
    names = []
    for service in services:
        if not isinstance(service, str) or not service:
            raise HealthSpecError(f"{label}: services must be a list of service names")
        if service not in names:
            names.append(service)
    return {"project": project, "services": names}


def _normalize_exec(spec, label):
    project = spec.get("project")
    if not isinstance(project, str) or not project:
        raise HealthSpecError(f"{label}: an exec check needs 'project' (the compose project name)")
    service = spec.get("service")
    if not isinstance(service, str) or not service:
        raise HealthSpecError(f"{label}: an exec check needs 'service' (the compose service to run the command in)")
    command = spec.get("command")
    if (
        not isinstance(command, (list, tuple))
        or not command
        or not all(isinstance(arg, str) and arg for arg in command)
    ):
        raise HealthSpecError(f"{label}: command must be a non-empty list of arguments, such as ['pg_isready']")
    output_regex = spec.get("output_regex")
    compiled = None
    if output_regex is not None:
        try:
            compiled = re.compile(output_regex)
        except re.error as exc:
            raise HealthSpecError(f"{label}: output_regex {output_regex!r} does not compile: {exc}")
    return {"project": project, "service": service, "command": list(command), "output_regex": compiled}


def normalize_checks(specs):
    """Normalize a list of check definitions; names must be unique."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise HealthSpecError("checks must be a non-empty list")
    checks = [normalize_check(spec) for spec in specs]
    seen = set()
    for check in checks:
        if check["name"] in seen:
            raise HealthSpecError(f"check names must be unique; {check['name']!r} appears twice")
        seen.add(check["name"])
    return checks


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _excerpt(text, limit=EXCERPT_CHARS):
    text = " ".join(text.split())
    if len(text) > limit:
        return text[:limit] + "..."
    return text


def lookup_json_path(document, segments):
    """Return the value at ``segments`` in ``document``.

    Raises KeyError with a readable message when the path does not exist.
    """
    current = document
    walked = []
    for segment in segments:
        where = ".".join(walked) or "the top level"
        if isinstance(current, dict):
            if segment not in current:
                raise KeyError(f"key {segment!r} missing at {where}")
            current = current[segment]
        elif isinstance(current, list):
            if not segment.lstrip("-").isdigit():
                raise KeyError(f"{where} is a list; {segment!r} is not an index")
            index = int(segment)
            if not -len(current) <= index < len(current):
                raise KeyError(f"index {index} out of range at {where} (length {len(current)})")
            current = current[index]
        else:
            raise KeyError(f"{where} is a {_json_type(current)}, cannot descend into {segment!r}")
        walked.append(segment)
    return current


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def values_equal(actual, expected):
    """Compare a JSON value with an expected one.

    Exact equality first (booleans never equal numbers); a string expectation
    also matches a scalar whose JSON text is that string, so ``"3"`` matches
    ``3`` and ``"true"`` matches ``true`` (templated values arrive as strings).
    """
    if isinstance(actual, bool) == isinstance(expected, bool) and actual == expected:
        return True
    if isinstance(expected, str) and not isinstance(actual, (dict, list, str)):
        return json.dumps(actual) == expected
    return False


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


class _Sessions:
    """The HTTP sessions of one run, one per ``validate_certs`` value, made on first use and reused."""

    def __init__(self):
        self._by_verify = {}

    def get(self, validate_certs):
        session = self._by_verify.get(validate_certs)
        if session is None:
            session = self._by_verify[validate_certs] = _http.make_session(validate_certs=validate_certs, pool_size=1)
        # Each attempt stands alone: nothing a health endpoint set is sent back.
        session.cookies.clear()
        return session

    def close(self):
        for session in self._by_verify.values():
            session.close()
        self._by_verify.clear()


def probe_http(check, sessions=None):
    """One HTTP request; returns an Outcome.

    ``sessions``: the :class:`_Sessions` of a run (kept-alive connections reused
    between attempts), or None for a session of this request only.
    Redirects are followed only with ``follow_redirects`` (at most 10; a ``Host``
    header is not carried to the target, nor ``Authorization`` to another host).
    """
    if not HAS_REQUESTS:
        return Outcome(False, None, MISSING_REQUESTS)
    timeout = check["timeout"]
    owned = sessions is None
    if owned:
        sessions = _Sessions()
    session = sessions.get(check["validate_certs"])
    try:
        result = _http.send(
            session,
            check["method"],
            check["url"],
            headers=check["headers"],
            timeout=timeout,
            max_body=MAX_BODY_BYTES,
            allow_redirects=check["follow_redirects"],
        )
    except _http.BodyError as exc:
        return Outcome(
            False,
            exc.status,
            f"HTTP {exc.status}, then reading the body failed: {_http.describe_exception(exc.cause, timeout)}",
        )
    except (RequestException, OSError, ValueError) as exc:
        return Outcome(False, None, _http.describe_exception(exc, timeout))
    finally:
        if owned:
            sessions.close()
    charset = _http.content_charset(result.headers)
    try:
        body = result.body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        body = result.body.decode("utf-8", errors="replace")
    return evaluate_http_response(check, result.status, body)


def evaluate_http_response(check, status, body):
    """Apply the status and body expectations of ``check`` to a response."""
    expected = check["status_code"]
    if status not in expected:
        detail = f"HTTP {status}, expected {_fmt_codes(expected)}"
        if body.strip():
            detail += f" (body: {_excerpt(body)!r})"
        return Outcome(False, status, detail)

    passed = [f"HTTP {status}"]
    contains = check.get("body_contains")
    if contains is not None:
        if contains not in body:
            return Outcome(
                False, status, f"HTTP {status} but the body does not contain {contains!r} (body: {_excerpt(body)!r})"
            )
        passed.append(f"body contains {contains!r}")

    regex = check.get("body_regex")
    if regex is not None:
        if not regex.search(body):
            return Outcome(
                False, status, f"HTTP {status} but the body does not match /{regex.pattern}/ (body: {_excerpt(body)!r})"
            )
        passed.append(f"body matches /{regex.pattern}/")

    segments = check.get("json_path_segments")
    if segments:
        path = check["json_path"]
        try:
            document = json.loads(body)
        except ValueError:
            return Outcome(False, status, f"HTTP {status} but the body is not JSON (body: {_excerpt(body)!r})")
        try:
            actual = lookup_json_path(document, segments)
        except KeyError as exc:
            return Outcome(False, status, f"HTTP {status} but json_path {path!r} was not found: {exc.args[0]}")
        wanted = check.get("json_value", _MISSING)
        if wanted is _MISSING:
            passed.append(f"json_path {path!r} present ({_excerpt(json.dumps(actual))})")
        elif values_equal(actual, wanted):
            passed.append(f"json_path {path!r} == {_excerpt(json.dumps(actual))}")
        else:
            return Outcome(
                False,
                status,
                f"HTTP {status} but json_path {path!r} is {_excerpt(json.dumps(actual))}, expected {_excerpt(json.dumps(wanted))}",
            )
    return Outcome(True, status, ", ".join(passed))


def _fmt_codes(codes):
    if len(codes) == 1:
        return str(codes[0])
    return "one of " + ", ".join(str(code) for code in codes)


# ---------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------


def probe_tcp(check):
    """One TCP connect; returns an Outcome."""
    address = f"{check['host']}:{check['port']}"
    try:
        conn = socket.create_connection((check["host"], check["port"]), timeout=check["timeout"])
    except (TimeoutError, socket.timeout):  # distinct classes before Python 3.10
        return Outcome(False, "timeout", f"{address}: timed out after {_http.fmt_seconds(check['timeout'])}s")
    except ConnectionRefusedError:
        return Outcome(False, "refused", f"{address}: connection refused")
    except OSError as exc:
        return Outcome(False, "error", f"{address}: {_http.describe_exception(exc, check['timeout'])}")
    conn.close()
    return Outcome(True, "connected", f"{address} accepts connections")


# ---------------------------------------------------------------------------
# Docker Compose
# ---------------------------------------------------------------------------

# The worse a state, the lower its rank: a service and a check report their
# worst. Any container state other than running (exited, created, restarting,
# paused, dead) ranks between "missing" and "unhealthy".
_STATE_RANK = {"error": 0, "missing": 1, "unhealthy": 3, "starting": 4, "running": 10, "healthy": 10}
_NOT_RUNNING_RANK = 2
_GOOD = ("running", "healthy")


def _rank(status):
    return _STATE_RANK.get(status, _NOT_RUNNING_RANK)


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def docker_client_from_env():
    """A Docker SDK client configured like the docker CLI (``DOCKER_HOST`` etc.), API version negotiated."""
    return docker.from_env(version="auto")


def _docker_reason(exc):
    """Why talking to the Docker Engine failed, in a few words and with the fix."""
    if _http.find_cause(exc, PermissionError) is not None:
        return (
            "permission denied on the Docker socket: run the task as root (become: true) "
            "or as a member of the docker group"
        )
    if _http.find_cause(exc, (FileNotFoundError, ConnectionRefusedError)) is not None:
        return "the Docker daemon does not answer on its socket: check that the docker service runs"
    if isinstance(exc, APIError):
        explanation = getattr(exc, "explanation", None) or str(exc)
        return _http.safe_message(f"the Docker API answered an error: {explanation}")
    return _http.describe_exception(exc)


class _DockerAccess:
    """The Docker client of one run: the injected one, or one from the environment made on first use."""

    def __init__(self, client=None):
        self._client = client
        self._owned = False

    def get(self):
        if self._client is None:
            if not HAS_DOCKER_SDK:
                raise RuntimeError(MISSING_DOCKER_SDK)
            try:
                self._client = docker_client_from_env()
            except (DockerException, RequestException, OSError) as exc:
                raise RuntimeError(f"cannot connect to the Docker Engine: {_docker_reason(exc)}")
            self._owned = True
        return self._client

    def close(self):
        if self._owned and self._client is not None:
            self._client.close()
            self._client = None
            self._owned = False


def _container_record(item):
    """The fields a compose check needs from a container's inspect data (``Container.attrs``)."""
    labels = (item.get("Config") or {}).get("Labels") or {}
    state = item.get("State") or {}
    health = state.get("Health") or None
    log = (health or {}).get("Log") or []
    healthcheck = (item.get("Config") or {}).get("Healthcheck") or {}
    return {
        "id": item.get("Id", ""),
        "name": (item.get("Name") or "").lstrip("/"),
        "service": labels.get(COMPOSE_SERVICE_LABEL, ""),
        "state": state.get("Status") or ("running" if state.get("Running") else "unknown"),
        "health": health.get("Status") if health else None,
        "health_output": _last_line(log[-1].get("Output", "")) if log and isinstance(log[-1], dict) else "",
        # Docker has not run the healthcheck yet (its first run comes one interval after the start) in a container
        # that never restarted (a restart resets the health to "starting"): the compose check may run that same
        # test now (_run_first_healthcheck).
        "health_unrun": bool(health)
        and health.get("Status") == "starting"
        and not log
        and not health.get("FailingStreak")
        and not int(item.get("RestartCount") or 0),
        "healthcheck_test": healthcheck.get("Test") or [],
        "healthcheck_timeout": (healthcheck.get("Timeout") or 0) / 1e9 or _HEALTHCHECK_TIMEOUT,
        "shell": (item.get("Config") or {}).get("Shell") or [],
        "started_at": state.get("StartedAt") or "",
        "exit_code": state.get("ExitCode"),
        "image": (item.get("Config") or {}).get("Image", ""),
        "image_id": item.get("Image", ""),
        "oneoff": str(labels.get(COMPOSE_ONEOFF_LABEL, "False")).lower() == "true",
    }


def list_compose_containers(project, client):
    """The containers of compose ``project`` (one-off ``compose run`` ones excluded), from the Docker API.

    ``client`` is a Docker SDK client (``docker.from_env()``) or any object with
    ``containers.list(all=..., filters=..., ignore_removed=...)`` returning objects
    with ``attrs`` (inspect data). A container removed while being listed is skipped.
    Raises RuntimeError saying why the Docker Engine could not be read.
    """
    try:
        found = client.containers.list(
            all=True, filters={"label": f"{COMPOSE_PROJECT_LABEL}={project}"}, ignore_removed=True
        )
        items = [container.attrs for container in found]
    except (DockerException, RequestException, OSError) as exc:
        raise RuntimeError(
            f"cannot list the containers of compose project {project!r} through the Docker "
            f"Engine API: {_docker_reason(exc)}"
        )
    containers = []
    for item in items:
        if not isinstance(item, dict):
            continue
        record = _container_record(item)
        if record.pop("oneoff"):
            continue
        containers.append(record)
    return containers


def _service_status(service, containers):
    """Judge one service from its containers."""
    result = {
        "service": service,
        "ok": False,
        "containers": len(containers),
        "state": "missing",
        "health": None,
        "image": None,
        "image_id": None,
        "detail": "no container in the project",
    }
    if not containers:
        return result
    worst = min(containers, key=lambda c: _rank(_container_status(c)))
    result.update(
        {
            "state": worst["state"],
            "health": worst["health"],
            "image": worst["image"],
            "image_id": worst["image_id"],
            "ok": _container_status(worst) in _GOOD,
        }
    )
    if result["ok"]:
        result["detail"] = "healthy" if worst["health"] else "running (no healthcheck)"
        noted = [c for c in containers if c.get("health_note")]
        if noted:
            result["detail"] += f" ({noted[0]['health_note']})"
    elif worst["state"] != "running":
        detail = worst["state"]
        if worst["exit_code"] not in (None, 0) or worst["state"] == "exited":
            detail += f" (exit code {worst['exit_code']})"
        result["detail"] = detail
    else:
        detail = worst["health"]
        said = [worst["health_note"]] if worst.get("health_note") else []
        if worst["health_output"]:
            said.append(f"last healthcheck output: {_excerpt(worst['health_output'])!r}")
        if said:
            detail += f" ({'; '.join(said)})"
        result["detail"] = detail
    if len(containers) > 1 and not result["ok"]:
        result["detail"] += f" in {worst['name'] or 'one'} of {len(containers)} containers"
    return result


def _container_status(container):
    if container["state"] != "running":
        return container["state"]
    if container["health"] is None:
        return "running"
    return container["health"]


# Docker's default healthcheck timeout (30 s) when the container's definition sets none.
_HEALTHCHECK_TIMEOUT = 30.0


def _healthcheck_argv(test, shell=None):
    """The argv of a container's healthcheck test (``Config.Healthcheck.Test``), or None when it has none.

    As Docker builds it: ``CMD`` runs its arguments; ``CMD-SHELL`` runs them after the container's shell
    (``Config.Shell``, else ``/bin/sh -c``), each its own argument.
    """
    if not test or not isinstance(test, list):
        return None
    kind, args = test[0], [str(a) for a in test[1:]]
    if kind == "CMD" and args:
        return args
    if kind == "CMD-SHELL" and args:
        return [str(a) for a in (shell or ["/bin/sh", "-c"])] + args
    return None


# A healthcheck run by a compose check runs at most once at a time per container (a test that hangs is not run
# again beside itself), and its answer stands for this many seconds: a gate that polls every quarter second does
# not run a container's healthcheck four times a second.
_RERUN_AFTER = 1.0
_FIRST_RUNS = {}
_FIRST_RUNS_LOCK = threading.Lock()


class _FirstRun:
    """One run of a container's healthcheck test through the Docker API, in a thread of its own."""

    def __init__(self, api, container_id, argv, clock):
        self.answer = None
        self.ended = None
        self.done = threading.Event()
        self.started = clock()
        self._clock = clock
        threading.Thread(target=self._run, args=(api, container_id, argv), daemon=True).start()

    def _run(self, api, container_id, argv):
        try:
            exec_id = api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
            output = _text(api.exec_start(exec_id))
            info = api.exec_inspect(exec_id)
            # The engine may report the exec as still running (no exit code yet) just after its output ended.
            for _wait in range(40):
                if not info.get("Running") or info.get("ExitCode") is not None:
                    break
                time.sleep(0.05)
                info = api.exec_inspect(exec_id)
            self.answer = (info.get("ExitCode"), output)
        except Exception as exc:  # noqa: BLE001 - reported as the reason the test could not run
            self.answer = (None, f"it could not be run: {_docker_reason(exc)}")
        self.ended = self._clock()
        self.done.set()


def _exec_once(api, container, argv, timeout, clock=time.monotonic):
    """``(exit code, output)`` of the container's healthcheck ``argv``, or ``(None, reason)``.

    A run still going on from an earlier look is waited for (never a second one beside it); past ``timeout``
    seconds from its start the answer is that it did not end in time.
    """
    key = (container["id"], container.get("started_at", ""))
    with _FIRST_RUNS_LOCK:
        run = _FIRST_RUNS.get(key)
        if run is None or (run.done.is_set() and clock() - run.ended >= _RERUN_AFTER):
            run = _FIRST_RUNS[key] = _FirstRun(api, container["id"], argv, clock)
    late = (None, f"it did not end within its timeout ({_http.fmt_seconds(timeout)}s)")
    if not run.done.wait(max(0.0, run.started + timeout - clock())):
        return late
    # A run that ended after its timeout failed, as Docker counts it, whatever it answered.
    return late if run.ended - run.started > timeout else run.answer


def _run_first_healthcheck(containers, client):
    """Run now the healthcheck of each running container that Docker has not checked yet.

    Docker's first run of a healthcheck comes one ``interval`` after the start (5 s by default here, and
    Docker 20.10 has no shorter start interval), so a container that already works is "starting" until then.
    Its own test, run now in it as Docker runs it (exit code 0 passes), answers the same question earlier:
    it counts as healthy when it passes, and stays "starting" (not ready) when it fails or cannot run.
    Only containers whose healthcheck has never run and that never restarted: once Docker has run it, or the
    container restarted (a crash loop), Docker's status is the answer.
    """
    api = getattr(client, "api", None)
    if api is None:
        return
    for container in containers:
        if container["state"] != "running" or not container.pop("health_unrun", False):
            continue
        argv = _healthcheck_argv(container["healthcheck_test"], container["shell"])
        if argv is None:
            continue
        code, output = _exec_once(api, container, argv, container["healthcheck_timeout"])
        if code == 0:
            container["health"] = "healthy"
            container["health_note"] = "its healthcheck passed when this check ran it (Docker had not yet)"
        elif code is not None:
            container["health_note"] = f"its healthcheck, run by this check before Docker ran it, exited {code}"
            container["health_output"] = _last_line(output)
        else:
            container["health_note"] = f"its healthcheck, run by this check before Docker ran it: {output}"


def probe_compose(check, docker_client=None):
    """One look at a compose project; returns an Outcome with per-service results.

    ``docker_client``: a Docker SDK client (or a stand-in), or None for one from the environment.
    """
    project = check["project"]
    access = docker_client if isinstance(docker_client, _DockerAccess) else _DockerAccess(docker_client)
    try:
        client = access.get()
        containers = list_compose_containers(project, client)
        wanted = set(check["services"])
        _run_first_healthcheck([c for c in containers if not wanted or c["service"] in wanted], client)
    except RuntimeError as exc:
        return Outcome(False, "error", str(exc), {"services": []})
    finally:
        if access is not docker_client:
            access.close()

    by_service = {}
    for container in containers:
        by_service.setdefault(container["service"], []).append(container)
    wanted = list(check["services"]) or sorted(by_service)
    if not wanted:
        return Outcome(False, "missing", f"compose project {project!r} has no containers", {"services": []})

    services = [_service_status(name, by_service.get(name, [])) for name in wanted]
    failing = [s for s in services if not s["ok"]]
    extra = {"services": services}
    if not failing:
        up = ", ".join(f"{s['service']} {s['detail']}" for s in services)
        return Outcome(True, "healthy", f"{len(services)} service(s) up: {up}", extra)
    worst = min(failing, key=lambda s: _rank(_service_status_key(s)))
    detail = "; ".join(f"{s['service']}: {s['detail']}" for s in failing)
    return Outcome(False, _service_status_key(worst), detail, extra)


def _service_status_key(service):
    if service["state"] == "missing":
        return "missing"
    if service["state"] != "running":
        return service["state"]
    return service["health"] or "running"


def _text(data):
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _lost_output(exit_code, output, regex):
    """Whether a passing exec answered nothing at all where ``regex`` wants output."""
    stdout, stderr = output if isinstance(output, tuple) else (output, None)
    return exit_code == 0 and not stdout and not stderr and regex is not None and not regex.search("")


def probe_exec(check, docker_client=None):
    """Run ``command`` in a running container of the compose service; returns an Outcome.

    Once, or twice when the first run exited 0 without any output where ``output_regex`` wants some.

    As ``docker compose exec -T``: no TTY, the container's user and environment. Passes on
    exit code 0 and, with ``output_regex``, standard output matching it. ``status`` is the
    exit code, or ``missing`` (no running container) or ``error`` (the engine failed).
    """
    project, service = check["project"], check["service"]
    access = docker_client if isinstance(docker_client, _DockerAccess) else _DockerAccess(docker_client)
    try:
        client = access.get()
        found = client.containers.list(
            filters={"label": [f"{COMPOSE_PROJECT_LABEL}={project}", f"{COMPOSE_SERVICE_LABEL}={service}"]},
            ignore_removed=True,
        )
        running = [
            c
            for c in found
            if (c.attrs.get("State") or {}).get("Running")
            and str(((c.attrs.get("Config") or {}).get("Labels") or {}).get(COMPOSE_ONEOFF_LABEL, "False")).lower()
            != "true"
        ]
        if not running:
            return Outcome(
                False, "missing", f"no running container of service {service!r} in compose project {project!r}"
            )
        exit_code, output = running[0].exec_run(check["command"], stdout=True, stderr=True, demux=True)
        if _lost_output(exit_code, output, check["output_regex"]):
            # Exit code 0 and not one byte of output where output is expected: the engine can lose an exec's
            # output under load (seen in a `make test`: psql's "1" missing once in a gate's hold). Asked once more;
            # a command that prints nothing twice fails as before.
            exit_code, output = running[0].exec_run(check["command"], stdout=True, stderr=True, demux=True)
    except RuntimeError as exc:
        return Outcome(False, "error", str(exc))
    except (DockerException, RequestException, OSError) as exc:
        return Outcome(False, "error", f"cannot run the command in service {service!r}: {_docker_reason(exc)}")
    finally:
        if access is not docker_client:
            access.close()
    stdout, stderr = output if isinstance(output, tuple) else (output, None)
    stdout, stderr = _text(stdout), _text(stderr)
    if exit_code != 0:
        said = _last_line(stderr) or _last_line(stdout) or "no output"
        return Outcome(False, exit_code, f"exit code {exit_code}: {_excerpt(said, 300)}")
    regex = check["output_regex"]
    if regex is not None and not regex.search(stdout):
        return Outcome(
            False,
            exit_code,
            f"exit code 0 but the output {_excerpt(stdout)!r} does not match the regex {regex.pattern}",
        )
    return Outcome(True, exit_code, f"exit code 0, output {_excerpt(stdout)!r}")


# ---------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------


def probe(check, docker_client=None, sessions=None):
    """Run one attempt of ``check`` (a normalized definition)."""
    try:
        if check["type"] == "http":
            return probe_http(check, sessions)
        if check["type"] == "tcp":
            return probe_tcp(check)
        if check["type"] == "exec":
            return probe_exec(check, docker_client)
        return probe_compose(check, docker_client)
    except Exception as exc:  # noqa: BLE001 - one broken probe must not hide the others' results
        return Outcome(False, "error", f"unexpected error: {type(exc).__name__}: {exc}")


def _public_result(check, attempts, elapsed, outcome):
    result = {
        "name": check["name"],
        "type": check["type"],
        "ok": outcome.ok,
        "attempts": attempts,
        "elapsed": round(elapsed, 3),
        "status": outcome.status,
        "detail": outcome.detail,
    }
    if check["type"] == "http":
        result.update({"url": redact_url(check["url"]), "method": check["method"]})
    elif check["type"] == "tcp":
        result.update({"host": check["host"], "port": check["port"]})
    elif check["type"] == "exec":
        result.update({"project": check["project"], "service": check["service"]})
    else:
        result.update({"project": check["project"], "services": outcome.extra.get("services", [])})
    return result


def run_checks(
    specs,
    deadline=120,
    interval=2,
    docker_client=None,
    clock=time.monotonic,
    sleep=time.sleep,
    hold=0,
    on_pass=None,
    hold_interval=None,
):
    """Poll every check until it passes or ``deadline`` seconds have passed.

    Each round probes the checks that have not passed yet, then sleeps
    ``interval`` seconds (never past the deadline). Every check gets at least
    one attempt, and one last attempt when the deadline is reached; a request
    in flight may overrun the deadline by at most its own ``timeout``.

    With ``hold`` > 0, once every check has passed, all checks are probed
    together in rounds for ``hold`` more seconds: one round at once, one every
    ``interval`` seconds, and a last one when the window ends. Every check must
    pass in every round; the first round in which one fails ends the run, and
    that check is reported as failed ("passed, then failed ... into the hold"),
    so a service that passes once and then crashes fails the gate. The hold
    starts after the polling and is not counted in ``deadline``.

    ``docker_client`` is the Docker SDK client of compose checks; None makes one
    from the environment (``docker.from_env()``) at the first compose attempt.
    ``on_pass`` (no arguments) is called once, when every check has passed and
    before the hold starts. ``hold_interval``: seconds between the rounds of the
    hold (default ``interval``).

    Returns ``{"checks": [...], "summary": {...}, "healthy": bool}``.
    Raises HealthSpecError (a ValueError) on invalid definitions.
    """
    checks = normalize_checks(specs)
    try:
        deadline = float(deadline)
        interval = float(interval)
    except (TypeError, ValueError):
        raise HealthSpecError("deadline and interval must be numbers of seconds")
    if deadline < 0:
        raise HealthSpecError(f"deadline must be 0 or more seconds, got {_http.fmt_seconds(deadline)}")
    if interval <= 0:
        raise HealthSpecError(f"interval must be more than 0 seconds, got {_http.fmt_seconds(interval)}")
    try:
        hold = float(hold)
    except (TypeError, ValueError):
        raise HealthSpecError("hold must be a number of seconds")
    if hold < 0:
        raise HealthSpecError(f"hold must be 0 or more seconds, got {_http.fmt_seconds(hold)}")

    start = clock()
    end = start + deadline
    state = [{"attempts": 0, "elapsed": 0.0, "outcome": None} for _check in checks]
    pending = list(range(len(checks)))
    access = _DockerAccess(docker_client)
    sessions = _Sessions()
    try:
        while True:
            for index in list(pending):
                outcome = probe(checks[index], access, sessions)
                entry = state[index]
                entry["attempts"] += 1
                entry["outcome"] = outcome
                entry["elapsed"] = max(clock() - start, 0.0)
                if outcome.ok:
                    pending.remove(index)
            if not pending:
                break
            now = clock()
            if now >= end:
                break
            sleep(min(interval, end - now))
        held = None
        if not pending and on_pass is not None:
            on_pass()
        if not pending and hold > 0:
            held = _hold(checks, state, hold, hold_interval or interval, start, access, sessions, clock, sleep)
    finally:
        access.close()
        sessions.close()

    results = [
        _public_result(check, entry["attempts"], entry["elapsed"], entry["outcome"])
        for check, entry in zip(checks, state)
    ]
    failed = [r["name"] for r in results if not r["ok"]]
    summary = {
        "total": len(results),
        "passed": len(results) - len(failed),
        "failed": len(failed),
        "failed_names": failed,
        "elapsed": round(max(clock() - start, 0.0), 3),
        "held": None if held is None else round(held, 3),
    }
    return {"checks": results, "summary": summary, "healthy": not failed}


def _hold(checks, state, hold, interval, start, access, sessions, clock, sleep):
    """Probe every check together in rounds for ``hold`` seconds; stop at the first failed round.

    Updates ``state`` in place (attempts, outcome, elapsed) and returns the
    seconds the hold lasted.
    """
    began = clock()
    end = began + hold
    while True:
        failed = False
        for index, check in enumerate(checks):
            outcome = probe(check, access, sessions)
            entry = state[index]
            entry["attempts"] += 1
            entry["elapsed"] = max(clock() - start, 0.0)
            if outcome.ok:
                entry["outcome"] = outcome
            else:
                failed = True
                into = _http.fmt_seconds(round(max(clock() - began, 0.0), 1))
                entry["outcome"] = Outcome(
                    False,
                    outcome.status,
                    f"passed, then failed {into}s into the {_http.fmt_seconds(hold)}s hold: {outcome.detail}",
                    outcome.extra,
                )
        now = clock()
        if failed or now >= end:
            return max(now - began, 0.0)
        sleep(min(interval, end - now))


def failure_message(report, deadline=None):
    """One sentence naming every failed check and why."""
    summary = report["summary"]
    if not summary["failed"]:
        if summary.get("held"):
            return f"All {summary['total']} health checks passed, and all passed together for {_http.fmt_seconds(round(summary['held'], 1))}s."
        return f"All {summary['total']} health checks passed."
    reasons = []
    for r in report["checks"]:
        if not r["ok"]:
            attempts = "1 attempt" if r["attempts"] == 1 else f"{r['attempts']} attempts"
            reasons.append(f"{r['name']} ({r['type']} check, {attempts}: {r['detail']})")
    if summary.get("held") is not None:
        # Every check had passed; the failures happened in the hold that followed.
        return (
            f"All {summary['total']} health checks passed, then {summary['failed']} failed"
            f" in the hold that followed: {'; '.join(reasons)}."
        )
    within = ""
    if deadline is not None:
        within = f" within the {_http.fmt_seconds(float(deadline))}s deadline"
    return f"{summary['failed']} of {summary['total']} health checks did not pass{within}: {'; '.join(reasons)}."
