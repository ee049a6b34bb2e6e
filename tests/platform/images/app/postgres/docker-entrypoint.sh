#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Mimics the official postgres image entrypoint (subset):
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#   POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256),
#   *_FILE variants for the three POSTGRES_* secrets, /docker-entrypoint-initdb.d/*.sh|*.sql.
set -Eeuo pipefail

file_env() {  # file_env VAR [default]: VAR or VAR_FILE
  local var=$1 fvar="${1}_FILE" def="${2:-}" val
  if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
    echo >&2 "error: both $var and $fvar are set (but are exclusive)"; exit 1
  fi
  val=$def
  if [ -n "${!var:-}" ]; then val=${!var}; elif [ -n "${!fvar:-}" ]; then val=$(<"${!fvar}"); fi
  export "$var"="$val"; unset "$fvar"
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"; chmod 2775 /var/run/postgresql
  # Re-run this script as postgres (exec, so postgres ends up as PID 1).
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = 'postgres' ]; then
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
      echo >&2 "error: database is uninitialized and superuser password is not specified."
      echo >&2 "       set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)."
      exit 1
    fi
    echo "initdb: creating cluster in $PGDATA for superuser \"$POSTGRES_USER\""
    pwfile=$(mktemp); trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" $POSTGRES_INITDB_ARGS -D "$PGDATA" >/dev/null
    rm -f "$pwfile"; trap - EXIT
    printf '\n# added by the container entrypoint (like the official image)\nhost all all all %s\n' \
      "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # Temporary server on a private unix socket only, so health checks (pg_isready on
    # /var/run/postgresql) and clients cannot see it before initialisation is complete.
    initsock=$(mktemp -d /tmp/pginit.XXXXXX)
    export PGHOST=$initsock PGPORT=5432
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$initsock -p 5432" -w start >/dev/null
    psql_=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc --dbname postgres -q)
    if [ "$POSTGRES_DB" != postgres ]; then
      "${psql_[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sh)  echo "running $f"; . "$f" ;;
        *.sql) echo "running $f"; "${psql_[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
        *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql_[@]}" --dbname "$POSTGRES_DB" ;;
        *) ;;
      esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGHOST PGPORT; rmdir "$initsock" 2>/dev/null || true
    echo "PostgreSQL init process complete; ready for start up."
  else
    echo "PostgreSQL database directory appears to contain a database; skipping initialization"
  fi
fi

exec "$@"
