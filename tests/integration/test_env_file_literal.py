# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Secrets reach a container byte for byte through the env file that compose_deploy writes.

``roles/compose_deploy/templates/env.j2`` is rendered by ``ansible.builtin.template`` (as the role
does, values read from a vars file with ``!unsafe`` as a vault value is written before it is encrypted), then a real
``docker compose up`` starts a container with that ``env_file``, and the environment the engine
gave the container (``docker inspect``, and ``env -0`` inside it) is compared byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.tests.integration.utils import docker_registry

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), '..', '..'))
IMAGE = docker_registry.BASE_IMAGE

VALUES = {
    'JWT_SECRET': 'Kx$Abc123#tail \'q\' "dq" sp',
    'BACKSLASH': 'back\\slash \\n \\" \\$ end\\',
    'DOLLARS': '${HOME} $HOME $$ $ $(id) `id`',
    'TEMPLATE': '{{ lookup("env", "HOME") }} {% raw %} {# c #}',
    'SPACES': '  lead and trail  ',
    'TAB': 'tab\there',
    'EMPTY': '',
    'HASH': 'a=b # not a comment',
    'UNICODE': 'üñí€ 中文',
    'QUOTE_ONLY': '"',
    'SINGLE': "'",
}


def _unsafe_vars(values):
    """A vars file as vault values are written before encryption: each tagged !unsafe (JSON strings are YAML)."""
    lines = ['---', 'env_under_test:']
    lines += [f'  {key}: !unsafe {json.dumps(value)}' for key, value in values.items()]
    return '\n'.join(lines) + '\n'


def _render(tmp_path, values):
    (tmp_path / 'vars.yml').write_text(_unsafe_vars(values))
    playbook = [
        {
            'name': 'Render env.j2',
            'hosts': 'localhost',
            'gather_facts': False,
            'vars_files': [str(tmp_path / 'vars.yml')],
            'tasks': [
                {
                    'name': 'Write the env file',
                    'ansible.builtin.template': {
                        'src': os.path.join(ROOT, 'roles/compose_deploy/templates/env.j2'),
                        'dest': str(tmp_path / 'app.env'),
                        'mode': '0600',
                    },
                    'vars': {'__compose_deploy_env': '{{ env_under_test }}'},
                    'no_log': True,
                    'diff': False,
                }
            ],
        }
    ]
    (tmp_path / 'render.yml').write_text(yaml.safe_dump(playbook))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
    )
    res = subprocess.run(
        [
            os.path.join(ROOT, '.venv/bin/ansible-playbook'),
            '-i',
            'localhost,',
            '-c',
            'local',
            '-vvv',
            '-e',
            'ansible_python_interpreter=' + os.path.join(ROOT, '.venv/bin/python'),
            str(tmp_path / 'render.yml'),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    return out


@pytest.fixture
def engine():
    reason = docker_registry.unavailable_reason()
    if reason:
        pytest.skip(f'needs Docker: {reason}')


def test_secret_reaches_the_container_byte_for_byte(tmp_path, engine):
    out = _render(tmp_path, VALUES)
    for value in (VALUES['JWT_SECRET'], 'Kx$$Abc123', 'Kx$Abc123'):
        assert value not in out, 'the secret was printed at -vvv'
    env_file = tmp_path / 'app.env'
    assert oct(env_file.stat().st_mode & 0o777) == '0o600'
    (tmp_path / 'compose.yml').write_text(
        yaml.safe_dump(
            {'services': {'probe': {'image': IMAGE, 'env_file': [str(env_file)], 'command': ['sleep', '60']}}}
        )
    )
    project = 'itest-env-' + uuid.uuid4().hex[:8]
    base = ['docker', 'compose', '-p', project, '-f', str(tmp_path / 'compose.yml')]
    try:
        subprocess.run([*base, 'up', '-d', '--quiet-pull'], check=True, capture_output=True, timeout=120)
        cid = subprocess.run([*base, 'ps', '-q', 'probe'], check=True, capture_output=True, text=True).stdout.strip()
        inspected = json.loads(
            subprocess.run(['docker', 'inspect', cid], check=True, capture_output=True, text=True).stdout
        )[0]['Config']['Env']
        given = dict(item.split('=', 1) for item in inspected)
        seen = subprocess.run(['docker', 'exec', cid, 'env', '-0'], check=True, capture_output=True).stdout
        inside = dict(item.split(b'=', 1) for item in seen.split(b'\0') if item)
    finally:
        subprocess.run([*base, 'down', '-t', '0'], check=False, capture_output=True, timeout=120)
    for key, value in VALUES.items():
        assert given.get(key) == value, f'{key}: the engine got {given.get(key)!r}, not {value!r}'
        assert inside.get(key.encode()) == value.encode('utf-8'), f'{key}: the process sees another value'
