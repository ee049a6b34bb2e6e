# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of the deploy lock, shared by the action plugins of
avatar_mgmt.ops.deploy_lock and avatar_mgmt.ops.release_info (its ``lock`` option).

Runs in the controller's worker process (a fork of ansible-playbook, so
``os.getppid()`` is the run that takes the lock).  :class:`LockAction` is the
action plugin both modules share (``run_task``: refuse the internal options,
run the module through ``run_lock``, return its result).  ``run_lock`` adds the
controller's identity and the inventory host to the lock arguments, runs the
module through a callable, and when the result shows another run's lock it
judges on the controller whether that run is alive (only this controller can
look at its processes), then says so in ``stale`` and ``msg``.

break_lock / force cost a second module run only when there is a lock to
break: the first run tries to take the lock and returns the lock that is
held; the second removes exactly that lock (by fingerprint) and takes it.
"""

from __future__ import annotations

import getpass
import os
import socket

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._lock import (
    DEFAULT_BREAK_HINT,
    assess_owner,
    controller_identity,
    held_message,
)

INTERNAL = ('_controller', '_inventory_host', '_break_fingerprint')


class LockAction(ActionBase):
    """The action plugin of a module that takes, releases or reads the deploy lock."""

    TRANSFERS_FILES = False
    _requires_connection = True

    def _controller(self):
        return controller_identity(os.getppid(), socket.gethostname())

    def _run_module(self, args, task_vars):
        return self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars)

    def run_task(self, tmp, task_vars, lock_args, module_args, option='', state='present'):
        """The task's result: the module run through :func:`run_lock` with ``lock_args``.

        ``module_args(lock_args)`` gives the module's arguments for the lock arguments of one
        run; ``option`` prefixes the names of internal options the task must not pass
        (``lock.`` for an option that holds them).
        """
        result = super().run(tmp, task_vars)
        given = [option + key for key in lock_args if key in INTERNAL]
        if given:
            raise AnsibleActionFail(f"{', '.join(given)} are set by the action plugin; do not pass them.")
        result.update(
            run_lock(
                lambda args: self._run_module(module_args(args), task_vars),
                lock_args,
                task_vars,
                self._controller(),
                state=state,
            )
        )
        return result


def run_operator(task_vars):
    """Who runs this, when the task does not say: the AWX user, else the AWX schedule
    (``schedule:NAME``; a scheduled job has no user), else the local user on the control node."""
    for name in ('awx_user_name', 'tower_user_name'):
        if task_vars.get(name):
            return str(task_vars[name])
    for name in ('awx_schedule_name', 'tower_schedule_name'):
        if task_vars.get(name):
            return f'schedule:{task_vars[name]}'
    try:
        return os.environ.get('USER') or getpass.getuser()
    except (KeyError, OSError):
        return f'uid {os.getuid()}'


def run_job_id(task_vars):
    """The AWX job id of this run, or ''."""
    return str(task_vars.get('awx_job_id') or task_vars.get('tower_job_id') or '')


def run_lock(run_module, args, task_vars, here, state='present'):
    """Run a module that takes (``state=present``), releases or reads the lock.

    ``args``: the lock arguments as the task gave them (deploy_lock's options, or
    release_info's ``lock`` option); ``run_module(lock_args)`` runs the module with
    them and returns its result, whose top level carries the lock fields (``held``,
    ``acquired``, ``lock``, ``waited``, ``broken``, ``msg``).  ``here``: the
    controller identity.  Returns the result, judged.
    """
    args = dict(args)
    given_state = state
    try:
        break_lock = boolean(args.get('break_lock', False), strict=True)
        force = boolean(args.get('force', False), strict=True)
        timeout = int(args.get('timeout', 0))
    except (TypeError, ValueError):
        # Let the module's argument validation say what is wrong.
        state, break_lock, force, timeout = 'invalid', False, False, 0

    if state == 'present':
        args['holder'] = args.get('holder') or run_operator(task_vars)
        args['job_id'] = str(args.get('job_id') or '') or run_job_id(task_vars)
    args['_controller'] = here
    args['_inventory_host'] = str(task_vars.get('inventory_hostname', ''))
    hints = {
        'break_hint': str(args.get('break_hint', DEFAULT_BREAK_HINT)),
        'force_hint': str(args.get('force_hint', '')),
    }

    prefix = ''
    breaking = state == 'present' and (break_lock or force)
    first = dict(args, timeout=0) if breaking else args
    outcome = run_module(first)

    only = str(args.get('break_only') or '')
    if breaking and held_by_other(outcome):
        stale, reason = assess_owner(outcome['lock'].get('controller'), here)
        waited = float(outcome.get('waited') or 0.0)
        if only and outcome['lock']['fingerprint'] != only:
            # Not the lock the caller judged (state=query): another run's lock, whatever force says.
            second = None
            outcome['stale'], outcome['stale_reason'] = stale, reason
            prefix = 'The lock changed since it was read, so it was left alone. '
            outcome['msg'] = held_message(args.get('path', ''), outcome['lock'], stale=stale, reason=reason, **hints)
        elif force or stale is not False:
            second = dict(args, _break_fingerprint=outcome['lock']['fingerprint'])
        elif timeout > 0:
            second = dict(args)  # a live run: wait for it as asked
        else:
            second = None
            outcome['stale'], outcome['stale_reason'] = stale, reason
            outcome['msg'] = held_message(
                args.get('path', ''), outcome['lock'], stale=stale, reason=reason, refused_break=True, **hints
            )
        if second is not None:
            judged = outcome['lock']
            outcome = run_module(second)
            outcome['waited'] = round(waited + float(outcome.get('waited') or 0.0), 3)
            if outcome.get('acquired') and outcome.get('broken'):
                outcome['msg'] = f"{outcome.get('msg', '')} The removed lock's run: {reason} ({verdict(stale)})."
            elif (
                not outcome.get('acquired')
                and not outcome.get('broken')
                and judged.get('fingerprint') != (outcome.get('lock') or {}).get('fingerprint')
            ):
                prefix = 'The lock changed while it was being broken, so it was left alone. '

    if held_by_other(outcome) and 'stale_reason' not in outcome:
        _judge(outcome, args, given_state, here, hints, timeout)
    if prefix:
        outcome['msg'] = prefix + outcome.get('msg', '')
    return outcome


def held_by_other(outcome):
    lock = outcome.get('lock')
    return (
        bool(outcome.get('held'))
        and not outcome.get('acquired')
        and isinstance(lock, dict)
        and bool(lock.get('fingerprint'))
    )


def _judge(outcome, args, state, here, hints, timeout):
    stale, reason = assess_owner(outcome['lock'].get('controller'), here)
    outcome['stale'], outcome['stale_reason'] = stale, reason
    if outcome.get('failed') and state == 'present':
        removed = outcome.get('broken') if outcome.get('changed') else None
        outcome['msg'] = held_message(
            args.get('path', ''),
            outcome['lock'],
            stale=stale,
            reason=reason,
            waited=outcome.get('waited') if timeout > 0 else None,
            removed=removed or None,
            **hints,
        )
    elif stale is not None:
        note = f' The run that holds it is {verdict(stale)} ({reason}).'
        msg = outcome.get('msg', '')
        tail = ' Nothing was changed.'
        outcome['msg'] = msg[: -len(tail)] + note + tail if msg.endswith(tail) else msg + note


def verdict(stale):
    return {True: 'gone', False: 'alive'}.get(stale, 'of unknown state')
