# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The switch of a compose stack to the compose file on disk: the rules behind ``compose_switch``.

* **What differs** is what compose would do to what *runs*: ``docker compose up
  --dry-run --no-start`` (it compares the running containers' config hashes with the file,
  env files included), not the compose file on disk against an older copy. The create
  phase alone decides what to create, recreate (dependents of a recreated service
  included) and remove as ``up`` does; it does not wait on ``depends_on`` health
  conditions as the start phase does (compose polls them every half second, even in a
  dry run). A service with a container that does not run (exited, never started,
  restarting) differs too, as the start phase would start it (:func:`with_stopped`).
* **Handover** (stateless services: api, frontend) with nginx-proxy-manager in front,
  every changed one together, step by step:

  1. ``docker compose up --no-start --no-deps --no-recreate --scale SVC=2 SVC`` creates the
     new container beside the old one (same compose definition, new image and env), while
     the proxy host is pinned to the old container's own name (NPM reloads gracefully); a
     container that has not started is on no network, so the service alias still names the
     old one alone;
  2. once every nginx worker from before the last pin is shutting down (the reload took
     effect: no worker resolves the alias any more; at most ``drain`` seconds), ``docker start``
     starts the new containers, which join the alias;
  3. the new container must run without restarts, not be unhealthy for Docker, and
     answer HTTP on its own address (the health path): Docker's own healthcheck may
     still be "starting" (its first run comes only after its interval);
  4. the proxy hosts are switched to the new containers' names, one PUT after the
     other (NPM is never written to twice at once), then the public side of the proxy
     must serve the expected text (the release's version) for each;
  5. the new containers must have run ``settle`` seconds since their start (the time of
     steps 3 and 4 counts) without a restart, not unhealthy (when the healthcheck has run), and answer on their
     own address; then, once the proxy's nginx workers from before the last reload have
     exited (at most the drain period), the old containers are stopped and removed;
  6. the proxy host is put back on the service alias, which now resolves to the new
     container only (so the declared proxy hosts never change between runs).

  A failure up to the settling of step 5 puts each proxy host back on its old container, removes the
  new containers and puts the proxy hosts back on the alias; the message says "Nothing
  was switched" only when it checked that each old container still runs with the same
  id, alone, and each proxy host forwards to the alias again.
* **Recreate** (stateful services, or a stateless one with no single running
  container to hand over from): ``docker compose up -d`` of those services only.

Docker and compose are driven through a ``run(argv)`` callable returning
``(rc, stdout, stderr)``; NPM through a logged-in :class:`_npm_client.NPMClient`.
"""

from __future__ import annotations

import json
import threading
import time

from ansible.module_utils.urls import open_url
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _npm
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._compose import (
    changed_services,
    orphans_change,
    parse_dry_run,
    with_stopped,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._npm_client import NPMConnectionError

__all__ = [
    'SwitchError',
    'changed_services',
    'orphans_change',
    'parse_dry_run',
    'plan',
    'service_specs',
    'switch',
    'with_stopped',
]


class SwitchError(Exception):
    """The switch failed; ``result`` holds what was done before, ``switched`` whether anything moved."""

    def __init__(self, message, result=None, switched=True, gate_failed=False):
        super().__init__(message)
        self.result = result or {}
        self.switched = switched
        # The health gate itself failed (not another step while it ran): the failure is the verify stage's.
        self.gate_failed = gate_failed


# ---------------------------------------------------------------------------
# What differs (pure)
# ---------------------------------------------------------------------------


def service_specs(items):
    """``{name: spec}`` of the handed-over services; paths must start with ``/`` and names be unique."""
    out = {}
    for item in items or []:
        name = item['name']
        if name in out:
            raise ValueError(f'services lists {name!r} twice')
        for key in ('health_path', 'verify_path'):
            if not str(item.get(key) or '/').startswith('/'):
                raise ValueError(f'services[{name}].{key} must start with / (got {item[key]!r})')
        out[name] = dict(item)
    return out


def plan(changed, stateless, containers, proxied):
    """``(handover, recreate)``: which changed services are handed over, which are recreated in place.

    A stateless service is handed over when exactly one of its containers runs and
    its proxy host is known (``proxied``); otherwise (first deploy, crashed
    container) it is recreated like a stateful one.
    """
    handover, recreate = [], []
    for service in changed:
        running = [c for c in containers.get(service, []) if c['state'] == 'running']
        if service in stateless and service in proxied and len(running) == 1 and len(containers[service]) == 1:
            handover.append(service)
        else:
            recreate.append(service)
    return handover, recreate


# ---------------------------------------------------------------------------
# Docker
# ---------------------------------------------------------------------------


class _Docker:
    def __init__(self, run, project, project_dir, files):
        self.run_argv = run
        self.project = project
        self.compose = ['docker', 'compose', '--project-directory', project_dir, '-p', project]
        for name in files:
            self.compose += ['-f', name]

    def run(self, argv, what):
        rc, out, err = self.run_argv(argv)
        if rc != 0:
            raise SwitchError(f'{what} failed (exit {rc}): {(err or out).strip()[-600:]}', switched=False)
        return out, err

    def services(self):
        """The services of the compose file, in compose order (``docker compose config --services``)."""
        rc, out, err = self.run_argv(self.compose + ['config', '--services'])
        if rc != 0:
            raise SwitchError(
                f'docker compose config failed: {(err or out).strip()[-600:]} Nothing was changed.', switched=False
            )
        return out.split()

    def dry_run(self):
        out, err = self.run(
            self.compose + ['up', '--dry-run', '--no-start', '--remove-orphans'], 'docker compose up --dry-run'
        )
        return out + '\n' + err

    def containers(self):
        """``{service: [container]}`` of the project, each with id, name, state, health, restarts, ip, image."""
        out = self.run(
            # One-off containers (docker compose run) are not the service's: never handed over or settled.
            [
                'docker',
                'ps',
                '-aq',
                '--no-trunc',
                '--filter',
                f'label=com.docker.compose.project={self.project}',
                '--filter',
                'label=com.docker.compose.oneoff=False',
            ],
            'docker ps',
        )[0]
        ids = out.split()
        if not ids:
            return {}
        out = self.run(['docker', 'inspect'] + ids, 'docker inspect')[0]
        by_service = {}
        for item in json.loads(out):
            by_service.setdefault(item['Config']['Labels'].get('com.docker.compose.service', ''), []).append(
                _record(item)
            )
        for items in by_service.values():
            items.sort(key=lambda c: c['number'])
        return by_service

    def inspect(self, container_id):
        rc, out = self.run_argv(['docker', 'inspect', container_id])[:2]
        return _record(json.loads(out)[0]) if rc == 0 else None

    def up(self, services, extra=()):
        out, err = self.run(
            self.compose + ['up', '-d', '--remove-orphans', *extra, *services],
            f'docker compose up {" ".join(services)}',
        )
        return out + err

    def create(self, services, extra=()):
        """Create the containers ``up`` would start, without starting them (``up --no-start``)."""
        self.run(
            self.compose + ['up', '--no-start', '--remove-orphans', *extra, *services],
            f'docker compose up --no-start {" ".join(services)}',
        )

    def start(self, container_ids):
        self.run(['docker', 'start', *container_ids], f'docker start {" ".join(c[:12] for c in container_ids)}')

    def remove(self, container_id, stop_timeout=10):
        self.remove_all([container_id], stop_timeout)

    def remove_all(self, container_ids, stop_timeout=10):
        """Stop (SIGTERM, then SIGKILL after ``stop_timeout``) and remove the containers: two calls for all of them."""
        self.run_argv(['docker', 'stop', '-t', str(stop_timeout), *container_ids])
        result = self.run_argv(['docker', 'rm', '-f', *container_ids])
        rc, err = result[0], result[2]
        # One line per container that could not be removed; one already gone is what was wanted.
        failed = [line for line in err.splitlines() if line.strip() and 'No such container' not in line]
        if rc != 0 and failed:
            raise SwitchError(f'docker rm {" ".join(c[:12] for c in container_ids)} failed: {" ".join(failed)[-300:]}')

    def worker_states(self, container_id):
        """``{pid: shutting down}`` of the container's nginx worker processes, or None if unknown."""
        rc, out = self.run_argv(['docker', 'top', container_id, '-o', 'pid,args'])[:2]
        if rc != 0:
            return None
        states = {}
        for line in out.splitlines()[1:]:
            pid, _sep, args = line.strip().partition(' ')
            args = args.strip()
            if args.startswith('nginx: worker process'):
                states[pid] = 'shutting down' in args
        return states

    def workers(self, container_id, shutting_down=False):
        """The pids of the nginx worker processes in the container (also those shutting down), or None if unknown.

        With ``shutting_down``, only the workers a reload has told to finish their requests and exit
        (nginx names them ``nginx: worker process is shutting down``).
        """
        states = self.worker_states(container_id)
        if states is None:
            return None
        return {pid for pid, shutting in states.items() if shutting or not shutting_down}


def _record(item):
    state = item.get('State') or {}
    networks = (item.get('NetworkSettings') or {}).get('Networks') or {}
    labels = item['Config'].get('Labels') or {}
    return {
        'id': item['Id'],
        'name': item['Name'].lstrip('/'),
        'number': int(labels.get('com.docker.compose.container-number') or 0),
        'state': state.get('Status', ''),
        'health': (state.get('Health') or {}).get('Status', ''),
        'restarts': int(item.get('RestartCount') or 0),
        'ip': next((n.get('IPAddress') for n in networks.values() if n.get('IPAddress')), ''),
        'image': item.get('Image', ''),
        'version': labels.get('org.avatar-mgmt.version', ''),
    }


def _public(container):
    return {k: container.get(k) for k in ('id', 'name', 'image', 'version')} if container else {}


# ---------------------------------------------------------------------------
# The handover of one service
# ---------------------------------------------------------------------------


def _http_ok(url, timeout=3):
    try:
        with open_url(url, timeout=timeout, use_proxy=False) as resp:
            resp.read(65536)
            return resp.status == 200, f'HTTP {resp.status}'
    except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
        return False, str(getattr(exc, 'reason', exc))


class _Switch:
    def __init__(
        self, docker, client, spec, clock=time.monotonic, sleep=time.sleep, http_ok=_http_ok, t0=None, chain=None
    ):
        self.docker, self.client, self.spec = docker, client, spec
        self.clock, self.sleep, self.http_ok = clock, sleep, http_ok
        self.steps = []
        # The record of the proxy's declaration kept through this switch's writes (_proxy_marker.Chain), or None;
        # where each proxy host forwarded before this switch's first write to it, and where it forwards now.
        self.chain = chain
        self.forwarded = {}
        # Each proxy host as this switch last read or wrote it (NPM's answer to the PUT): a later write to it lists
        # no hosts and reads nothing back. Kept across the few seconds from the pins to the switch to the new
        # containers only: read again after the settle and the gate, and before an undo (NPM may have been edited
        # meanwhile; the lock keeps only the collection's other runs out).
        self.records = {}
        # The steps count from the start of the whole switch (its planning included) when given.
        self.t0 = clock() if t0 is None else t0

    def log(self, text):
        self.steps.append(f'{self.clock() - self.t0:6.1f}s {text}')

    def forward(self, service, host):
        """Point the service's proxy host at ``host`` (retried: NPM's reload may reset a connection)."""
        svc = self.spec['services'][service]
        params = {
            'domain_names': [svc['domain']],
            'forward_host': host,
            'forward_port': svc['port'],
            'validate_certs': self.spec.get('validate_certs', True),
            'ca_path': self.spec.get('ca_path'),
        }
        last = None
        for attempt in range(4):
            if self.chain is not None:
                self.chain.before_write()
            try:
                result, self.records[service] = _npm.forward_host_record(
                    self.client, params, clock=self.clock, sleep=self.sleep, record=self._record(service)
                )
            except NPMConnectionError as exc:
                last = exc
                # The write may have reached NPM: the host is read again.
                self.records.pop(service, None)
                self._chain_broken('a write to NPM failed part way')
                self.log(f'{service}: NPM connection failed ({exc}), retrying')
                self.sleep(1 + attempt)
                continue
            except BaseException:
                self._chain_broken('a write to NPM failed')
                self.records.pop(service, None)
                raise
            if self.chain is not None:
                self.chain.after_write()
            previous = result['previous']
            # [(scheme, host, port) before this switch's first write to it, the same now].
            where = self.forwarded.setdefault(
                service, [(previous['forward_scheme'], previous['forward_host'], previous['forward_port']), None]
            )
            where[1] = (params.get('forward_scheme') or previous['forward_scheme'], host, int(params['forward_port']))
            self.log(f'{service}: proxy forwards to {host}')
            return result
        raise last

    def _record(self, service):
        """The service's proxy host as last read or written; on the first write of the switch every service's host
        is read with one listing (a host not found is looked for again by the write, which says so)."""
        if service not in self.records:
            hosts = self.client.list_proxy_hosts()
            for name, svc in self.spec['services'].items():
                if name not in self.records:
                    try:
                        self.records[name] = _npm.find_host_for(hosts, [svc['domain']])
                    except ValueError:
                        pass
        return self.records.get(service)

    def _chain_broken(self, reason):
        if self.chain is not None:
            self.chain.broken(reason)

    def forwards_back(self):
        """Whether each proxy host this switch wrote to forwards where it did before its first write (scheme,
        host and port)."""
        return all(before == now for before, now in self.forwarded.values())

    def verify(self, service, expect):
        """Poll the public side of the proxy until the service's verify path serves ``expect``."""
        svc = self.spec['services'][service]
        _npm.verify_served(
            self.spec['proxy_url'].rstrip('/') + svc.get('verify_path', '/'),
            svc['domain'].strip().lower(),
            expect,
            self.spec.get('verify_timeout', 30),
            0.2,
            validate_certs=self.spec.get('validate_certs', True),
            ca_path=self.spec.get('ca_path'),
            clock=self.clock,
            sleep=self.sleep,
        )
        self.log(f'{service}: the proxy serves {expect!r}')

    def wait_ready(self, service, container):
        svc = self.spec['services'][service]
        deadline = self.clock() + self.spec.get('health_timeout', 60)
        reason = 'not checked'
        while True:
            current = self.docker.inspect(container['id'])
            if current is None:
                raise SwitchError(f'the new {service} container {container["name"]} disappeared', switched=False)
            if current['health'] == 'unhealthy':
                raise SwitchError(
                    f'the new {service} container {current["name"]} is unhealthy for Docker (its compose healthcheck)',
                    switched=False,
                )
            if current['state'] in ('exited', 'dead') or current['restarts'] > 0:
                raise SwitchError(
                    f'the new {service} container {current["name"]} cannot run '
                    f'(state {current["state"]}, {current["restarts"]} restarts)',
                    switched=False,
                )
            # Docker's healthcheck first runs one interval after the start: "starting" is not waited for
            # (unhealthy failed above); the answer on the container's own address is the readiness.
            if current['state'] == 'running' and current['ip']:
                ok, reason = self.http_ok(f'http://{current["ip"]}:{svc["port"]}{svc.get("health_path", "/")}')
                if ok:
                    health = f'Docker health {current["health"]}' if current['health'] else 'no Docker healthcheck'
                    self.log(f'{service}: {current["name"]} answers on its own address ({health})')
                    return current
            else:
                reason = f'Docker health {current["health"] or "none"}, state {current["state"]}'
            if self.clock() >= deadline:
                raise SwitchError(
                    f'the new {service} container {current["name"]} did not become ready within '
                    f'{self.spec.get("health_timeout", 60)}s ({reason})',
                    switched=False,
                )
            # A new container answers within a second or so: polled often (a docker inspect and one request).
            self.sleep(self.spec.get('interval', 0.2))

    def settle(self, news, started):
        """Wait until the new containers have run ``settle`` seconds since their start, checking them as they do.

        Each must keep running without a restart and not turn unhealthy for Docker (when its healthcheck has run by
        then), and at the end answer on its own address again (retried for up to ``verify_timeout`` seconds: a busy
        machine may answer slowly); otherwise SwitchError, and the caller puts the proxy back on the old containers,
        which still run. The time since the start already includes the proxy's switch and the public check.
        """
        limit = float(self.spec.get('settle', 0) or 0)
        if limit <= 0:
            return
        while True:
            self._still_running(news, started, limit)
            left = limit - (self.clock() - started)
            if left <= 0:
                break
            self.sleep(min(0.5, left))
        deadline = self.clock() + self.spec.get('verify_timeout', 30)
        for service, container in news.items():
            svc = self.spec['services'][service]
            while True:
                current = self._still_running({service: container}, started, limit)[service]
                ok, reason = self.http_ok(f'http://{current["ip"]}:{svc["port"]}{svc.get("health_path", "/")}')
                if ok:
                    break
                if self.clock() >= deadline:
                    raise SwitchError(
                        f'the new {service} container {container["name"]} stopped answering on its own address '
                        f'after the {limit:g}s it must settle ({reason})',
                        switched=False,
                    )
                self.sleep(0.5)
        self.log(f'{", ".join(news)}: the new containers ran {self.clock() - started:.1f}s without a restart')

    def _still_running(self, news, started, limit):
        """``{service: current}`` of ``news``; SwitchError for one that is gone, stopped, restarted or unhealthy."""
        found = {}
        for service, container in news.items():
            current = self.docker.inspect(container['id'])
            problem = None
            if current is None:
                problem = 'disappeared'
            elif current['state'] != 'running' or current['restarts'] > 0:
                problem = f'stopped (state {current["state"]}, {current["restarts"]} restarts)'
            elif current['health'] == 'unhealthy':
                problem = 'turned unhealthy for Docker (its compose healthcheck)'
            if problem:
                raise SwitchError(
                    f'the new {service} container {container["name"]} {problem} '
                    f'{self.clock() - started:.1f}s after its start, within the {limit:g}s it must settle',
                    switched=False,
                )
            found[service] = current
        return found

    def _restarted(self, news):
        """Why a new container does not count as healthy once the gate held, or None: one that Docker restarted in
        the meantime (it may answer again by the hold's next round: a crash loop whose rounds all fell between its
        crashes), stopped, or turned unhealthy. Read while the old containers still run."""
        for service, container in news.items():
            current = self.docker.inspect(container['id'])
            if current is None:
                return f'all checks passed, then the new {service} container {container["name"]} disappeared'
            if current['restarts'] > 0 or current['state'] != 'running' or current['health'] == 'unhealthy':
                return (
                    f'all checks passed, then the new {service} container {container["name"]} was restarted by Docker '
                    f'in the hold that followed ({current["restarts"]} restarts, state {current["state"]}'
                    + (', unhealthy' if current['health'] == 'unhealthy' else '')
                    + '): it crashes'
                )
        return None

    def handover(self, olds, expect, gate=None, proxy=None):
        """Hand every service of ``olds`` (``{service: old container}``) over together; ``{service: new container}``.

        With ``gate`` (a :class:`_gate.Gate`), the health gate starts once the proxy serves the new containers and
        the old ones are removed only once it passed and held; a last round follows the switch's last step.
        ``proxy``: the running proxy container (its nginx workers are watched), or None.
        """
        services = list(olds)
        news, moved = {}, []
        try:
            scale = [a for service in services for a in ('--scale', f'{service}=2')]
            # The new containers are created while the proxy hosts are pinned to the old ones: a container that
            # has not started is on no network, so the service's name still gives the old ones only. They start
            # (and join the name) once every host is pinned and the last pin's reload took effect.
            creating = _Background(
                lambda: self.docker.create(services, extra=('--no-deps', '--no-recreate', *scale)), self.clock
            )
            pinned_from = None
            try:
                for index, service in enumerate(services):
                    if index == len(services) - 1 and proxy:
                        # The workers that may still resolve the service's name: those running before the last pin.
                        pinned_from = self.docker.worker_states(proxy['id'])
                    self.forward(service, olds[service]['name'])
                if proxy and pinned_from:
                    self._wait_reloaded(proxy, pinned_from)
                else:
                    # No view of the proxy's workers (no proxy container, or none of its workers could be read):
                    # the reload is given the drain's time, as the drain is (never skipped without a word).
                    self.sleep(self.drain_s)
                    self.log(f"{self.drain_s:g}s for the pins' reload (the proxy's workers could not be read)")
            except BaseException:
                # The undo that follows removes what the create made; its own failure is said, not lost.
                creating.wait()
                if creating.error() is not None:
                    self.log(f'creating the new containers failed too: {creating.error()}')
                raise
            creating.result()
            now = self.docker.containers()
            for service in services:
                found = [c for c in now.get(service, []) if c['id'] != olds[service]['id']]
                if len(found) != 1:
                    raise SwitchError(
                        f'expected one new {service} container beside {olds[service]["name"]}, found {len(found)}'
                    )
                news[service] = found[0]
            self.docker.start([news[service]['id'] for service in services])
            started = self.clock()
            for service in services:
                self.log(f'{service}: started {news[service]["name"]} beside {olds[service]["name"]}')
            # They start together: waiting for each in turn takes as long as the slowest.
            for service in services:
                news[service] = self.wait_ready(service, news[service])
            serving = None
            # One PUT after the other (never two NPM writes at once: a concurrent write can make its
            # `nginx -t` read a half-written file), then the public side is checked for each: NPM's
            # reload is asynchronous, the checks of both wait for the reloads together.
            for index, service in enumerate(services):
                if index == len(services) - 1 and proxy:
                    # The workers that may still send to an old container: those running before the last reload.
                    serving = self.docker.workers(proxy['id'])
                moved.append(service)  # from the PUT on, the proxy may send to the new container
                self.forward(service, news[service]['name'])
            for service in services:
                self.verify(service, expect)
            if gate is not None:
                # Checked through the proxy, which serves the new containers now; the old ones are left out.
                gate.start(retired=[olds[s]['id'] for s in services])
                self.log('health gate started (the old containers still run and are left out of it)')
            # The old containers still run: a new one that stops, restarts or turns unhealthy within its first
            # `settle` seconds is caught here, where the proxy can still go back to them.
            self.settle(news, started)
            if gate is not None:
                # The old containers wait for the whole gate (every check passed, then held): a release that
                # fails it, a crash-loop in the hold included, goes back by a proxy switch.
                problem = gate.wait_done() or self._restarted(news)
                if problem is not None:
                    raise SwitchError(
                        f'the health gate failed while the old containers still ran: {problem}', gate_failed=True
                    )
                self.log(
                    f'health gate: every check passed {gate.passed_at - gate.started:.1f}s after its start and '
                    f'held {gate.hold:g}s; removing the old containers'
                )
            if serving is not None:
                # A reload of an earlier PUT may have started its workers after the snapshot: once the last
                # reload serves, every worker from before it is shutting down, those included.
                serving |= self.docker.workers(proxy['id'], shutting_down=True) or set()
        except Exception as exc:
            # Written by whoever, meanwhile: the proxy hosts are read again for the undo.
            self.records.clear()
            undone = self._undo(olds, news, moved, exc)
            undone.gate_failed = getattr(exc, 'gate_failed', False)
            raise undone from exc
        # After the settle and the gate (seconds to minutes), the hosts are read again before the last writes.
        self.records.clear()
        drained = self.drain(proxy, serving)
        self.docker.remove_all([olds[s]['id'] for s in services], self.spec.get('stop_timeout', 2))
        for service in services:
            self.log(f'{service}: removed {olds[service]["name"]} after {drained}')
        for service in services:
            self.forward(service, self._alias(service))
        return news

    def _wait_reloaded(self, proxy, before):
        """Wait until every nginx worker of ``before`` (``{pid: shutting down}``) is shutting down or gone: NPM's
        reload of the last write took effect (nginx starts it after NPM's answer). At most ``drain`` seconds."""
        left, took = self._until_gone(proxy, before, active_only=True, interval=0.05)
        if left:
            self.log(f'{len(left)} proxy worker(s) from before the pins still active after {self.drain_s:g}s')
        elif left is not None and took >= 0.05:
            self.log(f'the proxy reloaded with the pins ({took:.1f}s after the last one)')

    @property
    def drain_s(self):
        """The most seconds a wait on the proxy's workers takes (the drain, and the pins' reload)."""
        return float(self.spec.get('drain', 3))

    def _proxy_container(self, containers):
        running = [c for c in containers.get(self.spec.get('proxy_service', 'proxy'), []) if c['state'] == 'running']
        return running[0] if len(running) == 1 else None

    def drain(self, proxy, serving):
        """Wait until no request can still reach an old container; say how long that took.

        After a graceful reload nginx's old workers finish their requests and exit; once every worker
        that ran before the last switch of the proxy host is gone, the old containers get nothing more.
        ``drain`` bounds the wait (a long-lived connection keeps an old worker); without a view of the
        proxy's workers (no proxy container in the project) the wait is ``drain`` seconds.
        """
        limit = self.drain_s
        if not serving:
            self.sleep(limit)
            return f'{limit:g}s of drain'
        left, took = self._until_gone(proxy, serving, active_only=False, interval=0.2)
        if left is None:
            self.sleep(max(0.0, limit - took))
            return f'{limit:g}s of drain'
        if not left:
            return f'the proxy\'s old workers finished ({took:.1f}s of drain)'
        return f'{limit:g}s of drain ({len(left)} old proxy worker(s) still open)'

    def _until_gone(self, proxy, pids, active_only, interval):
        """Poll the proxy's nginx workers until none of ``pids`` is left, at most ``drain`` seconds.

        ``active_only``: a worker shutting down counts as gone (it takes no new request). ``(left, seconds)``:
        ``left`` the pids still there when the wait ended (empty: all gone), None when the workers cannot be read.
        """
        limit = self.drain_s
        start = self.clock()
        while True:
            states = self.docker.worker_states(proxy['id'])
            if states is None:
                return None, self.clock() - start
            left = {pid for pid, shutting in states.items() if not (active_only and shutting)} & set(pids)
            if not left or self.clock() - start >= limit:
                return left, self.clock() - start
            self.sleep(interval)

    def _alias(self, service):
        return self.spec['services'][service].get('alias', service)

    def _undo(self, olds, news, moved, exc):
        """Put every service back on its old container; the error says what was checked afterwards."""
        notes = []
        for service, old in olds.items():
            try:
                if service in moved:
                    self.forward(service, old['name'])
                if service in news:
                    new_ones = [news[service]]
                else:
                    new_ones = [c for c in self.docker.containers().get(service, []) if c['id'] != old['id']]
                for container in new_ones:
                    self.docker.remove(container['id'], 0)
                    notes.append(f'removed {container["name"]}')
                self.forward(service, self._alias(service))
            except Exception as undo_exc:  # noqa: BLE001
                notes.append(f'undoing {service} failed: {undo_exc}')
        # Only what was checked: each old container runs with the same id and is its service's only
        # container, and each proxy host forwards to the service name again.
        broken = []
        try:
            now = self.docker.containers()
            for service, old in olds.items():
                mine = now.get(service, [])
                forward_host = self.client.get_proxy_host(self._host_id(service)).get('forward_host')
                if not (
                    [c['id'] for c in mine] == [old['id']]
                    and mine[0]['state'] == 'running'
                    and forward_host == self._alias(service)
                ):
                    running = ', '.join(f'{c["name"]} ({c["state"]})' for c in mine) or 'no container'
                    broken.append(f'{service}: {running}, the proxy forwards to {forward_host}')
        except Exception as check_exc:  # noqa: BLE001
            return SwitchError(
                f'The switch failed: {exc} ({"; ".join(notes)}). What runs now could not be read: {check_exc}.'
            )
        names = ' and '.join(olds)
        if not broken:
            return SwitchError(
                f'Nothing was switched for {names}: {exc} ({"; ".join(notes) or "nothing to undo"}). '
                f'{" and ".join(o["name"] for o in olds.values())} kept serving and still run; '
                'the proxy forwards to the service names.',
                switched=False,
            )
        return SwitchError(
            f'The switch of {names} failed and could not be fully undone: {exc} ({"; ".join(notes)}). '
            f'Now: {"; ".join(broken)}.'
        )

    def _host_id(self, service):
        hosts = self.client.list_proxy_hosts()
        return int(_npm.find_host_for(hosts, [self.spec['services'][service]['domain']])['id'])


def _connect_for(connect, services, what, result=None):
    try:
        return connect()
    except _npm.NPMError as exc:
        raise SwitchError(
            f'the proxy API, needed to {what} {", ".join(services)}, answered: {exc} Nothing was changed.',
            result,
            switched=False,
        ) from exc


def _settle_interrupted(
    docker, client, spec, before, services, steps, clock=time.monotonic, sleep=time.sleep, chain=None
):
    """Leave one container of each service in ``services`` (more than one runs: a handover cut short).

    The container the proxy host forwards to is kept (it is the one serving) if it runs without
    restarts and is not unhealthy; otherwise, or when the proxy forwards to the service alias, the
    oldest such one. The proxy is pinned to the kept
    container before the others are removed, after the drain; the proxy host goes back to the
    alias (the handover that may follow pins it again). Each step taken is appended to ``steps`` as it is.
    """
    sw = _Switch(docker, client, spec, clock=clock, sleep=sleep, chain=chain)
    sw.steps = steps
    # The killed run moved the proxy hosts: NPM no longer holds the declaration as recorded.
    sw._chain_broken('a handover cut short was settled (its proxy hosts had been moved)')
    for service in services:
        mine = before[service]
        forward_host = client.get_proxy_host(sw._host_id(service)).get('forward_host')
        fit = [c for c in mine if c['state'] == 'running' and c['health'] != 'unhealthy' and c['restarts'] == 0]
        keep = next((c for c in fit if c['name'] == forward_host), None)
        if keep is None:
            keep = next(iter(fit), None) or next((c for c in mine if c['state'] == 'running'), mine[0])
        others = [c for c in mine if c['id'] != keep['id']]
        sw.log(
            f'{service}: {len(mine)} containers ({", ".join(c["name"] for c in mine)}) left by an interrupted '
            f'handover; the proxy forwards to {forward_host}: keeping {keep["name"]}'
        )
        if others and keep['state'] == 'running' and all(c['state'] == 'created' for c in others):
            # Created and never started (the run was cut short before its start): on no network, never served.
            for container in others:
                docker.remove(container['id'], 0)
                sw.log(f'{service}: removed {container["name"]} (created, never started)')
            if forward_host != sw._alias(service):
                sw.forward(service, sw._alias(service))
            continue
        if forward_host != keep['name'] and keep['state'] == 'running':
            sw.forward(service, keep['name'])
            sleep(spec.get('drain', 3))
        if others and keep['state'] == 'running':
            # The kept one may be a new container the killed run had just moved the proxy to: it must settle (run
            # without a restart and answer) before the others go.
            sw.settle({service: keep}, clock())
        for container in others:
            docker.remove(container['id'], spec.get('stop_timeout', 2))
            sw.log(f'{service}: removed {container["name"]}')
        sw.forward(service, sw._alias(service))


# ---------------------------------------------------------------------------
# The whole switch
# ---------------------------------------------------------------------------


class _Background:
    """``fn()`` in a thread of its own, started at once; :meth:`result` waits for it (value or exception)."""

    def __init__(self, fn, clock=time.monotonic):
        self._fn, self._clock = fn, clock
        self._value = self._error = self._discard = None
        self._done = False
        self._lock = threading.Lock()
        self.seconds = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        start = self._clock()
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc
        self.seconds = self._clock() - start
        with self._lock:
            self._done = True
            if self._discard is not None and self._value is not None:
                self._discard(self._value)

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self):
        """Wait for ``fn`` to end, whatever its outcome (nobody needs it)."""
        self._thread.join()

    def error(self):
        """The exception ``fn`` raised, once it ended (None while it runs or when it did not raise)."""
        return self._error if self._done else None

    def discard(self, close):
        """``close(value)`` once there is a value, without waiting for it."""
        with self._lock:
            if not self._done:
                self._discard = close
            elif self._value is not None:
                close(self._value)


def _stamp(clock, t0, text):
    return f'{clock() - t0:6.1f}s {text}'


def switch(
    run,
    spec,
    connect,
    check_mode=False,
    clock=time.monotonic,
    sleep=time.sleep,
    http_ok=_http_ok,
    gate=None,
    marker=None,
):
    """Bring the project to its compose file; return the module result.

    ``spec``: project, project_dir, files, services (``{name: {domain, port, health_path,
    verify_path}}`` of the stateless services), all_services (compose order; read with
    ``docker compose config --services`` when not given), strategy (handover or recreate),
    expect (text the new release serves), proxy_url, drain, settle, health_timeout, verify_timeout.
    ``connect()`` returns a logged-in NPM client. ``gate`` (a :class:`_gate.Gate`, or None): the health gate
    of a handover, run beside its last steps (``result['gate']``); a switch that only recreates in place leaves it
    to the caller, who checks once the proxy is declared (a new NPM has no proxy hosts before that).
    ``marker`` (a :class:`_proxy_marker.Chain`, or None): the record of the proxy's declaration, written again after a
    switch that changed nothing of NPM but its own forward writes and put every proxy host back
    (``result['proxy_marker']``).
    """
    docker = _Docker(run, spec['project'], spec['project_dir'], spec['files'])
    # The NPM client (closed on every path), its login running beside the first reads, and the steps
    # of settling an interrupted handover (once any was taken, no later error may say that nothing changed).
    state = {'client': None, 'login': None, 'settled': [], 'chain': None if check_mode else marker}
    try:
        return _switch(docker, spec, connect, state, check_mode, clock, sleep, http_ok, gate)
    except SwitchError as exc:
        if state['settled']:
            exc.switched = True
            steps = exc.result.get('steps') or []
            exc.result = dict(exc.result, steps=state['settled'] + [x for x in steps if x not in state['settled']])
        raise
    finally:
        if state['client'] is not None:
            state['client'].close()
        if state['login'] is not None:
            # A login nobody needed (nothing handed over) is not waited for: closed when it ends.
            state['login'].discard(lambda client: client.close())


def _switch(docker, spec, connect, state, check_mode, clock, sleep, http_ok, gate):
    t0 = clock()
    stateless = list(spec['services']) if spec.get('strategy', 'handover') == 'handover' else []
    # The first reads run together (each is mostly a wait): the project's containers, the services of
    # the compose file, compose's dry run and, when a service may be handed over, the login to NPM
    # (its password hash takes a while). The login is used only when a handover or an interrupted
    # one needs the proxy's API; nothing is written to NPM otherwise. Check mode never logs in.
    if stateless and not check_mode:
        state['login'] = _Background(connect, clock)
        connect = state['login'].result
    config = None if spec.get('all_services') else _Background(docker.services, clock)
    dry_run = _Background(docker.dry_run, clock)
    start = clock()
    before = docker.containers()
    read = {'containers': clock() - start}
    all_services = config.result() if config else spec['all_services']
    # A handover cut short (a killed run) leaves two containers of a service and its proxy host
    # pinned to one of them: settled first, so the switch below starts from one serving container.
    interrupted = [s for s in stateless if len(before.get(s, [])) > 1]
    if interrupted and not check_mode:
        dry_run.wait()  # what it saw is about to change: run again once settled
        state['client'] = _connect_for(connect, interrupted, 'settle the interrupted handover of')
        try:
            _settle_interrupted(
                docker, state['client'], spec, before, interrupted, state['settled'], clock, sleep, state['chain']
            )
        except (_npm.NPMError, SwitchError, ValueError) as exc:
            raise SwitchError(
                f'settling the interrupted handover of {", ".join(interrupted)} failed: {exc}',
                {'interrupted': interrupted, 'steps': list(state['settled'])},
                switched=bool(state['settled']),
            ) from exc
        before = docker.containers()
        dry_run = _Background(docker.dry_run, clock)
    settled = state['settled']
    dry = parse_dry_run(dry_run.result(), spec['project'], all_services)
    changed = with_stopped(changed_services(dry, all_services), all_services, before)
    orphans = orphans_change(dry)
    handover, recreate = plan(changed, stateless, before, stateless)
    result = {
        # In check mode an interrupted handover is a change the real run makes (it settles it).
        'changed': bool(changed or orphans or settled or (check_mode and interrupted)),
        'differs': changed,
        'handover': handover,
        'recreate': recreate,
        'interrupted': interrupted,
        'services': {},
        'steps': list(settled),
    }
    if not check_mode and (changed or orphans) and handover and state['client'] is None:
        # Before anything runs: without the proxy's API there is no handover.
        state['client'] = _connect_for(connect, handover, 'hand over', dict(result, changed=False))
    read['compose config'] = config.seconds if config else None
    read['dry run'] = dry_run.seconds
    read['NPM login'] = state['login'].seconds if state['client'] is not None and state['login'] else None
    timings = ', '.join(f'{k} {v:.1f}s' for k, v in read.items() if v is not None)
    result['steps'].append(
        _stamp(
            clock,
            t0,
            f'planned: hand over {", ".join(handover) or "nothing"}; recreate {", ".join(recreate) or "nothing"}'
            + (' and remove orphans' if orphans else '')
            + f' (read together: {timings})',
        )
    )
    if check_mode or not (changed or orphans):
        result['serving'] = {s: [_public(c) for c in before.get(s, [])] for s in all_services}
        return result
    sw = None
    if state['chain'] is not None and spec.get('proxy_service', 'proxy') in recreate:
        # A new NPM container: its start may write its database after this call, and it is not known to serve
        # what was declared until the declaration has checked it. The record goes before the container does, so
        # that a switch failing after it leaves none that the next run could take for current.
        state['chain'].forget('the proxy container itself was recreated')
    try:
        if recreate or orphans:
            try:
                docker.up(recreate)
            except SwitchError as exc:
                # compose may have recreated some of them before it failed.
                exc.switched = True
                raise
        if handover:
            sw = _Switch(
                docker, state['client'], spec, clock=clock, sleep=sleep, http_ok=http_ok, t0=t0, chain=state['chain']
            )
            if recreate:
                sw.log(f'recreated in place: {", ".join(recreate)}')
            olds = {service: before[service][0] for service in handover}
            # The proxy container whose nginx workers the handover watches: read again when this switch recreated it.
            seen = docker.containers() if spec.get('proxy_service', 'proxy') in recreate else before
            news = sw.handover(olds, spec.get('expect'), gate, proxy=sw._proxy_container(seen))
            for service in handover:
                result['services'][service] = {
                    'action': 'handover',
                    'old': _public(olds[service]),
                    'new': _public(news[service]),
                }
        for service in recreate:
            result['services'][service] = {'action': 'recreate'}
        if gate is not None and sw is not None:
            problem = gate.finish(clock())
            result['gate'] = gate.result()
            if problem is not None:
                raise SwitchError(
                    f'the health gate failed after the switch: {problem}', switched=True, gate_failed=True
                )
    except SwitchError as exc:
        exc.result = dict(result, steps=result['steps'] + (sw.steps if sw else []))
        if gate is not None:
            gate.cancel()
            if exc.gate_failed:
                exc.result['gate'] = gate.result()
        if recreate:
            exc.switched = True
        if result['services']:
            exc.switched = True
        raise
    except _npm.NPMError as exc:
        if gate is not None:
            gate.cancel()
        raise SwitchError(
            f'the proxy could not be switched: {exc}', dict(result, steps=result['steps'] + (sw.steps if sw else []))
        ) from exc
    except ValueError as exc:
        # After the first change (an answer of Docker or NPM that could not be read): what runs may have changed.
        if gate is not None:
            gate.cancel()
        raise SwitchError(
            f'the switch failed after it began: {exc}', dict(result, steps=result['steps'] + (sw.steps if sw else []))
        ) from exc
    except BaseException:
        if gate is not None:
            gate.cancel()
        raise
    try:
        after = docker.containers()
    except (SwitchError, ValueError) as exc:
        raise SwitchError(
            f'the switch ended, but what runs now could not be read: {exc}',
            dict(result, steps=result['steps'] + (sw.steps if sw else [])),
        ) from exc
    result['steps'] += sw.steps if sw else [_stamp(clock, t0, f'recreated in place: {", ".join(recreate)}')]
    if 'gate' in result:
        result['steps'].append(
            _stamp(
                clock,
                t0,
                f'health gate: {result["gate"]["msg"]}'
                + (' One more round after the switch was over passed too.' if result['gate']['final_round'] else ''),
            )
        )
    result['serving'] = {s: [_public(c) for c in after.get(s, [])] for s in all_services}
    if state['chain'] is not None:
        result['proxy_marker'] = state['chain'].record(sw.forwards_back() if sw else True)
    return result
