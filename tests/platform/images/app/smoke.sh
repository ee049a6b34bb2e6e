#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Smoke test of the stand-in application images working together behind the real
# nginx-proxy-manager 2.15.1 (avatar-test/npm:2.15.1), compose project "appsmoke".
# NPM starts empty; once the stack is up, this script logs in to NPM's API and creates the
# three proxy hosts, then checks everything through NPM by Host header.
# Traffic goes only to 127.0.0.1 (the proxy's published ports) and into the project's containers.
# Usage: tests/platform/images/app/smoke.sh        (KEEP=1 leaves the stack up for inspection)
# Checks read `check && ok "what" || fail "what"`: ok only prints and returns 0,
# so fail runs exactly when the check fails, which is what SC2015 warns about.
# shellcheck disable=SC2015
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export COMPOSE_FILE=$here/compose-smoke.yml COMPOSE_PROJECT_NAME=appsmoke
dc() { docker compose -p appsmoke -f "$COMPOSE_FILE" "$@"; }
t_start=$SECONDS
pass=0
ok()   { pass=$((pass + 1)); echo "  ok   $*"; }
fail() { echo "  FAIL $*" >&2; dc ps -a >&2 || true; dc logs --no-color --tail 30 >&2 || true; exit 1; }

"$here/../../build-app-images.sh" >/dev/null   # no-op when the images exist
bash "$here/../../build-npm-image.sh" >/dev/null   # no-op when avatar-test/npm:2.15.1 exists

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rand() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }
SMOKE_DIR=$(mktemp -d /tmp/appsmoke.XXXXXX)
export SMOKE_DIR SMOKE_PROXY_PORT SMOKE_ADMIN_PORT
SMOKE_PROXY_PORT=$(free_port); SMOKE_ADMIN_PORT=$(free_port)
SMOKE_DB_PASSWORD=$(rand) SMOKE_KEY=$(rand) SMOKE_SECRET=$(rand) SMOKE_ADMIN_PASSWORD=$(rand) \
  SMOKE_ADMIN_TOKEN=$(rand) SMOKE_OPENAI_API_KEY=sk-$(rand) SMOKE_NPM_PASSWORD=$(rand) SMOKE_NPM_EMAIL=admin@appsmoke.test
export SMOKE_DB_PASSWORD SMOKE_KEY SMOKE_SECRET SMOKE_ADMIN_PASSWORD SMOKE_ADMIN_TOKEN SMOKE_OPENAI_API_KEY \
  SMOKE_NPM_PASSWORD SMOKE_NPM_EMAIL \
  API_TAG=v1.2.0 FRONTEND_TAG=v1.2.0
mkdir -p "$SMOKE_DIR"/directus/{uploads,extensions,schemas} "$SMOKE_DIR"/jc21/{data,letsencrypt}
chown -R 1000:1000 "$SMOKE_DIR/directus"      # Directus runs as node (uid 1000), as upstream
cleanup() {
  local rc=$?
  if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: stack left up, dir $SMOKE_DIR"; exit $rc; fi
  docker rm -f appsmoke-ipholder >/dev/null 2>&1 || true
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$SMOKE_DIR"
  exit $rc
}
trap cleanup EXIT

BASE=http://127.0.0.1:$SMOKE_PROXY_PORT
req() {  # req HOST PATH [curl args...]  -> body on stdout; status in $SMOKE_DIR/status
  local host=$1 path=$2; shift 2
  curl -sS --max-time 5 -o "$SMOKE_DIR/body" -w '%{http_code}' -H "Host: $host" "$@" "$BASE$path" >"$SMOKE_DIR/status" || true
  cat "$SMOKE_DIR/body" 2>/dev/null || true
}
status() { cat "$SMOKE_DIR/status"; }
ADMIN=http://127.0.0.1:$SMOKE_ADMIN_PORT/api
areq() {  # areq METHOD PATH [curl args...] -> NPM API body on stdout; status in $SMOKE_DIR/status
  local method=$1 path=$2; shift 2
  curl -sS --max-time 10 -o "$SMOKE_DIR/body" -w '%{http_code}' -X "$method" "$@" "$ADMIN$path" >"$SMOKE_DIR/status" 2>/dev/null \
    || echo 000 >"$SMOKE_DIR/status"
  cat "$SMOKE_DIR/body" 2>/dev/null || true
}
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if k.isdigit() else d[k]
print(d)' "$1"; }
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$(dc ps -q "$1")" 2>/dev/null || echo missing; }
wait_healthy() {  # wait_healthy DEADLINE_SECONDS service...
  local limit=$1 t0=$SECONDS s pending; shift
  while :; do
    pending=""
    for s in "$@"; do [ "$(health_of "$s")" = healthy ] || pending="$pending $s"; done
    [ -z "$pending" ] && { echo "  all healthy after $((SECONDS - t0))s:$(printf ' %s' "$@")"; return 0; }
    [ $((SECONDS - t0)) -ge "$limit" ] && fail "not healthy after ${limit}s:$pending"
    sleep 1
  done
}

echo "[smoke] up (proxy on 127.0.0.1:$SMOKE_PROXY_PORT, admin :$SMOKE_ADMIN_PORT, dir $SMOKE_DIR)"
dc up -d --quiet-pull 2>&1 | sed 's/^/  /'
wait_healthy 120 db directus api frontend proxy

echo "[smoke] NPM: wait for its API, log in, create the proxy hosts"
t0=$SECONDS
until a=$(areq GET /) && [ "$(jq -r .status <<<"$a" 2>/dev/null)" = OK ] && [ "$(jq -r .setup <<<"$a" 2>/dev/null)" = true ]; do
  [ $((SECONDS - t0)) -ge 60 ] && fail "NPM API not ready (status OK, setup true) within 60s: $(status) $a"
  sleep 1
done
ok "NPM API ready (status OK, initial admin set up) after $((SECONDS - t0))s"
r=$(areq POST /tokens -H 'Content-Type: application/json' \
  -d "$(jq -n --arg i "$SMOKE_NPM_EMAIL" --arg s "$SMOKE_NPM_PASSWORD" '{identity: $i, secret: $s}')")
token=$(jq -er .token <<<"$r" 2>/dev/null) || fail "NPM login: $(status) $r"
NPM_AUTH="Authorization: Bearer $token"
declare -A host_id=()
for route in daidai.amis.hk=frontend:80 api.daidai.amis.hk=api:3000 directus.daidai.amis.hk=directus:8055; do
  domain=${route%%=*} upstream=${route#*=}
  r=$(areq POST /nginx/proxy-hosts -H "$NPM_AUTH" -H 'Content-Type: application/json' -d "$(jq -n \
    --arg d "$domain" --arg h "${upstream%:*}" --argjson p "${upstream##*:}" \
    '{domain_names: [$d], forward_scheme: "http", forward_host: $h, forward_port: $p,
      block_exploits: false, allow_websocket_upgrade: false, access_list_id: 0, certificate_id: 0}')")
  [ "$(status)" = 201 ] && host_id[$domain]=$(jq -er .id <<<"$r") || fail "POST proxy host $domain: $(status) $r"
  # A 201 does not prove nginx took the config: NPM reports that in meta.nginx_online.
  r=$(areq GET "/nginx/proxy-hosts/${host_id[$domain]}" -H "$NPM_AUTH")
  [ "$(jq -r .meta.nginx_online <<<"$r")" = true ] || fail "proxy host $domain not online: $r"
done
ok "proxy hosts created, nginx_online: $(for d in "${!host_id[@]}"; do printf '%s=%s ' "$d" "${host_id[$d]}"; done)"
# NPM reloads nginx asynchronously after answering: poll each domain, bounded.
t0=$SECONDS
for d in api.daidai.amis.hk directus.daidai.amis.hk daidai.amis.hk; do
  until req "$d" / >/dev/null && [ "$(status)" != 000 ] && ! grep -q 'Default Site' "$SMOKE_DIR/body"; do
    [ $((SECONDS - t0)) -ge 20 ] && fail "$d not served by its upstream within 20s ($(status))"
    sleep 1
  done
done
ok "NPM serves the three domains ($((SECONDS - t0))s after the API)"

echo "[smoke] checks through the proxy"
[ "$(req api.daidai.amis.hk /health)" = ok ] && [ "$(status)" = 200 ] && ok "api /health == ok" || fail "api /health: $(status)"
v=$(req api.daidai.amis.hk /api/version)
[ "$(jget backend.version <<<"$v")" = v1.2.0 ] && [ "$(jget frontend.version <<<"$v")" = v1.2.0 ] \
  && [ "$(jget system.environment <<<"$v")" = production ] && jget generatedAt <<<"$v" >/dev/null \
  && jget system.uptime <<<"$v" >/dev/null && jget backend.commitHash <<<"$v" >/dev/null \
  && ok "api /api/version backend.version == v1.2.0 (shape ok)" || fail "api /api/version: $v"
h=$(req directus.daidai.amis.hk /server/health)
[ "$(jget status <<<"$h")" = ok ] && ok "directus /server/health status ok" || fail "directus health: $h"

AUTH="Authorization: Bearer $SMOKE_ADMIN_TOKEN"
req directus.daidai.amis.hk /items/avatars >/dev/null
[ "$(status)" = 401 ] && ok "directus read without token -> 401" || fail "unauthenticated read: $(status)"
req directus.daidai.amis.hk /items/avatars -X POST -H 'Authorization: Bearer wrong' -H 'Content-Type: application/json' -d '{"name":"x"}' >/dev/null
[ "$(status)" = 401 ] && ok "directus write with wrong token -> 401" || fail "bad-token write: $(status)"
r=$(req directus.daidai.amis.hk /items/avatars -X POST -H "$AUTH" -H 'Content-Type: application/json' -d '{"name":"smoke-avatar-1"}')
id=$(jget data.id <<<"$r") && [ "$(jget data.name <<<"$r")" = smoke-avatar-1 ] || fail "POST avatar: $r"
r=$(req directus.daidai.amis.hk /items/avatars -H "$AUTH")
python3 -c 'import json,sys; rows=json.loads(sys.argv[1])["data"]; sys.exit(0 if any(x["id"]==int(sys.argv[2]) and x["name"]=="smoke-avatar-1" for x in rows) else 1)' "$r" "$id" \
  && ok "POST/GET avatar row (id $id)" || fail "GET avatars: $r"
n=$(dc exec -T db psql -U directus -d directus -Atc 'select count(*) from avatars')
[ "$n" -ge 1 ] && ok "row visible in PostgreSQL via psql ($n)" || fail "psql count: $n"

printf 'smoke file %s\n' "$SMOKE_KEY" >"$SMOKE_DIR/upload.bin"
r=$(req directus.daidai.amis.hk '/files?filename=smoke.txt' -X POST -H "$AUTH" -H 'Content-Type: application/octet-stream' --data-binary "@$SMOKE_DIR/upload.bin")
[ "$(jget data.filename_disk <<<"$r")" = smoke.txt ] && [ "$(jget data.filesize <<<"$r")" = "$(stat -c %s "$SMOKE_DIR/upload.bin")" ] || fail "POST file: $r"
req directus.daidai.amis.hk /assets/smoke.txt -H "$AUTH" >"$SMOKE_DIR/download.bin"
cmp -s "$SMOKE_DIR/upload.bin" "$SMOKE_DIR/download.bin" && cmp -s "$SMOKE_DIR/upload.bin" "$SMOKE_DIR/directus/uploads/smoke.txt" \
  && [ "$(stat -c %u "$SMOKE_DIR/directus/uploads/smoke.txt")" = 1000 ] \
  && ok "POST/GET file (bytes equal, on the bind mount, owned by uid 1000)" || fail "file round trip"
req directus.daidai.amis.hk '/files?filename=..%2Fescape' -X POST -H "$AUTH" --data-binary x >/dev/null
[ "$(status)" = 400 ] && [ ! -e "$SMOKE_DIR/directus/escape" ] && ok "file name with path separator rejected" || fail "traversal: $(status)"

p=$(req daidai.amis.hk /)
grep -q 'avatar-mgmt frontend v1.2.0' <<<"$p" && ok "frontend page shows v1.2.0" || fail "frontend page: $p"
c=$(req daidai.amis.hk /config.js)
python3 - "$c" <<'PY' && ok "frontend config.js carries the env (JSON-escaped)" || fail "config.js: $c"
import json, sys
src = sys.argv[1].strip()
prefix = "window.APP_CONFIG = "
assert src.startswith(prefix) and src.endswith(";"), src
cfg = json.loads(src[len(prefix):-1])
assert cfg["API_BASE_URL"] == "http://api.daidai.amis.hk"
assert cfg["DIRECTUS_BASE_URL"] == "http://directus.daidai.amis.hk"
assert cfg["APP_TITLE"] == 'Avatar "smoke" </script>' and "</script>" not in src
assert cfg["FEATURE_SHARING"] == "false" and cfg["APP_ENV"] == "production"
PY
[ "$(jget version <<<"$(req daidai.amis.hk /version.json)")" = v1.2.0 ] && ok "frontend /version.json" || fail "version.json"
p=$(req unknown.example.test /)
[ "$(status)" = 200 ] && grep -q 'Default Site' <<<"$p" && ok "unknown Host -> 200 'Default Site' (NPM's catch-all)" || fail "unknown host: $(status)"
a=$(areq GET /)
[ "$(jq -r '"\(.version.major).\(.version.minor).\(.version.revision)"' <<<"$a")" = 2.15.1 ] \
  && ok "proxy admin :81 /api/ status OK, version 2.15.1" || fail "admin: $a"
# NPM names each host's file after its numeric id, not after the domain.
for d in "${!host_id[@]}"; do
  f=$SMOKE_DIR/jc21/data/nginx/proxy_host/${host_id[$d]}.conf
  grep -Eq "server_name +$d *;" "$f" || fail "proxy_host file $f lacks server_name $d"
done
[ "$(find "$SMOKE_DIR/jc21/data/nginx/proxy_host" -name '*.conf' | wc -l)" = 3 ] \
  && ok "proxy routes stored in /data/nginx/proxy_host as <id>.conf ($(cd "$SMOKE_DIR/jc21/data/nginx/proxy_host" && echo *.conf))" \
  || fail "proxy_host files: $(ls "$SMOKE_DIR/jc21/data/nginx/proxy_host")"
# NPM 2.15.1 itself logs the initial admin password once, at first start ("[Setup] Creating a new
# user: <email> with password: <password>"): upstream behaviour, so that one line is expected and
# dropped; the password anywhere else, or any other secret anywhere, fails.
logs=$(dc logs --no-color 2>&1)
npm_setup_line="Creating a new user: $SMOKE_NPM_EMAIL with password: $SMOKE_NPM_PASSWORD"
[ "$(grep -cF "$npm_setup_line" <<<"$logs")" = 1 ] || fail "NPM's setup log line about the initial admin changed"
logs=$(grep -vF "$npm_setup_line" <<<"$logs")
for v in SMOKE_DB_PASSWORD SMOKE_KEY SMOKE_SECRET SMOKE_ADMIN_PASSWORD SMOKE_ADMIN_TOKEN SMOKE_OPENAI_API_KEY SMOKE_NPM_PASSWORD token; do
  grep -qF "${!v}" <<<"$logs" && fail "the value of $v appears in the container logs"
done
grep -q 'OPENAI_API_KEY' <<<"$(dc logs --no-color api)" \
  && ok "no secret values in any log (api logs env names only; NPM's admin password only in its setup line)" || fail "api env-name log"

echo "[smoke] recreate only api with v1.1.0"
before=$(dc ps -q db directus frontend proxy | sort); ip_before=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(dc ps -q api)")
t_rm=$SECONDS
API_TAG=v1.1.0 dc up -d api 2>&1 | sed 's/^/  /'
wait_healthy 30 api
ip_after=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(dc ps -q api)")
# NPM's nginx resolves "api" per request but keeps each answer for valid=10s (resolvers.conf),
# separately in every worker, so it may still send to the old address for up to 10 s after the
# recreate (when the address changed). Poll, bounded: 10 s + one request's 5 s timeout + margin.
until [ "$(jget backend.version <<<"$(req api.daidai.amis.hk /api/version)" 2>/dev/null)" = v1.1.0 ] \
  && [ "$(req api.daidai.amis.hk /health)" = ok ]; do
  [ $((SECONDS - t_rm)) -ge 20 ] && fail "after recreate: $(status) $(cat "$SMOKE_DIR/body")"
  sleep 1
done
ok "proxy routes to the recreated api (v1.1.0; ip $ip_before -> $ip_after; $((SECONDS - t_rm))s after the recreate began)"
[ "$(dc ps -q db directus frontend proxy | sort)" = "$before" ] && ok "db, directus, frontend, proxy untouched" || fail "other services were recreated"

echo "[smoke] force a new api address (a placeholder takes the old one) and follow it through DNS"
ip_before=$ip_after
dc rm -sf api >/dev/null 2>&1
t_rm=$SECONDS
docker run -d --rm --name appsmoke-ipholder --network appsmoke_avatar --ip "$ip_before" \
  avatar-test/debian:bookworm sleep 120 >/dev/null 2>&1 \
  || docker run -d --rm --name appsmoke-ipholder --network appsmoke_avatar avatar-test/debian:bookworm sleep 120 >/dev/null
API_TAG=v1.1.0 dc up -d api >/dev/null 2>&1
wait_healthy 30 api
ip_after=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(dc ps -q api)")
[ "$ip_after" != "$ip_before" ] || fail "api kept address $ip_before; cannot prove re-resolution"
# NPM's nginx keeps a DNS answer for valid=10s (per worker), so requests may still go to the old
# address (here the placeholder: refused, 502 at once) for up to 10 s after the old api left DNS.
# Poll, bounded from the removal: 10 s + one request's 5 s timeout + margin for the new api to
# start (the bound was 15 s when the proxy cached answers for 5 s).
until [ "$(req api.daidai.amis.hk /health)" = ok ]; do
  [ $((SECONDS - t_rm)) -ge 25 ] && fail "proxy did not follow api to $ip_after within 25s of the removal ($(status))"
  sleep 1
done
ok "proxy followed api from $ip_before to $ip_after, $((SECONDS - t_rm))s after the removal (no proxy restart or API call)"
docker rm -f appsmoke-ipholder >/dev/null

echo "[smoke] api v1.2.1 (broken release) must never become healthy"
API_TAG=v1.2.1 dc up -d api 2>&1 | sed 's/^/  /'
t0=$SECONDS; seen=""
while [ $((SECONDS - t0)) -lt 20 ]; do
  st=$(health_of api); seen="$seen $st"
  [ "$st" = healthy ] && fail "api v1.2.1 became healthy"
  sleep 1
done
[ "$(health_of api)" = unhealthy ] || fail "api v1.2.1 expected unhealthy after 20s, got $(health_of api)"
[ "$(jget backend.version <<<"$(req api.daidai.amis.hk /api/version)")" = v1.2.1 ] && [ "$(req api.daidai.amis.hk /health)" = starting ] \
  && [ "$(status)" = 503 ] && ok "v1.2.1 never healthy in 20s (now unhealthy); /health 503 'starting'; /api/version answers" \
  || fail "v1.2.1 behaviour"

echo "[smoke] PASS: $pass checks in $((SECONDS - t_start))s"
