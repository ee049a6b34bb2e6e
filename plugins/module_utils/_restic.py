# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy a published backup into a restic repository off the host (the logic of the backup_offsite module).

restic does the encryption and the deduplication. The snapshot holds the backup's ``db.dump`` and
``manifest.json`` and the live Directus and proxy folders straight from the project folder (not the
``.tar.gz`` archives: gzip would defeat deduplication, so unchanged uploads cost nothing the next night).
Secrets reach restic only by file (``RESTIC_PASSWORD_FILE``, the SSH key in an ssh_config) or by the
environment of the process (``backup_repository_env``), never on a command line; restic's messages are
passed on with every secret value taken out. Every command goes through a runner, so the command building
and parsing are tested against a real restic with a local repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time

# restic >= 0.17: "repository does not exist" (older ones exit 1 and say so on stderr).
RC_NO_REPOSITORY = 10
RC_LOCKED = 11
RC_WRONG_PASSWORD = 12
# The backup finished, but some source files could not be read: the snapshot is incomplete.
RC_INCOMPLETE = 3
NO_REPOSITORY_TEXT = ('Is there a repository at the following location?', 'repository does not exist')
# restic backup --parent <id> with an id the repository does not hold, as restic versions word it.
PARENT_MISSING_TEXT = ('no matching ID found', 'invalid id', 'failed to load snapshot')
# Beside the backups: the snapshot each copy made, per repository and host (the next copy's parent).
PARENTS_FILE = '.offsite-parents.json'
# Without it, how many earlier backups' manifests are read for the snapshot their off-host copy made.
LOCAL_PARENT_SCAN = 10
SNAPSHOT_ID_RE = re.compile(r'^[0-9a-f]{8,64}$')
TAG_PREFIX = 'avatar-mgmt'
# What ssh says when an SFTP connection fails, in the words that name the cause.
# restic's words when ssh ended before the SFTP session started (a host key refused, a connection closed).
SFTP_START_FAILED = 'unable to start the sftp session'
# Seconds the second look at ssh's own words (Repository.ssh_reason) may take.
SSH_PROBE_TIMEOUT = 30
SSH_TELLING = (
    'host key verification failed',
    'remote host identification has changed',
    'host key for',
    'no ed25519 host key is known',
    'permission denied',
    'could not resolve',
    'connection refused',
    'connection timed out',
    'no route to host',
)
KINDS = ('scheduled', 'pre-deploy', 'safety')
ID_RE = re.compile(r'^\d{8}T\d{6}Z$')
SUBSET_RE = re.compile(r'^(\d{1,2}(\.\d+)?%|100%|\d+/\d+|\d+[KMGT]?)$')
TAG_BAD = re.compile(r'[,\s]')
SFTP_SHORT = re.compile(r'^sftp:(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:@]+):(?P<path>.+)$')
SFTP_URL = re.compile(r'^sftp://(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:@]+)(?::(?P<port>\d+))?/(?P<path>.*)$')
OTHER_KINDS = ('rest:', 's3:', 'b2:', 'azure:', 'gs:', 'swift:', 'rclone:')
# restic before 0.16.1 retries reading a file that is not there ten times with a growing pause (about 45 s),
# for each missing file: a repository that lost data packs makes a restore (or a check, a prune) wait minutes
# for nothing. A missing data pack does not come back, so the runner stops restic at its first retry of one
# (SIGINT: restic removes its lock) and the message names the pack. Newer restic does not retry missing files.
MISSING_DATA = re.compile(
    r'Load\(<data/(?P<pack>[0-9a-f]+)>[^)]*\) returned error, retrying after [^:]*: '
    r'(?P<error>.*(?:no such file or directory|does not exist|not found|NoSuchKey).*)$',
    re.IGNORECASE,
)
# How long restic may take to remove its lock once stopped, before it is killed.
STOP_GRACE = 10


class ResticError(Exception):
    """A restic command that failed; the message names the step and restic's own words (no secrets)."""

    def __init__(self, msg, timings=None, unusable_parent=False):
        super().__init__(msg)
        self.timings = timings or {}
        # restic refused a --parent the repository does not hold (or found no repository) before writing
        # anything: a backup with a recorded parent is tried again without it.
        self.unusable_parent = unusable_parent


def parse_repository(repo):
    """The repository string as restic reads it: ``{'kind', 'user', 'host', 'port', 'path'}``.

    ``sftp:user@host:/path``, ``sftp://user@host:port//path``, an absolute local path (tests, a mounted
    disk), or one of restic's other backends (``rest:``, ``s3:`` ...: passed on as they are). Raises
    ValueError for anything else, and for a password written into the string (``rest:https://u:pw@``).
    """
    repo = (repo or '').strip()
    if not repo:
        raise ValueError('backup_repository is empty')
    if re.search(r'://[^/@:]+:[^/@]+@', repo):
        raise ValueError(
            'backup_repository must not carry a password (user:password@): put it in backup_repository_env '
            '(RESTIC_REST_PASSWORD, AWS_SECRET_ACCESS_KEY ...)'
        )
    match = SFTP_URL.match(repo)
    if match:
        path = match['path']
        return {
            'kind': 'sftp',
            'user': match['user'] or '',
            'host': match['host'],
            'port': match['port'] or '',
            'path': path if path.startswith('/') else '~/' + path if path else '.',
        }
    match = SFTP_SHORT.match(repo)
    if match:
        return {'kind': 'sftp', 'user': match['user'] or '', 'host': match['host'], 'port': '', 'path': match['path']}
    if repo.startswith('/'):
        return {'kind': 'local', 'user': '', 'host': '', 'port': '', 'path': repo}
    for prefix in OTHER_KINDS:
        if repo.startswith(prefix) and len(repo) > len(prefix):
            return {'kind': prefix[:-1], 'user': '', 'host': '', 'port': '', 'path': repo[len(prefix) :]}
    raise ValueError(
        f'backup_repository {repo!r} is not a restic repository this collection knows: use sftp:user@host:/path, '
        'sftp://user@host:port//path, rest:https://host/path, s3:host/bucket/path or an absolute local path'
    )


def sftp_command(parsed, ssh_config):
    """The ``sftp.command`` option for an SFTP repository: ssh with the given config file (key, known hosts,
    strict host key checking), so nothing secret is on the command line. ``''`` for other backends."""
    if parsed['kind'] != 'sftp':
        return ''
    argv = ['ssh', '-F', ssh_config]
    if parsed['port']:
        argv += ['-p', parsed['port']]
    target = f"{parsed['user']}@{parsed['host']}" if parsed['user'] else parsed['host']
    return shlex.join([*argv, target, '-s', 'sftp'])


def ssh_config_text(key_file, known_hosts_file):
    """The ssh_config the SFTP connection uses: this key only, these host keys only, never a prompt."""
    return (
        '# Written by avatar_mgmt.ops (backup role): the off-host repository connection.\n'
        'Host *\n'
        f'    IdentityFile {key_file}\n'
        '    IdentitiesOnly yes\n'
        f'    UserKnownHostsFile {known_hosts_file}\n'
        '    GlobalKnownHostsFile /dev/null\n'
        '    StrictHostKeyChecking yes\n'
        '    UpdateHostKeys no\n'
        '    BatchMode yes\n'
        '    ServerAliveInterval 15\n'
        '    ServerAliveCountMax 4\n'
    )


def display(repo):
    """The repository as messages may show it (no password in a URL; parse_repository refuses one anyway)."""
    return re.sub(r'(://[^/@:]+):[^/@]*@', r'\1:********@', repo)


def tags(environment, backup_id, kind, version):
    """The snapshot's tags: the collection, the environment, the backup id, its kind and the release."""
    out = [TAG_PREFIX, f'env:{environment}', f'id:{backup_id}', f'kind:{kind}']
    if version:
        out.append(f'release:{version}')
    for tag in out:
        if TAG_BAD.search(tag):
            raise ValueError(f'tag {tag!r} has a comma or a space, which restic cannot keep in a tag')
    return out


def redact(text, secret_values):
    """``text`` with every secret value (and each of its lines, for a multi-line key) replaced."""
    for value in sorted({v for v in secret_values if v}, key=len, reverse=True):
        parts = [value] + [line.strip() for line in value.splitlines() if len(line.strip()) >= 8]
        for part in parts:
            text = text.replace(part, '********')
    return text


def last_error(stderr):
    """restic's own explanation: its ``Fatal:`` line with what follows, else the last lines of stderr; with
    the last words of ssh when the SFTP connection failed (``Host key verification failed.``)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ssh = [line.split(':', 1)[1].strip('@ \t') for line in lines if line.startswith('subprocess ssh:')]
    ssh = [line for line in ssh if line]
    # restic may exit before it has passed on all of ssh's lines: the telling ones first.
    telling = [line for line in ssh if any(word in line.lower() for word in SSH_TELLING)]
    ssh = telling or ssh
    lines = [line for line in lines if not line.startswith('subprocess ssh:')]
    why = ''
    for i, line in enumerate(lines):
        if line.startswith('Fatal:'):
            why = ' '.join(lines[i : i + 3])
            break
    why = why or ' '.join(lines[-3:])
    if ssh:
        why = f"{why} (ssh: {' '.join(ssh[-2:])})".strip()
    return why or 'no message'


def parse_json_lines(stdout):
    """Each JSON object restic printed, one per line (``backup --json``); other lines are skipped."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith('{'):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def backup_summary(stdout):
    """The ``summary`` of ``restic backup --json`` and the ``error`` messages (files it could not read)."""
    messages = parse_json_lines(stdout)
    summary = next((m for m in reversed(messages) if m.get('message_type') == 'summary'), None)
    errors = [m for m in messages if m.get('message_type') == 'error']
    if summary is None:
        raise ValueError('restic backup printed no summary')
    return {
        'snapshot_id': summary.get('snapshot_id', ''),
        'data_added': int(summary.get('data_added', 0)),
        'data_added_packed': int(summary.get('data_added_packed', summary.get('data_added', 0))),
        'files_new': int(summary.get('files_new', 0)),
        'files_changed': int(summary.get('files_changed', 0)),
        'files_unmodified': int(summary.get('files_unmodified', 0)),
        'total_files_processed': int(summary.get('total_files_processed', 0)),
        'total_bytes_processed': int(summary.get('total_bytes_processed', 0)),
        'duration': float(summary.get('total_duration', 0.0)),
    }, [f"{(e.get('item') or '?')}: {(e.get('error') or {}).get('message', e.get('error'))}" for e in errors]


def forget_removed(stdout):
    """The snapshots ``restic forget --json`` removed: ``[{'id', 'time', 'tags'}]``."""
    text = stdout.strip()
    start = text.find('[')
    if start < 0:
        return []
    groups = json.JSONDecoder().raw_decode(text[start:])[0] or []
    removed = []
    for group in groups:
        for snap in group.get('remove') or []:
            removed.append(
                {
                    'id': snap.get('short_id') or snap.get('id', '')[:8],
                    'time': snap.get('time', ''),
                    'tags': snap.get('tags') or [],
                }
            )
    return removed


def policies(keep_daily, keep_weekly, keep_monthly, keep_last_other):
    """(tag filter, keep options) for each kind: GFS for scheduled snapshots, the last N for each other kind."""
    for name, value in (
        ('keep_daily', keep_daily),
        ('keep_weekly', keep_weekly),
        ('keep_monthly', keep_monthly),
        ('keep_last_other', keep_last_other),
    ):
        if int(value) < 0:
            raise ValueError(f'backup_repository_{name} must be 0 or more, not {value}')
    gfs = []
    for opt, value in (('--keep-daily', keep_daily), ('--keep-weekly', keep_weekly), ('--keep-monthly', keep_monthly)):
        if int(value) > 0:
            gfs += [opt, str(int(value))]
    if not gfs:
        # restic refuses a forget without any keep option; keep at least the newest scheduled snapshot.
        gfs = ['--keep-last', '1']
    out = [('kind:scheduled', gfs)]
    for kind in KINDS[1:]:
        out.append((f'kind:{kind}', ['--keep-last', str(max(int(keep_last_other), 1))]))
    return out


def missing_data(stderr):
    """``(pack, error)`` of the first retry of a data pack that is not in the repository, or None."""
    for line in stderr.splitlines():
        match = MISSING_DATA.search(line.strip())
        if match:
            return match['pack'], match['error'].strip()
    return None


class Runner:
    """Runs restic with the repository's environment; ``run`` returns (rc, stdout, stderr).

    restic is stopped at its first retry of a missing data pack (see ``MISSING_DATA``)."""

    def __init__(self, binary, env):
        self.binary = binary
        self.env = env

    def run(self, args, timeout=None):
        proc = subprocess.Popen(
            [self.binary, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors='replace',
        )
        out, err, stopped = [], [], []

        def read_out():
            out.append(proc.stdout.read())

        def read_err():
            for line in proc.stderr:
                err.append(line)
                if not stopped and missing_data(line):
                    stopped.append(threading.Timer(STOP_GRACE, proc.kill))
                    proc.send_signal(signal.SIGINT)
                    stopped[0].start()

        readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            for reader in readers:
                reader.join()
            for timer in stopped:
                timer.cancel()
            proc.stdout.close()
            proc.stderr.close()
        return proc.returncode, ''.join(out), ''.join(err)


def restic_env(params, ssh_config):
    """The environment restic runs with: the repository, the password file, the extra variables."""
    env = {k: v for k, v in os.environ.items() if k in ('PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'XDG_CACHE_HOME')}
    env.setdefault('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    env.setdefault('HOME', '/root')
    for key, value in (params.get('env') or {}).items():
        if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', str(key)):
            raise ValueError(f'backup_repository_env: {key!r} is not an environment variable name')
        env[str(key)] = str(value)
    env['RESTIC_REPOSITORY'] = params['repository']
    env['RESTIC_PASSWORD_FILE'] = params['password_file']
    env.pop('RESTIC_PASSWORD', None)
    env.pop('RESTIC_PASSWORD_COMMAND', None)
    if params.get('cache_dir'):
        env['RESTIC_CACHE_DIR'] = params['cache_dir']
    return env


class Repository:
    """One restic repository: the commands the module runs, each returning parsed output."""

    def __init__(self, params, runner=None):
        self.params = params
        self.parsed = parse_repository(params['repository'])
        self.name = display(params['repository'])
        ssh_config = params.get('ssh_config') or ''
        if self.parsed['kind'] == 'sftp' and not ssh_config:
            raise ValueError('an sftp repository needs ssh_config (the key and known hosts of the connection)')
        self.options = []
        command = sftp_command(self.parsed, ssh_config)
        if command:
            self.options = ['-o', f'sftp.command={command}']
        self.runner = runner or Runner(params.get('restic') or 'restic', restic_env(params, ssh_config))
        self.secrets = [str(v) for v in (params.get('env') or {}).values()] + list(params.get('secret_values') or [])

    def _run(self, step, args, ok=(0,), timeout=None):
        rc, out, err = self.runner.run([*self.options, *args], timeout=timeout)
        if rc not in ok:
            # restic refused the --parent (0.14 "invalid id ... no matching ID found"; later versions load a full id
            # directly, "failed to load snapshot") or found no repository: it wrote no snapshot, and the caller may
            # try again without the parent. Any other failure (ssh, a wrong password, a lock) is the answer itself.
            unusable = rc == RC_NO_REPOSITORY or (
                rc == 1 and any(t in err for t in PARENT_MISSING_TEXT + NO_REPOSITORY_TEXT)
            )
            raise ResticError(self.explain(step, rc, err), unusable_parent=unusable)
        return rc, out, err

    def explain(self, step, rc, stderr):
        why = last_error(stderr)
        ssh = self.ssh_reason(stderr)
        if ssh:
            why = f'{why} (ssh, asked again on its own: {ssh})'
        missing = missing_data(stderr)
        if missing:
            why = (
                f'data pack {missing[0]} is missing from the repository ({missing[1]}): the repository is damaged, '
                'restic was stopped rather than retrying a file that does not come back (restic check lists what '
                'is lost)'
            )
        elif rc == RC_WRONG_PASSWORD or 'wrong password' in stderr:
            why = 'wrong password (backup_repository_password is not the key of this repository)'
        elif rc == RC_LOCKED:
            why = 'the repository is locked by another restic (restic unlock removes a stale lock): ' + why
        return redact(f'restic {step} on {self.name} failed (exit {rc}): {why}', self.secrets)

    def ssh_reason(self, stderr):
        """ssh's own words when restic could not start the SFTP session and passed on none that tell why.

        restic may exit before it has read ssh's last lines (``Host key verification failed.``): the same ssh
        command then runs once more on its own, its input closed (a session that does start ends at once), for at
        most SSH_PROBE_TIMEOUT seconds. ``''`` for any other failure, another backend, or an ssh that says nothing.
        """
        if self.parsed['kind'] != 'sftp' or SFTP_START_FAILED not in stderr:
            return ''
        told = [line.lower() for line in stderr.splitlines() if line.strip().startswith('subprocess ssh:')]
        if any(word in line for line in told for word in SSH_TELLING):
            return ''
        argv = shlex.split(sftp_command(self.parsed, self.params.get('ssh_config') or ''))
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors='replace',
                timeout=SSH_PROBE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ''
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        telling = [line for line in lines if any(word in line.lower() for word in SSH_TELLING)]
        return ' '.join((telling or lines)[-2:]) if proc.returncode != 0 else ''

    def exists(self):
        """Whether the repository is there (``restic cat config``); an unreachable one raises."""
        rc, _out, err = self.runner.run([*self.options, 'cat', 'config'])
        if rc == 0:
            return True
        if rc == RC_NO_REPOSITORY or (rc == 1 and any(t in err for t in NO_REPOSITORY_TEXT)):
            return False
        raise ResticError(self.explain('cat config', rc, err))

    def init(self):
        self._run('init', ['init'])

    def parent(self, host):
        """``(whether the repository is there, the id of the newest snapshot of host made by this collection or '')``
        in one restic run (``snapshots``); an unreachable repository raises."""
        rc, out, err = self.runner.run([*self.options, 'snapshots', '--json', '--host', host, '--tag', TAG_PREFIX])
        if rc == RC_NO_REPOSITORY or (rc == 1 and any(t in err for t in NO_REPOSITORY_TEXT)):
            return False, ''
        if rc != 0:
            raise ResticError(self.explain('snapshots', rc, err))
        snaps = json.loads(out or '[]') or []
        return True, max(snaps, key=lambda s: s.get('time', ''))['id'] if snaps else ''

    def snapshots(self, host=None, tag=None):
        args = ['snapshots', '--json']
        if host:
            args += ['--host', host]
        if tag:
            args += ['--tag', tag]
        _rc, out, _err = self._run('snapshots', args)
        return json.loads(out or '[]') or []

    def backup(self, paths, host, snapshot_tags, excludes=(), parent=''):
        args = ['backup', '--json', '--host', host]
        for tag in snapshot_tags:
            args += ['--tag', tag]
        for pattern in excludes:
            args += ['--exclude', pattern]
        if parent:
            args += ['--parent', parent]
        rc, out, err = self._run('backup', [*args, '--', *paths], ok=(0, RC_INCOMPLETE))
        summary, errors = backup_summary(out)
        if rc == RC_INCOMPLETE:
            raise ResticError(
                redact(
                    f'restic backup on {self.name} could not read every file (snapshot {summary["snapshot_id"]} is '
                    f'incomplete): ' + '; '.join(errors[:5] or [last_error(err)]),
                    self.secrets,
                )
            )
        return summary

    def forget(self, host, tag, keep):
        args = ['forget', '--json', '--host', host, '--tag', tag, '--group-by', 'host', *keep]
        _rc, out, _err = self._run('forget', args)
        return forget_removed(out)

    def prune(self):
        self._run('prune', ['prune'])

    def check(self, subset):
        args = ['check']
        if subset:
            if not SUBSET_RE.match(subset):
                raise ValueError(
                    f'backup_repository_check_subset {subset!r} is not a restic data subset (5%, 1/10 or 500M)'
                )
            args.append(f'--read-data-subset={subset}')
        _rc, out, _err = self._run('check', args)
        return out


def validate(params, check_mode=False):
    """Refusals before anything runs; ValueError names the option. In check mode the role has not
    written the password file yet: only its name is checked."""
    parse_repository(params['repository'])
    if not params.get('password_file') or not (check_mode or os.path.isfile(params['password_file'])):
        raise ValueError(f"password_file {params.get('password_file')!r} does not exist (backup_repository_password)")
    if params.get('action', 'backup') == 'backup':
        if not ID_RE.match(params.get('id') or ''):
            raise ValueError(f"id {params.get('id')!r} is not a backup id (YYYYMMDDTHHMMSSZ)")
        if params.get('kind', 'scheduled') not in KINDS:
            raise ValueError(f"kind {params.get('kind')!r} is not one of {', '.join(KINDS)}")
        for path in params.get('paths') or []:
            if not os.path.isabs(path):
                raise ValueError(f'path {path!r} is not absolute')
        if not params.get('paths'):
            raise ValueError('paths is empty: nothing to copy')


def write_manifest_note(manifest, note):
    """Record the snapshot in the backup's manifest.json (``offsite``), atomically, keeping owner and mode."""
    if not manifest or not os.path.isfile(manifest):
        return False
    with open(manifest, encoding='utf-8') as handle:
        data = json.load(handle)
    data['offsite'] = note
    st = os.stat(manifest)
    fd, tmp = tempfile.mkstemp(prefix='.manifest-', dir=os.path.dirname(manifest))
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, manifest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _parents_file(manifest):
    """The file beside the backups (the folder that holds this backup's folder) where each copy records its snapshot."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(manifest))), PARENTS_FILE)


def _parent_key(repository, host):
    return f'{host} {repository}'


def recorded_parent(manifest, repository, host):
    """The snapshot id that the last off-host copy from this host made in ``repository`` for ``host``, or ''.

    Read from PARENTS_FILE beside the backups (each copy records its snapshot there, whatever the local retention
    has removed since); without it (a copy of an older version of this collection), from the newest earlier
    backup's manifest.json (``offsite``). It saves the nightly ``restic snapshots`` run that would otherwise find
    the parent; restic refuses a parent it does not hold before writing anything, and the caller then finds it
    the long way."""
    if not manifest:
        return ''
    try:
        with open(_parents_file(manifest), encoding='utf-8') as handle:
            recorded = json.load(handle).get(_parent_key(repository, host), '')
        if SNAPSHOT_ID_RE.match(str(recorded or '')):
            return str(recorded)
    except (OSError, ValueError, AttributeError):
        pass
    here = os.path.dirname(os.path.abspath(manifest))
    root, current = os.path.dirname(here), os.path.basename(here)
    try:
        earlier = sorted((n for n in os.listdir(root) if ID_RE.match(n) and n < current), reverse=True)
    except OSError:
        return ''
    for name in earlier[:LOCAL_PARENT_SCAN]:
        try:
            with open(os.path.join(root, name, 'manifest.json'), encoding='utf-8') as handle:
                note = json.load(handle).get('offsite')
        except (OSError, ValueError, AttributeError):
            continue
        if (
            isinstance(note, dict)
            and note.get('repository') == repository
            and note.get('host') == host
            and SNAPSHOT_ID_RE.match(str(note.get('snapshot_id') or ''))
        ):
            return str(note['snapshot_id'])
    return ''


def record_parent(manifest, repository, host, snapshot_id):
    """Record ``snapshot_id`` as the next copy's parent (PARENTS_FILE, 0600, replaced atomically); False when
    there is no backup folder to record it beside. Never fails the copy: the next one then asks the repository."""
    if not manifest or not SNAPSHOT_ID_RE.match(snapshot_id or ''):
        return False
    path = _parents_file(manifest)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        return False
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[_parent_key(repository, host)] = snapshot_id
    tmp = ''
    try:
        fd, tmp = tempfile.mkstemp(prefix='.offsite-parents-', dir=folder)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write('\n')
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        return False
    return True


def offsite(params, runner=None, check_mode=False, clock=time.monotonic):
    """Copy one backup into the repository and apply retention there; returns the module's result."""
    validate(params, check_mode)
    repo = Repository(params, runner)
    timings = {}
    start = clock()
    snapshot_tags = tags(params['environment'], params['id'], params['kind'], params.get('version') or '')
    missing = [p for p in params['paths'] if not os.path.exists(p)]
    paths = [p for p in params['paths'] if os.path.exists(p)]
    result = {
        'repository': repo.name,
        'tags': snapshot_tags,
        'paths': paths,
        'missing': missing,
        'initialized': False,
        'snapshot_id': '',
        'forgotten': [],
        'timings': timings,
    }
    if check_mode:
        return result

    def step(name, func, *args):
        t = clock()
        try:
            return func(*args)
        except ResticError as exc:
            timings[name] = round(clock() - t, 3)
            exc.timings = timings
            raise
        finally:
            timings[name] = round(clock() - t, 3)

    backup_args = (paths, params['environment'], snapshot_tags, params.get('excludes') or [])
    summary = None
    # The parent the last copy from this host recorded: no restic run to find it. A parent the repository does
    # not hold (forgotten, or a new repository at the same address) stops restic before it writes anything.
    parent = recorded_parent(params.get('manifest') or '', repo.name, params['environment'])
    if parent:
        try:
            summary = step('backup', repo.backup, *backup_args, parent)
        except ResticError as exc:
            if not exc.unusable_parent:
                raise
            timings['backup_recorded_parent'] = timings.pop('backup')
    if summary is None:
        # Whether the repository is there and the parent snapshot, in one restic run (one SSH connection).
        found, parent = step('parent', repo.parent, params['environment'])
        if not found:
            step('init', repo.init)
            result['initialized'] = True
        summary = step('backup', repo.backup, *backup_args, parent)
    result.update(summary)
    result['parent'] = parent
    forgotten = []
    t = clock()
    # Only the policy of the kind this copy added: restic's keep rules count the snapshots of a kind, never the
    # clock, so the other kinds' snapshots stand as their own last copy left them (a changed keep setting of
    # another kind applies at that kind's next copy). One restic run instead of one per kind.
    for tag, keep in policies(
        params['keep_daily'], params['keep_weekly'], params['keep_monthly'], params['keep_last_other']
    ):
        if tag == f"kind:{params.get('kind', 'scheduled')}":
            forgotten += repo.forget(params['environment'], tag, keep)
    timings['forget'] = round(clock() - t, 3)
    result['forgotten'] = forgotten
    if forgotten:
        step('prune', repo.prune)
    note = {
        'repository': repo.name,
        'snapshot_id': summary['snapshot_id'],
        'host': params['environment'],
        'tags': snapshot_tags,
        'data_added': summary['data_added'],
    }
    result['manifest_updated'] = write_manifest_note(params.get('manifest') or '', note)
    record_parent(params.get('manifest') or '', repo.name, params['environment'], summary['snapshot_id'])
    timings['total'] = round(clock() - start, 3)
    return result


def check(params, runner=None, check_mode=False, clock=time.monotonic):
    """``restic check`` with a subset of the data read back; returns the module's result."""
    validate(params, check_mode)
    repo = Repository(params, runner)
    start = clock()
    result = {'repository': repo.name, 'subset': params.get('check_subset') or '', 'timings': {}}
    if check_mode:
        return result
    if not repo.exists():
        raise ResticError(f'restic check: there is no repository at {repo.name} (no backup has been copied there yet)')
    out = repo.check(params.get('check_subset') or '')
    result['output'] = redact(out.strip().splitlines()[-1] if out.strip() else '', repo.secrets)
    result['snapshots'] = len(repo.snapshots(host=params.get('environment') or None, tag=TAG_PREFIX))
    result['timings'] = {'check': round(clock() - start, 3)}
    return result


# ---------------------------------------------------------------------------
# Restore from the repository (a new server: no backup folder, no project, no ledger)
# ---------------------------------------------------------------------------

LATEST = 'latest'
# Room kept free besides the snapshot itself, so the restore never fills the disk to the last byte.
RESTORE_MARGIN = 64 << 20


def tag_value(snap, prefix):
    """The value of the ``<prefix>:<value>`` tag of a snapshot, or ''."""
    for item in snap.get('tags') or []:
        if item.startswith(prefix + ':'):
            return item.split(':', 1)[1]
    return ''


def choose_snapshot(snaps, request, environment):
    """The snapshot ``request`` names among the environment's: ``latest`` is the newest *scheduled* one (never
    a safety or pre-deploy snapshot), a backup id is the newest snapshot tagged ``id:<id>``. ValueError
    naming backup_restore_id when none matches."""
    ours = [s for s in snaps if TAG_PREFIX in (s.get('tags') or [])]
    ours.sort(key=lambda s: s.get('time', ''))
    listed = ', '.join(f"{tag_value(s, 'id') or '?'} ({tag_value(s, 'kind') or '?'})" for s in ours) or 'none'
    if request == LATEST:
        found = [s for s in ours if tag_value(s, 'kind') == 'scheduled']
        if not found:
            raise ValueError(
                f'the repository holds no scheduled snapshot of {environment} (latest is the newest scheduled backup; '
                f'snapshots: {listed}); name one with -e backup_id=<id> (backup_restore_id)'
            )
        return found[-1]
    if not ID_RE.match(request or ''):
        raise ValueError(f'backup id {request!r} is neither latest nor an id like 20261128T020005Z (backup_restore_id)')
    found = [s for s in ours if tag_value(s, 'id') == request]
    if not found:
        raise ValueError(
            f'the repository holds no snapshot of backup {request} of {environment} (backup_restore_id); '
            f'snapshots: {listed}'
        )
    return found[-1]


def snapshot_layout(paths, project_paths):
    """Where, inside the snapshot, the backup's folder (db.dump, manifest.json) and the project folder are.

    ``paths`` are the snapshot's own (absolute, as they were on the old server); ``project_paths`` the folders
    copied relative to the project folder (directus/uploads ...). Returns (backup folder, project folder or '')."""
    dumps = [p for p in paths if os.path.basename(p.rstrip('/')) == 'db.dump']
    if not dumps:
        raise ValueError('the snapshot holds no db.dump: it was not made by the backup role')
    backup = os.path.dirname(dumps[0].rstrip('/'))
    project = ''
    for path in paths:
        for rel in project_paths:
            rel = rel.strip('/')
            if path.rstrip('/').endswith('/' + rel):
                project = path.rstrip('/')[: -len(rel) - 1] or '/'
                break
        if project:
            break
    return backup, project


def restore_size(stdout):
    """Bytes a snapshot takes when restored (``restic stats --mode restore-size --json``)."""
    data = json.loads(stdout.strip().splitlines()[-1] if stdout.strip() else '{}')
    if 'total_size' not in data:
        raise ValueError('restic stats printed no total_size')
    return int(data['total_size'])


def space_problem(needed, free):
    """The refusal when ``free`` bytes cannot hold ``needed`` (plus the margin), else ''."""
    want = needed + RESTORE_MARGIN
    if free >= want:
        return ''
    return (
        f'the snapshot needs {-(-want // 1048576)} MB (its {-(-needed // 1048576)} MB and a margin of '
        f'{RESTORE_MARGIN >> 20} MB) but only {free // 1048576} MB are free'
    )


def restore_snapshot(params, runner=None, check_mode=False, clock=time.monotonic, free_space=None):
    """Find the snapshot ``params['id']`` names and restore it into a new private folder under ``restore_dir``.

    Returns the snapshot (id, time, tags, backup id, kind, version), the folder made (``tmp``; '' in check mode),
    the backup's folder inside it (``path``) with the manifest read from it, and the project folder inside it
    (``tree``). The folder is removed again when the restore fails."""
    parse_repository(params['repository'])
    if not params.get('password_file') or not (check_mode or os.path.isfile(params['password_file'])):
        raise ValueError(f"password_file {params.get('password_file')!r} does not exist (backup_repository_password)")
    parent = params.get('restore_dir') or ''
    if not os.path.isabs(parent):
        raise ValueError(f'restore_dir {parent!r} must be an absolute path')
    repo = Repository(params, runner)
    timings = {}
    start = clock()
    if not repo.exists():
        raise ValueError(f'there is no repository at {repo.name} (backup_repository): no backup was copied there')
    snaps = repo.snapshots(host=params['environment'], tag=TAG_PREFIX)
    snap = choose_snapshot(snaps, params.get('id') or '', params['environment'])
    timings['find'] = round(clock() - start, 3)
    backup_rel, project_rel = snapshot_layout(snap.get('paths') or [], params.get('project_paths') or [])
    _rc, out, _err = repo._run('stats', ['stats', '--mode', 'restore-size', '--json', snap['id']])
    size = restore_size(out)
    result = {
        'repository': repo.name,
        'snapshot_id': snap.get('short_id') or snap['id'][:8],
        'time': snap.get('time', ''),
        'tags': snap.get('tags') or [],
        'backup_id': tag_value(snap, 'id'),
        'kind': tag_value(snap, 'kind') or 'scheduled',
        'version': tag_value(snap, 'release'),
        'size': size,
        'command': f"restic -r {repo.name} restore {snap.get('short_id') or snap['id'][:8]} --target <folder>",
        'tmp': '',
        'path': '',
        'tree': '',
        'manifest': {},
        'timings': timings,
    }
    os.makedirs(parent, mode=0o700, exist_ok=True)
    free = (free_space or (lambda p: shutil.disk_usage(p).free))(parent)
    problem = space_problem(size, free)
    if problem:
        raise ValueError(f'{problem} under {parent} (backup_restore_dir): free some space or choose another folder')
    if check_mode:
        timings['total'] = round(clock() - start, 3)
        return result
    tmp = tempfile.mkdtemp(prefix='.restore-', dir=parent)
    try:
        os.chmod(tmp, 0o700)
        t = clock()
        repo._run('restore', ['restore', snap['id'], '--target', tmp])
        timings['restore'] = round(clock() - t, 3)
        path = os.path.join(tmp, backup_rel.lstrip('/'))
        with open(os.path.join(path, 'manifest.json'), encoding='utf-8') as handle:
            manifest = json.load(handle)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.update(
        tmp=tmp,
        path=path,
        tree=os.path.join(tmp, project_rel.lstrip('/')) if project_rel else '',
        manifest=manifest,
    )
    timings['total'] = round(clock() - start, 3)
    return result
