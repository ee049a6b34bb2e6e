# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A restic repository for the unit tests, made once by ``restic init`` and copied for each test.

restic derives the key of a repository from its password with scrypt, on every command, with the cost it
measured at ``init`` (about 0.3 s of CPU here; several seconds on a busy machine): a test that runs thirty
restic commands spent most of its time there. ``cheapen_key`` re-wraps the repository's master key under
the same password with a small scrypt cost, as restic's own tests do (``TestUseLowSecurityKDFParameters``).
Everything else is the repository ``restic init`` made: the config, the master key, the encryption of
every file are restic's. The key file follows restic's design document: the scrypt output is an AES-256
key and a Poly1305-AES key (k, r); ``data`` is IV || AES-CTR(master key JSON) || MAC of the ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

PASSWORD = "correct horse battery staple 42"
# scrypt N=1024, r=8, p=1: 1 MiB and a few milliseconds (restic's init chooses N=32768 and more).
CHEAP = {"N": 1024, "r": 8, "p": 1}


def _user_key(password, key):
    raw = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(key["salt"]),
        n=key["N"],
        r=key["r"],
        p=key["p"],
        maxmem=256 * key["N"] * key["r"] + (1 << 20),
        dklen=64,
    )
    return raw[:32], raw[32:48], raw[48:64]


def _mac(mac_k, mac_r, iv, ciphertext):
    encryptor = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor()  # Poly1305-AES: the AES of the nonce
    s = encryptor.update(iv) + encryptor.finalize()
    return Poly1305.generate_tag(mac_r + s, ciphertext)


def _ctr(enc_key, iv, data):
    cipher = Cipher(algorithms.AES(enc_key), modes.CTR(iv))
    return cipher.encryptor().update(data)


def decrypt_key(password, key):
    """The master key JSON (bytes) a key file wraps; ValueError when the password or the MAC is wrong."""
    enc_key, mac_k, mac_r = _user_key(password, key)
    data = base64.b64decode(key["data"])
    iv, ciphertext, tag = data[:16], data[16:-16], data[-16:]
    if not hmac.compare_digest(_mac(mac_k, mac_r, iv, ciphertext), tag):
        raise ValueError("the password does not open this restic key (MAC mismatch)")
    return _ctr(enc_key, iv, ciphertext)


def cheapen_key(repository, password):
    """Replace the repository's only key file with one of the same master key and password, cheap to derive."""
    keys = os.path.join(repository, "keys")
    (name,) = os.listdir(keys)
    with open(os.path.join(keys, name), encoding="utf-8") as handle:
        key = json.load(handle)
    master = decrypt_key(password, key)
    key.update(CHEAP, salt=base64.b64encode(os.urandom(64)).decode())
    enc_key, mac_k, mac_r = _user_key(password, key)
    iv = os.urandom(16)
    ciphertext = _ctr(enc_key, iv, master)
    key["data"] = base64.b64encode(iv + ciphertext + _mac(mac_k, mac_r, iv, ciphertext)).decode()
    assert decrypt_key(password, key) == master
    text = json.dumps(key).encode()
    os.remove(os.path.join(keys, name))
    path = os.path.join(keys, hashlib.sha256(text).hexdigest())
    with open(path, "wb") as handle:
        handle.write(text)
    os.chmod(path, 0o400)


def make_template(folder, password=PASSWORD):
    """``restic init`` a repository in ``folder``/repo (password in ``folder``/password), its key made cheap."""
    restic = shutil.which("restic")
    if restic is None:
        return None
    with open(os.path.join(folder, "password"), "w", encoding="utf-8") as handle:
        handle.write(password)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "RESTIC_PASSWORD_FILE": os.path.join(folder, "password"),
        "RESTIC_CACHE_DIR": os.path.join(folder, "cache"),
    }
    repo = os.path.join(folder, "repo")
    subprocess.run([restic, "-r", repo, "init"], env=env, capture_output=True, check=True)
    cheapen_key(repo, password)
    return repo
