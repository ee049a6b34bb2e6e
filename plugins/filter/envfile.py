# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters on env files that Docker Compose reads literally (see env_quote.yml, env_problems.yml,
env_changed_keys.yml). No filter ever puts a value into its error or its result."""

from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _envfile


def env_quote(value):
    try:
        return _envfile.quote(value)
    except ValueError as exc:
        raise AnsibleFilterError(f"env_quote: {exc}") from None


def env_problems(env, name="env"):
    return _envfile.problems(env, name)


def env_changed_keys(new_text, old_text=""):
    return _envfile.changed_keys(old_text, new_text)


class FilterModule:
    def filters(self):
        return {
            "env_quote": env_quote,
            "env_problems": env_problems,
            "env_changed_keys": env_changed_keys,
        }
