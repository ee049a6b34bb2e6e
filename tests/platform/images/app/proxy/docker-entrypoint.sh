#!/bin/sh
set -eu
python3 /usr/local/lib/proxy-setup.py
nginx -t -q
if [ "$#" -eq 0 ]; then set -- nginx -g 'daemon off;'; fi
exec "$@"
