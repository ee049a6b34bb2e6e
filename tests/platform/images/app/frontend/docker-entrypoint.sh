#!/bin/sh
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Writes config.js from the environment (JSON-escaped), then runs nginx in the foreground.
set -eu
ROOT=/usr/share/nginx/html
python3 - "$ROOT/config.js" <<'PY'
import json, os, sys
keys = ["API_BASE_URL", "DIRECTUS_BASE_URL", "APP_ENV", "APP_TITLE", "APP_DESCRIPTION",
        "FEATURE_ANIMATION", "FEATURE_UPLOAD", "FEATURE_SHARING", "DEBUG"]
cfg = {k: os.environ.get(k, "") for k in keys}
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    # ensure_ascii plus escaping "<" keeps the file safe inside <script> as well.
    f.write("window.APP_CONFIG = %s;\n" % json.dumps(cfg, indent=2, ensure_ascii=True).replace("<", "\\u003c"))
os.chmod(tmp, 0o644)
os.replace(tmp, sys.argv[1])
PY
echo "frontend $(cat "$ROOT/version.json" 2>/dev/null): wrote config.js with keys API_BASE_URL DIRECTUS_BASE_URL APP_ENV APP_TITLE APP_DESCRIPTION FEATURE_ANIMATION FEATURE_UPLOAD FEATURE_SHARING DEBUG"
if [ "$#" -eq 0 ]; then set -- nginx -g 'daemon off;'; fi
exec "$@"
