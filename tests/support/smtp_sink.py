# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A local SMTP sink on 127.0.0.1 with an ephemeral port: enough of RFC 5321 (EHLO, AUTH PLAIN, MAIL, RCPT,
DATA, RSET, NOOP, QUIT) for Python's smtplib, keeping every accepted mail in ``messages``.

``SMTPSink().start()`` ... ``.stop()``, or ``with SMTPSink() as sink:``. Each message is
``{'from', 'to', 'data', 'auth'}`` (``data`` the raw message text, ``auth`` the decoded AUTH PLAIN
``(user, password)`` or None). No TLS: the notify tests use ``security: none``.
"""

from __future__ import annotations

import base64
import socketserver
import threading


class _Handler(socketserver.StreamRequestHandler):
    def _say(self, line):
        self.wfile.write(line.encode('ascii') + b'\r\n')
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        sender, rcpts, auth = None, [], None
        self._say('220 sink.test ESMTP ready')
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            verb = line.split(' ', 1)[0].upper()
            arg = line[len(verb) :].strip()
            if verb == 'EHLO':
                self._say('250-sink.test')
                self._say('250-AUTH PLAIN')
                self._say('250 8BITMIME')
            elif verb == 'HELO':
                self._say('250 sink.test')
            elif verb == 'AUTH':
                parts = arg.split(' ', 1)
                if parts[0].upper() != 'PLAIN' or len(parts) != 2:
                    self._say('504 only AUTH PLAIN with an initial response')
                    continue
                _authzid, user, password = base64.b64decode(parts[1]).decode('utf-8').split('\0')
                if sink.password is not None and password != sink.password:
                    self._say('535 authentication failed')
                    continue
                auth = (user, password)
                self._say('235 authenticated')
            elif verb == 'MAIL':
                sender, rcpts = arg.split(':', 1)[1].strip().split(' ')[0].strip('<>'), []
                self._say('250 ok')
            elif verb == 'RCPT':
                rcpts.append(arg.split(':', 1)[1].strip().strip('<>'))
                self._say('250 ok')
            elif verb == 'DATA':
                self._say('354 end with .')
                lines = []
                while True:
                    data = self.rfile.readline()
                    if not data or data in (b'.\r\n', b'.\n'):
                        break
                    lines.append(data.decode('utf-8', 'replace'))
                with sink.lock:
                    sink.messages.append({'from': sender, 'to': rcpts, 'data': ''.join(lines), 'auth': auth})
                self._say('250 queued')
            elif verb in ('RSET', 'NOOP'):
                self._say('250 ok')
            elif verb == 'QUIT':
                self._say('221 bye')
                return
            else:
                self._say('502 not implemented')


class SMTPSink:
    """:param password: the AUTH PLAIN password it accepts (None: any)."""

    def __init__(self, password=None):
        self.password = password
        self.messages = []
        self.lock = threading.Lock()
        self.port = None
        self._server = None
        self._thread = None

    def start(self):
        self._server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), _Handler)
        self._server.daemon_threads = True
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)
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
