#!/usr/bin/env bash
# Set up everything (a .venv with the package and its test and docs extras) and run
# the whole suite. Works on a fresh machine with only python3 and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,docs,dev,peers
. .venv/bin/activate
# One BLAS thread: scipy's OpenBLAS (used by jaxlib's CPU Cholesky and triangular
# solves) otherwise starts a thread per core that fights XLA's on 2 cores.
export MPLBACKEND=Agg PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1
# tests/test_peers.py compares with pymanopt and geoopt (the `peers` extra, installed
# above): here a missing peer fails the run instead of skipping the module.
export GEOMHESS_REQUIRE_PEERS=1

run_pytest() {
  local code=0
  python -m pytest "$@" || code=$?
  if [ "$code" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
  if [ "$code" -ne 0 ]; then exit "$code"; fi
}

echo "== lint (ruff)"
ruff check geomhess tests benchmarks
ruff format --check geomhess tests benchmarks

echo "== tests and notebooks (float64)"
run_pytest -n 2 --nbmake -p no:cacheprovider --durations=15

echo "== float32 smoke run"
GEOMHESS_TEST_X64=0 run_pytest -m float32 -p no:cacheprovider tests

echo "== docs (mkdocs build --strict)"
mkdocs build --strict --site-dir "$(mktemp -d)"
echo "== all checks passed"
