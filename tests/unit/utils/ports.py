# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""TCP ports on 127.0.0.1 for unit tests: one nothing listens on, and one that accepts connections."""

from __future__ import annotations

import contextlib
import socket


def closed_port():
    """A port on 127.0.0.1 that was just free and that nothing listens on (connections are refused)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextlib.contextmanager
def listening_port(backlog=8):
    """A port on 127.0.0.1 that accepts TCP connections (never answered) while the block runs."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(backlog)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
