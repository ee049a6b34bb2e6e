# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The execution environment renders, offline, into a build context that installs what the jobs need.

hack/ee.sh (``make ee``) builds the collection artifact and runs the real
``ansible-builder create`` on execution-environment/execution-environment.yml;
these tests read what it wrote. The image itself cannot be built here (its
base image cannot be pulled), so the closest real step is run instead: the
rendered galaxy requirements are installed the way the image's galaxy stage
does (``ansible-galaxy collection install -r requirements.yml`` from the
context), offline, where the only community.docker is the one the pinned
``ansible`` package ships, so a pin that drifts from it fails.
A definition with a misspelled key must be refused before anything is rendered.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEFINITION = REPO / "execution-environment" / "execution-environment.yml"
BIN = Path(sys.executable).parent
ARTIFACT = "avatar_mgmt-ops.tar.gz"


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=300, **kwargs)


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of a requirements file."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


REQUIREMENTS = _pins(REPO / "requirements.txt")
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]


def _stages(containerfile: str) -> dict[str, list[str]]:
    """The Containerfile's instructions by build stage (``FROM ... AS <stage>``); ARGs before any FROM under ''."""
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in containerfile.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)$", line)
        if m:
            current = m.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    stage = tmp_path_factory.mktemp("ee")
    result = _run(["bash", str(REPO / "hack" / "ee.sh"), str(stage)], env={**os.environ, "VENV": sys.prefix})
    assert result.returncode == 0, f"hack/ee.sh failed:\n{result.stdout}\n{result.stderr}"
    context = stage / "context"
    return {
        "stage": stage,
        "context": context,
        "build": context / "_build",
        "definition": yaml.safe_load(DEFINITION.read_text(encoding="utf-8")),
        "stages": _stages((context / "Containerfile").read_text(encoding="utf-8")),
    }


def test_definition_is_schema_3_on_a_supported_base(rendered):
    definition = rendered["definition"]
    assert definition["version"] == 3
    base = definition["images"]["base_image"]["name"]
    # UBI 10: python3 is 3.12 for RHEL 10's whole life (ansible-core 2.19 needs 3.11+ on the controller).
    assert base.startswith("registry.access.redhat.com/ubi10/ubi:"), base
    assert definition["dependencies"]["python_interpreter"]["python_path"] == "/usr/bin/python3"
    assert f'ARG EE_BASE_IMAGE="{base}"' in rendered["stages"][""]
    assert rendered["stages"]["base"][0] == "FROM $EE_BASE_IMAGE AS base"


@pytest.mark.parametrize("package", ["ansible-core", "ansible-runner"])
def test_base_stage_installs_the_pinned_ansible(rendered, package):
    pin = f"{package}=={REQUIREMENTS[package]}"
    (refs,) = [line for line in rendered["stages"][""] if line.startswith("ARG ANSIBLE_INSTALL_REFS=")]
    assert pin in refs.split("=", 1)[1].strip('"').split(), f"the EE must install {pin} (requirements.txt): {refs}"
    base = rendered["stages"]["base"]
    install = base.index("RUN $PYCMD -m pip install --no-cache-dir $ANSIBLE_INSTALL_REFS")
    # Every pip install of the build runs under constraints.txt, from before the first one.
    constraint = base.index("ENV PIP_CONSTRAINT=/output/constraints.txt")
    assert base.index("COPY _build/constraints/constraints.txt /output/constraints.txt") < constraint < install
    assert constraint < base.index("RUN /output/scripts/pip_install $PYCMD")


def test_the_constraints_are_the_repository_s(rendered):
    copied = rendered["build"] / "constraints" / "constraints.txt"
    assert copied.read_text(encoding="utf-8") == (REPO / "constraints.txt").read_text(encoding="utf-8")
    pins = _pins(copied)
    for package in ("ansible-core", "ansible-runner", "requests"):
        assert pins[package] == REQUIREMENTS[package], package
    # The final image must not point pip at a file the build removes.
    final = rendered["stages"]["final"]
    assert final.index("ENV PIP_CONSTRAINT=") < final.index("RUN rm -rf /output")


def test_collection_artifact_is_copied_and_installed(rendered):
    artifact = rendered["build"] / "collections" / ARTIFACT
    with tarfile.open(artifact) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("avatar_mgmt", "ops", VERSION)

    requirements = yaml.safe_load((rendered["build"] / "requirements.yml").read_text(encoding="utf-8"))
    assert {"name": f"collections/{ARTIFACT}", "type": "file"} in requirements["collections"]

    galaxy_stage = rendered["stages"]["galaxy"]
    copy = galaxy_stage.index("COPY _build /build")
    assert galaxy_stage.index("WORKDIR /build") > copy
    (install,) = [i for i, line in enumerate(galaxy_stage) if "ansible-galaxy collection install" in line]
    assert install > copy
    assert '-r requirements.yml --collections-path "/usr/share/ansible/collections"' in galaxy_stage[install]
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in rendered["stages"]["final"]


def _shipped_community_docker() -> str:
    """The community.docker version of the ``ansible`` package in this virtual environment (the one tests run with)."""
    manifest = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections" / "community" / "docker" / "MANIFEST.json"
    return json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]


def test_community_docker_is_the_version_the_ansible_package_ships(rendered):
    version = _shipped_community_docker()
    requirements = yaml.safe_load((rendered["build"] / "requirements.yml").read_text(encoding="utf-8"))
    assert {"name": "community.docker", "version": f"=={version}"} in requirements["collections"]


def test_galaxy_requirements_install_offline(rendered, tmp_path):
    """The galaxy stage's install, run here: the artifact installs, community.docker resolves to the tested one."""
    target = tmp_path / "collections"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(target)}
    install = _run(
        [BIN / "ansible-galaxy", "collection", "install", "--offline", "-r", "requirements.yml", "-p", target],
        cwd=rendered["build"],
        env=env,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert f"avatar_mgmt.ops:{VERSION} was installed successfully" in install.stdout
    assert f"'community.docker:{_shipped_community_docker()}' is already installed" in install.stdout
    verify = _run([BIN / "ansible-galaxy", "collection", "verify", "--offline", "avatar_mgmt.ops"], env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_python_requirements_for_the_control_node(rendered):
    assert _pins(rendered["build"] / "requirements.txt") == {"requests": REQUIREMENTS["requests"]}
    # community.docker's Docker SDK and paramiko serve modules that run on the managed servers.
    assert (rendered["build"] / "exclude-collections.txt").read_text(encoding="utf-8").split() == ["community.docker"]
    builder = rendered["stages"]["builder"]
    (introspect,) = [line for line in builder if "introspect.py introspect" in line]
    assert "--user-pip=requirements.txt" in introspect
    assert "--exclude-collection-reqs=exclude-collections.txt" in introspect


def test_openssh_clients_is_installed(rendered):
    bindep = rendered["build"] / "bindep.txt"
    assert "openssh-clients" in [line.split()[0] for line in bindep.read_text(encoding="utf-8").splitlines() if line]
    builder = rendered["stages"]["builder"]
    assert "COPY _build/bindep.txt bindep.txt" in builder
    (introspect,) = [line for line in builder if "introspect.py introspect" in line]
    assert "--user-bindep=bindep.txt" in introspect
    assert builder.index("RUN /output/scripts/assemble") > builder.index(introspect)
    final = rendered["stages"]["final"]
    assert final.index("RUN /output/scripts/install-from-bindep && rm -rf /output/wheels") > final.index(
        "COPY --from=builder /output/ /output/"
    )


def test_final_step_lists_and_verifies_the_collections(rendered):
    final = rendered["stages"]["final"]
    listing = final.index("RUN ansible-galaxy collection list")
    verify = final.index("RUN ansible-galaxy collection verify --offline avatar_mgmt.ops community.docker")
    # After the collections and system packages are in, before the image is finished.
    assert final.index("COPY --from=galaxy /usr/share/ansible /usr/share/ansible") < listing < verify
    assert final.index("RUN /output/scripts/install-from-bindep && rm -rf /output/wheels") < listing
    assert verify < final.index("RUN rm -rf /output")


@pytest.mark.parametrize(
    "original, misspelled, key",
    [
        ("\ndependencies:\n", "\ndependancies:\n", "dependancies"),
        ("\n  append_final:\n", "\n  append_finale:\n", "append_finale"),
        ("\n    package_pip: ansible-core==", "\n    package_pipe: ansible-core==", "package_pipe"),
    ],
)
def test_misspelled_key_is_refused(tmp_path, original, misspelled, key):
    text = DEFINITION.read_text(encoding="utf-8")
    assert text.count(original) == 1, f"the definition no longer has {original!r}: update this test"
    bad = tmp_path / "execution-environment.yml"
    bad.write_text(text.replace(original, misspelled), encoding="utf-8")
    result = _run(
        [BIN / "ansible-builder", "create", "-f", bad, "--context", tmp_path / "context"],
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert f"'{key}' was unexpected" in result.stdout + result.stderr
    assert not (tmp_path / "context").exists(), "nothing may be rendered from a refused definition"
