#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Make sure a Docker engine with the compose v2 plugin answers on this machine.
# Uses a running engine; otherwise installs Debian's docker.io and starts dockerd
# by hand (no systemd here). Compose v2 comes from Debian 13's docker-compose
# package, whose static binary is the v2 CLI plugin. Idempotent.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*"; }

engine_up() { docker info >/dev/null 2>&1; }

debian_mirror() {
  local uri
  uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "no Debian mirror found in apt configuration" >&2; exit 1; }
  echo "$uri"
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! engine_up; then
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    apt_install docker.io iptables
  fi
  log "starting dockerd"
  mkdir -p /var/log
  # The engine outlives this script: it must not inherit its open files (a caller's
  # `flock FILE make test` would otherwise stay locked for as long as dockerd runs).
  close_fds=()
  for fd in "/proc/$$/fd/"*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then close_fds+=("$fd>&-"); fi
  done
  eval "nohup setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null ${close_fds[*]} &"
  for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  engine_up || { echo "dockerd did not come up; see /var/log/dockerd.log" >&2; tail -n 20 /var/log/dockerd.log >&2; exit 1; }
fi
log "engine: $(docker version --format '{{.Server.Version}}')"

if ! docker compose version >/dev/null 2>&1; then
  log "installing compose v2 plugin from Debian 13's docker-compose package"
  mirror=$(debian_mirror)
  src=/etc/apt/sources.list.d/zz-avatar-trixie.list
  work=$(mktemp -d)
  trap 'rm -f "$src"; rm -rf "$work"; apt-get update -qq >/dev/null 2>&1 || true' EXIT
  echo "deb $mirror trixie main" >"$src"
  apt-get update -qq
  (cd "$work" && apt-get download -qq docker-compose/trixie)
  dpkg -x "$work"/docker-compose_*.deb "$work/x"
  mkdir -p /usr/local/lib/docker/cli-plugins
  install -m 0755 "$work/x/usr/libexec/docker/cli-plugins/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
  rm -f "$src"
fi
log "compose: $(docker compose version --short)"

for tool in debootstrap htpasswd openssl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    case $tool in
      htpasswd) apt_install apache2-utils ;;
      *) apt_install "$tool" ;;
    esac
  fi
done
