# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Callback of the deploy bench: every task's start, end, action and status, as JSON.

Enabled only by the bench (ANSIBLE_CALLBACKS_ENABLED=bench_tasks with
ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins); writes one JSON document to the
file named by BENCH_TASKS_FILE when the play ends. Results carry no task output,
only names, so nothing secret reaches the file; of the backup modules' results it keeps
the figures the backup bench reports (FIGURES: timings, sizes, ids, counts).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_tasks
type: aggregate
short_description: Write task timings and statuses to a JSON file (deploy bench only)
description:
  - Records, for every task and handler, its name, action, role, start and end time,
    and per host whether it ran, changed, was skipped or failed, and how many loop items ran.
  - Writes the records to the file named by the environment variable E(BENCH_TASKS_FILE).
requirements:
  - enabled in ansible.cfg or with E(ANSIBLE_CALLBACKS_ENABLED)
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

# The figures kept of these modules' results (the backup bench): no secret is among them.
FIGURES = {
    'backup_create': ('id', 'timings', 'files', 'reused'),
    'backup_offsite': (
        'timings', 'snapshot_id', 'parent', 'data_added', 'data_added_packed', 'files_new', 'files_changed',
        'files_unmodified', 'total_files_processed', 'total_bytes_processed', 'initialized',
    ),
}  # fmt: skip


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_tasks'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tasks = []
        self._by_uuid = {}
        self._play = ''

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def _start(self, task, handler=False):
        record = {
            'play': self._play,
            'name': task.get_name(),
            'action': task.action,
            'role': task._role.get_name() if task._role else '',
            'handler': handler,
            'start': time.time(),
            'end': None,
            'hosts': {},
        }
        self._tasks.append(record)
        self._by_uuid[task._uuid] = record

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, handler=True)

    def _host(self, result):
        record = self._by_uuid.get(result._task._uuid)
        if record is None:  # a result without a start event (e.g. an included file's meta)
            self._start(result._task)
            record = self._by_uuid[result._task._uuid]
        record['end'] = time.time()
        name = result._host.get_name()
        return record['hosts'].setdefault(
            name, {'status': 'ok', 'changed': False, 'items': 0, 'delegated': bool(result._task.delegate_to)}
        )

    def _result(self, result, status):
        host = self._host(result)
        host['status'] = status
        host['changed'] = bool(result._result.get('changed', False)) or host['changed']

    def v2_runner_on_ok(self, result):
        self._result(result, 'ok')
        keys = FIGURES.get(result._task.action.rsplit('.', 1)[-1])
        if keys:
            self._host(result)['figures'] = {k: result._result[k] for k in keys if k in result._result}

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, 'ignored' if ignore_errors else 'failed')

    def v2_runner_on_skipped(self, result):
        self._result(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._result(result, 'unreachable')

    def _item(self, result):
        self._host(result)['items'] += 1

    def v2_runner_item_on_ok(self, result):
        self._item(result)

    def v2_runner_item_on_failed(self, result):
        self._item(result)

    def v2_runner_item_on_skipped(self, result):
        self._item(result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('BENCH_TASKS_FILE')
        if not path:
            return
        with open(path, 'w', encoding='utf-8') as out:
            json.dump({'tasks': self._tasks}, out, indent=1)
