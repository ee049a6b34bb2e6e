# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _retention
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._retention import parse_time, select_backups
from hypothesis import given, settings
from hypothesis import strategies as st


def nightly(first, last, hour=2):
    """One backup a night from ``first`` to ``last`` (ISO dates), ids b-YYYYMMDD."""
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    backups = []
    while day <= end:
        backups.append({'id': f'b-{day:%Y%m%d}', 'time': f'{day.isoformat()}T{hour:02d}:00:05Z'})
        day += timedelta(days=1)
    return backups


def at(*pairs):
    """Backups from (id, time) pairs."""
    return [{'id': backup_id, 'time': time} for backup_id, time in pairs]


# 60 nightly backups. ISO weeks end on Sunday.
@pytest.mark.parametrize(
    'first, last, now, keep',
    [
        # 2026-10-01 .. 2026-11-29 (a Sunday, 2026-W48); only two months hold backups.
        (
            '2026-10-01',
            '2026-11-29',
            '2026-11-29T12:00:00Z',
            [
                'b-20261129',
                'b-20261128',
                'b-20261127',
                'b-20261126',
                'b-20261125',
                'b-20261124',
                'b-20261123',  # daily
                'b-20261122',
                'b-20261115',
                'b-20261108',  # weekly: W47, W46, W45
                'b-20261031',  # monthly: October
            ],
        ),
        # 2026-11-22 .. 2027-01-20 (a Wednesday, 2027-W03), across the turn of the year.
        (
            '2026-11-22',
            '2027-01-20',
            '2027-01-20T12:00:00Z',
            [
                'b-20270120',
                'b-20270119',
                'b-20270118',
                'b-20270117',
                'b-20270116',
                'b-20270115',
                'b-20270114',
                'b-20270110',  # weekly: 2027-W01 (Jan 4..10); Jan 17 (W02) is already daily
                'b-20270103',  # weekly: 2026-W53 (Dec 28 .. Jan 3)
                'b-20261231',
                'b-20261130',  # monthly: December, November
            ],
        ),
    ],
)
def test_sixty_nightly_backups(first, last, now, keep):
    backups = nightly(first, last)
    assert len(backups) == 60
    result = select_backups(backups, 7, 4, 6, now=now)
    assert result['keep'] == keep
    assert result['delete'] == [b['id'] for b in reversed(backups) if b['id'] not in keep]
    assert len(result['delete']) == 49
    assert set(result['reasons']) == set(keep)


def test_reasons_of_sixty_nightly_backups():
    reasons = select_backups(nightly('2026-10-01', '2026-11-29'), 7, 4, 6, now='2026-11-30T00:00:00Z')['reasons']
    assert reasons['b-20261129'] == ['newest', 'daily', 'weekly', 'monthly']
    assert reasons['b-20261128'] == ['daily']
    assert reasons['b-20261122'] == ['weekly']
    assert reasons['b-20261031'] == ['monthly']


def test_input_order_does_not_matter():
    backups = nightly('2026-10-01', '2026-11-29')
    shuffled = (
        backups[::7] + backups[1::7] + backups[2::7] + backups[3::7] + backups[4::7] + backups[5::7] + backups[6::7]
    )
    now = '2026-11-30T00:00:00Z'
    assert select_backups(shuffled, 7, 4, 6, now=now) == select_backups(backups, 7, 4, 6, now=now)


def test_several_backups_a_day_only_the_newest_counts():
    backups = at(
        ('d28-01', '2026-11-28T01:00:00Z'),
        ('d28-23', '2026-11-28T23:00:00Z'),
        ('d28-12', '2026-11-28T12:00:00Z'),
        ('d27-05', '2026-11-27T05:00:00Z'),
        ('d27-22', '2026-11-27T22:00:00Z'),
        ('d26-10', '2026-11-26T10:00:00Z'),
    )
    result = select_backups(backups, 2, 0, 0, now='2026-11-29T00:00:00Z')
    assert result['keep'] == ['d28-23', 'd27-22']
    assert result['delete'] == ['d28-12', 'd28-01', 'd27-05', 'd26-10']
    assert result['reasons'] == {'d28-23': ['newest', 'daily'], 'd27-22': ['daily']}


@pytest.mark.parametrize(
    'daily, weekly, monthly, keep',
    [
        # Days without a backup do not use a daily slot.
        (3, 0, 0, ['nov20', 'nov10', 'nov01']),
        (2, 0, 0, ['nov20', 'nov10']),
        # Weeks and months without a backup do not use a slot either.
        (0, 3, 0, ['nov20', 'nov10', 'nov01']),
        (0, 0, 2, ['nov20', 'aug15']),
        (0, 0, 3, ['nov20', 'aug15', 'jan02']),
    ],
)
def test_gaps_do_not_use_slots(daily, weekly, monthly, keep):
    backups = at(
        ('jan02', '2026-01-02T02:00:00Z'),
        ('aug15', '2026-08-15T02:00:00Z'),
        ('nov01', '2026-11-01T02:00:00Z'),
        ('nov10', '2026-11-10T02:00:00Z'),
        ('nov20', '2026-11-20T02:00:00Z'),
    )
    assert select_backups(backups, daily, weekly, monthly, now='2026-12-01T00:00:00Z')['keep'] == keep


@pytest.mark.parametrize(
    'pairs, counts, keep',
    [
        # Dec 31 and Jan 1 are different days and months.
        ([('dec31', '2026-12-31T23:59:59Z'), ('jan01', '2027-01-01T00:00:00Z')], (2, 0, 0), ['jan01', 'dec31']),
        ([('dec31', '2026-12-31T23:59:59Z'), ('jan01', '2027-01-01T00:00:00Z')], (0, 0, 2), ['jan01', 'dec31']),
        # ... but the same ISO week (2026-W53), so one weekly slot covers both.
        ([('dec31', '2026-12-31T23:59:59Z'), ('jan01', '2027-01-01T00:00:00Z')], (0, 1, 0), ['jan01']),
        # ISO week 53 of 2026 runs Dec 28 .. Jan 3; Jan 4, 2027 opens 2027-W01.
        (
            [('dec31', '2026-12-31T02:00:00Z'), ('jan03', '2027-01-03T02:00:00Z'), ('jan04', '2027-01-04T02:00:00Z')],
            (0, 2, 0),
            ['jan04', 'jan03'],
        ),
        (
            [('dec31', '2026-12-31T02:00:00Z'), ('jan03', '2027-01-03T02:00:00Z'), ('jan04', '2027-01-04T02:00:00Z')],
            (0, 3, 0),
            ['jan04', 'jan03'],
        ),
        # Dec 29, 2025 is in ISO week 1 of 2026, together with Jan 1, 2026.
        (
            [('dec22', '2025-12-22T02:00:00Z'), ('dec29', '2025-12-29T02:00:00Z'), ('jan01', '2026-01-01T02:00:00Z')],
            (0, 2, 0),
            ['jan01', 'dec22'],
        ),
        # ISO week 53 of 2020 (Dec 28, 2020 .. Jan 3, 2021).
        (
            [
                ('w52', '2020-12-27T02:00:00Z'),
                ('w53a', '2020-12-31T02:00:00Z'),
                ('w53b', '2021-01-03T02:00:00Z'),
                ('w01', '2021-01-04T02:00:00Z'),
            ],
            (0, 3, 0),
            ['w01', 'w53b', 'w52'],
        ),
        # Leap year: Feb 29 is the newest of February 2024.
        (
            [('feb28', '2024-02-28T02:00:00Z'), ('feb29', '2024-02-29T02:00:00Z'), ('mar01', '2024-03-01T02:00:00Z')],
            (0, 0, 2),
            ['mar01', 'feb29'],
        ),
        (
            [('feb28', '2024-02-28T02:00:00Z'), ('feb29', '2024-02-29T02:00:00Z'), ('mar01', '2024-03-01T02:00:00Z')],
            (3, 0, 0),
            ['mar01', 'feb29', 'feb28'],
        ),
        # Not a leap year: Feb 28 is the newest of February 2025.
        (
            [('feb27', '2025-02-27T02:00:00Z'), ('feb28', '2025-02-28T02:00:00Z'), ('mar01', '2025-03-01T02:00:00Z')],
            (0, 0, 2),
            ['mar01', 'feb28'],
        ),
        # Days are UTC days: 00:30 at +01:00 on Jan 1 is Dec 31 in UTC.
        ([('dec31', '2026-12-31T10:00:00Z'), ('jan01cet', '2027-01-01T00:30:00+01:00')], (1, 0, 0), ['jan01cet']),
        ([('dec31', '2026-12-31T10:00:00Z'), ('jan01cet', '2027-01-01T00:30:00+01:00')], (0, 0, 2), ['jan01cet']),
    ],
)
def test_calendar_boundaries(pairs, counts, keep):
    result = select_backups(at(*pairs), *counts, now='2030-01-01T00:00:00Z')
    assert result['keep'] == keep
    assert sorted(result['keep'] + result['delete']) == sorted(pair[0] for pair in pairs)


@pytest.mark.parametrize(
    'backups',
    [
        nightly('2026-10-01', '2026-11-29'),
        at(('only', '2026-11-28T02:00:00Z')),
        at(('a', '2026-11-28T02:00:00Z'), ('b', '2025-01-01T02:00:00Z')),
    ],
)
def test_all_counts_zero_keeps_only_the_newest(backups):
    result = select_backups(backups, 0, 0, 0, now='2027-01-01T00:00:00Z')
    newest = max(backups, key=lambda b: b['time'])['id']
    assert result['keep'] == [newest]
    assert result['reasons'] == {newest: ['newest']}
    assert len(result['delete']) == len(backups) - 1


def test_empty_input():
    assert select_backups([], 7, 4, 6) == {'keep': [], 'delete': [], 'reasons': {}}


def test_in_progress_never_deleted_nor_counted():
    backups = nightly('2026-11-20', '2026-11-28') + [
        {'id': 'running', 'time': '2026-11-29T02:00:00Z', 'in_progress': True},
        {'id': 'stale', 'time': '2026-01-01T02:00:00Z', 'in_progress': True},
        {'id': '.tmp-b-20261129', 'time': '2026-11-29T02:00:01Z'},
        {'id': '.tmp-no-time'},
        {'id': 'finished', 'time': '2026-11-19T02:00:00Z', 'in_progress': False},
    ]
    result = select_backups(backups, 2, 0, 0, now='2026-11-29T12:00:00Z')
    # In-progress entries take no slot: the two daily slots go to Nov 28 and Nov 27.
    assert result['keep'] == ['.tmp-no-time', '.tmp-b-20261129', 'running', 'b-20261128', 'b-20261127', 'stale']
    assert result['reasons']['b-20261128'] == ['newest', 'daily']
    assert result['reasons']['running'] == ['in_progress']
    assert result['reasons']['.tmp-no-time'] == ['in_progress']
    assert 'finished' in result['delete']


def test_only_in_progress_backups():
    backups = [{'id': 'running', 'in_progress': True}, {'id': '.tmp1', 'time': '2026-11-28T02:00:00Z'}]
    result = select_backups(backups, 0, 0, 0)
    assert result == {
        'keep': ['running', '.tmp1'],
        'delete': [],
        'reasons': {'running': ['in_progress'], '.tmp1': ['in_progress']},
    }


def test_future_backups_kept_and_not_counted():
    backups = nightly('2026-11-20', '2026-11-28') + at(
        ('skew-1h', '2026-11-28T13:00:00Z'), ('skew-2d', '2026-11-30T02:00:00Z')
    )
    result = select_backups(backups, 1, 0, 0, now='2026-11-28T12:00:00Z')
    assert result['keep'] == ['skew-2d', 'skew-1h', 'b-20261128']
    assert result['reasons'] == {'skew-2d': ['future'], 'skew-1h': ['future'], 'b-20261128': ['newest', 'daily']}
    # A backup exactly at `now` is not in the future.
    assert select_backups(backups, 0, 0, 0, now='2026-11-28T13:00:00Z')['keep'] == ['skew-2d', 'skew-1h']


def test_now_defaults_to_the_current_time():
    soon = datetime.now(UTC) + timedelta(days=1)
    backups = at(('past', '2020-01-01T00:00:00Z')) + [{'id': 'tomorrow', 'time': soon}]
    assert select_backups(backups, 0, 0, 0)['reasons'] == {'tomorrow': ['future'], 'past': ['newest']}


def test_datetimes_and_offsets():
    backups = [
        {'id': 'aware', 'time': datetime(2026, 11, 28, 2, 0, tzinfo=UTC)},
        {'id': 'naive', 'time': datetime(2026, 11, 27, 2, 0)},  # taken as UTC
        {'id': 'offset', 'time': '2026-11-27T01:00:00-05:00'},  # 06:00 UTC, newer than "naive"
    ]
    result = select_backups(backups, 2, 0, 0, now=datetime(2026, 11, 29, tzinfo=UTC))
    assert result['keep'] == ['aware', 'offset']
    assert result['delete'] == ['naive']


def test_equal_times_are_ordered_by_id():
    backups = at(('a', '2026-11-28T02:00:00Z'), ('c', '2026-11-28T02:00:00Z'), ('b', '2026-11-28T02:00:00Z'))
    result = select_backups(backups, 0, 0, 0, now='2027-01-01T00:00:00Z')
    assert result == {'keep': ['c'], 'delete': ['b', 'a'], 'reasons': {'c': ['newest']}}


@pytest.mark.parametrize(
    'text, expected',
    [
        ('2026-11-28T02:00:05Z', datetime(2026, 11, 28, 2, 0, 5, tzinfo=UTC)),
        ('2026-11-28t02:00:05z', datetime(2026, 11, 28, 2, 0, 5, tzinfo=UTC)),
        ('2026-11-28 02:00', datetime(2026, 11, 28, 2, 0, tzinfo=UTC)),
        ('2026-11-28T02:00:05.5Z', datetime(2026, 11, 28, 2, 0, 5, 500000, tzinfo=UTC)),
        ('2026-11-28T02:00:05.123456789Z', datetime(2026, 11, 28, 2, 0, 5, 123456, tzinfo=UTC)),
        ('2026-11-28T02:00:05+00:00', datetime(2026, 11, 28, 2, 0, 5, tzinfo=UTC)),
        ('2026-11-28T02:00:05+0530', datetime(2026, 11, 27, 20, 30, 5, tzinfo=UTC)),
        ('2026-11-28T02:00:05-02', datetime(2026, 11, 28, 4, 0, 5, tzinfo=UTC)),
        ('2026-11-28T02:00:05', datetime(2026, 11, 28, 2, 0, 5, tzinfo=UTC)),
    ],
)
def test_parse_time(text, expected):
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


GOOD = {'id': 'good', 'time': '2026-11-28T02:00:00Z'}
NOW_NOV = '2026-11-28T20:00:00Z'


@pytest.mark.parametrize(
    'backups, counts, message',
    [
        ('b-1', (7, 4, 6), 'backups must be a list of dicts, got str'),
        ({'id': 'x'}, (7, 4, 6), 'backups must be a list of dicts, got dict'),
        (None, (7, 4, 6), 'backups must be a list of dicts, got NoneType'),
        (['b-1'], (7, 4, 6), r'backup #0 must be a dict with "id" and "time", got str'),
        ([GOOD, {'time': '2026-11-28T02:00:00Z'}], (7, 4, 6), r'backup #1 has no "id" \(a non-empty string'),
        ([{'id': '', 'time': '2026-11-28T02:00:00Z'}], (7, 4, 6), r'backup #0 has no "id"'),
        ([{'id': 5, 'time': '2026-11-28T02:00:00Z'}], (7, 4, 6), r'backup #0 has no "id" .*got 5'),
        ([GOOD, GOOD], (7, 4, 6), "duplicate backup id 'good'; ids must be unique"),
        ([{'id': 'x'}], (7, 4, 6), "backup 'x' has no \"time\""),
        (
            [{'id': 'x', 'time': 'yesterday'}],
            (7, 4, 6),
            "backup 'x': time 'yesterday' is not an ISO 8601 date and time such as 2026-11-28T02:00:05Z",
        ),
        ([{'id': 'x', 'time': '2026-11-28'}], (7, 4, 6), "backup 'x': time '2026-11-28' is not an ISO 8601"),
        (
            [{'id': 'x', 'time': '2025-02-29T02:00:00Z'}],
            (7, 4, 6),
            "backup 'x': time '2025-02-29T02:00:00Z' is not a valid date and time: day is out of range",
        ),
        ([{'id': 'x', 'time': '2026-11-28T25:00:00Z'}], (7, 4, 6), 'is not a valid date and time: hour must be'),
        ([{'id': 'x', 'time': '2026-11-28T02:00:00+24:00'}], (7, 4, 6), "has an invalid UTC offset '\\+24:00'"),
        (
            [{'id': 'x', 'time': 1764295205}],
            (7, 4, 6),
            "backup 'x': time must be an ISO 8601 string or a datetime, got int",
        ),
        ([{'id': '.tmp-x', 'time': 'soon'}], (7, 4, 6), r"backup '\.tmp-x': time 'soon' is not an ISO 8601"),
        (
            [{'id': 'x', 'time': '2026-11-28T02:00:00Z', 'in_progress': 'yes'}],
            (7, 4, 6),
            "backup 'x': \"in_progress\" must be a boolean, got 'yes'",
        ),
        ([GOOD], (-1, 4, 6), 'daily must be a non-negative integer, got -1'),
        ([GOOD], (7, -4, 6), 'weekly must be a non-negative integer, got -4'),
        ([GOOD], (7, 4, -6), 'monthly must be a non-negative integer, got -6'),
        ([GOOD], (7.5, 4, 6), 'daily must be a non-negative integer, got 7.5'),
        ([GOOD], ('7', 4, 6), "daily must be a non-negative integer, got '7'"),
        ([GOOD], (7, True, 6), 'weekly must be a non-negative integer, got True'),
        ([GOOD], (7, 4, None), 'monthly must be a non-negative integer, got None'),
        ([dict(GOOD, kind=3)], (7, 4, 6), "backup 'good': \"kind\" must be a string, got 3"),
        ([dict(GOOD, verified='ok')], (7, 4, 6), "backup 'good': \"verified\" must be a boolean, got 'ok'"),
    ],
)
def test_invalid_input(backups, counts, message):
    with pytest.raises(ValueError, match=message):
        select_backups(backups, *counts, now='2027-01-01T00:00:00Z')


def test_invalid_other():
    with pytest.raises(ValueError, match='other must be a non-negative integer, got -1'):
        select_backups([GOOD], 7, 4, 6, now='2027-01-01T00:00:00Z', other=-1)


def test_invalid_now():
    with pytest.raises(ValueError, match="now 'later' is not an ISO 8601 date and time"):
        select_backups([GOOD], 7, 4, 6, now='later')


def test_reason_names_are_public():
    assert [
        _retention.REASON_NEWEST,
        _retention.REASON_DAILY,
        _retention.REASON_WEEKLY,
        _retention.REASON_MONTHLY,
        _retention.REASON_IN_PROGRESS,
        _retention.REASON_FUTURE,
        _retention.REASON_KIND,
        _retention.REASON_VERIFIED,
    ] == ['newest', 'daily', 'weekly', 'monthly', 'in_progress', 'future', 'kind', 'verified']


def kinds(*triples):
    """Backups from (id, time, kind) triples, verified when the id ends in 'v'."""
    return [{'id': i, 'time': t, 'kind': k, 'verified': i.endswith('v')} for i, t, k in triples]


# Nightly backups on Nov 26-28 and pre-deploy / safety backups later on Nov 27 and 28.
MIXED = kinds(
    ('n26', '2026-11-26T02:00:00Z', 'scheduled'),
    ('n27', '2026-11-27T02:00:00Z', 'scheduled'),
    ('p27a', '2026-11-27T10:00:00Z', 'pre-deploy'),
    ('p27b', '2026-11-27T15:00:00Z', 'pre-deploy'),
    ('n28', '2026-11-28T02:00:00Z', ''),  # an empty kind is a scheduled backup
    ('s28', '2026-11-28T09:00:00Z', 'safety'),
    ('p28', '2026-11-28T12:00:00Z', 'pre-deploy'),
)


@pytest.mark.parametrize(
    'other, keep',
    [
        # Kinds not told apart: the pre-deploy backups take the days' slots from the nightly ones.
        (None, ['p28', 'p27b']),
        # Their own retention: the nightly backups keep their days, the newest N of each other kind stay.
        (0, ['p28', 'n28', 'n27']),
        (1, ['p28', 's28', 'n28', 'n27']),
        (2, ['p28', 's28', 'n28', 'p27b', 'n27']),
    ],
)
def test_other_kinds_have_their_own_retention(other, keep):
    assert select_backups(MIXED, 2, 0, 0, now=NOW_NOV, other=other)['keep'] == keep


def test_other_kinds_reasons():
    result = select_backups(MIXED, 2, 0, 0, now=NOW_NOV, other=1)
    assert result['reasons'] == {
        'p28': ['newest', 'kind'],
        's28': ['kind'],
        'n28': ['daily'],
        'n27': ['daily'],
    }


@pytest.mark.parametrize('other', [None, 0, 2])
def test_the_newest_verified_backup_is_never_deleted(other):
    backups = [dict(b, verified=b['id'] == 'n26') for b in MIXED]
    result = select_backups(backups, 1, 0, 0, now=NOW_NOV, other=other)
    assert 'n26' in result['keep']
    assert result['reasons']['n26'] == ['verified']
    # Only the newest verified one: an older verified backup goes as before.
    older = [dict(b, verified=b['id'] in ('n26', 'n27')) for b in MIXED]
    result = select_backups(older, 1, 0, 0, now=NOW_NOV, other=other)
    assert 'n26' in result['delete']
    assert 'verified' in result['reasons']['n27']


def test_a_verified_future_or_in_progress_backup_is_not_the_newest_verified():
    backups = [
        {'id': 'n26', 'time': '2026-11-26T02:00:00Z', 'verified': True},
        {'id': 'n27', 'time': '2026-11-27T02:00:00Z'},
        {'id': 'future', 'time': '2026-12-30T02:00:00Z', 'verified': True},
        {'id': '.tmp-x', 'verified': True},
    ]
    result = select_backups(backups, 1, 0, 0, now=NOW_NOV)
    assert result['reasons']['n26'] == ['verified']


NOW = datetime(2027, 1, 1, tzinfo=UTC)
BACKUP = st.fixed_dictionaries(
    {'time': st.datetimes(min_value=datetime(2024, 12, 1), max_value=datetime(2027, 1, 10), timezones=st.just(UTC))},
    optional={'in_progress': st.booleans()},
)
BACKUPS = st.lists(BACKUP, max_size=60).map(
    lambda items: [dict(item, id=f'{".tmp" if index % 11 == 10 else "b"}-{index}') for index, item in enumerate(items)]
)
COUNT = st.integers(min_value=0, max_value=12)


@settings(max_examples=300, deadline=None)
@given(backups=BACKUPS, daily=COUNT, weekly=COUNT, monthly=COUNT)
def test_properties(backups, daily, weekly, monthly):
    result = select_backups(backups, daily, weekly, monthly, now=NOW)
    keep, delete = result['keep'], result['delete']
    ids = [b['id'] for b in backups]
    # keep and delete partition the input.
    assert sorted(keep + delete) == sorted(ids)
    assert not set(keep) & set(delete)
    assert list(result['reasons']) == keep
    assert all(result['reasons'][backup_id] for backup_id in keep)

    held = {b['id'] for b in backups if b.get('in_progress') or b['id'].startswith('.tmp')}
    future = {b['id'] for b in backups if b['id'] not in held and b['time'] > NOW}
    counted = [b for b in backups if b['id'] not in held | future]
    assert held | future <= set(keep)
    if counted:
        newest = max(counted, key=lambda b: (b['time'], b['id']))['id']
        assert newest in keep
        assert result['reasons'][newest][0] == 'newest'
    assert len(keep) <= 1 + daily + weekly + monthly + len(held) + len(future)

    # Raising a count never deletes what a lower count kept.
    more = select_backups(backups, daily + 1, weekly + 1, monthly + 1, now=NOW)
    assert set(keep) <= set(more['keep'])
