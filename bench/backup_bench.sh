#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Backup cost against a plain pg_dump of the same database, measured in one run on
# the sandbox production server (start it with `make demo` first).
#   bash bench/backup_bench.sh [ROWS]      (default 1,500,000 rows, about 400 MB in PostgreSQL)
# Prints the seconds of each and the ratios: backup (dump + archives + manifest + retention)
# without and with the restore verification, over the plain pg_dump.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1500000}
key=.cache/platform/ssh/id_ed25519
ssh_host() { ssh -q -i "$key" -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null deploy@127.0.0.1 "$@"; }
compose="docker compose -p avatar-production -f /opt/deploy-avatar-prod/docker-compose.prod.yml"
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

ssh_host "$compose exec -T db psql -q -U directus -d directus -c \"DROP TABLE IF EXISTS bench_blob; CREATE TABLE bench_blob AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS payload FROM generate_series(1, $rows) g;\""
size=$(ssh_host "$compose exec -T db psql -At -U directus -d directus -c \"SELECT pg_size_pretty(pg_database_size('directus'))\"")
echo "database: $size ($rows rows in bench_blob)"

t0=$(now)
ssh_host "$compose exec -T db pg_dump -Fc -U directus -d directus > /tmp/bench-plain.dump && ls -l /tmp/bench-plain.dump && rm -f /tmp/bench-plain.dump" >/dev/null
plain=$(calc "$(now) - $t0")

t0=$(now)
.venv/bin/ansible-playbook -i inventories/sandbox playbooks/backup.yml --limit production -e backup_verify=false >/dev/null
backup=$(calc "$(now) - $t0")

t0=$(now)
.venv/bin/ansible-playbook -i inventories/sandbox playbooks/backup.yml --limit production >/dev/null
verified=$(calc "$(now) - $t0")

ssh_host "$compose exec -T db psql -q -U directus -d directus -c 'DROP TABLE bench_blob'"
printf 'plain pg_dump        %6.1f s\n' "$plain"
printf 'backup, no verify    %6.1f s  ratio %.2f\n' "$backup" "$(calc "$backup / $plain")"
printf 'backup, verified     %6.1f s  ratio %.2f\n' "$verified" "$(calc "$verified / $plain")"
