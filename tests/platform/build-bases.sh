#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Build the Debian base images every test image starts FROM (nothing can be pulled here).
#   avatar-test/debian:bookworm  -> application stand-ins (PostgreSQL 15 lives in bookworm)
#   avatar-test/debian:trixie    -> test servers and the registry
# Reuses an image that already exists.
set -euo pipefail
mirror() {
  local uri
  uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "$uri"
}
build_base() {
  local suite=$1 ref="avatar-test/debian:$1"
  if docker image inspect "$ref" >/dev/null 2>&1; then echo "[bases] $ref present"; return; fi
  local dir; dir=$(mktemp -d /var/tmp/avatar-base-XXXX)
  echo "[bases] debootstrap $suite"
  debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$dir" "$(mirror)" >"$dir.log" 2>&1 \
    || { tail -n 30 "$dir.log" >&2; exit 1; }
  # Point apt inside the image at the same mirror debootstrap used.
  echo "deb $(mirror) $suite main" >"$dir/etc/apt/sources.list"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import -c 'CMD ["/bin/bash"]' - "$ref" >/dev/null
  rm -rf "$dir" "$dir.log"
  echo "[bases] built $ref"
}
build_base bookworm &
b1=$!
build_base trixie &
b2=$!
wait $b1; wait $b2
