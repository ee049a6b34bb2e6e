# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A stand-in for the Docker SDK client (``docker.DockerClient``) in compose-check unit tests.

It serves ``client.containers.list(all=..., filters={'label': 'key=value'}, ignore_removed=...)``
from recorded ``docker inspect`` documents (one snapshot per call, the last one repeating),
filters by label as the engine does, and records every call.
"""

from __future__ import annotations

import copy


class FakeContainer:
    """A container as the SDK returns it: its inspect data in ``attrs``."""

    def __init__(self, attrs):
        self.attrs = attrs
        self.id = attrs.get('Id')


class FakeDockerClient:
    """``FakeDockerClient(snapshot1, snapshot2, ...)``; each snapshot is a list of inspect dicts.

    :param error: an exception ``containers.list`` raises instead of answering.
    :param removed_ids: containers that vanish between the engine's list and inspect: they make
        ``list`` raise ``removed_error`` unless ``ignore_removed=True``, as the SDK does.
    """

    def __init__(self, *snapshots, error=None, removed_ids=(), removed_error=None):
        self.snapshots = [list(s) for s in snapshots] or [[]]
        self.error = error
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
            found.append(FakeContainer(copy.deepcopy(item)))
        return found

    def close(self):
        self.closed = True


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
