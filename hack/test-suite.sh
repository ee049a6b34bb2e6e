#!/usr/bin/env bash
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# `make test`: every stage, fast checks first, with the long molecule `deploy` and `faults`
# scenarios running beside the rest so the suite takes about as long as the longest lane.
#
#   1. in order: venv, docker, images, lint, unit, build-check (a failure stops here), with the
#      GHCR stand-in (platform) started beside lint, unit and build-check;
#   2. then three lanes at once, each stage's output in .cache/test-logs/<stage>.log
#      (printed when the stage ends; a failure prints it whole and fails the suite):
#        lane A: molecule default, molecule backup
#        lane B: molecule deploy, molecule jobs (the AWX jobs, with ansible-runner), integration
#        lane C: molecule faults, sanity
#      Three lanes: a fourth (unit and sanity beside the scenarios) kept both CPUs so busy that every
#      scenario ran far slower (a fresh-clone run: faults 1082 -> 2415 s, default 656 -> 861 s).
#      Balanced by the times of a fresh-clone run (docs/testing.md): deploy alone is the longest;
#      faults, once its serial test's second server came up with the first, has room for sanity and
#      integration (a run of ef56b23: default + backup 1951 s, deploy + jobs 1916 s, faults 1474 s). Since
#      faults grew to 20 tests, integration runs after jobs (a fresh-clone run of b9db5a5: default + backup
#      1757 s, deploy + jobs 1721 s, faults + sanity + integration 1835 s).
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
rm -f "$logs"/*.log "$logs"/.*.rc
start=$(date +%s)

stage() {  # stage NAME COMMAND... : run in the foreground, output straight through; fails when it fails
  local name=$1 t; shift
  t=$(date +%s)
  "$@" || { echo "make test: $name FAILED after $(( $(date +%s) - t ))s"; return 1; }
  echo "make test: $name took $(( $(date +%s) - t ))s"
}

stamp() {  # each line of standard input behind the seconds since STAGE_START: where a stage's time went
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%4ds %s\n' "$(( EPOCHSECONDS - STAGE_START ))" "$line"
  done
}

logged() {  # logged NAME COMMAND... : run with output into its log (each line timed); print it when done
  local name=$1 t rc=0; shift
  t=$(date +%s)
  # (the exit code through a file: the left side of a pipe is a subshell of its own)
  { "$@" && echo 0 >"$logs/.$name.rc" || echo $? >"$logs/.$name.rc"; } 2>&1 | STAGE_START=$t stamp >"$logs/$name.log"
  rc=$(cat "$logs/.$name.rc")
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
# The GHCR stand-in (start, push the release images) is Docker and disk work: it runs while lint, unit
# and build-check use the CPUs, and the lanes start once both are done. Lint beside unit was tried (fresh
# clone: unit 236 s, lint 128 s side by side, against 65 + 162 s one after the other): no faster.
logged platform "$make" --no-print-directory platform & p=$!
for s in lint unit build-check; do
  # A failure stops the run once the registry is done (nothing left running behind the suite).
  stage "$s" "$make" --no-print-directory "$s" || { wait "$p" || true; exit 1; }
done
wait "$p" || { echo "make test: FAILED after $(( $(date +%s) - start ))s (logs in .cache/test-logs)"; exit 1; }

lane_a() { molecule_stage default && molecule_stage backup; }
lane_b() {
  molecule_stage deploy && molecule_stage jobs && logged integration "$make" --no-print-directory integration
}
lane_c() { molecule_stage faults && logged sanity "$make" --no-print-directory sanity; }

lane_a & a=$!
lane_b & b=$!
lane_c & c=$!
rc=0
wait "$a" || rc=1
wait "$b" || rc=1
wait "$c" || rc=1
if [ "$rc" -ne 0 ]; then
  echo "make test: FAILED after $(( $(date +%s) - start ))s (logs in .cache/test-logs)"
  exit 1
fi
echo "make test: venv, docker, images, lint (yamllint, ruff, ansible-lint, SPDX headers), unit, build," \
  "molecule ($(xargs <<<"$scenarios")), sanity (ansible-test), integration (real registries) passed in $(( $(date +%s) - start ))s"
