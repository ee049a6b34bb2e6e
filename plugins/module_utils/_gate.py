# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy's health gate, run by ``compose_switch`` beside the last steps of its switch.

The gate is ``health_verify``'s: every check polled until all have passed (``deadline``), then
all probed together for ``hold`` seconds. Here it runs in a thread of the switch's own call:

* a handover starts it once the proxy serves the new containers, while the old ones still run (the
  compose checks leave them out, :class:`_Without`); the old containers are removed only once every
  check has passed and held (:meth:`Gate.wait_done`), so a release that fails it, one that crash-loops
  in the hold included, goes back by a proxy switch, with its old containers serving;
* :meth:`Gate.finish` takes one more round of every check when the hold ended before the switch's last
  step (the old containers removed, the proxy hosts back on the service names), so the state the switch
  leaves is what was checked last.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _health

__all__ = ['Gate']


class _Cancelled(Exception):
    """The switch failed or ended: the gate stops at its next wait."""


class _ContainersWithout:
    def __init__(self, containers, retired):
        self._containers = containers
        self._retired = retired

    def list(self, *args, **kwargs):
        return [c for c in self._containers.list(*args, **kwargs) if c.id not in self._retired]

    def __getattr__(self, name):
        return getattr(self._containers, name)


class _Without:
    """A Docker SDK client whose container lists leave out the ``retired`` ids (made from the environment on use)."""

    def __init__(self, retired, factory):
        self._retired = retired
        self._factory = factory
        self._client = None

    def _get(self):
        if self._client is None:
            self._client = self._factory()
        return self._client

    @property
    def containers(self):
        return _ContainersWithout(self._get().containers, self._retired)

    @property
    def api(self):
        # The low-level client: a compose check runs a container's first healthcheck through it.
        return self._get().api

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None


class Gate:
    """Run the checks in a thread; see the module's docstring."""

    def __init__(self, checks, hold=3, interval=2, deadline=180, docker_factory=None, clock=time.monotonic, poll=0.25):
        # Invalid definitions fail here, before the switch touches anything.
        _health.normalize_checks(checks)
        for name, value in (('hold', hold), ('interval', interval), ('deadline', deadline)):
            if value is None or float(value) < 0 or (name == 'interval' and float(value) == 0):
                raise _health.HealthSpecError(
                    f'gate {name} must be {"more than" if name == "interval" else "0 or more"} seconds'
                )
        # One connection per request: the hold goes on while the proxy reloads, and an old nginx worker closes its
        # idle keep-alive connections then; a request sent on one as it closes would fail a healthy release.
        self.checks = [
            dict(c, headers=dict(c.get('headers') or {}, Connection='close'))
            if (c.get('type') or 'http') == 'http'
            else c
            for c in checks
        ]
        self.hold = float(hold)
        self.interval = float(interval)
        # Until every check has passed once the checks are polled faster: the old containers wait for it.
        self.poll = min(float(poll), self.interval)
        self.deadline = float(deadline)
        self.clock = clock
        self._factory = docker_factory or _docker_from_env
        self._retired = set()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread = None
        self.started = None
        self.passed_at = None
        self.report = None
        self.final_round = None
        self.error = None

    # -- the thread ---------------------------------------------------------------------------------------------

    def start(self, retired=()):
        """Start the checks, leaving the containers ``retired`` (ids) out of the compose checks."""
        self._retired.update(retired)
        self.started = self.clock()
        self._thread = threading.Thread(target=self._run, name='health-gate', daemon=True)
        self._thread.start()

    def _sleep(self, seconds):
        if self._cancel.wait(max(0.0, seconds)):
            raise _Cancelled()

    def _on_pass(self):
        self.passed_at = self.clock()

    def _run(self):
        client = _Without(self._retired, self._factory)
        try:
            self.report = _health.run_checks(
                self.checks,
                deadline=self.deadline,
                interval=self.poll,
                hold=self.hold,
                hold_interval=self.interval,
                docker_client=client,
                clock=self.clock,
                sleep=self._sleep,
                on_pass=self._on_pass,
            )
        except _Cancelled:
            self.error = 'stopped: the switch ended first'
        except Exception as exc:  # noqa: BLE001 - reported as the gate's failure
            self.error = f'the health checks could not run: {exc}'
        finally:
            client.close()
            self._done.set()

    # -- what the switch asks -----------------------------------------------------------------------------------

    def problem(self):
        """Why the gate failed, or None while it runs or once it passed."""
        if not self._done.is_set():
            return None
        if self.error:
            return self.error
        if not self.report['healthy']:
            return _health.failure_message(self.report, deadline=self.deadline)
        return None

    def wait_done(self):
        """Block until the gate has ended: None when every check passed and held, else why not."""
        self._done.wait()
        return self.problem()

    def finish(self, since):
        """Wait for the hold; one more round when the hold ended before ``since`` (the switch's last step). Why it failed, or None."""
        self._done.wait()
        problem = self.problem()
        if problem is not None:
            return problem
        self.final_round = self.passed_at + self.hold < since
        if self.final_round:
            client = _Without(self._retired, self._factory)
            try:
                last = _health.run_checks(
                    self.checks, deadline=0, interval=self.interval, docker_client=client, clock=self.clock
                )
            finally:
                client.close()
            if not last['healthy']:
                self.report = last
                self.error = 'in the round taken once the switch was over, after the hold: ' + _health.failure_message(
                    last
                )
                return self.error
        return None

    def cancel(self):
        """Stop the checks (at their next wait); a no-op once they ended."""
        self._cancel.set()

    def result(self):
        """What the role sees: healthy, the message, each check, and whether a last round followed the hold."""
        if self._thread is None:
            return {}
        done = self._done.is_set()
        problem = self.problem()
        report = (self.report if done else None) or {'checks': [], 'summary': {}}
        healthy = done and problem is None
        return {
            'healthy': healthy,
            'msg': problem or (_health.failure_message(self.report) if done else 'stopped before it ended'),
            'checks': report['checks'],
            'summary': report['summary'],
            'final_round': bool(self.final_round),
            'passed_after': None if self.passed_at is None else round(self.passed_at - self.started, 1),
        }


def _docker_from_env():
    if not _health.HAS_DOCKER_SDK:
        raise RuntimeError(_health.MISSING_DOCKER_SDK)
    return _health.docker_client_from_env()
