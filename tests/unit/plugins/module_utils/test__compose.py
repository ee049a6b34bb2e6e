# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import pytest
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._compose import image_changes, service_images

OLD = {"services": {"db": {"image": "pg:15"}, "api": {"image": "r/api@sha256:aa"}, "gone": {"image": "x"}}}
NEW = {
    "services": {"db": {"image": "pg:15"}, "api": {"image": "r/api@sha256:bb"}, "frontend": {"image": "r/fe@sha256:cc"}}
}


def test_changes_list_only_differing_services():
    assert image_changes(NEW, OLD) == [
        {"service": "api", "from": "r/api@sha256:aa", "to": "r/api@sha256:bb"},
        {"service": "frontend", "from": None, "to": "r/fe@sha256:cc"},
        {"service": "gone", "from": "x", "to": None},
    ]


@pytest.mark.parametrize("old", [None, {}, {"services": {}}])
def test_nothing_running(old):
    assert [c["service"] for c in image_changes(NEW, old)] == ["db", "api", "frontend"]


def test_same_file_no_changes():
    assert image_changes(NEW, NEW) == []


@pytest.mark.parametrize("bad", [["a"], {"services": ["a"]}])
def test_bad_documents(bad):
    with pytest.raises(ValueError, match="mapping"):
        service_images(bad)
