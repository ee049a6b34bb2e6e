# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stand-in for directus/directus:11.8.0 on port 8055.

  GET  /server/health       {"status":"ok"} when PostgreSQL answers SELECT 1, else 503 {"status":"error",...}
  GET  /server/ping         "pong"
  POST /items/avatars       {"name": ...} -> {"data": row}          (Bearer ADMIN_TOKEN)
  GET  /items/avatars       {"data": [rows]}                         (Bearer ADMIN_TOKEN)
  GET  /items/avatars/<id>  {"data": row}                            (Bearer ADMIN_TOKEN)
  POST /files?filename=N    raw body -> /directus/uploads/N          (Bearer ADMIN_TOKEN)
  GET  /assets/N            bytes of /directus/uploads/N             (Bearer ADMIN_TOKEN)
Secret values (DB_PASSWORD, KEY, SECRET, ADMIN_*) are never logged.
"""

import hmac
import json
import os
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg2
import psycopg2.extras

PORT = int(os.environ.get("PORT") or 8055)
UPLOADS = os.environ.get("STORAGE_LOCAL_ROOT") or "/directus/uploads"
MAX_UPLOAD = 64 * 1024 * 1024
_schema_ready = False
_schema_lock = threading.Lock()


def log(msg):
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sys.stdout.write(f"{ts} {msg}\n")
    sys.stdout.flush()


def connect():
    return psycopg2.connect(
        host=os.environ.get("DB_HOST", "db"),
        port=int(os.environ.get("DB_PORT") or 5432),
        dbname=os.environ.get("DB_DATABASE", "directus"),
        user=os.environ.get("DB_USER", "directus"),
        password=os.environ.get("DB_PASSWORD", ""),
        connect_timeout=int(os.environ.get("DB_CONNECT_TIMEOUT", "2")),
        application_name="directus-standin",
    )


def ensure_schema(conn):
    global _schema_ready
    if _schema_ready:
        return
    with _schema_lock:
        if _schema_ready:
            return
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS avatars ("
                " id serial PRIMARY KEY,"
                " name text NOT NULL,"
                " created_at timestamptz DEFAULT now())"
            )
        conn.commit()
        _schema_ready = True
        log("schema ready (table avatars)")


def db():
    conn = connect()
    try:
        ensure_schema(conn)
    except Exception:
        conn.close()
        raise
    return conn


def row_json(row):
    out = {}
    for k, v in row.items():
        out[k] = v.isoformat() if hasattr(v, "isoformat") else v
    return out


def db_error_reason(e):
    # The first line of a psycopg2 error names the problem (host, auth, db) without secrets.
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


class Handler(BaseHTTPRequestHandler):
    server_version = "directus-standin/11.8.0"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log(f"{self.address_string()} {fmt % args}")

    def send(self, code, data, ctype):
        if isinstance(data, str):
            data = data.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, code, obj):
        self.send(code, json.dumps(obj), "application/json; charset=utf-8")

    def error(self, code, message, extra_code="INTERNAL_SERVER_ERROR"):
        self.send_json(code, {"errors": [{"message": message, "extensions": {"code": extra_code}}]})

    def authorized(self):
        token = os.environ.get("ADMIN_TOKEN", "")
        header = self.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not given:
            given = (parse_qs(urlsplit(self.path).query).get("access_token") or [""])[0]
        if token and given and hmac.compare_digest(token.encode(), given.encode()):
            return True
        self.error(401, "Invalid user credentials.", "INVALID_CREDENTIALS")
        return False

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_UPLOAD:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    @staticmethod
    def safe_name(name):
        if (
            not name
            or name in (".", "..")
            or "/" in name
            or "\\" in name
            or ".." in name
            or "\x00" in name
            or len(name) > 255
        ):
            return None
        return name

    # ---- routes -------------------------------------------------------------
    def do_GET(self):
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path == "/server/ping":
            return self.send(200, "pong", "text/plain; charset=utf-8")
        if path == "/server/health":
            return self.health()
        if path == "/items/avatars":
            if not self.authorized():
                return
            return self.with_db(
                lambda cur: (
                    cur.execute("SELECT id, name, created_at FROM avatars ORDER BY id"),
                    {"data": [row_json(r) for r in cur.fetchall()]},
                )[1]
            )
        if path.startswith("/items/avatars/"):
            if not self.authorized():
                return
            ident = path.rsplit("/", 1)[1]
            if not ident.isdigit():
                return self.error(400, "Invalid id", "INVALID_PAYLOAD")

            def one(cur):
                cur.execute("SELECT id, name, created_at FROM avatars WHERE id = %s", (int(ident),))
                r = cur.fetchone()
                return {"data": row_json(r)} if r else None

            return self.with_db(one)
        if path.startswith("/assets/"):
            if not self.authorized():
                return
            name = self.safe_name(unquote(path[len("/assets/") :]))
            if name is None:
                return self.error(400, "Invalid file name", "INVALID_PAYLOAD")
            fp = os.path.join(UPLOADS, name)
            if not os.path.isfile(fp):
                return self.error(404, "File not found", "ROUTE_NOT_FOUND")
            with open(fp, "rb") as f:
                data = f.read()
            return self.send(200, data, "application/octet-stream")
        return self.error(404, f"Route {path} doesn't exist.", "ROUTE_NOT_FOUND")

    do_HEAD = do_GET

    def do_POST(self):
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if path == "/items/avatars":
            if not self.authorized():
                return
            try:
                payload = json.loads(self.read_body() or b"{}")
            except ValueError:
                return self.error(400, "Invalid JSON", "INVALID_PAYLOAD")
            name = payload.get("name") if isinstance(payload, dict) else None
            if not isinstance(name, str) or not name:
                return self.error(400, '"name" is required', "INVALID_PAYLOAD")

            def insert(cur):
                cur.execute("INSERT INTO avatars (name) VALUES (%s) RETURNING id, name, created_at", (name,))
                return {"data": row_json(cur.fetchone())}

            return self.with_db(insert)
        if path == "/files":
            if not self.authorized():
                return
            name = self.safe_name((parse_qs(url.query).get("filename") or [""])[0])
            if name is None:
                return self.error(400, "Invalid or missing filename", "INVALID_PAYLOAD")
            try:
                data = self.read_body()
            except ValueError as e:
                return self.error(413, str(e), "REQUESTS_EXCEEDED")
            fp = os.path.join(UPLOADS, name)
            tmp = fp + ".part"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, fp)
            except OSError as e:
                log(f"upload failed: {e.strerror}")
                return self.error(500, f"Could not store file: {e.strerror}")
            return self.send_json(200, {"data": {"filename_disk": name, "filesize": len(data)}})
        return self.error(404, f"Route {path} doesn't exist.", "ROUTE_NOT_FOUND")

    # ---- helpers ------------------------------------------------------------
    def with_db(self, fn):
        try:
            conn = db()
        except Exception as e:
            return self.error(503, f"Database unavailable: {db_error_reason(e)}", "SERVICE_UNAVAILABLE")
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                result = fn(cur)
        except Exception as e:
            return self.error(500, db_error_reason(e))
        finally:
            conn.close()
        if result is None:
            return self.error(404, "Item not found", "ROUTE_NOT_FOUND")
        return self.send_json(200, result)

    def health(self):
        try:
            conn = db()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            finally:
                conn.close()
        except Exception as e:
            return self.send_json(
                503,
                {
                    "status": "error",
                    "releaseId": "11.8.0",
                    "serviceId": "directus-standin",
                    "checks": {
                        "pg:responseTime": [
                            {"status": "error", "componentType": "datastore", "output": db_error_reason(e)}
                        ]
                    },
                },
            )
        if not os.access(UPLOADS, os.W_OK):
            return self.send_json(
                503,
                {
                    "status": "error",
                    "checks": {
                        "storage:local:responseTime": [
                            {"status": "error", "componentType": "objectstore", "output": f"{UPLOADS} not writable"}
                        ]
                    },
                },
            )
        return self.send_json(200, {"status": "ok"})


def main():
    log(f"directus stand-in 11.8.0 on port {PORT:d} (uid {os.getuid():d}), uploads {UPLOADS}")
    log("environment variable names: {}".format(", ".join(sorted(os.environ))))
    srv = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    main()
