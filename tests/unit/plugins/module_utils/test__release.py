# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _oci, _release
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    FakeRegistry,
    Manifest,
)

REPO = 'rayhu/avatar-mgmt'
IMAGES = ['api', 'frontend']


def image_tags(image, versions, channels=None, noise=True):
    """``{tag: Manifest}``: one manifest per version; channels point at a version's manifest."""
    tags = {v: Manifest(f'{image}-{v}') for v in versions}
    for channel, target in (channels or {}).items():
        tags[channel] = tags[target]
    if noise:
        tags.update(
            {
                'main': Manifest(image + 'main'),
                'sha-3f2a9c1': Manifest(image + 'sha'),
                'buildcache': Manifest(image + 'cache'),
                '20240101': Manifest(image + 'date'),
            }
        )
    return tags


STANDARD = ['v1.0.0', 'v1.1.0', 'v1.2.0-beta.1', 'v1.2.0-rc.1', 'v1.2.0', 'v1.3.0-rc.1']
CHANNELS = {'latest': 'v1.2.0', 'staging': 'v1.3.0-rc.1'}


def standard_repos(api=None, frontend=None):
    return {
        f'{REPO}/api': api if api is not None else image_tags('api', STANDARD, CHANNELS),
        f'{REPO}/frontend': frontend if frontend is not None else image_tags('frontend', STANDARD, CHANNELS),
    }


def resolve(reg, tag, images=None, **kwargs):
    client = _oci.RegistryClient(reg.url, sleep=lambda _s: None, timeout=5)
    result = _release.resolve_release(client, REPO, images or IMAGES, tag, **kwargs)
    result['_requests'] = client.request_count
    return result


def test_latest_resolves_by_digest():
    repos = standard_repos()
    with FakeRegistry(repos) as reg:
        result = resolve(reg, 'latest')
        host = reg.host
    requests = result.pop('_requests')
    api = repos[f'{REPO}/api']['v1.2.0']
    assert result == {
        'version': 'v1.2.0',
        'prerelease': False,
        'requested': 'latest',
        'channel': 'latest',
        'versions': ['v1.3.0-rc.1', 'v1.2.0', 'v1.2.0-rc.1', 'v1.2.0-beta.1', 'v1.1.0', 'v1.0.0'],
        'images': {
            'api': {
                'tag': f'{host}/{REPO}/api:v1.2.0',
                'digest': api.digest,
                'reference': f'{host}/{REPO}/api@{api.digest}',
                'media_type': OCI_INDEX,
                'resolved_by': 'channel_digest',
            },
            'frontend': {
                'tag': f'{host}/{REPO}/frontend:v1.2.0',
                'digest': repos[f'{REPO}/frontend']['v1.2.0'].digest,
                'reference': '{}/{}/frontend@{}'.format(host, REPO, repos[f'{REPO}/frontend']['v1.2.0'].digest),
                'media_type': OCI_INDEX,
                'resolved_by': 'channel_digest',
            },
        },
    }
    # 2 tag lists + per image: HEAD latest, HEAD v1.2.0 (the highest release, a match at once).
    assert requests == 6


def test_staging_resolves_to_prerelease():
    with FakeRegistry(standard_repos()) as reg:
        result = resolve(reg, 'staging')
    assert result['version'] == 'v1.3.0-rc.1'
    assert result['prerelease'] is True
    assert result['channel'] == 'staging'
    assert result['_requests'] == 6


def test_channel_pointing_to_older_release():
    channels = {'latest': 'v1.1.0', 'staging': 'v1.3.0-rc.1'}
    repos = standard_repos(image_tags('api', STANDARD, channels), image_tags('frontend', STANDARD, channels))
    with FakeRegistry(repos) as reg:
        result = resolve(reg, 'latest')
        heads = [p for m, p in reg.requests('HEAD')]
    assert result['version'] == 'v1.1.0'
    # v1.2.0 is tried first, then v1.1.0; pre-releases are not tried for latest.
    assert not any('-rc' in p or '-beta' in p for p in heads)


@pytest.mark.parametrize('channel, expected', [('latest', 'v1.2.1'), ('staging', 'v1.3.0-rc.2')])
def test_several_versions_share_the_digest_highest_wins(channel, expected):
    versions = STANDARD + ['v1.2.1', 'v1.3.0-rc.2']
    repos = {}
    for image in IMAGES:
        tags = image_tags(image, versions)
        tags['v1.2.1'] = tags['v1.2.0']  # a rebuild-free re-tag
        tags['v1.3.0-rc.2'] = tags['v1.3.0-rc.1']
        tags['latest'] = tags['v1.2.0']
        tags['staging'] = tags['v1.3.0-rc.1']
        repos[f'{REPO}/{image}'] = tags
    with FakeRegistry(repos) as reg:
        assert resolve(reg, channel)['version'] == expected


def test_images_disagree_names_the_image():
    repos = standard_repos(frontend=image_tags('frontend', STANDARD, {'latest': 'v1.1.0'}))
    with FakeRegistry(repos) as reg, pytest.raises(_release.ResolutionError) as excinfo:
        resolve(reg, 'latest')
    message = str(excinfo.value)
    assert 'image frontend resolves to v1.1.0' in message
    assert 'image api resolves to v1.2.0' in message


@pytest.mark.parametrize(
    'channel, expected, how',
    [
        ('latest', 'v1.1.0', 'highest_release'),
        ('staging', 'v1.2.0-rc.1', 'highest_prerelease'),
    ],
)
def test_missing_channel_falls_back_to_highest_common(channel, expected, how):
    # api has newer versions that frontend lacks; nobody has channel tags.
    api = image_tags('api', ['v1.0.0', 'v1.1.0', 'v1.2.0-rc.1', 'v1.2.0', 'v1.3.0-rc.1'])
    frontend = image_tags('frontend', ['v1.0.0', 'v1.1.0', 'v1.2.0-rc.1'])
    with FakeRegistry(standard_repos(api, frontend)) as reg:
        result = resolve(reg, channel)
    assert result['version'] == expected
    assert {info['resolved_by'] for info in result['images'].values()} == {how}
    assert result['versions'] == ['v1.2.0-rc.1', 'v1.1.0', 'v1.0.0']


def test_missing_channel_on_one_image_only():
    api = image_tags('api', STANDARD, CHANNELS)
    frontend = image_tags('frontend', STANDARD)  # no channel tags
    with FakeRegistry(standard_repos(api, frontend)) as reg:
        result = resolve(reg, 'latest')
    assert result['version'] == 'v1.2.0'
    assert result['images']['api']['resolved_by'] == 'channel_digest'
    assert result['images']['frontend']['resolved_by'] == 'highest_release'


def test_missing_staging_and_no_prerelease():
    tags = ['v1.0.0', 'v1.1.0']
    with (
        FakeRegistry(standard_repos(image_tags('api', tags), image_tags('frontend', tags))) as reg,
        pytest.raises(_release.ResolutionError, match='no staging tag and no pre-release'),
    ):
        resolve(reg, 'staging')


def test_channel_matching_no_version():
    api = image_tags('api', STANDARD, CHANNELS)
    api['latest'] = Manifest('orphan')
    with FakeRegistry(standard_repos(api=api)) as reg, pytest.raises(_release.ResolutionError) as excinfo:
        resolve(reg, 'latest')
    assert 'api:latest' in str(excinfo.value)
    assert 'matches any version tag of image api' in str(excinfo.value)


def test_channel_search_is_bounded():
    versions = [f'v1.{i}.0' for i in range(50)]
    api = image_tags('api', versions, {'latest': 'v1.0.0'})
    frontend = image_tags('frontend', versions, {'latest': 'v1.0.0'})
    with FakeRegistry(standard_repos(api, frontend)) as reg:
        with pytest.raises(_release.ResolutionError, match='the 10 highest version tags'):
            resolve(reg, 'latest', max_candidates=10)
        assert resolve(reg, 'latest')['version'] == 'v1.0.0'


def test_efficiency_with_many_tags():
    versions = [f'v1.{minor}.{patch}' for minor in range(30) for patch in range(10)]
    versions += [f'v2.0.0-rc.{i}' for i in range(1, 30)]
    channels = {'latest': 'v1.29.9', 'staging': 'v2.0.0-rc.29'}
    repos = standard_repos(image_tags('api', versions, channels), image_tags('frontend', versions, channels))
    with FakeRegistry(repos, page_max=100) as reg:
        result = resolve(reg, 'latest')
        heads = reg.requests('HEAD')
    assert result['version'] == 'v1.29.9'
    assert len(result['versions']) == 329
    assert len(heads) == 4  # channel + one candidate, per image
    assert result['_requests'] == 2 * 4 + 4  # 334 tags at 100 per page, twice


def test_explicit_version():
    repos = standard_repos()
    with FakeRegistry(repos) as reg:
        result = resolve(reg, 'v1.1.0')
    assert result['version'] == 'v1.1.0'
    assert 'channel' not in result
    assert result['requested'] == 'v1.1.0'
    assert result['images']['api']['digest'] == repos[f'{REPO}/api']['v1.1.0'].digest
    assert result['images']['api']['resolved_by'] == 'version'
    assert result['_requests'] == 4  # 2 tag lists + 2 HEAD


def test_bare_version_finds_v_tag():
    with FakeRegistry(standard_repos()) as reg:
        result = resolve(reg, '1.2.0-rc.1')
    assert result['version'] == 'v1.2.0-rc.1'
    assert result['requested'] == '1.2.0-rc.1'
    assert result['prerelease'] is True


def test_version_missing_for_one_image_names_it():
    frontend = image_tags('frontend', ['v1.0.0', 'v1.1.0'])
    with FakeRegistry(standard_repos(frontend=frontend)) as reg:
        with pytest.raises(_release.ResolutionError) as excinfo:
            resolve(reg, 'v1.2.0')
        assert reg.requests('HEAD') == []
    message = str(excinfo.value)
    assert 'v1.2.0 is not tagged for image frontend' in message
    assert 'v1.1.0, v1.0.0' in message


def test_missing_image_repository_names_it():
    repos = standard_repos()
    with FakeRegistry(repos) as reg, pytest.raises(_oci.NotFoundError) as excinfo:
        resolve(reg, 'latest', images=['api', 'worker'])
    assert f'{REPO}/worker' in str(excinfo.value)


def test_media_type_is_reported():
    api = image_tags('api', ['v1.0.0'])
    api['v1.0.0'] = Manifest('single', DOCKER_MANIFEST)
    with FakeRegistry(standard_repos(api, image_tags('frontend', ['v1.0.0']))) as reg:
        result = resolve(reg, 'v1.0.0')
    assert result['images']['api']['media_type'] == DOCKER_MANIFEST


@pytest.mark.parametrize(
    'tag, match',
    [
        ('', 'Invalid tag'),
        ('V1.2.0', 'lowercase'),
        ('v1.2', 'Invalid tag'),
        ('1.2.0.0', 'Invalid tag'),
        ('v1.2.0; rm -rf /', 'Invalid tag'),
        ('Latest', 'Invalid tag'),
        ('main', 'Invalid tag'),
        (' latest', 'Invalid tag'),
        ('v1.2.0+build.1', 'build metadata'),
        (None, 'must be a string'),
    ],
)
def test_invalid_tag_fails_before_any_request(tag, match):
    client = _oci.RegistryClient('http://127.0.0.1:9', max_retries=0)
    with pytest.raises(ValueError, match=match):
        _release.resolve_release(client, REPO, IMAGES, tag)
    assert client.request_count == 0


@pytest.mark.parametrize(
    'repository, images, match',
    [
        ('Rayhu/Avatar', IMAGES, 'Invalid repository'),
        ('rayhu/avatar-mgmt/', IMAGES, 'Invalid repository'),
        (REPO, [], 'at least one image'),
        (REPO, ['API'], 'Invalid image name'),
        (REPO, ['api', '../x'], 'Invalid image name'),
        (REPO, ['api', None], 'Invalid image name'),
    ],
)
def test_invalid_inputs_fail_before_any_request(repository, images, match):
    client = _oci.RegistryClient('http://127.0.0.1:9', max_retries=0)
    with pytest.raises(ValueError, match=match):
        _release.resolve_release(client, repository, images, 'latest')
    assert client.request_count == 0


def test_duplicate_images_are_merged():
    with FakeRegistry(standard_repos()) as reg:
        result = resolve(reg, 'latest', images=['api', 'api', 'frontend'])
    assert sorted(result['images']) == ['api', 'frontend']


@pytest.mark.parametrize(
    'tag, channel, version',
    [
        ('latest', 'latest', None),
        ('staging', 'staging', None),
        ('v1.2.0', None, 'v1.2.0'),
        ('1.2.0', None, '1.2.0'),
    ],
)
def test_parse_request(tag, channel, version):
    request = _release.parse_request(tag)
    assert request.channel == channel
    assert (request.version.format() if request.version else None) == version


def test_prerelease_refused_before_any_request():
    """A requested pre-release is refused from the request alone when pre-releases are not allowed."""
    with FakeRegistry(standard_repos()) as reg:
        with pytest.raises(_release.PrereleaseRefused) as excinfo:
            resolve(reg, 'v1.3.0-rc.1', allow_prerelease=False)
        assert reg.requests('GET') == []
        assert reg.requests('HEAD') == []
    assert excinfo.value.version == 'v1.3.0-rc.1'
    assert str(excinfo.value) == (
        'v1.3.0-rc.1 is a pre-release, and pre-releases are not allowed here (allow_prerelease=false)'
    )


def test_latest_pointing_at_a_prerelease_is_refused():
    """latest moved to a pre-release by mistake: resolved (allowed), refused (not allowed)."""
    channels = {'latest': 'v1.3.0-rc.1', 'staging': 'v1.3.0-rc.1'}
    repos = standard_repos(image_tags('api', STANDARD, channels), image_tags('frontend', STANDARD, channels))
    with FakeRegistry(repos) as reg:
        assert resolve(reg, 'latest')['version'] == 'v1.3.0-rc.1'
        with pytest.raises(_release.PrereleaseRefused, match=r'^latest resolves to v1.3.0-rc.1, a pre-release'):
            resolve(reg, 'latest', allow_prerelease=False)
        with pytest.raises(_release.PrereleaseRefused):
            resolve(reg, 'staging', allow_prerelease=False)


@pytest.mark.parametrize('tag, version', [('latest', 'v1.2.0'), ('v1.1.0', 'v1.1.0')])
def test_releases_pass_when_prereleases_are_refused(tag, version):
    with FakeRegistry(standard_repos()) as reg:
        result = resolve(reg, tag, allow_prerelease=False)
    assert result['version'] == version
    assert result['prerelease'] is False
