#!/usr/bin/env bash
# The test suite: unit and behaviour tests (every experiment at smoke scale, the browser check of the
# built book), then the chapters: strictly against their committed cached-mode outputs, and once
# more live at smoke scale so the recompute path of every chapter runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
export BNLAB_PROGRESS=0
unset MPLBACKEND   # the kernel's inline backend must draw the figures that nbval compares
# One run store for the whole suite: the unit tests train each unique smoke config once into it, and the live
# pass over the chapters reuses those runs (same configs, same sources) instead of training them again.
export BNLAB_TEST_STORE="$(mktemp -d)"
trap 'rm -rf "$BNLAB_TEST_STORE"' EXIT
# Two pytest-xdist workers, one per core: the unit tests are spread test by test (an idle worker steals queued
# ones), each notebook stays on one worker. One torch thread per process, subprocesses and the notebooks' kernels
# included: a run computed in a test and in a job it spawns round alike, and two kernels side by side do not run
# four threads on two cores (that oversubscription made the chapter passes take twice as long).
export OMP_NUM_THREADS=1
XDIST=(-n 2 --dist loadfile)
"$PY" -m pytest -q -n 2 --dist worksteal tests/
# Both chapter passes use the suite's run store: the exercises the cached pass trains are read back by the live one.
BNLAB_MODE=cached BNLAB_HOME="$BNLAB_TEST_STORE" "$PY" -m pytest -q "${XDIST[@]}" --nbval --nbval-current-env -p no:cacheprovider book/
BNLAB_MODE=live BNLAB_SCALE=smoke BNLAB_HOME="$BNLAB_TEST_STORE" \
  "$PY" -m pytest -q "${XDIST[@]}" --nbval-lax --nbval-current-env -p no:cacheprovider book/
