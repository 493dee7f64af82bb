"""Side-by-side benchmarks of geomhess against plain JAX and geomstats, in one run.

1. Christoffel symbols of a user metric `G(x) = I + a a^T`, `a = tanh(W x)` (float64,
   `d = 3, 10, 30`; one point, and a batch of 1000 points with `jax.vmap`):
   `gh.LeviCivita(gh.metrics.FromFunction(G)).christoffel(x)` against a plain
   `jax.jacfwd(G)` + `einsum` reference and against geomstats'
   `RiemannianMetric.christoffels`.
2. The covariant Hessian of `f(x) = sum(cos(C x)) + |x|^2 / 2` in the same metric:
   `gh.covariant_hessian` against `jax.hessian(f) - einsum(Gamma, jax.grad(f))` and
   geomstats (its autodiff Hessian minus its Christoffel symbols contracted with its
   gradient: geomstats has no covariant Hessian of its own).
3. For an MLP with about a million parameters (a dict of arrays, float32) and the
   position-dependent diagonal metric `G(p) = diag(1 + p^2)`: `jax.grad(loss)`, a
   plain Hessian-vector product (`jax.jvp` of `jax.grad`), the same with the
   gradient kept, this metric's covariant HVP written by hand, and
   `gh.covariant_hvp`.

Checked before timing (`benchmarks/_harness.py` does the timing): geomhess, plain
JAX and geomstats must agree to float64 round-off, and the MLP's covariant HVP must
match a dense reference (float64) and a closed form (float32). geomstats runs in its
own environment (`.venv-geomstats`, made by `benchmarks/setup_peers.sh`) through
`benchmarks/geomstats_worker.py`, which times itself; without that environment its
rows read "not run".

    python -m benchmarks --only dense [--quick]
"""

import os


# jaxlib's CPU LAPACK kernels (Cholesky, triangular solves, LU) call the OpenBLAS that
# scipy ships, which spawns one thread per core by default. On a small machine those
# threads fight XLA's own thread pool: one 30x30 triangular solve with 900 right-hand
# sides then takes 12-35 ms instead of 0.2 ms, at random. One BLAS thread is the
# setting that gives stable numbers; it has to be set before numpy/scipy/jax load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import functools as ft  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _harness as hz, _peers  # noqa: E402
from benchmarks._networks import diagonal_metric, tanh_mlp  # noqa: E402
from geomhess._core.tree import tree_random  # noqa: E402


PAGE = "README.md"
MARKERS = ("<!-- run.py results:begin -->", "<!-- run.py results:end -->")
PLOT = "cost_vs_dimension.png"  # written next to the page by `plot`
PEER_PYTHON = hz.ROOT / ".venv-geomstats" / "bin" / "python"
OPERATORS = ("christoffel", "covariant_hessian")
TOL_F64 = 1e-10  # float64 agreement demanded before timing (values are O(1))
N_CHECK = 4  # rows of geomstats' batch output it returns for the check

DENSE_ROWS = {
    "geomhess": "geomhess",
    "plain": "plain JAX (`jacfwd` + `einsum`)",
    "geomstats": "geomstats",
}
MLP_ROWS = {
    "grad": "`jax.grad(loss)`",
    "hvp": "plain HVP: `jax.jvp(jax.grad(loss), (p,), (v,))[1]`",
    "hvp_and_grad": "HVP and gradient: both outputs of that `jax.jvp`",
    "closed_form": "covariant HVP by hand: `hv - p v df / (1 + p^2)`",
    "covariant_hvp": "`gh.covariant_hvp(loss, gh.LeviCivita(metric), p, v)`",
}
GOALS = [
    *(
        hz.Goal(
            "geomstats",
            "geomhess",
            50.0,
            at_most=False,
            problems=(f"{op} d=30 batch",),
            text=f"`{op}` at d=30 on the batch, geomhess against geomstats",
        )
        for op in OPERATORS
    ),
    *(
        hz.Goal(
            "geomhess",
            "plain",
            1.1,
            problems=tuple(
                f"{op} d={d} {w}" for d in (3, 10, 30) for w in ("one", "batch")
            ),
            text=f"`{op}`, geomhess against plain JAX, every d and batch",
        )
        for op in OPERATORS
    ),
    hz.Goal("covariant_hvp", "hvp", 2.0, problems=("mlp",), text="MLP covariant HVP"),
]


# --------------------------------------------------------------------------------------
# The problem: one metric and one field, for every implementation.


def make_problem(d, batch, seed):
    """The matrices `W`, `C` and the points for dimension `d` (float64 numpy arrays):
    the same arrays go to geomhess, to plain JAX and (an `.npz` file) to geomstats."""
    rng = np.random.default_rng(seed + d)
    scale = 1.0 / math.sqrt(d)
    return {
        "W": rng.standard_normal((d, d)) * scale,
        "C": rng.standard_normal((d, d)) * scale,
        "x_one": rng.standard_normal(d),
        "x_batch": rng.standard_normal((batch, d)),
    }


def metric_matrix(W, x):
    """`G(x) = I + a a^T` with `a = tanh(W x)`: smooth, SPD, dense in every entry."""
    a = jnp.tanh(W @ x)
    return jnp.eye(x.shape[0], dtype=x.dtype) + jnp.outer(a, a)


def field(C, x):
    """`f(x) = sum(cos(C x)) + |x|^2 / 2`."""
    return jnp.sum(jnp.cos(C @ x)) + 0.5 * (x @ x)


def geomhess_christoffel(W, C, x):
    connection = gh.LeviCivita(gh.metrics.FromFunction(ft.partial(metric_matrix, W)))
    return connection.christoffel(x)


def geomhess_covariant_hessian(W, C, x):
    connection = gh.LeviCivita(gh.metrics.FromFunction(ft.partial(metric_matrix, W)))
    return gh.covariant_hessian(ft.partial(field, C), connection, x)


def christoffel_from_matrix(G_fn, x):
    """`Gamma^k_ij = g^{kl} (d_i g_lj + d_j g_li - d_l g_ij) / 2` by jacfwd + einsum."""
    dG = jax.jacfwd(G_fn)(x)  # dG[i, j, k] = d_k g_ij
    lowered = 0.5 * (
        jnp.einsum("lji->lij", dG) + jnp.einsum("lij->lij", dG) - dG.transpose(2, 0, 1)
    )
    return jnp.einsum("kl,lij->kij", jnp.linalg.inv(G_fn(x)), lowered)


def plain_christoffel(W, C, x):
    return christoffel_from_matrix(ft.partial(metric_matrix, W), x)


def plain_covariant_hessian(W, C, x):
    """`jax.hessian(f) - einsum(Gamma, jax.grad(f))`: what one writes by hand."""
    f = ft.partial(field, C)
    gamma = christoffel_from_matrix(ft.partial(metric_matrix, W), x)
    return jax.hessian(f)(x) - jnp.einsum("kij,k->ij", gamma, jax.grad(f)(x))


IMPLEMENTATIONS = {
    "christoffel": (geomhess_christoffel, plain_christoffel),
    "covariant_hessian": (geomhess_covariant_hessian, plain_covariant_hessian),
}


def run_geomstats(problems, *, budget_s, backend=None):
    """`geomstats_worker.py` in `.venv-geomstats`: `(timings, values, versions)`, or
    `(None, None, reason)` when the environment is missing or the worker fails."""
    if not PEER_PYTHON.exists():
        return None, None, _peers.missing(PEER_PYTHON, "setup_peers.sh")
    with tempfile.TemporaryDirectory() as tmp:
        problem_path = pathlib.Path(tmp) / "problem.npz"
        values_path = pathlib.Path(tmp) / "values.npz"
        arrays = {"dims": np.array(sorted(problems)), "n_check": np.array(N_CHECK)}
        for d, p in problems.items():
            arrays.update({f"{key}{d}": value for key, value in p.items()})
        np.savez(problem_path, **arrays)
        proc = subprocess.run(
            [
                str(PEER_PYTHON),
                str(hz.HERE / "geomstats_worker.py"),
                str(problem_path),
                str(values_path),
                str(budget_s),
            ],
            capture_output=True,
            text=True,
            # autograd unless GEOMSTATS_BACKEND says otherwise (pytorch needs
            # `setup_peers.sh --torch`).
            env=dict(
                os.environ,
                GEOMSTATS_BACKEND=backend
                or os.environ.get("GEOMSTATS_BACKEND", "autograd"),
            ),
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return None, None, "the geomstats worker failed: " + " | ".join(tail)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(values_path) as values:
            values = {key: values[key] for key in values.files}
    return report["timings"], values, report["versions"]


def dense_check(theirs):
    """geomhess against plain JAX on every point, and against geomstats' values
    (`theirs`: the single point, or the first rows of its own batch call)."""

    def check(outputs):
        ours = np.asarray(outputs["geomhess"])
        report = {
            "plain": hz.check_against(ours, outputs["plain"], TOL_F64),
            "scale": float(np.max(np.abs(ours))),
        }
        if theirs is not None:
            try:
                report["geomstats"] = hz.check_against(
                    ours if ours.shape == theirs.shape else ours[: len(theirs)],
                    theirs,
                    TOL_F64,
                )
            except hz.CheckError as error:
                raise hz.CheckError(f"geomstats: {error}") from None
        return report

    return check


# --------------------------------------------------------------------------------------
# The MLP


def make_mlp_loss(key, sizes, batch, dtype):
    """`(params, loss, tangent)`: the MSE of a `tanh_mlp` on its data, and a random
    tangent."""
    params, model, inputs, targets, k_v = tanh_mlp(key, sizes, batch, dtype)

    def loss(p):
        return jnp.mean((model(p, inputs) - targets) ** 2)

    return params, loss, tree_random(jr.normal, k_v, params)


def check_small_mlp(key):
    """`covariant_hvp` on a small float64 MLP's pytree against the dense reference
    `(jax.hessian(loss) - einsum(Gamma, jax.grad(loss))) v` of the flattened
    parameters, `Gamma` from `jacfwd` of the dense metric matrix `diag(1 + p^2)`."""
    connection = gh.LeviCivita(diagonal_metric())
    small, small_loss, small_v = make_mlp_loss(key, (3, 5, 2), 7, jnp.float64)
    flat, unravel = ravel_pytree(small)
    flat_v, _ = ravel_pytree(small_v)
    flat_loss = lambda q: small_loss(unravel(q))
    gamma = christoffel_from_matrix(lambda q: jnp.diag(1 + q**2), flat)
    dense = jax.hessian(flat_loss)(flat) - jnp.einsum(
        "kij,k->ij", gamma, jax.grad(flat_loss)(flat)
    )
    ours = ravel_pytree(gh.covariant_hvp(small_loss, connection, small, small_v))[0]
    diff = float(jnp.max(jnp.abs(ours - dense @ flat_v)))
    if not diff <= TOL_F64:
        raise hz.CheckError(f"covariant_hvp differs from the dense reference: {diff}")
    return diff


def closed_form_covariant_hvp(loss, p, v):
    """The covariant HVP of the metric `diag(1 + p^2)` by hand: its only Christoffel
    symbols are `Gamma^i_ii = p_i / (1 + p_i^2)`, so `nabla^2 f v = H v - p v df /
    (1 + p^2)` leaf by leaf: one HVP that also returns the gradient, plus
    elementwise work, the least any covariant HVP can cost."""
    df, hv = jax.jvp(jax.grad(loss), (p,), (v,))
    return jtu.tree_map(lambda h, p, v, g: h - p * v * g / (1 + p**2), hv, p, v, df)


def mlp_check(dense_f64):
    def check(outputs):
        closed, ours = (
            jtu.tree_leaves(outputs[name]) for name in ("closed_form", "covariant_hvp")
        )
        scale = max(float(jnp.max(jnp.abs(a))) for a in closed)
        diff = max(
            float(jnp.max(jnp.abs(a - b))) for a, b in zip(closed, ours, strict=True)
        )
        # float32, and XLA may fuse the two sides differently: round-off of the HVP.
        if not diff <= 1e-4 * scale:
            raise hz.CheckError(
                f"covariant_hvp differs from the closed form by {diff:.3g} (largest "
                f"entry {scale:.3g}); refusing to time it"
            )
        return {"dense_f64": dense_f64, "closed_form_f32": diff, "scale": scale}

    return check


def mlp_contenders(loss):
    connection = gh.LeviCivita(diagonal_metric())
    fns = {
        "grad": lambda p, v: jax.grad(loss)(p),
        "hvp": lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1],
        "hvp_and_grad": lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,)),
        "closed_form": ft.partial(closed_form_covariant_hvp, loss),
        "covariant_hvp": lambda p, v: gh.covariant_hvp(loss, connection, p, v),
    }
    return [hz.Contender(n, jax.jit(f), MLP_ROWS[n]) for n, f in fns.items()]


# --------------------------------------------------------------------------------------


def run(quick=False, seed=0):
    """Check, then time, everything; the JSON-able payload for `render`."""
    jax.config.update("jax_enable_x64", True)
    env = hz.environment(quick=quick)
    if quick:  # exercises every code path; its numbers are not the table's
        dims, batch, mlp_sizes, rounds, round_s = (
            (3, 10),
            100,
            (64, 256, 256, 16),
            3,
            0.01,
        )
    else:
        dims, batch, mlp_sizes, rounds, round_s = (
            (3, 10, 30),
            1000,
            (64, 1024, 1024, 16),
            41,
            0.02,
        )
    mlp_batch = 128
    arrays = {d: make_problem(d, batch, seed) for d in dims}
    print("geomstats (in .venv-geomstats) ...", flush=True)
    peer_timings, peer_values, peer_info = run_geomstats(
        arrays, budget_s=1.0 if quick else 3.0
    )
    results = {}
    for op, (gh_fn, plain_fn) in IMPLEMENTATIONS.items():
        for d, p in arrays.items():
            for where, wrap, x in (
                ("one", jax.jit, p["x_one"]),
                (
                    "batch",
                    lambda f: jax.jit(jax.vmap(f, in_axes=(None, None, 0))),
                    p["x_batch"],
                ),
            ):
                key = f"{op}/{d}/{where}"
                if peer_timings is None:
                    peer = hz.Contender("geomstats", unavailable=peer_info)
                else:
                    peer = hz.Contender("geomstats", measured=peer_timings[key])
                name = f"{op} d={d} {where}"
                problem = hz.Problem(
                    name,
                    (jnp.asarray(p["W"]), jnp.asarray(p["C"]), jnp.asarray(x)),
                    size=d,
                    check=dense_check(
                        None if peer_values is None else peer_values[key]
                    ),
                )
                results[name] = hz.run_problem(
                    problem,
                    [
                        hz.Contender("geomhess", wrap(gh_fn), reference=True),
                        hz.Contender("plain", wrap(plain_fn)),
                        peer,
                    ],
                    rounds=rounds,
                    round_s=round_s,
                )
    print("MLP ...", flush=True)
    params, loss, tangent = make_mlp_loss(
        jr.PRNGKey(seed), mlp_sizes, mlp_batch, jnp.float32
    )
    dense_f64 = check_small_mlp(jr.PRNGKey(seed + 1))
    results["mlp"] = hz.run_problem(
        hz.Problem("mlp", (params, tangent), check=mlp_check(dense_f64)),
        mlp_contenders(loss),
        rounds=rounds,
        round_s=6 * round_s,
    )
    return {
        "env": hz.finish_environment(env),
        "peer": peer_info,
        "meta": {
            "dims": list(dims),
            "batch": batch,
            "mlp_sizes": " -> ".join(map(str, mlp_sizes)),
            "mlp_batch": mlp_batch,
            "n_params": int(sum(x.size for x in jtu.tree_leaves(params))),
        },
        "results": results,
    }


def plot(payload, directory):
    """Steady-state time per batch call against `d`: geomhess, plain JAX, geomstats."""
    results, meta = payload["results"], payload["meta"]
    series = {
        f"{op}: {label}": [
            (d, hz.term_time(results[f"{op} d={d} batch"], who)) for d in meta["dims"]
        ]
        for op in OPERATORS
        for who, label in (
            ("geomhess", "geomhess"),
            ("plain", "plain JAX"),
            ("geomstats", "geomstats"),
        )
    }
    return hz.plot_cost(
        pathlib.Path(directory) / PLOT,
        series,
        xlabel="dimension d",
        title=f"Christoffel symbols, covariant Hessian: batch of {meta['batch']}",
    )


def render(payload):
    meta, results = payload["meta"], payload["results"]
    dense = {k: v for k, v in results.items() if k != "mlp"}

    def agreement(check):
        theirs = f", geomstats {check['geomstats']:.1e}" if "geomstats" in check else ""
        return f"plain JAX {check['plain']:.1e}{theirs} (largest entry {check['scale']:.2g})"

    c = results["mlp"][hz.CHECK]
    return hz.fill_page(
        "dense",
        environment=hz.render_environment(
            payload["env"],
            peers={"geomstats environment (`.venv-geomstats`)": payload["peer"]},
        ),
        batch=meta["batch"],
        dense_table=hz.render_table(
            dense, DENSE_ROWS, ratios=[("*", "plain"), ("geomstats", "*")]
        ),
        plot=PLOT,
        dense_checks="; ".join(
            f"{name}: {agreement(t[hz.CHECK])}" for name, t in dense.items()
        ),
        n_params=f"{meta['n_params']:,}",
        mlp_sizes=meta["mlp_sizes"],
        mlp_batch=meta["mlp_batch"],
        mlp_table=hz.render_table(
            {"mlp": results["mlp"]},
            MLP_ROWS,
            ratios=[("*", "grad"), ("*", "hvp"), ("*", "hvp_and_grad")],
        ),
        dense_f64=f"{c['dense_f64']:.1e}",
        closed_form_f32=f"{c['closed_form_f32']:.1e}",
        scale=f"{c['scale']:.2g}",
        goals=hz.render_goals(GOALS, results),
    )
