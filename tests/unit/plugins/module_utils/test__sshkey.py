# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The public key read from an OpenSSH private key equals what ssh-keygen -y derives (real ssh-keygen)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.avatar_mgmt.ops.plugins.filter.ssh_public_key import ssh_public_key
from ansible_collections.avatar_mgmt.ops.plugins.module_utils import _sshkey

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")


def keygen(tmp_path, *args):
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-C", "someone@laptop", "-f", str(path), *args], check=True)
    return path


@pytest.mark.parametrize("key_type", ["ed25519", "rsa", "ecdsa"])
def test_public_key_equals_ssh_keygen(tmp_path, key_type):
    path = keygen(tmp_path, "-t", key_type, "-N", "")
    want = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert _sshkey.public_key(path.read_text()).split()[:2] == want.split()[:2]
    assert ssh_public_key(path.read_text(), "avatar-production").endswith(" avatar-production")


def test_a_passphrase_protected_key_needs_no_passphrase(tmp_path):
    path = keygen(tmp_path, "-t", "ed25519", "-N", "a pass phrase")
    want = (tmp_path / "key.pub").read_text().split()[:2]
    assert _sshkey.public_key(path.read_text()).split() == want


def test_other_formats_fail_without_showing_the_key(tmp_path):
    path = keygen(tmp_path, "-t", "rsa", "-m", "PEM", "-N", "")
    text = path.read_text()
    with pytest.raises(AnsibleFilterError, match="ssh_public_key: not an OpenSSH private key") as err:
        ssh_public_key(text)
    assert text.splitlines()[1][:20] not in str(err.value)
    for bad in ("", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"):
        with pytest.raises(ValueError, match=r"openssh|OpenSSH|truncated"):
            _sshkey.public_key(bad)
    with pytest.raises(AnsibleFilterError, match="must be a string"):
        ssh_public_key(None)
