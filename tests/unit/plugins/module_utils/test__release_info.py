# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of _release_info.py: the comparison with plain dicts, and one query against a real Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _ledger, _release_info

A1 = 'sha256:' + 'a1' * 32
A2 = 'sha256:' + 'a2' * 32
F1 = 'sha256:' + 'f1' * 32
REPO = 'ghcr.io/rayhu/avatar-mgmt'
ID = '20260301T101500Z-v1.2.0'

CURRENT = {
    'id': ID,
    'version': 'v1.2.0',
    'result': 'success',
    'images': {
        'api': {'digest': A1, 'reference': f'{REPO}/api@{A1}'},
        'frontend': {'digest': F1, 'reference': f'{REPO}/frontend@{F1}'},
    },
}


def container(service, digest, state='running', name=None, **extra):
    facts = {
        'name': name or f'avatar-production-{service}-1',
        'id': '0123456789ab',
        'state': state,
        'health': 'healthy',
        'image': f'{REPO}/{service}@{digest}',
        'image_id': 'sha256:' + 'e' * 64,
        'repo_digests': [f'{REPO}/{service}@{digest}'],
        'digest': '',
        'version': 'v1.2.0',
        'started_at': '2026-03-01T10:16:02Z',
    }
    facts.update(extra)
    return facts


def test_agrees():
    found = {
        'api': [container('api', A1)],
        'frontend': [container('frontend', F1)],
        'db': [container('db', 'sha256:' + 'd' * 64)],
    }
    containers, agrees, differences = _release_info.compare(CURRENT, ID, found, ['api', 'frontend'])
    assert (agrees, differences) == (True, [])
    assert containers['api']['digest'] == A1
    assert containers['db']['digest'] == 'sha256:' + 'd' * 64, 'not a release service: the first repo digest'
    assert set(containers['api']) == set(_release_info.CONTAINER_FIELDS)


def test_digest_prefers_the_ledgers_among_several():
    found = {
        'api': [container('api', A1, repo_digests=[f'other/api@{A2}', f'{REPO}/api@{A1}'], image='x:tag')],
        'frontend': [container('frontend', F1)],
    }
    containers, agrees, _differences = _release_info.compare(CURRENT, ID, found, ['api', 'frontend'])
    assert containers['api']['digest'] == A1
    assert agrees


@pytest.mark.parametrize(
    'found, expected',
    [
        (
            {'api': [container('api', A2)], 'frontend': [container('frontend', F1)]},
            [
                (
                    "api runs sha256:a2a2a2a2a2a2… but the ledger's current release v1.2.0 "
                    "(20260301T101500Z-v1.2.0) says "
                    'sha256:a1a1a1a1a1a1…'
                )
            ],
        ),
        ({'api': [container('api', A1)]}, ['frontend is not running (no container)']),
        (
            {'api': [container('api', A1)], 'frontend': [container('frontend', F1, state='exited')]},
            ['frontend is not running (state exited)'],
        ),
        (
            {
                'api': [container('api', A1), container('api', A1, name='extra-api')],
                'frontend': [container('frontend', F1)],
            },
            ['api runs 2 containers (avatar-production-api-1, extra-api); one is expected'],
        ),
        (
            {
                'api': [container('api', A1, repo_digests=[], image='local/api:dev')],
                'frontend': [container('frontend', F1)],
            },
            [
                (
                    "api runs an image without a repo digest but the ledger's current release v1.2.0 "
                    "(20260301T101500Z-v1.2.0) "
                    'says sha256:a1a1a1a1a1a1…'
                )
            ],
        ),
    ],
)
def test_differences(found, expected):
    _containers, agrees, differences = _release_info.compare(CURRENT, ID, found, ['api', 'frontend'])
    assert agrees is False
    assert differences == expected


def test_no_ledger():
    found = {'api': [container('api', A1)], 'frontend': [container('frontend', F1)]}
    _containers, agrees, differences = _release_info.compare({}, '', found, ['api', 'frontend'], has_ledger=False)
    assert agrees is False
    assert differences == ['no ledger on this host']


def test_current_missing_from_the_releases():
    _containers, agrees, differences = _release_info.compare({}, ID, {}, ['api'])
    assert agrees is False
    assert differences == [
        f"the ledger's current release {ID} is not among its releases",
        'api is not running (no container)',
    ]


def test_ledger_names_no_image_for_a_service():
    found = {'api': [container('api', A1)], 'worker': [container('worker', A2)]}
    _containers, agrees, differences = _release_info.compare(CURRENT, ID, found, ['api', 'worker'])
    assert not agrees
    assert differences == ["the ledger's current release v1.2.0 (20260301T101500Z-v1.2.0) names no image for worker"]


def test_release_info_and_last_releases():
    ledger = {
        'current': ID,
        'releases': [
            {
                'id': '20260201T000000Z-v1.1.0',
                'version': 'v1.1.0',
                'result': 'success',
                'operator': 'bob',
                'images': {},
                'message': 'kept out',
            },
            dict(CURRENT, action='deploy', operator='alice', finished='2026-03-01T10:17:40Z', backup='b'),
        ],
    }
    found = {'api': [container('api', A1)], 'frontend': [container('frontend', F1)]}
    result = _release_info.release_info(_ledger.LoadedLedger(ledger), found, ['api', 'frontend'], last=1)
    assert result['agrees'] is True
    assert result['changed'] is False
    assert result['problem'] == ''
    assert result['current']['id'] == ID
    assert result['releases'] == [
        {
            'id': ID,
            'version': 'v1.2.0',
            'result': 'success',
            'action': 'deploy',
            'operator': 'alice',
            'finished': '2026-03-01T10:17:40Z',
            'backup': 'b',
        }
    ]
    assert len(_release_info.release_info(_ledger.LoadedLedger(ledger), found, [], last=5)['releases']) == 2


@pytest.mark.parametrize('last', [-1, True, '5'])
def test_last_must_be_a_count(last):
    with pytest.raises(ValueError, match='last must be an integer'):
        _release_info.last_releases({'releases': []}, last)


def test_container_facts_never_copies_the_environment():
    inspect = {
        'Id': 'f' * 64,
        'Name': '/avatar-production-api-1',
        'Image': 'sha256:' + 'e' * 64,
        'Config': {
            'Image': f'{REPO}/api@{A1}',
            'Env': ['DB_PASSWORD=hunter2'],
            'Labels': {'com.docker.compose.service': 'api', 'org.opencontainers.image.version': 'v1.2.0'},
        },
        'State': {'Status': 'running', 'StartedAt': '2026-03-01T10:16:02Z', 'Health': {'Status': 'healthy'}},
    }
    facts = _release_info.container_facts(inspect, {'RepoDigests': [f'{REPO}/api@{A1}']})
    assert 'hunter2' not in json.dumps(facts)
    assert facts == {
        'service': 'api',
        'name': 'avatar-production-api-1',
        'id': 'f' * 12,
        'state': 'running',
        'health': 'healthy',
        'image': f'{REPO}/api@{A1}',
        'image_id': 'sha256:' + 'e' * 64,
        'repo_digests': [f'{REPO}/api@{A1}'],
        'digest': '',
        'version': 'v1.2.0',
        'started_at': '2026-03-01T10:16:02Z',
    }


@pytest.mark.parametrize(
    'digest, short',
    [
        (A1, 'sha256:a1a1a1a1a1a1…'),
        ('sha256:abc', 'sha256:abc'),
        ('', 'no digest'),
    ],
)
def test_short_digest(digest, short):
    assert _release_info.short_digest(digest) == short


# ---------------------------------------------------------------------------
# Against a real Docker engine
# ---------------------------------------------------------------------------


@pytest.fixture
def engine():
    if not _release_info.HAS_DOCKER:
        pytest.skip('the Docker SDK for Python is not installed')
    try:
        client = _release_info.connect(timeout=20)
    except _release_info.DockerQueryError as exc:
        pytest.skip(str(exc))
    try:
        images = [i for i in client.images.list() if i.tags]
        if not images:
            pytest.skip('no local image with a tag to create a container from')
        # Prefer an image with a repo digest (pulled or pushed), so the digest is checked too.
        images.sort(key=lambda i: (not i.attrs.get('RepoDigests'), i.tags[0]))
        yield client, images[0]
    finally:
        client.close()


@pytest.mark.docker
def test_query_project_against_docker(engine):
    client, image = engine
    project = f'relinfo-test-{uuid.uuid4().hex[:10]}'
    secret = f'secret-{uuid.uuid4().hex}'
    made = []
    try:
        for service, oneoff in (('api', 'False'), ('api', 'True')):
            made.append(
                client.containers.create(
                    image.tags[0],
                    command=['true'],
                    name=f'{project}-{service}-{len(made) + 1}',
                    environment={'DB_PASSWORD': secret},
                    labels={
                        'com.docker.compose.project': project,
                        'com.docker.compose.service': service,
                        'com.docker.compose.oneoff': oneoff,
                    },
                )
            )
        found = _release_info.query_project(client, project)
        assert list(found) == ['api']
        assert len(found['api']) == 1, 'the one-off container is left out'
        api = found['api'][0]
        assert api['name'] == f'{project}-api-1'
        assert api['id'] == made[0].id[:12]
        assert api['state'] == 'created'
        assert api['image'] == image.tags[0]
        assert api['image_id'] == image.id
        assert api['repo_digests'] == (image.attrs.get('RepoDigests') or [])
        assert secret not in json.dumps(found)

        want = api['repo_digests'][0].rsplit('@', 1)[1] if api['repo_digests'] else 'sha256:' + '0' * 64
        current = {'id': ID, 'version': 'v1.2.0', 'images': {'api': {'digest': want}}}
        containers, agrees, differences = _release_info.compare(current, ID, found, ['api'])
        assert agrees is False
        assert 'api is not running (state created)' in differences
        if api['repo_digests']:
            assert containers['api']['digest'] == want
        assert _release_info.query_project(client, project + '-none') == {}
    finally:
        for item in made:
            item.remove(force=True)


class _Sealed(dict):
    """A container's Config whose Env may not be looked at."""

    def _guard(self, key):
        if key == 'Env':
            raise AssertionError('the container environment was read')

    def __getitem__(self, key):
        self._guard(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._guard(key)
        return super().get(key, default)

    def items(self):
        raise AssertionError('the whole Config was walked')

    values = keys = __iter__ = items


class _FakeAPI:
    """The low-level API calls query_project makes, answered from dicts (no Docker)."""

    def __init__(self, project):
        self.project = project
        labels = {'com.docker.compose.project': project, 'com.docker.compose.service': 'api'}
        self.inspects = {
            'c1': {
                'Id': 'c1' * 32,
                'Name': f'/{project}-api-1',
                'Image': 'sha256:' + 'e' * 64,
                'Config': _Sealed(Image=f'{REPO}/api@{A1}', Env=['DB_PASSWORD=hunter2'], Labels=labels),
                'State': {'Status': 'running'},
            },
            'c2': {
                'Id': 'c2' * 32,
                'Name': f'/{project}-api-run-1',
                'Image': 'sha256:' + 'e' * 64,
                'Config': _Sealed(
                    Env=['DB_PASSWORD=hunter2'], Labels=dict(labels, **{'com.docker.compose.oneoff': 'True'})
                ),
                'State': {'Status': 'running'},
            },
        }

    def containers(self, all, filters):
        assert all is True
        assert filters == {'label': [f'com.docker.compose.project={self.project}']}
        return [{'Id': 'c1'}, {'Id': 'c2'}, {'Id': 'gone'}]

    def inspect_container(self, container_id):
        if container_id == 'gone':
            raise _release_info.NotFound('removed between the list and the inspect')
        return self.inspects[container_id]

    def inspect_image(self, image_id):
        return {'RepoDigests': [f'{REPO}/api@{A1}'], 'Config': {'Env': ['IMAGE_SECRET=x'], 'Labels': {}}}


def test_query_project_never_reads_the_container_environment():
    client = type('Client', (), {'api': _FakeAPI('avatar-production')})()
    found = _release_info.query_project(client, 'avatar-production')
    assert list(found) == ['api']
    assert [c['name'] for c in found['api']] == ['avatar-production-api-1'], 'one-off and vanished containers left out'
    text = json.dumps(found)
    assert 'hunter2' not in text
    assert 'IMAGE_SECRET' not in text
    assert set(found['api'][0]) == set(_release_info.CONTAINER_FIELDS)


# ---------------------------------------------------------------------------
# What a killed run left: which recorded release runs, and the next step
# ---------------------------------------------------------------------------

OLD = {
    'id': '20260201T000000Z-v1.1.0',
    'version': 'v1.1.0',
    'result': 'success',
    'images': {
        'api': {'digest': A2, 'reference': f'{REPO}/api@{A2}'},
        'frontend': {'digest': F1, 'reference': f'{REPO}/frontend@{F1}'},
    },
}
LEDGER = {'current': ID, 'releases': [OLD, CURRENT]}
LOCK = {'holder': 'alice', 'action': 'deploy', 'version': 'v1.1.0', 'since': '2026-03-01T10:15:00Z'}


@pytest.mark.parametrize(
    'found, version',
    [
        ({'api': [container('api', A1)], 'frontend': [container('frontend', F1)]}, 'v1.2.0'),
        ({'api': [container('api', A2)], 'frontend': [container('frontend', F1)]}, 'v1.1.0'),
        ({'api': [container('api', A2, state='restarting')], 'frontend': [container('frontend', F1)]}, None),
        (
            {'api': [container('api', A2), container('api', A1, name='x')], 'frontend': [container('frontend', F1)]},
            None,
        ),
        ({'api': [container('api', 'sha256:' + '0' * 64)], 'frontend': [container('frontend', F1)]}, None),
        ({'frontend': [container('frontend', F1)]}, None),
    ],
)
def test_running_release(found, version):
    running = _release_info.running_release(LEDGER, found, ['api', 'frontend'])
    assert running.get('version') == version
    if version:
        assert set(running) == set(_release_info.RELEASE_FIELDS)


def test_running_release_newest_of_two_with_the_same_images():
    again = dict(OLD, id='20260401T000000Z-v1.1.0', action='rollback')
    ledger = {'current': ID, 'releases': [OLD, CURRENT, again]}
    found = {'api': [container('api', A2)], 'frontend': [container('frontend', F1)]}
    assert _release_info.running_release(ledger, found, ['api', 'frontend'])['id'] == again['id']
    assert _release_info.running_release(ledger, found, []) == {}


@pytest.mark.parametrize(
    'agrees, running, lock, expected',
    [
        (True, CURRENT, {}, ''),
        (
            False,
            OLD,
            LOCK,
            (
                'The lock of a deploy of v1.1.0 by alice since 2026-03-01T10:15:00Z is still there and what '
                'runs does not agree with the ledger: that run may have been killed half-way. If it is not '
                'running any more, bring the stack to a known release and record it: deploy.yml -e '
                'image_tag=v1.1.0 -e compose_deploy_break_lock=true (or rollback.yml with rollback_to and '
                '-e compose_deploy_break_lock=true).'
            ),
        ),
        (
            True,
            CURRENT,
            LOCK,
            (
                'A deploy of v1.1.0 by alice since 2026-03-01T10:15:00Z holds the lock: wait for it to finish. '
                'If that run is gone, run the next deploy or rollback with -e compose_deploy_break_lock=true.'
            ),
        ),
        (
            False,
            {},
            {},
            (
                'What runs does not agree with the ledger: deploy.yml -e image_tag=v1.2.0 brings the stack to a known '
                'release and records it.'
            ),
        ),
    ],
)
def test_next_step(agrees, running, lock, expected):
    assert _release_info.next_step(CURRENT, agrees, running, lock) == expected


def test_release_info_reports_a_killed_run():
    found = {'api': [container('api', A2)], 'frontend': [container('frontend', F1)]}
    result = _release_info.release_info(_ledger.LoadedLedger(LEDGER), found, ['api', 'frontend'], lock=LOCK)
    assert result['agrees'] is False
    assert result['current']['version'] == 'v1.2.0'
    assert result['running_release']['version'] == 'v1.1.0'
    assert result['lock'] == LOCK
    assert 'image_tag=v1.1.0' in result['next_step']


# ---------------------------------------------------------------------------
# What a deploy asks before it switches: compose, free space, images, ledger
# ---------------------------------------------------------------------------

PG = 'sha256:' + '5e' * 32
# GET /images/json of an engine (docker image ls), as the SDK's api.images() returns it: an image pulled by tag,
# one pulled by digest only (no tag), one dangling (older engines list <none> names), one built locally.
IMAGE_LIST = [
    {
        'Containers': -1,
        'Created': 1717000000,
        'Id': 'sha256:' + '01' * 32,
        'Labels': None,
        'ParentId': '',
        'RepoDigests': [f'postgres@{PG}'],
        'RepoTags': ['postgres:15.7'],
        'SharedSize': -1,
        'Size': 425000000,
    },
    {
        'Containers': -1,
        'Created': 1717000100,
        'Id': 'sha256:' + '02' * 32,
        'Labels': {'org.opencontainers.image.version': 'v1.2.0'},
        'ParentId': '',
        'RepoDigests': [f'{REPO}/api@{A1}'],
        'RepoTags': [],
        'SharedSize': -1,
        'Size': 180000000,
    },
    {
        'Containers': -1,
        'Created': 1716000000,
        'Id': 'sha256:' + '03' * 32,
        'Labels': None,
        'ParentId': '',
        'RepoDigests': ['<none>@<none>'],
        'RepoTags': ['<none>:<none>'],
        'SharedSize': -1,
        'Size': 1000,
    },
    {
        'Containers': -1,
        'Created': 1716000001,
        'Id': 'sha256:' + '04' * 32,
        'Labels': None,
        'ParentId': '',
        'RepoDigests': None,
        'RepoTags': ['localhost:5000/tools/worker:dev', 'jc21/nginx-proxy-manager:2.15.1'],
        'SharedSize': -1,
        'Size': 1000,
    },
]


@pytest.mark.parametrize(
    'ref, full',
    [
        ('postgres:15.7', 'docker.io/library/postgres:15.7'),
        ('postgres', 'docker.io/library/postgres:latest'),
        ('docker.io/library/postgres:15.7', 'docker.io/library/postgres:15.7'),
        ('index.docker.io/library/postgres:15.7', 'docker.io/library/postgres:15.7'),
        ('directus/directus:11.8.0', 'docker.io/directus/directus:11.8.0'),
        (f'{REPO}/api@{A1}', f'{REPO}/api@{A1}'),
        (f'{REPO}/api:v1.2.0@{A1}', f'{REPO}/api@{A1}'),
        ('localhost:5000/tools/worker:dev', 'localhost:5000/tools/worker:dev'),
        ('localhost/worker', 'localhost/worker:latest'),
        ('registry.test:5000/api', 'registry.test:5000/api:latest'),
        (f'postgres@{PG}', f'docker.io/library/postgres@{PG}'),
    ],
)
def test_canonical_reference(ref, full):
    assert _release_info.canonical_reference(ref) == full


def test_images_on_host_by_repo_digest_and_repo_tag():
    refs = [
        f'{REPO}/api@{A1}',  # pulled by digest: in RepoDigests only
        f'{REPO}/frontend@{F1}',  # not there
        'postgres:15.7',  # by tag
        'docker.io/library/postgres:15.7',  # the same, in full: once present
        'directus/directus:11.8.0',  # not there
        'jc21/nginx-proxy-manager:2.15.1',  # second tag of an image without RepoDigests
        f'{REPO}/api@{A1}',  # asked twice: answered once
    ]
    present, missing = _release_info.images_on_host(IMAGE_LIST, refs)
    assert present == [
        f'{REPO}/api@{A1}',
        'postgres:15.7',
        'docker.io/library/postgres:15.7',
        'jc21/nginx-proxy-manager:2.15.1',
    ]
    assert missing == [f'{REPO}/frontend@{F1}', 'directus/directus:11.8.0']


@pytest.mark.parametrize(
    'ref',
    [
        f'{REPO}/frontend@{A1}',  # the digest of api, another repository
        f'{REPO}/api:v1.2.0',  # pulled by digest only: no tag on the host
        'postgres:15',  # another tag
        f'mirror.test/library/postgres@{PG}',  # the digest under another registry
        '<none>:<none>',
    ],
)
def test_images_on_host_matches_the_whole_reference_only(ref):
    assert _release_info.images_on_host(IMAGE_LIST, [ref]) == ([], [ref])


def test_images_on_host_without_images():
    assert _release_info.images_on_host([], ['postgres:15.7']) == ([], ['postgres:15.7'])
    assert _release_info.images_on_host(IMAGE_LIST, []) == ([], [])


def test_list_images_keeps_the_names_only():
    class API:
        def images(self):
            return IMAGE_LIST

    listed = _release_info.list_images(type('Client', (), {'api': API()})())
    assert [sorted(i) for i in listed] == [['Id', 'RepoDigests', 'RepoTags']] * len(IMAGE_LIST)
    assert _release_info.images_on_host(listed, ['postgres:15.7']) == (['postgres:15.7'], [])


def test_list_images_engine_error():
    class API:
        def images(self):
            raise _release_info.DockerException('permission denied while trying to connect to the Docker daemon socket')

    with pytest.raises(
        _release_info.DockerQueryError, match='did not answer the list of its images: permission denied'
    ):
        _release_info.list_images(type('Client', (), {'api': API()})())


def test_wanted_images_adds_the_current_release_once():
    current = {
        'id': ID,
        'images': {
            'frontend': {'digest': F1, 'reference': f'{REPO}/frontend@{F1}'},
            'api': {'digest': A1, 'reference': f'{REPO}/api@{A1}'},
            'worker': {'digest': A2},  # no reference: nothing to look for
        },
    }
    assert _release_info.wanted_images(['postgres:15.7', f'{REPO}/api@{A1}'], current) == [
        'postgres:15.7',
        f'{REPO}/api@{A1}',
        f'{REPO}/frontend@{F1}',
    ]
    assert _release_info.wanted_images(['postgres:15.7', ' postgres:15.7 ']) == ['postgres:15.7']
    assert _release_info.wanted_images([], {}) == []
    assert _release_info.wanted_images([], None) == []


@pytest.mark.parametrize('images', [[''], ['postgres:15.7', ' '], 'postgres:15.7', [None]])
def test_wanted_images_refuses_bad_input(images):
    with pytest.raises(ValueError, match='images must be a list of image references'):
        _release_info.wanted_images(images)


@pytest.mark.parametrize(
    'out, version',
    [
        ('2.29.1\n', '2.29.1'),
        ('v2.27.0\n', '2.27.0'),
        ('2.32.4+ds1-0ubuntu1~24.04.1\n', '2.32.4+ds1-0ubuntu1~24.04.1'),
        ('10.0.0', '10.0.0'),
    ],
)
def test_compose_version(out, version):
    assert _release_info.compose_version(0, out, '', 'vm1') == version


@pytest.mark.parametrize(
    'rc, out, err, message',
    [
        (None, '', '', 'the docker CLI is not on the PATH on vm1: run playbooks/bootstrap.yml'),
        (
            1,
            '',
            "docker: 'compose' is not a docker command.\nSee 'docker --help'\n",
            (
                "docker compose does not answer on vm1 (docker compose version --short: docker: 'compose' is not a "
                "docker command. See 'docker --help'): run playbooks/bootstrap.yml"
            ),
        ),
        (127, '', '', 'docker compose does not answer on vm1 (docker compose version --short: no output)'),
        (0, '', '', "docker compose version --short answered '' on vm1, not a version such as 2.29.1"),
        (0, 'docker-compose version', '', "answered 'docker-compose version' on vm1, not a version"),
        (0, '1.29.2\n', '', 'docker compose on vm1 is 1.29.2; compose v2 or later is needed'),
    ],
)
def test_compose_version_refusals(rc, out, err, message):
    with pytest.raises(_release_info.HostCheckError) as excinfo:
        _release_info.compose_version(rc, out, err, 'vm1')
    assert message in str(excinfo.value)
    assert str(excinfo.value).endswith('Nothing was changed.')


def test_free_mb_is_what_df_shows(tmp_path):
    """The statvfs figure of a real filesystem against the Available column of df -Pm (which rounds up)."""
    if not shutil.which('df'):
        pytest.skip('no df on this machine')
    mb = _release_info.free_mb(os.statvfs(tmp_path))
    out = subprocess.run(['df', '-Pm', str(tmp_path)], capture_output=True, text=True, check=True).stdout
    available = int(out.splitlines()[-1].split()[3])
    assert isinstance(mb, int)
    # Other writers on this machine may change the free space between the two calls: a little slack.
    assert available - 16 <= mb <= available + 16


def test_free_mb_arithmetic():
    stat = type('Stat', (), {'f_bavail': 2621440 + 255, 'f_frsize': 4096, 'f_bfree': 9999999})()
    assert _release_info.free_mb(stat) == 10240, 'blocks free for unprivileged users, rounded down'


def _write_ledger(path, ledger):
    path.mkdir()
    (path / 'index.json').write_text(json.dumps(ledger))


@pytest.mark.parametrize('keep', [1, 2, 5])
def test_ledger_answer_is_release_ledgers_read(tmp_path, keep):
    """What option keep adds is what release_ledger state=read returns for the same ledger and keep."""
    releases = []
    for i, version in enumerate(['v1.0.0', 'v1.1.0', 'v1.1.0', 'v1.2.0', 'v1.3.0']):
        digest = 'sha256:' + f'{i:02d}' * 32
        releases.append(
            {
                'id': f'2026030{i + 1}T101500Z-{version}',
                'version': version,
                'result': 'failed' if i == 4 else 'success',
                'images': {'api': {'digest': digest, 'reference': f'{REPO}/api@{digest}'}},
            }
        )
    ledger = {'current': releases[3]['id'], 'releases': releases}
    _write_ledger(tmp_path / 'releases', ledger)
    read = _ledger.read(str(tmp_path / 'releases'), keep)
    answer = _release_info.ledger_answer(_ledger.load(str(tmp_path / 'releases')).ledger, keep)
    assert answer == {k: read[k] for k in _release_info.LEDGER_FIELDS}
    assert answer['ledger']['current'] == releases[3]['id']
    assert answer['rollback_target']['version'] == 'v1.1.0'


def test_ledger_answer_of_no_ledger(tmp_path):
    answer = _release_info.ledger_answer(_ledger.load(str(tmp_path / 'releases')).ledger, 5)
    assert answer['ledger'] == {'current': '', 'releases': []}
    assert answer['rollback_target'] == {}
    assert answer['rollback_reason'].startswith('No earlier successful release of another version in the ledger.')
    with pytest.raises(ValueError, match='keep must be an integer of at least 1'):
        _release_info.ledger_answer({}, 0)


@pytest.mark.docker
def test_list_images_against_docker(engine):
    """Only reads: the engine's own list, and every tag it names is found on the host."""
    client, image = engine
    listed = _release_info.list_images(client)
    assert any(item['Id'] == image.id for item in listed)
    present, missing = _release_info.images_on_host(listed, [image.tags[0], 'avatar-test/none:never'])
    assert (present, missing) == ([image.tags[0]], ['avatar-test/none:never'])
