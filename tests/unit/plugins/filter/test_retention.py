# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pathlib
from datetime import date, timedelta

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.filter import retention as backup
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._retention import select_backups

FILTERS = backup.FilterModule().filters()
NOW = '2026-11-30T00:00:00Z'


def nightly(days, last='2026-11-29'):
    end = date.fromisoformat(last)
    return [
        {'id': f'b-{end - timedelta(days=n):%Y%m%d}', 'time': f'{end - timedelta(days=n)}T02:00:00Z'}
        for n in range(days)
    ]


def test_filters_are_registered():
    assert sorted(FILTERS) == ['backup_retention']


def test_defaults_are_7_4_6():
    backups = nightly(200)
    assert FILTERS['backup_retention'](backups, now=NOW) == select_backups(backups, 7, 4, 6, now=NOW)
    assert len(FILTERS['backup_retention'](backups, now=NOW)['keep']) == 7 + 3 + 5


@pytest.mark.parametrize(
    'args, kwargs, keep',
    [
        ((1, 0, 0), {}, ['b-20261129']),
        ((2,), {'weekly': 0, 'monthly': 0}, ['b-20261129', 'b-20261128']),
        ((), {'daily': 0, 'weekly': 0, 'monthly': 2}, ['b-20261129', 'b-20261031']),
        # Extra vars (-e daily=3) arrive as strings.
        (('3', ' 0 ', '0'), {}, ['b-20261129', 'b-20261128', 'b-20261127']),
        # other: the kinds apart (all these are scheduled: nothing changes), also given as a string.
        ((1, 0, 0), {'other': '2'}, ['b-20261129']),
    ],
)
def test_counts(args, kwargs, keep):
    assert FILTERS['backup_retention'](nightly(60), *args, now=NOW, **kwargs)['keep'] == keep


def test_other_kinds_keep_their_own_slots():
    backups = nightly(3) + [{'id': 'p', 'time': '2026-11-29T12:00:00Z', 'kind': 'pre-deploy'}]
    # Kinds not told apart: the pre-deploy backup takes Nov 29's slot from the nightly one.
    assert FILTERS['backup_retention'](backups, 2, 0, 0, now=NOW)['keep'] == ['p', 'b-20261128']
    assert FILTERS['backup_retention'](backups, 2, 0, 0, now=NOW, other=0)['keep'] == ['p', 'b-20261129', 'b-20261128']
    assert FILTERS['backup_retention'](backups, 1, 0, 0, now=NOW)['keep'] == ['p']


def test_return_shape():
    result = FILTERS['backup_retention'](nightly(3), 1, 0, 0, now=NOW)
    assert result == {
        'keep': ['b-20261129'],
        'delete': ['b-20261128', 'b-20261127'],
        'reasons': {'b-20261129': ['newest', 'daily']},
    }


@pytest.mark.parametrize(
    'backups, kwargs, fragment',
    [
        ('b-1', {}, 'backups must be a list of dicts'),
        ([{'id': 'x', 'time': 'yesterday'}], {}, "backup 'x': time 'yesterday' is not an ISO 8601"),
        ([{'time': '2026-11-28T02:00:00Z'}], {}, r'backup #0 has no "id"'),
        (nightly(2) + nightly(1), {}, "duplicate backup id 'b-20261129'"),
        (nightly(2), {'daily': -1}, 'daily must be a non-negative integer, got -1'),
        (nightly(2), {'weekly': '-1'}, "weekly must be a non-negative integer, got '-1'"),
        (nightly(2), {'monthly': 'six'}, "monthly must be a non-negative integer, got 'six'"),
        (nightly(2), {'monthly': '\u00b2'}, 'monthly must be a non-negative integer'),
        (nightly(2), {'now': 'later'}, "now 'later' is not an ISO 8601"),
        (nightly(2), {'other': 'some'}, "other must be a non-negative integer, got 'some'"),
    ],
)
def test_errors_name_the_filter(backups, kwargs, fragment):
    with pytest.raises(AnsibleFilterError, match='^backup_retention: ' + fragment):
        FILTERS['backup_retention'](backups, **kwargs)


def test_sidecar_documentation():
    path = pathlib.Path(backup.__file__).with_name('backup_retention.yml')
    doc = yaml.safe_load(path.read_text())
    assert doc['DOCUMENTATION']['name'] == 'backup_retention'
    options = doc['DOCUMENTATION']['options']
    assert {name: options[name].get('default') for name in ('daily', 'weekly', 'monthly')} == {
        'daily': 7,
        'weekly': 4,
        'monthly': 6,
    }
    assert '_input' in options
    assert set(doc['RETURN']['_value']['contains']) == {'keep', 'delete', 'reasons'}
    assert yaml.safe_load(doc['EXAMPLES'])
