# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the module tests of npm_proxy_host and npm_forward share: the admin, the options, the documentation check."""

from __future__ import annotations

import json

import yaml
from ansible_collections.avatar_mgmt.ops.plugins.doc_fragments import npm as npm_fragment
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness

ADMIN = 'admin@example.com'
NO_LOG_OPTIONS = ('password', 'certificate_key')


def module_args(server, password, **kw):
    """The connection options for ``server`` (a FakeNPM) as ``ADMIN``, then ``kw``."""
    return {'url': server.url, 'username': ADMIN, 'password': password, **kw}


def _assert_suboptions(options, spec, where):
    assert set(options) == set(spec), where
    for name, option in options.items():
        entry = spec[name]
        assert option['type'] == entry['type'], (where, name)
        for key in ('default', 'choices', 'elements'):
            assert option.get(key) == entry.get(key), (where, name, key)
        assert option.get('required', False) == entry.get('required', False), (where, name)
        # An env file's content holds secrets wherever env files are taken (compose_switch's write); a lock's token
        # (compose_switch's record.release_lock) is what removes the lock.
        secret = (
            name in NO_LOG_OPTIONS
            or (name == 'content' and where.endswith('.env_files'))
            or (name == 'token' and where.endswith('.release_lock'))
        )
        assert bool(entry.get('no_log')) == secret, (where, name)
        if 'options' in entry or 'suboptions' in option:
            _assert_suboptions(option['suboptions'], entry['options'], f'{where}.{name}')


def assert_documentation(monkeypatch, module):
    """DOCUMENTATION (with the ``avatar_mgmt.ops.npm`` fragment) matches the argument spec, suboptions and no_log
    included, and RETURN is complete; return the keyword arguments of the module's AnsibleModule."""
    kwargs = module_harness.module_kwargs(monkeypatch, module)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc['extends_documentation_fragment'] == ['avatar_mgmt.ops.npm']
    doc['options'].update(yaml.safe_load(npm_fragment.ModuleDocFragment.DOCUMENTATION)['options'])
    _assert_suboptions(doc['options'], kwargs['argument_spec'], 'options')
    assert kwargs['supports_check_mode'] is True
    module_harness.assert_documented_returns(module)
    return kwargs


def assert_no_secret(server, secrets, *results):
    """No secret and none of the fake's tokens appears anywhere in ``results`` (results, failures, diffs)."""
    text = json.dumps(results, default=str)
    for secret in [*secrets, *server.tokens]:
        assert secret not in text
