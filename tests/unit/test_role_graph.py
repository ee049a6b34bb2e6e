# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The role graph stays one-way and its boundaries stay public.

* every role included by another role or a playbook is included by its
  fully qualified name, and the graph of roles including roles has no cycle
  (no role includes itself);
* every ``tasks_from`` entry point used outside its role has its own entry in
  that role's ``meta/argument_specs.yml``;
* no private name of a role (``_<role>_*`` or ``__<role>_*``) appears in a file
  outside that role: roles talk through documented public variables and
  modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
SOURCES = sorted(
    p
    for d in ("roles", "playbooks", "molecule")
    for p in (REPO / d).rglob("*")
    if p.is_file() and p.suffix in {".yml", ".yaml", ".j2"}
)
ROOT_PLAYBOOKS = sorted(p for p in REPO.glob("*.yml") if p.name not in {"galaxy.yml"})
_INCLUDE = re.compile(r"(?:include_role|import_role):\s*\n\s+name:\s*(\S+)(?:\s*\n\s+tasks_from:\s*(\S+))?")


def _owner(path: Path):
    rel = path.relative_to(REPO).parts
    return rel[1] if rel[0] == "roles" else None


def _includes():
    """(file, including role or None, included role, tasks_from or None)."""
    found = []
    for path in SOURCES + ROOT_PLAYBOOKS:
        text = path.read_text(encoding="utf-8")
        for name, tasks_from in _INCLUDE.findall(text):
            found.append((path, _owner(path), name, tasks_from or None))
        for name in re.findall(r"-\s+role:\s*(\S+)", text):
            found.append((path, _owner(path), name, None))
    return found


def test_roles_are_included_by_fqcn():
    bad = [
        f"{p.relative_to(REPO)}: {name}"
        for p, _owner, name, _entry in _includes()
        if not name.startswith("avatar_mgmt.ops.")
    ]
    assert not bad, f"include roles by their fully qualified name: {bad}"


def test_role_graph_has_no_cycle():
    edges = {}
    for _path, owner, name, _entry in _includes():
        if owner:
            edges.setdefault(owner, set()).add(name.rsplit(".", 1)[-1])
    assert all(role not in targets for role, targets in edges.items()), f"a role includes itself: {edges}"

    def visit(role, path):
        for nxt in edges.get(role, ()):
            assert nxt not in path, f"cycle in the role graph: {' -> '.join(path + [nxt])}"
            visit(nxt, path + [nxt])

    for role in edges:
        visit(role, [role])


@pytest.mark.parametrize("include", [i for i in _includes() if i[3]], ids=lambda i: f"{i[0].relative_to(REPO)}:{i[3]}")
def test_entry_points_used_are_documented(include):
    path, owner, name, tasks_from = include
    role = name.rsplit(".", 1)[-1]
    if owner == role:
        return
    entry = Path(tasks_from).stem
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert entry in specs, (
        f"{path.relative_to(REPO)} uses roles/{role}/tasks/{tasks_from}, which has no entry "
        f"'{entry}' in roles/{role}/meta/argument_specs.yml"
    )


@pytest.mark.parametrize("role", ROLES)
def test_private_names_stay_inside_their_role(role):
    private = re.compile(rf"(?<![A-Za-z0-9])_{{1,2}}{role}_[a-z0-9_]+")
    leaks = []
    for path in SOURCES + ROOT_PLAYBOOKS:
        if _owner(path) == role:
            continue
        for match in private.finditer(path.read_text(encoding="utf-8")):
            leaks.append(f"{path.relative_to(REPO)}: {match.group(0)}")
    assert not leaks, f"private names of role {role} used outside it: {leaks}"
