# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests of the avatar_mgmt.ops.release_ledger module glue (exit_json / fail_json patched to raise)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _lock
from ansible_collections.avatar_mgmt.ops.plugins.modules import release_ledger
from ansible_collections.avatar_mgmt.ops.tests.unit.utils import module_harness
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.module_harness import ExitJson, FailJson


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    module_harness.patch_exits(monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: None)


def run(args, expect=ExitJson):
    return module_harness.run_module(release_ledger, args, expect)


def release(n, version, result='success', **extra):
    entry = {
        'id': f'2026010{n}T000000Z-{version}',
        'version': version,
        'result': result,
        'images': {'api': {'digest': f'sha256:{n}', 'reference': f'r/api@sha256:{n}'}},
        'backup': f'b{n}',
    }
    entry.update(extra)
    return entry


def test_documentation_matches_argument_spec(monkeypatch):
    spec = module_harness.module_kwargs(monkeypatch, release_ledger)['argument_spec']
    module_harness.assert_documented_options(release_ledger, spec)
    returns = module_harness.assert_documented_returns(release_ledger)
    for key in (
        'ledger',
        'current',
        'rollback_target',
        'rollback_reason',
        'kept',
        'kept_versions',
        'kept_references',
        'backup_id',
        'problem',
        'removed',
    ):
        assert key in returns


def test_read_empty(tmp_path):
    result = run({'path': str(tmp_path / 'releases')})
    assert result['changed'] is False
    assert result['ledger'] == {'current': '', 'releases': []}
    assert result['rollback_target'] == {}
    assert result['rollback_reason'].startswith('No earlier successful release')
    assert 'removed' not in result
    assert not (tmp_path / 'releases').exists()


def test_record_then_read(tmp_path):
    path = str(tmp_path / 'releases')
    env = tmp_path / '.env'
    env.write_text('TOKEN=x\n')
    first = run(
        {
            'path': path,
            'state': 'record',
            'release': release(1, 'v1.0.0'),
            'compose_file': 'docker-compose.prod.yml',
            'compose_content': 'services: {}\n',
            'env_files': [str(env)],
        }
    )
    assert first['changed'] is True
    assert first['entry']['env_checksums'].keys() == {'.env'}
    assert first['removed'] == []
    documented = set(yaml.safe_load(release_ledger.RETURN))
    assert set(first) - {'changed'} == documented, 'record returns exactly what RETURN documents'
    run({'path': path, 'state': 'record', 'release': release(2, 'v1.1.0')})
    result = run({'path': path, 'backup_before': 'v1.0.0', 'rollback_to': '1.0.0'})
    assert result['current']['version'] == 'v1.1.0'
    assert result['rollback_target']['id'] == '20260101T000000Z-v1.0.0'
    assert result['backup_id'] == 'b1'
    assert result['kept_versions'] == ['v1.1.0', 'v1.0.0']
    assert result['kept_references'] == ['r/api@sha256:2', 'r/api@sha256:1']
    assert result['changed'] is False
    record_only = {'removed', 'entry', 'images_removed', 'lock_released', 'released_lock', 'lock_msg'}
    assert set(result) - {'changed'} == documented - record_only, 'read returns what RETURN documents'


def test_record_check_mode_and_diff(tmp_path):
    path = tmp_path / 'releases'
    run({'path': str(path), 'state': 'record', 'release': release(1, 'v1.0.0')})
    before = (path / 'index.json').read_text()
    result = run(
        {
            'path': str(path),
            'state': 'record',
            'release': release(2, 'v1.1.0'),
            '_ansible_check_mode': True,
            '_ansible_diff': True,
        }
    )
    assert result['changed'] is True
    assert result['ledger']['current'] == '20260102T000000Z-v1.1.0'
    assert (path / 'index.json').read_text() == before
    assert result['diff']['before'] == before
    assert json.loads(result['diff']['after']) == result['ledger']


@pytest.mark.parametrize('state', ['read', 'record'])
def test_a_corrupt_ledger_is_reported_and_warned(tmp_path, monkeypatch, state):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    path = tmp_path / 'releases'
    path.mkdir()
    (path / 'index.json').write_text('{')
    args = {'path': str(path), 'state': state}
    if state == 'record':
        args['release'] = release(1, 'v1.0.0')
    result = run(args)
    assert result['problem'].startswith('releases/index.json is corrupt (not JSON')
    assert warned[0] == result['problem']
    assert result['changed'] is (state == 'record')


def test_a_sound_ledger_warns_nothing(tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    run({'path': str(tmp_path / 'releases'), 'state': 'record', 'release': release(1, 'v1.0.0')})
    run({'path': str(tmp_path / 'releases')})
    assert warned == []


@pytest.mark.parametrize(
    'args, message',
    [
        ({'state': 'record'}, 'state is record but all of the following are missing: release'),
        (
            {'state': 'record', 'release': {'id': 'x', 'version': 'v1', 'result': 'success'}},
            'release.id must look like',
        ),
        ({'keep': 0}, 'keep must be an integer of at least 1, got 0. Nothing was changed.'),
        (
            {'state': 'record', 'release': release(1, 'v1.0.0'), 'compose_file': 'c.yml'},
            'compose_file and compose_content go together',
        ),
    ],
)
def test_refusals(tmp_path, args, message):
    args = dict(args, path=str(tmp_path))
    result = run(args, FailJson)
    assert message in result['msg']
    assert list(tmp_path.iterdir()) == []


# What `docker image ls --digests --format '{{.Repository}}@{{.Digest}}'` prints on the host: the kept
# release's image, an older image of the same repository, one of another release repository of the
# project, an image of another project, an image without digest.
LISTED = (
    'r/api@sha256:2',
    'r/api@sha256:old',
    'r/api@sha256:old',
    'r/frontend@sha256:9',
    'postgres@sha256:pg',
    'r/api@<none>',
)


CONFLICT = 'Error response from daemon: conflict: image is being used'


def docker_cli(tmp_path, monkeypatch, listed=LISTED, list_rc=0, refuse=()):
    """A docker CLI stand-in on PATH (this machine's engine is not ours to call): lists ``listed``,
    logs each removal to docker.log and refuses (rc 1, as for an image a container uses) those in ``refuse``."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'docker.log'
    listing = '\n'.join(listed)
    refusals = ''.join(f'  if [ "$3" = "{name}" ]; then echo "{CONFLICT}" >&2; exit 1; fi\n' for name in refuse)
    script = (
        '#!/bin/sh\n'
        f'echo "$*" >> {log}\n'
        f'if [ "$1 $2" = "image ls" ]; then printf \'%s\\n\' "{listing}"; exit {list_rc}; fi\n'
        'if [ "$1 $2" = "image rm" ]; then\n'
        f'{refusals}'
        '  echo "Untagged: $3"; exit 0\n'
        'fi\n'
        'exit 2\n'
    )
    docker = bin_dir / 'docker'
    docker.write_text(script)
    docker.chmod(0o755)
    monkeypatch.setenv('PATH', str(bin_dir))
    return log


def record_with_prune(tmp_path, check_mode=False, **extra):
    path = str(tmp_path / 'releases')
    run({'path': path, 'state': 'record', 'release': release(1, 'v1.0.0'), 'keep': 2})
    args = {'path': path, 'state': 'record', 'release': release(2, 'v1.1.0'), 'keep': 2, 'prune_images': True}
    return run(dict(args, _ansible_check_mode=check_mode, **extra))


def test_prune_images_removes_what_no_kept_release_uses(tmp_path, monkeypatch):
    log = docker_cli(tmp_path, monkeypatch)
    result = record_with_prune(tmp_path)
    assert result['kept_references'] == ['r/api@sha256:2', 'r/api@sha256:1']
    assert result['images_removed'] == ['r/api@sha256:old']
    calls = log.read_text().splitlines()
    assert calls[0].startswith('image ls --digests --format ')
    assert calls[1:] == ['image rm r/api@sha256:old'], 'one removal; kept, other repositories and digestless left alone'
    assert json.loads((tmp_path / 'releases' / 'index.json').read_text())['current'].endswith('v1.1.0')


def test_prune_failures_are_warnings(tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    docker_cli(tmp_path, monkeypatch, listed=['r/api@sha256:old', 'r/api@sha256:older'], refuse=['r/api@sha256:old'])
    result = record_with_prune(tmp_path)
    assert result['changed'] is True
    assert result['images_removed'] == ['r/api@sha256:older']
    assert warned == [f'prune_images: docker image rm r/api@sha256:old failed (rc 1): {CONFLICT}']


def test_a_failed_listing_is_a_warning(tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    log = docker_cli(tmp_path, monkeypatch, list_rc=1)
    result = record_with_prune(tmp_path)
    assert result['images_removed'] == []
    assert warned[0].startswith('prune_images: docker image ls failed (rc 1)')
    assert len(log.read_text().splitlines()) == 1, 'nothing removed after a failed listing'


def test_prune_in_check_mode_removes_nothing(tmp_path, monkeypatch):
    log = docker_cli(tmp_path, monkeypatch)
    path = str(tmp_path / 'releases')
    run({'path': path, 'state': 'record', 'release': release(1, 'v1.0.0'), 'keep': 2})
    result = run(
        {
            'path': path,
            'state': 'record',
            'release': release(2, 'v1.1.0'),
            'keep': 2,
            'prune_images': True,
            '_ansible_check_mode': True,
        }
    )
    assert result['images_removed'] == ['r/api@sha256:old'], 'what would be removed'
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [['image', 'ls']]


def test_without_prune_images_docker_is_not_called(tmp_path, monkeypatch):
    log = docker_cli(tmp_path, monkeypatch)
    result = run({'path': str(tmp_path / 'releases'), 'state': 'record', 'release': release(1, 'v1.0.0')})
    assert result['images_removed'] == []
    assert not log.exists()


def test_prune_without_docker_is_a_warning(tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    monkeypatch.setenv('PATH', str(tmp_path / 'nothing-here'))
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *args, **kwargs: None)
    result = record_with_prune(tmp_path)
    assert result['images_removed'] == []
    assert warned == ['prune_images: the docker CLI is not on this host, so no image was removed.']


# release_lock: the record gives back the run's deploy lock in the same call, only once it succeeded.


def take_lock(tmp_path, holder='alice'):
    """A deploy lock taken as deploy_lock takes it; ``(path, token)``."""
    path = str(tmp_path / '.deploy.lock')
    taken = _lock.acquire(path, _lock.new_record(holder=holder, action='deploy', version='v1.1.0'))
    assert taken['acquired']
    return path, taken['token']


def record_releasing(tmp_path, lock_path, token, **extra):
    args = {
        'path': str(tmp_path / 'releases'),
        'state': 'record',
        'release': release(1, 'v1.0.0'),
        'release_lock': {'path': lock_path, 'token': token},
    }
    args.update(extra)
    return args


def test_a_successful_record_releases_the_lock(tmp_path):
    lock_path, token = take_lock(tmp_path)
    fingerprint = _lock.query(lock_path)['lock']['fingerprint']
    result = run(record_releasing(tmp_path, lock_path, token))
    assert result['changed'] is True
    assert result['released_lock']['fingerprint'] == fingerprint, 'names the very lock it removed'
    assert json.loads((tmp_path / 'releases' / 'index.json').read_text())['current'] == '20260101T000000Z-v1.0.0'
    assert result['lock_released'] is True
    assert not os.path.lexists(lock_path), 'the lock is gone'
    assert result['lock_msg'].startswith(f'Released the lock {lock_path} held by alice')
    assert token not in json.dumps(result), 'the owner token is never returned'


def test_a_failed_record_keeps_the_lock(tmp_path):
    """The rescue (rollback) still needs the lock: a record that fails does not give it back."""
    lock_path, token = take_lock(tmp_path)
    broken = {key: value for key, value in release(1, 'v1.0.0').items() if key != 'result'}
    failed = run(record_releasing(tmp_path, lock_path, token, release=broken), expect=FailJson)
    assert failed['msg'].endswith('Nothing was changed.')
    assert 'lock_released' not in failed
    assert _lock.query(lock_path)['held'] is True
    assert not (tmp_path / 'releases' / 'index.json').exists()


def test_a_record_that_cannot_write_keeps_the_lock(tmp_path):
    lock_path, token = take_lock(tmp_path)
    (tmp_path / 'releases').write_text('a file where the releases folder belongs\n')
    run(record_releasing(tmp_path, lock_path, token), expect=FailJson)
    assert _lock.query(lock_path)['held'] is True


def test_a_wrong_token_is_refused_as_deploy_lock_refuses_it(tmp_path):
    lock_path, _token = take_lock(tmp_path)
    before = (tmp_path / '.deploy.lock').read_bytes()
    result = run(record_releasing(tmp_path, lock_path, 'f' * 32))
    assert result['changed'] is True, 'the record itself is done'
    assert result['lock_released'] is False
    assert result['released_lock'] == {}
    assert (tmp_path / '.deploy.lock').read_bytes() == before, 'the lock of another owner is left as it was'
    expected = _lock.release(lock_path, token='f' * 32)['msg']
    assert result['lock_msg'] == expected
    assert 'it carries another owner token' in result['lock_msg']


def test_no_lock_to_release_is_no_failure(tmp_path):
    result = run(record_releasing(tmp_path, str(tmp_path / '.deploy.lock'), 'a' * 32))
    assert result['changed'] is True
    assert result['lock_released'] is False
    assert result['lock_msg'] == f'There is no lock {tmp_path / ".deploy.lock"}: nothing to release.'


def test_check_mode_keeps_the_lock(tmp_path):
    lock_path, token = take_lock(tmp_path)
    result = run(record_releasing(tmp_path, lock_path, token, _ansible_check_mode=True))
    assert result['lock_released'] is False
    assert result['lock_msg'].startswith(f'Check mode: the lock {lock_path} held by alice')
    assert _lock.query(lock_path)['held'] is True
    assert not (tmp_path / 'releases').exists()


def test_a_lock_that_cannot_be_removed_is_a_warning(tmp_path, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: warned.append(msg))
    lock_path = tmp_path / 'not-a-lock'
    lock_path.mkdir()  # reading it fails: the record stands, the lock could not be given back
    result = run(record_releasing(tmp_path, str(lock_path), 'a' * 32))
    assert result['changed'] is True
    assert result['lock_released'] is False
    assert warned == [result['lock_msg']]
    assert result['lock_msg'].startswith(f'The lock {lock_path} this task took could not be released: ')
    assert 'deploy_lock (state=absent, force=true)' in result['lock_msg']


def test_the_lock_goes_back_after_the_images_are_pruned(tmp_path, monkeypatch):
    """Pruning must not race another run's pull: the lock is held while images are removed."""
    lock_path, token = take_lock(tmp_path)
    log = docker_cli(tmp_path, monkeypatch)
    docker = tmp_path / 'bin' / 'docker'
    docker.write_text(docker.read_text().replace('\n', f'\n[ -e {lock_path} ] && echo "locked" >> {log}\n', 1))
    result = record_with_prune(tmp_path, release_lock={'path': lock_path, 'token': token})
    assert result['images_removed'] == ['r/api@sha256:old']
    assert result['lock_released'] is True
    calls = log.read_text().splitlines()
    assert calls[-2:] == ['locked', 'image rm r/api@sha256:old'], 'the image was removed under the lock'


def test_release_lock_is_refused_with_a_read(tmp_path):
    lock_path, token = take_lock(tmp_path)
    failed = run(
        {'path': str(tmp_path / 'releases'), 'release_lock': {'path': lock_path, 'token': token}}, expect=FailJson
    )
    assert failed['msg'] == 'release_lock goes with state=record (a read takes no lock). Nothing was changed.'
    assert _lock.query(lock_path)['held'] is True


def test_the_token_is_a_secret_option(monkeypatch):
    spec = module_harness.module_kwargs(monkeypatch, release_ledger)['argument_spec']
    assert spec['release_lock']['options']['token']['no_log'] is True
