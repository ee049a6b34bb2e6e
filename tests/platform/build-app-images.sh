#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Build the stand-in application images (tests/platform/images/app/*) FROM avatar-test/debian:bookworm.
#   avatar-test/api:<v>, avatar-test/frontend:<v>   v in APP_VERSIONS (api v1.2.1 is built HEALTHY=false,
#                                                  api v1.2.2 cannot start, api v1.2.3 crash-loops)
#   avatar-test/directus:11.8.0, avatar-test/postgres:15.7
# An image that already exists is skipped unless FORCE=1.
# Order: one image first creates the layer every image shares (wget); then two lanes run in
# parallel: (postgres, directus) and (api*, frontend*).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ctx=$here/images/app
APP_VERSIONS=${APP_VERSIONS:-"v1.0.0 v1.1.0 v1.2.0 v1.2.1 v1.2.2 v1.2.3 v1.3.0-beta.1"}
UNHEALTHY_API_VERSIONS=${UNHEALTHY_API_VERSIONS:-"v1.2.1"}
# An api whose container cannot start at all (its entrypoint is missing).
BROKEN_API_VERSIONS=${BROKEN_API_VERSIONS:-"v1.2.2"}
# An api that starts and passes its health checks, then exits 4 s after each start; Docker's
# restart policy starts it again (a crash loop: only a gate that holds catches it).
CRASHLOOP_API_VERSIONS=${CRASHLOOP_API_VERSIONS:-"v1.2.3"}
FORCE=${FORCE:-0}
# No buildx plugin on these machines: use the classic builder explicitly (it shares identical
# layers across Dockerfiles through its local cache).
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
logdir=$(mktemp -d /tmp/app-images.XXXXXX)
trap 'rm -rf "$logdir"' EXIT

docker image inspect avatar-test/debian:bookworm >/dev/null 2>&1 \
  || { echo "avatar-test/debian:bookworm missing: run tests/platform/build-bases.sh first" >&2; exit 1; }

build() {  # build REF DIR [--build-arg ...]
  local ref=$1 dir=$2; shift 2
  if [ "$FORCE" != 1 ] && docker image inspect "$ref" >/dev/null 2>&1; then
    echo "skip $ref" >>"$logdir/summary"; return 0
  fi
  local log t0=$SECONDS
  log="$logdir/$(echo "$ref" | tr '/:' '__').log"
  if ! docker build -q -t "$ref" "$@" "$ctx/$dir" >"$log" 2>&1; then
    echo "[app-images] FAILED $ref" >&2; tail -n 40 "$log" >&2; return 1
  fi
  echo "built $ref $((SECONDS - t0))s" >>"$logdir/summary"
}
api() {
  local v=$1 healthy=true crash=0
  for u in $BROKEN_API_VERSIONS; do
    # Built on v1.2.0 (built before any other version): it only needs to fail at start.
    [ "$u" = "$v" ] && { build "avatar-test/api:$v" api-broken --build-arg "VERSION=$v"; return; }
  done
  for u in $UNHEALTHY_API_VERSIONS; do [ "$u" = "$v" ] && healthy=false; done
  for u in $CRASHLOOP_API_VERSIONS; do [ "$u" = "$v" ] && crash=4; done
  build "avatar-test/api:$v" api --build-arg "VERSION=$v" --build-arg "HEALTHY=$healthy" --build-arg "CRASH_AFTER=$crash"
}
lane_stateful() {
  build avatar-test/postgres:15.7 postgres
  build avatar-test/directus:11.8.0 directus
}
lane_release() {
  local v
  for v in $APP_VERSIONS; do [ "$v" = "$first" ] || api "$v"; done
  for v in $APP_VERSIONS; do build "avatar-test/frontend:$v" frontend --build-arg "VERSION=$v"; done
}

t0=$SECONDS
first=${APP_VERSIONS%% *}
api "$first"                   # creates the shared wget layer once
lane_stateful & p1=$!
lane_release & p2=$!
rc=0; wait $p1 || rc=1; wait $p2 || rc=1
nb=$(grep -c '^built' "$logdir/summary" || true); ns=$(grep -c '^skip' "$logdir/summary" || true)
[ -n "${VERBOSE:-}" ] && cat "$logdir/summary"
echo "[app-images] $( [ $rc = 0 ] && echo ok || echo FAILED ): built $nb, present $ns, $((SECONDS - t0))s" \
     "(api+frontend: $APP_VERSIONS; directus:11.8.0 postgres:15.7)"
exit $rc
