# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A front on 127.0.0.1 that pages a real registry's tag lists the way GHCR does.

Distribution 2.8 ignores ``n`` and ``last`` on ``GET /v2/<name>/tags/list`` and
always answers every tag.  This front forwards every request to the real
registry (method, path, ``Authorization`` and ``Accept``; the answer's status,
``WWW-Authenticate`` challenge, digest and content headers come back
unchanged), and for a successful tag list it serves one page: ``n`` tags
(default 100) after ``last``, with
``Link: </v2/<name>/tags/list?last=X&n=N>; rel="next"`` while tags remain.

The token realm in a Bearer challenge is an absolute URL of the issuer, which
the client reaches directly, so it needs no rewriting.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

from ansible_collections.avatar_mgmt.ops.tests.support.local_server import LocalHTTPService, QuietHandler

_TAGS_RE = re.compile(r'/v2/(?P<name>.+)/tags/list\Z')
_FORWARD_REQUEST = ('Authorization', 'Accept', 'User-Agent')
_FORWARD_RESPONSE = (
    'WWW-Authenticate',
    'Docker-Content-Digest',
    'Content-Type',
    'Docker-Distribution-Api-Version',
    'Retry-After',
)
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class PagingProxy(LocalHTTPService):
    """``with PagingProxy('127.0.0.1:PORT', upstream_context, tls_context) as front:``.

    ``front.host`` is ``127.0.0.1:PORT`` of the front; ``front.log`` lists
    ``(method, path with query, status, tags served or None)`` for every request.
    """

    thread_name = 'paging-proxy'

    def __init__(self, upstream, upstream_context, tls_context=None, timeout=10):
        super().__init__(tls_context)
        self.upstream = upstream
        self.upstream_context = upstream_context
        self.timeout = timeout
        self.log = []

    def reset(self):
        with self._lock:
            self.log = []

    def _forward(self, method, path, headers):
        conn = http.client.HTTPSConnection(self.upstream, timeout=self.timeout, context=self.upstream_context)
        try:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, resp.getheaders(), body
        finally:
            conn.close()

    @staticmethod
    def page(tags, query):
        """Return (page, next last or None, n) for a full tag list and the request's query."""
        try:
            size = int((query.get('n') or [DEFAULT_PAGE])[0])
        except ValueError:
            size = DEFAULT_PAGE
        size = max(1, min(size, MAX_PAGE))
        last = (query.get('last') or [None])[0]
        start = 0
        if last is not None:
            start = tags.index(last) + 1 if last in tags else sum(1 for tag in tags if tag <= last)
        chunk = tags[start : start + size]
        more = start + size < len(tags)
        return chunk, (chunk[-1] if more and chunk else None), size

    def _handler(self):
        front = self

        class Handler(QuietHandler):
            def _serve(self, method):
                url = urllib.parse.urlsplit(self.path)
                match = _TAGS_RE.match(url.path)
                headers = {name: self.headers[name] for name in _FORWARD_REQUEST if self.headers.get(name)}
                # Tag lists: ask upstream for everything (it ignores n/last anyway).
                upstream_path = url.path if match else self.path
                status, up_headers, body = front._forward(method, upstream_path, headers)
                out = [
                    (name, value)
                    for name, value in up_headers
                    if name.title() in {h.title() for h in _FORWARD_RESPONSE}
                ]
                served = None
                if match and method == 'GET' and status == 200:
                    doc = json.loads(body.decode('utf-8'))
                    tags = doc.get('tags') or []
                    chunk, next_last, size = front.page(tags, urllib.parse.parse_qs(url.query))
                    served = chunk
                    body = json.dumps({'name': doc.get('name'), 'tags': chunk}).encode()
                    out = [(n, v) for n, v in out if n.lower() != 'content-type']
                    out.append(('Content-Type', 'application/json'))
                    if next_last is not None:
                        query = urllib.parse.urlencode({'last': next_last, 'n': size})
                        out.append(('Link', f'</v2/{match.group("name")}/tags/list?{query}>; rel="next"'))
                with front._lock:
                    front.log.append((method, self.path, status, served))
                self.send_response(status)
                for name, value in out:
                    self.send_header(name, value)
                if method == 'HEAD':
                    length = {n.lower(): v for n, v in up_headers}.get('content-length', '0')
                    self.send_header('Content-Length', length)
                    self.end_headers()
                    return
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._serve('GET')

            def do_HEAD(self):
                self._serve('HEAD')

        return Handler
