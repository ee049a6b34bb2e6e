# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Restore a backup on the host in one call (the logic of the backup_restore module).

Before anything changes: the backup is chosen (``latest`` is the newest *scheduled* backup),
its files are checked against the manifest's sha256 and sizes, the safety backup's too, and the
database container is found. Then the services that read the data are stopped, the database is
recreated empty and ``db.dump`` streamed into ``pg_restore`` through ``docker exec -i`` (nothing
is staged inside the container), its row counts compared with the manifest's, the archives'
folders emptied and extracted with their owners, and the services started again.

On any failure after the database or a folder was touched, the safety backup is restored the same
way (and checked the same way), the services are started, and ``RestoreError`` says what failed,
whether the previous data is back, and the command to retry. Every command goes through a runner
(``_backup_create.Runner``) so the logic is tested with a fake docker.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._backup import (
    SCHEDULED,
    backup_kind,
    checksum_problems,
    count_mismatches,
    parse_psql_report,
)
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._backup_create import (
    DUMP,
    DUMP_MAGIC,
    ID_RE,
    MANIFEST,
    REPORT_SQL,
    Runner,
    validate_archives,
)

LATEST = 'latest'
# What a restore can bring back: the database and the data of each archive (<what>.tar.gz).
WHAT = ('db', 'directus', 'proxy')
# The services that read the database and the Directus files; the proxy is stopped only when
# its own data is restored.
APP_SERVICES = ('api', 'directus')
PROXY_SERVICE = 'proxy'


class RestoreError(Exception):
    """A restore that failed after it touched the data. ``details``: what the module returns with it."""

    def __init__(self, message, details):
        super().__init__(message)
        self.details = details


class StepError(Exception):
    """One step of a restore failed (the caller decides what that means)."""


# ---------------------------------------------------------------------------
# Choosing and checking a backup (read only)
# ---------------------------------------------------------------------------


def read_manifest(folder):
    """The manifest of the backup in ``folder``; ValueError naming the file when it cannot be read."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, 'rb') as f:
            manifest = json.loads(f.read().decode('utf-8'))
    except FileNotFoundError:
        raise ValueError(f'{path} does not exist')
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} cannot be read: {exc}')
    if not isinstance(manifest, dict) or not isinstance(manifest.get('files'), dict):
        raise ValueError(f'{path} is not a backup manifest (no files)')
    return manifest


def backup_ids(backup_dir):
    """Ids of the complete backups in ``backup_dir`` (folders named by an id; never ``.tmp-*``), oldest first."""
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if ID_RE.match(n) and os.path.isdir(os.path.join(backup_dir, n)))


def latest_scheduled(backup_dir):
    """Id of the newest scheduled backup (a manifest without a kind counts as scheduled); '' when none.

    Pre-deploy and safety backups are never chosen: a restore's own safety backup must not become the
    next restore's ``latest``. A backup whose manifest cannot be read is not a candidate.
    """
    for backup_id in reversed(backup_ids(backup_dir)):
        try:
            manifest = read_manifest(os.path.join(backup_dir, backup_id))
        except ValueError:
            continue
        if backup_kind(manifest) == SCHEDULED:
            return backup_id
    return ''


def choose(backup_dir, request):
    """The id ``request`` (a backup id or ``latest``) names in ``backup_dir``; ValueError when there is none."""
    if request == LATEST:
        backup_id = latest_scheduled(backup_dir)
        if not backup_id:
            raise ValueError(
                'there is no scheduled backup in {} (latest is the newest scheduled backup; found: {}); '
                'name one with -e backup_id=<id>'.format(backup_dir, ', '.join(backup_ids(backup_dir)) or 'none')
            )
        return backup_id
    if not ID_RE.match(request or ''):
        raise ValueError(f'backup id {request!r} is neither latest nor an id like 20261128T020005Z (backup_restore_id)')
    if request not in backup_ids(backup_dir):
        raise ValueError(
            'no backup {} in {}. Available: {}'.format(request, backup_dir, ', '.join(backup_ids(backup_dir)) or 'none')
        )
    return request


def check_backup(folder, label, skip=()):
    """Read the manifest of the backup in ``folder`` and check its files; ValueError naming the damaged file.

    ``skip``: names of the manifest not checked (the archives of a backup restored from the off-host
    repository, which holds the live folders instead: restic checks its own data)."""
    manifest = read_manifest(folder)
    problems = checksum_problems(folder, {k: v for k, v in manifest['files'].items() if k not in skip})
    if problems:
        raise ValueError(
            '{} {} is damaged: {}. Choose another backup (-e backup_list=true lists them)'.format(
                label, os.path.basename(folder), '; '.join(problems)
            )
        )
    return manifest


def quote_ident(name):
    """A PostgreSQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def clear_folder(root, rel, exclude):
    """Remove what is inside ``root/rel`` but what ``exclude`` (patterns relative to ``root``) leaves out.

    The folder itself stays (its owner and mode are the live ones); a missing folder is created by tar.
    """
    top = os.path.join(root, rel)
    if not os.path.isdir(top) or os.path.islink(top):
        if os.path.lexists(top):
            os.remove(top)
        return
    for name in os.listdir(top):
        child_rel = rel.rstrip('/') + '/' + name
        child = os.path.join(root, child_rel)
        if any(fnmatch.fnmatchcase(child_rel, pattern) for pattern in exclude):
            continue
        if os.path.isdir(child) and not os.path.islink(child):
            if any(pattern.startswith(child_rel + '/') for pattern in exclude):
                clear_folder(root, child_rel, exclude)
                continue
            shutil.rmtree(child)
        else:
            os.remove(child)


def describe(exc):
    """An exception as a clause of a message (its type too when it is not one of ours)."""
    text = str(exc).rstrip('.') or 'no message'
    return text if isinstance(exc, (StepError, OSError)) else f'{type(exc).__name__}: {text}'


# ---------------------------------------------------------------------------
# The restore
# ---------------------------------------------------------------------------


class Restore:
    """One restore run. ``params`` are the module's options; ``runner`` runs the commands."""

    def __init__(self, params, runner=None, clock=time.monotonic):
        self.p = params
        self.runner = runner or Runner()
        self.clock = clock
        self.timings = {}
        self.stopped = []

    # -- helpers -----------------------------------------------------------

    def _timed(self, step, func, *args):
        start = self.clock()
        try:
            return func(*args)
        finally:
            self.timings[step] = round(self.timings.get(step, 0) + self.clock() - start, 3)

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

    def _run(self, what, argv, stdin=None):
        res = self.runner.run(argv, stdin)
        if res.rc != 0:
            raise StepError(
                '{} failed (exit status {}): {}'.format(what, res.rc, (res.stderr or '').strip()[-600:] or 'no message')
            )
        return res

    def _psql(self, database, *extra):
        p = self.p
        return ['docker', 'exec', '-i', self.db, 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-At', '-U', p['db_user'],
                '-d', database, *extra]  # fmt: skip

    # -- plan (read only) ----------------------------------------------------

    def plan(self):
        """Choose and check the backup and the safety backup, find the database. ValueError: refused."""
        p = self.p
        if p.get('path'):
            self.path = p['path'].rstrip('/') or '/'
            if not os.path.isabs(self.path):
                raise ValueError('path {!r} must be an absolute path'.format(p['path']))
            self.id = os.path.basename(self.path)
        else:
            if not os.path.isabs(p['backup_dir'] or ''):
                raise ValueError('backup_dir {!r} must be an absolute path'.format(p['backup_dir']))
            self.id = choose(p['backup_dir'], p['id'])
            self.path = os.path.join(p['backup_dir'], self.id)
        validate_archives(p['archives'])
        self.archives = {item['name']: item for item in p['archives']}
        for what in p['restore']:
            if what != 'db' and what + '.tar.gz' not in self.archives:
                raise ValueError(f'restore names {what} but archives has no {what}.tar.gz')
        self.tree = (p.get('tree') or '').rstrip('/')
        if self.tree and not os.path.isabs(self.tree):
            raise ValueError('tree {!r} must be an absolute path'.format(p['tree']))
        if self.tree and not os.path.isdir(self.tree):
            raise ValueError(f'tree {self.tree} is not a folder (the project folder restored from the repository)')
        skip = tuple(self.archives) if self.tree else ()
        self.manifest = self._timed('checksums', check_backup, self.path, 'Backup', skip)
        self.items = self.what(self.manifest, self.tree)
        if not self.items:
            raise ValueError('backup {} holds nothing of {}'.format(self.id, ', '.join(p['restore'])))
        self.safety_path = (p.get('safety_path') or '').rstrip('/')
        self.safety_id = os.path.basename(self.safety_path) if self.safety_path else ''
        self.safety_manifest = None
        if self.safety_path and not self.check_mode:
            if os.path.realpath(self.safety_path) == os.path.realpath(self.path):
                raise ValueError(f'the safety backup is the backup being restored ({self.id})')
            self.safety_manifest = self._timed('checksums', check_backup, self.safety_path, 'Safety backup')
        self.db = self._timed('find_db', self.find_db) if 'db' in self.items else ''
        self.services = list(APP_SERVICES) + ([PROXY_SERVICE] if 'proxy' in self.items else [])

    def what(self, manifest, tree=''):
        """The parts of ``restore`` that a backup with ``manifest`` holds, in restore order.

        With ``tree`` (the live folders rather than archives), an archive's part is there when one of
        its folders is in the tree."""
        files = manifest.get('files') or {}

        def holds(what):
            if what == 'db':
                return DUMP in files
            if tree:
                archive = self.archives.get(what + '.tar.gz') or {}
                return any(os.path.isdir(os.path.join(tree, rel.strip('/'))) for rel in archive.get('paths') or [])
            return what + '.tar.gz' in files

        return [w for w in WHAT if w in self.p['restore'] and holds(w)]

    def find_db(self):
        res = self.runner.run(self._compose('ps', '-q', self.p['db_service']))
        ids = res.stdout.split() if res.rc == 0 else []
        if not ids:
            raise ValueError(
                'service {} of project {} has no running container{} (backup_db_service); start the database '
                'or name its service'.format(
                    self.p['db_service'],
                    self.p['project_name'],
                    '' if res.rc == 0 else ' (docker compose ps: {})'.format((res.stderr or '').strip()[-300:]),
                )
            )
        return ids[0]

    # -- services ------------------------------------------------------------

    def stop(self):
        """Stop the services of ``self.services`` that run; remember them to start them again."""
        res = self._run(
            'listing the running services (docker compose ps)', self._compose('ps', '--services', '--status', 'running')
        )
        running = set(res.stdout.split())
        self.stopped = [s for s in self.services if s in running]
        if self.stopped:
            self._run('stopping ' + ', '.join(self.stopped), self._compose('stop', *self.stopped))

    def start(self):
        if self.stopped:
            self._run('starting ' + ', '.join(self.stopped), self._compose('start', *self.stopped))

    # -- applying a backup ---------------------------------------------------

    def apply(self, folder, manifest, items, step, tree=''):
        """Restore ``items`` of the backup in ``folder``; StepError on the first failure.

        ``self.touched`` lists the parts changed (or about to be), each added before its first change.
        """
        if 'db' in items:
            self._timed(step + '_db', self._restore_db, folder, manifest)
        for what in items:
            if what != 'db':
                if tree:
                    self._timed(step + '_' + what, self._restore_tree, tree, self.archives[what + '.tar.gz'], what)
                else:
                    self._timed(step + '_' + what, self._restore_archive, folder, self.archives[what + '.tar.gz'], what)

    def _restore_db(self, folder, manifest):
        p = self.p
        path = os.path.join(folder, DUMP)
        with open(path, 'rb') as dump:
            if dump.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
                raise StepError(f'{path} is not a custom-format dump')
        self.touched.append('db')
        self._run(
            'recreating the database {} empty'.format(p['db_name']),
            self._psql(
                'postgres',
                '-c', 'DROP DATABASE IF EXISTS {} WITH (FORCE)'.format(quote_ident(p['db_name'])),
                '-c', 'CREATE DATABASE {} OWNER {}'.format(quote_ident(p['db_name']), quote_ident(p['db_user'])),
            ),
        )  # fmt: skip
        argv = ['docker', 'exec', '-i', self.db, 'pg_restore', '--exit-on-error', '--no-owner', '-U', p['db_user'],
                '-d', p['db_name']]  # fmt: skip
        with open(path, 'rb') as dump:
            self._run('pg_restore of ' + path, argv, dump)
        counts = self._run('counting the restored rows', self._psql(p['db_name'], '-f', '-'), REPORT_SQL)
        try:
            restored = parse_psql_report(counts.stdout.splitlines())['row_counts']
        except ValueError as exc:
            raise StepError(f'counting the restored rows: {exc}')
        problems = count_mismatches(manifest.get('row_counts') or {}, restored) if 'row_counts' in manifest else []
        if problems:
            raise StepError('the restored database differs from the manifest: ' + '; '.join(problems))
        self.row_counts = restored

    def _restore_archive(self, folder, archive, what):
        # The checksums matched the manifest: the archive is read once, by the extraction.
        path = os.path.join(folder, archive['name'])
        self.touched.append(what)
        for rel in archive['paths']:
            try:
                clear_folder(self.p['project_dir'], rel.strip('/'), archive.get('exclude') or [])
            except OSError as exc:
                raise StepError(f'emptying {rel} failed: {exc}')
        self._run('extracting ' + path, ['tar', '-C', self.p['project_dir'], '--same-owner', '-xzf', path])

    def _restore_tree(self, tree, archive, what):
        """The folders of ``archive`` copied from ``tree`` (owners, modes and times kept), each emptied first
        (what the archive excludes stays); a folder the tree lacks is left empty, as the archive would."""
        self.touched.append(what)
        exclude = archive.get('exclude') or []
        for rel in archive['paths']:
            rel = rel.strip('/')
            try:
                clear_folder(self.p['project_dir'], rel, exclude)
            except OSError as exc:
                raise StepError(f'emptying {rel} failed: {exc}')
            src = os.path.join(tree, rel)
            if not os.path.isdir(src):
                continue
            dest = os.path.join(self.p['project_dir'], rel)
            os.makedirs(dest, exist_ok=True)
            self._run('copying ' + src, ['cp', '-a', '--', src + '/.', dest])

    # -- the whole run -------------------------------------------------------

    def retry_command(self, backup_id):
        return '{} -e backup_id={} -e confirm_restore={}'.format(self.p['playbook'], backup_id, self.p['environment'])

    def run(self):
        """Restore; on a failure after the data was touched, put the safety backup back. RestoreError on failure."""
        self.touched = []
        self.row_counts = {}
        try:
            self._timed('stop', self.stop)
            self.apply(self.path, self.manifest, self.items, 'restore', self.tree)
            self._timed('start', self.start)
            return
        except Exception as exc:  # noqa: BLE001 - any failure, expected or not, must put the data back
            error = describe(exc)
        details = {'error': error, 'safety_id': self.safety_id, 'recovered': False, 'safety_error': ''}
        if not self.touched:
            started = self._start_after_failure()
            raise RestoreError(
                f'Restore of backup {self.id} failed before the database or a folder was touched: {error}. Nothing was changed; '
                f'{started}. Fix the cause and retry: {self.retry_command(self.id)}',
                details,
            )
        if not self.safety_manifest:
            started = self._start_after_failure()
            raise RestoreError(
                f'Restore of backup {self.id} failed: {error}. No safety backup was given (backup_restore_safety=false), so the '
                f'database and files may be empty or partial; {started}. Retry: {self.retry_command(self.id)}',
                details,
            )
        # Only what this run changed is put back (the rest is as it was).
        items = [w for w in self.what(self.safety_manifest) if w in self.touched]
        lacking = [w for w in self.touched if w not in items]
        try:
            self.apply(self.safety_path, self.safety_manifest, items, 'safety')
        except Exception as exc:  # noqa: BLE001 - reported in the message, whatever it is
            details['safety_error'] = describe(exc)
        if lacking and not details['safety_error']:
            details['safety_error'] = 'the safety backup holds no {} to put back'.format(', '.join(lacking))
        started = self._start_after_failure()
        if details['safety_error']:
            raise RestoreError(
                'Restore of backup {} failed: {}. Restoring the safety backup {} failed too: {}. The previous data '
                'is NOT back: the database and files may be empty or partial; {}. Restore the safety backup by hand '
                '({} -e backup_restore_safety=false), then retry: {}'.format(
                    self.id,
                    error,
                    self.safety_id,
                    details['safety_error'],
                    started,
                    self.retry_command(self.safety_id),
                    self.retry_command(self.id),
                ),
                details,
            )
        details['recovered'] = True
        raise RestoreError(
            'Restore of backup {} failed: {}. The safety backup {} taken just before was restored ({}{}): the '
            'previous data is back; {}. Retry: {}'.format(
                self.id,
                error,
                self.safety_id,
                ', '.join(items),
                '; row counts as its manifest records' if 'db' in items else '',
                started,
                self.retry_command(self.id),
            ),
            details,
        )

    def _start_after_failure(self):
        """Start what was stopped; say how that went (a sentence for the failure message)."""
        if not self.stopped:
            return 'no service had to be stopped'
        try:
            self._timed('start', self.start)
        except StepError as exc:
            return 'starting the services failed too ({}): start them with docker compose start {}'.format(
                str(exc).rstrip('.'), ' '.join(self.stopped)
            )
        return '{} are running again'.format(', '.join(self.stopped))


def restore(params, runner=None, check_mode=False, clock=time.monotonic):
    """Restore the backup ``params`` name. Returns {id, path, kind, restored, safety_id, manifest, row_counts, timings}.

    ValueError: refused (nothing changed). RestoreError: failed after it started (its ``details`` say whether
    the safety backup was restored)."""
    rst = Restore(params, runner, clock)
    rst.check_mode = check_mode
    start = clock()
    rst.plan()
    result = {
        'id': rst.id,
        'path': rst.path,
        'kind': backup_kind(rst.manifest),
        'release': rst.manifest.get('release') or {},
        'restored': rst.items,
        'services': rst.services,
        'safety_id': rst.safety_id,
        'manifest': rst.manifest,
        'row_counts': {},
    }
    if not check_mode:
        try:
            rst.run()
        except RestoreError as exc:
            rst.timings['total'] = round(clock() - start, 3)
            exc.details.update(result, timings=rst.timings, services=rst.stopped)
            raise
        result['row_counts'] = rst.row_counts
        result['services'] = rst.stopped
    rst.timings['total'] = round(clock() - start, 3)
    result['timings'] = rst.timings
    return result
