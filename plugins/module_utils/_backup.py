# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Logic shared by the backup role and modules: read psql's report, describe and check files, compare row counts."""

import hashlib
import os

CHUNK = 1 << 20
# A backup's kind as the manifest records it; a manifest without one is a scheduled backup
# (they were written before kinds were recorded, by the nightly run).
SCHEDULED = "scheduled"


def parse_psql_report(lines):
    """Read the lines the dump script prints (psql -At).

    ``version|15.7`` gives the server version; ``rows|schema.table|count`` one row
    count per table. Other lines are ignored. Returns {'postgres_version', 'row_counts'}.
    """
    version = ""
    counts = {}
    for line in lines:
        parts = line.strip().split("|")
        if parts[0] == "version" and len(parts) == 2:
            version = parts[1]
        elif parts[0] == "rows":
            if len(parts) != 3 or not parts[2].isdigit():
                raise ValueError(f"unexpected row count line from psql: {line!r}")
            counts[parts[1]] = int(parts[2])
    if not version:
        raise ValueError("psql did not report the server version; the dump script did not run to its end")
    return {"postgres_version": version, "row_counts": counts}


def file_facts(stat_results):
    """Map file name -> {size, sha256} from the results of a looped ansible.builtin.stat."""
    facts = {}
    for result in stat_results:
        stat = result.get("stat") or {}
        if not stat.get("exists"):
            raise ValueError("backup file {} is missing".format(result.get("item")))
        facts[stat["path"].rsplit("/", 1)[-1]] = {"size": stat["size"], "sha256": stat["checksum"]}
    return facts


def count_mismatches(expected, actual):
    """List human-readable differences between two {table: rows} maps (empty when equal)."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want != got:
            problems.append(
                "{}: {} rows in the manifest, {} after restore".format(
                    table, "no" if want is None else want, "no table" if got is None else got
                )
            )
    return problems


def file_mismatches(expected, stat_results):
    """List files whose size or sha256 differs from the manifest's {name: {size, sha256}}."""
    seen = {}
    for result in stat_results:
        stat = result.get("stat") or {}
        name = result.get("item")
        seen[name] = stat
    problems = []
    for name in sorted(expected):
        stat = seen.get(name) or {}
        if not stat.get("exists"):
            problems.append(f"{name} is missing")
        elif stat.get("checksum") != expected[name].get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest")
        elif stat.get("size") != expected[name].get("size"):
            problems.append(f"{name}: size differs from the manifest")
    return problems


def checksum_problems(folder, files):
    """Read each of ``files`` ({name: {size, sha256}}, a manifest's) in ``folder`` and list those that differ.

    The problems name the file: ``db.dump is missing``, ``db.dump: sha256 differs from the manifest``,
    ``db.dump: size differs from the manifest``. Empty when every file matches.
    """
    problems = []
    for name in sorted(files):
        path = os.path.join(folder, name)
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda f=f: f.read(CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError:
            problems.append(f"{name} is missing")
            continue
        if digest.hexdigest() != (files[name] or {}).get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest")
        elif size != (files[name] or {}).get("size"):
            problems.append(f"{name}: size differs from the manifest")
    return problems


def backup_kind(manifest):
    """The kind of a backup (scheduled, pre-deploy, safety...); ``scheduled`` when its manifest names none."""
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    return kind if isinstance(kind, str) and kind else SCHEDULED


def list_line(manifest):
    """One line of the backup list: id, time, kind, release, size in MB, verification result."""
    size = sum(f.get("size", 0) for f in (manifest.get("files") or {}).values()) / 1048576.0
    release = (manifest.get("release") or {}).get("version") or "-"
    verified = (manifest.get("verification") or {}).get("result", "-")
    return (
        f"{manifest.get('id', '?'):<18} {manifest.get('time', '?'):<21} {backup_kind(manifest):<10} "
        f"{release:<13} {size:>7.1f}  {verified}"
    )


def stack_argument_spec():
    """The options of the stack a backup is taken of or restored into (doc fragment avatar_mgmt.ops.backup_stack)."""
    return {
        "project_dir": {"type": "path", "required": True},
        "project_name": {"type": "str", "required": True},
        "compose_file": {"type": "str", "required": True},
        "db_service": {"type": "str", "default": "db"},
        "db_user": {"type": "str", "required": True},
        "db_name": {"type": "str", "required": True},
        "archives": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "name": {"type": "str", "required": True},
                "paths": {"type": "list", "elements": "str", "required": True},
                "exclude": {"type": "list", "elements": "str", "default": []},
            },
        },
    }
