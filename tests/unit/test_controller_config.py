# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller configuration (controller/): every awx.awx call checked against the module's real argument spec.

A real AWX cannot run here. What can run does:
- ``ansible-playbook controller/configure.yml`` and ``controller/refresh_survey.yml`` run for real, with a test-only
  ``normal`` action plugin (tests/unit/utils/controller_recorder) that records the final arguments of each awx.awx
  task (loop items, variables, ``omit`` and module_defaults rendered by Ansible itself) instead of calling the
  controller; ``release_tag`` really reads a local OCI registry (FakeRegistry) for the survey's versions;
- each awx.awx module's argument spec is the one its ControllerAPIModule hands to AnsibleModule (captured by
  running the module's main()), and the recorded arguments go through Ansible's ArgumentSpecValidator;
- ``--syntax-check`` of both playbooks, and a check-mode run against a closed local port that must fail with a
  connection error only.
A misspelled option or a value outside a module's choices in a copy of controller/ makes the validation fail.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import FakeRegistry, Manifest
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.ports import closed_port
from jinja2.sandbox import SandboxedEnvironment

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BINDIR = os.path.dirname(sys.executable)
RECORDER = os.path.join(ROOT, 'tests', 'unit', 'utils', 'controller_recorder')
REPO = 'rayhu/avatar-mgmt'
VERSIONS = ['v1.3.0-rc.1', 'v1.2.0', 'v1.1.0']

# Values that must never appear in the output of a run (no_log where they pass).
SECRETS = {
    'controller_password': 'ctl-Pw-5e1f',
    'staging.ssh_private_key': '-----BEGIN OPENSSH PRIVATE KEY-----\nstagingKey7c1\n-----END OPENSSH KEY-----\n',
    'staging.vault_password': 'staging-Vault-{{ x }}-9a',
    'staging.ghcr_username': 'staging-bot',
    'staging.ghcr_token': 'ghp_stagingToken4b2',
    'production.ssh_private_key': 'prodKey-0d3',
    'production.vault_password': 'prod-Vault-$HOME-77',
    'production.ghcr_username': 'prod-bot',
    'production.ghcr_token': 'ghp_prodToken8e6',
    'controller_notify_slack_token': 'xoxb-slackToken-31',
    'controller_notify_email_password': 'smtp-Pw-42',
    'controller_notify_webhook_password': 'hook-Pw-13',
}
# Secrets that are plain strings (the user names are not secret but are only in no_log tasks too).
PRINTABLE_SECRETS = [v for k, v in SECRETS.items() if not k.endswith('username')]

SECRETS_FILE = """---
controller_username: admin
controller_password: !unsafe '{controller_password}'
controller_secrets:
  staging:
    ssh_private_key: !unsafe {staging_key}
    vault_password: !unsafe '{staging.vault_password}'
    ghcr_username: !unsafe '{staging.ghcr_username}'
    ghcr_token: !unsafe '{staging.ghcr_token}'
  production:
    ssh_private_key: !unsafe '{production.ssh_private_key}'
    vault_password: !unsafe '{production.vault_password}'
    ghcr_username: !unsafe '{production.ghcr_username}'
    ghcr_token: !unsafe '{production.ghcr_token}'
controller_notify_webhook_url: https://hooks.example.com/avatar
controller_notify_webhook_password: !unsafe '{controller_notify_webhook_password}'
controller_notify_slack_channels: ['#ops']
controller_notify_slack_token: !unsafe '{controller_notify_slack_token}'
controller_notify_email_host: smtp.example.com
controller_notify_email_sender: awx@example.com
controller_notify_email_recipients: [ops@example.com]
controller_notify_email_username: awx
controller_notify_email_password: !unsafe '{controller_notify_email_password}'
"""

needs_ansible = pytest.mark.skipif(
    not os.path.exists(os.path.join(BINDIR, 'ansible-playbook')), reason='no ansible-playbook beside this Python'
)
pytestmark = needs_ansible


def write_secrets(path, **overrides):
    values = dict(SECRETS, **overrides)
    values['staging_key'] = json.dumps(values['staging.ssh_private_key'])
    text = SECRETS_FILE
    for key, value in values.items():
        text = text.replace('{' + key + '}', value if key == 'staging_key' else value.replace("'", "''"))
    path.write_text(text)
    return path


def repos(versions):
    result = {}
    for image in ('api', 'frontend'):
        tags = {v: Manifest(image + v) for v in versions}
        releases = [v for v in versions if '-' not in v]
        if releases:
            tags['latest'] = tags[releases[0]]
        tags['sha-3f2a9c1'] = Manifest(image + 'sha')
        result[f'{REPO}/{image}'] = tags
    return result


@pytest.fixture(scope='module')
def registry():
    with FakeRegistry(
        repos(VERSIONS), auth='bearer', username='staging-bot', password=SECRETS['staging.ghcr_token']
    ) as reg:
        yield reg


def playbook(project, name, *args, record=None, check=False, callback=None):
    """Run controller/<name> of ``project`` (a checkout or a copy); recording awx.awx calls into ``record``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('CONTROLLER_', 'TOWER_'))}
    env.update(
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_FORCE_COLOR='0',
        ANSIBLE_RETRY_FILES_ENABLED='0',
        # No awx.awx module may read a tower_cli.cfg of the machine's user.
        HOME=tempfile.mkdtemp(prefix='controller-home-'),
    )
    if callback:
        env.update(ANSIBLE_STDOUT_CALLBACK=callback)
    if record is not None:
        env.update(ANSIBLE_ACTION_PLUGINS=RECORDER, AVATAR_CONTROLLER_RECORD=str(record))
    argv = [os.path.join(BINDIR, 'ansible-playbook'), os.path.join(str(project), 'controller', name), '-v']
    argv += ['--check'] if check else []
    argv += list(args)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def project_copy(tmp_path):
    """A copy of controller/ beside the checkout's galaxy.yml and playbooks/, to break on purpose."""
    copy = tmp_path / 'project'
    copy.mkdir()
    shutil.copytree(os.path.join(ROOT, 'controller'), copy / 'controller')
    for name in ('galaxy.yml', 'playbooks'):
        (copy / name).symlink_to(os.path.join(ROOT, name))
    return copy


def apply(project, tmp_path, registry, *extra, name='configure.yml', check=False):
    record = tmp_path / f'{name}.jsonl'
    secrets = write_secrets(tmp_path / 'secrets.yml')
    result = playbook(
        project,
        name,
        '-e',
        'controller_host=https://awx.example.com',
        '-e',
        f'@{secrets}',
        '-e',
        f'controller_release_registry={registry.url}',
        *extra,
        record=record,
        check=check,
    )
    return result, records(record)


# ---- the modules' real argument specs ----------------------------------------------------------------------------

_SPECS = {}


class _Captured(Exception):
    pass


def module_spec(action):
    """The argument spec and the AnsibleModule keywords an awx.awx module really uses (from running its main())."""
    if action not in _SPECS:
        module = importlib.import_module('ansible_collections.awx.awx.plugins.modules.' + action.split('.')[-1])
        seen = {}

        def capture(self, argument_spec, **kwargs):
            seen.update(argument_spec=argument_spec, kwargs=kwargs)
            raise _Captured

        with mock.patch.object(basic.AnsibleModule, '__init__', capture), pytest.raises(_Captured):
            module.main()
        _SPECS[action] = seen
    return _SPECS[action]


def validation_errors(record):
    spec = module_spec(record['action'])
    keywords = {
        k: spec['kwargs'][k]
        for k in ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')
        if spec['kwargs'].get(k)
    }
    result = ArgumentSpecValidator(spec['argument_spec'], **keywords).validate(record['args'])
    return [str(e) for e in result.errors]


def all_errors(recorded):
    return {
        f"{r['action']} {r['args'].get('name', r['args'].get('identifier'))}": validation_errors(r)
        for r in recorded
        if validation_errors(r)
    }


# ---- the checkout's configuration --------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def configured(tmp_path_factory, registry):
    tmp_path = tmp_path_factory.mktemp('configure')
    result, recorded = apply(ROOT, tmp_path, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, recorded


@pytest.fixture(scope='module')
def refreshed(tmp_path_factory, registry):
    tmp_path = tmp_path_factory.mktemp('refresh')
    result, recorded = apply(ROOT, tmp_path, registry, name='refresh_survey.yml')
    assert result.returncode == 0, result.stdout + result.stderr
    return result, recorded


def by_action(recorded, action):
    return {r['args'].get('name', r['args'].get('identifier')): r['args'] for r in recorded if r['action'] == action}


def test_spec_capture_is_the_modules_own():
    spec = module_spec('awx.awx.job_template')
    assert spec['argument_spec']['allow_simultaneous']['type'] == 'bool'
    assert spec['argument_spec']['job_type']['choices'] == ['run', 'check']
    # ControllerModule adds its login options to every module's own.
    assert 'controller_host' in spec['argument_spec']
    assert spec['kwargs']['supports_check_mode'] is True


@pytest.mark.parametrize('name', ['configured', 'refreshed'])
def test_every_awx_call_passes_the_module_argument_spec(name, request):
    _result, recorded = request.getfixturevalue(name)
    assert recorded, 'no awx.awx call was recorded'
    assert all_errors(recorded) == {}


def test_configure_creates_every_object(configured):
    _result, recorded = configured
    counts = {}
    for r in recorded:
        counts[r['action']] = counts.get(r['action'], 0) + 1
    assert counts == {
        'awx.awx.organization': 1,
        'awx.awx.credential_type': 1,
        'awx.awx.credential': 6,
        'awx.awx.execution_environment': 1,
        'awx.awx.project': 1,
        'awx.awx.inventory': 2,
        'awx.awx.inventory_source': 2,
        'awx.awx.notification_template': 3,
        'awx.awx.job_template': 18,
        'awx.awx.schedule': 2,
        'awx.awx.workflow_job_template': 1,
        'awx.awx.workflow_job_template_node': 6,
    }
    # Every call logs in with what was given (module_defaults), to the controller named.
    assert {r['args']['controller_host'] for r in recorded} == {'https://awx.example.com'}
    assert {r['args']['controller_password'] for r in recorded} == {SECRETS['controller_password']}


def test_credentials_and_injectors(configured):
    _result, recorded = configured
    types = by_action(recorded, 'awx.awx.credential_type')
    ghcr = types['GHCR token']
    # Rendered by AWX at run time into the variables ghcr_login and release_tag read; never by Ansible here.
    assert ghcr['injectors'] == {
        'extra_vars': {'ghcr_login_username': '{{ username }}', 'ghcr_login_token': '{{ token }}'}
    }
    assert [f['id'] for f in ghcr['inputs']['fields']] == ['username', 'token']
    # AWX renders injectors with Jinja's sandbox and the credential's inputs; the result is what the roles read.
    injected = {
        var: SandboxedEnvironment().from_string(template).render(username='bot', token='t0k')
        for var, template in ghcr['injectors']['extra_vars'].items()
    }
    assert injected == {'ghcr_login_username': 'bot', 'ghcr_login_token': 't0k'}
    for path in ('roles/ghcr_login/defaults/main.yml', 'playbooks/deploy.yml'):
        with open(os.path.join(ROOT, path)) as handle:
            text = handle.read()
        assert all(var in text for var in injected), path
    assert [f.get('secret', False) for f in ghcr['inputs']['fields']] == [False, True]
    creds = by_action(recorded, 'awx.awx.credential')
    assert creds['avatar-mgmt staging vault']['inputs'] == {
        'vault_id': 'staging',
        'vault_password': SECRETS['staging.vault_password'],
    }
    assert creds['avatar-mgmt production vault']['inputs']['vault_id'] == 'prod'
    # Secrets reach the module byte for byte (!unsafe: never templated).
    assert creds['avatar-mgmt staging SSH']['inputs']['ssh_key_data'] == SECRETS['staging.ssh_private_key']
    assert creds['avatar-mgmt production GHCR']['inputs'] == {
        'username': SECRETS['production.ghcr_username'],
        'token': SECRETS['production.ghcr_token'],
    }
    # Idempotent by default: stored secrets are not sent again.
    assert {c['update_secrets'] for c in creds.values()} == {False}
    ee = by_action(recorded, 'awx.awx.execution_environment')['avatar-mgmt execution environment']
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        version = re.search(r'^version: (\S+)$', handle.read(), re.M).group(1)
    assert ee['image'] == f'ghcr.io/rayhu/avatar-mgmt-ee:{version}'
    project = by_action(recorded, 'awx.awx.project')['avatar-mgmt']
    assert project['scm_update_on_launch'] is True
    assert project['default_environment'] == 'avatar-mgmt execution environment'
    sources = by_action(recorded, 'awx.awx.inventory_source')
    assert {s['inventory']: s['source_path'] for s in sources.values()} == {
        'avatar-mgmt staging': 'inventories/staging',
        'avatar-mgmt production': 'inventories/prod',
    }
    assert {s['source'] for s in sources.values()} == {'scm'}
    for source in sources.values():
        assert os.path.isdir(os.path.join(ROOT, source['source_path']))


def test_job_templates(configured):
    _result, recorded = configured
    templates = by_action(recorded, 'awx.awx.job_template')
    jobs = ['bootstrap', 'deploy', 'deploy preview', 'rollback', 'status', 'health', 'backup', 'restore', 'unlock']
    assert sorted(templates) == sorted(f'avatar-mgmt {j} ({e})' for j in jobs for e in ('staging', 'production'))
    for name, jt in templates.items():
        assert jt['allow_simultaneous'] is False, name
        assert os.path.isfile(os.path.join(ROOT, jt['playbook'])), name
        env = name.rsplit('(', 1)[1].rstrip(')')
        assert jt['inventory'] == f'avatar-mgmt {env}'
        assert jt['credentials'] == [f'avatar-mgmt {env} SSH', f'avatar-mgmt {env} vault', f'avatar-mgmt {env} GHCR']
        # A survey's variables are ones its playbook reads.
        for question in jt.get('survey_spec', {}).get('spec', []):
            with open(os.path.join(ROOT, jt['playbook'])) as handle:
                assert question['variable'] in handle.read(), (name, question['variable'])
    preview = templates['avatar-mgmt deploy preview (production)']
    assert (preview['job_type'], preview['diff_mode']) == ('check', True)
    assert templates['avatar-mgmt deploy (production)']['job_type'] == 'run'
    notifiers = ['avatar-mgmt webhook', 'avatar-mgmt Slack', 'avatar-mgmt email']
    for name, jt in templates.items():
        told = name.split(' (')[0] in tuple(f'avatar-mgmt {j}' for j in ('deploy', 'rollback', 'backup', 'health'))
        assert jt['notification_templates_error'] == (notifiers if told else []), name
    restore = {q['variable']: q for q in templates['avatar-mgmt restore (production)']['survey_spec']['spec']}
    assert restore['backup_id']['required'] is True
    assert restore['confirm_restore']['required'] is True
    assert restore['confirm_restore']['default'] == ''
    assert 'production' in restore['confirm_restore']['question_description']
    rollback = templates['avatar-mgmt rollback (staging)']['survey_spec']['spec']
    assert [(q['variable'], q['required']) for q in rollback] == [('rollback_to', False)]


def survey_choices(args):
    (question,) = [q for q in args['survey_spec']['spec'] if q['variable'] == 'image_tag']
    assert question['default'] in question['choices']
    return question['choices']


@pytest.mark.parametrize('name', ['configured', 'refreshed'])
def test_deploy_survey_offers_the_registry_versions(name, request):
    """Choices: the channel(s), then release_tag's versions; production is offered no pre-release."""
    _result, recorded = request.getfixturevalue(name)
    templates = by_action(recorded, 'awx.awx.job_template')
    for job in ('deploy', 'deploy preview'):
        assert survey_choices(templates[f'avatar-mgmt {job} (staging)']) == ['staging', 'latest'] + VERSIONS
        assert survey_choices(templates[f'avatar-mgmt {job} (production)']) == ['latest', 'v1.2.0', 'v1.1.0']
    # The workflow deploys one version to both environments: no channel, which each deploy would resolve anew.
    workflow = by_action(recorded, 'awx.awx.workflow_job_template')['avatar-mgmt release']
    assert survey_choices(workflow) == ['v1.2.0', 'v1.1.0']
    (question,) = workflow['survey_spec']['spec']
    assert question['default'] == 'v1.2.0'
    assert question['required'] is True


def test_refresh_touches_only_the_release_surveys(refreshed, configured):
    _result, recorded = refreshed
    assert {r['action'] for r in recorded} == {
        'awx.awx.job_template',
        'awx.awx.workflow_job_template',
        'awx.awx.workflow_job_template_node',
    }
    templates = by_action(recorded, 'awx.awx.job_template')
    assert sorted(templates) == sorted(
        f'avatar-mgmt {j} ({e})' for j in ('deploy', 'deploy preview') for e in ('staging', 'production')
    )
    # The same templates as configure.yml applies: refreshing and configuring never undo each other. The refresh
    # sends no notification list (awx.awx would replace the configured one with it): it leaves them as they are.
    full = by_action(configured[1], 'awx.awx.job_template')
    for name, args in templates.items():
        assert 'notification_templates_error' not in args, name
        assert args == {k: v for k, v in full[name].items() if k != 'notification_templates_error'}
    (workflow,) = by_action(recorded, 'awx.awx.workflow_job_template').values()
    assert not {'notification_templates_error', 'notification_templates_approvals'} & set(workflow)


def test_schedules_and_workflow(configured):
    _result, recorded = configured
    templates = by_action(recorded, 'awx.awx.job_template')
    schedules = by_action(recorded, 'awx.awx.schedule')
    assert sorted(schedules) == ['avatar-mgmt nightly backup (production)', 'avatar-mgmt nightly backup (staging)']
    for schedule in schedules.values():
        assert re.match(r'^DTSTART;TZID=[A-Za-z_/]+:\d{8}T\d{6} RRULE:FREQ=DAILY;INTERVAL=1$', schedule['rrule'])
        assert 'extra_data' not in schedule
        assert schedule['unified_job_template'] in templates
        assert ' backup (' in schedule['unified_job_template']
    nodes = [r['args'] for r in recorded if r['action'] == 'awx.awx.workflow_job_template_node']
    created = set()
    for node in nodes:
        # A node's successors exist when it is created.
        assert set(node['success_nodes'] + node['failure_nodes']) <= created, node['identifier']
        assert ('unified_job_template' in node) != ('approval_node' in node)
        assert node.get('unified_job_template', next(iter(templates))) in templates
        created.add(node['identifier'])
    graph = {n['identifier']: n for n in nodes}
    assert graph['deploy_staging']['unified_job_template'] == 'avatar-mgmt deploy (staging)'
    assert graph['deploy_staging']['success_nodes'] == ['health_staging']
    assert graph['health_staging']['success_nodes'] == ['approve_production']
    assert graph['approve_production']['success_nodes'] == ['deploy_production']
    assert graph['deploy_production']['unified_job_template'] == 'avatar-mgmt deploy (production)'
    assert graph['deploy_staging']['failure_nodes'] == ['status_staging']
    assert graph['health_staging']['failure_nodes'] == ['status_staging']
    assert graph['deploy_production']['failure_nodes'] == ['status_production']
    workflow = by_action(recorded, 'awx.awx.workflow_job_template')['avatar-mgmt release']
    assert workflow['allow_simultaneous'] is False
    assert workflow['notification_templates_error'] == ['avatar-mgmt webhook', 'avatar-mgmt Slack', 'avatar-mgmt email']


def test_notification_templates(configured):
    _result, recorded = configured
    notes = by_action(recorded, 'awx.awx.notification_template')
    assert {n['notification_type'] for n in notes.values()} == {'webhook', 'slack', 'email'}
    assert notes['avatar-mgmt Slack']['notification_configuration']['token'] == SECRETS['controller_notify_slack_token']
    email = notes['avatar-mgmt email']['notification_configuration']
    assert (email['port'], email['use_tls'], email['recipients']) == (587, True, ['ops@example.com'])


@pytest.mark.parametrize('name', ['configured', 'refreshed'])
def test_no_secret_in_the_output(name, request):
    result, _recorded = request.getfixturevalue(name)
    output = result.stdout + result.stderr
    for secret in PRINTABLE_SECRETS:
        assert secret not in output
    assert 'stagingKey7c1' not in output


# ---- the validation can fail ---------------------------------------------------------------------------------------


# Each breaks a copy of controller/ in one place; one run of the copy must report every one.
BREAKAGES = [
    # A misspelled option in a task: the run itself passes (nothing checks it), the validation does not.
    ('tasks/job_templates.yml', '  allow_simultaneous: false\n', '  allow_simultanous: false\n', 'allow_simultanous'),
    # A bad value in the data, only visible once the loop is rendered (ansible-lint's args rule misses it).
    ('vars/main.yml', '    job_type: check\n', '    job_type: preview\n', 'job_type must be one of: run, check'),
    # A value of the wrong type.
    ('tasks/schedules.yml', '    enabled: true\n', '    enabled: sometimes\n', "'sometimes'"),
]


def test_a_broken_copy_fails_the_validation(tmp_path, registry):
    copy = project_copy(tmp_path)
    for path, old, new, _expected in BREAKAGES:
        target = copy / 'controller' / path
        text = target.read_text()
        assert text.count(old) == 1, (path, old)
        target.write_text(text.replace(old, new))
    result, recorded = apply(copy, tmp_path, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    errors = all_errors(recorded)
    messages = [e for found in errors.values() for e in found]
    for _path, _old, _new, expected in BREAKAGES:
        assert any(expected in e for e in messages), (expected, errors)
    # Only the broken calls: the 18 job templates (misspelled option; 2 of them also job_type) and the 2 schedules.
    assert len(errors) == 20, errors


# ---- syntax, input checks, a closed port ---------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['configure.yml', 'refresh_survey.yml'])
def test_syntax_check(name):
    result = playbook(ROOT, name, '--syntax-check')
    assert result.returncode == 0, result.stdout + result.stderr


def failures(report):
    """(task name, message) of every failed result (each loop item's) of a json callback report."""
    found = []
    for play in report['plays']:
        for task in play['tasks']:
            for result in task['hosts'].values():
                for item in result.get('results', [result]):
                    if item.get('failed'):
                        found.append((task['task']['name'], item.get('msg', '')))
    return found


@pytest.mark.parametrize('name', ['configure.yml', 'refresh_survey.yml'])
def test_check_mode_against_a_closed_port_fails_only_to_connect(tmp_path, registry, name):
    port = closed_port()
    secrets = write_secrets(tmp_path / 'secrets.yml')
    result = playbook(
        ROOT,
        name,
        '-e',
        f'controller_host=https://127.0.0.1:{port}',
        '-e',
        f'@{secrets}',
        '-e',
        f'controller_release_registry={registry.url}',
        check=True,
        callback='json',
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    # -v prints the configuration file's name before the report.
    found = failures(json.loads(result.stdout[result.stdout.index('{') :]))
    # The first call to the controller is the one that fails: the checks and the registry passed before it.
    first = 'Create the organization' if name == 'configure.yml' else 'Create the job templates'
    assert {task for task, _msg in found} == {first}, found
    for _task, msg in found:
        assert re.search(r'Connection refused|Errno 111', msg), msg
    for wrong in ('Unsupported parameters', 'must be one of', 'is undefined', 'template error', 'Traceback'):
        assert wrong not in output
    for secret in PRINTABLE_SECRETS:
        assert secret not in output


BAD_ENVIRONMENT = {
    'name': 'staging',
    'inventory': 'inventories/staging',
    'vault_id': 'staging',
    'channel': 'beta',
    'prereleases': True,
    'backup_rrule': 'FREQ=DAILY',
}


@pytest.mark.parametrize(
    'extra, message',
    [
        (['-e', 'controller_host=awx.example.com'], 'Say where the controller is'),
        (['-e', '{"controller_secrets": {"staging": {}}}'], 'controller_secrets.production.ssh_private_key is missing'),
        (['-e', '{"controller_secrets": {"staging": {}}}'], 'controller_secrets.staging.ghcr_token is missing'),
        (
            ['-e', '@' + os.path.join(ROOT, 'controller', 'secrets.yml.example')],
            'controller_secrets.staging.vault_pass',
        ),
        (
            ['-e', json.dumps({'controller_environments': [BAD_ENVIRONMENT]})],
            'controller_environments must list each environment once',
        ),
    ],
)
def test_bad_input_is_refused_before_the_controller_is_asked(tmp_path, registry, extra, message):
    record = tmp_path / 'record.jsonl'
    secrets = write_secrets(tmp_path / 'secrets.yml')
    result = playbook(
        ROOT,
        'configure.yml',
        '-e',
        'controller_host=https://awx.example.com',
        '-e',
        f'@{secrets}',
        '-e',
        f'controller_release_registry={registry.url}',
        *extra,
        record=record,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in output
    assert 'Nothing was changed' in output
    assert records(record) == []


def test_survey_versions_without_a_release_come_from_the_staging_channel(tmp_path):
    with FakeRegistry(
        repos(['v2.0.0-rc.1']), auth='bearer', username='staging-bot', password=SECRETS['staging.ghcr_token']
    ) as reg:
        result, recorded = apply(ROOT, tmp_path, reg, name='refresh_survey.yml')
    assert result.returncode == 0, result.stdout + result.stderr
    templates = by_action(recorded, 'awx.awx.job_template')
    assert survey_choices(templates['avatar-mgmt deploy (staging)']) == ['staging', 'latest', 'v2.0.0-rc.1']
    assert survey_choices(templates['avatar-mgmt deploy (production)']) == ['latest']


def test_an_unreadable_registry_is_refused_with_the_way_out(tmp_path):
    with FakeRegistry(
        repos(VERSIONS), auth='bearer', username='someone-else', password='other', anonymous=False
    ) as reg:
        result, recorded = apply(ROOT, tmp_path, reg)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert 'controller_release_versions' in output
    assert recorded == []
