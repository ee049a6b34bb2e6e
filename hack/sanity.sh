#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# make sanity: `ansible-test sanity` on the tracked files of this checkout.
#
# ansible-test only tests a collection that sits at
# .../ansible_collections/<namespace>/<name> (the working directory resolved
# without symlinks), so the files that git tracks (`git ls-files`: untracked
# junk never reaches the tests; a new file needs `git add` or `git add -N`)
# are copied to .cache/sanity/tree/ansible_collections/avatar_mgmt/ops and
# tested there, for the Python of the virtual environment.
#
# Offline pip bootstrap: each sanity test that needs packages (pylint,
# yamllint, validate-modules, import, ansible-doc, ...) runs in a virtual
# environment that ansible-test creates without pip and then bootstraps with
# a get-pip.py it downloads from ansible's CI file server, which this machine
# cannot reach. ansible-test looks for that script in its cache first
# (~/.ansible/test/cache/get_pip_<version>.py, see bootstrap() in
# ansible_test/_util/target/setup/requirements.py), so this script puts a
# local stand-in there: it installs the pip that ships with Python
# (ensurepip) and uses it to install the exact pip version ansible-test asked
# for. Everything after that is ansible-test's normal path: it installs its
# own pinned requirements per test (ansible_test/_data/requirements/
# sanity.*.txt, pinned by the ansible-core version in requirements.txt) from
# the package index, with pip.
#
# HOME points at .cache/sanity/home for ansible-test and its children, so its
# caches and virtual environments (~/.ansible/test/...) belong to this
# checkout, `make clean` removes them, and nothing under the real home
# directory is read or written.
#
# Environment: VENV (default .venv), SANITY_ARGS (extra ansible-test
# arguments, e.g. SANITY_ARGS="--test pylint").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

venv=${VENV:-.venv}
case $venv in /*) ;; *) venv=$root/$venv ;; esac
py=$venv/bin/python
[ -x "$py" ] || { echo "sanity: no Python at $py (run make venv, or set VENV)" >&2; exit 1; }
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

log() { printf '[sanity] %s\n' "$*"; }

# The `shellcheck` sanity test needs the shellcheck program.
if ! command -v shellcheck >/dev/null 2>&1; then
  log "installing shellcheck"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi

work=$root/.cache/sanity
home=$work/home
tree=$work/tree/ansible_collections/avatar_mgmt/ops

# The tracked files, as they are in the working tree (edits included, files
# deleted but not yet committed left out). Not copied:
#   .collections/  the symlink that makes this checkout avatar_mgmt.ops for
#                  ansible.cfg; a development shim that galaxy.yml keeps out
#                  of the artifact, and inside the copy it would be a link
#                  from the collection to itself.
rm -rf "$work/tree"
mkdir -p "$tree" "$home"
git ls-files -z | while IFS= read -r -d '' f; do
  case $f in .collections/*) continue ;; esac
  if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null -T - -cf - | tar -xf - -C "$tree"
# Its own git repository: otherwise ansible-test finds the checkout's
# repository above it, where .cache/ is ignored, and tests nothing.
git -C "$tree" init -q
git -C "$tree" add -A

# The get-pip stand-in, under the name ansible-test looks for.
pip_version=$("$py" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$pyver"'"))["pip"])')
getpip=$home/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$getpip")"
cat >"$getpip" <<'EOF'
"""Local stand-in for get-pip.py, written by hack/sanity.sh.

Called by ansible-test as `python get-pip.py [pip options] pip==X [--no-setuptools] [--no-wheel]`
in a virtual environment without pip: installs Python's bundled pip (ensurepip),
then the requested packages with it.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', *args])
if '--no-setuptools' in sys.argv[1:]:
    subprocess.call([sys.executable, '-m', 'pip', 'uninstall', '-q', '-y', 'setuptools'], stderr=subprocess.DEVNULL)
EOF

start=$(date +%s)
log "ansible-test sanity --python $pyver in ${tree#"$root"/}"
rc=0
# SANITY_ARGS is split on purpose: it holds several arguments.
# shellcheck disable=SC2086
(cd "$tree" && HOME=$home PATH=$venv/bin:$PATH "$venv/bin/ansible-test" sanity \
  --python "$pyver" --color no ${SANITY_ARGS:-}) || rc=$?
log "finished in $(( $(date +%s) - start ))s, exit $rc"
exit "$rc"
