#!/bin/sh
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

set -eu
python3 /usr/local/lib/proxy-setup.py
nginx -t -q
if [ "$#" -eq 0 ]; then set -- nginx -g 'daemon off;'; fi
exec "$@"
