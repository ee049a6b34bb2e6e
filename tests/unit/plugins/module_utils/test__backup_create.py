# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the one-call backup (module_utils/_backup_create.py).

Docker is a fake that behaves like the engine and PostgreSQL's tools would (a snapshot is
valid only while the session that exported it is open; pg_dump writes bytes and exits with
its status; the throwaway container must be removed); tar, the files, their modes and the
hashes are real.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest
import yaml
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _backup_create as bc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
DB = 'c0ffee'
DUMP = b'PGDMP\x01\x0e\x00' + b'avatars' * 200
COUNTS = {'public.avatars': 3, 'public.directus_users': 1}
# The manifest keys the role's tasks wrote before the module existed (backup.yml, verify_restore.yml).
with open(os.path.join(ROOT, 'roles/backup/vars/main.yml')) as _f:
    ROLE_VARS = yaml.safe_load(_f)
OLD_KEYS = {
    'id',
    'time',
    'environment',
    'host',
    'kind',
    'operator',
    'job_id',
    'release',
    'files',
    'postgres_version',
    'row_counts',
    'verification',
}


class FakeSession:
    def __init__(self, docker, argv):
        self.docker = docker
        self.argv = argv
        self.open = True
        docker.sessions.append(self)

    def query(self, sql):
        assert self.open
        if 'pg_export_snapshot' in sql:
            assert 'REPEATABLE READ' in sql
            self.docker.snapshot = '00000003-0000001B-1'
            return ['snapshot|' + self.docker.snapshot]
        if 'version|' in sql:
            if self.docker.count_error:
                self.open = False
                raise bc.BackupError('psql ended (exit status 3): ERROR:  canceling statement')
            return ['version|15.7'] + [f'rows|{t}|{n}' for t, n in sorted(self.docker.counts.items())]
        return []

    def close(self):
        self.open = False
        self.docker.snapshot = None
        return 0


class FakeDocker(bc.Runner):
    """docker as the module calls it; every other command (tar) runs for real."""

    def __init__(self, counts=None, restored=None, dump_rc=0, restore_rc=0, ready_after=2, dump=DUMP):
        self.dump = dump
        self.counts = dict(COUNTS if counts is None else counts)
        self.restored = restored
        self.dump_rc = dump_rc
        self.restore_rc = restore_rc
        self.ready_after = ready_after
        self.count_error = False
        self.calls = []
        self.sessions = []
        self.snapshot = None
        self.containers = set()
        self.removed = []
        self.db_files = []  # what was written inside the db container (must stay empty)
        self.mounts = {}  # throwaway container: the host path of its dump

    def session(self, argv):
        assert argv[:4] == ['docker', 'exec', '-i', DB]
        return FakeSession(self, argv)

    def run(self, argv, stdin=None, stdout_path=None):
        self.calls.append(argv)
        if argv[0] != 'docker':
            return super().run(argv, stdin, stdout_path)
        if argv[1] == 'compose':
            service = argv[-1]
            if service != 'db':
                return bc.Result(1, '', f'no such service: {service}')
            return bc.Result(0, DB + '\n')
        if argv[1] == 'exec' and DB in argv:
            tool = argv[argv.index(DB) + 1]
            assert tool == 'pg_dump', argv
            if '-f' in argv:
                self.db_files.append(argv[argv.index('-f') + 1])
            snap = [a.split('=', 1)[1] for a in argv if a.startswith('--snapshot=')]
            if not snap or snap[0] != self.snapshot:
                return self._write(stdout_path, b'', 1, 'pg_dump: error: invalid snapshot identifier')
            if self.dump_rc:
                # The db stopped mid-dump: part of the output, then the error.
                return self._write(
                    stdout_path, self.dump[:20], self.dump_rc, 'pg_dump: error: server closed the connection'
                )
            return self._write(stdout_path, self.dump, 0, '')
        if argv[1] == 'inspect':
            return bc.Result(0, 'sha256:postgres157\n')
        if argv[1] == 'run':
            name = argv[argv.index('--name') + 1]
            assert argv[argv.index('--network') + 1] == 'none'
            assert 'sha256:postgres157' in argv
            self.containers.add(name)
            self.polls = 0
            # The dump is bind-mounted read-only where pg_restore reads it.
            host, inside, mode = argv[argv.index('-v') + 1].split(':')
            assert (inside, mode) == (bc.SCRATCH_DUMP, 'ro')
            self.mounts[name] = host
            return bc.Result(0, 'f00\n')
        if argv[1] == 'rm':
            self.removed.append(argv[-1])
            self.containers.discard(argv[-1])
            return bc.Result(0)
        if argv[1] == 'exec':
            name = argv[argv.index('exec') + 1] if argv[2] != '-i' else argv[3]
            assert name in self.containers, argv
            tool = argv[argv.index(name) + 1]
            if tool == 'pg_isready':
                self.polls += 1
                return bc.Result(0 if self.polls > self.ready_after else 2)
            if tool == 'pg_restore':
                assert stdin is None
                assert argv[-1] == bc.SCRATCH_DUMP
                assert int(argv[argv.index('--jobs') + 1]) >= 2
                with open(self.mounts[name], 'rb') as dump:
                    data = dump.read()
                if self.restore_rc or not data.startswith(b'PGDMP'):
                    return bc.Result(1, '', 'pg_restore: error: input file does not appear to be a valid archive')
                return bc.Result(0)
            if tool == 'psql':
                counts = self.counts if self.restored is None else self.restored
                out = 'version|15.7\n' + ''.join(f'rows|{t}|{n}\n' for t, n in sorted(counts.items()))
                return bc.Result(0, out)
        raise AssertionError(f'unexpected command {argv}')

    @staticmethod
    def _write(path, data, rc, err):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        return bc.Result(rc, '', err, len(data), hashlib.sha256(data).hexdigest())


def me():
    return pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / 'project')


def make_project(root):
    """A deploy folder with the paths the role's archives name, and a proxy log that must not be archived."""
    for folder in ('directus/uploads', 'directus/extensions', 'directus/schemas', 'jc21/data/logs', 'jc21/letsencrypt'):
        (root / folder).mkdir(parents=True)
    (root / 'directus/uploads/model.glb').write_bytes(b'\x00glb' * 50)
    (root / 'jc21/data/database.sqlite').write_bytes(b'npm')
    (root / 'jc21/data/logs/proxy-host-1_access.log').write_text('GET /\n')
    return root


def params(tmp_path, project, **extra):
    result = {
        'id': '20261128T020005Z',
        'backup_dir': str(tmp_path / 'backups'),
        'owner': me(),
        'project_dir': str(project),
        'project_name': 'avatar-prod',
        'compose_file': 'docker-compose.prod.yml',
        'db_service': 'db',
        'db_user': 'directus',
        'db_name': 'directus',
        'archives': ROLE_VARS['_backup_archives'],
        'verify': True,
        'min_free_mb': 1,
        'environment': 'production',
        'host': 'prod-1',
        'kind': 'scheduled',
        'operator': 'alice',
        'job_id': '412',
        'release': {'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0'},
    }
    result.update(extra)
    return result


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else None


def test_a_backup_has_the_old_layout_and_manifest(tmp_path, project):
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project), docker)
    backups = tmp_path / 'backups'
    assert listing(backups) == ['20261128T020005Z']
    folder = backups / '20261128T020005Z'
    assert listing(folder) == ['db.dump', 'directus.tar.gz', 'manifest.json', 'proxy.tar.gz']
    manifest = json.loads((folder / 'manifest.json').read_text())
    # Two keys added since: the fingerprint of each archive's files, and the archives shared with older backups.
    assert set(manifest) == OLD_KEYS | {'sources', 'reused'}
    assert set(manifest['sources']) == {'directus.tar.gz', 'proxy.tar.gz'}
    assert manifest['reused'] == {}
    assert manifest == result['manifest']
    assert manifest['time'] == '2026-11-28T02:00:05Z'
    assert manifest['release'] == {'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0'}
    assert manifest['postgres_version'] == '15.7'
    assert manifest['row_counts'] == COUNTS
    assert set(manifest['verification']) == {'result', 'checked', 'problems', 'restored_row_counts'}
    assert manifest['verification']['result'] == 'ok'
    assert manifest['verification']['restored_row_counts'] == COUNTS
    # to_nice_json(indent=2) as the role wrote it: sorted keys, two spaces, a final newline.
    assert (folder / 'manifest.json').read_text() == json.dumps(manifest, indent=2, sort_keys=True) + '\n'
    for name, facts in manifest['files'].items():
        data = (folder / name).read_bytes()
        assert facts == {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    assert set(manifest['files']) == {'db.dump', 'directus.tar.gz', 'proxy.tar.gz'}
    assert (folder / 'db.dump').read_bytes() == DUMP
    for name in listing(folder):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backups).st_mode) == 0o700
    # The throwaway PostgreSQL is gone; nothing was written in the db container.
    assert docker.containers == set()
    assert docker.db_files == []
    assert {'free_space', 'find_db', 'dump', 'archives', 'verify', 'verify_restore', 'publish', 'total'} <= set(
        result['timings']
    )


def test_archives_hold_the_state_but_not_the_proxy_logs(tmp_path, project):
    bc.create(params(tmp_path, project), FakeDocker())
    folder = tmp_path / 'backups' / '20261128T020005Z'
    names = bc.Runner().run(['tar', '-tzf', str(folder / 'proxy.tar.gz')]).stdout.split()
    assert 'jc21/data/database.sqlite' in names
    assert 'jc21/data/logs/' in names
    assert not [n for n in names if n.startswith('jc21/data/logs/') and n != 'jc21/data/logs/']
    names = bc.Runner().run(['tar', '-tzf', str(folder / 'directus.tar.gz')]).stdout.split()
    assert 'directus/uploads/model.glb' in names


def test_without_verification_no_container_is_started(tmp_path, project):
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project, verify=False), docker)
    assert result['manifest']['verification'] == {'result': 'skipped'}
    assert not [c for c in docker.calls if c[:2] == ['docker', 'run']]


def assert_nothing_published(tmp_path):
    assert listing(tmp_path / 'backups') in ([], None)


def test_a_failing_pg_dump_publishes_nothing(tmp_path, project):
    docker = FakeDocker(dump_rc=1)
    with pytest.raises(bc.BackupError, match='pg_dump failed \\(exit status 1\\): pg_dump: error: server closed'):
        bc.create(params(tmp_path, project, verify=False), docker)
    assert_nothing_published(tmp_path)
    assert docker.sessions[0].open is False  # the snapshot's transaction ended


def test_a_dump_outside_the_snapshot_fails(tmp_path, project, monkeypatch):
    """pg_dump must run while the session that exported the snapshot holds it open."""
    monkeypatch.setattr(
        FakeSession, 'query', lambda self, sql: ['snapshot|not-exported'] if 'pg_export_snapshot' in sql else []
    )
    with pytest.raises(bc.BackupError, match='invalid snapshot identifier'):
        bc.create(params(tmp_path, project), FakeDocker())
    assert_nothing_published(tmp_path)


def test_output_that_is_no_dump_fails(tmp_path, project):
    with pytest.raises(bc.BackupError, match='not a custom-format dump'):
        bc.create(params(tmp_path, project, verify=False), FakeDocker(dump=b'pg_dump: garbage'))
    assert_nothing_published(tmp_path)


def test_a_failing_row_count_publishes_nothing(tmp_path, project):
    docker = FakeDocker()
    docker.count_error = True
    with pytest.raises(bc.BackupError, match='canceling statement'):
        bc.create(params(tmp_path, project), docker)
    assert_nothing_published(tmp_path)


def test_a_failing_archive_publishes_nothing(tmp_path, project):
    (project / 'jc21/letsencrypt').rmdir()
    with pytest.raises(bc.BackupError, match=r'archiving proxy\.tar\.gz failed'):
        bc.create(params(tmp_path, project), FakeDocker())
    assert_nothing_published(tmp_path)


def test_a_verification_mismatch_fails_and_removes_the_container(tmp_path, project):
    docker = FakeDocker(restored={'public.avatars': 2, 'public.directus_users': 1})
    with pytest.raises(bc.BackupError) as excinfo:
        bc.create(params(tmp_path, project), docker)
    assert str(excinfo.value) == (
        'Backup 20261128T020005Z failed verification: public.avatars: 3 rows in the manifest, 2 after restore'
    )
    assert_nothing_published(tmp_path)
    assert docker.containers == set()
    assert len(docker.removed) == 1
    assert 'verify_cleanup' in excinfo.value.timings


def test_a_failed_restore_fails_and_removes_the_container(tmp_path, project):
    docker = FakeDocker(restore_rc=1)
    with pytest.raises(bc.BackupError, match='pg_restore failed: pg_restore: error'):
        bc.create(params(tmp_path, project), docker)
    assert_nothing_published(tmp_path)
    assert docker.containers == set()


def test_the_container_is_removed_when_it_never_gets_ready(tmp_path, project, monkeypatch):
    monkeypatch.setattr(bc, 'READY_TIMEOUT', 0.3)
    monkeypatch.setattr(bc, 'READY_POLL', 0.01)
    docker = FakeDocker(ready_after=10**6)
    with pytest.raises(bc.BackupError, match='did not accept connections'):
        bc.create(params(tmp_path, project), docker)
    assert docker.containers == set()
    assert len(docker.removed) == 1
    assert_nothing_published(tmp_path)


def test_the_container_is_removed_when_the_run_is_interrupted(tmp_path, project, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bc.Backup, '_wait_ready', interrupt)
    docker = FakeDocker()
    with pytest.raises(KeyboardInterrupt):
        bc.create(params(tmp_path, project), docker)
    assert docker.containers == set()
    assert_nothing_published(tmp_path)


def test_throwaway_container_names_are_unique(tmp_path, project):
    docker = FakeDocker()
    bc.create(params(tmp_path, project), docker)
    bc.create(params(tmp_path, project, id='20261128T020006Z'), docker)
    bc.create(params(tmp_path, project, id='20261128T020007Z'), docker)
    assert len(set(docker.removed)) == 3


def test_too_little_free_space_is_refused_before_anything(tmp_path, project, monkeypatch):
    monkeypatch.setattr(bc, 'free_bytes', lambda path: 5 * 1048576)
    docker = FakeDocker()
    with pytest.raises(
        ValueError, match=r'only 5\.0 MB are free under .*backups; this backup needs 100\.0 MB \(backup_min_free_mb\)'
    ):
        bc.create(params(tmp_path, project, min_free_mb=100), docker)
    assert not (tmp_path / 'backups').exists()
    assert docker.calls == []


def test_the_previous_backup_sets_the_space_needed(tmp_path, project, monkeypatch):
    old = tmp_path / 'backups' / '20261127T020005Z'
    old.mkdir(parents=True)
    (old / 'db.dump').write_bytes(b'x' * 3 * 1048576)
    (tmp_path / 'backups' / '20261101T020005Z').mkdir()  # older, empty: not the one measured
    monkeypatch.setattr(bc, 'free_bytes', lambda path: 2 * 1048576)
    with pytest.raises(ValueError, match=r'needs 3\.0 MB \(the size of the previous backup\)'):
        bc.create(params(tmp_path, project, min_free_mb=1), FakeDocker())
    assert listing(tmp_path / 'backups') == ['20261101T020005Z', '20261127T020005Z']


def test_a_missing_db_container_is_refused_before_anything(tmp_path, project):
    with pytest.raises(ValueError, match='no such service: nosuch'):
        bc.create(params(tmp_path, project, db_service='nosuch'), FakeDocker())
    assert not (tmp_path / 'backups').exists()


@pytest.mark.parametrize(
    'change, message',
    [
        ({'id': '../../etc'}, 'is not a backup id'),
        ({'owner': 'no-such-user-here'}, 'is not a user on this host'),
        ({'backup_dir': 'relative/backups'}, 'must be an absolute path'),
        ({'backup_dir': '/var/backups/a:b'}, 'must not contain a colon'),
        ({'archives': [{'name': '../x.tar.gz', 'paths': ['a']}]}, 'unique file name'),
        ({'archives': [{'name': 'x.tar.gz', 'paths': ['/etc']}]}, 'relative to the project folder'),
        ({'archives': [{'name': 'x.tar.gz', 'paths': ['a/../../b']}]}, 'relative to the project folder'),
    ],
)
def test_bad_input_is_refused_before_anything(tmp_path, project, change, message):
    docker = FakeDocker()
    with pytest.raises(ValueError, match=message):
        bc.create(params(tmp_path, project, **change), docker)
    assert not (tmp_path / 'backups').exists()
    assert docker.calls == []


def test_an_existing_backup_id_is_refused(tmp_path, project):
    (tmp_path / 'backups' / '20261128T020005Z').mkdir(parents=True)
    with pytest.raises(ValueError, match='already exists'):
        bc.create(params(tmp_path, project), FakeDocker())


def test_check_mode_creates_nothing(tmp_path, project):
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project), docker, check_mode=True)
    assert result['manifest'] == {}
    assert result['path'] == str(tmp_path / 'backups' / '20261128T020005Z')
    assert not (tmp_path / 'backups').exists()
    assert [c[1] for c in docker.calls] == ['compose']


def test_count_sql_is_the_roles(tmp_path):
    """verify_restore.yml (checking an old backup) counts rows with the same statement."""
    assert ROLE_VARS['_backup_count_sql'] == bc.COUNT_SQL


# -- the real runner ---------------------------------------------------------


def test_runner_streams_stdout_with_its_hash_and_exit_status(tmp_path):
    dest = tmp_path / 'out'
    res = bc.Runner().run(['sh', '-c', 'head -c 3000000 /dev/zero; echo oops >&2; exit 3'], stdout_path=str(dest))
    assert (res.rc, res.size, res.stderr.strip()) == (3, 3000000, 'oops')
    assert res.sha256 == hashlib.sha256(b'\x00' * 3000000).hexdigest()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_runner_never_overwrites_a_file(tmp_path):
    dest = tmp_path / 'out'
    dest.write_text('keep')
    with pytest.raises(FileExistsError):
        bc.Runner().run(['true'], stdout_path=str(dest))
    assert dest.read_text() == 'keep'


def test_runner_passes_text_and_files_as_stdin(tmp_path):
    assert bc.Runner().run(['cat'], 'hello\n').stdout == 'hello\n'
    (tmp_path / 'in').write_bytes(b'bytes')
    with open(tmp_path / 'in', 'rb') as f:
        assert bc.Runner().run(['cat'], f).stdout == 'bytes'


def test_session_reads_answers_until_its_marker_and_reports_an_early_end(tmp_path):
    """A stand-in psql: a shell that runs each line; \\echo prints its argument."""
    script = (
        'while read -r line; do case "$line" in'
        ' "\\\\echo "*) echo "${line#* }";;'
        ' FAIL*) echo "ERROR: bad" >&2; exit 3;;'
        ' *) echo "got|$line";;'
        ' esac; done'
    )
    session = bc.PsqlSession(['sh', '-c', script])
    assert session.query('one\ntwo') == ['got|one', 'got|two']
    assert session.query('three') == ['got|three']
    with pytest.raises(bc.BackupError, match='psql ended \\(exit status 3\\): ERROR: bad'):
        session.query('FAIL')
    session.close()


# -- with a real PostgreSQL ----------------------------------------------------

PG_BIN = '/usr/lib/postgresql/15/bin'


@pytest.fixture(scope='module')
def postgres():
    """A real PostgreSQL server on a socket, run by the postgres user (needs root and PostgreSQL 15's binaries)."""
    if os.getuid() != 0 or not os.path.exists(os.path.join(PG_BIN, 'initdb')):
        pytest.skip('needs root and PostgreSQL 15 server binaries')
    try:
        pwd.getpwnam('postgres')
    except KeyError:
        pytest.skip('needs a postgres user')
    # pytest's temporary folders are private to root: the server's folder must be reachable by postgres.
    base = pathlib.Path(tempfile.mkdtemp(prefix='avatar-backup-pg-'))
    os.chmod(base, 0o777)
    data, sock = str(base / 'data'), str(base / 'sock')
    os.mkdir(sock)
    os.chmod(sock, 0o777)
    run = bc.Runner().run
    as_pg = ['runuser', '-u', 'postgres', '--']
    res = run(as_pg + [os.path.join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'directus'])
    assert res.rc == 0, res.stderr
    opts = f"-k {sock} -c listen_addresses='' -c fsync=off"
    # Not through the runner: the server would hold its output pipe open.
    subprocess.run(
        as_pg + [os.path.join(PG_BIN, 'pg_ctl'), '-D', data, '-o', opts, '-w', '-l', str(base / 'log'), 'start'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=True,
    )
    env = ['env', 'PGHOST=' + sock]
    sql = (
        'CREATE TABLE avatars (id serial PRIMARY KEY, name text);'
        " INSERT INTO avatars (name) VALUES ('ada'), ('grace'), ('linus');"
    )
    for argv in (['createdb', '-U', 'directus', 'directus'], ['psql', '-U', 'directus', '-d', 'directus', '-c', sql]):
        res = run(env + argv)
        assert res.rc == 0, res.stderr
    try:
        yield env
    finally:
        subprocess.run(
            as_pg + [os.path.join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


class LocalDocker(bc.Runner):
    """docker exec runs the command on this machine against the real server; a throwaway
    container is a throwaway database of that server."""

    def __init__(self, env):
        self.env = env
        self.scratch = {}
        self.mounts = {}
        self.removed = []

    def _local(self, argv):
        name = argv[3] if argv[2] == '-i' else argv[2]
        cmd = argv[argv.index(name) + 1 :]
        if name in self.scratch:
            cmd = [self.scratch[name] if a == 'directus' and cmd[i - 1] == '-d' else a for i, a in enumerate(cmd)]
            cmd = [self.mounts[name] if a == bc.SCRATCH_DUMP else a for a in cmd]
        if cmd[0] == 'pg_isready':  # this server listens on its socket only
            cmd = [a for i, a in enumerate(cmd) if a != '-h' and cmd[i - 1] != '-h']
        return self.env + cmd

    def session(self, argv):
        return bc.PsqlSession(self._local(argv))

    def run(self, argv, stdin=None, stdout_path=None):
        if argv[0] != 'docker':
            return super().run(argv, stdin, stdout_path)
        if argv[1] == 'compose':
            return bc.Result(0, DB + '\n')
        if argv[1] == 'inspect':
            return bc.Result(0, 'sha256:local\n')
        if argv[1] == 'run':
            name = argv[argv.index('--name') + 1]
            self.scratch[name] = 'scratch_' + name.rsplit('-', 1)[1]
            self.mounts[name] = argv[argv.index('-v') + 1].split(':')[0]
            return super().run(self.env + ['createdb', '-U', 'directus', self.scratch[name]])
        if argv[1] == 'rm':
            self.removed.append(argv[-1])
            return super().run(self.env + ['dropdb', '-U', 'directus', '--if-exists', self.scratch.pop(argv[-1])])
        return super().run(self._local(argv), stdin, stdout_path)


def test_a_real_dump_restores_to_the_counts_of_its_snapshot(tmp_path, project, postgres):
    docker = LocalDocker(postgres)
    result = bc.create(params(tmp_path, project), docker)
    manifest = result['manifest']
    assert manifest['row_counts'] == {'public.avatars': 3}
    assert manifest['verification']['result'] == 'ok'
    assert manifest['verification']['restored_row_counts'] == {'public.avatars': 3}
    assert manifest['postgres_version'].startswith('15.')
    assert docker.scratch == {}
    assert len(docker.removed) == 1
    dump = tmp_path / 'backups' / '20261128T020005Z' / 'db.dump'
    listed = bc.Runner().run(postgres + ['pg_restore', '-l', str(dump)])
    assert listed.rc == 0
    assert 'TABLE DATA public avatars' in listed.stdout


def test_a_real_pg_dump_failure_fails_the_backup(tmp_path, project, postgres):
    """pg_dump's own exit status counts (it went lost behind psql's \\! before)."""

    class FailingDump(LocalDocker):
        def _local(self, argv):
            cmd = super()._local(argv)
            return [a + '_gone' if a == 'directus' and 'pg_dump' in cmd else a for a in cmd]

    with pytest.raises(bc.BackupError, match=r'pg_dump failed \(exit status 1\): .*directus_gone'):
        bc.create(params(tmp_path, project), FailingDump(postgres))
    assert_nothing_published(tmp_path)


# ---------------------------------------------------------------------------
# The running release from the ledger, and retention in the same call
# ---------------------------------------------------------------------------

POLICY = {'daily': 2, 'weekly': 0, 'monthly': 0, 'other': 1}


def write_ledger(project, current, releases):
    folder = project / 'releases'
    folder.mkdir(exist_ok=True)
    (folder / 'index.json').write_text(json.dumps({'current': current, 'releases': releases}))


def old_backup(backup_dir, backup_id, kind='scheduled', result='ok'):
    """A complete backup on disk as the module leaves it (a folder with a manifest)."""
    folder = backup_dir / backup_id
    folder.mkdir(parents=True)
    (folder / 'db.dump').write_bytes(DUMP)
    manifest = {'id': backup_id, 'kind': kind, 'verification': {'result': result}}
    (folder / 'manifest.json').write_text(json.dumps(manifest))
    return folder


def test_without_a_release_the_manifest_names_the_ledgers_running_release(tmp_path, project):
    write_ledger(
        project,
        '20261127T100000Z-v1.2.0',
        [
            {'id': '20261120T100000Z-v1.1.0', 'version': 'v1.1.0', 'result': 'success'},
            {'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0', 'result': 'success'},
        ],
    )
    p = params(tmp_path, project)
    del p['release']
    result = bc.create(p, FakeDocker())
    assert result['release'] == {'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0'}
    assert result['manifest']['release'] == result['release']
    on_disk = json.loads((tmp_path / 'backups' / '20261128T020005Z' / 'manifest.json').read_text())
    assert on_disk['release'] == {'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0'}
    assert result['warnings'] == []


@pytest.mark.parametrize('ledger', [None, '{"current": "x", "releases": [', '{"current": "", "releases": []}'])
def test_no_or_a_broken_ledger_records_no_release(tmp_path, project, ledger):
    if ledger is not None:
        (project / 'releases').mkdir()
        (project / 'releases' / 'index.json').write_text(ledger)
    p = params(tmp_path, project)
    del p['release']
    result = bc.create(p, FakeDocker())
    assert result['manifest']['release'] == {'id': '', 'version': ''}
    assert bool(result['warnings']) == (ledger is not None and ledger.endswith('['))
    assert all('index.json is corrupt' in w for w in result['warnings'])


def test_a_given_release_is_recorded_as_given(tmp_path, project):
    write_ledger(project, '20261127T100000Z-v1.2.0', [{'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0'}])
    result = bc.create(params(tmp_path, project, release={'id': 'r', 'version': 'v9'}), FakeDocker())
    assert result['manifest']['release'] == {'id': 'r', 'version': 'v9'}


def test_retention_runs_after_publishing_and_returns_what_it_removed_and_kept(tmp_path, project):
    backups = tmp_path / 'backups'
    for backup_id in ('20261124T020000Z', '20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    (backups / '.tmp-20261127T030000Z').mkdir()  # another run's backup in progress
    result = bc.create(params(tmp_path, project, retention=POLICY), FakeDocker())
    retention = result['retention']
    assert retention['keep'] == ['20261128T020005Z', '20261127T020000Z']
    assert retention['removed'] == ['20261126T020000Z', '20261125T020000Z', '20261124T020000Z']
    assert retention['reasons']['20261128T020005Z'] == ['newest', 'daily', 'verified']
    assert listing(backups) == ['.tmp-20261127T030000Z', '20261127T020000Z', '20261128T020005Z']
    assert 'retention' in result['timings']


def test_retention_never_removes_what_the_ledger_names_or_protect_lists(tmp_path, project):
    backups = tmp_path / 'backups'
    for backup_id in ('20261124T020000Z', '20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    write_ledger(
        project,
        '20261127T100000Z-v1.2.0',
        [{'id': '20261127T100000Z-v1.2.0', 'version': 'v1.2.0', 'result': 'success', 'backup': '20261124T020000Z'}],
    )
    p = params(tmp_path, project, retention=POLICY, protect=['20261125T020000Z'])
    result = bc.create(p, FakeDocker())
    assert result['retention']['removed'] == ['20261126T020000Z']
    assert sorted(result['retention']['protected']) == ['20261124T020000Z', '20261125T020000Z']
    assert listing(backups) == ['20261124T020000Z', '20261125T020000Z', '20261127T020000Z', '20261128T020005Z']


def test_pre_deploy_backups_do_not_displace_the_nightly_and_the_newest_verified_stays(tmp_path, project):
    backups = tmp_path / 'backups'
    old_backup(backups, '20261125T020000Z')  # the newest verified backup before this one
    old_backup(backups, '20261126T020000Z', result='skipped')
    old_backup(backups, '20261127T020000Z', result='skipped')  # nightly of the 27th
    old_backup(backups, '20261127T150000Z', kind='pre-deploy', result='skipped')
    old_backup(backups, '20261127T160000Z', kind='pre-deploy', result='skipped')
    p = params(tmp_path, project, kind='pre-deploy', verify=False, retention=POLICY)
    result = bc.create(p, FakeDocker())
    retention = result['retention']
    # daily=2 counts the nightly backups only: the 27th and the 26th; other=1: the newest pre-deploy.
    assert retention['reasons']['20261127T020000Z'] == ['daily']
    assert retention['reasons']['20261126T020000Z'] == ['daily']
    assert retention['reasons']['20261128T020005Z'] == ['newest', 'kind']
    assert retention['reasons']['20261125T020000Z'] == ['verified']
    assert retention['removed'] == ['20261127T160000Z', '20261127T150000Z']


def test_check_mode_reports_what_retention_would_remove_and_changes_nothing(tmp_path, project):
    backups = tmp_path / 'backups'
    for backup_id in ('20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    before = {path: path.stat().st_mtime_ns for path in backups.rglob('*')}
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project, retention=POLICY), docker, check_mode=True)
    assert result['retention']['removed'] == ['20261126T020000Z', '20261125T020000Z']
    assert result['retention']['keep'] == ['20261128T020005Z', '20261127T020000Z']
    assert {path: path.stat().st_mtime_ns for path in backups.rglob('*')} == before
    assert not any(call[1] in ('exec', 'run') for call in docker.calls if call[0] == 'docker')


def test_a_bad_retention_policy_is_refused_before_anything_changes(tmp_path, project):
    docker = FakeDocker()
    with pytest.raises(
        ValueError, match=r'^retention\.other must be a non-negative integer, got -1 \(backup_keep_other\)$'
    ):
        bc.create(params(tmp_path, project, retention=dict(POLICY, other=-1)), docker)
    assert docker.calls == []
    assert not (tmp_path / 'backups').exists()


def test_a_failing_retention_keeps_the_published_backup_and_says_what_it_removed(tmp_path, project, monkeypatch):
    backups = tmp_path / 'backups'
    for backup_id in ('20261124T020000Z', '20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if path.endswith('20261125T020000Z'):
            raise PermissionError(13, 'Permission denied', path)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(bc.shutil, 'rmtree', rmtree)
    with pytest.raises(bc.RetentionError) as caught:
        bc.create(params(tmp_path, project, retention=POLICY), FakeDocker())
    message = str(caught.value)
    assert message.startswith('Backup 20261128T020005Z was taken and published in ')
    assert 'retention failed: [Errno 13] Permission denied' in message
    assert 'Removed before the failure: 20261126T020000Z.' in message
    result = caught.value.result
    assert result['retention']['removed'] == ['20261126T020000Z']
    assert result['manifest']['verification']['result'] == 'ok'
    published = backups / '20261128T020005Z'
    assert json.loads((published / 'manifest.json').read_text()) == result['manifest']
    # The backup whose removal failed was renamed first: no longer a backup for a list, a restore or retention.
    assert listing(backups) == ['.del-20261125T020000Z', '20261124T020000Z', '20261127T020000Z', '20261128T020005Z']
    assert [b['id'] for b in bc.complete_backups(str(backups))] == [
        '20261124T020000Z',
        '20261127T020000Z',
        '20261128T020005Z',
    ]


def test_retention_counts_only_complete_backup_folders(tmp_path):
    backups = tmp_path / 'backups'
    old_backup(backups, '20261126T020000Z')
    elsewhere = old_backup(tmp_path / 'elsewhere', '20261125T020000Z')
    (backups / '20261125T020000Z').symlink_to(elsewhere)  # a link is not a backup: never followed, never removed
    (backups / '20261124T020000Z').write_text('a file')
    (backups / '.tmp-20261123T020000Z').mkdir()
    (backups / 'notes').mkdir()
    assert [b['id'] for b in bc.complete_backups(str(backups))] == ['20261126T020000Z']
    result = bc.apply_retention(str(backups), {'daily': 0, 'weekly': 0, 'monthly': 0}, ())
    assert result == {'keep': ['20261126T020000Z'], 'removed': [], 'protected': [], 'reasons': result['reasons']}
    assert (elsewhere / 'manifest.json').is_file()


def test_a_corrupt_ledger_skips_retention_so_the_backups_it_names_stay(tmp_path, project):
    backups = tmp_path / 'backups'
    for backup_id in ('20261124T020000Z', '20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    (project / 'releases').mkdir()
    (project / 'releases' / 'index.json').write_text('{"current": "x", "releases": [{"backup": "20261124T020000Z"')
    result = bc.create(params(tmp_path, project, retention=POLICY), FakeDocker())
    assert result['retention']['removed'] == []
    assert any(w.startswith('retention skipped: the ledger cannot be read') for w in result['warnings'])
    assert len(bc.complete_backups(str(backups))) == 5


def test_a_ledger_entry_whose_backup_is_no_id_is_ignored(tmp_path, project):
    backups = tmp_path / 'backups'
    for backup_id in ('20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    write_ledger(
        project,
        'r2',
        [{'id': 'r1', 'backup': ['20261125T020000Z']}, {'id': 'r2', 'backup': '20261126T020000Z'}],
    )
    result = bc.create(params(tmp_path, project, retention=POLICY), FakeDocker())
    assert result['retention']['removed'] == ['20261125T020000Z']
    assert result['retention']['protected'] == ['20261126T020000Z']


def test_a_backup_whose_manifest_cannot_be_read_now_is_not_removed(tmp_path, project, monkeypatch):
    backups = tmp_path / 'backups'
    for backup_id in ('20261124T020000Z', '20261125T020000Z', '20261126T020000Z', '20261127T020000Z'):
        old_backup(backups, backup_id)
    real_open = open

    def flaky_open(path, *args, **kwargs):
        if str(path).endswith('20261125T020000Z/manifest.json'):
            raise PermissionError(13, 'Permission denied', str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr('builtins.open', flaky_open)
    result = bc.apply_retention(str(backups), dict(POLICY, daily=1), ())
    assert '20261125T020000Z' in result['protected']
    assert (backups / '20261125T020000Z').is_dir()
    assert result['removed'] == ['20261126T020000Z', '20261124T020000Z']


def test_a_removal_left_half_done_is_finished_by_the_next(tmp_path):
    backups = tmp_path / 'backups'
    old_backup(backups, '20261125T020000Z')
    (backups / '.del-20261125T020000Z' / 'rest').mkdir(parents=True)  # an earlier removal of the same id stopped
    bc.remove_backup(str(backups), '20261125T020000Z')
    assert listing(backups) == []


# ---------------------------------------------------------------------------
# Archives of unchanged files are not written again (hard links to the previous backup's)
# ---------------------------------------------------------------------------

FIRST, SECOND, THIRD = '20261128T020005Z', '20261129T020005Z', '20261130T020005Z'


def archive_names(path):
    return sorted(bc.Runner().run(['tar', '-tzf', str(path)]).stdout.split())


def archive_bytes(path, member):
    return subprocess.run(['tar', '-xzOf', str(path), member], capture_output=True, check=True).stdout


def tar_calls(docker):
    return [c for c in docker.calls if c[0] == 'tar' and '-czf' in c]


@pytest.mark.parametrize('verify', [True, False])
def test_unchanged_files_reuse_the_previous_archive(tmp_path, project, verify):
    bc.create(params(tmp_path, project, id=FIRST, verify=verify), FakeDocker())
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project, id=SECOND, verify=verify), docker)
    first, second = tmp_path / 'backups' / FIRST, tmp_path / 'backups' / SECOND
    assert result['reused'] == {'directus.tar.gz': FIRST, 'proxy.tar.gz': FIRST}
    assert result['manifest']['reused'] == result['reused']
    assert not tar_calls(docker)
    for name in ('directus.tar.gz', 'proxy.tar.gz'):
        assert os.stat(first / name).st_ino == os.stat(second / name).st_ino
        data = (second / name).read_bytes()
        assert result['files'][name] == {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
        assert stat.S_IMODE(os.stat(second / name).st_mode) == 0o600
    # The dump is always new.
    assert os.stat(first / 'db.dump').st_ino != os.stat(second / 'db.dump').st_ino
    # The first backup removed (retention), the second's archives stay whole.
    shutil.rmtree(first)
    assert archive_bytes(second / 'directus.tar.gz', 'directus/uploads/model.glb') == b'\x00glb' * 50


@pytest.mark.parametrize(
    'change',
    [
        'content, same size and time',
        'mode',
        'new file',
        'removed file',
        'renamed file',
        'new folder',
    ],
)
def test_a_changed_file_writes_a_new_archive(tmp_path, project, change):
    bc.create(params(tmp_path, project, id=FIRST, verify=False), FakeDocker())
    upload = project / 'directus/uploads/model.glb'
    if change == 'content, same size and time':
        st = os.stat(upload)
        upload.write_bytes(b'\x01GLB' * 50)
        os.utime(upload, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == 'mode':
        os.chmod(upload, 0o600)
    elif change == 'new file':
        (project / 'directus/uploads/new.png').write_bytes(b'png')
    elif change == 'removed file':
        upload.unlink()
    elif change == 'renamed file':
        upload.rename(project / 'directus/uploads/renamed.glb')
    else:
        (project / 'directus/uploads/2026').mkdir()
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project, id=SECOND), docker)
    assert result['reused'] == {'proxy.tar.gz': FIRST}
    assert [c[-3:] for c in tar_calls(docker)] == [['directus/uploads', 'directus/extensions', 'directus/schemas']]
    second = tmp_path / 'backups' / SECOND / 'directus.tar.gz'
    assert os.stat(second).st_ino != os.stat(tmp_path / 'backups' / FIRST / 'directus.tar.gz').st_ino
    names = archive_names(second)
    if change == 'content, same size and time':
        assert archive_bytes(second, 'directus/uploads/model.glb') == b'\x01GLB' * 50
    elif change == 'new file':
        assert 'directus/uploads/new.png' in names
    elif change in ('removed file', 'renamed file'):
        assert 'directus/uploads/model.glb' not in names
    # The third backup reuses the second's archive (the newest with that fingerprint).
    third = bc.create(params(tmp_path, project, id=THIRD, verify=False), FakeDocker())
    assert third['reused'] == {'directus.tar.gz': SECOND, 'proxy.tar.gz': SECOND}


def test_excluded_proxy_logs_do_not_make_a_new_archive(tmp_path, project):
    bc.create(params(tmp_path, project, id=FIRST, verify=False), FakeDocker())
    # nginx appends to its logs (a new log file would change the folder's time, which tar records).
    with open(project / 'jc21/data/logs/proxy-host-1_access.log', 'a') as log:
        log.write('GET /again\n')
    result = bc.create(params(tmp_path, project, id=SECOND, verify=False), FakeDocker())
    assert result['reused'] == {'directus.tar.gz': FIRST, 'proxy.tar.gz': FIRST}


@pytest.mark.parametrize('damage', ['gone', 'shorter', 'no sources', 'other spec'])
def test_an_archive_that_cannot_be_reused_is_written(tmp_path, project, damage):
    bc.create(params(tmp_path, project, id=FIRST, verify=False), FakeDocker())
    first = tmp_path / 'backups' / FIRST
    archives = ROLE_VARS['_backup_archives']
    if damage == 'gone':
        (first / 'directus.tar.gz').unlink()
    elif damage == 'shorter':
        with open(first / 'directus.tar.gz', 'r+b') as f:
            f.truncate(10)
    elif damage == 'no sources':
        manifest = json.loads((first / 'manifest.json').read_text())
        del manifest['sources']
        (first / 'manifest.json').write_text(json.dumps(manifest))
    else:
        archives = [dict(a, exclude=['directus/schemas']) if a['name'] == 'directus.tar.gz' else a for a in archives]
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project, id=SECOND, archives=archives), docker)
    assert 'directus.tar.gz' not in result['reused']
    assert len(tar_calls(docker)) == (2 if damage == 'no sources' else 1)
    assert 'directus/uploads/model.glb' in archive_names(tmp_path / 'backups' / SECOND / 'directus.tar.gz')
    assert result['verification']['result'] == 'ok'


def test_a_reused_archive_from_a_verified_backup_is_not_listed_again(tmp_path, project):
    bc.create(params(tmp_path, project, id=FIRST), FakeDocker())
    docker = FakeDocker()
    result = bc.create(params(tmp_path, project, id=SECOND), docker)
    assert result['verification']['result'] == 'ok'
    assert not [c for c in docker.calls if c[:2] == ['tar', '-tzf']]
    # From a backup that was not verified (both archives come from 20261202) they are listed.
    bc.create(params(tmp_path, project, id='20261201T020005Z', verify=False), FakeDocker())
    (project / 'directus/uploads/new.png').write_bytes(b'png')
    bc.create(params(tmp_path, project, id='20261202T020005Z', verify=False), FakeDocker())
    docker = FakeDocker()
    bc.create(params(tmp_path, project, id='20261203T020005Z'), docker)
    listed = [os.path.basename(c[-1]) for c in docker.calls if c[:2] == ['tar', '-tzf']]
    assert listed == ['directus.tar.gz', 'proxy.tar.gz']


def test_a_damaged_reused_archive_fails_verification(tmp_path, project):
    """The shared file changed since its backup recorded it: the sha256 check catches it, nothing is published."""
    bc.create(params(tmp_path, project, id=FIRST), FakeDocker())
    first = tmp_path / 'backups' / FIRST / 'directus.tar.gz'
    data = bytearray(first.read_bytes())
    data[-20] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(bc.BackupError, match=r'directus\.tar\.gz: sha256 differs from the manifest'):
        bc.create(params(tmp_path, project, id=SECOND), FakeDocker())
    assert listing(tmp_path / 'backups') == [FIRST]


def test_files_changed_while_tar_reads_them_record_no_fingerprint(tmp_path, project, monkeypatch):
    real = bc.source_fingerprint
    calls = []

    def moving(project_dir, item):
        calls.append(item['name'])
        return real(project_dir, item) + ('-moved' if calls.count(item['name']) == 2 else '')

    monkeypatch.setattr(bc, 'source_fingerprint', moving)
    result = bc.create(params(tmp_path, project, id=FIRST, verify=False), FakeDocker())
    assert result['manifest']['sources'] == {}
    monkeypatch.setattr(bc, 'source_fingerprint', real)
    result = bc.create(params(tmp_path, project, id=SECOND, verify=False), FakeDocker())
    assert result['reused'] == {}


def test_the_fingerprint_follows_what_tar_reads(tmp_path, project):
    item = {'name': 'directus.tar.gz', 'paths': ['directus/uploads', 'directus/extensions']}
    before = bc.source_fingerprint(str(project), item)
    assert bc.source_fingerprint(str(project), item) == before
    assert bc.source_fingerprint(str(project), dict(item, paths=['directus/uploads'])) != before
    (project / 'directus/extensions/ext.js').write_text('x')
    assert bc.source_fingerprint(str(project), item) != before
    missing = dict(item, paths=['directus/nothing'])
    assert bc.source_fingerprint(str(project), missing) != bc.source_fingerprint(str(project), dict(item, paths=[]))


def test_the_flusher_stops_with_its_file_and_never_raises(tmp_path):
    """It runs beside the writer and ends with it; a flush that fails is left to the final fsync to report."""
    fd = os.open(tmp_path / 'f', os.O_WRONLY | os.O_CREAT, 0o600)
    with bc.Flusher(fd, interval=0.01) as flusher:
        os.write(fd, b'x' * 4096)
        flusher.stopped.wait(0.05)
        assert flusher.thread.is_alive()
    assert not flusher.thread.is_alive()
    os.close(fd)
    with bc.Flusher(fd, interval=0.01) as flusher:  # a closed descriptor: fdatasync fails, nothing raises
        flusher.stopped.wait(0.05)
        assert not flusher.thread.is_alive()
    assert (tmp_path / 'f').read_bytes() == b'x' * 4096
