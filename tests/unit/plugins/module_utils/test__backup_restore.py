# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the one-call restore (module_utils/_backup_restore.py).

Docker is a fake that behaves like the engine, compose and PostgreSQL's tools would: the database
holds tables with row counts, DROP/CREATE empty it, pg_restore reads the dump from its stdin and,
on a damaged dump, stops with an error leaving the tables it got to (as --exit-on-error does);
compose stops and starts services. tar, the backup folders, the project's files and the
checksums are real.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup_create as bc
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup_restore as br

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
with open(os.path.join(ROOT, 'roles/backup/vars/main.yml')) as _f:
    ARCHIVES = yaml.safe_load(_f)['_backup_archives']
DB = 'c0ffee'
OLD = {'public.avatars': 4, 'public.directus_users': 1}  # what the server holds before the restore
NIGHTLY = {'public.avatars': 3, 'public.directus_users': 1}
SAFETY_ID = '20261201T101500Z'
# The uploads on the server before the restore (and in its safety backup).
NOW_UPLOADS = {'model.glb': b'model, edited since', 'new.glb': b'uploaded after the nightly backup'}
NIGHTLY_ID = '20261128T020005Z'


def dump_bytes(rows):
    """A custom-format dump in the fake's terms: the magic, then the tables in restore order."""
    return bc.DUMP_MAGIC + json.dumps(sorted(rows.items())).encode()


class FakeDocker(bc.Runner):
    """docker and compose as the restore calls them; every other command (tar) runs for real."""

    def __init__(self, rows=None, fail_restore=(), fail_create=False, fail_start=False, fail_stop=False, miscount=()):
        self.rows = dict(OLD if rows is None else rows)  # None: the database does not exist
        self.running = {'db', 'api', 'directus', 'frontend', 'proxy'}
        self.fail_restore = list(fail_restore)  # per pg_restore call: fail it?
        self.fail_create = fail_create
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.miscount = list(miscount)  # per count: report one row less?
        self.calls = []
        self.restores = 0
        self.counts = 0

    def run(self, argv, stdin=None, stdout_path=None):
        self.calls.append(argv)
        if argv[0] != 'docker':
            return super().run(argv, stdin, stdout_path)
        if argv[1] == 'compose':
            return self._compose(argv[argv.index('-f') + 2 :])
        if argv[1] == 'exec':
            assert argv[2:4] == ['-i', DB], argv
            assert 'db' in self.running
            tool = argv[4]
            if tool == 'pg_restore':
                return self._pg_restore(argv, stdin)
            if tool == 'psql':
                return self._psql(argv, stdin)
        raise AssertionError(f'unexpected command {argv}')

    def _compose(self, args):
        if args[:2] == ['ps', '-q']:
            return bc.Result(0, DB + '\n' if args[2] in self.running else '')
        if args[0] == 'ps':
            assert args[1:] == ['--services', '--status', 'running'], args
            return bc.Result(0, ''.join(s + '\n' for s in sorted(self.running)))
        if args[0] == 'stop':
            if self.fail_stop:
                return bc.Result(1, '', 'Error response from daemon: cannot stop container')
            self.running -= set(args[1:])
            return bc.Result(0)
        if args[0] == 'start':
            if self.fail_start:
                return bc.Result(1, '', 'Error response from daemon: driver failed programming external connectivity')
            self.running |= set(args[1:])
            return bc.Result(0)
        raise AssertionError(f'unexpected compose command {args}')

    def _psql(self, argv, stdin):
        database = argv[argv.index('-d') + 1]
        if database == 'postgres':
            sql = [argv[i + 1] for i, a in enumerate(argv) if a == '-c']
            assert sql == [
                'DROP DATABASE IF EXISTS "directus" WITH (FORCE)',
                'CREATE DATABASE "directus" OWNER "directus"',
            ]
            # Nothing may use the database while it is replaced.
            assert not {'api', 'directus'} & self.running
            self.rows = None
            if self.fail_create:
                return bc.Result(1, '', 'ERROR:  could not create database: No space left on device')
            self.rows = {}
            return bc.Result(0)
        assert database == 'directus'
        assert stdin == bc.REPORT_SQL
        if self.rows is None:
            return bc.Result(2, '', 'FATAL:  database "directus" does not exist')
        rows = dict(self.rows)
        if self.miscount and self.miscount.pop(0):
            rows['public.avatars'] -= 1
        self.counts += 1
        return bc.Result(0, 'version|15.7\n' + ''.join(f'rows|{t}|{n}\n' for t, n in sorted(rows.items())))

    def _pg_restore(self, argv, stdin):
        # Streamed: the dump comes on stdin, no file inside the container is named.
        assert argv[5:] == ['--exit-on-error', '--no-owner', '-U', 'directus', '-d', 'directus'], argv
        assert self.rows == {}, 'pg_restore into a database that is not empty'
        data = stdin.read()
        self.restores += 1
        fail = self.fail_restore.pop(0) if self.fail_restore else False
        try:
            tables = json.loads(data[len(bc.DUMP_MAGIC) :].decode())
        except ValueError:
            tables, fail = [], True
        if fail:
            # --exit-on-error: the tables before the error are there, the rest is not.
            self.rows = dict(tables[:1])
            return bc.Result(1, '', 'pg_restore: error: could not read from input file: end of file')
        self.rows = dict(tables)
        return bc.Result(0)


def write_tar(path, root, members):
    with tarfile.open(path, 'w:gz') as tar:
        for rel in members:
            tar.add(os.path.join(root, rel), arcname=rel)


def make_backup(backup_dir, backup_id, rows, uploads, kind='scheduled', damage=None):
    """A backup folder as backup_create writes it; ``damage``: a file whose bytes are replaced, the manifest fixed."""
    folder = backup_dir / backup_id
    folder.mkdir(parents=True)
    stage = backup_dir / ('.stage-' + backup_id)
    for rel in ('directus/uploads', 'directus/extensions', 'directus/schemas', 'jc21/data/logs', 'jc21/letsencrypt'):
        (stage / rel).mkdir(parents=True)
    for name, data in uploads.items():
        (stage / 'directus/uploads' / name).write_bytes(data)
    (stage / 'jc21/data/database.sqlite').write_bytes(b'npm of ' + backup_id.encode())
    (stage / 'jc21/letsencrypt/privkey.pem').write_bytes(b'key of ' + backup_id.encode())
    (folder / 'db.dump').write_bytes(dump_bytes(rows))
    write_tar(folder / 'directus.tar.gz', stage, ['directus/uploads', 'directus/extensions', 'directus/schemas'])
    write_tar(folder / 'proxy.tar.gz', stage, ['jc21/data/database.sqlite', 'jc21/data/logs', 'jc21/letsencrypt'])
    if damage:
        (folder / damage).write_bytes(b'PGDMP garbage' if damage == 'db.dump' else b'\x1f\x8b garbage')
    files = {}
    for name in ('db.dump', 'directus.tar.gz', 'proxy.tar.gz'):
        data = (folder / name).read_bytes()
        files[name] = {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    manifest = {'id': backup_id, 'files': files, 'row_counts': rows, 'release': {'id': '', 'version': 'v1.2.0'}}
    if kind is not None:
        manifest['kind'] = kind
    (folder / 'manifest.json').write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def project(tmp_path):
    root = tmp_path / 'project'
    for rel in ('directus/uploads', 'directus/extensions', 'directus/schemas', 'jc21/data/logs', 'jc21/letsencrypt'):
        (root / rel).mkdir(parents=True)
    (root / 'directus/uploads/new.glb').write_bytes(b'uploaded after the nightly backup')
    (root / 'directus/uploads/model.glb').write_bytes(b'model, edited since')
    (root / 'jc21/data/database.sqlite').write_bytes(b'npm now')
    (root / 'jc21/data/logs/access.log').write_text('GET /\n')
    return root


@pytest.fixture
def backups(tmp_path):
    """The nightly backup (3 avatars, model.glb) and the safety backup of the state before the restore."""
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, NIGHTLY_ID, NIGHTLY, {'model.glb': b'model'})
    make_backup(backup_dir, SAFETY_ID, OLD, NOW_UPLOADS, kind='safety')
    return backup_dir


def params(folder, project, **extra):
    result = {
        'path': None,
        'backup_dir': str(folder),
        'id': NIGHTLY_ID,
        'safety_path': str(folder / SAFETY_ID),
        'restore': ['db', 'directus', 'proxy'],
        'archives': ARCHIVES,
        'project_dir': str(project),
        'project_name': 'avatar-prod',
        'compose_file': 'docker-compose.prod.yml',
        'db_service': 'db',
        'db_user': 'directus',
        'db_name': 'directus',
        'environment': 'production',
        'playbook': 'restore.yml',
    }
    result.update(extra)
    return result


def uploads(project):
    folder = project / 'directus/uploads'
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def changing_calls(docker):
    return [c for c in docker.calls if 'pg_restore' in c or 'DROP' in ' '.join(c) or 'stop' in c or '-xzf' in c]


# -- choosing the backup -------------------------------------------------------


def test_latest_is_the_newest_scheduled_backup(tmp_path):
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, '20261126T020000Z', NIGHTLY, {}, kind=None)  # before kinds were recorded
    assert br.choose(str(backup_dir), 'latest') == '20261126T020000Z'
    make_backup(backup_dir, '20261127T020000Z', NIGHTLY, {})
    make_backup(backup_dir, '20261127T120000Z', NIGHTLY, {}, kind='pre-deploy')
    make_backup(backup_dir, '20261128T090000Z', NIGHTLY, {}, kind='safety')
    (backup_dir / '.tmp-20261129T020000Z').mkdir()
    assert br.choose(str(backup_dir), 'latest') == '20261127T020000Z'
    # A restore's own safety backup is never the next "latest": the choice does not flip.
    make_backup(backup_dir, '20261128T100000Z', NIGHTLY, {}, kind='safety')
    assert br.choose(str(backup_dir), 'latest') == '20261127T020000Z'
    # A named id is taken whatever its kind.
    assert br.choose(str(backup_dir), '20261128T090000Z') == '20261128T090000Z'


@pytest.mark.parametrize(
    'request_, message',
    [
        ('../../etc', "backup id '../../etc' is neither latest nor an id"),
        ('20261128T020005Z/../x', 'neither latest nor an id'),
        ('20261130T000000Z', r'no backup 20261130T000000Z in .*\. Available: 20261128T020005Z, 20261201T101500Z'),
    ],
)
def test_bad_ids_are_refused(backups, request_, message):
    with pytest.raises(ValueError, match=message):
        br.choose(str(backups), request_)


def test_latest_without_a_scheduled_backup_is_refused(tmp_path):
    make_backup(tmp_path / 'b', SAFETY_ID, OLD, {}, kind='safety')
    with pytest.raises(ValueError, match=r'no scheduled backup in .*found: 20261201T101500Z'):
        br.choose(str(tmp_path / 'b'), 'latest')


# -- the restore ---------------------------------------------------------------


def test_a_restore_brings_back_rows_files_and_proxy_and_restarts_the_services(backups, project):
    docker = FakeDocker()
    result = br.restore(params(backups, project), docker)
    assert docker.rows == NIGHTLY
    assert result['row_counts'] == NIGHTLY
    assert uploads(project) == {'model.glb': b'model'}  # the later upload is gone, the edited file back
    assert (project / 'jc21/data/database.sqlite').read_bytes() == b'npm of ' + NIGHTLY_ID.encode()
    assert (project / 'jc21/letsencrypt/privkey.pem').read_bytes() == b'key of ' + NIGHTLY_ID.encode()
    # What the archive left out (the proxy's logs) stays.
    assert (project / 'jc21/data/logs/access.log').read_text() == 'GET /\n'
    assert docker.running == {'db', 'api', 'directus', 'frontend', 'proxy'}
    assert result['restored'] == ['db', 'directus', 'proxy']
    assert result['services'] == ['api', 'directus', 'proxy']
    assert result['id'] == NIGHTLY_ID
    assert result['kind'] == 'scheduled'
    assert result['safety_id'] == SAFETY_ID
    # Nothing staged in the container: no docker cp, pg_restore reads its stdin.
    assert not [c for c in docker.calls if c[:2] == ['docker', 'cp']]
    assert docker.restores == 1
    assert {'checksums', 'find_db', 'stop', 'restore_db', 'restore_directus', 'restore_proxy', 'start'} <= set(
        result['timings']
    )


def test_services_that_were_not_running_stay_stopped(backups, project):
    docker = FakeDocker()
    docker.running.discard('proxy')
    result = br.restore(params(backups, project), docker)
    assert result['services'] == ['api', 'directus']
    assert docker.running == {'db', 'api', 'directus', 'frontend'}


def test_only_what_is_asked_is_restored(backups, project):
    docker = FakeDocker()
    result = br.restore(params(backups, project, restore=['db']), docker)
    assert docker.rows == NIGHTLY
    assert uploads(project)['new.glb']  # the files were not touched
    assert result['services'] == ['api', 'directus']  # the proxy keeps running
    assert not [c for c in docker.calls if c[0] == 'tar']


def test_check_mode_reports_and_touches_nothing(backups, project):
    docker = FakeDocker()
    before = uploads(project)
    result = br.restore(params(backups, project, id='latest'), docker, check_mode=True)
    assert result['id'] == NIGHTLY_ID
    assert result['restored'] == ['db', 'directus', 'proxy']
    assert docker.rows == OLD
    assert uploads(project) == before
    assert changing_calls(docker) == []
    assert [c for c in docker.calls if c[0] == 'docker'] == [
        ['docker', 'compose', '-p', 'avatar-prod', '-f', str(project / 'docker-compose.prod.yml'), 'ps', '-q', 'db']
    ]


@pytest.mark.parametrize('damaged', ['db.dump', 'directus.tar.gz', 'manifest.json'])
def test_a_damaged_backup_is_refused_naming_the_file_before_anything_changes(backups, project, damaged):
    folder = backups / NIGHTLY_ID
    with open(folder / damaged, 'r+b') as f:
        f.seek(0 if damaged == 'manifest.json' else 8)
        f.write(b'XXXX')
    docker = FakeDocker()
    message = 'is not a backup manifest|cannot be read' if damaged == 'manifest.json' else (
        f'Backup {NIGHTLY_ID} is damaged: {damaged}: sha256 differs from the manifest'
    )  # fmt: skip
    with pytest.raises(ValueError, match=message):
        br.restore(params(backups, project), docker)
    assert changing_calls(docker) == []
    assert docker.rows == OLD


def test_a_damaged_safety_backup_is_refused_before_anything_changes(backups, project):
    (backups / SAFETY_ID / 'proxy.tar.gz').write_bytes(b'short')
    docker = FakeDocker()
    with pytest.raises(ValueError, match=rf'Safety backup {SAFETY_ID} is damaged: proxy\.tar\.gz: sha256 differs'):
        br.restore(params(backups, project), docker)
    assert changing_calls(docker) == []


def test_a_missing_database_container_is_refused(backups, project):
    docker = FakeDocker()
    docker.running.discard('db')
    with pytest.raises(ValueError, match='service db of project avatar-prod has no running container'):
        br.restore(params(backups, project), docker)
    assert changing_calls(docker) == []


# -- failures and recovery -----------------------------------------------------


def assert_previous_state(docker, project, proxy=b'npm now'):
    """The rows, uploads and proxy data of before the restore (``proxy``: the bytes of NPM's database then)."""
    assert docker.rows == OLD
    assert uploads(project) == NOW_UPLOADS
    assert (project / 'jc21/data/database.sqlite').read_bytes() == proxy
    assert docker.running == {'db', 'api', 'directus', 'frontend', 'proxy'}


def test_a_failed_pg_restore_puts_the_safety_backup_back(tmp_path, project):
    # The dump is damaged but its checksum in the manifest matches: pg_restore fails after the drop.
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, NIGHTLY_ID, NIGHTLY, {'model.glb': b'model'}, damage='db.dump')
    make_backup(backup_dir, SAFETY_ID, OLD, NOW_UPLOADS, kind='safety')
    docker = FakeDocker()
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backup_dir, project), docker)
    message = str(caught.value)
    assert message.startswith(f'Restore of backup {NIGHTLY_ID} failed: pg_restore of ')
    assert 'could not read from input file' in message
    # Only the database was touched: only the database is put back.
    assert f'The safety backup {SAFETY_ID} taken just before was restored (db;' in message
    assert 'the previous data is back' in message
    assert 'api, directus, proxy are running again' in message
    assert message.endswith(f'Retry: restore.yml -e backup_id={NIGHTLY_ID} -e confirm_restore=production')
    details = caught.value.details
    assert details['recovered'] is True
    assert details['safety_id'] == SAFETY_ID
    assert details['safety_error'] == ''
    assert docker.restores == 2
    assert_previous_state(docker, project)


def test_a_failed_extraction_after_the_database_puts_both_back(tmp_path, project):
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, NIGHTLY_ID, NIGHTLY, {'model.glb': b'model'}, damage='proxy.tar.gz')
    make_backup(backup_dir, SAFETY_ID, OLD, NOW_UPLOADS, kind='safety')
    docker = FakeDocker()
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backup_dir, project), docker)
    assert 'proxy.tar.gz failed (exit status 2): ' in str(caught.value)
    assert 'restored (db, directus, proxy;' in str(caught.value)
    assert caught.value.details['recovered'] is True
    assert_previous_state(docker, project, proxy=b'npm of ' + SAFETY_ID.encode())


def test_restored_rows_that_differ_from_the_manifest_are_a_failure(backups, project):
    docker = FakeDocker(miscount=[True])
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backups, project), docker)
    assert 'the restored database differs from the manifest: public.avatars: 3 rows in the manifest, 2 after' in str(
        caught.value
    )
    assert caught.value.details['recovered'] is True
    assert_previous_state(docker, project)


def test_when_the_safety_restore_fails_too_the_message_says_so(backups, project):
    docker = FakeDocker(fail_restore=[True, True])
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backups, project), docker)
    message = str(caught.value)
    assert f'Restoring the safety backup {SAFETY_ID} failed too: pg_restore of ' in message
    assert 'The previous data is NOT back' in message
    assert 'previous data is back' not in message.replace('NOT back', '')
    assert (
        f'restore.yml -e backup_id={SAFETY_ID} -e confirm_restore=production -e backup_restore_safety=false' in message
    )
    assert caught.value.details['recovered'] is False
    assert docker.running == {'db', 'api', 'directus', 'frontend', 'proxy'}


def test_without_a_safety_backup_the_message_says_the_data_may_be_partial(backups, project):
    docker = FakeDocker(fail_create=True)
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backups, project, safety_path=''), docker)
    message = str(caught.value)
    assert 'No space left on device' in message
    assert 'No safety backup was given (backup_restore_safety=false)' in message
    assert 'may be empty or partial' in message
    assert docker.running == {'db', 'api', 'directus', 'frontend', 'proxy'}


def test_a_failure_before_the_data_is_touched_changes_nothing_and_restarts(backups, project):
    docker = FakeDocker(fail_stop=True)
    with pytest.raises(
        br.RestoreError, match=r'failed before the database or a folder was touched.*Nothing was changed'
    ):
        br.restore(params(backups, project), docker)
    assert docker.rows == OLD
    assert docker.restores == 0
    assert 'new.glb' in uploads(project)


def test_an_unexpected_error_puts_the_safety_backup_back_too(backups, project):
    class Crashing(FakeDocker):
        def _pg_restore(self, argv, stdin):
            result = super()._pg_restore(argv, stdin)
            if self.restores == 1:
                raise RuntimeError('the docker client was killed')
            return result

    docker = Crashing()
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backups, project), docker)
    assert f'failed: RuntimeError: the docker client was killed. The safety backup {SAFETY_ID}' in str(caught.value)
    assert caught.value.details['recovered'] is True
    assert_previous_state(docker, project)


def test_a_part_the_safety_backup_lacks_is_not_called_back(tmp_path, project):
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, NIGHTLY_ID, NIGHTLY, {}, damage='proxy.tar.gz')
    safety = make_backup(backup_dir, SAFETY_ID, OLD, NOW_UPLOADS, kind='safety')
    manifest = json.loads((safety / 'manifest.json').read_text())
    del manifest['files']['proxy.tar.gz']
    (safety / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backup_dir, project), FakeDocker())
    assert 'failed too: the safety backup holds no proxy to put back' in str(caught.value)
    assert 'The previous data is NOT back' in str(caught.value)
    assert caught.value.details['recovered'] is False


def test_services_that_cannot_start_are_named_in_the_message(tmp_path, project):
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, NIGHTLY_ID, NIGHTLY, {}, damage='db.dump')
    make_backup(backup_dir, SAFETY_ID, OLD, {}, kind='safety')
    docker = FakeDocker(fail_start=True)
    with pytest.raises(br.RestoreError) as caught:
        br.restore(params(backup_dir, project), docker)
    assert 'starting the services failed too' in str(caught.value)
    assert 'docker compose start api directus proxy' in str(caught.value)
    assert docker.rows == OLD  # the data is back all the same


# -- pieces ----------------------------------------------------------------------


def test_clear_folder_keeps_what_the_archive_excluded(tmp_path):
    (tmp_path / 'jc21/data/logs').mkdir(parents=True)
    (tmp_path / 'jc21/data/nginx').mkdir()
    (tmp_path / 'jc21/data/nginx/1.conf').write_text('x')
    (tmp_path / 'jc21/data/logs/a.log').write_text('x')
    (tmp_path / 'jc21/data/keys.json').write_text('x')
    br.clear_folder(str(tmp_path), 'jc21/data', ['jc21/data/logs/*'])
    assert sorted(os.listdir(tmp_path / 'jc21/data')) == ['logs']
    assert os.listdir(tmp_path / 'jc21/data/logs') == ['a.log']


def test_an_archive_the_role_does_not_know_is_refused(backups, project):
    with pytest.raises(ValueError, match=r'restore names proxy but archives has no proxy\.tar\.gz'):
        br.restore(params(backups, project, archives=ARCHIVES[:1]), FakeDocker())


def test_quote_ident():
    assert br.quote_ident('a"b') == '"a""b"'


# -- from the off-host repository: the live folders (a tree) instead of archives ------------------------


def make_tree_backup(tmp_path, rows, files):
    """What a snapshot of the repository restores: the backup's folder with db.dump and a manifest that still
    names the archives (not in the snapshot), and the project's live folders beside it."""
    backup_dir = tmp_path / 'fetched' / 'backups'
    folder = make_backup(backup_dir, NIGHTLY_ID, rows, {})
    for name in ('directus.tar.gz', 'proxy.tar.gz'):
        (folder / name).unlink()
    tree = tmp_path / 'fetched' / 'project'
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    return folder, tree


def test_a_tree_restores_the_live_folders_with_modes_and_keeps_what_was_excluded(tmp_path, project):
    folder, tree = make_tree_backup(
        tmp_path,
        NIGHTLY,
        {
            'directus/uploads/model.glb': b'model from the snapshot',
            'directus/uploads/sub/deep.bin': b'deep',
            'jc21/data/database.sqlite': b'npm of the snapshot',
            'jc21/letsencrypt/live/npm-1/privkey.pem': b'the certificate key',
        },
    )
    os.chmod(tree / 'jc21/letsencrypt/live/npm-1/privkey.pem', 0o600)
    docker = FakeDocker()
    result = br.restore(
        params(tmp_path, project, backup_dir=None, id=None, safety_path='', path=str(folder), tree=str(tree)), docker
    )
    assert docker.rows == NIGHTLY
    assert result['restored'] == ['db', 'directus', 'proxy']
    assert sorted(os.listdir(project / 'directus/uploads')) == ['model.glb', 'sub']  # new.glb is gone
    assert (project / 'directus/uploads/sub/deep.bin').read_bytes() == b'deep'
    assert (project / 'jc21/data/database.sqlite').read_bytes() == b'npm of the snapshot'
    key = project / 'jc21/letsencrypt/live/npm-1/privkey.pem'
    assert key.read_bytes() == b'the certificate key'
    assert os.stat(key).st_mode & 0o777 == 0o600
    # The logs the snapshot excluded stay; no archive was looked for.
    assert (project / 'jc21/data/logs/access.log').read_text() == 'GET /\n'
    assert not [c for c in docker.calls if c[0] == 'tar']
    assert docker.running == {'db', 'api', 'directus', 'frontend', 'proxy'}


def test_a_tree_without_proxy_folders_leaves_the_proxy_alone(tmp_path, project):
    folder, tree = make_tree_backup(tmp_path, NIGHTLY, {'directus/uploads/model.glb': b'm'})
    docker = FakeDocker()
    result = br.restore(
        params(tmp_path, project, backup_dir=None, id=None, safety_path='', path=str(folder), tree=str(tree)), docker
    )
    assert result['restored'] == ['db', 'directus']
    assert (project / 'jc21/data/database.sqlite').read_bytes() == b'npm now'
    assert 'proxy' not in result['services']


def test_a_tree_still_checks_the_dump_against_the_manifest(tmp_path, project):
    folder, tree = make_tree_backup(tmp_path, NIGHTLY, {'directus/uploads/model.glb': b'm'})
    (folder / 'db.dump').write_bytes(b'PGDMP cut')
    docker = FakeDocker()
    with pytest.raises(ValueError, match=r'db\.dump: sha256 differs from the manifest'):
        br.restore(
            params(tmp_path, project, backup_dir=None, id=None, safety_path='', path=str(folder), tree=str(tree)),
            docker,
        )
    assert changing_calls(docker) == []


def test_a_tree_that_is_not_a_folder_is_refused(tmp_path, project):
    folder, _tree = make_tree_backup(tmp_path, NIGHTLY, {})
    with pytest.raises(ValueError, match=r'tree .* is not a folder'):
        br.restore(
            params(
                tmp_path, project, backup_dir=None, id=None, safety_path='', path=str(folder), tree=str(tmp_path / 'x')
            )
        )


def test_a_failed_tree_restore_puts_the_safety_backup_back(tmp_path, project):
    backup_dir = tmp_path / 'backups'
    make_backup(backup_dir, SAFETY_ID, OLD, NOW_UPLOADS, kind='safety')
    folder, tree = make_tree_backup(tmp_path, NIGHTLY, {'directus/uploads/model.glb': b'm'})
    docker = FakeDocker(fail_restore=(True, False))
    p = params(backup_dir, project, backup_dir=None, id=None, path=str(folder), tree=str(tree))
    with pytest.raises(br.RestoreError, match='the previous data is back'):
        br.restore(p, docker)
    assert docker.rows == OLD
