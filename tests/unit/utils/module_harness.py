# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a module's ``main()`` in-process with exit_json / fail_json patched to raise.

The shared harness of the module unit tests (as community.general's tests do):
``patch_exits(monkeypatch)`` makes ``AnsibleModule.exit_json`` raise
``ExitJson`` and ``fail_json`` raise ``FailJson`` with the result dict, and
``run_module(module, args, expect)`` runs ``module.main()`` with ``args`` and
returns that dict.  Nothing is added to the result: a module that does not pass
``changed`` shows no ``changed``.
"""

from __future__ import annotations

import contextlib
import importlib
import json

import pytest
import yaml
from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args=None):
        args = dict(args or {})
        args.setdefault("_ansible_remote_tmp", "/tmp")
        args.setdefault("_ansible_keep_remote_files", False)
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        with mock.patch.object(basic, "_ANSIBLE_ARGS", payload):
            yield


__all__ = [
    "ExitJson",
    "FailJson",
    "assert_documented_options",
    "assert_documented_returns",
    "module_kwargs",
    "patch_exits",
    "patch_module_args",
    "run_module",
]


class ExitJson(Exception):
    """Raised by the patched exit_json; ``args[0]`` is the result."""


class FailJson(Exception):
    """Raised by the patched fail_json; ``args[0]`` is the result with ``failed`` and ``msg``."""


def _exit_json(self, **kwargs):
    raise ExitJson(kwargs)


def _fail_json(self, msg='', **kwargs):
    kwargs.update(failed=True, msg=msg)
    raise FailJson(kwargs)


def patch_exits(monkeypatch):
    """Make AnsibleModule.exit_json / fail_json raise ExitJson / FailJson for this test."""
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)


def run_module(module, args, expect=ExitJson):
    """Run ``module.main()`` with ``args``; it must end in ``expect``; return the result dict."""
    with patch_module_args(args), pytest.raises(expect) as excinfo:
        module.main()
    return excinfo.value.args[0]


def module_kwargs(monkeypatch, module):
    """The keyword arguments ``module.main()`` builds its AnsibleModule with (argument_spec, ...)."""
    captured = {}

    class Capture(Exception):
        pass

    def fake_module(**kwargs):
        captured.update(kwargs)
        raise Capture()

    # The modules whose options nest secrets build a SecretSafeModule (an AnsibleModule that logs no secret).
    name = 'SecretSafeModule' if hasattr(module, 'SecretSafeModule') else 'AnsibleModule'
    monkeypatch.setattr(module, name, fake_module)
    with pytest.raises(Capture):
        module.main()
    return captured


def documentation(module):
    """The module's DOCUMENTATION with the options of its ``avatar_mgmt.ops`` doc fragments merged in."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    for name in doc.get('extends_documentation_fragment', []):
        fragment = importlib.import_module(
            'ansible_collections.avatar_mgmt.ops.plugins.doc_fragments.' + name.rsplit('.', 1)[-1]
        )
        options = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)['options']
        doc['options'] = dict(options, **doc.get('options', {}))
    return doc


def assert_documented_options(module, spec, keys=('default', 'required', 'choices', 'elements')):
    """DOCUMENTATION's options (with those of its fragments) are the argument spec's, with the same type and
    ``keys``; return the doc."""
    doc = documentation(module)
    assert set(doc['options']) == set(spec)
    for name, option in doc['options'].items():
        assert option['type'] == spec[name]['type'], name
        for key in keys:
            missing = False if key == 'required' else None
            assert option.get(key, missing) == spec[name].get(key, missing), (name, key)
    return doc


def assert_documented_returns(module):
    """Every RETURN entry has description, returned, type and sample, and EXAMPLES parses; return RETURN."""
    returned = yaml.safe_load(module.RETURN)
    for key, entry in returned.items():
        assert {'description', 'returned', 'type', 'sample'} <= set(entry), key
    yaml.safe_load(module.EXAMPLES)
    return returned
