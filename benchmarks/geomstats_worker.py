"""geomstats side of the benchmark, run by `bench_dense.py` in the geomstats environment.

geomstats 2.8.0 needs `numpy<2.4`, which the geomhess environment does not have, so
this script runs under `.venv-geomstats/bin/python` (made by `setup_peers.sh`) and
never imports JAX or geomhess. It reads the problem (the matrices that define the
metric and the scalar field, and the points) from an `.npz` file written by
`bench_dense.py`, so both sides compute exactly the same quantities, writes the values it
computed to a second `.npz` for the numerical check, and prints its timings as one
JSON object on the last line of stdout.

The metric and the field are the ones in `bench_dense.py`, written in geomstats' backend:

- `G(x) = I + a a^T` with `a = tanh(W x)`;
- `f(x) = sum(cos(C x)) + |x|^2 / 2`.

Christoffel symbols are `RiemannianMetric.christoffels` (geomstats differentiates
`metric_matrix` with its autodiff backend). geomstats has no covariant Hessian of a
function, so it is assembled from its own primitives the way a geomstats user would:
`hessian_vec(f) - einsum(christoffels, grad f)`.

Usage: `python geomstats_worker.py PROBLEM.npz VALUES.npz BUDGET_S`.
"""

import functools as ft
import importlib.metadata
import json
import os
import sys
import time


# The autodiff backend must be chosen before geomstats is imported.
os.environ.setdefault("GEOMSTATS_BACKEND", "autograd")

import geomstats.backend as gs  # noqa: E402
import numpy as np  # noqa: E402
from geomstats.geometry.euclidean import Euclidean  # noqa: E402
from geomstats.geometry.riemannian_metric import RiemannianMetric  # noqa: E402


def make_space(W):
    """`R^d` equipped with the metric `G(x) = I + a a^T`, `a = tanh(W x)`."""
    W = gs.array(W)
    d = W.shape[0]

    class TanhRankOneMetric(RiemannianMetric):
        """The benchmark's position-dependent SPD metric, batched over `[..., d]`."""

        def metric_matrix(self, base_point=None):
            a = gs.tanh(gs.einsum("ij,...j->...i", W, base_point))
            return gs.eye(d) + gs.einsum("...i,...j->...ij", a, a)

    return Euclidean(d, equip=False).equip_with_metric(TanhRankOneMetric)


def make_field(C):
    """`f(x) = sum(cos(C x)) + |x|^2 / 2`, batched over `[..., d]`."""
    C = gs.array(C)

    def f(x):
        return gs.sum(gs.cos(gs.einsum("ij,...j->...i", C, x)), axis=-1) + 0.5 * gs.sum(
            x**2, axis=-1
        )

    return f


def covariant_hessian(metric, f, x):
    """`d^2 f - Gamma^k_ij df_k` from geomstats' autodiff and `christoffels`."""
    _, df = gs.autodiff.value_and_grad(f)(x)
    hessian = gs.autodiff.hessian_vec(f)(x)
    gamma = metric.christoffels(x)
    return hessian - gs.einsum("...kij,...k->...ij", gamma, df)


def timed(fn, arg, budget_s, max_repeats):
    """Time `fn(arg)`: the first call, then repeats while the budget lasts.

    geomstats compiles nothing, so the first call differs from later ones only by
    Python-level caches; `steady_s` is the median of the repeats, or the first call
    when the budget allows no repeat (`n` says how many calls the median is over).
    """
    start = time.perf_counter()
    out = fn(arg)
    first = time.perf_counter() - start
    times = []
    while len(times) < max_repeats and (time.perf_counter() - start) + first < budget_s:
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    steady = float(np.median(times)) if times else first
    return out, {"first_s": first, "steady_s": steady, "n": max(len(times), 1)}


def main():
    problem_path, values_path, budget_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    problem = np.load(problem_path)
    dims = [int(d) for d in problem["dims"]]
    n_check = int(problem["n_check"])
    timings, values = {}, {}
    for d in dims:
        W, C = problem[f"W{d}"], problem[f"C{d}"]
        x_one, x_batch = (
            gs.array(problem[f"x_one{d}"]),
            gs.array(problem[f"x_batch{d}"]),
        )
        metric = make_space(W).metric
        f = make_field(C)
        operators = (
            ("christoffel", metric.christoffels),
            ("covariant_hessian", ft.partial(covariant_hessian, metric, f)),
        )
        for op, fn in operators:
            out, timings[f"{op}/{d}/one"] = timed(fn, x_one, budget_s, 200)
            values[f"{op}/{d}/one"] = np.asarray(out)
            out, timings[f"{op}/{d}/batch"] = timed(fn, x_batch, budget_s, 5)
            # The first rows of the timed batch call: checks the batched code path too.
            values[f"{op}/{d}/batch"] = np.asarray(out[:n_check])
            if np.asarray(out).dtype != np.float64:
                raise SystemExit(f"geomstats computed in {np.asarray(out).dtype}")
    np.savez(values_path, **values)
    backend = os.environ["GEOMSTATS_BACKEND"]
    versions = {"python": sys.version.split()[0], "backend": backend}
    for package in (
        "geomstats",
        "numpy",
        "autograd" if backend == "autograd" else "torch",
    ):
        versions[package] = importlib.metadata.version(package)
    print(json.dumps({"timings": timings, "versions": versions}))


if __name__ == "__main__":
    main()
