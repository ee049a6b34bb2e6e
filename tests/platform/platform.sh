#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The local test world: a GHCR stand-in (Distribution 2.8 with TLS and auth)
# and bare Debian 13 servers reached over SSH on 127.0.0.1.
#
#   platform.sh images                  build every image the tests need (reuses existing ones;
#                                       the real NPM needs its source, see build-npm-image.sh)
#   platform.sh registry                start the registry and push the release images into it
#   platform.sh server NAME SSH HTTP    start a bare server (sshd on 127.0.0.1:SSH, its port 80 on 127.0.0.1:HTTP)
#   platform.sh fresh-server NAME SSH HTTP   the same, removing an old one and its Docker data first
#   platform.sh rm NAME...              remove servers and their Docker data
#   platform.sh stop-registry|start-registry   take the registry away / bring it back (tests of outages)
#   platform.sh cut-registry|restore-registry SERVER   the same for one server only (the others keep pulling)
#   platform.sh down                    remove every platform container, volume and the network
#   platform.sh env                     print the paths and names the tests use
#
# State (CA, certificates, SSH key, htpasswd) lives in .cache/platform (git-ignored).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${AVATAR_PLATFORM_STATE:-$root/.cache/platform}
net=avatar-test
registry_name=avatar-registry
registry_host=ghcr.avatar.test
registry_port=${AVATAR_REGISTRY_PORT:-5443}
registry_user=avatar-bot
registry_volume=avatar-registry-data
vault_pass=$root/inventories/sandbox/vault-password.txt
vault_file=$root/inventories/sandbox/group_vars/all/vault.yml
venv=${VENV:-$root/.venv}

log() { printf '[platform] %s\n' "$*" >&2; }
die() { printf '[platform] error: %s\n' "$*" >&2; exit 1; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_image() { # ref dir [build args...]
  local ref=$1 dir=$2; shift 2
  if have_image "$ref" && [ "${FORCE:-0}" != 1 ]; then return; fi
  log "building $ref"
  docker build -q "$@" -t "$ref" "$dir" >/dev/null
}

cmd_images() {
  bash "$here/build-bases.sh"
  build_image avatar-test/server:trixie "$here/images/server"
  build_image avatar-test/registry:2.8 "$here/images/registry"
  bash "$here/build-npm-image.sh"
  # Retired: the plain-nginx stand-in proxy (the real nginx-proxy-manager replaced it).
  if have_image avatar-test/nginx-proxy-manager:latest; then docker image rm avatar-test/nginx-proxy-manager:latest >/dev/null; fi
  bash "$here/build-app-images.sh"
}

# --- secrets of the sandbox ------------------------------------------------
registry_password() {
  # The sandbox's registry token lives in the sandbox vault like a real one would (an inline !vault
  # value; hack/vault_inline.py is the one reader, molecule/shared/avatar_testlib.py uses it too).
  "$venv/bin/python" "$root/hack/vault_inline.py" view --name vault_ghcr_token \
    --vault-id "sandbox@$vault_pass" "$vault_file"
}

ensure_ca() {
  mkdir -p "$state/ca" "$state/registry" "$state/ssh/authorized_keys"
  chmod 0700 "$state"
  if [ ! -f "$state/ca/ca.crt" ]; then
    log "making the test CA and the registry certificate"
    # Extensions that strict X.509 verification (Python 3.13+) insists on.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=avatar-test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" \
      -keyout "$state/ca/ca.key" -out "$state/ca/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$registry_host" \
      -keyout "$state/registry/registry.key" -out "$state/registry/registry.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:$registry_host,DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "basicConstraints=critical,CA:FALSE" \
      "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" \
      >"$state/registry/ext.cnf"
    openssl x509 -req -in "$state/registry/registry.csr" -CA "$state/ca/ca.crt" -CAkey "$state/ca/ca.key" \
      -CAcreateserial -days 3650 -extfile "$state/registry/ext.cnf" -out "$state/registry/registry.crt" 2>/dev/null
    # Chain file so clients that only trust the CA verify the server.
    cat "$state/registry/registry.crt" "$state/ca/ca.crt" >"$state/registry/chain.crt"
  fi
  if [ ! -f "$state/proxy/tls.crt" ]; then
    # The certificate the sandbox uploads to nginx-proxy-manager (npm_proxy role) for its
    # domains, signed by the test CA so tests can verify HTTPS through the proxy.
    log "making the proxy certificate for the sandbox domains"
    mkdir -p "$state/proxy"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=daidai.amis.hk" \
      -keyout "$state/proxy/tls.key" -out "$state/proxy/tls.csr" 2>/dev/null
    printf '%s\n' \
      "subjectAltName=DNS:daidai.amis.hk,DNS:*.daidai.amis.hk,DNS:daidai-preview.amis.hk,DNS:*.daidai-preview.amis.hk" \
      "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "basicConstraints=critical,CA:FALSE" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" \
      >"$state/proxy/ext.cnf"
    openssl x509 -req -in "$state/proxy/tls.csr" -CA "$state/ca/ca.crt" -CAkey "$state/ca/ca.key" \
      -CAcreateserial -days 3650 -extfile "$state/proxy/ext.cnf" -out "$state/proxy/tls.crt" 2>/dev/null
    chmod 0600 "$state/proxy/tls.key"
  fi
  if [ ! -f "$state/ssh/id_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C avatar-test -f "$state/ssh/id_ed25519"
  fi
  cp "$state/ssh/id_ed25519.pub" "$state/ssh/authorized_keys/deploy"
  chmod 0755 "$state/ssh/authorized_keys"; chmod 0644 "$state/ssh/authorized_keys/deploy"
}

ensure_network() {
  docker network inspect "$net" >/dev/null 2>&1 || docker network create "$net" >/dev/null
}

registry_config() {
  cat <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :443
  tls:
    certificate: /certs/chain.crt
    key: /certs/registry.key
auth:
  htpasswd:
    realm: avatar-test
    path: /auth/htpasswd
YAML
}

# A container made from another checkout (or from state since made anew) mounts
# another CA and key: replace it. The label names the state folder and its CA.
state_id() { echo "$state:$(sha256sum "$state/ca/ca.crt" | cut -c1-16)"; }
foreign() { [ "$(docker inspect -f '{{index .Config.Labels "avatar-test.state"}}' "$1" 2>/dev/null)" != "$(state_id)" ]; }

registry_running() { [ "$(docker inspect -f '{{.State.Running}}' "$registry_name" 2>/dev/null)" = true ]; }

start_registry() {
  ensure_ca; ensure_network
  local pw; pw=$(registry_password)
  # Scenarios started together all call this while the registry serves: a file already right is left alone,
  # and a new one replaces the old in one rename (the registry never reads a half-written file).
  # Each caller writes its own temporary file (.new.<pid>): a name shared by callers at once was removed or
  # renamed by one under another's cmp or mv ("mv: cannot stat ...config.yml.new" in a make test).
  if ! htpasswd -vb "$state/registry/htpasswd" "$registry_user" "$pw" >/dev/null 2>&1; then
    htpasswd -Bbn "$registry_user" "$pw" >"$state/registry/htpasswd.new.$$"
    mv -f "$state/registry/htpasswd.new.$$" "$state/registry/htpasswd"
  fi
  registry_config >"$state/registry/config.yml.new.$$"
  if cmp -s "$state/registry/config.yml.new.$$" "$state/registry/config.yml"; then
    rm -f "$state/registry/config.yml.new.$$"
  else
    mv -f "$state/registry/config.yml.new.$$" "$state/registry/config.yml"
  fi
  # Another checkout's registry, or one seeded with other release images: its storage goes
  # with it, so the registry holds exactly this checkout's seed list (tests read its tag list).
  if docker inspect "$registry_name" >/dev/null 2>&1 \
     && { foreign "$registry_name" || [ "$(cat "$state/registry/seeded" 2>/dev/null)" != "$(seed_stamp)" ]; }; then
    log "replacing a registry made from another checkout or seed list (its storage too)"
    docker rm -f "$registry_name" >/dev/null
    docker volume rm -f "$registry_volume" >/dev/null 2>&1 || true
    rm -f "$state/registry/seeded"
  fi
  if docker inspect "$registry_name" >/dev/null 2>&1; then
    registry_running || docker start "$registry_name" >/dev/null
  else
    docker run -d --name "$registry_name" --network "$net" --network-alias "$registry_host" \
      --label avatar-test.platform=registry --label "avatar-test.state=$(state_id)" --restart unless-stopped \
      -p "127.0.0.1:$registry_port:443" \
      -v "$registry_volume:/var/lib/registry" \
      -v "$state/registry:/certs:ro" -v "$state/registry:/auth:ro" \
      -v "$state/registry/config.yml:/etc/docker/registry/config.yml:ro" \
      avatar-test/registry:2.8 >/dev/null
  fi
  local code
  for _ in $(seq 1 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$state/ca/ca.crt" "https://localhost:$registry_port/v2/" || true)
    [ "$code" = 401 ] && return 0
    sleep 0.2
  done
  die "registry did not answer on 127.0.0.1:$registry_port (last HTTP code: ${code:-none})"
}

# local image -> repository:tag in the registry
seed_list() {
  local v
  for v in v1.0.0 v1.1.0 v1.2.0 v1.2.1 v1.2.2 v1.2.3 v1.3.0-beta.1; do
    echo "avatar-test/api:$v rayhu/avatar-mgmt/api:$v"
    echo "avatar-test/frontend:$v rayhu/avatar-mgmt/frontend:$v"
  done
  for img in api frontend; do
    echo "avatar-test/$img:v1.2.0 rayhu/avatar-mgmt/$img:latest"
    echo "avatar-test/$img:v1.3.0-beta.1 rayhu/avatar-mgmt/$img:staging"
    # Tags that are not releases, which resolution must ignore.
    echo "avatar-test/$img:v1.3.0-beta.1 rayhu/avatar-mgmt/$img:sha-3f2a9c1"
    echo "avatar-test/$img:v1.3.0-beta.1 rayhu/avatar-mgmt/$img:main"
  done
  echo "avatar-test/postgres:15.7 library/postgres:15.7"
  echo "avatar-test/directus:11.8.0 directus/directus:11.8.0"
  echo "avatar-test/npm:2.15.1 jc21/nginx-proxy-manager:2.15.1"                    # the real NPM, built from source
}

# What the seed list pushes (tags and image ids), as a short hash.
seed_stamp() {
  seed_list | while read -r src dst; do echo "$dst $(docker image inspect -f '{{.Id}}' "$src")"; done | sha256sum | cut -c1-16
}

seed_registry() {
  local cfg="$state/docker-config" stamp="$state/registry/seeded" want
  mkdir -p "$cfg"
  want=$(seed_stamp)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
     && curl -sf -u "$registry_user:$(registry_password)" --cacert "$state/ca/ca.crt" \
          "https://localhost:$registry_port/v2/rayhu/avatar-mgmt/api/tags/list" | grep -q staging; then
    log "registry already holds the release images"; return
  fi
  log "pushing release images into the registry"
  registry_password | DOCKER_CONFIG=$cfg docker login -u "$registry_user" --password-stdin "127.0.0.1:$registry_port" >/dev/null
  seed_list | while read -r src dst; do
    docker tag "$src" "127.0.0.1:$registry_port/$dst"
    DOCKER_CONFIG=$cfg docker push -q "127.0.0.1:$registry_port/$dst" >/dev/null
    docker rmi "127.0.0.1:$registry_port/$dst" >/dev/null
  done
  DOCKER_CONFIG=$cfg docker logout "127.0.0.1:$registry_port" >/dev/null
  echo "$want" >"$stamp"
}

cmd_registry() { start_registry; seed_registry; log "registry ready: $registry_host (127.0.0.1:$registry_port)"; }

start_server() { # name ssh http
  local name=$1 ssh=$2 http=$3
  ensure_ca; ensure_network
  if docker inspect "$name" >/dev/null 2>&1 && foreign "$name"; then remove_servers "$name"; fi
  if ! docker inspect "$name" >/dev/null 2>&1; then
    # A new server is bare: no Docker data left over from an earlier one of that name.
    docker volume rm -f "$name-docker" >/dev/null 2>&1 || true
    # OpenSSH 10 penalises a source address whose connections end before authenticating (the host-key tests
    # refuse keys on purpose), then closes its connections at once: every test connects from that one address.
    printf 'PerSourcePenalties no\n' >"$state/ssh/sshd-test.conf"
    docker run -d --name "$name" --hostname "$name" --network "$net" \
      --label avatar-test.platform=server --label "avatar-test.state=$(state_id)" \
      --sysctl net.ipv6.conf.all.disable_ipv6=0 --sysctl net.ipv6.conf.default.disable_ipv6=0 \
      --cap-add=ALL --cap-drop=SYS_RESOURCE \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
      --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      -v "$name-docker:/var/lib/docker" \
      -v "$state/ssh/authorized_keys:/etc/ssh/authorized_keys:ro" \
      -v "$state/ssh/sshd-test.conf:/etc/ssh/sshd_config.d/zz-avatar-test.conf:ro" \
      -p "127.0.0.1:$ssh:22" -p "127.0.0.1:$http:80" \
      avatar-test/server:trixie >/dev/null
  elif [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
    docker start "$name" >/dev/null
  fi
  for _ in $(seq 1 100); do
    if ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 \
         -i "$state/ssh/id_ed25519" -p "$ssh" deploy@127.0.0.1 true 2>/dev/null; then
      log "server $name ready (ssh 127.0.0.1:$ssh, http 127.0.0.1:$http)"; return 0
    fi
    sleep 0.3
  done
  die "server $name did not accept SSH on 127.0.0.1:$ssh"
}

remove_servers() {
  local name
  for name in "$@"; do
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker volume rm -f "$name-docker" >/dev/null 2>&1 || true
  done
}

cmd_down() {
  local ids
  ids=$(docker ps -aq --filter label=avatar-test.platform)
  if [ -n "$ids" ]; then
    local idlist
    mapfile -t idlist <<<"$ids"
    for n in $(docker inspect -f '{{.Name}}' "${idlist[@]}" | tr -d /); do remove_servers "$n"; done
  fi
  docker volume rm -f "$registry_volume" >/dev/null 2>&1 || true
  rm -f "$state/registry/seeded"
  docker network rm "$net" >/dev/null 2>&1 || true
}

case ${1:-} in
  images) cmd_images ;;
  registry) cmd_registry ;;
  server) shift; start_server "$@" ;;
  fresh-server) shift; remove_servers "$1"; start_server "$@" ;;
  rm) shift; remove_servers "$@" ;;
  stop-registry) docker stop "$registry_name" >/dev/null ;;
  start-registry) start_registry ;;
  cut-registry)
    # One server loses the registry: its name resolves to the server itself, where the stack's own proxy
    # (or nothing) answers on 443, so pulls and logins fail; the registry keeps serving every other
    # server and the control node.
    docker exec "$2" sh -c "grep -q '# cut-registry' /etc/hosts || echo '127.0.0.1 $registry_host # cut-registry' >>/etc/hosts" ;;
  restore-registry)
    # /etc/hosts is bind-mounted by Docker: rewritten in place, not replaced.
    docker exec "$2" sh -c "grep -v '# cut-registry' /etc/hosts >/tmp/hosts.restore && cat /tmp/hosts.restore >/etc/hosts && rm -f /tmp/hosts.restore" ;;
  down) cmd_down ;;
  env)
    echo "AVATAR_PLATFORM_STATE=$state"
    echo "AVATAR_REGISTRY=$registry_host"
    echo "AVATAR_REGISTRY_LOCAL=127.0.0.1:$registry_port"
    echo "AVATAR_REGISTRY_USER=$registry_user"
    echo "AVATAR_CA=$state/ca/ca.crt"
    echo "AVATAR_SSH_KEY=$state/ssh/id_ed25519"
    ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
