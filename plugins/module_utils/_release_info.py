# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What runs here: the ledger's current release against the running containers.

Logic of the ``avatar_mgmt.ops.release_info`` module.  The comparison works on
plain dicts (unit-tested without Docker); the query goes through the Docker SDK
for Python, imported guarded so this file imports on a host without it.

The module's optional answers (what a deploy needs before it switches, in one
call) are decided here too, from the raw answers of the host: the output of
``docker compose version --short`` (compose_version()), an ``os.statvfs`` result
(free_mb()), the engine's image list (images_on_host()) and the ledger
(ledger_answer()).  Only list_images() and query_project() talk to the engine.

Only the fields listed in ``CONTAINER_FIELDS`` leave this file.  The inspect
answer of the engine holds the container's environment; it is never looked at
or copied.
"""

from __future__ import annotations

import re

try:
    import docker
    from docker.errors import DockerException, NotFound
except ImportError as _exc:  # checked by the module, which fails with MISSING_SDK
    docker = None

    class DockerException(Exception):
        pass

    class NotFound(DockerException):
        pass

    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = str(_exc)
else:
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = ''

from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _ledger

__all__ = [
    'CONTAINER_FIELDS',
    'DOCKER_IMPORT_ERROR',
    'HAS_DOCKER',
    'LEDGER_FIELDS',
    'MISSING_SDK',
    'DockerQueryError',
    'HostCheckError',
    'canonical_reference',
    'compare',
    'compose_version',
    'connect',
    'container_facts',
    'current_references',
    'free_mb',
    'images_on_host',
    'last_releases',
    'ledger_answer',
    'list_images',
    'next_step',
    'query_project',
    'release_info',
    'running_release',
    'short_digest',
    'wanted_images',
]

MISSING_SDK = (
    'the Python Docker SDK (python3-docker) is missing on {host}: run playbooks/bootstrap.yml, which installs it'
)

PROJECT_LABEL = 'com.docker.compose.project'
SERVICE_LABEL = 'com.docker.compose.service'
ONEOFF_LABEL = 'com.docker.compose.oneoff'
VERSION_LABEL = 'org.opencontainers.image.version'
# The label compose_deploy puts on release containers (the version it deployed).
DEPLOYED_VERSION_LABEL = 'org.avatar-mgmt.version'

CONTAINER_FIELDS = (
    'name',
    'id',
    'state',
    'health',
    'image',
    'image_id',
    'repo_digests',
    'digest',
    'version',
    'started_at',
)
RELEASE_FIELDS = ('id', 'version', 'result', 'action', 'operator', 'finished', 'backup')
# What option keep adds: the answer of release_ledger's state=read (RV(current) is always returned).
LEDGER_FIELDS = ('ledger', 'rollback_target', 'rollback_reason', 'kept', 'kept_versions', 'kept_references')


class DockerQueryError(Exception):
    """The Docker engine could not be asked (not running, no permission, ...)."""


class HostCheckError(Exception):
    """A check the caller asked for failed (compose v2 missing, free space unmeasurable); the message says what to do."""


# ---------------------------------------------------------------------------
# Query (Docker SDK)
# ---------------------------------------------------------------------------


def container_facts(inspect, image_inspect):
    """The reported fields of one container from its inspect and its image's inspect (service in ``service``).

    ``digest`` is left '' here; compare() chooses it.
    """
    config = inspect.get('Config') or {}
    state = inspect.get('State') or {}
    labels = config.get('Labels') or {}
    image_labels = ((image_inspect or {}).get('Config') or {}).get('Labels') or {}
    return {
        'service': labels.get(SERVICE_LABEL, ''),
        'name': (inspect.get('Name') or '').lstrip('/'),
        'id': (inspect.get('Id') or '')[:12],
        'state': state.get('Status') or 'unknown',
        'health': (state.get('Health') or {}).get('Status') or 'none',
        'image': config.get('Image') or '',
        'image_id': inspect.get('Image') or '',
        'repo_digests': list((image_inspect or {}).get('RepoDigests') or []),
        'digest': '',
        'version': labels.get(DEPLOYED_VERSION_LABEL)
        or labels.get(VERSION_LABEL)
        or image_labels.get(VERSION_LABEL)
        or '',
        'started_at': state.get('StartedAt') or '',
    }


def connect(timeout=60):
    """A Docker client from the environment (DOCKER_HOST, ...); raise DockerQueryError when the engine does not answer."""
    if not HAS_DOCKER:
        raise DockerQueryError(MISSING_SDK.format(host='this host'))
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise DockerQueryError(f'the Docker engine does not answer: {exc}')
    return client


def query_project(client, project_name):
    """Containers of compose project ``project_name`` (one-off containers left out), as {service: [facts, ...]}.

    ``client`` is a ``docker.DockerClient``; only its low-level API is used (list, inspect container, inspect image).
    """
    try:
        listed = client.api.containers(all=True, filters={'label': [f'{PROJECT_LABEL}={project_name}']})
        images = {}
        found = {}
        for item in listed:
            try:
                inspect = client.api.inspect_container(item['Id'])
            except NotFound:
                continue  # removed between the list and the inspect
            labels = (inspect.get('Config') or {}).get('Labels') or {}
            if labels.get(PROJECT_LABEL) != project_name or str(labels.get(ONEOFF_LABEL, '')).lower() == 'true':
                continue
            image_id = inspect.get('Image') or ''
            if image_id not in images:
                try:
                    images[image_id] = client.api.inspect_image(image_id) if image_id else {}
                except NotFound:
                    images[image_id] = {}
            facts = container_facts(inspect, images[image_id])
            del inspect
            found.setdefault(facts.pop('service') or '?', []).append(facts)
    except DockerException as exc:
        raise DockerQueryError(f'the Docker engine did not answer the query of project {project_name}: {exc}')
    for items in found.values():
        items.sort(key=lambda c: c['name'])
    return found


def list_images(client):
    """The engine's image list (as ``docker image ls``), each reduced to ``Id``, ``RepoTags`` and ``RepoDigests``."""
    try:
        listed = client.api.images()
    except DockerException as exc:
        raise DockerQueryError(f'the Docker engine did not answer the list of its images: {exc}')
    return [{k: item.get(k) for k in ('Id', 'RepoTags', 'RepoDigests')} for item in listed or []]


# ---------------------------------------------------------------------------
# Host checks and images (plain values)
# ---------------------------------------------------------------------------


def compose_version(rc, out, err, host='this host'):
    """The version ``docker compose version --short`` printed (``2.29.1``); HostCheckError unless it is compose v2+.

    ``rc`` None means the docker CLI was not found.
    """
    fix = 'run playbooks/bootstrap.yml, which installs Docker and the compose v2 plugin. Nothing was changed.'
    if rc is None:
        raise HostCheckError(f'the docker CLI is not on the PATH on {host}: {fix}')
    out = (out or '').strip()
    if rc != 0:
        said = ' '.join((err or out or 'no output').split())[:300]
        raise HostCheckError(
            f'docker compose does not answer on {host} (docker compose version --short: {said}): {fix}'
        )
    version = out.splitlines()[-1].strip() if out else ''
    match = re.match(r'^v?(\d+)\.\d+', version)
    if not match:
        raise HostCheckError(
            f'docker compose version --short answered {version[:80]!r} on {host}, not a version such as 2.29.1: {fix}'
        )
    if int(match.group(1)) < 2:
        raise HostCheckError(f'docker compose on {host} is {version}; compose v2 or later is needed: {fix}')
    return version[1:] if version.startswith('v') else version


def free_mb(statvfs):
    """Free MB (1024 * 1024 bytes, rounded down) for an unprivileged user, from an ``os.statvfs`` result.

    The same figure as the Available column of ``df -Pm``, which rounds up.
    """
    return statvfs.f_bavail * statvfs.f_frsize // (1024 * 1024)


def canonical_reference(ref):
    """``ref`` in the engine's full form: ``postgres:15.7`` -> ``docker.io/library/postgres:15.7``.

    A reference with a digest keeps the digest and drops a tag (``repo@sha256:...``, as RepoDigests lists it); one
    without tag or digest gets ``:latest``.  The first part is a registry when it has a ``.`` or ``:`` or is
    ``localhost``, as Docker reads it.
    """
    ref = str(ref or '').strip()
    name, _at, digest = ref.partition('@')
    tag = ''
    colon = name.rfind(':')
    if colon > name.rfind('/'):
        name, tag = name[:colon], name[colon + 1 :]
    first, slash, rest = name.partition('/')
    if slash and ('.' in first or ':' in first or first == 'localhost'):
        domain, path = first, rest
    else:
        domain, path = 'docker.io', name
    if domain == 'index.docker.io':
        domain = 'docker.io'
    if domain == 'docker.io' and '/' not in path:
        path = 'library/' + path
    if digest:
        return f'{domain}/{path}@{digest}'
    return f'{domain}/{path}:{tag or "latest"}'


def _names(image):
    for name in list(image.get('RepoTags') or []) + list(image.get('RepoDigests') or []):
        if isinstance(name, str) and name and not name.startswith('<none>'):
            yield canonical_reference(name)


def images_on_host(images, refs):
    """(present, missing): ``refs`` (each once, in order) split by whether an image of ``images`` carries them.

    ``images`` is list_images()'s answer.  A reference is on the host when it is one of an image's RepoTags or
    RepoDigests, compared in full form (``postgres:15.7`` is ``docker.io/library/postgres:15.7``); a digest
    reference matches the repo digest of that repository only.
    """
    have = {name for image in images or [] for name in _names(image)}
    present, missing = [], []
    for ref in refs:
        if ref in present or ref in missing:
            continue
        (present if canonical_reference(ref) in have else missing).append(ref)
    return present, missing


def current_references(current):
    """Image references (``repo@sha256:...``) of a ledger entry, in service order; [] for {}."""
    return _ledger.kept_references([current]) if current else []


def wanted_images(images, current=None):
    """The references to look for: ``images`` then the references of ``current`` (a ledger entry), each once."""
    if not isinstance(images, (list, tuple)) or not all(isinstance(i, str) and i.strip() for i in images):
        raise ValueError(
            'images must be a list of image references such as ghcr.io/owner/api@sha256:... or postgres:15.7'
        )
    wanted = []
    for ref in list(images) + current_references(current):
        if ref.strip() not in wanted:
            wanted.append(ref.strip())
    return wanted


def ledger_answer(ledger, keep):
    """What release_ledger's state=read answers besides ``current``: the ledger, rollback target, kept releases."""
    summary = _ledger.summarize(ledger, keep)
    return {k: summary[k] for k in LEDGER_FIELDS}


# ---------------------------------------------------------------------------
# Comparison (plain dicts)
# ---------------------------------------------------------------------------


def short_digest(digest):
    """``sha256:0123456789ab…`` (the algorithm and 12 hex digits)."""
    if not digest:
        return 'no digest'
    algo, _sep, hexpart = digest.partition(':')
    return f'{algo}:{hexpart[:12]}…' if len(hexpart) > 12 else digest


def _digests(container):
    return [d.rsplit('@', 1)[1] for d in container.get('repo_digests') or [] if '@' in d]


def _runs(container, want):
    return bool(want) and (want in _digests(container) or container.get('image', '').endswith('@' + want))


def _pick(items):
    running = [c for c in items if c.get('state') == 'running']
    return (running or items)[0]


def compare(current, current_id, found, services, has_ledger=True):
    """Compare the ledger's current entry with the containers found.

    ``current`` is the current entry ({} when none), ``current_id`` the ledger's current id, ``found``
    {service: [container facts]} as query_project() returns, ``services`` the release services.  Returns
    (containers {service: facts with ``digest``}, agrees, differences).
    """
    images = (current or {}).get('images') or {}
    containers = {}
    for service in sorted(found):
        chosen = dict(_pick(found[service]))
        want = (images.get(service) or {}).get('digest', '') if service in services else ''
        digests = _digests(chosen)
        chosen['digest'] = want if _runs(chosen, want) else (digests[0] if digests else '')
        containers[service] = {k: chosen.get(k, '') for k in CONTAINER_FIELDS}

    differences = []
    if not has_ledger:
        differences.append('no ledger on this host')
    elif not current:
        differences.append(
            f"the ledger's current release {current_id} is not among its releases"
            if current_id
            else 'the ledger names no current release'
        )
    what = f"the ledger's current release {current.get('version', '?')} ({current.get('id')})" if current else ''
    for service in services:
        items = found.get(service) or []
        if not items:
            differences.append(f'{service} is not running (no container)')
            continue
        if len(items) > 1:
            differences.append(
                '{} runs {} containers ({}); one is expected'.format(
                    service, len(items), ', '.join(c.get('name', '?') for c in items)
                )
            )
        container = containers[service]
        if container['state'] != 'running':
            differences.append(f"{service} is not running (state {container['state']})")
        if not current:
            continue
        want = (images.get(service) or {}).get('digest', '')
        if not want:
            differences.append(f'{what} names no image for {service}')
        elif not _runs(container, want):
            running = short_digest(container['digest']) if container['digest'] else 'an image without a repo digest'
            differences.append(f'{service} runs {running} but {what} says {short_digest(want)}')
    agrees = bool(current) and not differences
    return containers, agrees, differences


def last_releases(ledger, last):
    """The last ``last`` entries, newest first, with the fields an operator reads."""
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise ValueError(f'last must be an integer of at least 0, got {last!r}')
    releases = sorted(ledger.get('releases', []), key=lambda e: str(e.get('id', '')), reverse=True)[:last]
    return [{k: e.get(k, '') for k in RELEASE_FIELDS} for e in releases]


def running_release(ledger, found, services):
    """The newest ledger entry whose images every release service runs (one running container each), or {}.

    Answers "which recorded release is this?" when the ledger's current entry does not agree, as after a run
    that was killed once the switch had started.
    """
    if not services:
        return {}
    for entry in sorted(ledger.get('releases', []), key=lambda e: str(e.get('id', '')), reverse=True):
        images = entry.get('images') or {}
        wants = [(images.get(service) or {}).get('digest', '') for service in services]
        if not all(wants):
            continue
        if all(
            len(found.get(service) or []) == 1
            and found[service][0].get('state') == 'running'
            and _runs(found[service][0], want)
            for service, want in zip(services, wants)
        ):
            return {k: entry.get(k, '') for k in RELEASE_FIELDS}
    return {}


def next_step(current, agrees, running, lock, break_hint='-e compose_deploy_break_lock=true'):
    """What an operator should do, one or two sentences; '' when the ledger agrees and no lock is held.

    ``current`` is the ledger's current entry, ``running`` what running_release() found, ``lock`` the public
    view of the environment's lock ({} when none).  Whether the lock's run is alive can only be told on the
    controller that ran it (the deploy_lock module says so); this text covers both cases.
    """
    target = (running or {}).get('version') or (current or {}).get('version') or ''
    deploy = f'deploy.yml -e image_tag={target}' if target else 'deploy.yml -e image_tag=<a version>'
    if lock:
        held = '{} of {} by {} since {}'.format(
            lock.get('action') or 'a run',
            lock.get('version') or 'an unknown version',
            lock.get('holder') or 'an unknown holder',
            lock.get('since') or 'an unknown time',
        )
        if not agrees:
            return (
                f'The lock of a {held} is still there and what runs does not agree with the ledger: that run '
                'may have been killed half-way. If it is not running any more, bring the stack to a known release '
                f'and record it: {deploy} {break_hint} (or rollback.yml with rollback_to and {break_hint}).'
            )
        return (
            f'A {held} holds the lock: wait for it to finish. If that run is gone, run the next deploy or '
            f'rollback with {break_hint}.'
        )
    if not agrees:
        return f'What runs does not agree with the ledger: {deploy} brings the stack to a known release and records it.'
    return ''


def release_info(loaded, found, services, last=5, lock=None):
    """The module's answer from a _ledger.LoadedLedger, query_project()'s answer and the lock's public view."""
    if not isinstance(services, (list, tuple)) or not all(isinstance(s, str) and s for s in services):
        raise ValueError('services must be a list of service names such as [api, frontend]')
    ledger = loaded.ledger
    current = _ledger.current_entry(ledger)
    has_ledger = bool(ledger.get('releases') or ledger.get('current'))
    containers, agrees, differences = compare(current, ledger.get('current', ''), found, list(services), has_ledger)
    running = running_release(ledger, found, list(services))
    lock = dict(lock or {})
    return {
        'current': current,
        'problem': loaded.problem,
        'containers': containers,
        'agrees': agrees,
        'differences': differences,
        'releases': last_releases(ledger, last),
        'running_release': running,
        'lock': lock,
        'next_step': next_step(current, agrees, running, lock),
        'changed': False,
    }
