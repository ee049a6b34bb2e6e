# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release ledger of a deploy directory: rules and files.

Pure logic for the ``avatar_mgmt.ops.release_ledger`` and
``avatar_mgmt.ops.release_info`` modules.  Standard library only (Python 3.9+),
nothing from AnsibleModule.

Files in the releases directory (``<project_dir>/releases``):

* ``index.json``: ``{"current": "<id>", "releases": [entry, ...]}``, oldest first.
* ``current``: the current id and a newline.
* ``<id>/<compose file>``: the compose file of each kept release.
* ``<id>/<env file name>``: the env files of each kept release (mode 0600: they hold secrets), so a
  rollback restores the configuration the release ran with; their sha256 is the entry's ``env_checksums``.
* ``index.json.last-good``: the previous valid index, copied before each write.
* ``index.json.corrupt-<UTC time>``: a corrupt index kept aside by a record.

Release ids are ``%Y%m%dT%H%M%SZ-<version>``, so they sort by time.

Rules:

* current after a record: ``success`` -> the new id; ``rolled_back`` -> the
  entry's ``rolled_back_to``; anything else leaves it unchanged.
* default rollback target: anchor = the current entry; while the anchor has a
  ``source`` (it was a rollback) that is in the ledger, anchor = that source.
  Target = the newest successful entry older than the anchor whose version
  differs from the current version.  So successive rollbacks walk back in
  time instead of bouncing between two versions.
* window (what the index keeps): the current entry; for each of the newest
  ``keep`` distinct versions with a successful release, its newest successful
  entry; the successful entry the current one replaced (``previous``, even of
  the same version); the ``source`` chains of those; the default rollback target; then
  the most recent entries that did not succeed (failed, rolled back), up to
  ``keep`` of them.  Older successful entries of a kept version go.
"""

from __future__ import annotations

import copy
import datetime
import grp
import hashlib
import json
import os
import pwd
import re
import shutil

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._files import (
    fsync_dir,
    read_bytes,
    unlink_quietly,
    write_synced_temp,
)

__all__ = [
    'CURRENT',
    'INDEX',
    'LAST_GOOD',
    'RESULTS',
    'LedgerError',
    'LoadedLedger',
    'apply_record',
    'atomic_write',
    'backup_before',
    'build_entry',
    'check_shape',
    'current_entry',
    'default_rollback_target',
    'env_checksums',
    'env_contents',
    'find_entry',
    'images_to_prune',
    'is_release_id',
    'kept_references',
    'kept_versions',
    'listing',
    'load',
    'new_current',
    'read',
    'record',
    'record_options',
    'record_release',
    'release_dirs_to_remove',
    'rollback_target',
    'same_version',
    'serialize',
    'summarize',
    'validate_keep',
    'window',
]

INDEX = 'index.json'
LAST_GOOD = 'index.json.last-good'
CURRENT = 'current'
CORRUPT_PREFIX = 'index.json.corrupt-'

RESULTS = ('success', 'failed', 'rolled_back', 'failed_rollback')

DIR_MODE = 0o750
FILE_MODE = 0o640
ENV_FILE_MODE = 0o600

_RELEASE_ID = re.compile(r'^[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z][0-9A-Za-z._+-]*$')
_FILE_NAME = re.compile(r'^[0-9A-Za-z_][0-9A-Za-z._-]*$')


class LedgerError(Exception):
    """The ledger cannot be written or a file cannot be read (the message says what to do)."""


def _utc_stamp(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y%m%dT%H%M%SZ')


def is_release_id(name):
    """Whether ``name`` looks like a release id (``20260101T120000Z-v1.2.0``)."""
    return isinstance(name, str) and bool(_RELEASE_ID.match(name))


def _norm(version):
    version = str(version or '').strip()
    return version[1:] if version[:1] in ('v', 'V') else version


def same_version(a, b):
    """Versions compare without their leading ``v`` (``v1.2.0`` == ``1.2.0``)."""
    return _norm(a) != '' and _norm(a) == _norm(b)


def validate_keep(keep):
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f'keep must be an integer of at least 1, got {keep!r}')
    return keep


def _key(entry):
    return str(entry.get('id', ''))


def _is_success(entry):
    return entry.get('result') == 'success'


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def check_shape(data):
    """Return '' when ``data`` is a ledger ({current: str, releases: [entry with a str id]}), else what is wrong."""
    if not isinstance(data, dict):
        return f'the top level is a JSON {type(data).__name__}, not an object'
    releases = data.get('releases', [])
    if not isinstance(releases, list):
        return f'"releases" is a {type(releases).__name__}, not a list'
    current = data.get('current', '')
    if current is not None and not isinstance(current, str):
        return f'"current" is a {type(current).__name__}, not a string'
    for index, entry in enumerate(releases):
        if not isinstance(entry, dict):
            return f'release #{index + 1} is a {type(entry).__name__}, not an object'
        if not isinstance(entry.get('id'), str) or not entry['id']:
            return f'release #{index + 1} has no "id"'
        if 'images' in entry and not isinstance(entry['images'], dict):
            return f'release {entry["id"]} has "images" that is not an object'
    return ''


def _parse(raw):
    """Parse index bytes: return (ledger, '') or (None, what is wrong)."""
    if not raw.strip():
        return None, 'the file is empty'
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        return None, f'not UTF-8 text: byte {exc.start}'
    try:
        data = json.loads(text)
    except ValueError as exc:
        msg = getattr(exc, 'msg', str(exc))
        if hasattr(exc, 'lineno'):
            return None, f'not JSON: {msg} at line {exc.lineno} column {exc.colno}'
        return None, f'not JSON: {msg}'
    wrong = check_shape(data)
    if wrong:
        return None, f'wrong shape: {wrong}'
    return {'current': data.get('current') or '', 'releases': list(data.get('releases', []))}, ''


class LoadedLedger:
    """What load() found: ``ledger``, ``problem`` ('' when fine), ``raw`` (bytes of a valid index.json or None),
    ``corrupt`` (index.json exists but is not a ledger), ``corrupt_name`` (where a record keeps it aside),
    ``empty_recovery`` (corrupt and no usable last good copy)."""

    __slots__ = ('corrupt_name', 'empty_recovery', 'ledger', 'problem', 'raw')

    def __init__(self, ledger, problem='', raw=None, corrupt_name='', empty_recovery=False):
        self.ledger = ledger
        self.problem = problem
        self.raw = raw
        self.corrupt_name = corrupt_name
        self.empty_recovery = empty_recovery

    @property
    def corrupt(self):
        return bool(self.corrupt_name)


def _label(path):
    return os.path.join(os.path.basename(os.path.normpath(path)) or path, INDEX)


def load(path, for_record=False, now=None):
    """Read the ledger of the releases directory ``path``; never writes.

    A missing directory or index gives an empty ledger without a problem.  An
    index that cannot be read, is not JSON or has the wrong shape gives the
    last good copy (or an empty ledger) and a ``problem`` sentence.
    """
    index = os.path.join(path, INDEX)
    try:
        raw = read_bytes(index)
        wrong = '' if raw is None else None
    except OSError as exc:
        raw, wrong = None, f'cannot be read: {exc.strerror or exc}'
    if raw is None and wrong == '':
        return LoadedLedger({'current': '', 'releases': []})
    if wrong is None:
        ledger, wrong = _parse(raw)
        if not wrong:
            return LoadedLedger(ledger, raw=raw)

    corrupt_name = CORRUPT_PREFIX + _utc_stamp(now)
    aside = (
        f'kept aside as {corrupt_name}'
        if for_record
        else f'a record would keep it aside as {corrupt_name} (nothing was moved)'
    )
    good, good_wrong = None, 'no last good copy'
    try:
        good_raw = read_bytes(os.path.join(path, LAST_GOOD))
    except OSError as exc:
        good_raw, good_wrong = None, f'the last good copy {LAST_GOOD} cannot be read ({exc.strerror or exc})'
    if good_raw is not None:
        good, parse_wrong = _parse(good_raw)
        if parse_wrong:
            good, good_wrong = None, f'the last good copy {LAST_GOOD} is also corrupt ({parse_wrong})'
    if good is not None:
        using = f'using the last good copy {LAST_GOOD} ({len(good["releases"])} releases)'
    else:
        using = f'{good_wrong}: starting an empty ledger'
    problem = f'{_label(path)} is corrupt ({wrong}); {aside}; {using}'
    return LoadedLedger(
        good if good is not None else {'current': '', 'releases': []},
        problem=problem,
        corrupt_name=corrupt_name,
        empty_recovery=good is None,
    )


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def find_entry(ledger, release_id):
    """The entry with ``release_id`` (the last one when listed twice), or None."""
    found = None
    for entry in ledger.get('releases', []):
        if entry.get('id') == release_id:
            found = entry
    return found


def current_entry(ledger):
    """The current entry, or {}."""
    current = ledger.get('current') or ''
    return (find_entry(ledger, current) or {}) if current else {}


def listing(ledger):
    """``v1.0.0 (success, <id>), ...`` oldest first, or ``none``."""
    releases = sorted(ledger.get('releases', []), key=_key)
    return (
        ', '.join('{} ({}, {})'.format(e.get('version', '?'), e.get('result', '?'), e.get('id')) for e in releases)
        or 'none'
    )


def _anchor(ledger, entry):
    seen = set()
    while entry.get('source') and entry.get('source') not in seen:
        seen.add(entry['id'])
        source = find_entry(ledger, entry['source'])
        if source is None:
            break
        entry = source
    return entry


def _source_chain(ledger, entry):
    """The entries ``entry``'s ``source`` chain needs (without ``entry``)."""
    chain, seen = [], {entry.get('id')}
    while entry.get('source') and entry['source'] not in seen:
        source = find_entry(ledger, entry['source'])
        if source is None:
            break
        chain.append(source)
        seen.add(source['id'])
        entry = source
    return chain


def default_rollback_target(ledger):
    """The release before the one that runs now, or {} (see the module docstring)."""
    current = current_entry(ledger)
    current_id = ledger.get('current') or ''
    anchor_id = _anchor(ledger, current).get('id', current_id) if current else current_id
    version = current.get('version', '')
    candidates = [
        e
        for e in ledger.get('releases', [])
        if _is_success(e) and (not anchor_id or _key(e) < anchor_id) and not same_version(e.get('version'), version)
    ]
    return max(candidates, key=_key) if candidates else {}


def rollback_target(ledger, rollback_to=''):
    """Return (target entry or {}, reason).

    ``rollback_to`` '' gives the default target.  Otherwise the newest successful entry with that id or version
    (leading ``v`` optional); failing that, the newest entry with that id or version of any result, and the reason
    says it is not a successful release.  Reason is '' for a successful target.
    """
    rollback_to = str(rollback_to or '').strip()
    if not rollback_to:
        target = default_rollback_target(ledger)
        if target:
            return target, ''
        return {}, (
            'No earlier successful release of another version in the ledger. '
            f'Releases, oldest first: {listing(ledger)}.'
        )
    matches = [
        e
        for e in ledger.get('releases', [])
        if e.get('id') == rollback_to or same_version(e.get('version'), rollback_to)
    ]
    good = [e for e in matches if _is_success(e)]
    if good:
        return max(good, key=_key), ''
    if matches:
        target = max(matches, key=_key)
        return target, (
            '{} ({}) is recorded as {}, not success: its images are used as recorded and the health check '
            'decides.'.format(target.get('version', '?'), target['id'], target.get('result', 'unknown'))
        )
    return {}, f'No release {rollback_to} in the ledger. Releases, oldest first: {listing(ledger)}.'


def backup_before(ledger, ref):
    """The ``backup`` of the newest entry with id or version ``ref`` that has one, or ''."""
    ref = str(ref or '').strip()
    if not ref:
        return ''
    matches = [
        e
        for e in ledger.get('releases', [])
        if (e.get('id') == ref or same_version(e.get('version'), ref)) and e.get('backup')
    ]
    return str(max(matches, key=_key)['backup']) if matches else ''


def window(ledger, keep):
    """The entries the index keeps, oldest first (see the module docstring)."""
    validate_keep(keep)
    releases = sorted(ledger.get('releases', []), key=_key)
    chosen = {}

    def take(entry):
        if entry and entry.get('id') and entry['id'] not in chosen:
            chosen[entry['id']] = entry
            for source in _source_chain(ledger, entry):
                chosen.setdefault(source['id'], source)

    current = current_entry(ledger)
    take(current)
    # The successful release the current one replaced, even of the same version (an env-only
    # change): it is what a rollback of that change goes back to.
    replaced = find_entry(ledger, (current or {}).get('previous') or '')
    if replaced is not None and _is_success(replaced):
        take(replaced)
    versions = []
    for entry in reversed(releases):
        if not _is_success(entry) or any(same_version(entry.get('version'), v) for v in versions):
            continue
        versions.append(entry.get('version'))
        take(entry)
        if len(versions) >= keep:
            break
    take(default_rollback_target(ledger))
    others = 0
    for entry in reversed(releases):
        if others >= keep:
            break
        if entry['id'] not in chosen and not _is_success(entry):
            chosen[entry['id']] = entry
            others += 1
    # Keep the order of the file (oldest first), ids sorting by time.
    return [e for e in releases if chosen.get(e['id']) is e]


def kept_versions(kept):
    """Versions of the kept successful entries, newest first, each once."""
    versions = []
    for entry in sorted(kept, key=_key, reverse=True):
        if _is_success(entry) and not any(same_version(entry.get('version'), v) for v in versions):
            versions.append(entry.get('version'))
    return versions


def kept_references(kept):
    """Image references (repo@sha256:...) of every kept entry, newest entry first, each once."""
    refs = []
    for entry in sorted(kept, key=_key, reverse=True):
        images = entry.get('images') or {}
        for service in sorted(images):
            image = images[service]
            ref = image.get('reference') if isinstance(image, dict) else None
            if ref and ref not in refs:
                refs.append(ref)
    return refs


def images_to_prune(listed, kept_refs):
    """The images to remove after a record: of ``listed`` (``repo@digest`` lines, as
    ``docker image ls --digests --format '{{.Repository}}@{{.Digest}}'`` prints them), those of
    the repositories of ``kept_refs`` (the kept releases' ``repo@sha256:...`` references) that no
    kept release uses, in listing order, each once.  Images of other repositories, and images
    without a digest (``repo@<none>``), are never named.  No kept reference: nothing.
    """
    kept = set(kept_refs)
    repos = {ref.split('@', 1)[0] for ref in kept_refs}
    names = []
    for line in listed:
        ref = line.strip()
        repo, sep, digest = ref.partition('@')
        if sep and repo in repos and digest.startswith('sha256:') and ref not in kept and ref not in names:
            names.append(ref)
    return names


def new_current(ledger, entry):
    """The current id after ``entry`` is recorded."""
    result = entry.get('result')
    if result == 'success':
        return entry['id']
    if result == 'rolled_back' and entry.get('rolled_back_to'):
        return entry['rolled_back_to']
    return ledger.get('current') or ''


def build_entry(release, compose_file='', compose_content='', env_checksums=None):
    """Validate ``release`` and return the entry to append (a copy with the added fields)."""
    if not isinstance(release, dict) or not release:
        raise ValueError('release must be a dict with at least id, version and result')
    entry = copy.deepcopy(release)
    if not is_release_id(entry.get('id')):
        raise ValueError(
            'release.id must look like 20260101T120000Z-v1.2.0 (%Y%m%dT%H%M%SZ-<version>), got {!r}'.format(
                entry.get('id')
            )
        )
    if not isinstance(entry.get('version'), str) or not entry['version'].strip():
        raise ValueError(f'release.version must be a non-empty string such as v1.2.0 (release {entry["id"]})')
    if entry.get('result') not in RESULTS:
        raise ValueError('release.result must be one of {}, got {!r}'.format(', '.join(RESULTS), entry.get('result')))
    if 'images' in entry and not isinstance(entry['images'], dict):
        raise ValueError('release.images must be a dict: service -> {digest, reference, ...}')
    for name in ('source', 'rolled_back_to'):
        if entry.get(name) and not is_release_id(entry[name]):
            raise ValueError(f'release.{name} must be a release id, got {entry[name]!r}')
    if entry['result'] == 'rolled_back' and not entry.get('rolled_back_to'):
        raise ValueError(
            'release.rolled_back_to must name the release that runs again when result is rolled_back; '
            'record result failed when nothing was rolled back'
        )
    if compose_file:
        entry['compose_file'] = compose_file
        entry['compose_sha256'] = hashlib.sha256(compose_content.encode('utf-8')).hexdigest()
    if env_checksums is not None:
        entry['env_checksums'] = env_checksums
    return entry


def apply_record(ledger, entry, keep):
    """Return (new ledger, kept entries, warnings) after appending ``entry``.

    Raises ValueError when the id is already in the ledger.  A ``source`` or ``rolled_back_to`` that is not in the
    ledger (for example after a corrupt ledger was replaced by an empty one) is recorded anyway, with a warning:
    refusing would lose the record of what runs.
    """
    validate_keep(keep)
    if find_entry(ledger, entry['id']) is not None:
        raise ValueError(f'release {entry["id"]} is already in the ledger; each record needs a new release id')
    warnings = []
    for name in ('source', 'rolled_back_to'):
        if entry.get(name) and find_entry(ledger, entry[name]) is None:
            warnings.append(
                f'release.{name} {entry[name]} is not in the ledger (releases, oldest first: '
                f'{listing(ledger)}); recorded as given'
            )
    full = {
        'current': new_current(ledger, entry),
        'releases': sorted(list(ledger.get('releases', [])) + [entry], key=_key),
    }
    kept = window(full, keep)
    return {'current': full['current'], 'releases': kept}, kept, warnings


def release_dirs_to_remove(names, kept_ids):
    """Names of release folders not kept: only names that look like release ids."""
    kept_ids = set(kept_ids)
    return sorted(n for n in names if is_release_id(n) and n not in kept_ids)


def summarize(ledger, keep, rollback_to='', backup_ref=''):
    """The answer both states return, for ``ledger``."""
    kept = window(ledger, keep)
    target, reason = rollback_target(ledger, rollback_to)
    return {
        'ledger': ledger,
        'current': current_entry(ledger),
        'rollback_target': target,
        'rollback_reason': reason,
        'kept': [e['id'] for e in kept],
        'kept_versions': kept_versions(kept),
        'kept_references': kept_references(kept),
        'backup_id': backup_before(ledger, backup_ref),
    }


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _id(kind, name, lookup):
    """The numeric id of ``name`` (a number or a name ``lookup`` resolves); -1 (keep) when unset."""
    if not name:
        return -1
    if str(name).isdigit():
        return int(name)
    try:
        return lookup(name)
    except KeyError:
        raise LedgerError(f'{kind} {name} does not exist on this host. Nothing was changed.')


def _ids(owner, group):
    return (
        _id('owner', owner, lambda name: pwd.getpwnam(name).pw_uid),
        _id('group', group, lambda name: grp.getgrnam(name).gr_gid),
    )


def atomic_write(dest, data, mode=FILE_MODE, uid=-1, gid=-1):
    """Write ``data`` (bytes or str) to a temp file next to ``dest``, fsync it and rename it over ``dest``."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    tmp = write_synced_temp(dest, data, mode, uid, gid)
    try:
        os.replace(tmp, dest)
    except BaseException:
        unlink_quietly(tmp)
        raise
    try:
        fsync_dir(os.path.dirname(dest) or '.')
    except OSError:
        pass  # the rename is done; the ledger does not fail on a directory that cannot be synced


def _ensure_dir(path, uid, gid):
    if not os.path.isdir(path):
        os.makedirs(path, DIR_MODE)
        os.chmod(path, DIR_MODE)
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid)


def serialize(ledger):
    return json.dumps(ledger, indent=2, sort_keys=False) + '\n'


def env_contents(paths):
    """{basename: bytes} of the env files ``paths``; raise LedgerError naming a file that cannot be read.

    The bytes are kept beside the release's compose file; they never leave the module.
    """
    contents = {}
    for path in paths or []:
        name = os.path.basename(path)
        if name in ('', '.', '..'):
            raise LedgerError(f'env file {path!r} has no file name. Nothing was changed.')
        try:
            data = read_bytes(path)
        except OSError as exc:
            data, why = None, exc.strerror or str(exc)
        else:
            why = 'it does not exist'
        if data is None:
            raise LedgerError(
                f'env file {path} cannot be read ({why}): record the release after '
                'the env files are written. Nothing was changed.'
            )
        if name in contents:
            raise LedgerError(
                f'two env files are named {name}: env_checksums are keyed by file name. Nothing was changed.'
            )
        contents[name] = data
    return contents


def env_checksums(paths):
    """{basename: sha256} of ``paths``; raise LedgerError naming a file that cannot be read."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in env_contents(paths).items()}


def read(path, keep=5, rollback_to='', backup_ref=''):
    """state=read: the summary of the ledger in ``path``; changes nothing."""
    validate_keep(keep)
    loaded = load(path)
    result = summarize(loaded.ledger, keep, rollback_to, backup_ref)
    result.update(problem=loaded.problem, changed=False)
    return result


def record(
    path,
    release,
    keep=5,
    compose_file='',
    compose_content='',
    env_files=None,
    owner='',
    group='',
    check_mode=False,
    rollback_to='',
    backup_ref='',
    now=None,
):
    """state=record: append ``release``, trim the index to its window, write atomically, remove release folders
    that are no longer kept.  In check mode compute the same answer without writing.  Returns the summary plus
    ``removed``, ``entry``, ``before`` and ``after`` (the index text before and after, for a diff) and
    ``warnings``."""
    validate_keep(keep)
    if compose_file and not _FILE_NAME.match(compose_file):
        raise ValueError(f'compose_file must be a file name such as docker-compose.prod.yml, got {compose_file!r}')
    if bool(compose_file) != bool(compose_content):
        raise ValueError(
            'compose_file and compose_content go together: give both (the release keeps its compose file) or neither'
        )
    warnings = []
    loaded = load(path, for_record=True, now=now)
    try:
        envs = env_contents(env_files)
    except LedgerError as exc:
        if not check_mode:
            raise
        warnings.append(f'{exc} (check mode: recorded without env_checksums)')
        envs = {}
    if compose_file and compose_file in envs:
        raise ValueError(f'an env file has the name of the compose file ({compose_file}): rename one of them')
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in envs.items()}
    entry = build_entry(release, compose_file, compose_content, sums)
    ledger, kept, more = apply_record(loaded.ledger, entry, keep)
    warnings.extend(more)
    kept_ids = [e['id'] for e in kept]
    try:
        names = os.listdir(path)
    except OSError:
        names = []
    removed = (
        []
        if loaded.empty_recovery
        else [
            n for n in release_dirs_to_remove(names, kept_ids + [entry['id']]) if os.path.isdir(os.path.join(path, n))
        ]
    )
    if loaded.empty_recovery and any(is_release_id(n) for n in names):
        warnings.append('release folders were not pruned: the ledger was corrupt and has no last good copy')

    if not check_mode:
        uid, gid = _ids(owner, group)
        try:
            _ensure_dir(path, uid, gid)
            if loaded.corrupt and os.path.lexists(os.path.join(path, INDEX)):
                os.replace(os.path.join(path, INDEX), os.path.join(path, loaded.corrupt_name))
            if compose_file or envs:
                release_dir = os.path.join(path, entry['id'])
                _ensure_dir(release_dir, uid, gid)
                if compose_file:
                    atomic_write(os.path.join(release_dir, compose_file), compose_content, FILE_MODE, uid, gid)
                for name in sorted(envs):
                    atomic_write(os.path.join(release_dir, name), envs[name], ENV_FILE_MODE, uid, gid)
            if loaded.raw is not None:
                atomic_write(os.path.join(path, LAST_GOOD), loaded.raw, FILE_MODE, uid, gid)
            atomic_write(os.path.join(path, INDEX), serialize(ledger), FILE_MODE, uid, gid)
            atomic_write(os.path.join(path, CURRENT), ledger['current'] + '\n', FILE_MODE, uid, gid)
            for name in removed:
                shutil.rmtree(os.path.join(path, name))
        except OSError as exc:
            raise LedgerError(
                f'cannot write the release ledger in {path}: {exc}. The index is either the old or the '
                'new one (writes are atomic); check the permissions and the free space, then run again'
            )

    result = summarize(ledger, keep, rollback_to, backup_ref)
    result.update(
        problem=loaded.problem,
        changed=True,
        removed=removed,
        entry=entry,
        warnings=warnings,
        before=loaded.raw.decode('utf-8', 'replace') if loaded.raw is not None else '',
        after=serialize(ledger),
    )
    return result


def record_options():
    """The argument spec of a record's options, as release_ledger (state=record) and compose_switch (record) take
    them (:func:`record_release`); a new dict on each call."""
    return {
        'path': {'type': 'path', 'required': True},
        'keep': {'type': 'int', 'default': 5},
        'release': {'type': 'dict', 'required': True},
        'compose_file': {'type': 'str', 'default': ''},
        'compose_content': {'type': 'str', 'default': ''},
        'env_files': {'type': 'list', 'elements': 'path', 'default': []},
        'owner': {'type': 'str', 'default': ''},
        'group': {'type': 'str', 'default': ''},
        'prune_images': {'type': 'bool', 'default': False},
        'release_lock': _lock.release_lock_option(),
    }


def prune_images(module, kept_refs):
    """Remove the release images no kept release uses (:func:`images_to_prune`); ``(removed, warnings)``."""
    docker = module.get_bin_path('docker')
    if not docker:
        return [], ['prune_images: the docker CLI is not on this host, so no image was removed.']
    rc, out, err = module.run_command(
        [docker, 'image', 'ls', '--digests', '--format', '{{.Repository}}@{{.Digest}}'], environ_update={'LC_ALL': 'C'}
    )
    if rc != 0:
        return [], [f'prune_images: docker image ls failed (rc {rc}): {(err or out).strip()}; no image was removed.']
    names = images_to_prune(out.splitlines(), kept_refs)
    if module.check_mode:
        return names, []
    removed, warnings = [], []
    for name in names:
        rc, out, err = module.run_command([docker, 'image', 'rm', name])
        if rc == 0:
            removed.append(name)
        else:
            warnings.append(f'prune_images: docker image rm {name} failed (rc {rc}): {(err or out).strip()}')
    return removed, warnings


def record_release(module, options, rollback_to='', backup_before=''):
    """A record as release_ledger's state=record makes it, in the module ``module`` (docker through its
    get_bin_path / run_command, its check mode): :func:`record`, then the images no kept release uses removed
    (``prune_images``), then, last, the lock given back (``release_lock``; only once the rest is done, so
    that the pruning never races another run).

    ``options`` holds the keys of :func:`record_options`. Returns ``(result, warnings)``: the result has
    ``images_removed`` and the lock fields, and still ``before`` / ``after`` (the index, for a diff). Raises
    ValueError or LedgerError as :func:`record` does: nothing recorded, the lock kept.
    """
    result = record(
        options['path'],
        options['release'],
        keep=options['keep'],
        compose_file=options['compose_file'],
        compose_content=options['compose_content'],
        env_files=options['env_files'],
        owner=options['owner'],
        group=options['group'],
        check_mode=module.check_mode,
        rollback_to=rollback_to,
        backup_ref=backup_before,
    )
    warnings = ([result['problem']] if result['problem'] else []) + result.pop('warnings')
    result['images_removed'] = []
    if options['prune_images'] and result['kept_references']:
        result['images_removed'], pruning = prune_images(module, result['kept_references'])
        warnings += pruning
    fields, warning = _lock.release_after(options['release_lock'], module.check_mode)
    result.update(fields)
    if warning:
        warnings.append(warning)
    return result, warnings
