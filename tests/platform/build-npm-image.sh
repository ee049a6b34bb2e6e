#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Build avatar-test/npm:2.15.1, the real nginx-proxy-manager, from its source
# (tests/platform/images/npm). An image that already exists is kept unless FORCE=1.
#
#   AVATAR_NPM_SRC   the source tarball (default: ../shared/third_party/ beside the checkout),
#                    checked against its sha256. Made from the upstream tag with
#                    git archive --format=tar.gz --prefix=nginx-proxy-manager-2.15.1/ v2.15.1 \
#                        backend docker/rootfs LICENSE README.md >nginx-proxy-manager-2.15.1-src.tar.gz
#
# The backend's JavaScript dependencies are fetched on the host (builds do not trust the
# certificate in front of the npm registry) by yarn 1 from the source's yarn.lock, with
# --ignore-scripts, and kept in .cache/npm-build/ under the yarn.lock's hash: a second build
# fetches nothing. Native modules (better-sqlite3, sqlite3, bcrypt) are compiled in the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=2.15.1
commit=76f09db610cfcaecf6d608a8947d6f75aa028870
# sha256 of the tarball, and of the tar inside it (another gzip may compress the same tar differently)
src_sha256=d5b06bce1a57aff9d13b8426669a475a9ef51dc7b36571cedd32e2176289d31b
tar_sha256=2018373d05e27118973a28952e76ea4184b90d0482086559b4cbe15fe00d999f
ref=avatar-test/npm:$version
src=${AVATAR_NPM_SRC:-$root/../shared/third_party/nginx-proxy-manager-$version-src.tar.gz}
cache=$root/.cache/npm-build
prefix=nginx-proxy-manager-$version
yarn_version=1.22.22
# No buildx plugin on these machines: the classic builder (multi-stage works with it).
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

log() { printf '[npm-image] %s\n' "$*" >&2; }
die() { printf '[npm-image] error: %s\n' "$*" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$ref" >/dev/null 2>&1; then
  log "$ref present"; exit 0
fi
docker image inspect avatar-test/debian:trixie >/dev/null 2>&1 \
  || die "avatar-test/debian:trixie missing: run tests/platform/build-bases.sh first"

how="Set AVATAR_NPM_SRC to nginx-proxy-manager-$version-src.tar.gz (shared/third_party/ beside the checkout),
or make it from the upstream tag v$version (commit $commit) in a clone of NginxProxyManager/nginx-proxy-manager:
  git archive --format=tar.gz --prefix=$prefix/ v$version backend docker/rootfs LICENSE README.md >nginx-proxy-manager-$version-src.tar.gz"
[ -f "$src" ] || die "no nginx-proxy-manager source at $src.
$how"
if [ "$(sha256sum <"$src" | cut -d' ' -f1)" != "$src_sha256" ] \
   && [ "$(gzip -dc <"$src" 2>/dev/null | sha256sum | cut -d' ' -f1)" != "$tar_sha256" ]; then
  die "$src is not the expected source (sha256 $src_sha256, or $tar_sha256 once gunzipped).
$how"
fi

work=$(mktemp -d /tmp/npm-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
t0=$SECONDS

# --- JavaScript dependencies, on the host, once per yarn.lock ----------------
lock_hash=$(tar -xzOf "$src" "$prefix/backend/yarn.lock" | sha256sum | cut -c1-16)
modules=$cache/node_modules-$lock_hash.tar.gz
if [ -f "$modules" ]; then
  log "dependencies from the cache ($(basename "$modules"))"
else
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing node and npm (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [[ $(yarn --version 2>/dev/null) == 1.* ]]; then yarn=(yarn); else yarn=(npx --yes "yarn@$yarn_version"); fi
  log "fetching the dependencies of yarn.lock $lock_hash with ${yarn[*]}"
  tar -xzf "$src" -C "$work" "$prefix/backend/package.json" "$prefix/backend/yarn.lock"
  (cd "$work/$prefix/backend" \
    && YARN_CACHE_FOLDER=$work/yarn-cache "${yarn[@]}" install --frozen-lockfile --production \
         --ignore-scripts --non-interactive --no-progress --silent) >"$work/yarn.log" 2>&1 \
    || { tail -n 40 "$work/yarn.log" >&2; die "yarn install failed"; }
  mkdir -p "$cache"
  tar -C "$work/$prefix/backend" -czf "$modules.tmp" node_modules
  mv "$modules.tmp" "$modules"
  log "dependencies fetched in $((SECONDS - t0))s, cached as $modules"
fi

# --- the image ----------------------------------------------------------------
ctx=$work/context
mkdir -p "$ctx"
cp "$here/images/npm/Dockerfile" "$here/images/npm/start.sh" "$ctx/"
cp "$src" "$ctx/npm-src.tar.gz"
cp "$modules" "$ctx/node_modules.tar.gz"
t1=$SECONDS
log "building $ref"
docker build -q --build-arg "NPM_VERSION=$version" --build-arg "NPM_COMMIT=$commit" -t "$ref" "$ctx" \
  >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; die "docker build of $ref failed"; }
log "built $ref in $((SECONDS - t1))s (total $((SECONDS - t0))s, $(docker image inspect -f '{{.Size}}' "$ref" | awk '{printf "%d MB", $1 / 1e6}'))"
