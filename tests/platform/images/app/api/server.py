# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stand-in for the avatar-mgmt API (Node/Express on 3000).

Interfaces the collection touches:
  GET /health       -> 200 text "ok" when Directus answers {"status":"ok"}; else 503 text reason
  GET /api/version  -> JSON {frontend:{...}, backend:{...}, system:{...}, generatedAt}
Everything else -> 404 JSON.
Only environment variable NAMES are ever logged, never values.
"""

import hashlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "v0.0.0")
HEALTHY = os.environ.get("APP_HEALTHY", "true").lower() in ("1", "true", "yes")
# A crash-looping release: the process exits this many seconds after it started (0: never).
CRASH_AFTER = float(os.environ.get("APP_CRASH_AFTER") or 0)
PORT = int(os.environ.get("PORT") or 3000)
DIRECTUS_URL = (os.environ.get("DIRECTUS_URL") or "http://directus:8055").rstrip("/")
HEALTH_TIMEOUT = float(os.environ.get("HEALTH_TIMEOUT", "2"))
START = time.time()


def iso(ts=None):
    dt = datetime.fromtimestamp(ts if ts is not None else time.time(), tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_info():
    commit = os.environ.get("APP_COMMIT_HASH") or hashlib.sha1(VERSION.encode()).hexdigest()[:7]
    return {
        "version": VERSION,
        "commitHash": commit,
        "buildTime": os.environ.get("APP_BUILD_TIME") or "2025-01-01T00:00:00.000Z",
        "branch": os.environ.get("APP_BRANCH") or "main",
        "commitDate": os.environ.get("APP_COMMIT_DATE") or "2025-01-01T00:00:00.000Z",
    }


def log(msg):
    sys.stdout.write(f"{iso()} {msg}\n")
    sys.stdout.flush()


def directus_health():
    """Return (ok, reason)."""
    try:
        with urllib.request.urlopen(DIRECTUS_URL + "/server/health", timeout=HEALTH_TIMEOUT) as r:
            body = r.read(65536)
    except urllib.error.HTTPError as e:
        return False, f"directus unhealthy (HTTP {e.code:d})"
    except Exception as e:  # connection refused, DNS, timeout
        return False, f"directus unreachable ({type(e).__name__})"
    try:
        status = json.loads(body).get("status")
    except Exception:
        return False, "directus answered non-JSON"
    if status != "ok":
        return False, f"directus status {status}"
    return True, "ok"


class Handler(BaseHTTPRequestHandler):
    server_version = "avatar-api-standin"
    sys_version = ""

    def log_message(self, fmt, *args):
        log(f"{self.address_string()} {fmt % args}")

    def send(self, code, body, ctype):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, code, obj):
        self.send(code, json.dumps(obj), "application/json; charset=utf-8")

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            if not HEALTHY:
                return self.send(503, "starting", "text/plain; charset=utf-8")
            ok, reason = directus_health()
            return self.send(200 if ok else 503, reason, "text/plain; charset=utf-8")
        if path == "/api/version":
            now = time.time()
            info = build_info()
            return self.send_json(
                200,
                {
                    "frontend": dict(info),
                    "backend": dict(info),
                    "system": {
                        "deployTime": iso(START),
                        "environment": os.environ.get("NODE_ENV", "development"),
                        "uptime": int(now - START),
                        "lastCheck": iso(now),
                    },
                    "generatedAt": iso(now),
                },
            )
        return self.send_json(404, {"error": "Not Found", "path": path})

    do_HEAD = do_GET


def main():
    log(f"avatar-api stand-in {VERSION} (healthy={HEALTHY}) on port {PORT:d}; directus={DIRECTUS_URL}")
    log("environment variable names: {}".format(", ".join(sorted(os.environ))))
    srv = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    srv.daemon_threads = True
    if CRASH_AFTER > 0:

        def crash():
            time.sleep(CRASH_AFTER)
            log(f"crashing after {CRASH_AFTER:g}s (APP_CRASH_AFTER)")
            os._exit(1)

        threading.Thread(target=crash, daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    main()
