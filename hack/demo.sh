#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# make demo: start the sandbox (GHCR stand-in, a staging and a production server),
# deploy v1.2.0 to production and the staging channel to staging, print the status
# and where the deployed frontend answers through the proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG=$PWD/ansible.cfg
ap=.venv/bin/ansible-playbook
inv=inventories/sandbox

bash tests/platform/platform.sh registry
bash tests/platform/platform.sh server sandbox-stage-1 2221 8121
bash tests/platform/platform.sh server sandbox-prod-1 2222 8122

# The commands an operator types, from the repository root.
$ap bootstrap.yml -i $inv
$ap deploy.yml -i $inv --limit production -e image_tag=v1.2.0
$ap deploy.yml -i $inv --limit staging
$ap status.yml -i $inv

echo
for pair in "production 8122 daidai.amis.hk api.daidai.amis.hk" "staging 8121 daidai-preview.amis.hk api.daidai-preview.amis.hk"; do
  read -r env port host api_host <<<"$pair"
  version=$(curl -s --max-time 5 -H "Host: $api_host" "http://127.0.0.1:$port/api/version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"]["version"])')
  echo "$env: frontend at http://127.0.0.1:$port/ (Host: $host), api reports $version"
  echo "    try: curl -H 'Host: $host' http://127.0.0.1:$port/"
done
