# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker helpers of the integration tests: real Distribution registries in containers.

Everything here is bounded (timeouts on every docker call, bounded wait loops)
and touches only this suite's own containers, volume and image tags.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import subprocess
import time

import yaml

REGISTRY_IMAGE = 'avatar-test/registry:2.8'
BASE_IMAGE = 'avatar-test/debian:bookworm'
REGISTRY_PORT = 5000
DOCKER_V2_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'

_PUSHED_RE = re.compile(
    r'^(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]*): digest: (?P<digest>sha256:[0-9a-f]{64}) size: \d+$', re.MULTILINE
)


class DockerError(RuntimeError):
    pass


def docker(*args, timeout=120, check=True, input_text=None, env=None):
    """Run ``docker ARGS``; return the CompletedProcess (text)."""
    try:
        proc = subprocess.run(
            ['docker', *args], capture_output=True, text=True, timeout=timeout, input=input_text, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f'docker {" ".join(args[:3])} timed out after {timeout}s') from exc
    if check and proc.returncode != 0:
        raise DockerError(f'docker {" ".join(args[:4])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}')
    return proc


def unavailable_reason():
    """None when a docker engine answers and the registry and base images exist, else why not."""
    if shutil.which('docker') is None:
        return 'no docker CLI on PATH'
    try:
        proc = docker('version', '--format', '{{.Server.Version}}', timeout=15, check=False)
    except DockerError as exc:
        return str(exc)
    if proc.returncode != 0:
        return f'no docker engine answers: {proc.stderr.strip()[:200]}'
    for image in (REGISTRY_IMAGE, BASE_IMAGE):
        if docker('image', 'inspect', image, timeout=15, check=False).returncode != 0:
            return f'image {image} is missing (build it with: bash tests/platform/platform.sh images)'
    if shutil.which('htpasswd') is None:
        return 'htpasswd (apache2-utils) is needed to write the bcrypt htpasswd file of the registry'
    return None


def htpasswd_line(user, password):
    proc = subprocess.run(['htpasswd', '-Bbn', user, password], capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip() + '\n'


def registry_config(secret, auth, read_only=False):
    """The YAML configuration of a registry: TLS on ``REGISTRY_PORT``, filesystem storage, ``auth`` as given.

    ``read_only``: refuse writes (and purge no uploads) on storage another registry writes.
    """
    storage = {'filesystem': {'rootdirectory': '/var/lib/registry'}}
    if read_only:
        storage['maintenance'] = {'uploadpurging': {'enabled': False}, 'readonly': {'enabled': True}}
    else:
        storage['delete'] = {'enabled': True}
    config = {
        'version': 0.1,
        'log': {'level': 'warn', 'accesslog': {'disabled': True}},
        'storage': storage,
        'http': {
            'addr': f':{REGISTRY_PORT}',
            'secret': secret,
            'tls': {'certificate': '/conf/server.crt', 'key': '/conf/server.key'},
        },
        'auth': auth,
    }
    return yaml.safe_dump(config, sort_keys=False)


def basic_config(secret):
    return registry_config(secret, {'htpasswd': {'realm': 'itest-basic', 'path': '/conf/htpasswd'}})


def token_config(secret, realm, service, issuer):
    # Read-only: it shares the storage the basic registry writes (seeding happens there).
    auth = {'token': {'realm': realm, 'service': service, 'issuer': issuer, 'rootcertbundle': '/conf/token-signer.crt'}}
    return registry_config(secret, auth, read_only=True)


def remove_container(name):
    docker('rm', '-f', '-v', name, timeout=60, check=False)


def run_registry(name, conf_dir, config_file, volume, read_only=False):
    """Start a registry container published on an ephemeral 127.0.0.1 port; return ``127.0.0.1:PORT``."""
    remove_container(name)  # a leftover of an interrupted run of this suite
    docker(
        'run',
        '-d',
        '--name',
        name,
        '--label',
        'avatar-test.itest=registry',
        '-p',
        f'127.0.0.1::{REGISTRY_PORT}',
        '-v',
        f'{volume}:/var/lib/registry' + (':ro' if read_only else ''),
        '-v',
        f'{conf_dir}:/conf:ro',
        REGISTRY_IMAGE,
        f'/conf/{config_file}',
        timeout=60,
    )
    out = docker('port', name, f'{REGISTRY_PORT}/tcp', timeout=15).stdout.split()
    host = next(line for line in out if line.startswith('127.0.0.1:'))
    return host


def wait_ready(name, host, ssl_context, timeout=30.0):
    """Wait (bounded) until ``GET /v2/`` answers 401 (auth required) over TLS."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        conn = http.client.HTTPSConnection(host, timeout=3, context=ssl_context)
        try:
            conn.request('GET', '/v2/')
            status = conn.getresponse().status
            if status == 401:
                return
            last = f'HTTP {status}'
        except OSError as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    logs = docker('logs', '--tail', '30', name, timeout=15, check=False)
    raise DockerError(
        f'registry {name} on {host} not ready after {timeout}s ({last}): {(logs.stdout + logs.stderr)[-1500:]}'
    )


def build_label_image(ref, labels):
    """``FROM avatar-test/debian:bookworm`` + ``LABEL``: instant, shares every layer."""
    label = ' '.join(f'{key}={json.dumps(value)}' for key, value in sorted(labels.items()))
    docker('build', '-q', '-t', ref, '-', input_text=f'FROM {BASE_IMAGE}\nLABEL {label}\n', timeout=120)


def push_all_tags(repo_ref, docker_config):
    """``docker push --all-tags``; return ``{tag: digest}`` as docker printed it."""
    proc = docker('--config', docker_config, 'push', '--all-tags', repo_ref, timeout=300)
    return {m.group('tag'): m.group('digest') for m in _PUSHED_RE.finditer(proc.stdout)}


def basic_auth(user, password):
    return 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode('ascii')


def put_tags(host, ssl_context, auth, name, source_tag, new_tags, timeout=10):
    """Tag an existing manifest under many tags with the registry API (GET once, PUT each tag)."""
    conn = http.client.HTTPSConnection(host, timeout=timeout, context=ssl_context)
    try:
        # Right after a push, a cold registry sometimes answers 500 for a moment: a few
        # bounded retries keep the seeding from failing on that.
        for attempt in range(6):
            conn.request(
                'GET',
                f'/v2/{name}/manifests/{source_tag}',
                headers={'Authorization': auth, 'Accept': DOCKER_V2_MANIFEST},
            )
            resp = conn.getresponse()
            body = resp.read()
            if resp.status < 500 or attempt == 5:
                break
            time.sleep(0.5 * (attempt + 1))
        if resp.status != 200:
            raise DockerError(f'GET manifest {name}:{source_tag}: HTTP {resp.status}')
        media_type = resp.getheader('Content-Type')
        digest = resp.getheader('Docker-Content-Digest')
        for tag in new_tags:
            conn.request(
                'PUT',
                f'/v2/{name}/manifests/{tag}',
                body=body,
                headers={'Authorization': auth, 'Content-Type': media_type},
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 201:
                raise DockerError(f'PUT manifest {name}:{tag}: HTTP {resp.status}')
    finally:
        conn.close()
    return digest


OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'


def _call(conn, method, path, auth, body=None, headers=None):
    send = {'Authorization': auth}
    send.update(headers or {})
    conn.request(method, path, body=body, headers=send)
    resp = conn.getresponse()
    return resp.status, resp, resp.read()


def put_oci_index(host, ssl_context, auth, source, target, tags, timeout=10):
    """Publish ``source`` (``name:tag`` of a pushed Docker image) in repository ``target`` the way
    ``docker buildx`` / GHCR serve it: an OCI image manifest under an OCI image index.

    ``tags``: ``{tag: 'index' | 'manifest'}``.  Returns ``{'index': (digest, body), 'manifest': (digest, body)}``.
    """
    import hashlib

    src_name, src_tag = source.rsplit(':', 1)
    conn = http.client.HTTPSConnection(host, timeout=timeout, context=ssl_context)
    try:
        status, _resp, body = _call(
            conn, 'GET', f'/v2/{src_name}/manifests/{src_tag}', auth, headers={'Accept': DOCKER_V2_MANIFEST}
        )
        if status != 200:
            raise DockerError(f'GET manifest {source}: HTTP {status}')
        doc = json.loads(body)
        blobs = [doc['config']['digest']] + [layer['digest'] for layer in doc['layers']]
        for digest in blobs:  # cross-repository mount of the blobs
            status, _resp, _body = _call(
                conn, 'POST', f'/v2/{target}/blobs/uploads/?mount={digest}&from={src_name}', auth, body=b''
            )
            if status != 201:
                raise DockerError(f'mount {digest} into {target}: HTTP {status}')
        manifest = {
            'schemaVersion': 2,
            'mediaType': OCI_MANIFEST,
            'config': dict(doc['config'], mediaType='application/vnd.oci.image.config.v1+json'),
            'layers': [dict(layer, mediaType='application/vnd.oci.image.layer.v1.tar+gzip') for layer in doc['layers']],
        }
        manifest_body = json.dumps(manifest, indent=2).encode()
        manifest_digest = 'sha256:' + hashlib.sha256(manifest_body).hexdigest()
        index = {
            'schemaVersion': 2,
            'mediaType': OCI_INDEX,
            'manifests': [
                {
                    'mediaType': OCI_MANIFEST,
                    'digest': manifest_digest,
                    'size': len(manifest_body),
                    'platform': {'architecture': 'amd64', 'os': 'linux'},
                }
            ],
        }
        index_body = json.dumps(index, indent=2).encode()
        index_digest = 'sha256:' + hashlib.sha256(index_body).hexdigest()
        # The image manifest first (by digest): the index refers to it.
        docs = {
            'manifest': (OCI_MANIFEST, manifest_digest, manifest_body),
            'index': (OCI_INDEX, index_digest, index_body),
        }
        for reference, kind in [(manifest_digest, 'manifest'), *tags.items()]:
            media_type, digest, payload = docs[kind]
            status, resp, _body = _call(
                conn,
                'PUT',
                f'/v2/{target}/manifests/{reference}',
                auth,
                body=payload,
                headers={'Content-Type': media_type},
            )
            if status != 201 or resp.getheader('Docker-Content-Digest') != digest:
                raise DockerError(f'PUT {kind} {target}:{reference}: HTTP {status}')
    finally:
        conn.close()
    return {'index': (index_digest, index_body), 'manifest': (manifest_digest, manifest_body)}
