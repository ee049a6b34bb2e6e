# -*- coding: utf-8 -*-
# Copyright (c) avatar_mgmt.ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Health checks polled until they pass or a deadline expires.

Pure logic for the ``avatar_mgmt.ops.health_verify`` module. It runs on the
target host, uses only the standard library (Python >= 3.9) and imports nothing
from ``AnsibleModule``: the command runner, the clock and the sleep function are
injected, so the whole file is unit-testable.

Three check types:

* ``http``: one request; expected status, body substring, body regex and a
  value at a dotted JSON path.
* ``tcp``: a TCP connect to ``host:port``.
* ``compose``: the containers of a Docker Compose project, read with the
  ``docker`` CLI: each expected service has a running container whose Docker
  health state is ``healthy`` (or that has no healthcheck).

Header values are never copied into results or messages: they may hold
credentials.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

CHECK_TYPES = ("http", "tcp", "compose")
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
        "url", "method", "status_code", "body_contains", "body_regex",
        "json_path", "json_value", "headers", "secret_headers",
        "validate_certs", "follow_redirects",
    ),
    "tcp": ("host", "port"),
    "compose": ("project", "services"),
}

_MISSING = object()


class HealthSpecError(ValueError):
    """A check definition is invalid (raised before anything is probed)."""


class Outcome(object):
    """The result of one attempt of one check."""

    __slots__ = ("ok", "status", "detail", "extra")

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
            "json_path %r has an empty segment; write keys separated by single dots "
            "and list indexes as numbers, e.g. 'items.0.name'" % path
        )
    return segments


def normalize_check(spec):
    """Validate one check definition and return a copy with defaults filled in.

    ``spec`` is a dict as given to the module (unset options may be ``None``).
    Raises HealthSpecError naming the check and the problem.
    """
    if not isinstance(spec, dict):
        raise HealthSpecError("each check must be a dict, got %s" % type(spec).__name__)
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HealthSpecError("every check needs a non-empty 'name'")
    label = "check %r" % name

    check_type = spec.get("type") or "http"
    if check_type not in CHECK_TYPES:
        raise HealthSpecError(
            "%s: type must be one of %s, got %r" % (label, ", ".join(CHECK_TYPES), check_type)
        )

    allowed = set(_COMMON_KEYS) | set(_TYPE_KEYS[check_type])
    known = set(_COMMON_KEYS)
    for keys in _TYPE_KEYS.values():
        known.update(keys)
    for key in sorted(spec):
        if key not in known:
            raise HealthSpecError("%s: unknown option %r" % (label, key))
        if key not in allowed and _is_set(spec[key]):
            raise HealthSpecError(
                "%s: option %r does not apply to a %s check" % (label, key, check_type)
            )

    timeout = spec.get("timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise HealthSpecError("%s: timeout must be a number of seconds, got %r" % (label, timeout))
    if timeout <= 0:
        raise HealthSpecError("%s: timeout must be greater than 0, got %s" % (label, timeout))

    check = {"name": name, "type": check_type, "timeout": timeout}
    if check_type == "http":
        check.update(_normalize_http(spec, label))
    elif check_type == "tcp":
        check.update(_normalize_tcp(spec, label))
    else:
        check.update(_normalize_compose(spec, label))
    return check


def _normalize_http(spec, label):
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise HealthSpecError("%s: an http check needs 'url'" % label)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HealthSpecError(
            "%s: url must be an absolute http:// or https:// URL, got %r" % (label, redact_url(url))
        )

    method = (spec.get("method") or "GET").upper()
    if method not in HTTP_METHODS:
        raise HealthSpecError(
            "%s: method must be one of %s, got %r" % (label, ", ".join(HTTP_METHODS), method)
        )

    status_code = spec.get("status_code")
    if status_code is None or status_code == []:
        status_code = [200]
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        status_code = [status_code]
    codes = []
    for code in status_code:
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise HealthSpecError("%s: status_code entries must be integers, got %r" % (label, code))
        if not 100 <= code <= 599:
            raise HealthSpecError("%s: status_code %d is not an HTTP status" % (label, code))
        codes.append(code)

    body_regex = spec.get("body_regex")
    compiled = None
    if body_regex is not None:
        try:
            compiled = re.compile(body_regex)
        except re.error as exc:
            raise HealthSpecError("%s: body_regex %r does not compile: %s" % (label, body_regex, exc))

    json_path = spec.get("json_path")
    json_value = spec.get("json_value")
    segments = None
    if json_path is not None:
        try:
            segments = parse_json_path(json_path)
        except HealthSpecError as exc:
            raise HealthSpecError("%s: %s" % (label, exc))
    elif json_value is not None:
        raise HealthSpecError("%s: json_value needs json_path (where to read the value)" % label)

    body_checks = spec.get("body_contains") is not None or compiled is not None or segments is not None
    if method == "HEAD" and body_checks:
        raise HealthSpecError(
            "%s: a HEAD request has no body; use method GET with body_contains, body_regex or json_path" % label
        )

    headers = {}
    for option in ("headers", "secret_headers"):
        value = spec.get(option) or {}
        if not isinstance(value, dict):
            raise HealthSpecError("%s: %s must be a dict of header names to values" % (label, option))
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
        raise HealthSpecError("%s: a tcp check needs 'host'" % label)
    port = spec.get("port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise HealthSpecError("%s: a tcp check needs an integer 'port', got %r" % (label, port))
    if not 1 <= port <= 65535:
        raise HealthSpecError("%s: port must be between 1 and 65535, got %d" % (label, port))
    return {"host": host, "port": port}


def _normalize_compose(spec, label):
    project = spec.get("project")
    if not isinstance(project, str) or not project:
        raise HealthSpecError("%s: a compose check needs 'project' (the compose project name)" % label)
    services = spec.get("services") or []
    if isinstance(services, str):
        services = [services]
    names = []
    for service in services:
        if not isinstance(service, str) or not service:
            raise HealthSpecError("%s: services must be a list of service names" % label)
        if service not in names:
            names.append(service)
    return {"project": project, "services": names}


def normalize_checks(specs):
    """Normalize a list of check definitions; names must be unique."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise HealthSpecError("checks must be a non-empty list")
    checks = [normalize_check(spec) for spec in specs]
    seen = set()
    for check in checks:
        if check["name"] in seen:
            raise HealthSpecError("check names must be unique; %r appears twice" % check["name"])
        seen.add(check["name"])
    return checks


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def redact_url(url):
    """Drop ``user:password@`` from a URL before it is shown anywhere."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = "[%s]" % netloc
    if parts.port is not None:
        netloc = "%s:%d" % (netloc, parts.port)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
                raise KeyError("key %r missing at %s" % (segment, where))
            current = current[segment]
        elif isinstance(current, list):
            if not segment.lstrip("-").isdigit():
                raise KeyError("%s is a list; %r is not an index" % (where, segment))
            index = int(segment)
            if not -len(current) <= index < len(current):
                raise KeyError("index %d out of range at %s (length %d)" % (index, where, len(current)))
            current = current[index]
        else:
            raise KeyError("%s is a %s, cannot descend into %r" % (where, _json_type(current), segment))
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


def _describe_error(exc, timeout):
    """A short human reason for a network error, without URLs or headers."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _describe_error(reason, timeout)
        return "request failed: %s" % reason
    if isinstance(exc, socket.timeout):
        return "timed out after %ss" % _fmt_seconds(timeout)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed (%s); fix the certificate or set validate_certs: false" % (
            exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        return "TLS error: %s" % (exc.reason or exc)
    if isinstance(exc, socket.gaierror):
        return "name resolution failed: %s" % (exc.strerror or exc)
    if isinstance(exc, http.client.HTTPException):
        return "invalid HTTP response: %s" % (type(exc).__name__ if not str(exc) else exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return "%s: %s" % (type(exc).__name__, exc)


def _fmt_seconds(value):
    return ("%.3f" % value).rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects only when asked; never carry a Host override along."""

    def __init__(self, follow):
        self.follow = follow

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not self.follow:
            return None
        new = urllib.request.HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, headers, newurl)
        if new is not None:
            new.headers.pop("Host", None)
        return new


def _http_opener(check):
    context = ssl.create_default_context()
    if not check["validate_certs"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context),
        _RedirectHandler(check["follow_redirects"]),
    )


def probe_http(check):
    """One HTTP request; returns an Outcome."""
    request = urllib.request.Request(check["url"], method=check["method"])
    for key, value in check["headers"].items():
        request.add_header(key, value)
    timeout = check["timeout"]
    try:
        response = _http_opener(check).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        response = exc
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        return Outcome(False, None, _describe_error(exc, timeout))
    try:
        status = response.getcode()
        try:
            raw = response.read(MAX_BODY_BYTES) if check["method"] != "HEAD" else b""
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(False, status, "HTTP %s, then reading the body failed: %s" % (
                status, _describe_error(exc, timeout)))
        charset = None
        if response.headers is not None:
            charset = response.headers.get_content_charset()
    finally:
        response.close()
    try:
        body = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:
        body = raw.decode("utf-8", errors="replace")
    return evaluate_http_response(check, status, body)


def evaluate_http_response(check, status, body):
    """Apply the status and body expectations of ``check`` to a response."""
    expected = check["status_code"]
    if status not in expected:
        detail = "HTTP %s, expected %s" % (status, _fmt_codes(expected))
        if body.strip():
            detail += " (body: %r)" % _excerpt(body)
        return Outcome(False, status, detail)

    passed = ["HTTP %s" % status]
    contains = check.get("body_contains")
    if contains is not None:
        if contains not in body:
            return Outcome(False, status, "HTTP %s but the body does not contain %r (body: %r)" % (
                status, contains, _excerpt(body)))
        passed.append("body contains %r" % contains)

    regex = check.get("body_regex")
    if regex is not None:
        if not regex.search(body):
            return Outcome(False, status, "HTTP %s but the body does not match /%s/ (body: %r)" % (
                status, regex.pattern, _excerpt(body)))
        passed.append("body matches /%s/" % regex.pattern)

    segments = check.get("json_path_segments")
    if segments:
        path = check["json_path"]
        try:
            document = json.loads(body)
        except ValueError:
            return Outcome(False, status, "HTTP %s but the body is not JSON (body: %r)" % (
                status, _excerpt(body)))
        try:
            actual = lookup_json_path(document, segments)
        except KeyError as exc:
            return Outcome(False, status, "HTTP %s but json_path %r was not found: %s" % (
                status, path, exc.args[0]))
        wanted = check.get("json_value", _MISSING)
        if wanted is _MISSING:
            passed.append("json_path %r present (%s)" % (path, _excerpt(json.dumps(actual))))
        elif values_equal(actual, wanted):
            passed.append("json_path %r == %s" % (path, _excerpt(json.dumps(actual))))
        else:
            return Outcome(False, status, "HTTP %s but json_path %r is %s, expected %s" % (
                status, path, _excerpt(json.dumps(actual)), _excerpt(json.dumps(wanted))))
    return Outcome(True, status, ", ".join(passed))


def _fmt_codes(codes):
    if len(codes) == 1:
        return str(codes[0])
    return "one of %s" % ", ".join(str(code) for code in codes)


# ---------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------

def probe_tcp(check):
    """One TCP connect; returns an Outcome."""
    address = "%s:%d" % (check["host"], check["port"])
    try:
        conn = socket.create_connection((check["host"], check["port"]), timeout=check["timeout"])
    except socket.timeout:
        return Outcome(False, "timeout", "%s: timed out after %ss" % (address, _fmt_seconds(check["timeout"])))
    except ConnectionRefusedError:
        return Outcome(False, "refused", "%s: connection refused" % address)
    except OSError as exc:
        return Outcome(False, "error", "%s: %s" % (address, _describe_error(exc, check["timeout"])))
    conn.close()
    return Outcome(True, "connected", "%s accepts connections" % address)


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


def list_compose_containers(project, runner, docker_bin="docker"):
    """Inspect the containers of ``project`` (one-off ``compose run`` ones excluded).

    ``runner(argv)`` returns ``(rc, stdout, stderr)``. Raises RuntimeError with
    the docker error when the CLI fails.
    """
    argv = [docker_bin, "ps", "--all", "--quiet", "--no-trunc",
            "--filter", "label=%s=%s" % (COMPOSE_PROJECT_LABEL, project)]
    rc, out, err = runner(argv)
    if rc != 0:
        raise RuntimeError("docker ps failed (rc=%s): %s" % (rc, _last_line(err) or _last_line(out)))
    ids = [line.strip() for line in (out or "").splitlines() if line.strip()]
    if not ids:
        return []
    rc, out, err = runner([docker_bin, "inspect", "--type", "container"] + ids)
    try:
        data = json.loads(out or "[]")
    except ValueError:
        data = None
    if not isinstance(data, list) or (rc != 0 and not data):
        # A container removed between `ps` and `inspect` makes inspect exit 1
        # while still printing the others; only a total failure is an error.
        raise RuntimeError("docker inspect failed (rc=%s): %s" % (rc, _last_line(err) or _last_line(out)))
    containers = []
    for item in data:
        if not isinstance(item, dict):
            continue
        labels = (item.get("Config") or {}).get("Labels") or {}
        if str(labels.get(COMPOSE_ONEOFF_LABEL, "False")).lower() == "true":
            continue
        state = item.get("State") or {}
        health = state.get("Health") or None
        log = (health or {}).get("Log") or []
        containers.append({
            "id": item.get("Id", ""),
            "name": (item.get("Name") or "").lstrip("/"),
            "service": labels.get(COMPOSE_SERVICE_LABEL, ""),
            "state": state.get("Status") or ("running" if state.get("Running") else "unknown"),
            "health": health.get("Status") if health else None,
            "health_output": _last_line(log[-1].get("Output", "")) if log and isinstance(log[-1], dict) else "",
            "exit_code": state.get("ExitCode"),
            "image": (item.get("Config") or {}).get("Image", ""),
            "image_id": item.get("Image", ""),
        })
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
    result.update({
        "state": worst["state"],
        "health": worst["health"],
        "image": worst["image"],
        "image_id": worst["image_id"],
        "ok": _container_status(worst) in _GOOD,
    })
    if result["ok"]:
        result["detail"] = "healthy" if worst["health"] else "running (no healthcheck)"
    elif worst["state"] != "running":
        detail = worst["state"]
        if worst["exit_code"] not in (None, 0) or worst["state"] == "exited":
            detail += " (exit code %s)" % worst["exit_code"]
        result["detail"] = detail
    else:
        detail = worst["health"]
        if worst["health_output"]:
            detail += " (last healthcheck output: %r)" % _excerpt(worst["health_output"])
        result["detail"] = detail
    if len(containers) > 1 and not result["ok"]:
        result["detail"] += " in %s of %d containers" % (worst["name"] or "one", len(containers))
    return result


def _container_status(container):
    if container["state"] != "running":
        return container["state"]
    if container["health"] is None:
        return "running"
    return container["health"]


def probe_compose(check, runner, docker_bin="docker"):
    """One look at a compose project; returns an Outcome with per-service results."""
    project = check["project"]
    if runner is None or not docker_bin:
        return Outcome(False, "error", "the docker CLI was not found on the target host", {"services": []})
    try:
        containers = list_compose_containers(project, runner, docker_bin)
    except (RuntimeError, OSError) as exc:
        return Outcome(False, "error", str(exc), {"services": []})

    by_service = {}
    for container in containers:
        by_service.setdefault(container["service"], []).append(container)
    wanted = list(check["services"]) or sorted(by_service)
    if not wanted:
        return Outcome(False, "missing", "compose project %r has no containers" % project, {"services": []})

    services = [_service_status(name, by_service.get(name, [])) for name in wanted]
    failing = [s for s in services if not s["ok"]]
    extra = {"services": services}
    if not failing:
        return Outcome(True, "healthy", "%d service(s) up: %s" % (
            len(services), ", ".join("%s %s" % (s["service"], s["detail"]) for s in services)), extra)
    worst = min(failing, key=lambda s: _rank(_service_status_key(s)))
    detail = "; ".join("%s: %s" % (s["service"], s["detail"]) for s in failing)
    return Outcome(False, _service_status_key(worst), detail, extra)


def _service_status_key(service):
    if service["state"] == "missing":
        return "missing"
    if service["state"] != "running":
        return service["state"]
    return service["health"] or "running"


# ---------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------

def probe(check, runner=None, docker_bin="docker"):
    """Run one attempt of ``check`` (a normalized definition)."""
    try:
        if check["type"] == "http":
            return probe_http(check)
        if check["type"] == "tcp":
            return probe_tcp(check)
        return probe_compose(check, runner, docker_bin)
    except Exception as exc:  # noqa: BLE001 - one broken probe must not hide the others' results
        return Outcome(False, "error", "unexpected error: %s: %s" % (type(exc).__name__, exc))


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
    else:
        result.update({"project": check["project"], "services": outcome.extra.get("services", [])})
    return result


def run_checks(specs, deadline=120, interval=2, runner=None, docker_bin="docker",
               clock=time.monotonic, sleep=time.sleep):
    """Poll every check until it passes or ``deadline`` seconds have passed.

    Each round probes the checks that have not passed yet, then sleeps
    ``interval`` seconds (never past the deadline). Every check gets at least
    one attempt, and one last attempt when the deadline is reached; a request
    in flight may overrun the deadline by at most its own ``timeout``.

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
        raise HealthSpecError("deadline must be 0 or more seconds, got %s" % _fmt_seconds(deadline))
    if interval <= 0:
        raise HealthSpecError("interval must be more than 0 seconds, got %s" % _fmt_seconds(interval))

    start = clock()
    end = start + deadline
    state = [{"attempts": 0, "elapsed": 0.0, "outcome": None} for _ in checks]
    pending = list(range(len(checks)))
    while True:
        for index in list(pending):
            outcome = probe(checks[index], runner, docker_bin)
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
    }
    return {"checks": results, "summary": summary, "healthy": not failed}


def failure_message(report, deadline=None):
    """One sentence naming every failed check and why."""
    summary = report["summary"]
    if not summary["failed"]:
        return "All %d health checks passed." % summary["total"]
    reasons = [
        "%s (%s check, %d attempt%s: %s)" % (
            r["name"], r["type"], r["attempts"], "" if r["attempts"] == 1 else "s", r["detail"])
        for r in report["checks"] if not r["ok"]
    ]
    within = ""
    if deadline is not None:
        within = " within the %ss deadline" % _fmt_seconds(float(deadline))
    return "%d of %d health checks did not pass%s: %s." % (
        summary["failed"], summary["total"], within, "; ".join(reasons))
