#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: compose_switch
short_description: Switch a compose stack to its compose file, stateless services without downtime through NPM
version_added: 0.1.0
description:
  - Brings the compose project to the compose file on disk in one call on the host.
  - What differs is what compose would do to what B(runs) (C(docker compose up --dry-run --no-start), which compares the
    running containers with the file and its env files), not the file against an older copy. The dry run leaves out
    the start phase, so it does not wait on C(depends_on) health conditions; a service with a container that does not
    run (exited, never started, restarting) differs all the same.
  - Each changed service listed in O(services) (the stateless ones) is handed over when O(strategy=handover) and exactly
    one of its containers runs. The new container is created beside the old one (C(docker compose up --no-start
    --no-deps --scale SVC=2 --no-recreate SVC)) while the proxy host is pinned to the old container's name, and started
    once the proxy's reload of the pin took effect (its nginx workers from before it are shutting down; at most
    O(drain) seconds); until its start it is on no network, so the service's name gives the old container alone. It
    must run without restarts, not be unhealthy for Docker and answer HTTP on its own address (a Docker healthcheck
    that has not run yet is not waited for), the proxy host is switched to it through NPM's API (graceful reload), the
    public side must serve O(expect), the new container must have run O(settle) seconds without a restart and still
    answer, the old container is removed once the proxy's nginx workers that ran before the switch have finished their
    requests and exited (at most O(drain) seconds), and the proxy host is put back on the service's name (which then
    resolves to the new container only).
  - With several services handed over, each step is taken for all of them together; the proxy hosts are switched
    one PUT after the other (never two writes to NPM at once), then the public side is checked for each.
  - The project's containers, C(docker compose config --services), the dry run and the login to NPM run together at
    the start; RV(steps) says how long each took (C(planned:) line).
  - Every other changed service (the stateful ones, or one with no single running container) is recreated in place by
    C(docker compose up -d SVC).
  - A failure before the proxy was switched removes the new container and puts the proxy back; the message says
    C(Nothing was switched) only when it checked that the old container still runs and the proxy forwards to it.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - avatar_mgmt.ops.npm
attributes:
  check_mode:
    support: full
    description: Reports which services differ and how each would be switched; nothing is started or written.
  diff_mode:
    support: none
    description: The result lists the services that differ and what was done (RV(differs), RV(steps)); no diff.
  idempotent:
    support: full
    description: >-
      When nothing differs, nothing is started and nothing is written to NPM (its login runs beside the dry run
      when a service may be handed over; never in check mode).
options:
  project_name:
    description: The compose project name.
    type: str
    required: true
  project_dir:
    description: The compose project directory.
    type: path
    required: true
  files:
    description: The compose files, relative to O(project_dir).
    type: list
    elements: str
    required: true
  strategy:
    description: V(handover) hands the services of O(services) over; V(recreate) recreates every changed service in place.
    type: str
    choices: [handover, recreate]
    default: handover
  services:
    description: The stateless services that are handed over.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The compose service.
        type: str
        required: true
      domain:
        description: The domain of the service's proxy host.
        type: str
        required: true
      port:
        description: The port the service listens on in its container.
        type: int
        required: true
      health_path:
        description: The path that must answer 200 on the new container's own address.
        type: str
        default: /
      verify_path:
        description: The path requested through the proxy to see O(expect).
        type: str
        default: /
  expect:
    description: Text the new release serves at each service's verify path through the proxy (its version).
    type: str
    required: true
  proxy_url:
    description: The public side of the proxy on the host, requested with the service's domain as C(Host) header.
    type: str
    default: http://127.0.0.1:80
  drain:
    description:
      - At most this many seconds between switching the proxy and removing the old container, while in-flight
        requests finish.
      - The wait ends earlier when every nginx worker of the proxy (the O(proxy_service) container of the project)
        that ran before the last switch has exited (a graceful reload lets them finish their requests first).
        Without such a container the wait is always O(drain) seconds.
    type: float
    default: 3
  settle:
    description:
      - Seconds the new containers must have run since their start, without a restart, not unhealthy for Docker (when its healthcheck has run),
        and still answering on their own address, before the old containers are removed. The time the proxy's
        switch and the check of its public side take counts.
      - A new container that fails within it is removed and the proxy hosts go back to the old containers, which
        still run (RV(switched) false); requests the failed container took after it failed are lost.
      - V(0) removes the old containers as soon as the proxy's workers have drained.
    type: float
    default: 2
  proxy_service:
    description: The compose service of the project that runs nginx-proxy-manager (its workers tell when the drain is over).
    type: str
    default: proxy
  health_timeout:
    description: Seconds the new container has to answer on its own address.
    type: int
    default: 60
  verify_timeout:
    description: Seconds the proxy has to serve O(expect) after the switch.
    type: int
    default: 30
  gate:
    description:
      - The deploy's health gate, run in this call beside the switch's last steps (as
        M(avatar_mgmt.ops.health_verify) runs it, which it replaces after a switch). Only when the switch hands
        over (RV(gate)); a switch that only recreates in place (a first deploy, a change of a stateful service
        alone) runs none, and the caller checks once the proxy hosts are declared (a new NPM has none before).
      - A handover starts it once the proxy serves the new containers, the old ones still running and left out of
        its compose checks; the old containers are removed only once every check has passed and then held for
        O(gate.hold) seconds, so a release that fails it within O(gate.deadline), or in its hold (a crash-loop),
        goes back by switching the proxy back to the old containers, which kept serving (RV(switched) false, unless
        other services were recreated in place in the same call). Once the old containers are removed and the proxy
        hosts are back on the service names, one more round of every check is taken.
      - Until every check has passed once, the checks are polled every 0.5 s (or every O(gate.interval) when that
        is shorter), since the old containers wait for it. The hold's rounds come every O(gate.interval).
      - A failure of that last round (the old containers gone) fails the call with RV(switched) true and RV(gate).
    type: dict
    suboptions:
      checks:
        description:
          - The checks, each as in O(avatar_mgmt.ops.health_verify#module:checks), validated as there before
            anything is switched. Values of C(secret_headers) are hidden in every output.
        type: list
        elements: dict
        required: true
      hold:
        description: Seconds all checks must keep passing together once each has passed (O(avatar_mgmt.ops.health_verify#module:hold)).
        type: float
        default: 3
      interval:
        description: Seconds between rounds of checks.
        type: float
        default: 2
      deadline:
        description: Seconds every check has to pass once.
        type: int
        default: 180
  proxy_marker:
    description:
      - The record of the last declaration of the proxy hosts that M(avatar_mgmt.ops.npm_proxy_host) writes (its
        O(avatar_mgmt.ops.npm_proxy_host#module:declared_marker) option), read before anything is switched.
      - When it was current then (NPM's database unchanged since that declaration), the database changed since only
        by this switch's own writes (its state is compared before each write with the state after the one before;
        NPM answers a write once all its database writes for it are done), and every proxy host this switch wrote to
        forwards where it did before, the switch records the same declaration again with the database's state now
        (see RV(proxy_marker)), since NPM provably holds it; the caller need not declare the proxy hosts again.
      - Anything else (no current record, another change of the database, a failed write, a host left elsewhere
        than its scheme, host and port before, the proxy container itself recreated, a failed switch, check mode)
        records nothing; the record then no longer matches and the caller declares.
      - A write of someone else that lands while one of this switch's own writes is under way (between the
        comparison before it and the look after NPM's answer) is not told apart from it, as with the declaration's
        own record.
    type: dict
    suboptions:
      path:
        description: The record's path.
        type: path
        required: true
      database:
        description: NPM's database file (SQLite) on the host.
        type: path
        required: true
  record:
    description:
      - Record the release in the ledger at the end of this call, as M(avatar_mgmt.ops.release_ledger) with
        O(avatar_mgmt.ops.release_ledger#module:state=record) does (the suboptions are that module's options but
        C(rollback_to) and C(backup_before); the lock given in O(record.release_lock) goes back last), once the switch is over and nothing is left for the
        caller to do before its record - the deploy's record in the same call as its switch (one round trip less).
      - Only when the switch changed what runs (RV(switch_changed)), the health gate passed (with O(gate)) and, with
        O(record.marker_key), the declaration of the proxy hosts stands on record with that key after the switch
        (RV(proxy_marker), so the caller has no proxy hosts to declare). Otherwise, and in check mode, nothing is
        recorded and RV(record_skipped) says why; the caller records as before.
      - The entry gets C(finished) and C(duration_s) (from O(record.started_at)), C(stage) (O(record.stage)) and
        C(recreated) (the services handed over or recreated) unless O(record.release) has them.
      - A record that fails fails nothing here, the switch being done. RV(record_error) says why, the lock is kept, and
        the caller records (and fails) as before.
    type: dict
    suboptions:
      path:
        description: The releases directory (O(avatar_mgmt.ops.release_ledger#module:path)).
        type: path
        required: true
      keep:
        description: O(avatar_mgmt.ops.release_ledger#module:keep).
        type: int
        default: 5
      release:
        description: The entry (O(avatar_mgmt.ops.release_ledger#module:release)).
        type: dict
        required: true
      compose_file:
        description: O(avatar_mgmt.ops.release_ledger#module:compose_file).
        type: str
        default: ''
      compose_content:
        description: O(avatar_mgmt.ops.release_ledger#module:compose_content).
        type: str
        default: ''
      env_files:
        description: O(avatar_mgmt.ops.release_ledger#module:env_files).
        type: list
        elements: path
        default: []
      owner:
        description: O(avatar_mgmt.ops.release_ledger#module:owner).
        type: str
        default: ''
      group:
        description: O(avatar_mgmt.ops.release_ledger#module:group).
        type: str
        default: ''
      prune_images:
        description: O(avatar_mgmt.ops.release_ledger#module:prune_images), only when the switch changed what runs.
        type: bool
        default: false
      release_lock:
        description: O(avatar_mgmt.ops.release_ledger#module:release_lock), given back once the record is done.
        type: dict
        suboptions:
          path:
            description: The lock file.
            type: path
            required: true
          token:
            description: The token that taking the lock returned.
            type: str
            required: true
      marker_key:
        description:
          - The key of the declaration of the proxy hosts the caller would make after the switch. The release is
            recorded only when RV(proxy_marker) is current with this very key (NPM provably holds that declaration).
            Empty when the caller declares no proxy hosts.
        type: str
        default: ''
      started_at:
        description: When the deploy started (seconds since the epoch), for C(duration_s).
        type: float
        required: true
      stage:
        description: The entry's C(stage).
        type: str
        default: verify
  write:
    description:
      - Write the release's files first, in the same call, as M(avatar_mgmt.ops.release_files) with
        O(avatar_mgmt.ops.release_files#module:state=present) does (the suboptions are that module's options).
        The files are planned before anything is written (a file that cannot be written stops the call before any
        is), then written atomically, then the stack is switched to them. RV(written) names the files written;
        env file values are never returned or printed.
      - A failure while writing switches nothing (RV(switched) false); the files written before it stay.
      - Not in check mode (nothing is written).
    type: dict
    suboptions:
      env_files:
        description: The env files, as O(avatar_mgmt.ops.release_files#module:env_files).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path of the file.
            type: path
            required: true
          content:
            description: The wanted text (never returned or printed).
            type: str
          source:
            description: A file on the host whose bytes are wanted instead of O(write.env_files[].content) when it exists.
            type: path
          source_required:
            description: Refuse when O(write.env_files[].source) does not exist.
            type: bool
            default: false
          mode:
            description: The wanted mode.
            type: raw
            default: '0600'
      files:
        description: The other files, as O(avatar_mgmt.ops.release_files#module:files).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Absolute path of the file.
            type: path
            required: true
          content:
            description: The wanted text.
            type: str
          source:
            description: A file on the host whose bytes are wanted instead of O(write.files[].content) when it exists.
            type: path
          source_required:
            description: Refuse when O(write.files[].source) does not exist.
            type: bool
            default: false
          mode:
            description: The wanted mode.
            type: raw
            default: '0640'
          return_content:
            description: Unused here (accepted as M(avatar_mgmt.ops.release_files) accepts it).
            type: bool
            default: false
      owner:
        description: The owner of every file; empty keeps the file's owner.
        type: str
        default: ''
      group:
        description: The group of every file; empty keeps the file's group.
        type: str
        default: ''
'''

EXAMPLES = r'''
- name: Switch the stack, api and frontend without downtime
  avatar_mgmt.ops.compose_switch:
    project_name: avatar-production
    project_dir: /opt/deploy-avatar
    files: [docker-compose.prod.yml]
    url: http://127.0.0.1:81
    username: admin@example.com
    password: "{{ vault_npm_admin_password }}"
    expect: v1.2.0
    services:
      - {name: api, domain: api.example.com, port: 3000, health_path: /health, verify_path: /api/version}
      - {name: frontend, domain: example.com, port: 80, health_path: /, verify_path: /version.json}
'''

RETURN = r'''
differs:
  description: The services compose would create, recreate, start or remove, in compose order.
  returned: always
  type: list
  elements: str
  sample: [api, frontend]
handover:
  description: The services handed over beside the running one.
  returned: always
  type: list
  elements: str
  sample: [api, frontend]
recreate:
  description: The services recreated in place.
  returned: always
  type: list
  elements: str
  sample: [directus]
services:
  description: Per switched service, how it was switched and the old and new containers.
  returned: success
  type: dict
  sample: {api: {action: handover, old: {id: 3f2a, name: avatar-production-api-1}, new: {id: 9b1c, name: avatar-production-api-2}}}
serving:
  description: Per service, the containers that run after the switch (id, name, image, version label).
  returned: success
  type: dict
  sample: {api: [{id: 9b1c, name: avatar-production-api-2, image: 'sha256:...', version: v1.2.0}]}
steps:
  description: What the switch did, with seconds since its start (its first reads included).
  returned: always
  type: list
  elements: str
  sample:
    - '   0.7s planned: hand over api, frontend; recreate nothing (read together: containers 0.2s, compose config 0.4s, dry run 0.6s, NPM login 0.3s)'
    - '   0.9s api: proxy forwards to avatar-production-api-1'
gate:
  description:
    - With O(gate), its outcome once the switch handed over. C(healthy), C(msg) (every check passed and held, or
      what failed), C(checks) and C(summary) as M(avatar_mgmt.ops.health_verify) returns them, C(passed_after)
      (seconds from its start until every check had passed once) and C(final_round) (whether one more round
      followed the hold).
  returned: when O(gate) is set and the switch handed over (also on failure, when the gate itself failed)
  type: dict
  sample: {healthy: true, msg: All 6 health checks passed, and all passed together for 3s., final_round: false, passed_after: 1.2}
proxy_marker:
  description:
    - With O(proxy_marker), after a switch that changed something, whether the declaration's record was written again
      (C(current)), its C(key) and the C(reason).
  returned: when O(proxy_marker) is set and the switch changed something, not in check mode
  type: dict
  sample:
    current: true
    key: 6a1f0c2e
    reason: >-
      the switch's own writes were the only changes of NPM's database since the declaration, and each proxy host
      forwards where it did before
recorded:
  description:
    - With O(record), the record made in this call (as M(avatar_mgmt.ops.release_ledger) answers it, the lock fields
      C(lock_released), C(released_lock) and C(lock_msg) included); V({}) when none was made.
  returned: when O(record) is set and the switch ended
  type: dict
  sample: {entry: {id: 20260301T101500Z-v1.2.0, result: success}, lock_released: true}
record_skipped:
  description: With O(record), why nothing was recorded (V('') when the release was recorded or the record failed).
  returned: when O(record) is set and the switch ended
  type: str
  sample: the proxy hosts are to be declared again
record_error:
  description: With O(record), why the record failed (V('') otherwise); the switch itself is done.
  returned: when O(record) is set and the switch ended
  type: str
  sample: ''
written:
  description: With O(write), the files written (or whose mode or owner was fixed), in order; empty when all were as wanted.
  returned: when O(write) is set, also on failure
  type: list
  elements: str
  sample: [/opt/deploy-avatar-prod/.env.api, /opt/deploy-avatar-prod/docker-compose.prod.yml]
timings:
  description:
    - Seconds each part of this call took, the module's start included in none of them. C(write) (the files of
      O(write)), C(switch) (planning, handover or recreate, the gate), C(record) (O(record)'s ledger record, its image
      pruning and the lock's release); a part that did not run is left out.
  returned: success
  type: dict
  sample: {write: 0.02, switch: 6.9, record: 0.4}
switch_changed:
  description: Whether the switch itself changed what runs (C(changed) also counts the files written).
  returned: success
  type: bool
  sample: true
switched:
  description: On failure, whether anything may have changed (false only when checked that nothing did).
  returned: failure
  type: bool
  sample: false
'''

import datetime
import time

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import (
    _gate,
    _health,
    _ledger,
    _npm,
    _proxy_marker,
    _release_files,
    _switch,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule


def main():
    argument_spec = _npm.connection_argument_spec()
    argument_spec.update(
        {
            'project_name': {'type': 'str', 'required': True},
            'project_dir': {'type': 'path', 'required': True},
            'files': {'type': 'list', 'elements': 'str', 'required': True},
            'strategy': {'type': 'str', 'choices': ['handover', 'recreate'], 'default': 'handover'},
            'services': {
                'type': 'list',
                'elements': 'dict',
                'default': [],
                'options': {
                    'name': {'type': 'str', 'required': True},
                    'domain': {'type': 'str', 'required': True},
                    'port': {'type': 'int', 'required': True},
                    'health_path': {'type': 'str', 'default': '/'},
                    'verify_path': {'type': 'str', 'default': '/'},
                },
            },
            'expect': {'type': 'str', 'required': True},
            'proxy_url': {'type': 'str', 'default': 'http://127.0.0.1:80'},
            'drain': {'type': 'float', 'default': 3},
            'settle': {'type': 'float', 'default': 2},
            'proxy_service': {'type': 'str', 'default': 'proxy'},
            'health_timeout': {'type': 'int', 'default': 60},
            'verify_timeout': {'type': 'int', 'default': 30},
            'write': {'type': 'dict', 'options': _release_files.argument_options()},
            'proxy_marker': {
                'type': 'dict',
                'options': {
                    'path': {'type': 'path', 'required': True},
                    'database': {'type': 'path', 'required': True},
                },
            },
            'record': {
                'type': 'dict',
                'options': {
                    **_ledger.record_options(),
                    'marker_key': {'type': 'str', 'default': '', 'no_log': False},
                    'started_at': {'type': 'float', 'required': True},
                    'stage': {'type': 'str', 'default': 'verify'},
                },
            },
            'gate': {
                'type': 'dict',
                'options': {
                    'checks': {'type': 'list', 'elements': 'dict', 'required': True},
                    'hold': {'type': 'float', 'default': 3},
                    'interval': {'type': 'float', 'default': 2},
                    'deadline': {'type': 'int', 'default': 180},
                },
            },
        }
    )
    module = SecretSafeModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    def run(argv):
        # Some reads run in threads: run_command must not end the module (fail_json) from one of them.
        try:
            return module.run_command(argv, cwd=params['project_dir'], handle_exceptions=False)
        except OSError as exc:
            return 127, '', f'{argv[0]} could not be run: {exc}'

    # The login runs in a thread that is not waited for when nothing is handed over: the session
    # (token_cache) is written here, by this thread, once the switch is over and only when the login ended.
    clients = []

    def connect():
        client = _npm.connect(params, save_session=False)[0]
        clients.append(client)
        return client

    try:
        _run_switch(module, params, run, connect)
    finally:
        # After the result is out: NPM's answer (a few milliseconds) is given 5 s at most; it never raises.
        if params['token_cache'] and clients and not module.check_mode:
            clients[0].keep(params['token_cache'], timeout=5)


def _run_switch(module, params, run, connect):
    # With write: the files written so far (none until the write ran), always in a failure's result.
    written = None if params['write'] is None else []
    timings = {}
    try:
        if params['settle'] < 0 or params['drain'] < 0:
            raise ValueError(
                f"settle and drain must be 0 or more seconds, got {params['settle']:g} and {params['drain']:g}"
            )
        services = _switch.service_specs(params['services'])
        # The first reads run in threads: a missing docker fails here, once, not in each of them.
        module.get_bin_path('docker', required=True)
        spec = {
            'project': params['project_name'],
            'project_dir': params['project_dir'],
            'files': params['files'],
            'services': services,
            'strategy': params['strategy'],
            'expect': params['expect'],
            'proxy_url': params['proxy_url'],
            'drain': params['drain'],
            'settle': params['settle'],
            'proxy_service': params['proxy_service'],
            'health_timeout': params['health_timeout'],
            'verify_timeout': params['verify_timeout'],
            'validate_certs': params['validate_certs'],
            'ca_path': params['ca_path'],
        }
        gate = _gate_of(module, params['gate'])
        start = time.monotonic()
        written = _write(module, params['write'])
        if written is not None:
            timings['write'] = round(time.monotonic() - start, 2)
        marker = params['proxy_marker']
        # Read before the switch writes anything to NPM.
        chain = _proxy_marker.Chain(marker['path'], marker['database']) if marker and not module.check_mode else None
        start = time.monotonic()
        result = _switch.switch(run, spec, connect, check_mode=module.check_mode, gate=gate, marker=chain)
        timings['switch'] = round(time.monotonic() - start, 2)
    except ValueError as exc:
        said = str(exc).rstrip('.')
        if written:
            module.fail_json(
                msg=f"{said}. Written before it: {', '.join(written)}; nothing was switched.",
                switched=False,
                changed=True,
                written=written,
            )
        module.fail_json(
            msg=f'{said}. Nothing was changed.', switched=False, **({} if written is None else {'written': written})
        )
    except _switch.SwitchError as exc:
        module.fail_json(
            msg=_npm.redact(str(exc), params),
            switched=exc.switched,
            changed=exc.switched or bool(written),
            **{k: v for k, v in exc.result.items() if k != 'changed'},
            **({} if written is None else {'written': written}),
        )
    result['switch_changed'] = result['changed']
    if written is not None:
        result['written'] = written
        result['changed'] = result['changed'] or bool(written)
    if params['record'] is not None:
        start = time.monotonic()
        _record(module, params, result)
        if not result['record_skipped']:
            timings['record'] = round(time.monotonic() - start, 2)
    result['timings'] = timings
    module.exit_json(**result)


def _record(module, params, result):
    """The ledger's record of the release, in this call, when nothing is left to do before it (``record``)."""
    options = params['record']
    result.update(recorded={}, record_skipped='', record_error='')
    found = result.get('proxy_marker') or {}
    if module.check_mode:
        result['record_skipped'] = 'check mode'
    elif not result['switch_changed']:
        result['record_skipped'] = 'the switch changed nothing that runs'
    elif params['gate'] is not None and not (result.get('gate') or {}).get('healthy'):
        result['record_skipped'] = 'the health gate did not run or did not pass'
    elif options['marker_key'] and not (found.get('current') and found.get('key') == options['marker_key']):
        result['record_skipped'] = 'the proxy hosts are to be declared again'
    if result['record_skipped']:
        return
    now = time.time()
    release = dict(options['release'])
    release.setdefault(
        'finished', datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    )
    release.setdefault('duration_s', round(max(now - options['started_at'], 0.0), 1))
    release.setdefault('stage', options['stage'])
    release.setdefault('recreated', list(result.get('handover', [])) + list(result.get('recreate', [])))
    try:
        recorded, warnings = _ledger.record_release(module, dict(options, release=release))
    except (ValueError, _ledger.LedgerError) as exc:
        result['record_error'] = str(exc).rstrip('.') + '. Nothing was recorded; the lock is still held.'
        module.warn(f"The switch is done, but its record of the release failed: {result['record_error']}")
        return
    for warning in warnings:
        module.warn(warning)
    recorded.pop('before', None)
    recorded.pop('after', None)
    result['recorded'] = recorded
    result['changed'] = True


def _gate_of(module, options):
    """The health gate of ``gate``, validated (ValueError: nothing changed), or None."""
    if options is None:
        return None
    # Values of the checks' secret_headers are hidden like no_log options (SecretSafeModule), before anything is logged.
    checks = options['checks']
    missing = _health.missing_library(checks)
    if missing is not None:
        raise ValueError(f'the health gate cannot run: {missing[0]}')
    try:
        return _gate.Gate(checks, hold=options['hold'], interval=options['interval'], deadline=options['deadline'])
    except _health.HealthSpecError as exc:
        raise ValueError(f'invalid health gate: {exc}') from None


def _write(module, options):
    """Write the release's files (``write``) before the switch; the paths written, None without ``write``.

    Every file is planned before any is written (ValueError: nothing written); a write that fails half-way
    fails the module here, before the switch, naming the files already written.
    """
    if options is None:
        return None
    plans = _release_files.plan(options['env_files'], options['files'], options['owner'], options['group'])
    if module.check_mode:
        return []
    try:
        return _release_files.apply(plans)
    except _release_files.ReleaseFilesError as exc:
        module.fail_json(
            msg=f'{exc} Nothing was switched.', switched=False, changed=bool(exc.written), written=exc.written
        )


if __name__ == '__main__':
    main()
