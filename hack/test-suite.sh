#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# `make test`: every stage, fast checks first, with the long molecule scenarios running beside the rest so
# the suite takes about as long as its longest lane.
#
#   1. in order: venv, docker, images, lint (a failure stops here), with the GHCR stand-in (platform)
#      started beside lint;
#   2. then four lanes at once, each stage's output in .cache/test-logs/<stage>.log (printed when the
#      stage ends; a failure prints it whole and fails the suite):
#        lane A: molecule default, molecule backup
#        lane B: molecule deploy
#        lane C: molecule faults, integration
#        lane D: unit, build-check, sanity, molecule jobs
#      The unit tests and ansible-test use the CPUs while the scenarios mostly wait on their servers, so
#      they run beside them; a failed stage is printed at once and no lane starts another stage after it
#      (fail fast: the stages already running finish, then the suite fails). The jobs scenario starts
#      last, after the other scenarios' first NPM starts. Balanced by the times of fresh-clone runs
#      (docs/testing.md): default + backup is the longest lane (in the last one, faults and deploy
#      ended some 10 minutes before it).
#      The scenarios use their own servers and ports and share the GHCR stand-in, which stays
#      up: the deploy scenario's outage tests cut only its own server off the registry
#      (`platform.sh cut-registry SERVER`), so the lanes never wait for one another.
#
# Per-stage times: "make test: <stage> took Ns". MOLECULE_SCENARIOS (make's variable)
# still chooses the scenarios; `make molecule` runs them one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
make=${MAKE:-make}
# The scenarios get it as an absolute path: their scripts (tests/platform/platform.sh) run in other folders.
venv=${VENV:-.venv}
case $venv in /*) ;; *) venv=$root/$venv ;; esac
scenarios=" ${MOLECULE_SCENARIOS-default deploy faults backup jobs} "
logs=$root/.cache/test-logs
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs/.failed"
start=$(date +%s)

stage() {  # stage NAME COMMAND... : run in the foreground, output straight through; fails when it fails
  local name=$1 t; shift
  t=$(date +%s)
  "$@" || { echo "make test: $name FAILED after $(( $(date +%s) - t ))s"; return 1; }
  echo "make test: $name took $(( $(date +%s) - t ))s"
}

logged() {  # logged NAME COMMAND... : run with output into its log; print it when done
  local name=$1 t rc=0; shift
  # Fail fast: after any failed stage, no lane starts another one.
  if [ -e "$logs/.failed" ]; then
    echo "make test: $name not started (an earlier stage failed: $(cat "$logs/.failed"))" | flock "$logs/.print" cat
    return 1
  fi
  t=$(date +%s)
  "$@" >"$logs/$name.log" 2>&1 || rc=$?
  {
    if [ "$rc" -eq 0 ]; then
      # A passing stage: its end is enough (the whole log stays in .cache/test-logs).
      echo "----- $name (passed; last lines of .cache/test-logs/$name.log)"
      tail -n 25 "$logs/$name.log"
    else
      echo "----- $name FAILED (exit $rc): whole output"
      cat "$logs/$name.log"
    fi
    echo "make test: $name took $(( $(date +%s) - t ))s$([ "$rc" -eq 0 ] || echo " FAILED")"
  } | flock "$logs/.print" cat
  [ "$rc" -eq 0 ] || echo "$name" >>"$logs/.failed"
  return "$rc"
}

molecule_stage() {  # molecule_stage SCENARIO: one scenario, if selected
  local s=$1
  case $scenarios in *" $s "*) ;; *) return 0 ;; esac
  logged "molecule-$s" env VENV="$venv" "$venv/bin/molecule" test -s "$s"
}

for s in venv docker images; do
  stage "$s" "$make" --no-print-directory "$s" || exit 1
done
# The GHCR stand-in (start, push the release images) is Docker and disk work: it runs while lint uses
# the CPUs, and the lanes start once both are done.
logged platform "$make" --no-print-directory platform & p=$!
stage lint "$make" --no-print-directory lint || { wait "$p" || true; exit 1; }
wait "$p" || { echo "make test: FAILED after $(( $(date +%s) - start ))s (logs in .cache/test-logs)"; exit 1; }

lane_a() { molecule_stage default && molecule_stage backup; }
lane_b() { molecule_stage deploy; }
lane_c() { molecule_stage faults && logged integration "$make" --no-print-directory integration; }
lane_d() {
  logged unit "$make" --no-print-directory unit \
    && logged build-check "$make" --no-print-directory build-check \
    && logged sanity "$make" --no-print-directory sanity \
    && molecule_stage jobs
}

lane_a & a=$!
lane_b & b=$!
lane_c & c=$!
lane_d & d=$!
rc=0
wait "$a" || rc=1
wait "$b" || rc=1
wait "$c" || rc=1
wait "$d" || rc=1
if [ "$rc" -ne 0 ]; then
  echo "make test: FAILED after $(( $(date +%s) - start ))s (logs in .cache/test-logs)"
  exit 1
fi
echo "make test: venv, docker, images, lint (yamllint, ruff, ansible-lint, SPDX headers), unit, build," \
  "molecule ($(xargs <<<"$scenarios")), sanity (ansible-test), integration (real registries) passed in $(( $(date +%s) - start ))s"
