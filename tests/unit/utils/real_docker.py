# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the unit tests on a real Docker engine (marked ``docker``) share: a command run, and why they skip."""

from __future__ import annotations

import shutil
import subprocess

# The test image the platform builds (tests/platform/build-bases.sh).
IMAGE = "avatar-test/debian:bookworm"


def sh(argv, timeout=120):
    """``(returncode, stdout, stderr)`` of ``argv``."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def skip_reason(has_sdk, image=IMAGE):
    """Why a real-engine test cannot run here (no Docker SDK, CLI, engine, compose v2 or test image), or None."""
    if not has_sdk:
        return "the Docker SDK for Python is not installed"
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        rc, _out, err = sh(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
        if rc != 0:
            return "no Docker engine answers `docker info`: " + (err.strip().splitlines() or ["?"])[-1]
        if sh(["docker", "compose", "version"], timeout=20)[0] != 0:
            return "the docker compose v2 plugin is missing"
        if sh(["docker", "image", "inspect", image], timeout=20)[0] != 0:
            return f"test image {image} is not built (tests/platform/build-bases.sh builds it)"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker did not answer: {exc}"
    return None
