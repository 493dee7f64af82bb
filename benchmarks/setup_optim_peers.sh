#!/usr/bin/env bash
# Create .venv-optim-peers, the separate environment of the optimizer peer benchmark.
#
# pymanopt 2.2.1 and geoopt 0.5.1 (with torch) never go into geomhess's .venv: they
# get this environment, and benchmarks/bench_optim.py drives
# benchmarks/optim_peers_worker.py in it through a subprocess. pymanopt 2.2.1 imports
# and runs with numpy 2.4 (checked below), so numpy is not pinned. torch is pinned to
# 2.13.0: pip finds its CPU wheel in the local wheel directory (PIP_FIND_LINKS), where
# a plain `pip install torch` could fetch gigabytes of CUDA libraries; geoopt 0.5.1
# asks for `torch>=2.0.1`, which 2.13.0 satisfies.
#
# Idempotent: reruns only check that the pinned packages are there.
# Usage: bash benchmarks/setup_optim_peers.sh    (PYTHON=python3.11 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv=.venv-optim-peers
if [ ! -x "$venv/bin/python" ]; then "$python" -m venv "$venv"; fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "pymanopt==2.2.1" "geoopt==0.5.1" "torch==2.13.0"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md

import numpy as np
import pymanopt
from pymanopt.manifolds import Sphere
from pymanopt.optimizers import TrustRegions

import geoopt  # noqa: F401
import torch

# A tiny solve: pymanopt works with this numpy.
manifold = Sphere(5)
A = np.diag(np.arange(5.0))


@pymanopt.function.numpy(manifold)
def cost(x):
    return x @ A @ x


@pymanopt.function.numpy(manifold)
def gradient(x):
    return 2 * A @ x


@pymanopt.function.numpy(manifold)
def hessian(x, u):
    return 2 * A @ u


problem = pymanopt.Problem(manifold, cost, euclidean_gradient=gradient, euclidean_hessian=hessian)
result = TrustRegions(verbosity=0).run(problem, initial_point=np.ones(5) / 5**0.5)
assert abs(result.cost) < 1e-10, result.cost
print(
    *(f"{p} {md.version(p)}" for p in ("pymanopt", "geoopt", "torch", "numpy")),
    f"(torch CUDA: {torch.cuda.is_available()})",
)
PY
