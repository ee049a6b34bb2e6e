#!/usr/bin/env python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backup bench: backup.yml against a plain pg_dump, and the off-host copy night after night (issue 11).

In one run on the sandbox production server (tests/platform, inventories/sandbox), with a database of at
least --db-gb GB and --uploads-gb GB of Directus upload files (random bytes), measures:

  night 1          backup.yml with the off-host repository on a new backup host (sandbox-backup-1): the first
                   copy of the uploads (the backup_offsite module's own time)
  plain pg_dump    docker exec <db> pg_dump -Fc streamed to a file on the host's disk (the yardstick)
  backup           backup.yml -e backup_verify=false                 target <= 1.2x the plain pg_dump
                   (the two alternate --pairs times, default 2: the fastest of each side is its figure)
  backup verified  backup.yml (restore into a throwaway PostgreSQL)   target <= 2.5x the plain pg_dump
  night 2          backup.yml with the repository, uploads unchanged  target: its off-host copy < 10% of night 1's

Every command is the operator's (``ansible-playbook -i inventories/sandbox playbooks/backup.yml --limit
production``); the nights add the bench's inventory (the backup host and the production server's repository).
Results: .cache/bench/backup-<time>.txt and .json. Uses the Docker platform: run it under the EXCLUSIVE
platform lock. See bench/README.md.

Usage: .venv/bin/python bench/backup_bench.py [--no-platform] [--db-gb 1.0] [--uploads-gb 1.0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from deploy_bench import environment, task_profile

INVENTORY = os.path.join(ROOT, 'inventories', 'sandbox')
HOST = 'sandbox-prod-1'
SSH_PORT = 2222
HTTP_PORT = 8122
BACKUP_HOST = 'sandbox-backup-1'
BACKUP_SSH_PORT = 2223
BACKUP_HTTP_PORT = 8123
RELEASE = 'v1.2.0'
PROJECT_DIR = '/opt/deploy-avatar-prod'
PROJECT_NAME = 'avatar-production'
COMPOSE_FILE = 'docker-compose.prod.yml'
BACKUP_DIR = '/var/backups/avatar-mgmt/production'
UPLOADS = f'{PROJECT_DIR}/directus/uploads'
UPLOAD_PREFIX = 'bench-upload-'
UPLOAD_FILE_MB = 16
TABLE = 'bench_blob'
REPOSITORY_SETTINGS = '/etc/avatar-mgmt/backup/production'
# The plain dump goes where the backups go (the same filesystem), outside backup_dir.
PLAIN_DUMP = '/var/backups/avatar-mgmt/bench-plain.dump'
TARGETS = {'backup': 1.2, 'verified': 2.5, 'night2': 0.10}
GB = 1 << 30
# The db container, found on the host by its compose labels (a shell substitution).
DB_CONTAINER = (
    f'$(docker ps -qf label=com.docker.compose.project={PROJECT_NAME} -f label=com.docker.compose.service=db)'
)

ENV = environment()
STATE = ENV['AVATAR_PLATFORM_STATE']


def log(msg):
    print(f'[backup-bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def run(argv, check=True, capture=True, env=None):
    proc = subprocess.run(argv, cwd=ROOT, env=env or ENV, text=True, capture_output=capture, check=False)
    if check and proc.returncode != 0:
        tail = (proc.stdout or '')[-3000:] + (proc.stderr or '')[-2000:]
        raise SystemExit(f'backup bench: {shlex.join(argv)} failed with exit {proc.returncode}:\n{tail}')
    return proc


def ssh(command, port=SSH_PORT, check=True):
    """A command on a sandbox server as its deploy user (sudo where root is needed)."""
    key = os.path.join(STATE, 'ssh', 'id_ed25519')
    argv = ['ssh', '-q', '-i', key, '-p', str(port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no']
    argv += ['-o', 'UserKnownHostsFile=/dev/null', 'deploy@127.0.0.1', command]
    return run(argv, check=check)


def platform(*args):
    return run(['bash', 'tests/platform/platform.sh', *args], capture=False)


def playbook(path, *extra, inventories=(INVENTORY,)):
    argv = ['ansible-playbook', path]
    for inv in inventories:
        argv += ['-i', inv]
    return [*argv, *extra]


def psql(sql):
    """One statement in the production database (psql -At); its output."""
    cmd = (
        f'docker exec -i {DB_CONTAINER} psql -X -q -At -v ON_ERROR_STOP=1 -U directus -d directus -c {shlex.quote(sql)}'
    )
    return ssh(cmd).stdout.strip()


# --- setup (not timed) ---------------------------------------------------------------


def setup(args, workdir):
    if not args.no_platform:
        run(['bash', 'hack/ensure-docker.sh'], capture=False)
        platform('registry')
        platform('server', HOST, str(SSH_PORT), str(HTTP_PORT))
        log('bootstrap and deploy (not timed)')
        run(playbook('bootstrap.yml', '--limit', 'production'), capture=False)
        run(playbook('deploy.yml', '--limit', 'production', '-e', f'image_tag={RELEASE}'), capture=False)
    # The backup host is the bench's own and always new: night 1 is the first copy into a new repository.
    log(f'a new backup host {BACKUP_HOST} (ssh 127.0.0.1:{BACKUP_SSH_PORT})')
    platform('fresh-server', BACKUP_HOST, str(BACKUP_SSH_PORT), str(BACKUP_HTTP_PORT))
    # As an operator does: the backup host's key read on the host itself (never scanned over the network).
    key = ssh('cat /etc/ssh/ssh_host_ed25519_key.pub', port=BACKUP_SSH_PORT).stdout.split()[:2]
    inventory = os.path.join(workdir, 'hosts.yml')
    with open(inventory, 'w', encoding='utf-8') as handle:
        handle.write(bench_inventory(' '.join(key)))
    run(playbook('backup_server.yml', '--limit', 'backup_servers', inventories=(INVENTORY, inventory)), capture=False)
    return inventory


def bench_inventory(host_key):
    """The bench's inventory beside the sandbox one: the backup host, and the production server's repository."""
    return f"""# Written by bench/backup_bench.py: used beside inventories/sandbox for the nights of the backup bench.
---
all:
  children:
    sandbox:
      children:
        backup_servers:
          hosts:
            {BACKUP_HOST}:
              ansible_port: {BACKUP_SSH_PORT}
              avatar_sandbox_http_port: {BACKUP_HTTP_PORT}
              restic_server_accounts:
                - user: avatar-production
                  private_key: "{{{{ vault_backup_repository_ssh_key }}}}"
        production:
          hosts:
            {HOST}:
              backup_repository: sftp:avatar-production@{BACKUP_HOST}:/repo
              backup_repository_password: "{{{{ vault_backup_repository_password }}}}"
              backup_repository_ssh_key: "{{{{ vault_backup_repository_ssh_key }}}}"
              backup_repository_known_hosts: "{BACKUP_HOST} {host_key}"
"""


def fill_database(target_gb):
    """Rows of incompressible-ish text in bench_blob until pg_database_size reaches the target; its size."""
    psql(f'DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id bigint, payload text)')
    batch = 1_000_000
    start = 0
    size = int(psql("SELECT pg_database_size('directus')"))
    while size < target_gb * GB:
        # Six md5s of random numbers a row (192 hex characters): pg_dump's compression halves it, no more.
        payload = ' || '.join(['md5(random()::text)'] * 6)
        psql(f'INSERT INTO {TABLE} SELECT g, {payload} FROM generate_series({start + 1}, {start + batch}) g')
        start += batch
        size = int(psql("SELECT pg_database_size('directus')"))
        log(f'database: {size / GB:.2f} GB ({start} rows in {TABLE})')
    psql(f'VACUUM ANALYZE {TABLE}')
    return {'bytes': size, 'rows': start, 'pretty': psql("SELECT pg_size_pretty(pg_database_size('directus'))")}


def write_uploads(target_gb):
    """Files of random bytes in the Directus uploads folder, owned by Directus' user; their count and bytes."""
    count = max(1, int(-(-target_gb * 1024 // UPLOAD_FILE_MB)))
    script = (
        f'set -e; for i in $(seq -w 1 {count}); do f={UPLOADS}/{UPLOAD_PREFIX}$i.bin; '
        f'head -c {UPLOAD_FILE_MB}M /dev/urandom >$f; done; '
        f'chown 1000:1000 {UPLOADS}/{UPLOAD_PREFIX}*; chmod 0644 {UPLOADS}/{UPLOAD_PREFIX}*; '
        f'du -sb --apparent-size {UPLOADS} | cut -f1; ls {UPLOADS} | wc -l'
    )
    out = ssh(f'sudo sh -c {shlex.quote(script)}').stdout.split()
    return {'bench_files': count, 'bench_bytes': count * UPLOAD_FILE_MB << 20, 'folder_bytes': int(out[0]),
            'folder_files': int(out[1])}  # fmt: skip


def cleanup(backup_ids):
    log('cleaning up: bench table, upload files, plain dump, the backups the bench took, the backup host')
    ssh(f'sudo rm -f {UPLOADS}/{UPLOAD_PREFIX}*.bin {PLAIN_DUMP}', check=False)
    # The repository's settings (the sandbox vault's password and key) and restic's cache of it.
    ssh(f'sudo rm -rf {REPOSITORY_SETTINGS} /root/.cache/restic', check=False)
    # The snapshot the bench's copies recorded as the next parent: the next bench's backup host is a new one.
    ssh(f'sudo rm -f {BACKUP_DIR}/.offsite-parents.json', check=False)
    for backup_id in backup_ids:
        if backup_id:
            ssh(f'sudo rm -rf {BACKUP_DIR}/{backup_id}', check=False)
    try:
        psql(f'DROP TABLE IF EXISTS {TABLE}')
    except SystemExit as exc:
        log(f'could not drop {TABLE}: {exc}')
    platform('rm', BACKUP_HOST)


# --- measurements ----------------------------------------------------------------


def plain_dump():
    """The yardstick: pg_dump -Fc streamed out of the db container to a file on the host's disk."""
    inner = f'docker exec {DB_CONTAINER} pg_dump -U directus -d directus -Fc >{PLAIN_DUMP}'
    start = time.monotonic()
    ssh(f'sudo sh -c {shlex.quote(inner)}')
    seconds = time.monotonic() - start
    size = int(ssh(f'sudo stat -c %s {PLAIN_DUMP}').stdout)
    ssh(f'sudo rm -f {PLAIN_DUMP}')
    return {'seconds': round(seconds, 2), 'dump_bytes': size}


def timed_backup(label, workdir, extra=(), inventories=(INVENTORY,)):
    """backup.yml as the operator types it; wall time, the modules' own timings, the task profile."""
    tasks_file = os.path.join(workdir, f'{label}.tasks.json')
    ssh_log = os.path.join(workdir, f'{label}.ssh.log')
    env = dict(ENV)
    env.update(
        {
            'ANSIBLE_CALLBACK_PLUGINS': os.path.join(HERE, 'callback_plugins'),
            # ansible.cfg's callbacks (this variable replaces its list), then the bench's.
            'ANSIBLE_CALLBACKS_ENABLED': 'avatar_mgmt.ops.decrypt_once,bench_tasks',
            'BENCH_TASKS_FILE': tasks_file,
            'BENCH_SSH_LOG': ssh_log,
            'ANSIBLE_SSH_EXECUTABLE': os.path.join(HERE, 'bin', 'ssh'),
            'ANSIBLE_SFTP_EXECUTABLE': os.path.join(HERE, 'bin', 'sftp'),
            'ANSIBLE_SCP_EXECUTABLE': os.path.join(HERE, 'bin', 'scp'),
        }
    )
    argv = playbook('playbooks/backup.yml', '--limit', 'production', *extra, inventories=inventories)
    start = time.monotonic()
    proc = run(argv, check=False, env=env)
    wall = time.monotonic() - start
    with open(os.path.join(workdir, f'{label}.out'), 'w', encoding='utf-8') as handle:
        handle.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(
            f'backup bench: {shlex.join(argv)} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}'
        )
    modules = module_results(tasks_file)
    created = modules.get('backup_create', {})
    offsite = modules.get('backup_offsite', {})
    sample = {
        'label': label,
        'command': shlex.join(argv),
        'seconds': round(wall, 2),
        'backup_id': created.get('id', ''),
        'create_timings': created.get('timings', {}),
        'offsite_timings': offsite.get('timings', {}),
        'offsite': {k: v for k, v in offsite.items() if k != 'timings'},
        'files': created.get('files', {}),
        'reused': created.get('reused', {}),
        'profile': task_profile(tasks_file, ssh_log, wall),
    }
    sample['profile'].pop('tasks', None)
    log(f'{label}: {wall:.1f}s (backup_create {sample["create_timings"].get("total", "-")}s'
        f'{", backup_offsite " + str(sample["offsite_timings"].get("total")) + "s" if offsite else ""})')  # fmt: skip
    return sample


def module_results(tasks_file):
    """The figures the callback kept of the backup modules' results, by module name."""
    try:
        with open(tasks_file, encoding='utf-8') as handle:
            tasks = json.load(handle)['tasks']
    except (OSError, ValueError):
        return {}
    out = {}
    for task in tasks:
        name = task['action'].rsplit('.', 1)[-1]
        for host in task['hosts'].values():
            if host.get('figures'):
                out[name] = host['figures']
    return out


# --- report ----------------------------------------------------------------------


def verdicts(result):
    plain = result['plain']['seconds']
    backup = result['backup']['seconds']
    verified = result['verified']['seconds']
    night1 = result['night1']['offsite_timings'].get('total')
    night2 = result['night2']['offsite_timings'].get('total')
    ratios = {
        'backup / plain pg_dump': round(backup / plain, 2),
        'backup verified / plain pg_dump': round(verified / plain, 2),
        'night 2 off-host copy / night 1': round(night2 / night1, 3) if night1 and night2 is not None else None,
    }
    targets = {
        'backup / plain pg_dump': TARGETS['backup'],
        'backup verified / plain pg_dump': TARGETS['verified'],
        'night 2 off-host copy / night 1': TARGETS['night2'],
    }
    verdict = {}
    for name, ratio in ratios.items():
        ok = ratio is not None and (ratio < targets[name] if name.startswith('night') else ratio <= targets[name])
        verdict[name] = ok
    return ratios, targets, verdict


def table(result):
    ratios, targets, verdict = result['ratios'], result['targets'], result['verdict']
    db, up = result['database'], result['uploads']
    lines = [
        f'backup bench {result["started"]}  commit {result["commit"]}',
        (
            f'database: {db["pretty"]} ({db["bytes"]} bytes, pg_database_size; {db["rows"]} rows in {TABLE}); '
            f'plain dump {result["plain"]["dump_bytes"] / 1048576:.0f} MB'
        ),
        (
            f'uploads: {up["bench_bytes"] / GB:.2f} GB of random bytes in {up["bench_files"]} files '
            f'(the folder: {up["folder_bytes"] / GB:.2f} GB, {up["folder_files"]} files)'
        ),
        '',
        f'{"measurement":<44} {"seconds":>8}  where the time goes (the modules\' own timings, s)',
        f'{"plain pg_dump -Fc to the host disk":<44} {result["plain"]["seconds"]:>8.1f}'
        + (f'  fastest of {result["plain"]["samples"]}' if len(result['plain'].get('samples', [])) > 1 else ''),
    ]
    for key, label in (
        ('night1', 'night 1: backup + first off-host copy'),
        ('night2', 'night 2: the same, uploads unchanged'),
        ('backup', 'backup.yml -e backup_verify=false'),
        ('verified', 'backup.yml (verified)'),
        ('night3', 'night 3: uploads unchanged, 1 GB db'),
    ):
        sample = result[key]
        parts = [f'{k} {v}' for k, v in sample['create_timings'].items()]
        reused = ', '.join(sorted(sample.get('reused') or {})) or 'none'
        lines.append(f'{label:<44} {sample["seconds"]:>8.1f}  backup_create: {", ".join(parts)}; reused: {reused}')
        if len(sample.get('samples', [])) > 1:
            lines.append(f'{"":<44} {"":>8}  fastest of {sample["samples"]} (alternating with the plain dump)')
        if sample['offsite_timings']:
            off = sample['offsite']
            parts = [f'{k} {v}' for k, v in sample['offsite_timings'].items()]
            lines.append(
                f'{"":<44} {"":>8}  backup_offsite: {", ".join(parts)}; '
                f'{off.get("data_added", 0) / 1048576:.1f} MB added of '
                f'{off.get("total_bytes_processed", 0) / 1048576:.0f} MB, files {off.get("files_new", 0)} new, '
                f'{off.get("files_changed", 0)} changed, {off.get("files_unmodified", 0)} unchanged'
            )
        prof = sample['profile']
        modules = sample['create_timings'].get('total', 0) + sample['offsite_timings'].get('total', 0)
        lines.append(
            f'{"":<44} {"":>8}  {prof["tasks_ran"]} tasks, {prof["ssh_round_trips"]} ssh; outside the modules: '
            f'{sample["seconds"] - modules:.1f}s'
        )
    lines.append('')
    for name, ratio in ratios.items():
        op = '<' if name.startswith('night') else '<='
        lines.append(
            f'{name:<36} {ratio if ratio is not None else "-":>6}  target {op} {targets[name]}  '
            f'{"PASS" if verdict[name] else "FAIL"}'
        )
    lines += [
        '',
        'backup, verified: backup.yml as typed (the local backup, no off-host repository), the 1 GB database;',
        "nights: backup.yml -e backup_verify=false with the bench's repository (inventory beside the sandbox one);",
        "the night ratio is the backup_offsite module's own time (the repository and its parent snapshot, restic",
        'backup of db.dump, manifest and the live folders, forget, prune), night 2 over night 1, both with the demo\'s',
        (
            f'database ({result["database_nights"] / 1048576:.0f} MB); night 3 adds the 1 GB database\'s new dump '
            '(not a target).'
        ),
    ]
    return '\n'.join(lines) + '\n'


def git_commit():
    proc = run(['git', 'log', '-1', '--format=%h %s'], check=False)
    return proc.stdout.strip()[:80]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--db-gb', type=float, default=1.0, help='database size to reach at least, default 1.0')
    parser.add_argument('--uploads-gb', type=float, default=1.0, help='upload files to write, default 1.0')
    parser.add_argument(
        '--no-platform',
        action='store_true',
        help='the registry and the production server run, bootstrapped and deployed, already',
    )
    parser.add_argument(
        '--pairs', type=int, default=2, help='plain pg_dump / backup pairs, alternating; the fastest of each counts'
    )
    parser.add_argument('--keep', action='store_true', help='leave the table, uploads, backups and backup host')
    parser.add_argument('--out', default=os.path.join(ROOT, '.cache', 'bench'), help='folder for the results')
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f'backup bench: stopped by signal {signum}'))

    started = datetime.datetime.now(datetime.UTC)
    stamp = started.strftime('%Y%m%dT%H%M%SZ')
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f'backup-{stamp}-', dir=args.out)
    result = {'started': stamp, 'commit': git_commit(), 'workdir': workdir}
    taken = []
    try:
        bench_inv = setup(args, workdir)
        nights = (INVENTORY, bench_inv)
        # The nights are the local backup without its verification (measured below) plus the off-host copy.
        nightly = ('-e', 'backup_verify=false')
        log(f'writing {args.uploads_gb} GB of upload files (not timed)')
        result['uploads'] = write_uploads(args.uploads_gb)
        log(f'uploads: {result["uploads"]}')
        # Nights 1 and 2 with the demo's small database: the off-host copy of the uploads, first into the new
        # repository, then unchanged (the dump, new every night, is the database's cost: night 3 shows it).
        result['database_nights'] = int(psql("SELECT pg_database_size('directus')"))
        result['night1'] = timed_backup('night1', workdir, extra=nightly, inventories=nights)
        taken.append(result['night1']['backup_id'])
        result['night2'] = timed_backup('night2', workdir, extra=nightly, inventories=nights)
        taken.append(result['night2']['backup_id'])
        log(f'filling the database to {args.db_gb} GB (not timed)')
        result['database'] = fill_database(args.db_gb)
        # The 1.2x target is the tightest and pg_dump's time moves with the machine's load: the plain dump and
        # the backup alternate --pairs times and each side's fastest run is the figure (every sample reported).
        plains, backups = [], []
        for pair in range(args.pairs):
            plains.append(plain_dump())
            log(f'plain pg_dump: {plains[-1]["seconds"]}s, {plains[-1]["dump_bytes"]} bytes')
            label = 'backup' if pair == 0 else f'backup-{pair + 1}'
            backups.append(timed_backup(label, workdir, extra=('-e', 'backup_verify=false')))
            taken.append(backups[-1]['backup_id'])
        result['plain'] = dict(min(plains, key=lambda r: r['seconds']), samples=[r['seconds'] for r in plains])
        result['backup'] = dict(min(backups, key=lambda r: r['seconds']), samples=[r['seconds'] for r in backups])
        result['verified'] = timed_backup('verified', workdir)
        taken.append(result['verified']['backup_id'])
        # Night 3 (not a target): the unchanged uploads and the large database's new dump.
        result['night3'] = timed_backup('night3', workdir, extra=nightly, inventories=nights)
        taken.append(result['night3']['backup_id'])
    finally:
        if not args.keep:
            cleanup(taken)
        with open(os.path.join(workdir, 'result.json'), 'w', encoding='utf-8') as handle:
            json.dump(result, handle, indent=1)
    result['ratios'], result['targets'], result['verdict'] = verdicts(result)
    result['loadavg_end'] = os.getloadavg()
    text = table(result)
    base = os.path.join(args.out, f'backup-{stamp}')
    with open(base + '.json', 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=1)
    with open(base + '.txt', 'w', encoding='utf-8') as handle:
        handle.write(text)
    print(text)
    log(f'results: {base}.txt and .json (each run\'s output and task file in {workdir})')
    return 0 if all(result['verdict'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
