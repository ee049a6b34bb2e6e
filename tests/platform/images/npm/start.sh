#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Entry point in place of s6-overlay (which cannot be downloaded here). It does what NPM's s6
# services do: run NPM's own prepare scripts (user, paths, ownership, resolvers.conf from
# /etc/resolv.conf, IPv6, banner), then nginx and the backend as PUID:PGID. The backend is
# started again a second after it exits, as upstream's loop does; when nginx exits the
# container stops with an error (s6 would restart it; a restart policy can). TERM or INT:
# nginx quits gracefully, the backend is stopped, exit 0.
set -euo pipefail

# Docker secrets: NAME__FILE=/path sets NAME to the file's content. Upstream's 60-secrets.sh
# does it through s6's environment folder, which stays empty here.
for name in $(compgen -e); do
  case $name in
    *__FILE)
      if [ -f "${!name}" ]; then
        export "${name%__FILE}=$(cat "${!name}")"
        echo "[secret-init] ${name%__FILE} set from $name"
      else
        echo "[secret-init] cannot find the secret file of $name" >&2
      fi ;;
  esac
done
mkdir -p /var/run/s6/container_environment

bash /etc/s6-overlay/s6-rc.d/prepare/00-all.sh
# PUID, PGID, NPMHOME, CERTBOT_VERSION, log_info, log_error
# shellcheck source=/dev/null
. /usr/bin/common.sh

# Like s6-setuidgid: replace this (background) shell with the command, as PUID:PGID.
exec_as_npm() {
  if [ "$PUID:$PGID" = 0:0 ]; then exec "$@"; fi
  exec setpriv --reuid "$PUID" --regid "$PGID" --clear-groups "$@"
}

backend() {
  local child=
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM
  cd /app
  while :; do
    HOME=$NPMHOME exec_as_npm node --abort_on_uncaught_exception --max_old_space_size=250 index.js &
    child=$!
    wait "$child" || true
    sleep 1
  done
}

log_info 'Starting nginx ...'
exec_as_npm nginx &   # nginx.conf says "daemon off;"
nginx_pid=$!
log_info 'Starting backend ...'
backend &
backend_pid=$!

# Called by the trap below, which shellcheck does not follow.
# shellcheck disable=SC2317
stop() {
  trap - TERM INT
  log_info 'Stopping ...'
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  kill -TERM "$backend_pid" 2>/dev/null || true
  wait || true
  exit 0
}
trap stop TERM INT

rc=0
wait -n "$nginx_pid" "$backend_pid" || rc=$?
log_error "nginx exited with status $rc: stopping the container"
kill -TERM "$backend_pid" 2>/dev/null || true
wait || true
exit 1
