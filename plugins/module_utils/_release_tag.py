# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What avatar_mgmt.ops.release_tag does, for its module and its action plugin.

The action plugin runs it in the controller's worker process (release_tag always runs on the
control node: no module payload, no new Python); the module runs it where it is sent.
``resolve(params)`` takes the validated options and returns the task result (``failed`` and
``msg`` on failure); it never raises for a registry or input problem.
"""

from __future__ import annotations

import sys

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci import RegistryClient, RegistryError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._release import (
    PrereleaseRefused,
    ResolutionError,
    resolve_release,
    validate_inputs,
)

ARGUMENT_SPEC = {
    'registry': {'type': 'str', 'default': 'ghcr.io'},
    'endpoint': {'type': 'str'},
    'repository': {'type': 'str', 'default': 'rayhu/avatar-mgmt'},
    'images': {'type': 'list', 'elements': 'str', 'default': ['api', 'frontend']},
    'tag': {'type': 'str', 'required': True},
    'username': {'type': 'str'},
    'password': {'type': 'str', 'no_log': True},
    'ca_path': {'type': 'path'},
    'validate_certs': {'type': 'bool', 'default': True},
    'timeout': {'type': 'int', 'default': 30},
    'allow_prerelease': {'type': 'bool', 'default': True},
}
REQUIRED_TOGETHER = [['username', 'password']]


def _failed(msg, password, **extra):
    # The registry's answers never carry the password; a message is masked all the same.
    if password:
        msg = msg.replace(password, '********')
    return dict(failed=True, changed=False, msg=msg, **extra)


def resolve(params):
    """The task result of release_tag for validated ``params``."""
    password = params.get('password')
    if not HAS_REQUESTS:
        return _failed(
            f'The Python library requests is missing from {sys.executable}, where release_tag runs (on the control '
            'node, the Python that runs Ansible): install the collection\'s requirements.txt into it (pip install -r '
            'requirements.txt, or pipx inject ansible-core requests), or python3-requests on a managed host. Nothing '
            'was requested from the registry.',
            password,
            exception=REQUESTS_IMPORT_ERROR,
        )
    # Everything is validated before any network request.
    try:
        validate_inputs(params['repository'], params['images'], params['tag'])
        if params['timeout'] < 1:
            raise ValueError(f"timeout must be at least 1 second, got {params['timeout']}")
        client = RegistryClient(
            registry=params['registry'],
            endpoint=params['endpoint'] or None,
            username=params['username'],
            password=password,
            ca_path=params['ca_path'],
            validate_certs=params['validate_certs'],
            timeout=params['timeout'],
        )
    except (ValueError, RegistryError) as exc:
        return _failed(str(exc), password)
    try:
        result = resolve_release(
            client, params['repository'], params['images'], params['tag'], allow_prerelease=params['allow_prerelease']
        )
    except PrereleaseRefused as exc:
        return _failed(str(exc), password, refused_prerelease=exc.version)
    except (ValueError, ResolutionError, RegistryError) as exc:
        return _failed(str(exc), password)
    finally:
        client.close()
    return dict(changed=False, **result)
