#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Smoke test of avatar-test/npm:2.15.1 (the real nginx-proxy-manager): start it with an
# upstream on a network of its own, wait until healthy, log in through the API, create a
# proxy host, check that NPM serves it by Host header, and that GET /api/ reports 2.15.1.
# Everything it starts is named npmimg-smoke-<id>-* and removed on exit (KEEP=1 leaves it).
# Traffic goes only to 127.0.0.1 (NPM's published ports); every loop is bounded.
# Usage: tests/platform/images/npm/smoke.sh   (builds the image first when it is missing)
# Checks read `check && ok "what" || fail "what"`: ok only prints and returns 0,
# so fail runs exactly when the check fails, which is what SC2015 warns about.
# shellcheck disable=SC2015
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${NPM_IMAGE:-avatar-test/npm:2.15.1}
version=2.15.1
id=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
name=npmimg-smoke-$id
net=$name-net
email=admin@npmimg.test
password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
domain=app.npmimg.test
t_start=$SECONDS
pass=0
tmp=$(mktemp -d /tmp/npmimg-smoke.XXXXXX)

ok()   { pass=$((pass + 1)); echo "  ok   $*"; }
fail() {
  echo "  FAIL $*" >&2
  docker logs --tail 40 "$name-npm" >&2 2>&1 || true
  exit 1
}
cleanup() {
  local rc=$?
  if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: $name-npm and $name-up left running on $net"; exit $rc; fi
  docker rm -f -v "$name-npm" "$name-up" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT

[ "$image" != avatar-test/npm:2.15.1 ] || bash "$here/../../build-npm-image.sh"   # no-op when it exists

jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if k.isdigit() else d[k]
print(json.dumps(d) if isinstance(d, (dict, list, bool)) else d)' "$1"; }
# req METHOD URL [curl args...] -> body on stdout, HTTP status in $tmp/status
req() {
  local method=$1 url=$2; shift 2
  curl -sS --max-time 10 -o "$tmp/body" -w '%{http_code}' -X "$method" "$@" "$url" >"$tmp/status" 2>/dev/null || echo 000 >"$tmp/status"
  cat "$tmp/body" 2>/dev/null || true
}
status() { cat "$tmp/status"; }

echo "[npm-smoke] $image as $name-npm, upstream $name-up on $net"
docker network create "$net" >/dev/null
# The upstream: python's http.server from the Debian base image, answering with a marker.
docker run -d --name "$name-up" --network "$net" avatar-test/debian:trixie \
  sh -c "mkdir -p /srv && echo 'upstream $id' >/srv/index.html && exec python3 -m http.server 8080 --directory /srv" >/dev/null
docker run -d --name "$name-npm" --network "$net" \
  -e "INITIAL_ADMIN_EMAIL=$email" -e "INITIAL_ADMIN_PASSWORD=$password" -e IP_RANGES_FETCH_ENABLED=false \
  -p 127.0.0.1::80 -p 127.0.0.1::81 "$image" >/dev/null
http_port=$(docker port "$name-npm" 80/tcp | head -n1 | sed 's/.*://')
admin_port=$(docker port "$name-npm" 81/tcp | head -n1 | sed 's/.*://')
API=http://127.0.0.1:$admin_port/api
echo "  proxy on 127.0.0.1:$http_port, admin on 127.0.0.1:$admin_port"

t0=$SECONDS
while :; do
  st=$(docker inspect -f '{{.State.Status}}/{{.State.Health.Status}}' "$name-npm" 2>/dev/null || echo missing)
  [ "$st" = running/healthy ] && break
  case $st in running/starting) ;; *) fail "container is $st" ;; esac
  [ $((SECONDS - t0)) -ge 120 ] && fail "not healthy after 120s (status $st)"
  sleep 1
done
ok "healthy after $((SECONDS - t0))s"

r=$(req GET "$API/")
[ "$(jget status <<<"$r")" = OK ] && [ "$(jget setup <<<"$r")" = true ] \
  && [ "$(jget version.major <<<"$r").$(jget version.minor <<<"$r").$(jget version.revision <<<"$r")" = "$version" ] \
  && ok "GET /api/ reports status OK, setup true, version $version" || fail "GET /api/: $r"

req POST "$API/tokens" -H 'Content-Type: application/json' \
  -d "{\"identity\":\"$email\",\"secret\":\"wrong-$password\"}" >/dev/null
[ "$(status)" = 401 ] || [ "$(status)" = 400 ] && ok "login with a wrong password refused ($(status))" || fail "wrong password: $(status)"
r=$(req POST "$API/tokens" -H 'Content-Type: application/json' -d "{\"identity\":\"$email\",\"secret\":\"$password\"}")
token=$(jget token <<<"$r" 2>/dev/null) && [ -n "$token" ] && ok "POST /api/tokens gives a token" || fail "login: $(status) $r"
AUTH="Authorization: Bearer $token"

r=$(req POST "$API/nginx/proxy-hosts" -H "$AUTH" -H 'Content-Type: application/json' -d "{
  \"domain_names\": [\"$domain\"], \"forward_scheme\": \"http\", \"forward_host\": \"$name-up\",
  \"forward_port\": 8080, \"block_exploits\": true, \"access_list_id\": 0, \"certificate_id\": 0}")
[ "$(status)" = 201 ] && host_id=$(jget id <<<"$r") || fail "POST proxy host: $(status) $r"
r=$(req GET "$API/nginx/proxy-hosts/$host_id" -H "$AUTH")
[ "$(jget meta.nginx_online <<<"$r")" = true ] && ok "proxy host $host_id created, nginx_online" || fail "proxy host: $r"
docker exec "$name-npm" test -f "/data/nginx/proxy_host/$host_id.conf" \
  && ok "/data/nginx/proxy_host/$host_id.conf written" || fail "no /data/nginx/proxy_host/$host_id.conf"

# nginx reloads asynchronously after the API answers: poll, bounded.
t0=$SECONDS
until [ "$(req GET "http://127.0.0.1:$http_port/" -H "Host: $domain")" = "upstream $id" ]; do
  [ $((SECONDS - t0)) -ge 20 ] && fail "$domain not served through NPM within 20s (status $(status))"
  sleep 1
done
ok "Host: $domain answered by the upstream through NPM ($((SECONDS - t0))s after the API)"
r=$(req GET "http://127.0.0.1:$http_port/" -H 'Host: unknown.npmimg.test')
[ "$(status)" = 200 ] && grep -q 'Default Site' <<<"$r" \
  && ok "unknown Host -> 200 Default Site (as NPM)" || fail "unknown host: $(status)"
docker exec "$name-npm" grep -q 'valid=10s' /etc/nginx/conf.d/include/resolvers.conf \
  && ok "resolvers.conf generated at start (valid=10s)" || fail "resolvers.conf"

echo "[npm-smoke] PASS: $pass checks in $((SECONDS - t_start))s"
