#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_verify
short_description: Poll HTTP, TCP, Docker Compose and in-container command checks until they pass or a deadline expires
version_added: 0.1.0
description:
  - Runs a list of health checks on the target host and polls every check that has not
    passed yet every O(interval) seconds, until all pass or O(deadline) seconds have passed.
    There are no fixed waits, so a check that passes on the first attempt costs one request.
  - With O(hold), all checks must then keep passing together for a window, so a service that
    passes once and then crashes fails.
  - An V(http) check sends one request and can require a status code, a substring or a
    regular expression in the body, and a value at a dotted JSON path.
  - A V(tcp) check connects to a host and port.
  - A V(compose) check reads the containers of a Docker Compose project through the Docker Engine API
    with the Docker SDK for Python (the containers labelled C(com.docker.compose.project), as
    C(docker ps --all) and C(docker inspect) show them) and requires, for every expected service, a running
    container whose Docker health state is C(healthy), or that is running when the
    service defines no healthcheck. It also reports each service's image and image ID.
  - Docker first runs a healthcheck one interval after the container starts (5 s by default in compose_deploy's
    file). A running container that never restarted and whose healthcheck Docker has not run yet (health
    V(starting), no result yet) has that same test run in it by the compose check, as Docker builds it (C(CMD-SHELL)
    after the container's shell, C(/bin/sh -c) by default), within the healthcheck's own timeout; it counts as
    C(healthy) when the test exits 0, and the detail says so. The test runs at most once at a time per container
    and its answer stands for a second. Once Docker has run it, or the container restarted, only Docker's own state
    counts. Docker's state is not changed.
  - An V(exec) check runs a command in a running container of a Compose service through the Docker Engine API, as
    C(docker compose exec -T) does (no TTY, the container's user and environment), for example a database query, and
    passes on exit code 0 and, with O(checks[].output_regex), standard output matching it. A run that exits 0 without
    one byte of output where O(checks[].output_regex) wants some runs once more in the same attempt (the engine can lose
    an exec's output under load), so the command must be safe to run twice.
  - The Docker Engine is found as the C(docker) CLI finds it (C(DOCKER_HOST), C(DOCKER_TLS_VERIFY),
    C(DOCKER_CERT_PATH), else the local socket); the API version is negotiated with the engine.
  - The checks only read. The one thing the module may remove is the deploy lock of O(release_lock), once every check
    passed. RV(ignore:changed) stays V(false) then too. A run's lock lives only as long as the run, so taking it and
    giving it back is no change of the host (M(avatar_mgmt.ops.release_info) takes it the same way).
  - Header values are never returned or written into messages.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
requirements:
  - Python 3.9 or later on the target host
  - for V(http) checks, the Python library C(requests) 2.25 or later on the target host (Debian package C(python3-requests))
  - for V(compose) and V(exec) checks, the Docker SDK for Python C(docker) 5.0 or later on the target host (Debian package
    C(python3-docker)) and permission to use the Docker socket (root, or a member of the C(docker) group)
attributes:
  check_mode:
    support: full
    description: The checks only read, so they run in check mode too and report real results; O(release_lock) is not released.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to compare.
  idempotent:
    support: full
    description: The checks change nothing; RV(ignore:changed) is always V(false) (O(release_lock) gives back only this run's lock).
options:
  checks:
    description:
      - The checks to run. Names must be unique.
      - Options that do not apply to a check's O(checks[].type) are refused, to catch typos.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the check, used in results and in the failure message.
        type: str
        required: true
      type:
        description: Kind of check.
        type: str
        choices: [http, tcp, compose, exec]
        default: http
      url:
        description:
          - V(http) only, required there. Absolute C(http://) or C(https://) URL.
          - Do not put credentials in the URL; use O(checks[].secret_headers). Any
            C(user:password@) part is removed from results.
        type: str
      method:
        description: V(http) only. HTTP method. A V(HEAD) request has no body to check.
        type: str
        choices: [GET, HEAD]
        default: GET
      status_code:
        description: V(http) only. Status codes that count as a pass.
        type: list
        elements: int
        default: [200]
      body_contains:
        description: V(http) only. Text the response body must contain (case-sensitive).
        type: str
      body_regex:
        description: V(http) only. Python regular expression that must match somewhere in the body.
        type: str
      json_path:
        description:
          - V(http) only. Dotted path into the JSON body, for example V(backend.version),
            V(status) or V(items.0.name) (a number indexes a list).
          - Without O(checks[].json_value) the path only has to exist.
        type: str
      json_value:
        description:
          - V(http) only. The value required at O(checks[].json_path). Compared as JSON values;
            a string also matches a number or boolean with the same JSON text (V("3") matches V(3)).
        type: raw
      headers:
        description:
          - V(http) only. Request headers, for example C(Host) so a reverse proxy routes by name,
            or C(Accept).
          - Their values are not hidden in the task's invocation output; put credentials in
            O(checks[].secret_headers) instead.
        type: dict
      secret_headers:
        description:
          - V(http) only. Request headers that carry credentials, such as C(Authorization).
          - Marked C(no_log); merged over O(checks[].headers).
        type: dict
      validate_certs:
        description: V(http) only. Verify the server's TLS certificate for C(https://) URLs.
        type: bool
        default: true
      follow_redirects:
        description:
          - V(http) only. Follow redirects and judge the final response. When V(false), the
            redirect response itself is judged, so list its code in O(checks[].status_code).
          - A C(Host) header from O(checks[].headers) is not sent to the redirect target.
        type: bool
        default: false
      host:
        description: V(tcp) only, required there. Host name or IP address to connect to.
        type: str
      port:
        description: V(tcp) only, required there. TCP port.
        type: int
      project:
        description:
          - V(compose) and V(exec) only, required there. The Docker Compose project name, as in the
            container label C(com.docker.compose.project) (compose lowercases it).
        type: str
      service:
        description: V(exec) only, required there. The Compose service whose running container runs O(checks[].command).
        type: str
      command:
        description:
          - V(exec) only, required there. The command and its arguments, run without a shell (as C(argv)).
          - Do not put secrets in it; it is shown in the task's invocation.
        type: list
        elements: str
      output_regex:
        description: V(exec) only. Python regular expression that must match somewhere in the command's standard output.
        type: str
      services:
        description:
          - V(compose) only. Services that must be up. When empty, every service that has a
            container in the project must be up (one-off C(docker compose run) containers
            are ignored), and a project without containers fails.
        type: list
        elements: str
        default: []
      timeout:
        description:
          - Seconds one attempt may take (the HTTP request or the TCP connect). An attempt in
            flight can overrun O(deadline) by at most this much. Not applied to V(compose) and V(exec) checks.
        type: float
        default: 10
  deadline:
    description:
      - Seconds to keep polling, counted from the start of the task. Every check gets at least
        one attempt, and a last one when the deadline is reached.
      - V(0) runs each check exactly once.
    type: int
    default: 120
  interval:
    description: Seconds to wait between two rounds of attempts. Must be more than 0.
    type: float
    default: 2
  hold:
    description:
      - Seconds that all checks must keep passing together after each has passed once.
      - When more than V(0), once every check has passed, all checks are probed together in rounds
        (one at once, one every O(interval) seconds, one when the window ends). The first round in which
        a check fails ends the task, and that check is reported as failed with the time into the hold,
        so a service that passes once and then crashes (a crash loop) fails.
      - The hold follows the polling and is not counted in O(deadline).
      - V(0) adds no round.
    type: float
    default: 0
  fail_on_error:
    description:
      - When V(true), the task fails if any check has not passed by the deadline, with a message
        naming each failed check and why.
      - When V(false), the task only reports; read RV(healthy) and RV(summary).
    type: bool
    default: true
  release_lock:
    description:
      - Give back the deploy lock that this run took (M(avatar_mgmt.ops.deploy_lock), or the lock option of
        M(avatar_mgmt.ops.release_info)) in the same call, once every check passed. A caller whose last step on
        the host is this check (a deploy that found nothing to change) saves one remote call.
      - A check that fails leaves the lock in place, because the caller still holds it for what it does next (a
        rollback). The lock is removed only when it still carries O(release_lock.token), as
        M(avatar_mgmt.ops.deploy_lock) with O(avatar_mgmt.ops.deploy_lock#module:state=absent) removes it. A lock
        that carries another token is left in place and is no failure; a lock that cannot be removed is a warning.
        RV(lock_released) says whether the caller still has to release it.
      - In check mode the lock is not released.
    type: dict
    suboptions:
      path:
        description: The lock file, such as V(/opt/deploy-avatar-prod/.deploy.lock).
        type: path
        required: true
      token:
        description: The RV(avatar_mgmt.ops.deploy_lock#module:token) that taking the lock returned.
        type: str
        required: true
notes:
  - Without the library a check type needs (see requirements), the module fails before any check, naming the
    missing Debian package; C(playbooks/bootstrap.yml) installs them.
  - Checks are probed in turn, in the order given; a slow check delays the others within a round.
  - Environment proxies (C(HTTPS_PROXY), C(HTTP_PROXY), C(NO_PROXY), also lowercase) apply to V(http)
    checks, as the C(requests) library reads them; C(~/.netrc) is not read.
  - When O(checks[].follow_redirects=true), an C(Authorization) header is not sent to a redirect
    target on another host.
  - For an C(https://) URL the TLS server name is the URL's host, whatever the C(Host) header says.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
  - module: community.docker.docker_compose_v2
"""

EXAMPLES = r"""
- name: Verify the production stack after a deploy
  avatar_mgmt.ops.health_verify:
    deadline: 180
    interval: 3
    hold: 5
    checks:
      - name: containers
        type: compose
        project: deploy-avatar-prod
        services: [db, directus, api, frontend]
      - name: api health
        url: http://127.0.0.1:3000/health
        body_contains: ok
      - name: api version
        url: http://127.0.0.1:3000/api/version
        json_path: backend.version
        json_value: v1.2.0
      - name: directus health
        url: http://127.0.0.1:8055/server/health
        json_path: status
        json_value: ok
      - name: database port
        type: tcp
        host: 127.0.0.1
        port: 5432
      - name: database query
        type: exec
        project: deploy-avatar-prod
        service: db
        command: [psql, -U, directus, -d, directus, -tAc, select 1]
        output_regex: '^1\s*$'

- name: Check the frontend through the reverse proxy, routed by name
  avatar_mgmt.ops.health_verify:
    checks:
      - name: frontend via proxy
        url: http://127.0.0.1/
        headers:
          Host: daidai.amis.hk
        status_code: [200, 301, 302]

- name: Check an endpoint that needs a token; the token never appears in the output
  avatar_mgmt.ops.health_verify:
    checks:
      - name: directus admin ping
        url: https://directus.daidai.amis.hk/server/info
        secret_headers:
          Authorization: "Bearer {{ vault_directus_admin_token }}"
        body_regex: '"project"\s*:'

- name: Every service of the staging project must be up; report without failing
  avatar_mgmt.ops.health_verify:
    deadline: 60
    fail_on_error: false
    checks:
      - name: staging containers
        type: compose
        project: deploy-avatar
  register: __staging_health

- name: Show what is unhealthy
  ansible.builtin.debug:
    msg: "{{ __staging_health.summary.failed_names }}"
  when: not __staging_health.healthy
"""

RETURN = r"""
healthy:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
summary:
  description: Counts over all checks.
  returned: always
  type: dict
  contains:
    total:
      description: Number of checks.
      returned: always
      type: int
      sample: 5
    passed:
      description: Number of checks that passed.
      returned: always
      type: int
      sample: 4
    failed:
      description: Number of checks that did not pass by the deadline.
      returned: always
      type: int
      sample: 1
    failed_names:
      description: Names of the checks that did not pass, in the given order.
      returned: always
      type: list
      elements: str
      sample: [api version]
    elapsed:
      description: Seconds the polling took, the hold included.
      returned: always
      type: float
      sample: 12.042
    held:
      description:
        - Seconds the hold lasted (to the first failed round when one failed).
        - V(null) when O(hold=0) or when a check never passed, so no hold ran.
      returned: always
      type: float
      sample: 3.0
checks:
  description: One result per check, in the given order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check's name.
      returned: always
      type: str
      sample: api version
    type:
      description: The check's type.
      returned: always
      type: str
      sample: http
    ok:
      description: Whether the check passed.
      returned: always
      type: bool
      sample: false
    attempts:
      description: How many times the check was probed.
      returned: always
      type: int
      sample: 7
    elapsed:
      description: Seconds from the start of the task to the end of the check's last attempt.
      returned: always
      type: float
      sample: 12.031
    status:
      description:
        - Last observed status. V(http) - the HTTP status code, or V(null) when no response came.
          V(tcp) - V(connected), V(refused), V(timeout) or V(error).
          V(compose) - V(healthy) when all services are up, otherwise the worst state seen,
          such as V(starting), V(unhealthy), V(exited), V(missing) or V(error).
          V(exec) - the command's exit code, V(missing) (no running container of the service) or V(error).
      returned: always
      type: raw
      sample: 200
    detail:
      description: Human-readable reason of the last failure, or what passed.
      returned: always
      type: str
      sample: "HTTP 200 but json_path 'backend.version' is \"v1.1.0\", expected \"v1.2.0\""
    url:
      description: The requested URL, without credentials.
      returned: when RV(checks[].type=http)
      type: str
      sample: http://127.0.0.1:3000/api/version
    method:
      description: The HTTP method used.
      returned: when RV(checks[].type=http)
      type: str
      sample: GET
    host:
      description: The host connected to.
      returned: when RV(checks[].type=tcp)
      type: str
      sample: 127.0.0.1
    port:
      description: The port connected to.
      returned: when RV(checks[].type=tcp)
      type: int
      sample: 5432
    project:
      description: The compose project name.
      returned: when RV(checks[].type) is V(compose) or V(exec)
      type: str
      sample: deploy-avatar-prod
    service:
      description: The compose service the command ran in.
      returned: when RV(checks[].type=exec)
      type: str
      sample: db
    services:
      description: One entry per expected service, from the last attempt.
      returned: when RV(checks[].type=compose)
      type: list
      elements: dict
      contains:
        service:
          description: Service name.
          type: str
          returned: always
          sample: api
        ok:
          description: Whether the service is up (running and healthy, or running without a healthcheck).
          type: bool
          returned: always
          sample: true
        containers:
          description: Number of containers of the service (0 when it has none).
          type: int
          returned: always
          sample: 1
        state:
          description: Container state (V(running), V(exited), ...) or V(missing); the worst one when there are several containers.
          type: str
          returned: always
          sample: running
        health:
          description: Docker health state (V(starting), V(healthy), V(unhealthy)), or V(null) without a healthcheck.
          type: str
          returned: always
          sample: healthy
        image:
          description: Image reference the container was created from.
          type: str
          returned: always
          sample: ghcr.io/rayhu/avatar-mgmt/api:v1.2.0
        image_id:
          description: ID (content digest) of the container's image.
          type: str
          returned: always
          sample: sha256:7d3c3d8a0b1f4e0f9b3e55d1c0e3a1f8e6c2b9d4a5f6e7d8c9b0a1f2e3d4c5b6
        detail:
          description: Why the service is up or not.
          type: str
          returned: always
          sample: "unhealthy (last healthcheck output: 'connection refused')"
lock_released:
  description:
    - Whether this task released the deploy lock of O(release_lock) (every check passed). V(false) without
      O(release_lock), when a check failed, in check mode, or when the lock was not there or carried another token.
  returned: always
  type: bool
  sample: true
released_lock:
  description:
    - The lock that O(release_lock) removed (as M(avatar_mgmt.ops.deploy_lock) returns it, without its token), or
      V({}). Its C(fingerprint) tells which lock it was.
  returned: always
  type: dict
  sample: {holder: alice, host: prod-1, action: deploy, version: v1.2.0, fingerprint: 0b5d6f7c1f0e8d8f}
lock_msg:
  description: What happened to the lock of O(release_lock), or V('').
  returned: always
  type: str
  sample: Released the lock /opt/deploy-avatar-prod/.deploy.lock held by alice (host prod-1, deploy v1.2.0).
msg:
  description: The failure message naming each failed check and why, or a success sentence.
  returned: always
  type: str
  sample: >-
    1 of 5 health checks did not pass within the 120s deadline: api version (http check, 60 attempts:
    HTTP 200 but json_path 'backend.version' is "v1.1.0", expected "v1.2.0").
"""

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._health import (
    HealthSpecError,
    failure_message,
    missing_library,
    run_checks,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule


def argument_spec():
    return {
        "checks": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "type": {"type": "str", "choices": ["http", "tcp", "compose", "exec"], "default": "http"},
                "url": {"type": "str"},
                "method": {"type": "str", "choices": ["GET", "HEAD"], "default": "GET"},
                "status_code": {"type": "list", "elements": "int", "default": [200]},
                "body_contains": {"type": "str"},
                "body_regex": {"type": "str"},
                "json_path": {"type": "str"},
                "json_value": {"type": "raw"},
                "headers": {"type": "dict"},
                "secret_headers": {"type": "dict", "no_log": True},
                "validate_certs": {"type": "bool", "default": True},
                "follow_redirects": {"type": "bool", "default": False},
                "host": {"type": "str"},
                "port": {"type": "int"},
                "project": {"type": "str"},
                "service": {"type": "str"},
                "command": {"type": "list", "elements": "str"},
                "output_regex": {"type": "str"},
                "services": {"type": "list", "elements": "str", "default": []},
                "timeout": {"type": "float", "default": 10},
            },
            "required_if": [
                ("type", "http", ("url",)),
                ("type", "tcp", ("host", "port")),
                ("type", "compose", ("project",)),
                ("type", "exec", ("project", "service", "command")),
            ],
            "required_by": {"json_value": ("json_path",)},
        },
        "deadline": {"type": "int", "default": 120},
        "interval": {"type": "float", "default": 2},
        "hold": {"type": "float", "default": 0},
        "fail_on_error": {"type": "bool", "default": True},
        "release_lock": _lock.release_lock_option(),
    }


# Defaults of options that belong to one check type only: dropped from the
# other types so the logic's "option does not apply" guard sees only what the
# user wrote.
_TYPE_DEFAULTS = {
    "http": ("method", "status_code", "validate_certs", "follow_redirects"),
    "compose": ("services",),
}


def _user_check(check):
    spec = dict(check)
    for check_type, keys in _TYPE_DEFAULTS.items():
        if spec.get("type") != check_type:
            for key in keys:
                spec.pop(key, None)
    return spec


def main():
    module = SecretSafeModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params

    missing = missing_library(params["checks"])
    if missing is not None:
        module.fail_json(msg=f"{missing[0]}. Nothing was checked.", exception=missing[1])

    try:
        report = run_checks(
            [_user_check(c) for c in params["checks"]],
            deadline=params["deadline"],
            interval=params["interval"],
            hold=params["hold"],
        )
    except HealthSpecError as exc:
        module.fail_json(msg=f"Invalid health check definition: {exc}")

    result = dict(changed=False, **report)
    result["msg"] = failure_message(report, deadline=params["deadline"])
    # Last, and only when healthy: a failed check leaves the lock to the caller, which acts on the failure under it.
    fields, warning = _lock.release_after(params["release_lock"] if report["healthy"] else None, module.check_mode)
    result.update(fields)
    if warning:
        module.warn(warning)
    if not report["healthy"] and params["fail_on_error"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
