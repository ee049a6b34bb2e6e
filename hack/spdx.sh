#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The same licence header on every tracked file.
#
#   hack/spdx.sh --check [PATHSPEC...]   list the files that lack the header; exit 1 if any
#   hack/spdx.sh --fix   [PATHSPEC...]   add it (or turn a variant into it) where it is missing
#
# PATHSPECs limit the files, as for `git ls-files` (e.g. plugins ':!roles/backup').
#
# The header, in each file's comment syntax:
#   Copyright (c) avatar_mgmt.ops contributors
#   GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#   SPDX-License-Identifier: GPL-3.0-or-later
# A header that says "avatar_mgmt.ops developers" is a variant: --check reports
# it and --fix rewrites it to "contributors".
#
# Comment syntax, by file:
#   `# ` lines     .py .sh .bash .yml .yaml .cfg .toml .conf .service .timer .txt .example
#                  .gitignore .ansible-lint .yamllint Makefile Dockerfile known_hosts, and any
#                  file with a #! line. It goes after a #! line, a Python coding
#                  line and Dockerfile parser directives (# syntax=, # escape=),
#                  which must stay first; in YAML before `---` (yamllint wants the
#                  document start, comments may precede it).
#   `{# ... #}`    .j2 templates: a Jinja comment at the top, closed with `-#}` so
#                  that nothing, not even a blank line, reaches the rendered file.
#   `<!-- ... -->` .md: an HTML comment at the top, invisible when rendered.
# A file of any other kind is reported (exit 1) until a rule is added here.
#
# Exempt (never reported, never changed):
#   - symbolic links (the target carries the header);
#   - binary files (a NUL byte) and empty files (ansible-test's empty-init wants
#     some __init__.py empty);
#   - .json files (JSON has no comments);
#   - Ansible Vault ciphertext (first line $ANSIBLE_VAULT;...: the format allows
#     nothing before it);
#   - vault password files (*vault-password*): the whole content is the secret;
#   - changelogs/changelog.yaml and CHANGELOG.md: generated and rewritten by
#     antsibull-changelog, which drops comments;
#   - LICENSE, COPYING: the licence text itself.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case $mode in
  --check | --fix) shift ;;
  *) echo "usage: $0 --check|--fix [PATHSPEC...]" >&2; exit 2 ;;
esac

# The logic, in Python; read (exit status 1 at the end of input) into a variable
# because standard input carries the file list.
IFS= read -r -d '' code <<'EOF' || true
import os
import re
import sys

LINES = [
    'Copyright (c) avatar_mgmt.ops contributors',
    'GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)',
    'SPDX-License-Identifier: GPL-3.0-or-later',
]
HASH = ''.join(f'# {line}\n' for line in LINES)
STYLES = {
    'hash': HASH,
    'jinja': '{#\n' + ''.join(f'{line}\n' for line in LINES) + '-#}\n',
    'html': '<!--\n' + ''.join(f'{line}\n' for line in LINES) + '-->\n',
}
HASH_SUFFIXES = ('.py', '.sh', '.bash', '.yml', '.yaml', '.cfg', '.toml', '.conf', '.service', '.timer', '.txt', '.example')
HASH_NAMES = ('.gitignore', '.ansible-lint', '.yamllint', 'Makefile', 'Dockerfile', 'known_hosts')
VARIANT = re.compile(r'Copyright \(c\) avatar_mgmt\.ops developers')


def exempt(path, data):
    name = os.path.basename(path)
    return (
        not data
        or b'\0' in data
        or name.endswith('.json')
        or data.startswith(b'$ANSIBLE_VAULT;')
        or 'vault-password' in name
        or path in ('changelogs/changelog.yaml', 'CHANGELOG.md')
        or name in ('LICENSE', 'COPYING')
    )


def style_of(path, text):
    name = os.path.basename(path)
    if name.endswith('.j2'):
        return 'jinja'
    if name.endswith('.md'):
        return 'html'
    if name.endswith(HASH_SUFFIXES) or name in HASH_NAMES or text.startswith('#!'):
        return 'hash'
    return None


def insert_at(lines, path):
    """Index of the first line the header may precede."""
    i = 0
    if lines and lines[0].startswith('#!'):
        i = 1
    if path.endswith('.py') and i < len(lines) and re.match(r'#.*coding[:=]', lines[i]):
        i += 1
    if os.path.basename(path) == 'Dockerfile':
        while i < len(lines) and re.match(r'#\s*(syntax|escape|check)\s*=', lines[i], re.I):
            i += 1
    return i


def main():
    fix = sys.argv[1] == '--fix'
    paths = [p for p in sys.stdin.buffer.read().decode().split('\0') if p]
    missing, unknown, fixed = [], [], []
    for path in paths:
        if not os.path.lexists(path) or os.path.islink(path):
            continue  # deleted in the working tree, or a symbolic link
        with open(path, 'rb') as f:
            data = f.read()
        if exempt(path, data):
            continue
        text = data.decode('utf-8')
        style = style_of(path, text)
        if style is None:
            unknown.append(path)
            continue
        header = STYLES[style]
        head = '\n'.join(text.split('\n')[:12])
        if header in head + '\n' and not VARIANT.search(head):
            continue
        if not fix:
            missing.append(path)
            continue
        if VARIANT.search(head):
            text = VARIANT.sub('Copyright (c) avatar_mgmt.ops contributors', text, count=1)
        if header not in '\n'.join(text.split('\n')[:12]) + '\n':
            lines = text.splitlines(keepends=True)
            i = insert_at(lines, path)
            rest = lines[i:]
            gap = '' if not rest or rest[0].strip() in ('', '---') else '\n'
            text = ''.join(lines[:i]) + header + gap + ''.join(rest)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        fixed.append(path)
    for path in fixed:
        print(f'spdx: added the header to {path}')
    for path in missing:
        print(f'spdx: no licence header: {path}')
    for path in unknown:
        print(f'spdx: no comment syntax known for {path}: add a rule or an exemption to hack/spdx.sh')
    if missing or unknown:
        print(f'spdx: {len(missing) + len(unknown)} file(s) without the header; hack/spdx.sh --fix adds it')
        sys.exit(1)
    if not fix:
        print(f'spdx: all {len(paths)} tracked files carry the header or are exempt')


main()
EOF
# One compound command, parsed whole before it runs, ending in exit: --fix may
# rewrite this very file, and bash would otherwise go on reading it at an old offset.
{
  git ls-files -z -- "$@" | python3 -c "$code" "$mode"
  exit
}
