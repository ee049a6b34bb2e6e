# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A local HTTP receiver of webhooks: every POST is kept in ``received`` as ``{'path', 'headers', 'body'}``.

A path that starts with ``/status/<code>`` is answered with that code (to test error answers); anything
else with 200.
"""

from __future__ import annotations

import threading

from ansible_collections.avatar_mgmt.ops.tests.support.local_server import LocalHTTPService, QuietHandler


class WebhookReceiver(LocalHTTPService):
    thread_name = 'webhook-receiver'

    def __init__(self):
        super().__init__()
        self.received = []
        self.received_lock = threading.Lock()

    def _handler(self):
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                data = self.rfile.read(length)
                with receiver.received_lock:
                    receiver.received.append({'path': self.path, 'headers': dict(self.headers), 'body': data})
                code = 200
                if self.path.startswith('/status/'):
                    code = int(self.path.split('/')[2])
                self.send_response(code)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

        return Handler
