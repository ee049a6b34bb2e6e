# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Proxy hosts of nginx-proxy-manager as code: the rules behind ``npm_proxy_host`` and ``npm_forward``.

The client (``_npm_client``) only talks; this file decides:

* **Matching** (:func:`match_host`): NPM's ids are its own, so a host is found by
  its domains. The record holding any of the wanted domains is the host; when
  several records hold some, the one holding the first wanted domain is the host
  and the others are conflicts, which fail naming their id and domains (a domain
  is never taken off another record silently).
* **Comparing** (:func:`normalize_host`, :func:`desired_fields`, :func:`changed_fields`):
  booleans (NPM < 2.12 used 0/1), domain order and case, location order, port
  types and trailing white space of ``advanced_config`` do not count. Only options
  that are set are compared (unset means "leave as is").
* **Writing only when needed**: every POST/PUT/enable/disable makes NPM rewrite the
  host file and reload nginx, so nothing is sent when nothing differs.
* **Checking that the host is live**: after every write the host is read again; NPM
  answers 200 even when ``nginx -t`` failed, and then has deleted the host's file
  (``meta.nginx_online`` false, ``meta.nginx_err`` nginx's text). A failed update
  is undone with a PUT of the previous values (NPM writes the file again), a failed
  create is deleted again; :class:`NginxOfflineError` says which and quotes nginx.
* **Secrets**: the results are built from a whitelist of fields
  (:func:`public_host`); passwords, private keys and tokens never enter them.
"""

from __future__ import annotations

import hashlib
import http.client
import time

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _http
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._npm_client import (
    NPMAPIError,
    NPMAuthError,
    NPMClient,
    NPMConnectionError,
    NPMError,
)

if _http.HAS_REQUESTS:
    from requests import exceptions as _rexc

__all__ = [
    'BOOL_FIELDS',
    'COMPARED_FIELDS',
    'CertificateRequestError',
    'DomainConflictError',
    'NPMAPIError',
    'NPMAuthError',
    'NPMClient',
    'NPMConnectionError',
    'NPMError',
    'NginxOfflineError',
    'NotSetUpError',
    'VerifyError',
    'changed_fields',
    'check_ssl_consistency',
    'connect',
    'connection_argument_spec',
    'desired_fields',
    'diff_view',
    'ensure_proxy_host',
    'ensure_proxy_hosts',
    'forward_host_record',
    'host_domains',
    'host_specs',
    'match_host',
    'normalize_domains',
    'normalize_host',
    'normalize_locations',
    'public_host',
    'redact',
    'run_module',
    'secrets_of',
    'switch_forward',
    'wait_for_api',
]

BOOL_FIELDS = (
    'block_exploits',
    'allow_websocket_upgrade',
    'caching_enabled',
    'http2_support',
    'hsts_enabled',
    'hsts_subdomains',
    'ssl_forced',
)
COMPARED_FIELDS = (
    'domain_names',
    'forward_scheme',
    'forward_host',
    'forward_port',
    'certificate_id',
    'access_list_id',
    *BOOL_FIELDS,
    'advanced_config',
    'locations',
)
LOCATION_KEYS = ('path', 'forward_scheme', 'forward_host', 'forward_port', 'forward_path', 'advanced_config')
NEW = 'new'  # id of a certificate or access list that check mode would create
# The options of one proxy host: the module's top-level options (one host), or an entry of ``hosts``.
HOST_OPTIONS = (
    'domain_names',
    'state',
    'forward_scheme',
    'forward_host',
    'forward_port',
    'enabled',
    *BOOL_FIELDS,
    'certificate',
    'certificate_upload',
    'certificate_request',
    'access_list',
    'access_list_spec',
    'update_password',
    'advanced_config',
    'locations',
)
API_WAIT_INTERVAL = 1.0  # seconds between two GET /api/ while NPM starts


class NotSetUpError(NPMError):
    """NPM has no user yet (``setup`` false) and first-run setup was not asked for."""


class DomainConflictError(NPMError):
    """A wanted domain is on another proxy host record."""


class NginxOfflineError(NPMError):
    """NPM accepted a write but nginx rejected the configuration (``meta.nginx_online`` false)."""

    def __init__(self, message, nginx_err='', restored=None):
        super().__init__(message)
        self.nginx_err = nginx_err
        self.restored = restored


class CertificateRequestError(NPMError):
    """NPM could not get the Let's Encrypt certificate of ``certificate_request``; nothing else was written."""


class VerifyError(NPMError):
    """The public side did not show the new target before the deadline."""


# ---------------------------------------------------------------------------
# Normalisation and comparison (pure)
# ---------------------------------------------------------------------------


def normalize_domains(names):
    """Lower-case, stripped, duplicates dropped, sorted: the form domain lists are compared in."""
    return sorted({str(name).strip().lower() for name in names or [] if str(name).strip()})


def _clean_domains(names):
    """The domain list as sent to NPM: lower-case, stripped, first occurrence kept, order kept."""
    seen = []
    for name in names or []:
        name = str(name).strip().lower()
        if name and name not in seen:
            seen.append(name)
    return seen


def _location(loc):
    if not isinstance(loc, dict):
        raise ValueError(f'each entry of locations must be a dict, not {loc!r}')
    missing = [key for key in ('path', 'forward_host', 'forward_port') if loc.get(key) in (None, '')]
    if missing:
        raise ValueError(f'location {loc.get("path") or loc!r} lacks {", ".join(missing)}')
    out = {
        'path': str(loc['path']).strip(),
        'forward_scheme': str(loc.get('forward_scheme') or 'http'),
        'forward_host': str(loc['forward_host']).strip(),
        'forward_port': int(loc['forward_port']),
        'forward_path': str(loc.get('forward_path') or ''),
        'advanced_config': str(loc.get('advanced_config') or '').rstrip(),
    }
    for key, value in loc.items():
        if key not in LOCATION_KEYS and key != 'id':
            out[key] = value
    return out


def normalize_locations(locations):
    """Custom locations with defaults filled in, ports as int, sorted by path (order does not count)."""
    return sorted((_location(loc) for loc in locations or []), key=lambda loc: (loc['path'], loc['forward_host']))


def _bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ('1', 'true', 'yes', 'on')
    return bool(value)


def normalize_host(record):
    """The compared fields (and ``enabled``) of an NPM proxy host record."""
    out = {
        'domain_names': normalize_domains(record.get('domain_names')),
        'forward_scheme': str(record.get('forward_scheme') or 'http'),
        'forward_host': str(record.get('forward_host') or ''),
        'forward_port': int(record.get('forward_port') or 0),
        'certificate_id': int(record.get('certificate_id') or 0),
        'access_list_id': int(record.get('access_list_id') or 0),
        'advanced_config': str(record.get('advanced_config') or '').rstrip(),
        'locations': normalize_locations(record.get('locations')),
        'enabled': _bool(record.get('enabled', True)),
    }
    for field in BOOL_FIELDS:
        out[field] = _bool(record.get(field, False))
    return out


def desired_fields(spec, certificate_id=None, access_list_id=None):
    """The compared fields the options set, normalised; ``enabled`` included when set.

    ``spec`` holds the module's options (None: not managed). ``certificate_id`` /
    ``access_list_id`` are the resolved ids (0: none, :data:`NEW`: would be created,
    None: not managed).
    """
    out = {'domain_names': normalize_domains(spec['domain_names'])}
    for field in ('forward_scheme', 'forward_host'):
        if spec.get(field) is not None:
            out[field] = str(spec[field])
    if spec.get('forward_port') is not None:
        out['forward_port'] = int(spec['forward_port'])
    for field in (*BOOL_FIELDS, 'enabled'):
        if spec.get(field) is not None:
            out[field] = bool(spec[field])
    if spec.get('advanced_config') is not None:
        out['advanced_config'] = str(spec['advanced_config']).rstrip()
    if spec.get('locations') is not None:
        out['locations'] = normalize_locations(spec['locations'])
    if certificate_id is not None:
        out['certificate_id'] = certificate_id
    if access_list_id is not None:
        out['access_list_id'] = access_list_id
    return out


def changed_fields(current, desired):
    """Names of the fields of ``desired`` whose value differs from ``current`` (both normalised), in order."""
    names = [field for field in COMPARED_FIELDS if field in desired and current.get(field) != desired[field]]
    if 'enabled' in desired and current.get('enabled', True) != desired['enabled']:
        names.append('enabled')
    return names


def check_ssl_consistency(current, desired):
    """Refuse what NPM would silently store otherwise (its ``cleanSslHstsData``).

    Without a certificate NPM stores ``ssl_forced`` and ``http2_support`` false; without
    ``ssl_forced`` it stores ``hsts_enabled`` false; without HSTS ``hsts_subdomains`` false.
    Asking for them anyway would change on every run.
    """
    merged = dict(current or {})
    merged.update(desired)
    problems = []
    if not merged.get('certificate_id'):
        problems += [f'{f} needs a certificate' for f in ('ssl_forced', 'http2_support') if desired.get(f)]
    if not merged.get('ssl_forced') and desired.get('hsts_enabled'):
        problems.append('hsts_enabled needs ssl_forced')
    if not merged.get('hsts_enabled') and desired.get('hsts_subdomains'):
        problems.append('hsts_subdomains needs hsts_enabled')
    if problems:
        raise ValueError(
            '; '.join(problems) + ' (NPM would store false and report a change on every run). Set certificate, '
            'or leave these options false'
        )


def match_host(hosts, domain_names):
    """``(record or None, conflicts)`` for the wanted ``domain_names`` among NPM's proxy hosts.

    The record sharing a domain with the wanted list is the host. When several share
    some, the one holding the first wanted domain is the host and every other is a
    conflict; when none of them holds it, all are conflicts.
    """
    wanted = _clean_domains(domain_names)
    if not wanted:
        raise ValueError('domain_names must list at least one domain')
    sharing = [h for h in hosts if set(normalize_domains(h.get('domain_names'))) & set(wanted)]
    if not sharing:
        return None, []
    if len(sharing) == 1:
        return sharing[0], []
    own = [h for h in sharing if wanted[0] in normalize_domains(h.get('domain_names'))]
    own = own[0] if own else None
    return own, [h for h in sharing if h is not own]


def conflict_message(conflicts, wanted):
    parts = []
    wanted = set(_clean_domains(wanted))
    for host in conflicts:
        domains = normalize_domains(host.get('domain_names'))
        shared = ', '.join(d for d in domains if d in wanted)
        parts.append(f'proxy host id {host.get("id")} (domains: {", ".join(domains)}) already serves {shared}')
    return (
        '; '.join(parts) + '. A domain is not taken off another host silently: remove it there first (or manage that '
        'host with its own domain_names), then run again. Nothing was changed.'
    )


# ---------------------------------------------------------------------------
# What results show
# ---------------------------------------------------------------------------

_PUBLIC_HOST_FIELDS = ('id', 'created_on', 'modified_on', *COMPARED_FIELDS, 'trust_forwarded_proto', 'enabled')


def public_host(record):
    """An NPM proxy host record reduced to a whitelist of fields: no owner, no certificate PEMs, no passwords."""
    if not record:
        return {}
    out = {key: record[key] for key in _PUBLIC_HOST_FIELDS if key in record}
    for field in (*BOOL_FIELDS, 'enabled', 'trust_forwarded_proto'):
        if field in out:
            out[field] = _bool(out[field])
    meta = record.get('meta') or {}
    out['meta'] = {'nginx_online': meta.get('nginx_online'), 'nginx_err': meta.get('nginx_err')}
    cert = record.get('certificate')
    if isinstance(cert, dict) and cert:
        out['certificate'] = {k: cert.get(k) for k in ('id', 'nice_name', 'provider', 'expires_on', 'domain_names')}
    acl = record.get('access_list')
    if isinstance(acl, dict) and acl:
        out['access_list'] = {k: acl.get(k) for k in ('id', 'name')}
    return out


def diff_view(normalized, certificate_name=None, access_list_name=None):
    """The compared fields for ``diff``: ids of certificate and access list shown by name."""
    if not normalized:
        return {}
    view = {k: v for k, v in normalized.items() if k not in ('certificate_id', 'access_list_id')}
    view['certificate'] = certificate_name
    view['access_list'] = access_list_name
    return view


# ---------------------------------------------------------------------------
# Connection and first-run setup
# ---------------------------------------------------------------------------


def wait_for_api(client, timeout=0, interval=API_WAIT_INTERVAL, clock=time.monotonic, sleep=time.sleep):
    """``GET /api/`` until NPM answers as NPM does, for up to ``timeout`` seconds; returns its answer.

    While NPM starts, its port refuses connections, then its nginx answers 502 until the
    backend is up: those (no answer, or a 5xx) are retried every ``interval`` seconds.
    Anything else (a 4xx, a 200 that is not NPM's JSON) fails at once. ``timeout`` 0
    tries once.
    """
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        try:
            return client.status()
        except (NPMConnectionError, NPMAPIError) as exc:
            if exc.status is not None and exc.status < 500:
                raise
            if timeout <= 0:
                raise
            if clock() - start + interval > timeout:
                raise NPMConnectionError(
                    f'{str(exc).rstrip(".")}. NPM did not answer GET /api/ within api_timeout ({timeout}s, '
                    f'{attempts} attempts): check that its container runs (docker logs of the proxy service).',
                    status=exc.status,
                )
        sleep(interval)


def connect(params, initial_setup=False, check_mode=False, clock=time.monotonic, sleep=time.sleep, save_session=True):
    """A logged-in :class:`NPMClient` for the module options, and whether setup created the admin.

    The login is tried first: an NPM that runs and has the user answers it, and that one
    request is all the connection costs. When it fails (NPM is starting, has no user yet,
    refuses the credentials, is not NPM), the careful way follows: ``GET /api/`` tells whether
    NPM has a user; with ``api_timeout`` among ``params`` it is retried while NPM starts
    (:func:`wait_for_api`). Without a user, ``initial_setup`` creates the admin from
    ``username``/``password`` through the unauthenticated ``POST /api/users`` (never once NPM
    is set up); otherwise the login is tried again and its error stands. Returns
    ``(client, created_admin)``; in check mode a client that would need setup is returned not
    logged in with ``created_admin`` true. With ``token_cache`` among ``params``, a session an earlier
    run kept there (:meth:`NPMClient.resume`) replaces the login, and a new session (a token that lives 15
    minutes) is kept there for the next run (:meth:`NPMClient.keep`), unless ``save_session`` is false (the
    caller keeps it) or in check mode.
    """
    client = NPMClient(
        params['url'],
        username=params['username'],
        password=params['password'],
        validate_certs=params['validate_certs'],
        ca_path=params.get('ca_path'),
        timeout=params['timeout'],
    )
    cache = params.get('token_cache')
    # The session an earlier run kept replaces the login; either way a new one is kept for the next run.
    created = (
        False if cache and client.resume(cache) else _log_in(client, params, initial_setup, check_mode, clock, sleep)
    )
    if cache and save_session and not check_mode:
        client.keep(cache)  # nothing when not logged in (check mode's pending setup); never raises
    return client, created


def _log_in(client, params, initial_setup, check_mode, clock, sleep):
    """:func:`connect`'s login: ``created_admin``; the client is logged in unless check mode found setup pending."""
    try:
        client.login()
        return False
    except NPMError:
        pass  # whatever the reason, the careful way below says it (the same messages as without this try)
    try:
        info = wait_for_api(client, params.get('api_timeout') or 0, clock=clock, sleep=sleep)
    except NPMError:
        client.close()
        raise
    if info.get('setup') is False:
        if not initial_setup:
            raise NotSetUpError(
                f'NPM at {client.url} has no user yet (GET /api/ answers setup: false). Set initial_setup: true to '
                'create the admin from username and password, or start NPM with INITIAL_ADMIN_EMAIL and '
                'INITIAL_ADMIN_PASSWORD. Nothing was changed.'
            )
        if check_mode:
            return True
        client.create_first_user()
        client.login()
        return True
    client.login()
    return False


# ---------------------------------------------------------------------------
# Certificates and access lists
# ---------------------------------------------------------------------------


def _by_name(items, key, name, what):
    found = [item for item in items if str(item.get(key) or '') == name]
    if len(found) > 1:
        ids = ', '.join(str(item.get('id')) for item in found)
        raise ValueError(f'{len(found)} {what}s are named {name!r} (ids {ids}); rename all but one in NPM')
    return found[0] if found else None


def _pem(text):
    return (text or '').strip().replace('\r\n', '\n')


def _sha256(text):
    return hashlib.sha256(_pem(text).encode('utf-8')).hexdigest() if text else None


def plan_certificate(certificates, name, upload, request=None, pending=()):
    """``(certificate_id, action)``: action is ``None``, ``'create'``, ``'upload'`` (PEMs differ) or ``'request'``.

    ``name`` ``''``/``none`` means no certificate (id 0). ``upload`` is the
    ``certificate_upload`` option or None, ``request`` the ``certificate_request`` option
    or None: a certificate of its name is requested from Let's Encrypt only when none
    exists; an existing one is used as it is (NPM renews it). The stored PEMs (key
    included) are compared only, never returned. ``pending``: names of certificates an
    earlier host of the same run would create (planned, not written yet): ``(NEW, None)``.
    """
    if upload and request:
        raise ValueError('certificate_upload and certificate_request are mutually exclusive')
    if upload:
        name = upload['nice_name']
    if request:
        name = request['nice_name']
    if name is None:
        return None, None
    if name in ('', 'none'):
        return 0, None
    cert = _by_name(certificates, 'nice_name', name, 'certificate')
    if cert is None:
        if name in pending:
            return NEW, None
        if request:
            return NEW, 'request'
        if not upload:
            raise ValueError(
                f'NPM has no certificate named {name!r}. Create it with certificate_upload or certificate_request, '
                'or use the name NPM shows (nice_name)'
            )
        return NEW, 'create'
    if not upload:
        return int(cert['id']), None
    if cert.get('provider') != 'other':
        raise ValueError(
            f'certificate {name!r} (id {cert.get("id")}) is a {cert.get("provider")} certificate; NPM uploads only to '
            'custom ones. Give certificate_upload another nice_name'
        )
    meta = cert.get('meta') or {}
    same = (
        _pem(meta.get('certificate')) == _pem(upload['certificate'])
        and _pem(meta.get('certificate_key')) == _pem(upload['certificate_key'])
        and _pem(meta.get('intermediate_certificate')) == _pem(upload.get('intermediate_certificate'))
    )
    return int(cert['id']), (None if same else 'upload')


def _acl_view(acl):
    if not acl:
        return None
    return {
        'name': acl.get('name'),
        'satisfy_any': _bool(acl.get('satisfy_any')),
        'pass_auth': _bool(acl.get('pass_auth')),
        'users': sorted(str(i.get('username')) for i in acl.get('items') or []),
        'clients': sorted(
            (
                {'address': str(c.get('address')), 'directive': str(c.get('directive'))}
                for c in acl.get('clients') or []
            ),
            key=lambda c: (c['address'], c['directive']),
        ),
    }


def plan_access_list(access_lists, name, spec, update_password='on_create', pending=()):
    """``(access_list_id, action, before, after)``: action ``None``, ``'create'`` or ``'update'``.

    Passwords cannot be compared (NPM stores them hashed and returns them masked): with
    ``update_password=always`` an existing list is written on every run; with ``on_create``
    passwords are sent only for users the list does not have yet. ``pending``: names of
    access lists an earlier host of the same run would create: ``(NEW, None, None, None)``.
    """
    if spec:
        name = spec['name']
    if name is None:
        return None, None, None, None
    if name in ('', 'none'):
        return 0, None, None, None
    acl = _by_name(access_lists, 'name', name, 'access list')
    if acl is None and name in pending:
        return NEW, None, None, None
    if not spec:
        if acl is None:
            raise ValueError(f'NPM has no access list named {name!r}. Create it with access_list_spec')
        return int(acl['id']), None, None, None
    after = _acl_view(
        {
            'name': spec['name'],
            'satisfy_any': spec.get('satisfy_any'),
            'pass_auth': spec.get('pass_auth'),
            'items': spec.get('items') or [],
            'clients': spec.get('clients') or [],
        }
    )
    if acl is None:
        return NEW, 'create', None, after
    before = _acl_view(acl)
    action = 'update' if before != after or update_password == 'always' else None
    return int(acl['id']), action, before, after


def _acl_body(spec, existing_users, update_password):
    items = []
    for item in spec.get('items') or []:
        send = update_password == 'always' or item['username'] not in existing_users
        items.append({'username': item['username'], 'password': item['password'] if send else ''})
    return {
        'name': spec['name'],
        'satisfy_any': bool(spec.get('satisfy_any')),
        'pass_auth': bool(spec.get('pass_auth')),
        'items': items,
        'clients': [
            {'address': c['address'], 'directive': c.get('directive') or 'allow'} for c in spec.get('clients') or []
        ],
    }


# ---------------------------------------------------------------------------
# Proxy hosts
# ---------------------------------------------------------------------------


def _body(spec, fields, certificate_id, access_list_id):
    """The JSON body for ``fields`` from the options (values as the user gave them, cleaned)."""
    body = {}
    for field in fields:
        if field == 'domain_names':
            body[field] = _clean_domains(spec['domain_names'])
        elif field == 'certificate_id':
            body[field] = certificate_id
        elif field == 'access_list_id':
            body[field] = access_list_id
        elif field == 'locations':
            body[field] = [_location(loc) for loc in spec['locations']]
        elif field == 'forward_port':
            body[field] = int(spec[field])
        elif field in BOOL_FIELDS:
            body[field] = bool(spec[field])
        elif field == 'enabled':
            continue
        else:
            body[field] = spec[field]
    return body


def _restore_body(record):
    """A PUT body that puts back every compared field of a previous record."""
    body = {
        'domain_names': list(record.get('domain_names') or []),
        'forward_scheme': record.get('forward_scheme') or 'http',
        'forward_host': record.get('forward_host'),
        'forward_port': int(record.get('forward_port') or 0),
        'certificate_id': int(record.get('certificate_id') or 0),
        'access_list_id': int(record.get('access_list_id') or 0),
        'advanced_config': record.get('advanced_config') or '',
        'locations': [_location(loc) for loc in record.get('locations') or []],
    }
    for field in BOOL_FIELDS:
        body[field] = _bool(record.get(field))
    return body


def _offline(record):
    """nginx's error when the host is enabled but NPM reports it offline, else None."""
    meta = record.get('meta') or {}
    if _bool(record.get('enabled', True)) and meta.get('nginx_online') is False:
        return str(meta.get('nginx_err') or 'no error text from NPM')
    return None


def _answered(answer, host_id):
    """The host as NPM's answer to a PUT gives it, when that answer carries nginx's verdict; else None.

    NPM answers an update of an enabled host with the host as written and the ``meta`` its nginx test gave
    (``nginx_online``, ``nginx_err``): the same as a GET after it, one HTTP request fewer.
    """
    if not isinstance(answer, dict) or 'nginx_online' not in (answer.get('meta') or {}):
        return None
    try:
        return answer if int(answer.get('id')) == host_id and _bool(answer.get('enabled', True)) else None
    except (TypeError, ValueError):
        return None


def _after_write(client, host_id, previous, what, answer=None):
    """The host after a write (NPM's answer to it when that holds nginx's verdict, else a GET); when nginx rejected
    it, put ``previous`` back (or delete a new host) and raise."""
    record = _answered(answer, host_id) or client.get_proxy_host(host_id)
    err = _offline(record)
    if err is None:
        return record
    err = client.redact(err)
    head = (
        f'NPM accepted the {what} of proxy host id {host_id} but nginx rejected the configuration: {err}. '
        'NPM deleted that host\'s nginx file.'
    )
    if previous is None:
        try:
            client.delete_proxy_host(host_id)
        except NPMError as exc:
            raise NginxOfflineError(
                f'{head} Deleting the new host again failed too ({exc}); delete proxy host id {host_id} in NPM.',
                nginx_err=err,
                restored=False,
            )
        raise NginxOfflineError(
            f'{head} The new host was deleted again; the configuration served before keeps serving. Fix the '
            'options (advanced_config, locations) and run again.',
            nginx_err=err,
            restored=True,
        )
    try:
        client.update_proxy_host(host_id, _restore_body(previous))
        if not _bool(previous.get('enabled', True)) and _bool(record.get('enabled', True)):
            client.disable_proxy_host(host_id)
        again = client.get_proxy_host(host_id)
    except NPMError as exc:
        raise NginxOfflineError(
            f'{head} Putting the previous values back failed ({exc}); the host is OFFLINE. Restore it in NPM.',
            nginx_err=err,
            restored=False,
        )
    err_again = _offline(again)
    if err_again is not None:
        raise NginxOfflineError(
            f'{head} The previous values were put back but nginx rejects them too ({client.redact(err_again)}); '
            'the host is OFFLINE. Fix it in NPM.',
            nginx_err=err,
            restored=False,
        )
    raise NginxOfflineError(
        f'{head} The previous values were put back and the host is online again: the previous configuration keeps '
        'serving. Fix the options (advanced_config, locations) and run again.',
        nginx_err=err,
        restored=True,
    )


class _Reads:
    """What NPM has (proxy hosts, certificates, access lists), read once per run and again after a write.

    ``setup_pending``: check mode on an NPM without a user: nothing can be read, everything is empty.
    """

    def __init__(self, client, setup_pending=False):
        self._client = client
        self._empty = setup_pending
        self._seen = {}
        self._writes = client.write_count

    def _get(self, kind, read):
        if self._client.write_count != self._writes:
            # Something was written since the last read: read again what is needed.
            self._seen = {}
            self._writes = self._client.write_count
        if self._empty:
            return []
        if kind not in self._seen:
            self._seen[kind] = read()
        return self._seen[kind]

    def hosts(self):
        return self._get('hosts', self._client.list_proxy_hosts)

    def certificates(self):
        return self._get('certificates', self._client.list_certificates)

    def access_lists(self):
        return self._get('access_lists', self._client.list_access_lists)


def _new_pending():
    """What the hosts planned so far in a run would create or change that later hosts must see."""
    return {'certificates': set(), 'access_lists': set(), 'domains': {}}


def ensure_proxy_host(client, spec, check_mode=False, setup_pending=False, reads=None, pending=None):
    """Converge one proxy host to ``spec`` (the module's options). Returns the module result.

    ``setup_pending``: check mode on an NPM without a user (nothing can be read yet;
    everything would be created). ``reads``: the run's :class:`_Reads` (several hosts
    share one). ``pending``: what earlier hosts of the run would create (certificate and
    access list names) and the domains they would leave on the records they change
    (record id -> domains); a planning (check mode) pass adds this host's.
    """
    domains = _clean_domains(spec['domain_names'])
    if not domains:
        raise ValueError('domain_names must list at least one domain')
    state = spec.get('state') or 'present'
    reads = reads or _Reads(client, setup_pending)
    if pending is None:
        pending = _new_pending()
    # The records as earlier hosts of the run leave them (a domain they drop is free for this one).
    hosts = [
        dict(h, domain_names=pending['domains'][h.get('id')]) if h.get('id') in pending['domains'] else h
        for h in reads.hosts()
    ]
    record, conflicts = match_host(hosts, domains)
    if conflicts:
        raise DomainConflictError(conflict_message(conflicts, domains))

    if state == 'absent':
        if check_mode and record is not None:
            pending['domains'][record.get('id')] = []
        return _ensure_absent(client, record, domains, check_mode)

    upload = spec.get('certificate_upload')
    request = spec.get('certificate_request')
    acl_spec = spec.get('access_list_spec')
    for given, option, key in (
        ('certificate', 'certificate_upload', 'nice_name'),
        ('certificate', 'certificate_request', 'nice_name'),
        ('access_list', 'access_list_spec', 'name'),
    ):
        named = (spec.get(option) or {}).get(key)
        if named is not None and spec.get(given) not in (None, named):
            raise ValueError(f'{given} ({spec[given]!r}) and {option}.{key} ({named!r}) differ')
    certificates = (
        reads.certificates() if (upload or request or spec.get('certificate') not in (None, '', 'none')) else []
    )
    access_lists = reads.access_lists() if (acl_spec or spec.get('access_list') not in (None, '', 'none')) else []
    cert_id, cert_action = plan_certificate(
        certificates, spec.get('certificate'), upload, request, pending['certificates']
    )
    acl_id, acl_action, acl_before, acl_after = plan_access_list(
        access_lists,
        spec.get('access_list'),
        acl_spec,
        spec.get('update_password') or 'on_create',
        pending['access_lists'],
    )

    current = normalize_host(record) if record else None
    desired = desired_fields(spec, cert_id, acl_id)
    if record is None:
        missing = [f for f in ('forward_host', 'forward_port') if spec.get(f) in (None, '')]
        if missing:
            raise ValueError(f'creating the proxy host for {", ".join(domains)} needs {" and ".join(missing)}')
    check_ssl_consistency(current, desired)
    fields = changed_fields(current or {}, desired) if record else [f for f in COMPARED_FIELDS if f in desired]
    offline_before = _offline(record) if record else None

    cert_name = (upload or request or {}).get('nice_name') or spec.get('certificate')
    acl_name = acl_spec['name'] if acl_spec else spec.get('access_list')
    names = _names(record)
    before_view = diff_view(current, *names) if record else {}
    after_norm = dict(current or {}, **desired)
    if record is None:
        after_norm.setdefault('enabled', True)
        after_norm.setdefault('forward_scheme', 'http')
    after_view = diff_view(
        after_norm, _target_name(cert_id, cert_name, names[0]), _target_name(acl_id, acl_name, names[1])
    )
    if acl_action:
        before_view['access_list_spec'] = acl_before
        after_view['access_list_spec'] = acl_after
    if cert_action == 'request':
        after_view['certificate_request'] = _request_view(request, domains)
    elif cert_action:
        stored = _by_name(certificates, 'nice_name', upload['nice_name'], 'certificate') or {}
        before_view['certificate_sha256'] = _sha256((stored.get('meta') or {}).get('certificate'))
        after_view['certificate_sha256'] = _sha256(upload['certificate'])

    host_write = record is None or bool(fields) or offline_before is not None
    changed = host_write or bool(cert_action) or bool(acl_action) or setup_pending
    result = {
        'changed': changed,
        'id': record.get('id') if record else None,
        'host': public_host(record),
        'changes': {
            'host': 'create' if record is None else ('update' if fields else ('reapply' if offline_before else None)),
            'fields': fields,
            'certificate': cert_action,
            'access_list': acl_action,
        },
        'diff': {'before': before_view, 'after': after_view},
    }
    if check_mode and record is not None and 'domain_names' in fields:
        pending['domains'][record.get('id')] = domains
    if check_mode and cert_action in ('create', 'request'):
        pending['certificates'].add((upload or request)['nice_name'])
    if check_mode and acl_action == 'create':
        pending['access_lists'].add(acl_spec['name'])
    if check_mode or not changed:
        return result

    # -- writes ------------------------------------------------------------
    if cert_action == 'request':
        # First of all writes: when Let's Encrypt fails, nothing else has been sent.
        cert_id = _request_certificate(client, request, domains)
    if cert_action == 'create':
        created = client.create_custom_certificate(upload['nice_name'])
        cert_id = int(created['id'])
    if cert_action in ('create', 'upload'):
        client.upload_certificate(
            cert_id, upload['certificate'], upload['certificate_key'], upload.get('intermediate_certificate')
        )
    if acl_action == 'create':
        acl_id = int(client.create_access_list(_acl_body(acl_spec, set(), 'always'))['id'])
    elif acl_action == 'update':
        existing = set((acl_before or {}).get('users') or [])
        client.update_access_list(acl_id, _acl_body(acl_spec, existing, spec.get('update_password') or 'on_create'))

    if record is None:
        body = _body(spec, [f for f in COMPARED_FIELDS if f in desired], cert_id, acl_id)
        body.setdefault('forward_scheme', 'http')
        if spec.get('enabled') is not None:
            body['enabled'] = bool(spec['enabled'])
        created = client.create_proxy_host(body)
        host_id = int(created['id'])
        final = _after_write(client, host_id, None, 'creation')
    else:
        host_id = int(record['id'])
        final = record
        wrote = False
        put_fields = [f for f in fields if f != 'enabled']
        if put_fields or offline_before is not None or (cert_action == 'upload' and 'enabled' not in fields):
            # A re-uploaded certificate is not loaded by NPM: a PUT (no-op if nothing else changed) reloads nginx.
            body = _body(spec, put_fields, cert_id, acl_id) or {'forward_host': record.get('forward_host')}
            client.update_proxy_host(host_id, body)
            wrote = True
        if 'enabled' in fields:
            if desired['enabled']:
                client.enable_proxy_host(host_id)
            else:
                client.disable_proxy_host(host_id)
            wrote = True
        if wrote:
            final = _after_write(client, host_id, record, 'update')
        else:
            # Only the access list changed: NPM regenerated the hosts using it itself.
            final = client.get_proxy_host(host_id)
            err = _offline(final)
            if err is not None:
                raise NginxOfflineError(
                    f'NPM updated access list {acl_name!r} but nginx rejects proxy host id {host_id} now: '
                    f'{client.redact(err)}. The host is OFFLINE; fix the access list (or the host) and run again.',
                    nginx_err=client.redact(err),
                    restored=False,
                )
    result['id'] = host_id
    result['host'] = public_host(final)
    return result


def host_specs(params):
    """The hosts a module run declares: ``[params]`` without ``hosts``, else one spec per entry of ``hosts``.

    In an entry, an option left unset (None) takes the top-level option's value, so what
    all hosts share is given once. Refuses, before anything is read: an empty ``hosts``,
    an entry without a domain, a domain in two entries.
    """
    entries = params.get('hosts')
    if entries is None:
        return [params]
    if not entries:
        raise ValueError('hosts is empty: list at least one host (each with domain_names)')
    specs = []
    owner = {}
    for index, entry in enumerate(entries):
        spec = {key: entry.get(key) if entry.get(key) is not None else params.get(key) for key in HOST_OPTIONS}
        domains = _clean_domains(spec['domain_names'])
        if not domains:
            raise ValueError(f'hosts[{index}] needs domain_names (at least one domain)')
        for domain in domains:
            if domain in owner:
                raise ValueError(
                    f'{domain} is in hosts[{owner[domain]}] and hosts[{index}]: a domain belongs to one proxy host'
                )
            owner[domain] = index
        specs.append(spec)
    return specs


def host_domains(spec):
    """The domains of a host spec as sent to NPM: lower-case, stripped, order kept."""
    return _clean_domains(spec.get('domain_names'))


def _host_label(spec, index):
    return f'proxy host {", ".join(host_domains(spec))} (hosts[{index}])'


def ensure_proxy_hosts(client, specs, check_mode=False, setup_pending=False, name_hosts=True):
    """Converge several proxy hosts over one login; returns one result per spec, in order.

    First every host is planned against one read of NPM (nothing is sent; certificates
    and access lists an earlier host would create count as there), so an invalid host
    fails before any write. In check mode that plan is the result. Otherwise the hosts
    that differ are written in order, each planned again on what NPM has after the
    previous writes (NPM is read again only after a write).

    With ``name_hosts``, an error names its host (``hosts[i]``) and carries ``results``:
    what was written before it (empty when the error came while planning).
    """
    reads = _Reads(client, setup_pending)
    pending = _new_pending()
    results = []
    index = 0
    writing = False
    try:
        for index in range(len(specs)):
            results.append(ensure_proxy_host(client, specs[index], True, setup_pending, reads=reads, pending=pending))
        if check_mode:
            return results
        writing = True
        for index, spec in enumerate(specs):
            if results[index]['changed']:
                results[index] = ensure_proxy_host(client, spec, False, reads=reads)
    except (NPMError, ValueError) as exc:
        if not name_hosts:
            raise
        label = _host_label(specs[index], index)
        done = results[:index] if writing else []
        if isinstance(exc, NPMError):
            exc.message = f'{label}: {exc.message}'
            exc.results = done
            raise
        error = ValueError(f'{label}: {exc}')
        error.results = done
        raise error from None
    return results


def _request_view(request, host_domains):
    """What ``certificate_request`` asks Let's Encrypt for (no secret in it; the e-mail is the account's contact)."""
    return {
        'nice_name': request['nice_name'],
        'domain_names': _clean_domains(request.get('domain_names')) or list(host_domains),
        'key_type': request.get('key_type') or 'rsa',
    }


def _request_certificate(client, request, host_domains):
    """Ask NPM for a Let's Encrypt certificate (HTTP-01 challenge); its id, or :class:`CertificateRequestError`."""
    view = _request_view(request, host_domains)
    try:
        created = client.request_letsencrypt_certificate(
            view['nice_name'], view['domain_names'], request['email'], view['key_type']
        )
    except NPMError as exc:
        said = getattr(exc, 'npm_message', '') or str(exc)
        raise CertificateRequestError(
            f'NPM could not get the Let\'s Encrypt certificate {view["nice_name"]!r} for '
            f'{", ".join(view["domain_names"])}: {said.rstrip(".")}. Let\'s Encrypt (HTTP-01 challenge) must reach '
            'this NPM on port 80 from the internet for each of these domains, and each domain must resolve (DNS) to '
            'this host; NPM must reach Let\'s Encrypt (acme-v02.api.letsencrypt.org:443). Fix that, or use '
            'certificate_upload, then run again. Nothing else was written: the proxy host and access list are '
            'unchanged.',
            status=exc.status,
        )
    if not isinstance(created, dict) or not created.get('id'):
        raise CertificateRequestError(
            f'NPM answered the Let\'s Encrypt request for {view["nice_name"]!r} without a certificate id. Nothing '
            'else was written.'
        )
    return int(created['id'])


def _target_name(resolved_id, given_name, current_name):
    """The certificate or access list name a host will have: unmanaged keeps the current one."""
    if resolved_id is None:
        return current_name
    return None if resolved_id == 0 else given_name


def _names(record):
    if not record:
        return None, None
    cert = record.get('certificate') if isinstance(record.get('certificate'), dict) else {}
    acl = record.get('access_list') if isinstance(record.get('access_list'), dict) else {}
    cert_name = cert.get('nice_name') if record.get('certificate_id') else None
    acl_name = acl.get('name') if record.get('access_list_id') else None
    return cert_name, acl_name


def _ensure_absent(client, record, domains, check_mode):
    if record is None:
        return {
            'changed': False,
            'id': None,
            'host': {},
            'changes': {'host': None},
            'diff': {'before': {}, 'after': {}},
        }
    extra = [d for d in normalize_domains(record.get('domain_names')) if d not in domains]
    if extra:
        raise ValueError(
            f'proxy host id {record.get("id")} also serves {", ".join(extra)}; list all its domains in domain_names '
            'to delete it'
        )
    result = {
        'changed': True,
        'id': record.get('id'),
        'host': public_host(record),
        'changes': {'host': 'delete'},
        'diff': {'before': diff_view(normalize_host(record), *_names(record)), 'after': {}},
    }
    if not check_mode:
        client.delete_proxy_host(record['id'])
    return result


# ---------------------------------------------------------------------------
# The zero-downtime switch: forward_host / forward_port only, then verify
# ---------------------------------------------------------------------------


def find_host_for(hosts, domain_names):
    """The record holding every one of ``domain_names`` (the switch never creates or reshapes a host)."""
    wanted = _clean_domains(domain_names)
    if not wanted:
        raise ValueError('domain_names must list at least one domain')
    for host in hosts:
        if set(wanted) <= set(normalize_domains(host.get('domain_names'))):
            return host
    raise ValueError(
        f'no proxy host of NPM serves {", ".join(wanted)}; create it first with avatar_mgmt.ops.npm_proxy_host'
    )


def verify_served(
    url,
    domain,
    expect,
    deadline,
    interval=1.0,
    validate_certs=True,
    ca_path=None,
    timeout=5,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Poll ``url`` with ``Host: domain`` until ``expect`` is in a response header value or the body.

    Returns ``{'attempts', 'elapsed', 'status'}``; raises :class:`VerifyError` after ``deadline`` seconds
    with what was seen last.
    """
    session = _http.make_session(validate_certs=validate_certs, ca_path=ca_path)
    start = clock()
    attempts = 0
    last = 'no answer yet'
    try:
        while True:
            attempts += 1
            try:
                res = _http.send(session, 'GET', url, headers={'Host': domain}, timeout=timeout, max_body=65536)
            except _http.BodyError as exc:
                last = f'HTTP {exc.status}, then the body failed'
            except (_rexc.RequestException, OSError, http.client.HTTPException) as exc:
                last = _http.describe_exception(exc, timeout)
            else:
                body = res.body.decode('utf-8', 'replace')
                headers = ' '.join(f'{k}: {v}' for k, v in res.headers.items())
                if expect in body or expect in headers:
                    return {'attempts': attempts, 'elapsed': round(clock() - start, 3), 'status': res.status}
                last = f'HTTP {res.status}, body starts {body[:120]!r}'
            if clock() - start + interval > deadline:
                raise VerifyError(
                    f'{_http.redact_url(url)} with Host {domain} did not show {expect!r} within {deadline}s '
                    f'({attempts} attempts; last: {last}).'
                )
            sleep(interval)
    finally:
        session.close()


def switch_forward(client, spec, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Point the host of ``spec['domain_names']`` at ``forward_host``/``forward_port`` (and nothing else).

    Writes only when the target differs; checks ``meta.nginx_online`` after the PUT
    (and puts the previous target back when nginx rejects it); then, with ``verify_url``,
    polls the public side until ``verify_expect`` shows. Returns the module result with
    ``previous`` (the target before) so a caller can switch back.
    """
    return forward_host_record(client, spec, check_mode=check_mode, clock=clock, sleep=sleep)[0]


def forward_host_record(client, spec, check_mode=False, clock=time.monotonic, sleep=time.sleep, record=None):
    """:func:`switch_forward`, also giving the host's record after it: ``(result, record)``.

    ``record``: the host as this caller last read or wrote it (the record this function gave back), so that a
    caller writing the same host again skips listing every host; the host is found by its domain otherwise.
    """
    if record is None:
        record = find_host_for(client.list_proxy_hosts(), spec['domain_names'])
    host_id = int(record['id'])
    previous = {
        'forward_scheme': record.get('forward_scheme') or 'http',
        'forward_host': record.get('forward_host'),
        'forward_port': int(record.get('forward_port') or 0),
    }
    target = {
        'forward_scheme': spec.get('forward_scheme') or previous['forward_scheme'],
        'forward_host': spec['forward_host'],
        'forward_port': int(spec['forward_port']),
    }
    changed = target != previous
    result = {
        'changed': changed,
        'id': host_id,
        'previous': previous,
        'host': public_host(record),
        'diff': {'before': dict(previous), 'after': dict(target)},
        'verify': {},
    }
    if check_mode:
        return result, record
    if changed:
        body = {k: v for k, v in target.items() if v != previous[k]}
        answer = client.update_proxy_host(host_id, body)
        record = _after_write(client, host_id, record, 'forward switch', answer)
        result['host'] = public_host(record)
    if spec.get('verify_url'):
        domain = _clean_domains(spec['domain_names'])[0]
        try:
            result['verify'] = verify_served(
                spec['verify_url'],
                domain,
                spec['verify_expect'],
                spec.get('verify_timeout', 30),
                spec.get('verify_interval', 1.0),
                validate_certs=spec.get('validate_certs', True),
                ca_path=spec.get('ca_path'),
                clock=clock,
                sleep=sleep,
            )
        except VerifyError as exc:
            exc.result = result
            raise
    return result, record


# ---------------------------------------------------------------------------
# Module helpers
# ---------------------------------------------------------------------------


def connection_argument_spec():
    """The connection options shared by the NPM modules (documented in the ``avatar_mgmt.ops.npm`` doc fragment)."""
    return {
        'url': {'type': 'str', 'required': True},
        'username': {'type': 'str', 'required': True},
        'password': {'type': 'str', 'required': True, 'no_log': True},
        'validate_certs': {'type': 'bool', 'default': True},
        'ca_path': {'type': 'path'},
        'timeout': {'type': 'int', 'default': 30},
        'token_cache': {'type': 'path'},
    }


def secrets_of(params):
    """Every secret value among the options: the password, a private key, access-list passwords."""
    secrets = [params.get('password') or '']
    for spec in [params, *(params.get('hosts') or [])]:
        upload = spec.get('certificate_upload') or {}
        secrets.append(upload.get('certificate_key') or '')
        for item in (spec.get('access_list_spec') or {}).get('items') or []:
            secrets.append(item.get('password') or '')
    return [s for s in secrets if s]


def redact(text, params, client=None):
    """``text`` with every secret of ``params`` (and the client's token) masked."""
    secrets = secrets_of(params)
    if client is not None:
        text = client.redact(text)
    return _http.safe_message(text, secrets)


def run_module(module, work):
    """The body of an NPM module's ``main()``: connect, ``work(client, admin_created)``, fail or return its result.

    Connects with the module's options (first-run setup when it has ``initial_setup``),
    turns every error into ``fail_json`` with a redacted message (``changed`` when a
    write went through) and closes the client.
    """
    if not _http.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib('requests'), exception=_http.REQUESTS_IMPORT_ERROR)
    params = module.params
    client = None
    admin_created = False

    def fail(msg, exc=None, only_failed_write=False, **extra):
        # only_failed_write: the one write sent was refused and NPM kept nothing of it.
        wrote = admin_created or (client is not None and client.write_count > (1 if only_failed_write else 0))
        if getattr(exc, 'results', None) is not None:
            # Several hosts: what the hosts before the failed one did (results hold no secret).
            extra['results'] = exc.results
        module.fail_json(msg=redact(msg, params, client), changed=bool(wrote) and not module.check_mode, **extra)

    try:
        client, admin_created = connect(params, params.get('initial_setup') or False, module.check_mode)
        return work(client, admin_created)
    except ValueError as exc:
        wrote = client is not None and client.write_count > 0 and not module.check_mode
        fail(
            str(exc).rstrip('.')
            + ('. The writes before it stay (see results).' if wrote else '. Nothing was changed.'),
            exc,
        )
    except CertificateRequestError as exc:
        fail(str(exc), exc, only_failed_write=True)
    except NginxOfflineError as exc:
        fail(str(exc), exc, nginx_err=redact(exc.nginx_err, params, client), restored=exc.restored)
    except VerifyError as exc:
        partial = getattr(exc, 'result', {})
        fail(
            f'{exc} NPM forwards to the new target but it is not shown as served; switch back with previous if needed.',
            previous=partial.get('previous'),
            id=partial.get('id'),
        )
    except NPMError as exc:
        fail(str(exc), exc)
    finally:
        if client is not None:
            client.close()
