# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A stand-in for the Docker SDK client (``docker.DockerClient``) in compose-check unit tests.

It serves ``client.containers.list(all=..., filters={'label': 'key=value'}, ignore_removed=...)``
from recorded ``docker inspect`` documents (one snapshot per call, the last one repeating),
filters by label as the engine does, and records every call. ``container.exec_run(cmd, ...)``
answers through the client's ``exec_handler(attrs, cmd)`` (``(exit_code, (stdout, stderr))``
as bytes, as the SDK's ``demux=True`` does) and is recorded in ``execs``.
"""

from __future__ import annotations

import copy


class FakeContainer:
    """A container as the SDK returns it: its inspect data in ``attrs``."""

    def __init__(self, attrs, client=None):
        self.attrs = attrs
        self.id = attrs.get('Id')
        self.client = client

    def exec_run(self, cmd, stdout=True, stderr=True, demux=False, **kwargs):
        self.client.execs.append({'id': self.id, 'cmd': list(cmd), 'demux': demux, **kwargs})
        if self.client.exec_error is not None:
            raise self.client.exec_error
        exit_code, (out, err) = self.client.exec_handler(self.attrs, list(cmd))
        return exit_code, ((out, err) if demux else (out or b'') + (err or b''))


class FakeDockerClient:
    """``FakeDockerClient(snapshot1, snapshot2, ...)``; each snapshot is a list of inspect dicts.

    :param error: an exception ``containers.list`` raises instead of answering.
    :param removed_ids: containers that vanish between the engine's list and inspect: they make
        ``list`` raise ``removed_error`` unless ``ignore_removed=True``, as the SDK does.
    :param exec_handler: ``(attrs, cmd) -> (exit_code, (stdout, stderr))`` of ``exec_run``.
    :param exec_error: an exception ``exec_run`` raises instead of answering.
    """

    def __init__(self, *snapshots, error=None, removed_ids=(), removed_error=None, exec_handler=None, exec_error=None):
        self.snapshots = [list(s) for s in snapshots] or [[]]
        self.error = error
        self.exec_handler = exec_handler or (lambda attrs, cmd: (0, (b'', None)))
        self.exec_error = exec_error
        self.execs = []
        self.removed_ids = set(removed_ids)
        self.removed_error = removed_error or LookupError('No such container')
        self.calls = []
        self.closed = False
        self.containers = self  # client.containers.list(...)

    def list(self, all=False, filters=None, ignore_removed=False, **kwargs):
        self.calls.append({'all': all, 'filters': copy.deepcopy(filters), 'ignore_removed': ignore_removed, **kwargs})
        if self.error is not None:
            raise self.error
        current = self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
        wanted = dict(item.split('=', 1) for item in _as_list((filters or {}).get('label')))
        found = []
        for item in current:
            labels = (item.get('Config') or {}).get('Labels') or {}
            if all is False and not (item.get('State') or {}).get('Running'):
                continue
            if any(labels.get(key) != value for key, value in wanted.items()):
                continue
            if item.get('Id') in self.removed_ids:
                if not ignore_removed:
                    raise self.removed_error
                continue
            found.append(FakeContainer(copy.deepcopy(item), self))
        return found

    def close(self):
        self.closed = True


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
