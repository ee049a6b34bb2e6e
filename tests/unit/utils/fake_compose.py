# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake Docker + compose for the switch: ``run(argv)`` answers the commands ``_switch`` sends.

``desired`` is what the compose file on disk says per service (a config string that is
also the image and version label); ``up --dry-run`` prints ``Recreated`` for a container
whose config differs, ``Created`` for a missing service; ``--scale S=2 --no-recreate``
adds a container numbered after the highest (``created`` with ``--no-start``, until ``docker start``);
a config in ``broken`` restarts forever, one in ``unhealthy`` runs unhealthy, one in ``starting`` runs and
answers while Docker's healthcheck has not run yet, one in ``crashing`` (config -> n) exits after ``n``
inspections of it and Docker restarts it.
"""

from __future__ import annotations

import json

PROJECT = 'avatar-production'


class FakeDocker:
    """Containers of one compose project; ``desired`` is what the compose file on disk says per service."""

    def __init__(self, desired, broken=(), unhealthy=(), starting=(), crashing=None):
        self.desired = dict(desired)
        self.crashing = dict(crashing or {})
        self.broken = set(broken)
        self.unhealthy = set(unhealthy)
        self.starting = set(starting)
        self.containers = {}
        self.calls = []
        # What `docker top` shows of the proxy's nginx workers, call after call (the last one repeats);
        # a pid ending in ~ is a worker shutting down after a reload. None: `docker top` fails.
        self.proxy_workers = None
        # The same, for the `docker top` calls made before the first `docker start` (a handover's pins, while its
        # new containers are created beside them); None: `docker top` fails then (the switch does not wait for
        # the pins' reload). Only a fake's first handover is told apart so.
        self.pin_workers = None
        self._next = 0
        for service, config in desired.items():
            self._create(service, config)

    def _create(self, service, config):
        self._next += 1
        number = 1 + max([c['number'] for c in self.containers.values() if c['service'] == service] or [0])
        cid = f'{self._next:064x}'
        broken = config in self.broken
        self.containers[cid] = {
            'service': service,
            'number': number,
            'config': config,
            'state': 'restarting' if broken else 'running',
            'restarts': 2 if broken else 0,
            'inspected': 0,
        }
        return cid

    def of(self, service):
        return sorted(
            (cid for cid, c in self.containers.items() if c['service'] == service),
            key=lambda cid: self.containers[cid]['number'],
        )

    def name(self, cid):
        c = self.containers[cid]
        return f'{PROJECT}-{c["service"]}-{c["number"]}'

    def _inspect(self, cid):
        c = self.containers[cid]
        c['inspected'] += 1
        if c['config'] in self.crashing and c['inspected'] > self.crashing[c['config']]:
            c['state'], c['restarts'] = 'restarting', 1
        return {
            'Id': cid,
            'Name': '/' + self.name(cid),
            'Image': f'sha256:{c["config"]}',
            'RestartCount': c['restarts'],
            'State': {'Status': c['state'], 'Health': {'Status': self._health(c)}},
            'Config': {
                'Labels': {
                    'com.docker.compose.service': c['service'],
                    'com.docker.compose.container-number': str(c['number']),
                    'org.avatar-mgmt.version': c['config'],
                }
            },
            # A created container that never started is on no network.
            'NetworkSettings': {'Networks': {} if c['state'] == 'created' else {'backend': {'IPAddress': self._ip(c)}}},
        }

    @staticmethod
    def _ip(c):
        return f'172.18.0.{c["number"] + 10}'

    def _health(self, c):
        if c['state'] != 'running' or c['config'] in self.starting:
            return 'starting'
        return 'unhealthy' if c['config'] in self.unhealthy else 'healthy'

    def __call__(self, argv, **kw):
        self.calls.append(argv)
        if argv[:2] == ['docker', 'compose'] and 'config' in argv:
            return 0, '\n'.join(self.desired) + '\n', ''
        if argv[:2] == ['docker', 'compose']:
            args = argv[argv.index('up') :]
            if '--dry-run' in args:
                lines = []
                for service, config in self.desired.items():
                    ids = self.of(service)
                    if not ids:
                        lines.append(f' DRY-RUN MODE -  Container {PROJECT}-{service}-1  Created')
                    for cid in ids:
                        status = 'Running' if self.containers[cid]['config'] == config else 'Recreated'
                        lines.append(f' DRY-RUN MODE -  Container {self.name(cid)}  {status}')
                return 0, '', '\n'.join(lines)
            named = [a for a in args[1:] if not a.startswith('-') and '=' not in a]
            if '--scale' in args:
                for service in named:
                    cid = self._create(service, self.desired[service])
                    if '--no-start' in args:
                        self.containers[cid]['state'] = 'created'
                return 0, '', ''
            for service in named or list(self.desired):
                for cid in self.of(service):
                    del self.containers[cid]
                self._create(service, self.desired[service])
            return 0, '', ''
        if argv[:2] == ['docker', 'ps']:
            return 0, '\n'.join(self.containers), ''
        if argv[:2] == ['docker', 'inspect']:
            missing = [cid for cid in argv[2:] if cid not in self.containers]
            if missing:
                return 1, '', f'Error: No such object: {missing[0]}'
            return 0, json.dumps([self._inspect(cid) for cid in argv[2:]]), ''
        if argv[:2] == ['docker', 'start']:
            for cid in argv[2:]:
                c = self.containers[cid]
                if c['state'] == 'created':
                    c['state'] = 'restarting' if c['config'] in self.broken else 'running'
            return 0, '', ''
        if argv[:2] == ['docker', 'stop']:
            return 0, '', ''
        if argv[:3] == ['docker', 'rm', '-f']:
            for cid in argv[3:]:
                self.containers.pop(cid, None)
            return 0, '', ''
        if argv[:2] == ['docker', 'top']:
            if argv[2] not in self.containers:
                return 1, '', f'Error response from daemon: No such container: {argv[2]}'
            pinning = not any(call[:2] == ['docker', 'start'] for call in self.calls)
            answers = self.pin_workers if pinning else self.proxy_workers
            if answers is None:
                return 1, '', 'Error response from daemon: top not available'
            pids = answers.pop(0) if len(answers) > 1 else answers[0]
            lines = ['PID COMMAND', '1 nginx: master process nginx', '2 nginx: cache manager process']
            lines += [
                f'{pid.rstrip("~")} nginx: worker process' + (' is shutting down' if pid.endswith('~') else '')
                for pid in sorted(pids)
            ]
            return 0, '\n'.join(lines) + '\n', ''
        raise AssertionError(f'unexpected command {argv}')
