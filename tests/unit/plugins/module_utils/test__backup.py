# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import hashlib

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._backup import (
    backup_kind,
    checksum_problems,
    count_mismatches,
    file_facts,
    file_mismatches,
    list_line,
    parse_psql_report,
)


def test_parse_report():
    lines = ["BEGIN", "version|15.7 (Debian 15.7-1)", "rows|public.avatars|3", "rows|public.a|b|0", "COMMIT"]
    with pytest.raises(ValueError, match="unexpected row count"):
        parse_psql_report(lines)
    report = parse_psql_report(lines[:3] + ["rows|public.empty|0", "COMMIT"])
    assert report["postgres_version"] == "15.7 (Debian 15.7-1)"
    assert report["row_counts"] == {"public.avatars": 3, "public.empty": 0}


def test_report_without_version_fails():
    with pytest.raises(ValueError, match="version"):
        parse_psql_report(["rows|public.a|1"])


def test_file_facts():
    results = [{"item": "db.dump", "stat": {"exists": True, "path": "/b/.tmp-1/db.dump", "size": 10, "checksum": "ab"}}]
    assert file_facts(results) == {"db.dump": {"size": 10, "sha256": "ab"}}
    with pytest.raises(ValueError, match=r"x\.tar\.gz is missing"):
        file_facts([{"item": "x.tar.gz", "stat": {"exists": False}}])


@pytest.mark.parametrize(
    "expected, actual, problems",
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, ["a: 1 rows in the manifest, 2 after restore"]),
        ({"a": 1}, {}, ["a: 1 rows in the manifest, no table after restore"]),
        ({}, {"b": 0}, ["b: no rows in the manifest, 0 after restore"]),
    ],
)
def test_count_mismatches(expected, actual, problems):
    assert count_mismatches(expected, actual) == problems


def test_file_mismatches():
    expected = {
        "db.dump": {"size": 10, "sha256": "ab"},
        "x.tar.gz": {"size": 5, "sha256": "cd"},
        "y.tar.gz": {"size": 5, "sha256": "ef"},
    }
    results = [
        {"item": "db.dump", "stat": {"exists": True, "size": 10, "checksum": "ab"}},
        {"item": "x.tar.gz", "stat": {"exists": True, "size": 5, "checksum": "zz"}},
        {"item": "y.tar.gz", "stat": {"exists": False}},
    ]
    assert file_mismatches(expected, results) == ["x.tar.gz: sha256 differs from the manifest", "y.tar.gz is missing"]
    assert file_mismatches(expected, results[:1]) == ["x.tar.gz is missing", "y.tar.gz is missing"]


def test_list_line():
    line = list_line(
        {
            "id": "20261128T020005Z",
            "time": "2026-11-28T02:00:05Z",
            "release": {"version": "v1.2.0"},
            "files": {"a": {"size": 1048576}, "b": {"size": 1048576}},
            "verification": {"result": "ok"},
        }
    )
    assert line.split() == ["20261128T020005Z", "2026-11-28T02:00:05Z", "scheduled", "v1.2.0", "2.0", "ok"]
    assert list_line({"id": "20261201T101500Z", "kind": "safety"}).split()[2] == "safety"


def test_checksum_problems(tmp_path):
    (tmp_path / "db.dump").write_bytes(b"PGDMP 123")
    (tmp_path / "x.tar.gz").write_bytes(b"abc")
    files = {
        "db.dump": {"size": 9, "sha256": hashlib.sha256(b"PGDMP 123").hexdigest()},
        "x.tar.gz": {"size": 3, "sha256": hashlib.sha256(b"abd").hexdigest()},
        "y.tar.gz": {"size": 1, "sha256": "00"},
    }
    assert checksum_problems(str(tmp_path), files) == [
        "x.tar.gz: sha256 differs from the manifest",
        "y.tar.gz is missing",
    ]
    files["x.tar.gz"] = {"size": 4, "sha256": hashlib.sha256(b"abc").hexdigest()}
    assert checksum_problems(str(tmp_path), files) == [
        "x.tar.gz: size differs from the manifest",
        "y.tar.gz is missing",
    ]
    assert checksum_problems(str(tmp_path), {"db.dump": files["db.dump"]}) == []


@pytest.mark.parametrize(
    "manifest, kind",
    [
        ({"kind": "safety"}, "safety"),
        ({"kind": "pre-deploy"}, "pre-deploy"),
        ({}, "scheduled"),
        ({"kind": ""}, "scheduled"),
    ],
)
def test_backup_kind(manifest, kind):
    assert backup_kind(manifest) == kind
