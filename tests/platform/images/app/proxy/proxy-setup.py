# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write NPM-style proxy host configs from PROXY_HOSTS and an admin status page.

PROXY_HOSTS="daidai.amis.hk=frontend:80,api.daidai.amis.hk=api:3000,..."
A route file /data/nginx/proxy_host/<domain>.conf is written only if it does not
exist yet (NPM keeps its configuration in /data; existing files win).
"""

import html
import json
import os
import re
import sys

DATA = "/data"
HOSTS_DIR = os.path.join(DATA, "nginx", "proxy_host")
ADMIN = "/run/npm-admin"
RESOLVER = os.environ.get("PROXY_RESOLVER", "127.0.0.11")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")

TEMPLATE = """\
# ------------------------------------------------------------
# {domain}  (written by the proxy stand-in from PROXY_HOSTS)
# upstream: http://{host}:{port}
# ------------------------------------------------------------
server {{
    listen 80;
    server_name {domain};
    resolver {resolver} valid=5s ipv6=off;

    location / {{
        # A variable in proxy_pass makes nginx resolve the name per request.
        set $upstream http://{host}:{port};
        proxy_pass $upstream;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_connect_timeout 5s;
        proxy_read_timeout 60s;
    }}
}}
"""


def parse(spec):
    routes = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        domain, sep, upstream = item.partition("=")
        host, sep2, port = upstream.strip().rpartition(":")
        domain = domain.strip().lower()
        if (
            not sep
            or not sep2
            or not DOMAIN_RE.match(domain)
            or not HOST_RE.match(host)
            or not port.isdigit()
            or not 0 < int(port) < 65536
        ):
            sys.exit(f"proxy: invalid PROXY_HOSTS entry {item!r} (want domain=host:port)")
        routes.append((domain, host, int(port)))
    return routes


def existing_routes():
    out = []
    for name in sorted(os.listdir(HOSTS_DIR)):
        if not name.endswith(".conf"):
            continue
        with open(os.path.join(HOSTS_DIR, name)) as f:
            text = f.read()
        dom = re.search(r"^\s*server_name\s+([^;]+);", text, re.M)
        up = re.search(r"set \$upstream\s+([^;]+);", text)
        out.append((name, dom.group(1).strip() if dom else "?", up.group(1).strip() if up else "?"))
    return out


def main():
    for d in (
        HOSTS_DIR,
        os.path.join(DATA, "logs"),
        os.path.join(DATA, "nginx", "default_host"),
        os.path.join(DATA, "nginx", "custom"),
        "/etc/letsencrypt",
        ADMIN,
    ):
        os.makedirs(d, exist_ok=True)
    for domain, host, port in parse(os.environ.get("PROXY_HOSTS", "")):
        path = os.path.join(HOSTS_DIR, domain + ".conf")
        if os.path.exists(path):
            print(f"proxy: keeping existing {path}", flush=True)
            continue
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(TEMPLATE.format(domain=domain, host=host, port=port, resolver=RESOLVER))
        os.replace(tmp, path)
        print(f"proxy: wrote {domain} -> http://{host}:{port:d}", flush=True)

    routes = existing_routes()
    with open(os.path.join(ADMIN, "api.json"), "w") as f:
        json.dump(
            {
                "status": "OK",
                "setup": True,
                "standin": True,
                "version": {"major": 2, "minor": 12, "revision": 0},
                "proxy_hosts": [{"file": n, "domain": d, "upstream": u} for n, d, u in routes],
            },
            f,
        )
    rows = "\n".join(
        f"<tr><td>{html.escape(d)}</td><td>{html.escape(u)}</td><td>{html.escape(n)}</td></tr>" for n, d, u in routes
    )
    with open(os.path.join(ADMIN, "index.html"), "w") as f:
        f.write(
            "<!doctype html><html><head><meta charset='utf-8'><title>Nginx Proxy Manager (stand-in)"
            "</title></head><body><h1>Nginx Proxy Manager (test stand-in)</h1>"
            "<p>status: OK</p><table border='1'><tr><th>domain</th><th>upstream</th><th>file</th></tr>\n"
            f"{rows}\n</table></body></html>\n"
        )
    print(f"proxy: {len(routes):d} proxy host(s) in {HOSTS_DIR}", flush=True)


if __name__ == "__main__":
    main()
