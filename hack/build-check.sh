#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Build the collection artifact and prove it is clean and self-describing.
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.venv/bin/ansible-galaxy collection build --force --output-path "$out" . >/dev/null
tarball=$(ls "$out"/avatar_mgmt-ops-*.tar.gz)
listing=$(tar -tzf "$tarball")
bad=$(echo "$listing" | grep -E '^(molecule|tests|inventories|\.cache|\.venv|\.collections|bench|hack|execution-environment|\.ci)/' || true)
if [ -n "$bad" ]; then echo "artifact holds development files:"; echo "$bad" | head; exit 1; fi
for f in plugins/modules/release_tag.py plugins/modules/health_verify.py roles/compose_deploy/tasks/main.yml playbooks/deploy.yml; do
  grep -qx "$f" <<<"$listing" || { echo "artifact lacks $f"; exit 1; }
done
for m in release_tag health_verify; do .venv/bin/ansible-doc "avatar_mgmt.ops.$m" >/dev/null; done
for d in roles/*/; do
  r=$(basename "$d")
  .venv/bin/ansible-doc -t role "avatar_mgmt.ops.$r" >/dev/null
done
for f in semver_sort semver_compare semver_is_prerelease semver_channel compose_image_changes; do
  .venv/bin/ansible-doc -t filter "avatar_mgmt.ops.$f" >/dev/null
done
echo "build-check: $(basename "$tarball") is clean ($(wc -l <<<"$listing") entries); ansible-doc answers for every module, role and filter"
