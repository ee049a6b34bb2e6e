# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every role's public interface is documented three times and the copies must agree.

For each role under ``roles/`` (picked up automatically, so a new role is
checked as soon as its folder exists):

* ``meta/argument_specs.yml`` (entry point ``main``) documents exactly the
  variables of ``defaults/main.yml``, no more and no fewer;
* each default in the argument spec equals the value in ``defaults/main.yml``
  (defaults that are Jinja templates are computed at run time and skipped);
* options of other entry points (``tasks_from``) are public variables too, with
  the same defaults;
* ``README.md`` has a variables section that names every option.

A role without ``defaults/main.yml``, ``meta/argument_specs.yml`` or
``README.md`` fails with a message saying which file is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES_DIR = REPO / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads Ansible's ``!vault`` and ``!unsafe`` tags."""


class _Tagged(str):
    """A value behind an Ansible tag: compared as text, treated like a template."""


def _tagged(loader, node):
    return _Tagged(loader.construct_scalar(node))


_Loader.add_constructor("!vault", _tagged)
_Loader.add_constructor("!unsafe", _tagged)


def _load(path: Path):
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)  # a SafeLoader subclass


def _require(role: str, relative: str) -> Path:
    path = ROLES_DIR / role / relative
    if not path.is_file():
        pytest.fail(
            f"role {role} has no {relative}: every role documents its variables in "
            "defaults/main.yml, meta/argument_specs.yml and README.md (see STYLE.md)"
        )
    return path


def _defaults(role: str) -> dict:
    data = _load(_require(role, "defaults/main.yml"))
    if data is None:
        return {}
    assert isinstance(data, dict), f"roles/{role}/defaults/main.yml is not a mapping"
    return data


def _entry_points(role: str) -> dict:
    data = _load(_require(role, "meta/argument_specs.yml"))
    assert isinstance(data, dict), f"roles/{role}/meta/argument_specs.yml is not a mapping"
    specs = data.get("argument_specs")
    assert isinstance(specs, dict), f"roles/{role}/meta/argument_specs.yml has no argument_specs mapping"
    assert "main" in specs, f"roles/{role}/meta/argument_specs.yml has no 'main' entry point"
    return specs


def _options(role: str, entry_point: str = "main") -> dict:
    return _entry_points(role)[entry_point].get("options") or {}


def _is_templated(value) -> bool:
    if isinstance(value, _Tagged):
        return True
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_is_templated(k) or _is_templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_is_templated(v) for v in value)
    return False


def _same(a, b) -> bool:
    """Equality that tells 1 from True and 1 from 1.0, as Ansible's type checks would."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_names_match_defaults(role):
    defaults = set(_defaults(role))
    options = set(_options(role))
    assert options == defaults, (
        f"roles/{role}: meta/argument_specs.yml (main) and defaults/main.yml disagree; "
        f"only in the argument spec: {sorted(options - defaults)}; only in defaults: {sorted(defaults - options)}"
    )


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_defaults_equal_defaults(role):
    defaults = _defaults(role)
    wrong = []
    for entry_point, spec in _entry_points(role).items():
        for name, option in (spec.get("options") or {}).items():
            if name not in defaults:
                if entry_point != "main":
                    wrong.append(f"{name} (entry point {entry_point}) is not in defaults/main.yml")
                continue  # reported by test_argument_spec_names_match_defaults
            value = defaults[name]
            if _is_templated(value):
                continue
            if "default" not in (option or {}):
                wrong.append(
                    f"{name} (entry point {entry_point}) has no default in the spec; defaults/main.yml has {value!r}"
                )
            elif not _same(option["default"], value):
                wrong.append(
                    f"{name} (entry point {entry_point}): spec default {option['default']!r}, "
                    f"defaults/main.yml {value!r}"
                )
    assert not wrong, f"roles/{role}: " + "; ".join(wrong)


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _variables_section(text: str) -> str | None:
    """The text under the first heading that mentions variables, up to the next heading of its level or above."""
    lines = text.splitlines()
    in_fence = False
    start = level = None
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = _HEADING.match(line)
        if not match:
            continue
        depth = len(match.group(1))
        if start is None:
            if "variable" in match.group(2).lower():
                start, level = i + 1, depth
        elif depth <= level:
            return "\n".join(lines[start:i])
    return None if start is None else "\n".join(lines[start:])


@pytest.mark.parametrize("role", ROLES)
def test_readme_lists_every_option(role):
    readme = _require(role, "README.md").read_text(encoding="utf-8")
    section = _variables_section(readme)
    assert section is not None, f"roles/{role}/README.md has no heading containing 'Variables'"
    names = set()
    for spec in _entry_points(role).values():
        names |= set(spec.get("options") or {})
    missing = sorted(n for n in names if not re.search(rf"`{re.escape(n)}`", section))
    assert not missing, f"roles/{role}/README.md: the variables section does not name (as `code`): {missing}"
