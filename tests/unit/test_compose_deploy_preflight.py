# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""compose_deploy's input checks: the role's preflight checks its input itself, also after deploy.yml's validate.yml.

Real ansible-playbook runs on the sandbox inventory that contact no host (validate.yml and
preflight.yml need no connection).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
DIGEST = 'sha256:' + '0' * 64
# The release both playbooks give the role (play vars, indented under `vars:`).
RELEASE_VARS = f"""    compose_deploy_release:
      version: v1.2.0
      images:
        api: {{reference: "example/api@{DIGEST}", digest: "{DIGEST}"}}
        frontend: {{reference: "example/frontend@{DIGEST}", digest: "{DIGEST}"}}
    compose_deploy_action: deploy
"""
PLAYBOOK = f"""
- name: The role's checks as deploy.yml and rollback.yml run them
  hosts: production
  gather_facts: false
  vars:
{RELEASE_VARS}  tasks:
    - name: Check settings and secrets before connecting anywhere
      ansible.builtin.include_role:
        name: avatar_mgmt.ops.compose_deploy
        tasks_from: validate.yml
      when: validate | bool

    - name: The role's preflight, the input changed since validate.yml checked it
      ansible.builtin.include_role:
        name: avatar_mgmt.ops.compose_deploy
        tasks_from: preflight.yml
      vars:
        compose_deploy_project_dir: relative/dir
"""


def _playbook(tmp_path, text, *args):
    """Run ``text`` as a playbook on the sandbox inventory's production host (no host is contacted)."""
    # Beside the playbook: the collection's playbooks/group_vars, as for the collection's own playbooks.
    (tmp_path / 'group_vars').symlink_to(os.path.join(ROOT, 'playbooks', 'group_vars'))
    (tmp_path / 'play.yml').write_text(text)
    return _ansible_playbook(str(tmp_path / 'play.yml'), *args)


def _ansible_playbook(path, *args):
    """ansible-playbook PATH on the sandbox inventory's production host, as the collection's tests run it."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
        ANSIBLE_VAULT_PASSWORD_FILE=os.path.join(ROOT, 'inventories', 'sandbox', 'vault-password.txt'),
        ANSIBLE_NOCOLOR='1',
    )
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), path]
    argv += ['-i', os.path.join(ROOT, 'inventories', 'sandbox'), '--limit', 'production', *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def _run(tmp_path, validate):
    return _playbook(tmp_path, PLAYBOOK, '-e', f'validate={validate}')


@pytest.mark.skipif(
    not os.path.exists(os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')), reason='no ansible-playbook'
)
@pytest.mark.parametrize(
    'validate, fails',
    [
        # The role run alone (rollback.yml, another playbook): its preflight checks the input itself.
        (False, True),
        # validate.yml passed on this host in this run, then the role's vars changed: still refused.
        (True, True),
    ],
)
def test_the_role_checks_its_input_even_after_validate_passed(tmp_path, validate, fails):
    proc = _run(tmp_path, validate)
    out = proc.stdout + proc.stderr
    assert ('compose_deploy_project_dir must be an absolute path' in out) is fails, out[-3000:]
    assert (proc.returncode != 0) is fails, out[-3000:]


SKIPPED_LOCK = f"""
- name: The role with its lock and host read skipped by tags
  hosts: production
  gather_facts: false
  vars:
    ansible_connection: local
{RELEASE_VARS}  roles:
    - avatar_mgmt.ops.compose_deploy
"""


@pytest.mark.skipif(
    not os.path.exists(os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')), reason='no ansible-playbook'
)
@pytest.mark.parametrize('tag', ['compose_deploy_preflight', 'compose_deploy_lock'])
def test_skipping_the_lock_by_tags_switches_nothing(tmp_path, tag):
    """`--skip-tags` of the lock's tags must not let the role switch without the lock: it refuses, naming them."""
    proc = _playbook(tmp_path, SKIPPED_LOCK, '--skip-tags', tag)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'Deploy refused, nothing was changed: the environment' in out, out[-3000:]
    # Before the refusal only the role's checks ran (its argument spec, the preflight when not skipped): nothing was
    # read, prepared, written or pulled; the rescue found nothing switched, and no task changed anything.
    ran = [line.split(' : ', 1)[-1].split(']')[0] for line in out.splitlines() if line.startswith('TASK [')]
    refusal = ran.index('Refuse to switch without the lock and the read of the host')
    assert ran[0].startswith('Validating arguments against arg spec'), ran
    assert set(ran[1:refusal]) <= {'Check the release and the input'}, ran
    assert 'The running stack was not changed.' in out, out[-3000:]
    assert ' changed=0 ' in out, out[-3000:]


@pytest.mark.skipif(
    not os.path.exists(os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')), reason='no ansible-playbook'
)
@pytest.mark.parametrize(
    'interval, refused',
    [('5', True), ('5 s', True), ('fast', True), ('', True), ('5s', False), ('500ms', False), ('1m30s', False)],
)
def test_a_healthcheck_interval_compose_cannot_read_is_refused_before_any_host_is_contacted(interval, refused):
    """Written into the compose file as it is: `5` (no unit) would fail only on the host, at the switch. deploy.yml
    refuses it by name before it contacts the registry or the server: the server's SSH port here is a closed one
    (9), so any connection would show as unreachable."""
    proc = _ansible_playbook(
        os.path.join(ROOT, 'playbooks', 'deploy.yml'),
        '-e',
        'image_tag=v1.2.0',
        '-e',
        'ansible_port=9',
        '-e',
        f'{{"compose_deploy_healthcheck_interval": "{interval}"}}',
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert ('compose_deploy_healthcheck_interval must be a duration' in out) is refused, out[-3000:]
    if refused:
        assert f"(got '{interval}')" in out, out[-3000:]
        assert 'unreachable=0' in out, out[-3000:]
        assert 'TASK [Resolve image_tag' not in out, out[-3000:]
    else:
        # A valid interval passes the check: the run goes on to the registry and the server (closed port).
        assert 'TASK [Resolve image_tag' in out, out[-3000:]
