"""Side-by-side benchmarks of geomhess against plain JAX and geomstats, in one run.

Three measurements, all in this one command:

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

Every number is checked before it is timed: geomhess, plain JAX and geomstats must
agree to float64 round-off (and the MLP's covariant HVP to a closed form), or the
run stops. Compile time is reported apart from steady-state time: the first call
(trace + compile + run, with `block_until_ready`), then the median over rounds in
which geomhess and plain JAX take turns, so that load on a shared machine hits both
alike. geomstats runs in its own environment (`.venv-geomstats`, made by
`benchmarks/setup_peers.sh`) through `benchmarks/geomstats_worker.py`; without that
environment, or with `--no-peers`, its columns are left out with a note.

Usage:
    bash benchmarks/setup_peers.sh
    python benchmarks/run.py --out benchmarks/README.md
    python benchmarks/run.py --quick --no-peers     # smoke run, well under a minute
"""

import os


# jaxlib's CPU LAPACK kernels (Cholesky, triangular solves, LU) call the OpenBLAS that
# scipy ships, which spawns one thread per core by default. On a small machine those
# threads fight XLA's own thread pool: one 30x30 triangular solve with 900 right-hand
# sides then takes 12-35 ms instead of 0.2 ms, at random. One BLAS thread is the
# setting that gives stable numbers; it has to be set before numpy/scipy/jax load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import functools as ft  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
import numpy as np  # noqa: E402
from _env import (  # noqa: E402
    fmt_ratio,
    fmt_time,
    machine_info,
    run_header,
    versions,
    write_results_block,
)
from jax.flatten_util import ravel_pytree  # noqa: E402

import geomhess as gh  # noqa: E402


jax.config.update("jax_enable_x64", True)

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_PYTHON = ROOT / ".venv-geomstats" / "bin" / "python"
# Markers of this script's block in the README (other benchmark scripts keep theirs).
BEGIN, END = "<!-- run.py results:begin -->", "<!-- run.py results:end -->"

# Goals from the issue that asked for these benchmarks.
GOAL_GEOMSTATS = 50.0  # geomstats / geomhess at d = 30 on the batch, at least
GOAL_PLAIN = 1.1  # geomhess / plain JAX, at most
GOAL_HVP = 2.0  # covariant HVP / plain HVP, at most

# float64 agreement demanded before anything is timed (values are O(1)).
TOL_F64 = 1e-10


# --------------------------------------------------------------------------------------
# The problem: one metric and one field, for every implementation.


def make_problem(d, batch, seed):
    """The matrices `W`, `C` and the points for dimension `d` (float64 numpy arrays).

    The same arrays go to geomhess, to the plain JAX reference and, through an
    `.npz` file, to geomstats.
    """
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


# --- geomhess ---


def geomhess_christoffel(W, C, x):
    """Christoffel symbols `[k, i, j]` through geomhess's public API."""
    connection = gh.LeviCivita(gh.metrics.FromFunction(ft.partial(metric_matrix, W)))
    return connection.christoffel(x)


def geomhess_covariant_hessian(W, C, x):
    """The covariant Hessian `(d, d)` through geomhess's public API."""
    connection = gh.LeviCivita(gh.metrics.FromFunction(ft.partial(metric_matrix, W)))
    return gh.covariant_hessian(ft.partial(field, C), connection, x)


# --- plain JAX reference: what one writes by hand ---


def christoffel_from_matrix(G_fn, x):
    """`Gamma^k_ij = g^{kl} (d_i g_lj + d_j g_li - d_l g_ij) / 2` by jacfwd + einsum."""
    dG = jax.jacfwd(G_fn)(x)  # dG[i, j, k] = d_k g_ij
    lowered = 0.5 * (
        jnp.einsum("lji->lij", dG) + jnp.einsum("lij->lij", dG) - dG.transpose(2, 0, 1)
    )
    return jnp.einsum("kl,lij->kij", jnp.linalg.inv(G_fn(x)), lowered)


def plain_christoffel(W, C, x):
    """The plain-JAX reference for the Christoffel symbols."""
    return christoffel_from_matrix(ft.partial(metric_matrix, W), x)


def plain_covariant_hessian(W, C, x):
    """The plain-JAX reference: `jax.hessian(f) - einsum(Gamma, jax.grad(f))`."""
    f = ft.partial(field, C)
    gamma = christoffel_from_matrix(ft.partial(metric_matrix, W), x)
    return jax.hessian(f)(x) - jnp.einsum("kij,k->ij", gamma, jax.grad(f)(x))


OPERATORS = {
    "christoffel": (geomhess_christoffel, plain_christoffel),
    "covariant_hessian": (geomhess_covariant_hessian, plain_covariant_hessian),
}


# --------------------------------------------------------------------------------------
# Timing


def _call(fn, args):
    return jax.block_until_ready(fn(*args))


def time_interleaved(fns, args, *, rounds, round_s, budget_s=20.0, check=None):
    """Time jitted functions of the same arguments, taking turns.

    For each function: the first call (trace, compile and run, blocked, with JAX's
    caches cleared) is `first_s`. `check(outputs)` then sees the first calls' outputs
    (a dict like `fns`) and may stop the run before any steady-state timing. Then up
    to `rounds` rounds (fewer if they would take much more than `budget_s`, never
    fewer than three); in each, every function runs `loops` blocked calls back to
    back (as many as fit in about `round_s`, at least one), in an order that
    rotates from round to round. `steady_s` is the median over rounds of the mean
    time per call. Taking turns puts a load spike from other processes on all the
    compared functions alike, so the ratios are steadier than the times.
    """
    names = list(fns)
    first, loops, outputs = {}, {}, {}
    # Compiled code of earlier groups stays in JAX's caches; clear them so that the
    # first call really includes tracing and compilation.
    jax.clear_caches()
    for name in names:
        start = time.perf_counter()
        outputs[name] = _call(fns[name], args)
        first[name] = time.perf_counter() - start
    if check is not None:
        check(outputs)
    del outputs
    round_cost = 0.0
    for name in names:
        start = time.perf_counter()
        _call(fns[name], args)
        once = time.perf_counter() - start
        loops[name] = max(1, min(2000, int(round_s / max(once, 1e-7))))
        round_cost += loops[name] * once
    rounds = max(3, min(rounds, int(budget_s / max(round_cost, 1e-9))))
    samples = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for _ in range(loops[name]):
                _call(fns[name], args)
            samples[name].append((time.perf_counter() - start) / loops[name])
    return {
        name: {
            "first_s": first[name],
            "steady_s": float(np.median(samples[name])),
            "n": rounds * loops[name],
        }
        for name in names
    }


# --------------------------------------------------------------------------------------
# geomstats, in its own environment


def run_geomstats(problems, *, n_check, budget_s, backend):
    """Run `geomstats_worker.py` in `.venv-geomstats`; `(timings, values, versions)`.

    Returns `(None, None, reason)` when the environment is missing or the worker
    fails, so the run goes on without the geomstats columns.
    """
    if not PEER_PYTHON.exists():
        return (
            None,
            None,
            (
                f"geomstats skipped: {PEER_PYTHON.relative_to(ROOT)} not found "
                "(run `bash benchmarks/setup_peers.sh`)."
            ),
        )
    with tempfile.TemporaryDirectory() as tmp:
        problem_path = pathlib.Path(tmp) / "problem.npz"
        values_path = pathlib.Path(tmp) / "values.npz"
        arrays = {"dims": np.array(sorted(problems)), "n_check": np.array(n_check)}
        for d, p in problems.items():
            arrays.update({f"{key}{d}": value for key, value in p.items()})
        np.savez(problem_path, **arrays)
        env = dict(os.environ, GEOMSTATS_BACKEND=backend)
        command = [
            str(PEER_PYTHON),
            str(HERE / "geomstats_worker.py"),
            str(problem_path),
            str(values_path),
            str(budget_s),
        ]
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return None, None, "geomstats failed: " + " | ".join(tail)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(values_path) as values:
            values = {key: values[key] for key in values.files}
    return report["timings"], values, report["versions"]


# --------------------------------------------------------------------------------------
# Part 1 and 2: Christoffel symbols and covariant Hessian


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def batched(fn):
    """`fn(W, C, x)` jitted and vmapped over a batch of points `x`."""
    return jax.jit(jax.vmap(fn, in_axes=(None, None, 0)))


def agreement(op, d, where, outputs, peer_values, n_check):
    """Max abs differences of plain JAX and geomstats from geomhess, or stop the run.

    Plain JAX is compared on every point; geomstats on the single point and on the
    first `n_check` rows of its own timed batch call (so its batched path is checked
    too). The tolerance is float64 round-off relative to the largest entry.
    """
    ours = np.asarray(outputs["geomhess"])
    entry = {"plain": max_abs_diff(ours, outputs["plain"])}
    if peer_values is not None:
        theirs = peer_values[f"{op}/{d}/{where}"]
        entry["geomstats"] = max_abs_diff(
            ours[: len(theirs)] if where == "batch" else ours, theirs
        )
    scale = float(np.max(np.abs(ours)))
    for peer, diff in entry.items():
        if not diff <= TOL_F64 * max(1.0, scale):
            raise SystemExit(
                f"{op} at d={d} ({where}): geomhess and {peer} differ by {diff:.3g} "
                f"(largest entry {scale:.3g}); refusing to time wrong numbers."
            )
    return {**entry, "scale": scale}


def bench_dense(problems, peer_values, *, n_check, rounds, round_s):
    """Check, then time, geomhess and plain JAX on every operator, `d` and batch size.

    Returns `(check, timings)`: the largest disagreement per operator and `d`, and a
    timing per `operator/d/one|batch/implementation`.
    """
    check, timings = {}, {}
    for d, p in problems.items():
        for op, (gh_fn, plain_fn) in OPERATORS.items():
            for where, wrap, x in (
                ("one", jax.jit, p["x_one"]),
                ("batch", batched, p["x_batch"]),
            ):
                args = (jnp.asarray(p["W"]), jnp.asarray(p["C"]), jnp.asarray(x))
                fns = {"geomhess": wrap(gh_fn), "plain": wrap(plain_fn)}

                def check_outputs(outputs, op=op, d=d, where=where):
                    entry = agreement(op, d, where, outputs, peer_values, n_check)
                    merged = check.setdefault(f"{op}/{d}", entry)
                    for key, value in entry.items():
                        merged[key] = max(merged[key], value)

                result = time_interleaved(
                    fns, args, rounds=rounds, round_s=round_s, check=check_outputs
                )
                for impl, t in result.items():
                    timings[f"{op}/{d}/{where}/{impl}"] = t
                print(
                    f"  {op:18s} d={d:<3d} {where:5s} "
                    f"geomhess {fmt_time(result['geomhess']['steady_s'])}  "
                    f"plain {fmt_time(result['plain']['steady_s'])}",
                    flush=True,
                )
    return check, timings


# --------------------------------------------------------------------------------------
# Part 3: the MLP


def init_mlp(key, sizes, dtype):
    """MLP parameters as a dict of arrays (`w0, b0, w1, ...`), LeCun-normal weights."""
    params = {}
    keys = jr.split(key, len(sizes) - 1)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = (
            jr.normal(keys[i], (fan_in, fan_out), dtype) / math.sqrt(fan_in)
        ).astype(dtype)
        params[f"b{i}"] = jnp.zeros(fan_out, dtype)
    return params


def make_mlp_loss(key, sizes, batch, dtype):
    """`(params, loss, tangent)`: MSE of a tanh MLP on fixed synthetic data."""
    k_params, k_x, k_y, k_v = jr.split(key, 4)
    params = init_mlp(k_params, sizes, dtype)
    inputs = jr.normal(k_x, (batch, sizes[0]), dtype)
    targets = jr.normal(k_y, (batch, sizes[-1]), dtype)
    n_layers = len(sizes) - 1

    def loss(p):
        h = inputs
        for i in range(n_layers):
            h = h @ p[f"w{i}"] + p[f"b{i}"]
            if i < n_layers - 1:
                h = jnp.tanh(h)
        return jnp.mean((h - targets) ** 2)

    leaves, treedef = jtu.tree_flatten(params)
    keys = jr.split(k_v, len(leaves))
    tangent = jtu.tree_unflatten(
        treedef,
        [jr.normal(k, leaf.shape, dtype) for k, leaf in zip(keys, leaves, strict=True)],
    )
    return params, loss, tangent


def diagonal_metric():
    """`G(p) = diag(1 + p^2)`, leaf by leaf: position-dependent and matrix-free."""
    return gh.metrics.Diagonal(lambda p: jtu.tree_map(lambda w: 1 + w**2, p))


def check_small_mlp(key):
    """`covariant_hvp` on a small float64 MLP's pytree against the dense reference.

    The reference flattens the parameters and computes
    `(jax.hessian(loss) - einsum(Gamma, jax.grad(loss))) v` with `Gamma` from
    `jacfwd` of the dense metric matrix `diag(1 + p^2)`.
    """
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
    diff = max_abs_diff(ours, dense @ flat_v)
    if not diff <= TOL_F64:
        raise SystemExit(f"covariant_hvp differs from the dense reference: {diff}")
    return diff


def closed_form_covariant_hvp(loss, p, v):
    """The covariant HVP of the metric `diag(1 + p^2)` written by hand.

    Its only Christoffel symbols are `Gamma^i_ii = p_i / (1 + p_i^2)`, so
    `nabla^2 f v = H v - p v df / (1 + p^2)` leaf by leaf: the least any covariant
    HVP can cost, one HVP that also returns the gradient plus elementwise work.
    """
    df, hv = jax.jvp(jax.grad(loss), (p,), (v,))
    return jtu.tree_map(lambda h, p, v, g: h - p * v * g / (1 + p**2), hv, p, v, df)


def closed_form_check(outputs, report):
    """The timed MLP's `covariant_hvp` output against the timed closed form's."""
    closed = outputs["closed_form"]
    scale = max(float(jnp.max(jnp.abs(leaf))) for leaf in jtu.tree_leaves(closed))
    diff = max(
        max_abs_diff(a, b)
        for a, b in zip(
            jtu.tree_leaves(outputs["covariant_hvp"]),
            jtu.tree_leaves(closed),
            strict=True,
        )
    )
    # float32, and XLA may fuse the two sides differently: round-off of the HVP.
    if not diff <= 1e-4 * scale:
        raise SystemExit(f"covariant_hvp differs from the closed form: {diff}")
    report.update(closed_form_f32=diff, scale=scale)


MLP_ROWS = {
    "grad": "`jax.grad(loss)`",
    "hvp": "plain HVP: `jax.jvp(jax.grad(loss), (p,), (v,))[1]`",
    "hvp_and_grad": "HVP and gradient: both outputs of that `jax.jvp`",
    "closed_form": "covariant HVP by hand: `hv - p v df / (1 + p^2)`",
    "covariant_hvp": "`gh.covariant_hvp(loss, gh.LeviCivita(metric), p, v)`",
}


def bench_mlp(sizes, batch, *, rounds, round_s, seed):
    """Check, then time `jax.grad`, HVPs and `gh.covariant_hvp` on the MLP.

    Besides the plain HVP, two references show where the covariant HVP's cost goes:
    the HVP together with the gradient (a covariant HVP needs `df`, which a plain
    HVP lets XLA drop), and the hand-written covariant HVP of this metric.
    """
    params, loss, tangent = make_mlp_loss(jr.PRNGKey(seed), sizes, batch, jnp.float32)
    n_params = sum(leaf.size for leaf in jtu.tree_leaves(params))
    check = {"dense_f64": check_small_mlp(jr.PRNGKey(seed + 1))}
    connection = gh.LeviCivita(diagonal_metric())
    fns = {
        "grad": jax.jit(lambda p, v: jax.grad(loss)(p)),
        "hvp": jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1]),
        "hvp_and_grad": jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))),
        "closed_form": jax.jit(ft.partial(closed_form_covariant_hvp, loss)),
        "covariant_hvp": jax.jit(lambda p, v: gh.covariant_hvp(loss, connection, p, v)),
    }
    timings = time_interleaved(
        fns,
        (params, tangent),
        rounds=rounds,
        round_s=round_s,
        check=lambda outputs: closed_form_check(outputs, check),
    )
    for name, t in timings.items():
        print(f"  mlp {name:14s} {fmt_time(t['steady_s'])}", flush=True)
    return {"n_params": int(n_params), "check": check, "timings": timings}


# --------------------------------------------------------------------------------------
# Report


def render(results):
    """The markdown block that goes between the README's markers."""
    meta, dense, mlp = results["meta"], results["dense"], results["mlp"]
    peer = results["peer"]
    lines = run_header(meta)
    if peer["versions"] is not None:
        lines.append(
            "- geomstats environment (`.venv-geomstats`): "
            + ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
            + "."
        )
    else:
        lines.append(f"- {peer['note']}")
    lines += [
        "",
        f"### Christoffel symbols and covariant Hessian (float64, batch of "
        f"{meta['batch']} with `jax.vmap`)",
        "",
        'Steady-state times are medians per call; "1st call" includes tracing and '
        "compilation. Ratios are of steady-state times: `gh / plain` above 1 means "
        "geomhess is slower than the hand-written JAX reference; `geomstats / gh` is "
        "how many times faster geomhess is than geomstats.",
        "",
        "| operator | d | points | geomhess 1st call | geomhess | plain JAX 1st call "
        "| plain JAX | geomstats | gh / plain | geomstats / gh |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for op in OPERATORS:
        for d in meta["dims"]:
            for where in ("one", "batch"):
                ours = dense["timings"][f"{op}/{d}/{where}/geomhess"]
                plain = dense["timings"][f"{op}/{d}/{where}/plain"]
                theirs = (peer["timings"] or {}).get(f"{op}/{d}/{where}")
                peer_cell = "-"
                if theirs is not None:
                    peer_cell = fmt_time(theirs["steady_s"])
                    if theirs["n"] == 1:
                        peer_cell += " (1 call)"
                points = "1" if where == "one" else str(meta["batch"])
                lines.append(
                    f"| `{op}` | {d} | {points} | {fmt_time(ours['first_s'])} "
                    f"| {fmt_time(ours['steady_s'])} | {fmt_time(plain['first_s'])} "
                    f"| {fmt_time(plain['steady_s'])} | {peer_cell} "
                    f"| {fmt_ratio(ours['steady_s'] / plain['steady_s'])} "
                    f"| {fmt_ratio(theirs and theirs['steady_s'] / ours['steady_s'])} |"
                )
    lines += [
        "",
        "Agreement checked before timing (max abs difference from geomhess):",
        "",
    ]
    for key, entry in dense["check"].items():
        op, d = key.split("/")
        parts = [f"plain JAX {entry['plain']:.1e}"]
        if "geomstats" in entry:
            parts.append(f"geomstats {entry['geomstats']:.1e}")
        lines.append(
            f"- `{op}`, d={d}: "
            + ", ".join(parts)
            + f" (largest entry {entry['scale']:.2g})"
        )
    t = mlp["timings"]
    lines += [
        "",
        f"### MLP: covariant HVP (float32, {mlp['n_params']:,} parameters, "
        f"layers {meta['mlp_sizes']}, tanh, MSE on a batch of {meta['mlp_batch']})",
        "",
        "Metric `gh.metrics.Diagonal(lambda p: tree_map(lambda w: 1 + w**2, p))`. A "
        "covariant HVP needs the gradient `df` as well as `H v`; a plain HVP that "
        "returns only `H v` lets XLA drop the gradient's weight products, so the "
        "HVP-and-gradient row is the floor for any covariant HVP, and the by-hand row "
        "is that floor plus this metric's (elementwise) connection term.",
        "",
        "| operation | 1st call | steady | / grad | / plain HVP | / HVP and gradient |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in MLP_ROWS.items():
        steady = t[name]["steady_s"]
        lines.append(
            f"| {label} | {fmt_time(t[name]['first_s'])} | {fmt_time(steady)} "
            f"| {fmt_ratio(steady / t['grad']['steady_s'])} "
            f"| {fmt_ratio(steady / t['hvp']['steady_s'])} "
            f"| {fmt_ratio(steady / t['hvp_and_grad']['steady_s'])} |"
        )
    c = mlp["check"]
    lines += [
        "",
        f"Checked before timing: `gh.covariant_hvp` on a small float64 MLP against the "
        f"dense plain-JAX reference (max abs difference {c['dense_f64']:.1e}), and on "
        f"this MLP against the by-hand closed form ({c['closed_form_f32']:.1e}, "
        f"largest entry {c['scale']:.2g}).",
        "",
        "### Goals",
        "",
    ]
    lines += [f"- {goal}" for goal in results["goals"]]
    return "\n".join(lines) + "\n"


def evaluate_goals(results):
    """One line per goal of the issue: met or not, with the numbers."""
    meta, timings = results["meta"], results["dense"]["timings"]
    peer = results["peer"]["timings"]
    goals = []
    d_max = max(meta["dims"])
    for op in OPERATORS:
        if peer is None or d_max != 30:
            goals.append(
                f"geomstats / geomhess >= {GOAL_GEOMSTATS:.0f}x at d=30 on the batch: "
                "not measured in this run."
            )
            break
        key = f"{op}/{d_max}/batch"
        ratio = peer[key]["steady_s"] / timings[f"{key}/geomhess"]["steady_s"]
        met = "met" if ratio >= GOAL_GEOMSTATS else "NOT met"
        goals.append(
            f"`{op}`, d={d_max}, batch: geomstats / geomhess = {ratio:.0f}x "
            f"(goal >= {GOAL_GEOMSTATS:.0f}x): {met}."
        )
    worst = {}
    for op in OPERATORS:
        ratios = {
            (d, where): timings[f"{op}/{d}/{where}/geomhess"]["steady_s"]
            / timings[f"{op}/{d}/{where}/plain"]["steady_s"]
            for d in meta["dims"]
            for where in ("one", "batch")
        }
        over = {k: v for k, v in ratios.items() if v > GOAL_PLAIN}
        worst[op] = max(ratios.values())
        if over:
            cases = ", ".join(
                f"d={d} {w} {r:.2f}x" for (d, w), r in sorted(over.items())
            )
            goals.append(
                f"`{op}`: geomhess / plain JAX <= {GOAL_PLAIN}x: NOT met in {cases}."
            )
        else:
            goals.append(
                f"`{op}`: geomhess / plain JAX <= {GOAL_PLAIN}x: met everywhere "
                f"(worst {worst[op]:.2f}x)."
            )
    t = results["mlp"]["timings"]
    ratio = t["covariant_hvp"]["steady_s"] / t["hvp"]["steady_s"]
    floor = t["covariant_hvp"]["steady_s"] / t["hvp_and_grad"]["steady_s"]
    by_hand = t["covariant_hvp"]["steady_s"] / t["closed_form"]["steady_s"]
    goals.append(
        f"covariant HVP / plain HVP = {ratio:.2f}x (goal <= {GOAL_HVP:.0f}x): "
        f"{'met' if ratio <= GOAL_HVP else 'NOT met'} ({floor:.2f}x the HVP and "
        f"gradient, {by_hand:.2f}x the by-hand covariant HVP)."
    )
    return goals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: d = 3, 10, batch 100, a smaller MLP, fewer rounds",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip geomstats")
    parser.add_argument("--out", help="markdown file whose results block to rewrite")
    parser.add_argument(
        "--json",
        default=str(HERE / ".results" / "latest.json"),
        help="where to save the raw results (default: benchmarks/.results/)",
    )
    parser.add_argument(
        "--geomstats-backend",
        default="autograd",
        choices=["autograd", "pytorch"],
        help="geomstats' autodiff backend (pytorch needs `setup_peers.sh --torch`)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    # dims, batch, MLP layer sizes, rounds (and seconds per round) of the timing.
    if args.quick:  # exercises every code path; its numbers are not the table's
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
    n_check = 4
    problems = {d: make_problem(d, batch, args.seed) for d in dims}

    if args.no_peers:
        peer_timings, peer_values, peer_info = (
            None,
            None,
            "geomstats skipped (--no-peers).",
        )
    else:
        print("geomstats (in .venv-geomstats) ...", flush=True)
        peer_timings, peer_values, peer_info = run_geomstats(
            problems,
            n_check=n_check,
            budget_s=1.0 if args.quick else 3.0,
            backend=args.geomstats_backend,
        )
    if peer_timings is None:
        print(peer_info, flush=True)

    print("geomhess and plain JAX (values checked, then timed) ...", flush=True)
    dense_check, dense_timings = bench_dense(
        problems, peer_values, n_check=n_check, rounds=rounds, round_s=round_s
    )
    print("MLP ...", flush=True)
    mlp = bench_mlp(
        mlp_sizes, mlp_batch, rounds=rounds, round_s=6 * round_s, seed=args.seed
    )

    command = "python benchmarks/run.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    results = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command.strip(),
            "quick": args.quick,
            "dims": list(dims),
            "batch": batch,
            "mlp_sizes": " -> ".join(map(str, mlp_sizes)),
            "mlp_batch": mlp_batch,
            "machine": machine_info(),
            "versions": versions("jax", "jaxlib", "equinox", "numpy", "scipy"),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "total_s": time.perf_counter() - start,
        },
        "peer": {
            "timings": peer_timings,
            "versions": peer_info if isinstance(peer_info, dict) else None,
            "note": None if isinstance(peer_info, dict) else peer_info,
        },
        "dense": {"check": dense_check, "timings": dense_timings},
        "mlp": mlp,
    }
    results["goals"] = evaluate_goals(results)
    block = render(results)
    print()
    print(block)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
    if args.out:
        write_results_block(args.out, block, BEGIN, END)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
