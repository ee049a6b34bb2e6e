# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The connection options of the nginx-proxy-manager modules (npm_proxy_host, npm_forward).
    DOCUMENTATION = r'''
options:
  url:
    description:
      - The admin side of nginx-proxy-manager, such as V(http://127.0.0.1:81); C(/api) is added.
      - The module talks to it from where it runs (the managed host, or the controller with C(delegate_to)).
    type: str
    required: true
  username:
    description:
      - E-mail of an NPM user who may manage proxy hosts (the admin).
    type: str
    required: true
  password:
    description:
      - That user's password. Used for the login (C(POST /api/tokens)); neither it nor the token is ever shown.
    type: str
    required: true
  validate_certs:
    description:
      - Check the TLS certificate when O(url) is HTTPS. V(false) only for an NPM you trust.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the certificate of O(url) (replaces the system trust store).
    type: path
  timeout:
    description:
      - Seconds to wait for each answer of the API.
    type: int
    default: 30
  token_cache:
    description:
      - A file where the module keeps its NPM session for the next run (such as the deploy directory's
        C(.npm-session)). A run that finds a session NPM still accepts skips the login, whose password check
        costs NPM about half a second.
      - The session is a token that lives 15 minutes; each run that uses it keeps a new one. The file is written with mode
        C(0600) and holds a salted check of O(password) (PBKDF2), never the password. It is used only when it is a
        regular file (not a link) that the module's user owns alone and that names the same O(url), O(username)
        and O(password); otherwise, or when NPM refuses the session (expired), the module logs in. Never written
        in check mode.
      - Unset, the token is kept in memory only.
    type: path
requirements:
  - The Python library C(requests) (2.25 or later) where the module runs.
notes:
  - Works with NPM 2.12 or later (booleans in the API); written against v2.15.1.
  - Proxy settings from the environment (C(HTTPS_PROXY), C(HTTP_PROXY), C(NO_PROXY)) are honoured; C(~/.netrc) is not read.
'''
