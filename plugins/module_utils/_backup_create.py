# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Take a backup on the host in one call (the logic of the backup_create module).

The dump is streamed out of the db container (``docker exec -i <db> pg_dump -Fc``) into
the backup's temporary folder, its sha256 computed while it is written and pg_dump's own
exit status checked; nothing is written inside the container. A psql session holds a
REPEATABLE READ transaction whose exported snapshot pg_dump uses, and counts the rows in
that same snapshot. The archives are streamed the same way (``tar -czf -``), except that an archive whose
files did not change since a complete backup took it (the same fingerprint of their paths, types, modes,
owners, sizes, times and inodes) is that backup's file, hard-linked: same bytes, no space, no time. With
verification, the dump is restored into a throwaway PostgreSQL of the running server's
image (the dump bind-mounted read-only, ``pg_restore --jobs``), removed on every path. On any failure the temporary folder is removed; on success
it is renamed to the backup's id. Every command goes through a runner (``Runner``) so the
logic is tested with a fake docker.
"""

from __future__ import annotations

import datetime
import fnmatch
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _ledger
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._backup import count_mismatches, parse_psql_report
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._retention import select_backups

ID_RE = re.compile(r'^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$')
DUMP = 'db.dump'
MANIFEST = 'manifest.json'
CHUNK = 1 << 20
# Seconds between the flushes of a file being written (Flusher), so its final fsync is short.
FLUSH_INTERVAL = 0.5
# A custom-format dump starts with these bytes.
DUMP_MAGIC = b'PGDMP'
# Row count of every table, in one statement (psql -At prints "schema.table|count").
# The same text as _backup_count_sql in roles/backup/vars/main.yml (a unit test keeps them equal).
COUNT_SQL = (
    "SELECT table_schema || '.' || table_name, "
    "(xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', table_schema, table_name), "
    "false, true, '')))[1]::text "
    "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)
# What psql prints for the manifest: the server version and the row count of each table.
REPORT_SQL = (
    "SELECT 'version|' || current_setting('server_version');\n"
    f"SELECT 'rows|' || t.name || '|' || t.n FROM (\n{COUNT_SQL}\n) AS t(name, n);\n"
)
READY_TIMEOUT = 120.0
READY_POLL = 0.2
# Where the throwaway PostgreSQL sees the backup's dump (bind-mounted read-only): pg_restore runs its jobs in
# parallel only from a file.
SCRATCH_DUMP = '/avatar-verify/db.dump'
# Settings of the throwaway PostgreSQL: nothing to keep safe across a crash, no replica, no checkpoint in
# the middle of the restore.
SCRATCH_SETTINGS = (
    'fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'wal_level=minimal', 'max_wal_senders=0',
    'max_wal_size=8GB', 'checkpoint_timeout=1h', 'autovacuum=off', 'maintenance_work_mem=256MB',
)  # fmt: skip


def restore_jobs():
    """pg_restore's parallel jobs in the verification: the host's CPUs, 2 to 4."""
    return max(2, min(4, os.cpu_count() or 1))


class BackupError(Exception):
    """A backup that failed after it started; its temporary folder is removed. ``timings``: the steps so far."""


class RetentionError(Exception):
    """Retention failed after the backup was published (the backup stays). ``result``: the backup's result,
    its ``retention`` what was removed before the failure."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


class Result:
    """What a command did: exit status, output (or size and sha256 of the file its stdout went to)."""

    def __init__(self, rc, stdout='', stderr='', size=0, sha256=''):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.size = size
        self.sha256 = sha256


class PsqlSession:
    """A psql process held open (one transaction across several calls). ``query`` returns its output lines."""

    def __init__(self, argv):
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, universal_newlines=True
        )

    def stderr(self):
        self._err.seek(0)
        return self._err.read().decode('utf-8', 'replace').strip()

    def query(self, sql):
        # psql flushes its output after a backslash command: the marker ends the answer.
        marker = 'avatar-backup-end-' + secrets.token_hex(8)
        try:
            self._proc.stdin.write(sql.rstrip() + '\n\\echo ' + marker + '\n')
            self._proc.stdin.flush()
        except OSError:
            pass  # psql has ended: readline below says so with its error.
        lines = []
        while True:
            line = self._proc.stdout.readline()
            if not line:
                self._proc.wait()
                raise BackupError(
                    'psql ended (exit status {}): {}'.format(self._proc.returncode, self.stderr() or 'no message')
                )
            line = line.rstrip('\n')
            if line == marker:
                return lines
            lines.append(line)

    def close(self):
        """End the session (its transaction ends with it); return psql's exit status."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            return self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()
        finally:
            self._proc.stdout.close()
            self._err.close()


class Flusher:
    """Writes a file's data to disk while it is being written (``fdatasync`` every ``interval`` seconds in a
    thread), so the ``fsync`` that ends the file has little left to do. Use as a context manager."""

    def __init__(self, fd, interval=FLUSH_INTERVAL):
        self.fd = fd
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stopped.wait(self.interval):
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # the final fsync reports the error

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        return False


class Runner:
    """Runs commands on the host (the real one; tests pass a fake with the same methods)."""

    def run(self, argv, stdin=None, stdout_path=None):
        """Run ``argv``. ``stdin``: text, or an open binary file. ``stdout_path``: a new file (0600) its
        stdout is streamed into, with size and sha256 computed on the way."""
        with tempfile.TemporaryFile() as err:
            if stdout_path is None:
                data = stdin.encode() if isinstance(stdin, str) else None
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if data is not None else (stdin or subprocess.DEVNULL),
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
                out, _dummy = proc.communicate(data)
                err.seek(0)
                return Result(proc.returncode, out.decode('utf-8', 'replace'), err.read().decode('utf-8', 'replace'))
            fd = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as dest:
                proc = subprocess.Popen(argv, stdin=stdin or subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
                digest, size = hashlib.sha256(), 0
                try:
                    with Flusher(dest.fileno()):
                        while True:
                            chunk = proc.stdout.read(CHUNK)
                            if not chunk:
                                break
                            digest.update(chunk)
                            dest.write(chunk)
                            size += len(chunk)
                    dest.flush()
                    os.fsync(dest.fileno())
                except BaseException:
                    proc.kill()
                    proc.wait()
                    raise
                finally:
                    proc.stdout.close()
                proc.wait()
            err.seek(0)
            return Result(proc.returncode, '', err.read().decode('utf-8', 'replace'), size, digest.hexdigest())

    def session(self, argv):
        return PsqlSession(argv)


# ---------------------------------------------------------------------------
# Plan: inputs checked before anything changes
# ---------------------------------------------------------------------------


def backup_time(backup_id):
    """The ISO 8601 time a backup id (20261128T020005Z) names; ValueError for anything else."""
    match = ID_RE.match(backup_id or '')
    if not match:
        raise ValueError(f'id {backup_id!r} is not a backup id like 20261128T020005Z')
    return '{}-{}-{}T{}:{}:{}Z'.format(*match.groups())


def owner_ids(owner):
    """(uid, gid) of ``owner`` and the group of the same name, as the backup files have always been owned."""
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ValueError(f'owner {owner!r} is not a user on this host (backup_owner)')
    try:
        gid = grp.getgrnam(owner).gr_gid
    except KeyError:
        raise ValueError(f'there is no group {owner!r} on this host for the backup files (backup_owner)')
    return uid, gid


def previous_size(backup_dir):
    """Bytes of the newest complete backup's files in ``backup_dir`` (0 when there is none)."""
    try:
        names = sorted(n for n in os.listdir(backup_dir) if ID_RE.match(n))
    except FileNotFoundError:
        return 0
    if not names:
        return 0
    folder = os.path.join(backup_dir, names[-1])
    total = 0
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            total += os.path.getsize(path)
    return total


def free_bytes(path):
    """Bytes free to an unprivileged writer under ``path`` (or its nearest existing parent)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_space(backup_dir, floor_mb):
    """Refuse (ValueError) when less is free under ``backup_dir`` than the previous backup took or ``floor_mb``."""
    previous = previous_size(backup_dir)
    needed = max(previous, int(floor_mb) * 1048576)
    free = free_bytes(backup_dir)
    if free < needed:
        raise ValueError(
            'only {:.1f} MB are free under {}; this backup needs {:.1f} MB ({}). '
            'Free space there or lower backup_min_free_mb'.format(
                free / 1048576.0,
                backup_dir,
                needed / 1048576.0,
                'the size of the previous backup' if previous >= int(floor_mb) * 1048576 else 'backup_min_free_mb',
            )
        )
    return {'needed': needed, 'free': free, 'previous': previous}


def validate_archives(archives):
    """Archive specs ({name, paths, exclude}) with safe names and relative paths; ValueError otherwise."""
    names = set()
    for item in archives:
        name = item.get('name') or ''
        if not re.match(r'^[A-Za-z0-9][A-Za-z0-9._-]*\.tar\.gz$', name) or name in names or name in (DUMP, MANIFEST):
            raise ValueError(f'archive name {name!r} must be a unique file name ending in .tar.gz')
        names.add(name)
        if not item.get('paths'):
            raise ValueError(f'archive {name} names no paths')
        for path in list(item['paths']) + list(item.get('exclude') or []):
            if os.path.isabs(path) or '..' in path.split('/'):
                raise ValueError(f'archive {name}: path {path!r} must be relative to the project folder')
    return archives


def source_fingerprint(project_dir, item):
    """sha256 of what an archive spec ({name, paths, exclude}) would put in its tar: the spec itself and, for
    every entry under its paths, the relative path, type, mode, owner, size, modification and change times,
    inode and link target. Entries an exclude pattern matches as a whole path are left out (tar leaves out at
    least those); a path that does not exist counts as missing (tar then fails the backup anyway)."""
    digest = hashlib.sha256(json.dumps(
        {'paths': list(item['paths']), 'exclude': list(item.get('exclude') or [])}, sort_keys=True
    ).encode())  # fmt: skip
    excludes = list(item.get('exclude') or [])

    def add(rel):
        path = os.path.join(project_dir, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            digest.update(f'{rel}\0missing\n'.encode('utf-8', 'surrogateescape'))
            return False
        link = os.readlink(path) if os.path.islink(path) else ''
        line = '\0'.join(
            str(v) for v in (rel, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                             st.st_ino, link)
        )  # fmt: skip
        digest.update((line + '\n').encode('utf-8', 'surrogateescape'))
        return os.path.isdir(path) and not os.path.islink(path)

    for top in item['paths']:
        top = os.path.normpath(top)
        if not add(top):
            continue
        for folder, dirs, files in os.walk(os.path.join(project_dir, top)):
            dirs.sort()
            base = os.path.relpath(folder, project_dir)
            for name in dirs + sorted(files):
                rel = os.path.join(base, name)
                if not any(fnmatch.fnmatchcase(rel, pattern) for pattern in excludes):
                    add(rel)
    return digest.hexdigest()


def reusable_archive(backup_dir, name, fingerprint):
    """The newest complete backup whose archive ``name`` was made from files of this ``fingerprint``, still there
    with the size its manifest records: ``(backup id, its manifest's entry of the file, whether that backup was
    verified)``, or ``(None, None, False)``."""
    try:
        names = sorted((n for n in os.listdir(backup_dir) if ID_RE.match(n)), reverse=True)
    except FileNotFoundError:
        return None, None, False
    for backup_id in names:
        folder = os.path.join(backup_dir, backup_id)
        if os.path.islink(folder) or not os.path.isdir(folder):
            continue
        manifest = _read_manifest(folder) or {}
        sources = manifest.get('sources')
        entry = (manifest.get('files') or {}).get(name) if isinstance(manifest.get('files'), dict) else None
        if not isinstance(sources, dict) or sources.get(name) != fingerprint or not isinstance(entry, dict):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if os.path.isfile(path) and not os.path.islink(path) and st.st_size == entry.get('size'):
            verified = retention_entry(backup_id, manifest)['verified']
            return backup_id, {'size': entry['size'], 'sha256': entry.get('sha256', '')}, verified
    return None, None, False


def running_release(ledger):
    """The manifest's ``release`` ({id, version}) of the running release in a loaded ledger ({} empty strings)."""
    return {'id': ledger.get('current') or '', 'version': _ledger.current_entry(ledger).get('version') or ''}


def ledger_backups(ledger):
    """Ids of the backups the ledger's releases name (each one the backup to restore "before" its release)."""
    releases = ledger.get('releases', [])
    entries = releases if isinstance(releases, list) else []
    return [e['backup'] for e in entries if isinstance(e, dict) and isinstance(e.get('backup'), str) and e['backup']]


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------


def _read_manifest(folder):
    """A backup's manifest; {} when it has none or it is not JSON (such a backup counts as scheduled, not
    verified); None when it exists but cannot be read now (retention then leaves that backup alone)."""
    try:
        with open(os.path.join(folder, MANIFEST), 'rb') as f:
            manifest = json.loads(f.read().decode('utf-8'))
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    except ValueError:
        return {}
    return manifest if isinstance(manifest, dict) else {}


def retention_entry(backup_id, manifest):
    """What retention knows of a backup: {id, time, kind, verified} from its id and manifest (``unreadable`` when
    the manifest could not be read: None)."""
    if manifest is None:
        return {'id': backup_id, 'time': backup_time(backup_id), 'kind': '', 'verified': False, 'unreadable': True}
    kind = manifest.get('kind')
    verification = manifest.get('verification')
    return {
        'id': backup_id,
        'time': backup_time(backup_id),
        'kind': kind if isinstance(kind, str) else '',
        'verified': isinstance(verification, dict) and verification.get('result') == 'ok',
    }


def complete_backups(backup_dir):
    """The complete backups in ``backup_dir`` (folders named by a backup id; never ``.tmp-*``), oldest first."""
    try:
        names = sorted(os.listdir(backup_dir))
    except FileNotFoundError:
        return []
    folders = [
        n
        for n in names
        if ID_RE.match(n)
        and os.path.isdir(os.path.join(backup_dir, n))
        and not os.path.islink(os.path.join(backup_dir, n))
    ]
    return [retention_entry(n, _read_manifest(os.path.join(backup_dir, n))) for n in folders]


def remove_backup(backup_dir, backup_id):
    """Remove a backup folder: first renamed to ``.del-<id>`` (no longer a backup for a list, a restore or the
    next retention, even if the removal stops half-way), then removed; a ``.del-`` folder left by an earlier
    removal that stopped goes too."""
    doomed = os.path.join(backup_dir, '.del-' + backup_id)
    if os.path.lexists(doomed):
        shutil.rmtree(doomed)
    os.rename(os.path.join(backup_dir, backup_id), doomed)
    shutil.rmtree(doomed)


def apply_retention(backup_dir, policy, protect=(), extra=None, check_mode=False):
    """Remove the complete backups in ``backup_dir`` that ``policy`` (daily, weekly, monthly, other) lets go.

    The decision is ``_retention.select_backups``; backups named in ``protect`` stay even when it lets them go.
    ``extra``: a retention entry counted as present (the backup check mode would take). Returns ``{keep, removed,
    protected, reasons}`` (in check mode ``removed`` is what would be removed). ValueError for a bad policy; when
    a removal fails, OSError whose ``removed`` attribute lists what went before it.
    """
    backups = complete_backups(backup_dir)
    if extra and extra['id'] not in {b['id'] for b in backups}:
        backups.append(extra)
    plan = select_backups(backups, policy['daily'], policy['weekly'], policy['monthly'], other=policy.get('other'))
    # A backup whose manifest cannot be read now may be the newest verified one: it stays.
    protect = set(protect) | {b['id'] for b in backups if b.get('unreadable')}
    protected = [i for i in plan['delete'] if i in protect]
    removed = []
    for backup_id in plan['delete']:
        if backup_id in protect:
            continue
        if not check_mode:
            try:
                remove_backup(backup_dir, backup_id)
            except OSError as exc:
                exc.removed = removed
                raise
        removed.append(backup_id)
    return {'keep': plan['keep'], 'removed': removed, 'protected': protected, 'reasons': plan['reasons']}


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


class Backup:
    """One backup run. ``params`` are the module's options; ``runner`` runs the commands."""

    def __init__(self, params, runner=None, clock=time.monotonic):
        self.p = params
        self.runner = runner or Runner()
        self.clock = clock
        self.timings = {}
        self.files = {}
        self.sources = {}
        self.reused = {}
        # Reused archives a verified backup listed already (the same bytes when their sha256 matches).
        self.listed = set()
        self.final = os.path.join(params['backup_dir'], params['id'])
        self.tmp = os.path.join(params['backup_dir'], '.tmp-' + params['id'])

    # -- helpers -----------------------------------------------------------

    def _timed(self, step, func, *args):
        start = self.clock()
        try:
            return func(*args)
        finally:
            self.timings[step] = round(self.clock() - start, 3)

    def _compose(self, *args):
        p = self.p
        return [
            'docker',
            'compose',
            '-p',
            p['project_name'],
            '-f',
            os.path.join(p['project_dir'], p['compose_file']),
        ] + list(args)

    def _run(self, what, argv, **kwargs):
        res = self.runner.run(argv, **kwargs)
        if res.rc != 0:
            raise BackupError(
                '{} failed (exit status {}): {}'.format(what, res.rc, (res.stderr or '').strip()[-600:] or 'no message')
            )
        return res

    def _stream(self, what, argv, name):
        """Run ``argv`` with its stdout streamed into the backup's file ``name``; record its size and sha256."""
        res = self._run(what, argv, stdout_path=os.path.join(self.tmp, name))
        self.files[name] = {'size': res.size, 'sha256': res.sha256}
        return res

    def _psql(self, container, *extra):
        """psql in ``container`` as the backup's user on its database, unaligned output without headers."""
        p = self.p
        return ['docker', 'exec', '-i', container, 'psql', '-X', *extra, '-v', 'ON_ERROR_STOP=1', '-At',
                '-U', p['db_user'], '-d', p['db_name']]  # fmt: skip

    # -- plan --------------------------------------------------------------

    def plan(self):
        """Everything checked before anything is created. Returns the free-space figures."""
        p = self.p
        self.time = backup_time(p['id'])
        if not os.path.isabs(p['backup_dir']):
            raise ValueError('backup_dir {!r} must be an absolute path'.format(p['backup_dir']))
        if ':' in p['backup_dir']:
            # docker run -v would read it as the mount's separator (the verification mounts the dump).
            raise ValueError('backup_dir {!r} must not contain a colon'.format(p['backup_dir']))
        validate_archives(p['archives'])
        self.uid, self.gid = owner_ids(p['owner'])
        for path in (self.final, self.tmp):
            if os.path.lexists(path):
                raise ValueError(f'{path} already exists; run again in a second for a new backup id')
        return self._timed('free_space', check_space, p['backup_dir'], p['min_free_mb'])

    def find_db(self):
        res = self._run(
            'finding the database container (docker compose ps)', self._compose('ps', '-q', self.p['db_service'])
        )
        ids = res.stdout.split()
        if not ids:
            raise BackupError(
                'service {} of project {} has no running container (backup_db_service); '
                'start the stack or name the database service'.format(self.p['db_service'], self.p['project_name'])
            )
        self.db = ids[0]
        return self.db

    # -- act ---------------------------------------------------------------

    def _make_dirs(self):
        backup_dir = self.p['backup_dir']
        if not os.path.isdir(backup_dir):
            os.makedirs(backup_dir, 0o700)
        os.chown(backup_dir, self.uid, self.gid)
        os.chmod(backup_dir, 0o700)
        os.mkdir(self.tmp, 0o700)
        os.chown(self.tmp, self.uid, self.gid)
        os.chmod(self.tmp, 0o700)

    def _dump(self):
        """pg_dump in the snapshot of a psql session that counts the rows in the same snapshot."""
        p = self.p
        session = self.runner.session(self._psql(self.db, '-q'))
        try:
            lines = session.query(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT 'snapshot|' || pg_export_snapshot();"
            )
            snap = [line.split('|', 1)[1] for line in lines if line.startswith('snapshot|')]
            if not snap:
                raise BackupError('psql did not export a snapshot: {}'.format(' '.join(lines)[:300]))
            dump = self._stream(
                'pg_dump',
                ['docker', 'exec', '-i', self.db, 'pg_dump', '-U', p['db_user'], '-d', p['db_name'], '-Fc',
                 '--snapshot=' + snap[0]],
                DUMP,
            )  # fmt: skip
            with open(os.path.join(self.tmp, DUMP), 'rb') as f:
                if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
                    raise BackupError(
                        f'pg_dump exited 0 but its output is not a custom-format dump ({dump.size} bytes)'
                    )
            report = parse_psql_report(session.query(REPORT_SQL))
            session.query('COMMIT;')
        finally:
            rc = session.close()
        if rc != 0:
            raise BackupError(f'psql ended with exit status {rc} after the dump')
        return report

    def _archives(self):
        for item in self.p['archives']:
            name = item['name']
            fingerprint = source_fingerprint(self.p['project_dir'], item)
            previous, entry, verified = reusable_archive(self.p['backup_dir'], name, fingerprint)
            if previous:
                try:
                    # The files did not change since that backup took them: its archive is this one's.
                    os.link(os.path.join(self.p['backup_dir'], previous, name), os.path.join(self.tmp, name))
                except OSError:
                    previous = None
            if previous:
                self.files[name] = entry
                self.reused[name] = previous
                if verified:
                    self.listed.add(name)
            else:
                argv = ['tar', '-C', self.p['project_dir'], '-czf', '-']
                argv += ['--exclude=' + e for e in item.get('exclude') or []]
                argv += list(item['paths'])
                self._stream('archiving ' + name, argv, name)
                # Files changed while tar read them: the next backup writes its own archive.
                if source_fingerprint(self.p['project_dir'], item) != fingerprint:
                    continue
            self.sources[name] = fingerprint

    def _own_files(self):
        for name in list(self.files) + [MANIFEST]:
            path = os.path.join(self.tmp, name)
            if os.path.exists(path):
                os.chown(path, self.uid, self.gid)
                os.chmod(path, 0o600)

    # -- verification ------------------------------------------------------

    def _checksums(self):
        problems = []
        for name in sorted(self.files):
            path = os.path.join(self.tmp, name)
            digest, size = hashlib.sha256(), 0
            try:
                with open(path, 'rb') as f:
                    for chunk in iter(lambda f=f: f.read(CHUNK), b''):
                        digest.update(chunk)
                        size += len(chunk)
            except OSError:
                problems.append(f'{name} is missing')
                continue
            if digest.hexdigest() != self.files[name]['sha256']:
                problems.append(f'{name}: sha256 differs from the manifest')
            elif size != self.files[name]['size']:
                problems.append(f'{name}: size differs from the manifest')
        return problems

    def _listings(self, skip=()):
        """Problems listing the archives; ``skip``: archives whose bytes a verified backup listed already."""
        return [
            f'{name} cannot be listed'
            for name in sorted(self.files)
            if name.endswith('.tar.gz')
            and name not in skip
            and self.runner.run(['tar', '-tzf', os.path.join(self.tmp, name)]).rc != 0
        ]

    def _scratch(self, row_counts):
        """Restore the dump into a throwaway PostgreSQL; return (problems, restored row counts)."""
        p = self.p
        image = self._run(
            'reading the database image (docker inspect)', ['docker', 'inspect', '--format', '{{.Image}}', self.db]
        ).stdout.strip()
        name = 'avatar-verify-{}-{}'.format(p['id'], secrets.token_hex(3))
        self.scratch = name
        try:
            self._timed(
                'verify_start',
                self._run,
                'starting the throwaway PostgreSQL',
                [
                    'docker', 'run', '-d', '--name', name, '--network', 'none',
                    '--label', 'avatar-mgmt.backup-verify=' + p['id'],
                    '-e', 'POSTGRES_USER=' + p['db_user'], '-e', 'POSTGRES_DB=' + p['db_name'],
                    '-e', 'POSTGRES_PASSWORD=' + secrets.token_urlsafe(18),
                    '-v', f'{os.path.join(self.tmp, DUMP)}:{SCRATCH_DUMP}:ro',
                    image,
                    'postgres', *[arg for setting in SCRATCH_SETTINGS for arg in ('-c', setting)],
                ],
            )  # fmt: skip
            self._timed('verify_ready', self._wait_ready, name)
            restore = self._timed(
                'verify_restore',
                self.runner.run,
                ['docker', 'exec', name, 'pg_restore', '--exit-on-error', '--no-owner', '--jobs', str(restore_jobs()),
                 '-U', p['db_user'], '-d', p['db_name'], SCRATCH_DUMP],
            )  # fmt: skip
            if restore.rc != 0:
                return ['pg_restore failed: ' + restore.stderr.strip()[:300]], {}
            counts = self._timed('verify_counts', self.runner.run, self._psql(name) + ['-f', '-'], REPORT_SQL)
            restored = parse_psql_report(counts.stdout.splitlines())['row_counts'] if counts.rc == 0 else {}
            if counts.rc != 0:
                return ['counting the restored rows failed: ' + counts.stderr.strip()[:300]], {}
            return count_mismatches(row_counts, restored), restored
        finally:
            self._timed('verify_cleanup', self.runner.run, ['docker', 'rm', '-f', '-v', name])

    def _wait_ready(self, name):
        # The image's entrypoint first runs a server on the socket only (initialisation): ask over TCP.
        deadline = self.clock() + READY_TIMEOUT
        argv = ['docker', 'exec', name, 'pg_isready', '-q', '-h', '127.0.0.1', '-U', self.p['db_user']]
        while self.runner.run(argv).rc != 0:
            if self.clock() > deadline:
                raise BackupError(
                    f'the throwaway PostgreSQL {name} did not accept connections within {READY_TIMEOUT:.0f} s'
                )
            time.sleep(READY_POLL)

    def _verify(self, row_counts):
        problems = self._timed('verify_checksums', self._checksums)
        # A reused archive whose sha256 matched holds the bytes a verified backup listed: not listed again.
        bad = {problem.split(' ', 1)[0].rstrip(':') for problem in problems}
        problems += self._timed('verify_listings', self._listings, self.listed - bad)
        scratch_problems, restored = self._scratch(row_counts)
        problems += scratch_problems
        return {
            'result': 'ok' if not problems else 'failed',
            'checked': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'problems': problems,
            'restored_row_counts': restored,
        }

    # -- the whole run -----------------------------------------------------

    def manifest(self, report, verification):
        p = self.p
        manifest = {
            'id': p['id'],
            'time': self.time,
            'environment': p['environment'],
            'host': p['host'],
            'kind': p['kind'],
            'operator': p['operator'],
            'job_id': p['job_id'],
            'release': {'id': p['release'].get('id') or '', 'version': p['release'].get('version') or ''},
            'files': self.files,
            'postgres_version': report['postgres_version'],
            'row_counts': report['row_counts'],
            'verification': verification,
            # The fingerprint of the files each archive holds (the next backup reuses an archive whose files
            # have the same), and the backups whose archives this one shares (hard links).
            'sources': self.sources,
            'reused': self.reused,
        }
        return manifest

    def take(self):
        """Create the backup; on any failure remove the temporary folder and raise BackupError."""
        try:
            self._make_dirs()
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise BackupError(f'creating the backup folder {self.tmp} failed: {exc}')
        try:
            report = self._timed('dump', self._dump)
            self._timed('archives', self._archives)
            verification = {'result': 'skipped'}
            if self.p['verify']:
                verification = self._timed('verify', self._verify, report['row_counts'])
                if verification['result'] != 'ok':
                    raise BackupError(
                        'Backup {} failed verification: {}'.format(self.p['id'], '; '.join(verification['problems']))
                    )
            manifest = self.manifest(report, verification)
            text = json.dumps(manifest, indent=2, sort_keys=True, separators=(',', ': ')) + '\n'
            fd = os.open(os.path.join(self.tmp, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'w') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            self._own_files()
            self._timed('publish', os.rename, self.tmp, self.final)
        except BackupError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        except (OSError, ValueError) as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise BackupError(f'the backup failed: {exc}')
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return manifest


def _policy(retention):
    """The retention policy from the module's ``retention`` option (None: no retention); ValueError when bad."""
    if retention is None:
        return None
    policy = {key: retention.get(key) for key in ('daily', 'weekly', 'monthly', 'other')}
    for key in ('daily', 'weekly', 'monthly'):
        if policy[key] is None:
            raise ValueError(f'retention.{key} is required (backup_keep_{key})')
    try:
        select_backups([], policy['daily'], policy['weekly'], policy['monthly'], other=policy['other'])
    except ValueError as exc:
        key = str(exc).split(' ', 1)[0]
        raise ValueError(f'retention.{exc} (backup_keep_{key})') from None
    return policy


def create(params, runner=None, check_mode=False, clock=time.monotonic):
    """Take the backup ``params`` describe, then apply retention when ``params['retention']`` is set.

    Returns {id, path, release, manifest, files, verification, reused, space, retention, warnings, timings}. Without
    ``params['release']`` the manifest names the running release of the ledger in ``params['ledger_dir']``
    (default ``<project_dir>/releases``); backups that ledger's releases name are never removed by retention,
    nor those in ``params['protect']``.

    ValueError: bad input or too little space (nothing created). BackupError: the backup failed
    (its temporary folder removed, nothing published). RetentionError: the backup was published and
    retention failed (its ``result`` is this function's result, with what was removed before the failure)."""
    backup = Backup(params, runner, clock)
    start = clock()
    policy = _policy(params.get('retention'))
    space = backup.plan()
    warnings = []
    release = params.get('release')
    protect = list(params.get('protect') or [])
    if release is None or policy is not None:
        ledger_dir = params.get('ledger_dir') or os.path.join(params['project_dir'], 'releases')
        loaded = backup._timed('ledger', _ledger.load, ledger_dir)
        if loaded.problem:
            warnings.append(loaded.problem)
            if policy is not None:
                # The backups it names ("before" a release) cannot be known: none is removed this time.
                policy = None
                warnings.append('retention skipped: the ledger cannot be read, so the backups it names are not known')
        if release is None:
            release = running_release(loaded.ledger)
        protect += ledger_backups(loaded.ledger)
    backup.p = dict(params, release=release)
    try:
        backup._timed('find_db', backup.find_db)
    except BackupError as exc:
        raise ValueError(str(exc))
    result = {
        'id': params['id'],
        'path': backup.final,
        'release': {'id': release.get('id') or '', 'version': release.get('version') or ''},
        'space': space,
        'warnings': warnings,
        'retention': {'keep': [], 'removed': [], 'protected': [], 'reasons': {}},
    }
    if check_mode:
        if policy is not None:
            extra = dict(retention_entry(params['id'], {'kind': params['kind']}), verified=bool(params['verify']))
            result['retention'] = backup._timed(
                'retention', apply_retention, params['backup_dir'], policy, protect, extra, True
            )
        backup.timings['total'] = round(clock() - start, 3)
        result.update(manifest={}, files={}, verification={'result': 'skipped'}, reused={}, timings=backup.timings)
        return result
    try:
        manifest = backup.take()
    except BackupError as exc:
        backup.timings['total'] = round(clock() - start, 3)
        exc.timings = backup.timings
        raise
    result.update(
        manifest=manifest, files=manifest['files'], verification=manifest['verification'], reused=manifest['reused']
    )
    if policy is not None:
        try:
            result['retention'] = backup._timed('retention', apply_retention, params['backup_dir'], policy, protect)
        except Exception as exc:  # noqa: BLE001 - the backup is published: any failure here must say so
            removed = getattr(exc, 'removed', [])
            result['retention']['removed'] = removed
            backup.timings['total'] = round(clock() - start, 3)
            result['timings'] = backup.timings
            raise RetentionError(
                'Backup {} was taken and published in {}, but retention failed: {}. Removed before the failure: {}. '
                'The new backup is kept; the next backup applies retention again'.format(
                    params['id'], backup.final, exc, ', '.join(removed) or 'none'
                ),
                result,
            ) from None
    backup.timings['total'] = round(clock() - start, 3)
    result['timings'] = backup.timings
    return result
