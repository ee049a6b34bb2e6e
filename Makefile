# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The two commands of the README:
#   make test   set everything up on a fresh machine and run every test
#   make demo   start the sandbox and deploy to it
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export AVATAR_PLATFORM_STATE := $(CURDIR)/.cache/platform
# Only this checkout is avatar_mgmt.ops: a stale copy under ~/.ansible must not shadow it.
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
MOLECULE_SCENARIOS ?= default deploy faults backup jobs
# The execution environment's image: the name controller/ gives AWX, tagged with the collection's version.
EE_IMAGE ?= ghcr.io/rayhu/avatar-mgmt-ee:$(shell sed -n 's/^version: *//p' galaxy.yml)
EE_RUNTIME ?= docker

.PHONY: test demo venv restic docker images platform lint sanity unit integration molecule build-check ee ee-image bench bench-release bench-deploy bench-backup clean down

test:
	MAKE="$(MAKE)" VENV="$(VENV)" MOLECULE_SCENARIOS="$(MOLECULE_SCENARIOS)" bash hack/test-suite.sh

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt constraints.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	touch $@

docker:
	bash hack/ensure-docker.sh

# The unit tests of the off-host copy run a real restic (Debian's package) against a local repository.
restic:
	@command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends restic >/dev/null; }

images: docker
	bash tests/platform/platform.sh images

platform: images venv
	bash tests/platform/platform.sh registry

lint: venv
	@# A copy of this collection under ~/.ansible (left by older molecule runs) would
	@# shadow the checkout for ansible-lint: only the checkout is avatar_mgmt.ops.
	rm -rf $(HOME)/.ansible/collections/ansible_collections/avatar_mgmt/ops
	$(BIN)/yamllint -s .
	$(BIN)/ruff check plugins tests bench hack molecule
	$(BIN)/ruff format --check plugins tests bench hack molecule
	$(BIN)/ansible-lint
	bash hack/spdx.sh --check
	@# Every vault value encrypted on its own (or still a placeholder): AWX imports the inventories without a password.
	$(PY) hack/vault_inline.py check inventories/*/group_vars/*/vault.yml

sanity: venv
	VENV=$(VENV) bash hack/sanity.sh

# Two workers (pytest-xdist): about 250 s of CPU in 165 s on two CPUs (ansible-playbook runs, Docker, restic); four
# workers took as long (167 s).
unit: venv restic
	$(BIN)/pytest -q -n 2 tests/unit

integration: venv images
	$(BIN)/pytest -q tests/integration

build-check: venv
	bash hack/build-check.sh

# The execution environment (execution-environment/): `make ee` renders its build context in
# .cache/ee/context, offline; `make ee-image` builds the image, which needs its base image
# (registry.access.redhat.com), Galaxy and PyPI - not possible on the test machines.
ee: venv
	bash hack/ee.sh .cache/ee

ee-image: ee
	$(BIN)/ansible-builder build -f .cache/ee/execution-environment.yml --context .cache/ee/context \
		--output-filename Containerfile --container-runtime $(EE_RUNTIME) --tag $(EE_IMAGE)

molecule: venv platform
	@for s in $(MOLECULE_SCENARIOS); do t=$$(date +%s); $(BIN)/molecule test -s $$s || exit 1; \
		echo "make molecule: scenario $$s took $$(( $$(date +%s) - t ))s"; done

demo: venv images
	bash hack/demo.sh

# Not part of `make test`. bench-deploy uses the Docker platform (sandbox production server):
# on a shared machine run it under the platform lock. BENCH_ARGS e.g. "--runs 1".
bench: bench-release bench-deploy

bench-release: venv
	$(PY) bench/release_tag_bench.py

bench-deploy: venv images
	$(PY) bench/deploy_bench.py $(BENCH_ARGS)

# Not part of `make bench` either: about 2 GB written on the sandbox production server and a backup host.
bench-backup: venv images
	$(PY) bench/backup_bench.py $(BENCH_ARGS)

down:
	bash tests/platform/platform.sh down

clean: down
	rm -rf .cache $(VENV)
