#!/usr/bin/python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: release_files
short_description: Compare or write the files of a release (env files and the compose file) in one call
version_added: 0.1.0
description:
  - Takes the files of a release, rendered on the controller, and compares them with the files on the host
    (O(state=compared)) or writes those that differ (O(state=present)), all in one module run instead of one
    C(slurp), C(template) or C(copy) per file.
  - B(Env files) (O(env_files)) carry secrets. Their content is a C(no_log) option, is never returned, and is
    compared key by key - RV(files.keys) and the diff name the keys whose line is added, removed or changed,
    never a value.
  - B(Plain files) (O(files)), such as the compose file, are compared byte for byte; their current content is
    returned when asked (O(files[].return_content)), and the diff shows their text.
  - B(Kept copies) - a file with O(env_files[].source) or O(files[].source) takes the bytes of that file on the
    host (such as the copy the release ledger kept in C(releases/<id>/)) where it exists, and its content
    otherwise; without content, a missing source leaves the file as it is (RV(files.unsourced)), or fails the
    run before anything is written with O(files[].source_required).
  - B(Writing) - each file that differs is written to a temporary file in its own folder with its mode and
    owner, fsynced and renamed over the old one, so a reader sees the old or the new file, never part of one.
    A file whose bytes are right but whose mode or owner is not gets them fixed in place. Env files are written
    first, then the plain files (a compose file names its env files).
  - Everything is checked before anything is written (paths, folders, sources, owner and group), and a failure
    says which files were already written.
author:
  - avatar_mgmt.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: O(state=present) computes and returns what it would change (RV(ignore:changed), RV(changed_files)) without writing.
  diff_mode:
    support: full
    description:
      - Plain files show their text before and after; env files show one line per key, C(KEY=<old value hidden>) and
        C(KEY=<new value hidden>) for the keys that change, so only names appear. Mode and owner are shown as a last
        comment line.
  idempotent:
    support: full
    description: A second run with the same files changes nothing. O(state=compared) never changes anything.
options:
  state:
    description:
      - V(compared) only reads and compares (also in check mode); V(present) writes what differs.
    type: str
    choices: [compared, present]
    default: present
  env_files:
    description:
      - Env files, such as C(/opt/deploy-avatar-prod/.env.prod.api). Each needs O(env_files[].content) or
        O(env_files[].source) (or both).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file. Its folder must exist.
        type: path
        required: true
      content:
        description:
          - The text of the file, such as the output of C(lookup('ansible.builtin.template', 'env.j2')), written byte for byte.
        type: str
      source:
        description:
          - Absolute path of a file on the host whose bytes are written instead of O(env_files[].content) where it exists.
        type: path
      source_required:
        description:
          - Fail, before anything is written, when O(env_files[].source) does not exist (instead of using
            O(env_files[].content) or leaving the file as it is).
        type: bool
        default: false
      mode:
        description: Permissions, an octal string.
        type: raw
        default: '0600'
  files:
    description:
      - Plain files, such as the compose file. Each needs O(files[].content) or O(files[].source) (or both).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file. Its folder must exist.
        type: path
        required: true
      content:
        description: The text of the file, written byte for byte.
        type: str
      source:
        description:
          - Absolute path of a file on the host whose bytes are written instead of O(files[].content) where it exists.
        type: path
      source_required:
        description:
          - Fail, before anything is written, when O(files[].source) does not exist (instead of using
            O(files[].content) or leaving the file as it is).
        type: bool
        default: false
      mode:
        description: Permissions, an octal string.
        type: raw
        default: '0640'
      return_content:
        description: Return the file's current text (before any write) in RV(files.content).
        type: bool
        default: false
  owner:
    description:
      - Owner (name or uid) of the files written. V('') keeps the owner of an existing file.
    type: str
    default: ''
  group:
    description:
      - Group (name or gid) of the files written. V('') keeps the group of an existing file.
    type: str
    default: ''
notes:
  - A path or source that is a symbolic link, or anything but a regular file, is refused.
  - The module never creates folders.
seealso:
  - module: avatar_mgmt.ops.release_ledger
  - module: ansible.builtin.template
'''

EXAMPLES = r'''
- name: Compare the release's files with those on the host
  avatar_mgmt.ops.release_files:
    state: compared
    env_files:
      - path: /opt/deploy-avatar-prod/.env.prod.api
        content: "{{ lookup('ansible.builtin.template', 'env.j2') }}"
    files:
      - path: /opt/deploy-avatar-prod/docker-compose.prod.yml
        content: "{{ lookup('ansible.builtin.template', 'docker-compose.yml.j2') }}"
        return_content: true
  register: compared
  check_mode: false
  no_log: true

- name: Write the release's files
  avatar_mgmt.ops.release_files:
    env_files:
      - path: /opt/deploy-avatar-prod/.env.prod.api
        content: "{{ lookup('ansible.builtin.template', 'env.j2') }}"
        # A rollback puts back the copy the release ran with, where the ledger kept one.
        source: /opt/deploy-avatar-prod/releases/20260214T090000Z-v1.1.0/.env.prod.api
    files:
      - path: /opt/deploy-avatar-prod/docker-compose.prod.yml
        content: "{{ lookup('ansible.builtin.template', 'docker-compose.yml.j2') }}"
    owner: deploy
    group: deploy
  no_log: true
'''

RETURN = r'''
files:
  description: By path (as given in O(env_files[].path) and O(files[].path)), what the module found and did for each file.
  returned: always
  type: dict
  contains:
    env:
      description: Whether the file is an env file.
      type: bool
    exists:
      description: Whether the file existed before the run.
      type: bool
    differs:
      description: Whether its bytes differ from the ones to write (true for a missing file).
      type: bool
    changed:
      description: O(state=present) only, else false. Written, or mode or owner fixed (in check mode, would be).
      type: bool
    keys:
      description: Env files only, else V([]). Names of the keys whose line is added, removed or changed, sorted.
      type: list
      elements: str
    from_source:
      description: Whether the bytes to write came from the source file.
      type: bool
    unsourced:
      description: The file has no content and its source is missing, so it is left as it is.
      type: bool
    mode:
      description: The mode the file is written with, octal.
      type: str
    content:
      description: O(files[].return_content) only. The file's text before the run, V('') when it did not exist.
      type: str
  sample:
    /opt/deploy-avatar-prod/.env.prod.api:
      {env: true, exists: true, differs: true, changed: true, keys: [JWT_SECRET], from_source: false, unsourced: false, mode: '0600'}
    /opt/deploy-avatar-prod/docker-compose.prod.yml:
      {env: false, exists: true, differs: false, changed: false, keys: [], from_source: false, unsourced: false, mode: '0640'}
changed_files:
  description: Paths written or whose mode or owner was fixed (in check mode, that would be); V([]) for O(state=compared).
  returned: always
  type: list
  elements: str
  sample: [/opt/deploy-avatar-prod/.env.prod.api]
'''

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _release_files
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._secret_module import SecretSafeModule


def main():
    module = SecretSafeModule(
        argument_spec=dict(
            _release_files.argument_options(),
            state={'type': 'str', 'choices': ['compared', 'present'], 'default': 'present'},
        ),
        supports_check_mode=True,
    )
    params = module.params
    state = params['state']
    try:
        plans = _release_files.plan(params['env_files'], params['files'], params['owner'], params['group'])
    except ValueError as exc:
        module.fail_json(msg=str(exc).rstrip('.') + '. Nothing was changed.', changed=False)

    changed_files = []
    if state == 'present':
        changed_files = [item['path'] for item in plans if item['differs'] or item['attrs_differ']]
        if not module.check_mode:
            try:
                _release_files.apply(plans)
            except _release_files.ReleaseFilesError as exc:
                module.fail_json(msg=str(exc), changed=bool(exc.written), changed_files=exc.written)

    result = {
        'changed': bool(changed_files),
        'files': _release_files.report(plans, state),
        'changed_files': changed_files,
    }
    if module._diff and state == 'present':
        result['diff'] = _release_files.diff(plans)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
