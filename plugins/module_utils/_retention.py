# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Grandfather-father-son retention of backups: which to keep, which to delete.

Pure logic, Python 3.9+ standard library only.  Nothing here imports from
AnsibleModule; every bad input raises ValueError.  See ``select_backups()`` for
the rules.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

__all__ = [
    'REASON_DAILY',
    'REASON_FUTURE',
    'REASON_IN_PROGRESS',
    'REASON_KIND',
    'REASON_MONTHLY',
    'REASON_NEWEST',
    'REASON_VERIFIED',
    'REASON_WEEKLY',
    'SCHEDULED',
    'parse_time',
    'select_backups',
]

REASON_NEWEST = 'newest'
REASON_DAILY = 'daily'
REASON_WEEKLY = 'weekly'
REASON_MONTHLY = 'monthly'
REASON_IN_PROGRESS = 'in_progress'
REASON_FUTURE = 'future'
REASON_KIND = 'kind'
REASON_VERIFIED = 'verified'

# The kind of a backup taken on schedule (the manifest's "kind"); pre-deploy and safety
# backups are the other kinds.
SCHEDULED = 'scheduled'

TMP_PREFIX = '.tmp'

# ISO 8601 extended date and time: 2026-11-28T02:00:05Z, 2026-11-28T02:00:05.123+01:00,
# 2026-11-28 02:00. Parsed by hand because datetime.fromisoformat() of Python 3.9
# and 3.10 rejects "Z" and fractions that are not 3 or 6 digits long.
_ISO_RE = re.compile(
    r'(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})'
    r'[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})'
    r'(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?'
    r'(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?'
)


def parse_time(value, what='time'):
    """A timezone-aware UTC datetime from an ISO 8601 string or a datetime.

    A string or datetime without an offset is taken as UTC.  Raises ValueError.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        match = _ISO_RE.fullmatch(value.strip())
        if not match:
            raise ValueError(f'{what} {value!r} is not an ISO 8601 date and time such as 2026-11-28T02:00:05Z')
        fields = match.groupdict()
        fraction = (fields['fraction'] or '0')[:6].ljust(6, '0')
        tz = fields['tz']
        if tz is None or tz in ('Z', 'z'):
            tzinfo = timezone.utc
        else:
            digits = tz[1:].replace(':', '')
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
            if offset >= timedelta(hours=24):
                raise ValueError(f'{what} {value!r} has an invalid UTC offset {tz!r}')
            tzinfo = timezone(-offset if tz[0] == '-' else offset)
        try:
            moment = datetime(
                int(fields['year']),
                int(fields['month']),
                int(fields['day']),
                int(fields['hour']),
                int(fields['minute']),
                int(fields['second'] or 0),
                int(fraction),
                tzinfo=tzinfo,
            )
        except ValueError as exc:
            raise ValueError(f'{what} {value!r} is not a valid date and time: {exc}') from None
    else:
        raise ValueError(f'{what} must be an ISO 8601 string or a datetime, got {type(value).__name__}')
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _count(value, name):
    if isinstance(value, bool):
        raise ValueError(f'{name} must be a non-negative integer, got {value!r}')
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f'{name} must be a non-negative integer, got {value!r}') from None
    if number < 0:
        raise ValueError(f'{name} must be a non-negative integer, got {number}')
    return number


def _entries(backups):
    """Validated ``(id, time or None, held, kind, verified)`` tuples; ``held`` marks in-progress entries."""
    if isinstance(backups, (str, bytes, Mapping)) or not hasattr(backups, '__iter__'):
        raise ValueError(f'backups must be a list of dicts, got {type(backups).__name__}')
    entries = []
    seen = set()
    for index, backup in enumerate(backups):
        where = f'backup #{index}'
        if not isinstance(backup, Mapping):
            raise ValueError(f'{where} must be a dict with "id" and "time", got {type(backup).__name__}')
        backup_id = backup.get('id')
        if not isinstance(backup_id, str) or not backup_id:
            raise ValueError(f'{where} has no "id" (a non-empty string is required), got {backup_id!r}')
        where = f'backup {backup_id!r}'
        if backup_id in seen:
            raise ValueError(f'duplicate backup id {backup_id!r}; ids must be unique')
        seen.add(backup_id)
        in_progress = backup.get('in_progress', False)
        if in_progress is None:
            in_progress = False
        if not isinstance(in_progress, bool):
            raise ValueError(f'{where}: "in_progress" must be a boolean, got {in_progress!r}')
        held = in_progress or backup_id.startswith(TMP_PREFIX)
        raw_time = backup.get('time')
        if raw_time is None:
            if not held:
                raise ValueError(f'{where} has no "time"')
            moment = None
        else:
            moment = parse_time(raw_time, what=f'{where}: time')
        kind = backup.get('kind') or SCHEDULED
        if not isinstance(kind, str):
            raise ValueError(f'{where}: "kind" must be a string, got {kind!r}')
        verified = backup.get('verified', False)
        if not isinstance(verified, bool):
            raise ValueError(f'{where}: "verified" must be a boolean, got {verified!r}')
        entries.append((backup_id, moment, held, kind, verified))
    return entries


def select_backups(backups, daily, weekly, monthly, now=None, other=None):
    """Split backups into those to keep and those to delete, grandfather-father-son.

    ``backups`` is a list of dicts, each with at least ``id`` (a non-empty,
    unique string) and ``time`` (an ISO 8601 string such as
    ``2026-11-28T02:00:05Z``, or a datetime; without an offset it is UTC).
    Optional keys: ``kind`` (a string, the manifest's kind; missing or empty
    means ``scheduled``) and ``verified`` (a boolean, default false: the
    backup passed its restore verification).  Other keys are ignored.
    ``now`` (a datetime or ISO 8601 string) defaults to the current time.
    ``other`` (a non-negative integer, or None) gives backups of other kinds
    than ``scheduled`` their own retention, see rule 8.

    Rules:

    1. Backups are ordered by time, newest first (equal times: by id, the
       greater id first, so the result is deterministic).
    2. In-progress backups, those with ``in_progress: true`` or whose id
       starts with ``.tmp``, are never deleted and never counted by any rule.
       They need no ``time``.  Reason ``in_progress``.
    3. Backups whose time is later than ``now`` (clock skew) are kept and not
       counted.  Reason ``future``.
    4. Of the remaining (counted) backups, the newest is always kept, even
       when all counts are 0.  Reason ``newest``.
    5. ``daily=N`` keeps the newest backup of each of the N most recent
       calendar days (UTC) that have a backup.  Days without a backup do not
       use up a slot, and when a day has several backups only its newest
       counts for that day.  Reason ``daily``.
    6. ``weekly=N`` does the same per ISO 8601 week (ISO year and week
       number, so 2026-W53 and 2027-W01 are distinct weeks and Dec 31 may
       fall in week 1 of the next year).  Reason ``weekly``.
    7. ``monthly=N`` does the same per calendar month (UTC).  Reason
       ``monthly``.
    8. With ``other=None`` every counted backup takes part in rules 5 to 7,
       whatever its kind.  With ``other=N``, rules 5 to 7 count only the
       scheduled backups (a pre-deploy or safety backup does not displace
       the nightly backup of its day), and of each other kind the newest N
       are kept.  Reason ``kind``.
    9. The newest counted backup with ``verified: true`` is always kept.
       Reason ``verified``.
    10. A backup kept by any rule is kept; every other backup is deleted.

    Buckets count back from the newest backup, not from ``now``: when backups
    stop, the old ones are not aged out.

    Returns ``{'keep': [ids], 'delete': [ids], 'reasons': {id: [reasons]}}``.
    ``keep`` and ``delete`` partition the input ids and are ordered newest
    first (in-progress backups without a time first).  ``reasons`` has an
    entry for each kept id, reasons in the order newest, daily, weekly,
    monthly, kind, verified, in_progress, future.

    Raises ValueError for a bad input: not a list, an entry that is not a
    dict, a missing or duplicate id, a missing or invalid time, a non-boolean
    ``in_progress`` or ``verified``, a ``kind`` that is not a string, a
    negative or non-integer count, an invalid ``now``.
    """
    counts = {
        REASON_DAILY: _count(daily, 'daily'),
        REASON_WEEKLY: _count(weekly, 'weekly'),
        REASON_MONTHLY: _count(monthly, 'monthly'),
    }
    if other is not None:
        other = _count(other, 'other')
    now = datetime.now(timezone.utc) if now is None else parse_time(now, what='now')
    entries = _entries(backups)

    # Newest first; entries without a time (in progress) before all others.
    entries.sort(key=lambda entry: (entry[1] is None, entry[1] or now, entry[0]), reverse=True)

    reasons = {}
    counted = []
    for backup_id, moment, held, kind, verified in entries:
        if held:
            reasons[backup_id] = [REASON_IN_PROGRESS]
        elif moment > now:
            reasons[backup_id] = [REASON_FUTURE]
        else:
            counted.append((backup_id, moment, kind, verified))

    bucket_of = {
        REASON_DAILY: lambda moment: moment.date(),
        REASON_WEEKLY: lambda moment: moment.isocalendar()[:2],
        REASON_MONTHLY: lambda moment: (moment.year, moment.month),
    }
    kept = {}
    if counted:
        kept[counted[0][0]] = [REASON_NEWEST]
    pool = counted if other is None else [entry for entry in counted if entry[2] == SCHEDULED]
    for reason in (REASON_DAILY, REASON_WEEKLY, REASON_MONTHLY):
        limit = counts[reason]
        buckets = set()
        for backup_id, moment, _kind, _verified in pool:
            if len(buckets) >= limit:
                break
            bucket = bucket_of[reason](moment)
            if bucket not in buckets:
                buckets.add(bucket)
                kept.setdefault(backup_id, []).append(reason)
    if other is not None:
        per_kind = {}
        for backup_id, _moment, kind, _verified in counted:
            if kind != SCHEDULED and per_kind.get(kind, 0) < other:
                per_kind[kind] = per_kind.get(kind, 0) + 1
                kept.setdefault(backup_id, []).append(REASON_KIND)
    for backup_id, _moment, _kind, verified in counted:
        if verified:
            kept.setdefault(backup_id, []).append(REASON_VERIFIED)
            break
    reasons.update(kept)

    keep = [entry[0] for entry in entries if entry[0] in reasons]
    delete = [entry[0] for entry in entries if entry[0] not in reasons]
    return {'keep': keep, 'delete': delete, 'reasons': {backup_id: reasons[backup_id] for backup_id in keep}}
