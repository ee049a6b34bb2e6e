#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Render the execution environment's build context, offline (nothing is pulled):
#
#   hack/ee.sh [STAGE]      (default .cache/ee; `make ee`)
#
# STAGE receives execution-environment.yml with the two files it names beside it: the
# collection artifact (`ansible-galaxy collection build`, as avatar_mgmt-ops.tar.gz, a
# name that does not change with the version) and constraints.txt. ansible-builder
# then writes STAGE/context (Containerfile and _build/). `make ee-image` builds the
# image from the same STAGE. tests/unit/test_execution_environment.py runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV:-.venv}/bin
stage=${1:-.cache/ee}
rm -rf "$stage"
mkdir -p "$stage/artifact"
cp execution-environment/execution-environment.yml constraints.txt "$stage/"
"$bin/ansible-galaxy" collection build --output-path "$stage/artifact" . >/dev/null
mv "$stage"/artifact/avatar_mgmt-ops-*.tar.gz "$stage/avatar_mgmt-ops.tar.gz"
rmdir "$stage/artifact"
"$bin/ansible-builder" create -f "$stage/execution-environment.yml" --context "$stage/context" \
  --output-filename Containerfile
echo "ee: build context rendered in $stage/context (Containerfile, _build/)"
