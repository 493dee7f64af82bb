#!/usr/bin/env bash
# Create .venv-geomstats, the separate environment of the geomstats peer benchmark.
#
# geomstats 2.8.0 does not import with numpy >= 2.4, while geomhess's own environment
# may have it, so geomstats never goes into .venv: it gets this environment, and
# benchmarks/bench_dense.py calls benchmarks/geomstats_worker.py in it through a subprocess.
# geomstats differentiates a user metric with its autodiff backend; the default here
# is autograd (small, pure Python, and faster than the pytorch backend on this
# problem: see benchmarks/README.md). `--torch` also installs torch for
# `GEOMSTATS_BACKEND=pytorch python -m benchmarks --only dense`.
#
# Idempotent: reruns only check that the pinned packages are there.
# Usage: bash benchmarks/setup_peers.sh [--torch]    (PYTHON=python3.11 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv=.venv-geomstats
if [ ! -x "$venv/bin/python" ]; then "$python" -m venv "$venv"; fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "geomstats==2.8.0" "numpy<2.4" "autograd==1.9.1"
if [ "${1:-}" = "--torch" ]; then
  "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
fi
GEOMSTATS_BACKEND=autograd "$venv/bin/python" -c \
  "import geomstats, numpy; print('geomstats', geomstats.__version__, 'numpy', numpy.__version__)"
