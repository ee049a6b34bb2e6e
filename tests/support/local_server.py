# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A threaded HTTP(S) server on 127.0.0.1 with an ephemeral port, the base of the tests' fake services."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler speaking HTTP/1.1 (keep-alive) that logs nothing."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass


class LocalHTTPService:
    """Subclasses implement ``_handler()`` (returns a request handler class, e.g. a ``QuietHandler``).

    Use ``with Service(...) as svc:`` or ``svc = Service(...).start()`` ... ``svc.stop()``.
    ``port`` (and so ``host`` and ``url``) stays set after ``stop()``.

    :param tls_context: a server-side SSLContext to serve HTTPS, or None for HTTP.
    """

    thread_name = 'local-http-service'
    poll_interval = 0.1

    def __init__(self, tls_context=None):
        self.tls_context = tls_context
        self.port = None
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    def _handler(self):
        raise NotImplementedError

    @property
    def host(self):
        return f'127.0.0.1:{self.port}'

    @property
    def scheme(self):
        return 'https' if self.tls_context is not None else 'http'

    @property
    def url(self):
        return f'{self.scheme}://{self.host}'

    def start(self):
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        if self.tls_context is not None:
            self._server.socket = self.tls_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={'poll_interval': self.poll_interval},
            daemon=True,
            name=self.thread_name,
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
