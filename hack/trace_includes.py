# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Static trace of what a playbook run touches, for architecture metrics.

    python hack/trace_includes.py ROOT PLAYBOOK [--list] [--edges] [--json]
    python hack/trace_includes.py ROOT --private-crossings [--json]

Trace mode follows, without running anything: import_playbook; plays' roles
(tasks/main.yml plus the files a role loads implicitly: defaults, vars, meta,
meta/argument_specs, handlers) and role meta dependencies; tasks, pre_tasks,
post_tasks and handlers, nested in block/rescue/always; import_tasks and
include_tasks (a templated name is globbed: switch_{{ x }}.yml -> switch_*.yml);
include_role/import_role (tasks_from, defaults_from, vars_from, handlers_from);
templates (template src, lookup/query 'template'); the collection's modules
(and action plugins), filters and tests used by FQCN, and the module_utils
they import, recursively. Each file counts once. Hops are distinct
(from, to) edges; depth is the longest chain of YAML include edges
(import_playbook, roles, import/include_tasks, include/import_role).
Not followed (reported): include_vars and vars_files. group_vars/host_vars
are configuration, not code: reported apart, never counted.

Private-crossings mode lists every use, in a file under roles/ or playbooks/
or a root *.yml (galaxy.yml excepted), of a private name of another role:
_<role>_x or __<role>_x where <role> is a directory under roles/ other than
the one holding the file.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NAMESPACE = "avatar_mgmt.ops"
FQCN_PREFIX = NAMESPACE + "."
MODULE_UTILS_PKG = "ansible_collections.avatar_mgmt.ops.plugins.module_utils"

# Edge kinds that make the YAML include chain measured by "depth".
YAML_KINDS = frozenset({"import_playbook", "role", "tasks", "include_role"})

TASK_LIST_KEYS = ("pre_tasks", "roles", "tasks", "post_tasks", "handlers")
BLOCK_KEYS = ("block", "rescue", "always")
ROLE_IMPLICIT = {
    "defaults": "defaults/{}",
    "vars": "vars/{}",
    "meta": "meta/main",
    "argument_specs": "meta/argument_specs",
    "handlers": "handlers/{}",
}

JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
FILTER_USE = re.compile(r"\|\s*" + re.escape(FQCN_PREFIX) + r"(\w+)")
TEST_USE = re.compile(r"\bis\s+(?:not\s+)?" + re.escape(FQCN_PREFIX) + r"(\w+)")
# map('avatar_mgmt.ops.f') applies a filter; select/reject('avatar_mgmt.ops.t') a test.
MAP_USE = re.compile(r"\bmap\(\s*['\"]" + re.escape(FQCN_PREFIX) + r"(\w+)['\"]")
SELECT_USE = re.compile(
    r"\b(?:select|reject)(?:attr)?\((?:\s*['\"][^'\"]*['\"]\s*,)?\s*['\"]" + re.escape(FQCN_PREFIX) + r"(\w+)['\"]"
)
TEMPLATE_LOOKUP = re.compile(
    r"\b(?:lookup|query|q)\(\s*['\"](?:ansible\.builtin\.)?template['\"]\s*,\s*['\"]([^'\"]+)['\"]"
)


def short(name: str) -> str:
    """Strip the ansible.builtin./ansible.legacy. prefix of an action name."""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def role_name(ref: str) -> str | None:
    """roles/ directory name of a role reference, or None for another collection's role."""
    if ref.startswith(FQCN_PREFIX):
        return ref[len(FQCN_PREFIX) :]
    return None if "." in ref else ref


def with_ext(name: str) -> list[str]:
    return [name] if name.endswith((".yml", ".yaml")) else [name + ".yml", name + ".yaml", name]


def kv_args(value: str) -> dict[str, str]:
    """k=v free-form arguments (name=x tasks_from=y)."""
    return dict(part.split("=", 1) for part in value.split() if "=" in part)


def iter_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from iter_strings(key)
            yield from iter_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_strings(item)


@dataclass
class Trace:
    root: Path
    files: set[Path] = field(default_factory=set)
    edges: dict[tuple[Path, Path], str] = field(default_factory=dict)
    task_files: set[Path] = field(default_factory=set)
    playbook_dirs: set[Path] = field(default_factory=set)
    globbed: list[tuple[Path, str, list[Path]]] = field(default_factory=list)
    unresolved: list[tuple[Path, str, str]] = field(default_factory=list)
    not_followed: list[tuple[Path, str, str]] = field(default_factory=list)
    _walked: set[tuple[Path, str]] = field(default_factory=set)
    _plugin_index: dict[str, dict[str, Path]] = field(default_factory=dict)

    # ---- bookkeeping -------------------------------------------------
    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def edge(self, src: Path | None, dst: Path, kind: str) -> None:
        dst = dst.resolve()
        self.files.add(dst)
        if src is not None and src != dst:
            self.edges.setdefault((src, dst), kind)

    def role_of(self, path: Path) -> str | None:
        parts = path.relative_to(self.root).parts
        return parts[1] if len(parts) > 2 and parts[0] == "roles" else None

    def role_dir(self, name: str) -> Path:
        return self.root / "roles" / name

    def load_yaml(self, path: Path):
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            self.unresolved.append((path, "yaml", str(exc).splitlines()[0]))
            return None

    def resolve(self, src: Path, name: str, dirs: list[Path], kind: str) -> list[Path]:
        """Files for `name` in the first of `dirs` that has any; a templated name is globbed."""
        templated = "{{" in name or "{%" in name
        pattern = JINJA.sub("*", name)
        for base in dirs:
            if templated:
                found = sorted(p.resolve() for p in base.glob(pattern) if p.is_file())
            else:
                found = [(base / n).resolve() for n in with_ext(name) if (base / n).is_file()][:1]
            if found:
                if templated:
                    self.globbed.append((src, name, found))
                return found
        self.unresolved.append((src, kind, name))
        return []

    # ---- playbooks ---------------------------------------------------
    def playbook(self, path: Path, src: Path | None = None) -> None:
        path = path.resolve()
        self.edge(src, path, "import_playbook")
        if (path, "playbook") in self._walked:
            return
        self._walked.add((path, "playbook"))
        self.playbook_dirs.add(path.parent)
        doc = self.load_yaml(path) or []
        self.scan_strings(path, doc)
        for play in doc if isinstance(doc, list) else []:
            if not isinstance(play, dict):
                continue
            target = play.get("import_playbook", play.get("ansible.builtin.import_playbook"))
            if isinstance(target, str):
                for found in self.playbook_targets(path, target):
                    self.playbook(found, path)
                continue
            for vars_file in play.get("vars_files") or []:
                self.not_followed.append((path, "vars_files", str(vars_file)))
            for key in TASK_LIST_KEYS:
                if key == "roles":
                    for entry in play.get("roles") or []:
                        self.role_entry(path, entry)
                else:
                    self.tasks(path, play.get(key) or [])

    def playbook_targets(self, src: Path, target: str) -> list[Path]:
        if target.startswith(FQCN_PREFIX):
            name = target[len(FQCN_PREFIX) :]
            return self.resolve(src, name, [self.root / "playbooks"], "import_playbook")
        return self.resolve(src, target, [src.parent], "import_playbook")

    # ---- roles -------------------------------------------------------
    def role_entry(self, src: Path, entry) -> None:
        ref = entry if isinstance(entry, str) else (entry or {}).get("role", (entry or {}).get("name"))
        if not isinstance(ref, str):
            return
        self.role(src, ref, {}, "role")

    def role(self, src: Path, ref: str, opts: dict, kind: str) -> None:
        name = role_name(ref)
        if name is None or not self.role_dir(name).is_dir():
            self.unresolved.append((src, kind, ref))
            return
        base = self.role_dir(name)
        for key, pattern in ROLE_IMPLICIT.items():
            stem = pattern.format(opts.get(f"{key}_from", "main"))
            for candidate in with_ext(stem):
                path = base / candidate
                if path.is_file():
                    self.edge(src, path, "role_implicit")
                    if key == "handlers":
                        self.task_file(path, None)
                    elif key == "meta":
                        self.meta(path)
                    else:
                        self.scan_strings(path, self.load_yaml(path))
                    break
        for path in self.resolve(src, opts.get("tasks_from", "main"), [base / "tasks"], kind):
            self.task_file(path, src, kind)

    def meta(self, path: Path) -> None:
        if (path, "meta") in self._walked:
            return
        self._walked.add((path, "meta"))
        doc = self.load_yaml(path) or {}
        for dep in doc.get("dependencies") or [] if isinstance(doc, dict) else []:
            self.role_entry(path, dep)

    # ---- task files ----------------------------------------------------
    def task_file(self, path: Path, src: Path | None, kind: str = "tasks") -> None:
        path = path.resolve()
        if src is not None:
            self.edge(src, path, kind)
        self.task_files.add(path)
        if (path, "tasks") in self._walked:
            return
        self._walked.add((path, "tasks"))
        self.tasks(path, self.load_yaml(path) or [])

    def tasks(self, path: Path, items) -> None:
        for task in items if isinstance(items, list) else []:
            if not isinstance(task, dict):
                continue
            self.scan_strings(path, task)
            for key in BLOCK_KEYS:
                if key in task:
                    self.tasks(path, task[key])
            for key, value in task.items():
                if not isinstance(key, str):
                    continue
                action = short(key)
                if action in ("action", "local_action") and isinstance(value, str) and value.split():
                    key, action = value.split()[0], short(value.split()[0])
                    value = kv_args(value)
                self.action(path, key, action, value)

    def action(self, path: Path, key: str, action: str, value) -> None:
        if action in ("import_tasks", "include_tasks", "include"):
            name = value.get("file") if isinstance(value, dict) else value
            if isinstance(name, str):
                if "=" in name and "{{" not in name:  # free-form: include_tasks: file=x.yml
                    name = kv_args(name).get("file", "")
                dirs = [path.parent]
                role = self.role_of(path)
                if role and (self.role_dir(role) / "tasks") != path.parent:
                    dirs.append(self.role_dir(role) / "tasks")
                for found in self.resolve(path, name, dirs, action):
                    self.task_file(found, path)
        elif action in ("include_role", "import_role"):
            opts = kv_args(value) if isinstance(value, str) else (value or {})
            if isinstance(opts.get("name"), str):
                self.role(path, opts["name"], opts, "include_role")
        elif action == "template":
            src = value.get("src") if isinstance(value, dict) else kv_args(str(value)).get("src")
            if isinstance(src, str):
                self.template(path, src)
        elif action == "include_vars":
            self.not_followed.append((path, "include_vars", json.dumps(value) if not isinstance(value, str) else value))
        elif key.startswith(FQCN_PREFIX):
            self.module(path, key[len(FQCN_PREFIX) :])

    def template(self, src: Path, name: str) -> None:
        role = self.role_of(src)
        dirs = [self.role_dir(role) / "templates", self.role_dir(role)] if role else []
        dirs += [src.parent / "templates", src.parent]
        for found in self.resolve(src, name, dirs, "template"):
            self.edge(src, found, "template")
            if (found, "text") not in self._walked:
                self._walked.add((found, "text"))
                self.scan_text(found, found.read_text(encoding="utf-8", errors="replace"))

    # ---- plugins -----------------------------------------------------
    def scan_strings(self, path: Path, node) -> None:
        for text in iter_strings(node):
            self.scan_text(path, text)

    def scan_text(self, path: Path, text: str) -> None:
        for regex, kind in ((FILTER_USE, "filter"), (MAP_USE, "filter"), (TEST_USE, "test"), (SELECT_USE, "test")):
            for match in regex.finditer(text):
                self.jinja_plugin(path, match.group(1), kind)
        for match in TEMPLATE_LOOKUP.finditer(text):
            self.template(path, match.group(1))

    def plugin_index(self, kind: str) -> dict[str, Path]:
        """Name -> file for the filters (or tests) the collection defines: '<name>': in plugins/<kind>/*.py."""
        if kind not in self._plugin_index:
            index: dict[str, Path] = {}
            for py in sorted((self.root / "plugins" / kind).glob("*.py")):
                for name in re.findall(r"['\"](\w+)['\"]\s*:", py.read_text(encoding="utf-8")):
                    index.setdefault(name, py.resolve())
            self._plugin_index[kind] = index
        return self._plugin_index[kind]

    def jinja_plugin(self, src: Path, name: str, kind: str) -> None:
        found = self.plugin_index(kind).get(name)
        if found is None:
            self.unresolved.append((src, kind, FQCN_PREFIX + name))
            return
        self.edge(src, found, kind)
        self.python(found)

    def module(self, src: Path, name: str) -> None:
        module = self.root / "plugins" / "modules" / f"{name}.py"
        action = self.root / "plugins" / "action" / f"{name}.py"
        if not module.is_file() and not action.is_file():
            self.unresolved.append((src, "module", FQCN_PREFIX + name))
            return
        for path, kind in ((module, "module"), (action, "action")):
            if path.is_file():
                self.edge(src, path, kind)
                self.python(path.resolve())

    def python(self, path: Path) -> None:
        """Follow the collection's module_utils imports of a Python file, recursively."""
        if (path, "python") in self._walked:
            return
        self._walked.add((path, "python"))
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError) as exc:
            self.unresolved.append((path, "python", str(exc)))
            return
        utils = self.root / "plugins" / "module_utils"
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:  # from ..module_utils.x import y / from .x import y (inside module_utils)
                    here = path.parent
                    for _level in range(node.level - 1):
                        here = here.parent
                    dotted = (here / module.replace(".", "/")).resolve()
                    if not dotted.is_relative_to(utils.resolve()):
                        continue
                    sub = dotted.relative_to(utils.resolve()).as_posix().replace("/", ".")
                    module = MODULE_UTILS_PKG + ("." + sub if sub and sub != "." else "")
                if module == MODULE_UTILS_PKG:
                    names = [alias.name for alias in node.names]
                elif module.startswith(MODULE_UTILS_PKG + "."):
                    names = [module[len(MODULE_UTILS_PKG) + 1 :]]
            elif isinstance(node, ast.Import):
                names = [
                    a.name[len(MODULE_UTILS_PKG) + 1 :] for a in node.names if a.name.startswith(MODULE_UTILS_PKG + ".")
                ]
            for name in names:
                base = utils / name.replace(".", "/")
                target = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
                if target is None:
                    self.unresolved.append((path, "module_utils", name))
                    continue
                self.edge(path, target, "module_utils")
                self.python(target.resolve())

    # ---- metrics -----------------------------------------------------
    def longest_chain(self, start: Path) -> list[Path]:
        graph: dict[Path, list[Path]] = {}
        for (src, dst), kind in sorted(self.edges.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))):
            if kind in YAML_KINDS:
                graph.setdefault(src, []).append(dst)
        best: list[Path] = [start]

        def walk(node: Path, chain: list[Path], on_chain: set[Path]) -> None:
            nonlocal best
            if len(chain) > len(best):
                best = list(chain)
            for nxt in graph.get(node, []):
                if nxt not in on_chain:  # a simple path: the include cycles (role A -> role B -> role A) stop here
                    on_chain.add(nxt)
                    chain.append(nxt)
                    walk(nxt, chain, on_chain)
                    chain.pop()
                    on_chain.discard(nxt)

        walk(start, [start], {start})
        return best

    def vars_dirs(self) -> dict[str, list[str]]:
        adjacent = sorted(
            {
                self.rel(d / name)
                for d in self.playbook_dirs
                for name in ("group_vars", "host_vars")
                if (d / name).is_dir()
            }
        )
        inventory = sorted(self.rel(p) for p in self.root.glob("inventor*/**/group_vars") if p.is_dir())
        default = ""
        cfg = self.root / "ansible.cfg"
        if cfg.is_file():
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                parser.read(cfg, encoding="utf-8")
                default = parser.get("defaults", "inventory", fallback="")
            except configparser.Error:
                default = ""
        return {
            "playbook_adjacent": adjacent,
            "inventory": inventory,
            "default_inventory": [default] if default else [],
        }

    def report(self, start: Path) -> dict:
        chain = self.longest_chain(start)
        role_task_files = [p for p in self.task_files if self.role_of(p)]
        longest = max(
            role_task_files, key=lambda p: (len(p.read_text(encoding="utf-8").splitlines()), str(p)), default=None
        )
        return {
            "playbook": self.rel(start),
            "files_touched": len(self.files),
            "files_by_kind": dict(sorted(Counter(self.kind_of(p) for p in self.files).items())),
            "files": sorted(self.rel(p) for p in self.files),
            "hops": len(self.edges),
            "hops_by_kind": dict(sorted(Counter(self.edges.values()).items())),
            "edges": sorted([self.rel(s), self.rel(d), k] for (s, d), k in self.edges.items()),
            "max_yaml_depth": len(chain) - 1,
            "depth_chain": [self.rel(p) for p in chain],
            "longest_role_task_file": (
                {"path": self.rel(longest), "lines": len(longest.read_text(encoding="utf-8").splitlines())}
                if longest
                else None
            ),
            "templated_includes": [
                {"from": self.rel(s), "name": n, "matches": [self.rel(p) for p in found]}
                for s, n, found in self.globbed
            ],
            "group_vars": self.vars_dirs(),
            "not_followed": [{"from": self.rel(s), "kind": k, "what": w} for s, k, w in self.not_followed],
            "unresolved": [{"from": self.rel(s), "kind": k, "what": w} for s, k, w in self.unresolved],
        }

    def kind_of(self, path: Path) -> str:
        parts = path.relative_to(self.root).parts
        if parts[0] == "roles" and len(parts) > 3:
            return f"role {parts[2]}"
        if parts[0] == "plugins" and len(parts) > 2:
            return f"plugin {parts[1]}"
        return "playbook"


# ---- private crossings ----------------------------------------------------
def crossing_files(root: Path) -> list[Path]:
    files = [p for top in ("roles", "playbooks") for p in sorted((root / top).rglob("*")) if p.is_file()]
    files += [p for p in sorted(root.glob("*.yml")) if p.name != "galaxy.yml"]
    return files


def private_crossings(root: Path) -> dict:
    roles = sorted((p.name for p in (root / "roles").iterdir() if p.is_dir()), key=lambda r: (-len(r), r))
    pattern = re.compile(r"(?<!\w)__?(" + "|".join(map(re.escape, roles)) + r")_\w+")
    hits = []
    for path in crossing_files(root):
        rel = path.relative_to(root).parts
        own = rel[1] if rel[0] == "roles" and len(rel) > 2 else None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for match in pattern.finditer(line):
                if match.group(1) != own:
                    hits.append(
                        {
                            "file": path.relative_to(root).as_posix(),
                            "line": lineno,
                            "name": match.group(0),
                            "owner": match.group(1),
                            "user": own or "(outside roles)",
                        }
                    )
    names = Counter(hit["name"] for hit in hits)
    pairs = Counter(f"{hit['user']} -> {hit['owner']}" for hit in hits)
    return {
        "occurrences": hits,
        "total": len(hits),
        "distinct_names": len(names),
        "names": dict(sorted(names.items())),
        "by_user_and_owner": dict(sorted(pairs.items())),
    }


# ---- output -----------------------------------------------------------------
def print_trace(data: dict, show_list: bool, show_edges: bool) -> None:
    out = [
        f"playbook: {data['playbook']}",
        f"files touched: {data['files_touched']}  ("
        + ", ".join(f"{k}: {v}" for k, v in data["files_by_kind"].items())
        + ")",
    ]
    if show_list:
        out += [f"  {f}" for f in data["files"]]
    out.append(f"hops: {data['hops']}  (" + ", ".join(f"{k}: {v}" for k, v in data["hops_by_kind"].items()) + ")")
    if show_edges:
        out += [f"  {s} -> {d}  [{k}]" for s, d, k in data["edges"]]
    out.append(f"max YAML depth: {data['max_yaml_depth']} include edges; chain:")
    out += [f"  {'  ' * i}{p}" for i, p in enumerate(data["depth_chain"])]
    longest = data["longest_role_task_file"]
    out.append("longest role task file: " + (f"{longest['path']} ({longest['lines']} lines)" if longest else "none"))
    out.append(f"templated includes (globbed): {len(data['templated_includes'])}")
    out += [f"  {g['from']}: {g['name']} -> {', '.join(g['matches'])}" for g in data["templated_includes"]]
    gv = data["group_vars"]
    out.append("group_vars (not counted): playbook-adjacent: " + (", ".join(gv["playbook_adjacent"]) or "none"))
    out.append(
        "  inventory (apply with -i; ansible.cfg default "
        + (gv["default_inventory"][0] if gv["default_inventory"] else "none")
        + "): "
        + (", ".join(gv["inventory"]) or "none")
    )
    if data["not_followed"]:
        out.append(f"not followed: {len(data['not_followed'])}")
        out += [f"  {n['from']}: {n['kind']} {n['what']}" for n in data["not_followed"]]
    if data["unresolved"]:
        out.append(f"unresolved: {len(data['unresolved'])}")
        out += [f"  {u['from']}: {u['kind']} {u['what']}" for u in data["unresolved"]]
    print("\n".join(out))


def print_crossings(data: dict) -> None:
    out = [f"{hit['file']}:{hit['line']}: {hit['name']}" for hit in data["occurrences"]]
    out.append(f"total: {data['total']} occurrences, {data['distinct_names']} distinct names")
    out += [f"  {name} ({count})" for name, count in data["names"].items()]
    out.append("by file's role -> owning role:")
    out += [f"  {pair}: {count}" for pair, count in data["by_user_and_owner"].items()]
    print("\n".join(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("root", type=Path, help="repository (collection) root")
    parser.add_argument("playbook", nargs="?", help="playbook path, relative to the root")
    parser.add_argument("--private-crossings", action="store_true", help="list uses of other roles' private names")
    parser.add_argument("--list", action="store_true", help="list the files touched")
    parser.add_argument("--edges", action="store_true", help="list the edges (hops)")
    parser.add_argument("--json", action="store_true", help="JSON output")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.private_crossings:
        data = private_crossings(root)
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print_crossings(data)
        return 0
    if not args.playbook:
        parser.error("a playbook is required (or --private-crossings)")
    start = (root / args.playbook).resolve()
    if not start.is_file():
        parser.error(f"no such playbook: {start}")
    trace = Trace(root)
    trace.playbook(start)
    data = trace.report(start)
    if args.json:
        if not args.list:
            del data["files"]
        if not args.edges:
            del data["edges"]
        print(json.dumps(data, indent=2))
    else:
        print_trace(data, args.list, args.edges)
    return 0


if __name__ == "__main__":
    sys.exit(main())
