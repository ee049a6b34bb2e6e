# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake nginx-proxy-manager (2.15.1) API on 127.0.0.1, with NPM's semantics as read in its code.

``FakeNPM`` serves ``/api``: ``GET /api/`` (``setup`` false until the first user
exists), the unauthenticated ``POST /api/users`` while not set up,
``POST /api/tokens`` and Bearer auth on everything else, proxy hosts (ids
assigned here, 400 ``<domain> is already in use``, ``additionalProperties``
refused, ``cleanSslHstsData``, enable/disable refusing a no-op), custom
certificates (custom ones: create, multipart upload, PEMs and key kept in ``meta``
as NPM does; Let's Encrypt ones: requested in the POST itself, or, with
``letsencrypt_reachable`` false, the 500 NPM answers at once when Let's Encrypt
cannot be reached, keeping nothing) and access lists (passwords write-only, an empty password keeps the old).

A simulated ``nginx -t`` runs on every write of an enabled host: an
``advanced_config`` line whose directive is not in :data:`KNOWN_DIRECTIVES`, or
a custom location to a host named ``ghost*``, sets ``meta.nginx_online`` false
with nginx's text in ``nginx_err`` and removes the host from what nginx serves
(NPM deletes the file). ``reloads`` counts every write that makes NPM reload.

``FakeNPMPublic`` is the public side (port 80): it answers with the target
nginx has loaded for the ``Host`` (``X-Upstream`` header and body), lagging
``reload_lag`` requests behind each reload as NPM's asynchronous reload does.
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import re
import threading
import urllib.parse

from ansible_collections.avatar_mgmt.ops.tests.support.local_server import LocalHTTPService, QuietHandler

KNOWN_DIRECTIVES = {
    'access_log',
    'add_header',
    'allow',
    'client_max_body_size',
    'deny',
    'error_log',
    'expires',
    'gzip',
    'if',
    'include',
    'location',
    'proxy_buffering',
    'proxy_connect_timeout',
    'proxy_read_timeout',
    'proxy_send_timeout',
    'proxy_set_header',
    'return',
    'rewrite',
    'set',
}
BOOLS = (
    'ssl_forced',
    'hsts_enabled',
    'hsts_subdomains',
    'http2_support',
    'block_exploits',
    'caching_enabled',
    'allow_websocket_upgrade',
    'trust_forwarded_proto',
)
HOST_FIELDS = {
    'domain_names',
    'forward_scheme',
    'forward_host',
    'forward_port',
    'access_list_id',
    'certificate_id',
    *BOOLS,
    'advanced_config',
    'locations',
    'meta',
    'enabled',
}


# What NPM answers (500) when certbot cannot reach Let's Encrypt; simulated text, the shape of NPM's.
LETSENCRYPT_OFFLINE_ERROR = (
    'Error: Command failed: certbot certonly --config "/etc/letsencrypt.ini" --cert-name "npm-{id}" '
    '--agree-tos --authenticator webroot --email "{email}" --domains "{domains}"\n'
    'An unexpected error occurred:\nrequests.exceptions.ConnectionError: HTTPSConnectionPool('
    "host='acme-v02.api.letsencrypt.org', port=443): Max retries exceeded with url: /directory "
    '(Caused by NewConnectionError: Failed to establish a new connection: [Errno 101] Network is unreachable)'
)


class APIError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def nginx_test(host_id, record):
    """None, or nginx's error for this host's config (a small ``nginx -t``)."""
    conf = f'/data/nginx/proxy_host/{host_id}.conf'
    for number, line in enumerate((record.get('advanced_config') or '').splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith(('#', '}')):
            continue
        directive = re.split(r'[\s;{]', text, maxsplit=1)[0]
        if directive not in KNOWN_DIRECTIVES:
            return (
                f'nginx: [emerg] unknown directive "{directive}" in {conf}:{20 + number}\n'
                'nginx: configuration file /etc/nginx/nginx.conf test failed'
            )
    for loc in record.get('locations') or []:
        if str(loc.get('forward_host', '')).startswith('ghost'):
            return f'nginx: [emerg] host not found in upstream "{loc["forward_host"]}" in {conf}:48'
    return None


class FakeNPM(LocalHTTPService):
    """The admin API. ``users`` maps e-mail -> password (empty: a fresh NPM, ``setup`` false)."""

    thread_name = 'fake-npm'

    def __init__(self, users=None):
        super().__init__()
        self.users = {}
        for address, password in (users or {}).items():
            self.users[address] = {'id': len(self.users) + 1, 'email': address, 'password': password}
        self.tokens = set()
        self.last_token = None
        self.hosts = {}
        self.certs = {}
        self.acls = {}
        self.acl_passwords = {}  # (acl id, username) -> password
        self._ids = {'host': 0, 'cert': 0, 'acl': 0}
        self.reloads = 0
        self.requests = []  # (method, path, authorized)
        self.public_requests = []  # (len(requests) at the time, domain) of each request to the public side
        self.served = {}  # host id -> the record nginx has loaded
        self.public_view = {}
        self.reload_lag = 0
        self._lag_left = 0
        self.letsencrypt_reachable = True  # False: NPM's 500 of an offline machine
        self.mutex = threading.RLock()

    # -- state helpers ------------------------------------------------------

    @property
    def setup(self):
        return bool(self.users)

    def next_id(self, kind):
        self._ids[kind] += 1
        return self._ids[kind]

    def writes(self):
        """Requests that change NPM (not the login)."""
        return [(r[0], r[1]) for r in self.requests if r[0] in ('POST', 'PUT', 'DELETE') and r[1] != '/api/tokens']

    def reload(self):
        self.reloads += 1
        self._lag_left = self.reload_lag

    def public_target(self, domain):
        """What the public side serves for ``domain`` (None: the default site)."""
        with self.mutex:
            if self._lag_left > 0:
                self._lag_left -= 1
            else:
                self.public_view = copy.deepcopy(self.served)
            for record in self.public_view.values():
                if domain in record['domain_names']:
                    return record
        return None

    def configure(self, host_id):
        record = self.hosts[host_id]
        if not record['enabled']:
            self.served.pop(host_id, None)
            record['meta'] = {'nginx_online': True, 'nginx_err': None}
        else:
            err = nginx_test(host_id, record)
            if err:
                record['meta'] = {'nginx_online': False, 'nginx_err': err}
                self.served.pop(host_id, None)  # NPM deletes the host's file
            else:
                record['meta'] = {'nginx_online': True, 'nginx_err': None}
                self.served[host_id] = copy.deepcopy(record)
        self.reload()

    def taken(self, domains, except_id=None):
        for host_id, record in self.hosts.items():
            if host_id == except_id:
                continue
            for domain in domains:
                if domain in record['domain_names']:
                    return domain
        return None

    @staticmethod
    def clean_ssl(data):
        if not data.get('certificate_id'):
            data['ssl_forced'] = False
            data['http2_support'] = False
        if not data.get('ssl_forced'):
            data['hsts_enabled'] = False
        if not data.get('hsts_enabled'):
            data['hsts_subdomains'] = False
        return data

    def expand_host(self, record):
        out = copy.deepcopy(record)
        cert = self.certs.get(record.get('certificate_id'))
        out['certificate'] = dict(copy.deepcopy(cert), meta={}) if cert else None
        acl = self.acls.get(record.get('access_list_id'))
        out['access_list'] = self.public_acl(acl) if acl else None
        out['owner'] = {'id': 1, 'email': next(iter(self.users), ''), 'name': 'Administrator'}
        return out

    def public_acl(self, acl):
        out = copy.deepcopy(acl)
        out['items'] = [
            {'username': u, 'password': p[:1] + '*' * (len(p) - 1)}
            for (acl_id, u), p in sorted(self.acl_passwords.items())
            if acl_id == acl['id']
        ]
        return out

    # -- endpoints ------------------------------------------------------------

    def handle(self, method, path, query, body, files, authorized):
        if path in ('/api', '/api/') and method == 'GET':
            return 200, {'status': 'OK', 'setup': self.setup, 'version': {'major': 2, 'minor': 15, 'revision': 1}}
        if path == '/api/tokens' and method == 'POST':
            user = self.users.get(body.get('identity'))
            if user is None:
                raise APIError(401, 'No relevant user found')
            if user['password'] != body.get('secret'):
                raise APIError(401, 'Invalid password')
            token = f'tok-{len(self.tokens) + 1}-eyJhbGciOiJSUzI1NiJ9'
            self.tokens.add(token)
            self.last_token = token
            return 200, {'token': token, 'expires': '2026-12-01T00:00:00.000Z'}
        if path == '/api/tokens' and method == 'GET':
            # A token for a valid one (NPM 2.15 answers 500 to a token it cannot verify).
            if not authorized:
                raise APIError(500, 'Internal Error')
            expiry = urllib.parse.parse_qs(query).get('expiry', ['1d'])[0]
            if not re.fullmatch(r'[0-9]+(y|Q|M|w|d|h|m|s|ms)', expiry):
                raise APIError(400, f'Invalid expiry time: {expiry}')
            token = f'tok-{len(self.tokens) + 1}-{expiry}-eyJhbGciOiJSUzI1NiJ9'
            self.tokens.add(token)
            self.last_token = token
            return 200, {'token': token, 'expires': '2026-12-01T00:15:00.000Z'}
        if path == '/api/users' and method == 'POST':
            if self.setup and not authorized:
                raise APIError(403, 'Permission Denied')
            auth = body.get('auth') or {}
            email = body.get('email')
            if not email or auth.get('type') != 'password' or not auth.get('secret'):
                raise APIError(400, 'data must have required property email')
            self.users[email] = {'id': len(self.users) + 1, 'email': email, 'password': auth['secret']}
            return 201, {'id': self.users[email]['id'], 'email': email, 'roles': ['admin']}
        if not authorized:
            raise APIError(401, 'Permission Denied')
        match = re.fullmatch(r'/api/nginx/proxy-hosts(?:/(\d+))?(?:/(enable|disable))?', path)
        if match:
            return self.proxy_hosts(method, match.group(1) and int(match.group(1)), match.group(2), body)
        match = re.fullmatch(r'/api/nginx/certificates(?:/(\d+))?(?:/(upload))?', path)
        if match:
            return self.certificates(method, match.group(1) and int(match.group(1)), match.group(2), body, files)
        match = re.fullmatch(r'/api/nginx/access-lists(?:/(\d+))?', path)
        if match:
            return self.access_lists(method, match.group(1) and int(match.group(1)), body)
        raise APIError(404, 'Not Found')

    def proxy_hosts(self, method, host_id, action, body):
        if host_id is None:
            if method == 'GET':
                return 200, [self.expand_host(self.hosts[i]) for i in sorted(self.hosts)]
            if method == 'POST':
                self.check_fields(body)
                required = ('domain_names', 'forward_scheme', 'forward_host', 'forward_port')
                missing = [f for f in required if f not in body]
                if missing:
                    raise APIError(400, f'data must have required property \'{missing[0]}\'')
                domain = self.taken(body['domain_names'])
                if domain:
                    raise APIError(400, f'{domain} is already in use')
                new_id = self.next_id('host')
                record = {
                    'id': new_id,
                    'created_on': '2026-11-30 12:00:00',
                    'modified_on': '2026-11-30 12:00:00',
                    'owner_user_id': 1,
                    'certificate_id': 0,
                    'access_list_id': 0,
                    'advanced_config': '',
                    'locations': [],
                    'enabled': True,
                    'meta': {},
                    **dict.fromkeys(BOOLS, False),
                }
                record.update(copy.deepcopy(body))
                self.hosts[new_id] = self.clean_ssl(record)
                self.configure(new_id)
                return 201, self.expand_host(self.hosts[new_id])
            raise APIError(405, 'Method Not Allowed')
        if host_id not in self.hosts:
            raise APIError(404, f'Not Found - {host_id}')
        record = self.hosts[host_id]
        if action:
            if method != 'POST':
                raise APIError(405, 'Method Not Allowed')
            want = action == 'enable'
            if record['enabled'] == want:
                raise APIError(400, f'Host is already {action}d')
            record['enabled'] = want
            self.configure(host_id)
            return 200, True
        if method == 'GET':
            return 200, self.expand_host(record)
        if method == 'PUT':
            self.check_fields(body)
            if 'domain_names' in body:
                domain = self.taken(body['domain_names'], except_id=host_id)
                if domain:
                    raise APIError(400, f'{domain} is already in use')
            record.update(copy.deepcopy(body))
            self.clean_ssl(record)
            record['modified_on'] = '2026-11-30 12:30:00'
            if record['enabled']:
                self.configure(host_id)
            return 200, self.expand_host(record)
        if method == 'DELETE':
            del self.hosts[host_id]
            self.served.pop(host_id, None)
            self.reload()
            return 200, True
        raise APIError(405, 'Method Not Allowed')

    @staticmethod
    def check_fields(body):
        extra = sorted(set(body) - HOST_FIELDS)
        if extra:
            raise APIError(400, f'data must NOT have additional properties ({extra[0]})')

    def certificates(self, method, cert_id, action, body, files):
        if cert_id is None:
            if method == 'GET':
                return 200, [copy.deepcopy(self.certs[i]) for i in sorted(self.certs)]
            if method == 'POST' and body.get('provider') == 'letsencrypt':
                return self.request_letsencrypt(body)
            if method == 'POST':
                new_id = self.next_id('cert')
                self.certs[new_id] = {
                    'id': new_id,
                    'provider': body.get('provider'),
                    'nice_name': body.get('nice_name'),
                    'domain_names': [],
                    'expires_on': None,
                    'meta': {},
                }
                return 201, copy.deepcopy(self.certs[new_id])
            raise APIError(405, 'Method Not Allowed')
        cert = self.certs.get(cert_id)
        if cert is None:
            raise APIError(404, f'Not Found - {cert_id}')
        if action == 'upload' and method == 'POST':
            if cert['provider'] != 'other':
                raise APIError(400, 'Cannot upload certificates for this type of provider')
            if 'certificate' not in files:
                raise APIError(400, 'Certificate file was not provided')
            for name in ('certificate', 'certificate_key', 'intermediate_certificate'):
                if name in files:
                    cert['meta'][name] = files[name]
            cert['expires_on'] = '2027-11-30 00:00:00'
            # NPM writes the files but does not reload nginx.
            return 200, dict(cert['meta'])
        raise APIError(405, 'Method Not Allowed')

    def request_letsencrypt(self, body):
        """NPM's POST of a Let's Encrypt certificate: certbot runs before the answer; a failure keeps nothing."""
        extra = sorted(set(body) - {'provider', 'nice_name', 'domain_names', 'meta'})
        if extra:
            raise APIError(400, f'data must NOT have additional properties ({extra[0]})')
        meta = body.get('meta') or {}
        domains = body.get('domain_names') or []
        if not domains:
            raise APIError(400, 'data/domain_names must NOT have fewer than 1 items')
        if not meta.get('letsencrypt_email') or meta.get('letsencrypt_agree') is not True:
            raise APIError(400, 'data/meta must have letsencrypt_email and letsencrypt_agree')
        if meta.get('key_type', 'rsa') not in ('rsa', 'ecdsa'):
            raise APIError(400, 'data/meta/key_type must be equal to one of the allowed values')
        if not self.letsencrypt_reachable:
            raise APIError(
                500,
                LETSENCRYPT_OFFLINE_ERROR.format(
                    id=self._ids['cert'] + 1, email=meta['letsencrypt_email'], domains=','.join(domains)
                ),
            )
        new_id = self.next_id('cert')
        self.certs[new_id] = {
            'id': new_id,
            'provider': 'letsencrypt',
            'nice_name': body.get('nice_name'),
            'domain_names': list(domains),
            'expires_on': '2027-02-28 12:00:00',
            'meta': {
                'letsencrypt_email': meta['letsencrypt_email'],
                'letsencrypt_agree': True,
                'dns_challenge': bool(meta.get('dns_challenge')),
                'key_type': meta.get('key_type', 'rsa'),
            },
        }
        self.reload()  # NPM reloads nginx around the HTTP-01 challenge
        return 201, copy.deepcopy(self.certs[new_id])

    def access_lists(self, method, acl_id, body):
        if acl_id is None:
            if method == 'GET':
                return 200, [self.public_acl(self.acls[i]) for i in sorted(self.acls)]
            if method == 'POST':
                new_id = self.next_id('acl')
                self.acls[new_id] = {
                    'id': new_id,
                    'name': body['name'],
                    'satisfy_any': bool(body.get('satisfy_any')),
                    'pass_auth': bool(body.get('pass_auth')),
                    'clients': [dict(c) for c in body.get('clients') or []],
                    'meta': {},
                }
                for item in body.get('items') or []:
                    self.acl_passwords[(new_id, item['username'])] = item['password']
                return 201, self.public_acl(self.acls[new_id])
            raise APIError(405, 'Method Not Allowed')
        acl = self.acls.get(acl_id)
        if acl is None:
            raise APIError(404, f'Not Found - {acl_id}')
        if method != 'PUT':
            raise APIError(405, 'Method Not Allowed')
        if body.get('name'):
            acl.update(
                name=body['name'], satisfy_any=bool(body.get('satisfy_any')), pass_auth=bool(body.get('pass_auth'))
            )
        if body.get('items') is not None:
            keep = {i['username'] for i in body['items'] if not i.get('password')}
            for key in [k for k in self.acl_passwords if k[0] == acl_id and k[1] not in keep]:
                del self.acl_passwords[key]
            for item in body['items']:
                if item.get('password'):
                    self.acl_passwords[(acl_id, item['username'])] = item['password']
        if body.get('clients') is not None:
            acl['clients'] = [dict(c) for c in body['clients'] if c.get('address')]
        if any(h['access_list_id'] == acl_id for h in self.hosts.values()):
            self.reload()
        return 200, self.public_acl(acl)

    # -- HTTP ---------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            disable_nagle_algorithm = True  # headers and body go out at once (no delayed-ACK stall)

            def _serve(self):
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                ctype = self.headers.get('Content-Type') or ''
                body, files = {}, {}
                if ctype.startswith('multipart/form-data'):
                    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        b'Content-Type: ' + ctype.encode() + b'\r\n\r\n' + raw
                    )
                    for part in message.iter_parts():
                        name = part.get_param('name', header='content-disposition')
                        files[name] = part.get_payload(decode=True).decode()
                elif raw:
                    body = json.loads(raw)
                auth = self.headers.get('Authorization') or ''
                authorized = auth.startswith('Bearer ') and auth[len('Bearer ') :] in fake.tokens
                with fake.mutex:
                    fake.requests.append((self.command, parts.path, authorized))
                    try:
                        status, payload = fake.handle(self.command, parts.path, parts.query, body, files, authorized)
                    except APIError as exc:
                        status, payload = exc.status, {'error': {'code': exc.status, 'message': exc.message}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json; charset=utf-8')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler


class FakeNPMPublic(LocalHTTPService):
    """NPM's public side (port 80) for a :class:`FakeNPM`: the loaded target of the ``Host``, or the default site."""

    thread_name = 'fake-npm-public'

    def __init__(self, npm):
        super().__init__()
        self.npm = npm

    def _handler(self):
        npm = self.npm

        class Handler(QuietHandler):
            disable_nagle_algorithm = True

            def do_GET(self):
                domain = (self.headers.get('Host') or '').split(':')[0].lower()
                with npm.mutex:
                    # How many admin API requests came before this one, to tell the order of both.
                    npm.public_requests.append((len(npm.requests), domain))
                record = npm.public_target(domain)
                if record is None:
                    data, upstream = b'Default Site', None
                else:
                    upstream = f'{record["forward_host"]}:{record["forward_port"]}'
                    data = f'served by {upstream}\n'.encode()
                self.send_response(200)
                if upstream:
                    self.send_header('X-Upstream', upstream)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
