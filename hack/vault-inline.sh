#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# An inventory's vault file with each value encrypted on its own (inline !vault), so that AWX's
# inventory import (ansible-inventory --list --export) reads it without a vault password.
#
#   hack/vault-inline.sh encrypt inventories/prod/group_vars/all/vault.yml --vault-id prod@prompt
#   hack/vault-inline.sh view    inventories/prod/group_vars/all/vault.yml --vault-id prod@prompt [--name VAR]
#   hack/vault-inline.sh check   inventories/*/group_vars/all/vault.yml
#
# Usage and rules: hack/vault_inline.py (or hack/vault-inline.sh --help). VENV: the virtual
# environment whose ansible-core it uses (default: .venv of this checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${VENV:-$here/../.venv}
exec "$venv/bin/python" "$here/vault_inline.py" "$@"
