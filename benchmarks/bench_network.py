"""Network-scale benchmarks: covariant HVP, invariant trace and eigenvalues, memory.

On an MLP with about a million parameters (float32, CPU), all in one run:

1. `gh.covariant_hvp` against `jax.grad` and a plain Hessian-vector product, for the
   Euclidean metric carried through a per-layer chart (`gh.charts.Scale`) and for a
   position-dependent diagonal metric; the Gauss-Newton metric's product, natural
   gradient and covariant HVP in float32.
2. The invariant Hutchinson trace `tr(G^{-1} nabla^2 f)` (100 probes) in the chart
   against the naive trace computed the PyHessian way (Rademacher probes on
   `jax.jvp(jax.grad(loss))`, `lax.map`), geomhess's own naive `hessian_trace`, and
   the invariant trace written by hand.
3. The top-5 eigenvalues: `gh.linalg.shape_operator_eigenvalues` in the chart against
   PyHessian's power iteration with deflation, a plain-JAX Lanczos, and geomhess's
   naive `hessian_eigenvalues`.
4. Memory against the parameter count (MLPs of about 0.1M, 0.3M, 1M and 3M
   parameters), each size in a fresh subprocess
   (`python -m benchmarks.bench_network --memory-worker WIDTH`, through
   `benchmarks/_memory.py`): XLA's compiled buffer sizes and the measured peak
   resident memory of the first execution.

The PyHessian way, the plain Lanczos and the plain HVP are written in plain JAX in
`benchmarks/_baselines.py`. Every number is checked before it is timed (closed
forms, the same probes by hand, residual bounds); `benchmarks/_harness.py` compiles
ahead of time (timed apart, with XLA's buffer sizes) and times rotating rounds.

    python -m benchmarks --only network [--quick]
"""

import os


# One BLAS thread, as in `bench_dense.py`: jaxlib's CPU LAPACK kernels otherwise
# start one OpenBLAS thread per core, which fight XLA's own threads on a small
# machine. It has to be set before numpy/scipy/jax load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools as ft  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _baselines as bl, _harness as hz, _memory  # noqa: E402
from benchmarks._networks import diagonal_metric, tanh_mlp  # noqa: E402
from geomhess._core.tree import tree_vdot  # noqa: E402


PAGE = "results_network.md"
MARKERS = ("<!-- results:begin -->", "<!-- results:end -->")
DTYPE = jnp.float32  # what networks train in; x64 stays off in this benchmark

GOAL_EXPONENT = 1.1  # memory ~ params^exponent, exponent at most (linear = 1)
GOALS = [
    hz.Goal(
        "cov_chart",
        "hvp_psi",
        2.0,
        problems=("hvp",),
        text="Covariant HVP within 2x a plain HVP (Euclidean metric through the "
        "per-layer chart)",
    ),
    hz.Goal(
        "cov_diagonal",
        "hvp",
        2.0,
        problems=("hvp",),
        text="Covariant HVP within 2x a plain HVP (`Diagonal(1 + p^2)`)",
    ),
    hz.Goal(
        "gh_invariant_psi",
        "pyhessian_psi",
        2.0,
        problems=("trace",),
        text="Invariant trace within 2x the naive one, the PyHessian way",
    ),
    hz.Goal(
        "gh_invariant_psi",
        "gh_naive_psi",
        2.0,
        problems=("trace",),
        text="Invariant trace within 2x geomhess's naive trace",
    ),
]

# The per-layer chart psi_l = s_l theta_l. Layer 0 scaled up and layer 2 down by the
# same factor, as in Dinh et al. (2017); any nonzero scales would do.
SCALES = {"w0": 3.0, "b0": 3.0, "w1": 1.0, "b1": 1.0, "w2": 1 / 3, "b2": 1 / 3}

FULL = {
    "sizes": (64, 1024, 1024, 16),  # 1,132,560 parameters, as in bench_dense.py
    "batch": 128,
    "num_probes": 100,
    "k": 5,
    "memory_widths": (288, 512, 1024, 1728),  # ~0.1M, 0.3M, 1.1M, 3.1M parameters
    "memory_ops": None,  # all
    "rounds": {"hvp": 41, "gauss_newton": 11, "trace": 9, "eig": 7},
    "budget_s": {"hvp": 30.0, "gauss_newton": 15.0, "trace": 75.0, "eig": 75.0},
    "round_s": 0.15,
}
QUICK = {
    "sizes": (64, 64, 64, 16),
    "batch": 128,
    "num_probes": 100,
    "k": 5,
    "memory_widths": (32, 64),
    "memory_ops": ("trace_invariant",),
    "rounds": {"hvp": 5, "gauss_newton": 3, "trace": 3, "eig": 3},
    "budget_s": {"hvp": 1.0, "gauss_newton": 1.0, "trace": 1.0, "eig": 1.0},
    "round_s": 0.02,
}


# --------------------------------------------------------------------------------------
# The problem


def mlp_widths(width):
    return (64, width, width, 16)


def make_problem(sizes, batch, seed=0):
    """A tanh MLP (`_networks.tanh_mlp`, float32), a weighted MSE on its fixed
    synthetic data, and a per-layer chart.

    Returns a dict: `theta` (parameters), `loss` (of `theta`), `model`, `inputs`,
    `chart`, `psi = chart(theta)`, `psi_loss` (the same loss in `psi` coordinates,
    `gh.ScalarField(loss).reparametrize(chart)`), `psi_metric` (the Euclidean metric
    of `theta` carried through the chart), `v_theta`, `v_psi` (tangent vectors) and
    `n_params`.
    """
    theta, model, inputs, targets, k_v = tanh_mlp(jr.PRNGKey(seed), sizes, batch, DTYPE)
    # Per-output weights 2^(-o/4): with equal weights the output layer's block of
    # the Hessian is `diag(w) (x) (h^T h)`, a 16-fold (nearly) repeated top
    # eigenvalue that neither power iteration nor 30 Lanczos steps resolve, and the
    # eigenvalue comparison would compare unconverged numbers.
    weights = 2.0 ** (-jnp.arange(sizes[-1], dtype=DTYPE) / 4)

    def loss(p):
        return jnp.mean(weights * (model(p, inputs) - targets) ** 2)

    leaves, treedef = jtu.tree_flatten(theta)
    v_keys = jr.split(k_v, 2 * len(leaves))
    v_theta, v_psi = (
        jtu.tree_unflatten(
            treedef,
            [
                jr.normal(k, leaf.shape, DTYPE)
                for k, leaf in zip(ks, leaves, strict=True)
            ],
        )
        for ks in (v_keys[: len(leaves)], v_keys[len(leaves) :])
    )
    chart = gh.charts.Scale(SCALES)
    return {
        "theta": theta,
        "loss": loss,
        "model": model,
        "inputs": inputs,
        "chart": chart,
        "psi": chart(theta),
        "psi_loss": gh.ScalarField(loss).reparametrize(chart),
        "psi_metric": gh.metrics.Euclidean().reparametrize(chart),
        "v_theta": v_theta,
        "v_psi": v_psi,
        "n_params": int(sum(leaf.size for leaf in leaves)),
    }


def problem_args(problem):
    """The one argument of every compared function: the points, the tangents and
    the probes' keys (`key2` for the references computed with other probes)."""
    points = {name: problem[name] for name in ("theta", "psi", "v_theta", "v_psi")}
    return {**points, "key": jr.key(1), "key2": jr.key(2)}


# --------------------------------------------------------------------------------------
# The compared functions, as `name -> (label, function of (x, v, key))`


def hvp_functions(problem):
    loss, psi_loss = problem["loss"], problem["psi_loss"]
    psi_metric = problem["psi_metric"]
    diagonal = gh.LeviCivita(diagonal_metric())
    return {
        "grad": (
            "`jax.grad(loss)` at theta",
            lambda a: jax.grad(loss)(a["theta"]),
        ),
        "hvp": (
            "plain HVP at theta: `jax.jvp(jax.grad(loss), (theta,), (v,))[1]`",
            lambda a: bl.plain_hvp(loss, a["theta"], a["v_theta"]),
        ),
        "hvp_and_grad": (
            "HVP and gradient at theta: both outputs of that `jax.jvp`",
            lambda a: jax.jvp(jax.grad(loss), (a["theta"],), (a["v_theta"],)),
        ),
        "hvp_psi": (
            "plain HVP at psi of `psi_loss` (the loss through the chart)",
            lambda a: bl.plain_hvp(psi_loss, a["psi"], a["v_psi"]),
        ),
        "cov_chart": (
            "`gh.covariant_hvp(psi_loss, Euclidean().reparametrize(chart), psi, v)`",
            lambda a: gh.covariant_hvp(psi_loss, psi_metric, a["psi"], a["v_psi"]),
        ),
        "cov_diagonal": (
            "`gh.covariant_hvp(loss, LeviCivita(Diagonal(1 + p^2)), theta, v)`",
            lambda a: gh.covariant_hvp(loss, diagonal, a["theta"], a["v_theta"]),
        ),
    }


def trace_functions(problem, num_probes):
    psi_loss = problem["psi_loss"]
    psi_metric = problem["psi_metric"]
    # In `psi = s theta` the Euclidean metric of `theta` is `diag(1 / s^2)`.
    scale_sq = jtu.tree_map(
        lambda s, w: jnp.full_like(w, s**2), SCALES, problem["theta"]
    )
    kw = {"num_probes": num_probes, "method": "hutchinson"}
    return {
        "pyhessian_psi": (
            "naive, PyHessian way, at psi: `z^T H z`",
            lambda a: bl.hutchinson_trace(psi_loss, a["psi"], a["key"], num_probes),
        ),
        "gh_naive_psi": (
            "naive, `gh.linalg.hessian_trace(psi_loss, psi)`",
            lambda a: _estimate(
                gh.linalg.hessian_trace(psi_loss, a["psi"], key=a["key"], **kw)
            ),
        ),
        "gh_invariant_psi": (
            "invariant, `gh.linalg.shape_operator_trace(psi_loss, "
            "Euclidean().reparametrize(chart), psi)`",
            lambda a: _estimate(
                gh.linalg.shape_operator_trace(
                    psi_loss, psi_metric, a["psi"], key=a["key"], **kw
                )
            ),
        ),
        "by_hand_invariant_psi": (
            "invariant by hand at psi: `z^T (s^2 * H z)`, geomhess's probes",
            lambda a: bl.hutchinson_trace(
                psi_loss, a["psi"], a["key"], num_probes, scale=scale_sq
            ),
        ),
    }


def _estimate(result):
    return result.estimate, result.std_error


def eig_functions(problem, k):
    psi_loss, psi_metric = problem["psi_loss"], problem["psi_metric"]
    num_iterations = max(3 * k, 30)  # geomhess's default
    kw = {"k": k, "which": "magnitude"}
    return {
        "pyhessian_psi": (
            f"naive, PyHessian power iteration + deflation (<= {bl.POWER_MAX_ITER} "
            f"HVPs each, tol {bl.POWER_TOL:g})",
            lambda a: bl.pyhessian_eigenvalues(psi_loss, a["psi"], a["key"], k),
        ),
        "lanczos_psi": (
            f"naive, plain-JAX Lanczos ({num_iterations} HVPs, full reorth.)",
            lambda a: bl.plain_lanczos_eigenvalues(
                psi_loss, a["psi"], a["key"], k, num_iterations
            ),
        ),
        "gh_naive_psi": (
            "naive, `gh.linalg.hessian_eigenvalues(psi_loss, psi, k=5)`",
            lambda a: _ritz(
                gh.linalg.hessian_eigenvalues(psi_loss, a["psi"], key=a["key"], **kw)
            ),
        ),
        "gh_invariant_psi": (
            "invariant, `gh.linalg.shape_operator_eigenvalues(psi_loss, "
            "Euclidean().reparametrize(chart), psi, k=5)`",
            lambda a: _ritz(
                gh.linalg.shape_operator_eigenvalues(
                    psi_loss, psi_metric, a["psi"], key=a["key"], **kw
                )
            ),
        ),
    }, num_iterations


def _ritz(result):
    return result.eigenvalues, result.residuals


# --------------------------------------------------------------------------------------
# Checks (before anything is timed)


def fail(message):
    raise hz.CheckError(f"{message}; refusing to time wrong numbers")


def check_hvp(problem):
    """The covariant HVPs against closed forms (float32 round-off of the HVP).

    - In `psi` the carried Euclidean metric is constant, so its covariant HVP is the
      plain HVP of `psi_loss`; and, as a tensor, `H_psi v = s^{-1} H_theta (s^{-1} v)`
      leaf by leaf.
    - `diag(1 + p^2)` has `Gamma^i_ii = p_i / (1 + p_i^2)`, so
      `nabla^2 f v = H v - p v df / (1 + p^2)`.
    """
    loss, theta, v_psi = problem["loss"], problem["theta"], problem["v_psi"]
    unscaled = jtu.tree_map(lambda s, v: v / s, SCALES, v_psi)
    tensor = jtu.tree_map(
        lambda s, h: h / s,
        SCALES,
        jax.jit(bl.plain_hvp, static_argnums=0)(loss, theta, unscaled),
    )
    df, hv = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,)))(
        theta, problem["v_theta"]
    )
    closed = jtu.tree_map(
        lambda h, p, v, g: h - p * v * g / (1 + p**2), hv, theta, problem["v_theta"], df
    )

    def check(outputs):
        outputs = jax.device_get(outputs)
        report = {}
        for name, reference, against in (
            ("cov_chart", outputs["hvp_psi"], "plain HVP at psi"),
            ("cov_chart", tensor, "s^-1 H_theta s^-1 v"),
            ("cov_diagonal", closed, "closed form"),
        ):
            diff = hz.max_abs_diff(outputs[name], reference)
            scale = hz.max_abs(reference)
            if not diff <= 1e-4 * scale:
                fail(
                    f"{name} vs {against}: max abs difference {diff:.3g} "
                    f"(scale {scale:.3g})"
                )
            report[f"{name} vs {against}"] = (diff, scale)
        return report

    return check


def check_trace(theta_reference):
    """By hand (same probes): to round-off; the others: within 4 combined std errors.

    `theta_reference` is the naive trace at theta the PyHessian way (other probes),
    which is the invariant trace: the metric is Euclidean in theta.
    """

    def check(outputs):
        outputs = jax.device_get(outputs)
        est = {name: (float(out[0]), float(out[1])) for name, out in outputs.items()}
        est["pyhessian_theta"] = tuple(float(x) for x in theta_reference)
        report = {"values": est}
        (a, _), (b, _) = est["gh_invariant_psi"], est["by_hand_invariant_psi"]
        if not abs(a - b) <= 1e-4 * abs(b):
            fail(f"invariant trace {a} vs by hand {b} with the same probes")
        report["same probes"] = abs(a - b) / abs(b)
        for left, right in (
            ("gh_naive_psi", "pyhessian_psi"),
            ("gh_invariant_psi", "pyhessian_theta"),
        ):
            (x, ex), (y, ey) = est[left], est[right]
            sigmas = abs(x - y) / math.hypot(ex, ey)
            if not sigmas <= 4:
                fail(
                    f"trace {left} = {x:.6g} +- {ex:.2g} vs {right} = {y:.6g} +- {ey:.2g}"
                )
            report[f"{left} vs {right}"] = sigmas
        (x, ex), (y, ey) = est["gh_naive_psi"], est["gh_invariant_psi"]
        report["naive vs invariant at psi"] = abs(x - y) / math.hypot(ex, ey)
        return report

    return check


def check_eig(problem, theta_reference):
    """Eigenvalues against each other, within their residual bounds.

    Every method's `(theta, y)` comes with the residual `||H y - theta y||` (in the
    metric's norm for geomhess, computed here for the power iteration): some
    eigenvalue lies within it. Two methods must agree to within the sum of their
    residuals plus `1e-3` of the largest eigenvalue (float32 round-off).
    `theta_reference` holds the invariant eigenvalues (and residuals) computed in
    the original chart, where the invariant ones are the naive ones.
    """
    psi_loss, psi = problem["psi_loss"], problem["psi"]
    # `psi` is an argument, not a closure: XLA would constant-fold the HVP on it.
    power_residuals = jax.jit(ft.partial(bl.eigen_residuals, psi_loss))

    def check(outputs):
        outputs = jax.device_get(outputs)
        report = {"values": {}}
        for name, out in outputs.items():
            report["values"][name] = np.asarray(out[0]).tolist()
        gh_vals, gh_res = (np.asarray(x) for x in outputs["gh_naive_psi"])
        inv_vals, inv_res = (np.asarray(x) for x in outputs["gh_invariant_psi"])
        lz_vals, lz_res = (np.asarray(x) for x in outputs["lanczos_psi"])
        py_vals, py_iters, py_vecs = outputs["pyhessian_psi"]
        py_res = np.asarray(power_residuals(psi, py_vals, py_vecs))
        order = np.argsort(-np.abs(np.asarray(py_vals)))
        py_vals, py_res = np.asarray(py_vals)[order], py_res[order]
        ref_vals, ref_res = theta_reference
        scale = float(np.max(np.abs(gh_vals)))
        slack = 1e-3 * scale  # float32 Lanczos round-off on top of the bounds
        report["pyhessian_iterations"] = py_iters.tolist()
        report["residuals"] = {
            "gh_naive_psi": gh_res.tolist(),
            "gh_invariant_psi": inv_res.tolist(),
            "lanczos_psi": lz_res.tolist(),
            "pyhessian_psi": py_res.tolist(),
        }
        for label, x, ex, y, ey in (
            ("gh naive vs plain Lanczos", gh_vals, gh_res, lz_vals, lz_res),
            ("invariant at psi vs at theta", inv_vals, inv_res, ref_vals, ref_res),
            ("gh naive vs PyHessian way", gh_vals, gh_res, py_vals, py_res),
        ):
            diff = np.abs(x - y)
            if not np.all(diff <= ex + ey + slack):
                fail(f"eigenvalues, {label}: {x} vs {y} (residuals {ex}, {ey})")
            report[label] = float(np.max(diff))
        report["naive vs invariant at psi (relative)"] = float(
            np.max(np.abs(gh_vals - inv_vals) / np.abs(inv_vals))
        )
        return report

    return check


# --------------------------------------------------------------------------------------
# Memory against parameter count, one fresh subprocess per size (`_memory.py`)

# The operations measured, `op -> (section, name)` of the compared functions.
MEMORY_OPS = {
    "grad": ("hvp", "grad"),
    "hvp_psi": ("hvp", "hvp_psi"),
    "cov_chart": ("hvp", "cov_chart"),
    "trace_pyhessian": ("trace", "pyhessian_psi"),
    "trace_invariant": ("trace", "gh_invariant_psi"),
    "eig_lanczos": ("eig", "lanczos_psi"),
    "eig_invariant": ("eig", "gh_invariant_psi"),
}


def memory_worker(width, num_probes, k, only=None):
    """One MLP size's operations (`MEMORY_OPS`, or those in `only`) measured by
    `_memory.measure` in this fresh process; prints the JSON line that
    `bench_memory` reads."""
    problem = make_problem(mlp_widths(width), FULL["batch"])
    fns = {
        "hvp": hvp_functions(problem),
        "trace": trace_functions(problem, num_probes),
        "eig": eig_functions(problem, k)[0],
    }
    ops = {
        op: fns[section][name][1]
        for op, (section, name) in MEMORY_OPS.items()
        if not only or op in only
    }
    out = {"width": width, "n_params": problem["n_params"]}
    out |= _memory.measure(
        ops, problem_args(problem), lambda a: jax.grad(problem["loss"])(a["theta"])
    )
    print(json.dumps(out))


def bench_memory(widths, num_probes, only):
    """The memory entries, one fresh `memory_worker` process per width."""
    argv = ["--num-probes", str(num_probes)]
    argv += ["--memory-ops", ",".join(only)] if only else []
    return _memory.in_workers(
        "benchmarks.bench_network", widths, argv, size_name="width"
    )


# --------------------------------------------------------------------------------------
# The Gauss-Newton metric (raise_index by conjugate gradients)

GN_DAMPING = 1e-2


def gauss_newton_functions(problem, damping):
    """The damped GGN of the MSE: `mvp`, the natural gradient and the covariant HVP."""
    metric = gh.metrics.GaussNewton(
        problem["model"], problem["inputs"], "squared_error", damping=damping
    )
    loss = problem["loss"]
    fns = {
        "gn_mvp": (
            "`metric.mvp(theta, v)` (one JVP and one VJP of the model)",
            lambda a: metric.mvp(a["theta"], a["v_theta"]),
        ),
        "gn_natural_gradient": (
            "`gh.riemannian_gradient(loss, metric, theta)` (`raise_index` of the "
            "gradient, CG)",
            lambda a: gh.riemannian_gradient(loss, metric, a["theta"]),
        ),
        "gn_cov_hvp": (
            "`gh.covariant_hvp(loss, LeviCivita(metric), theta, v)`",
            lambda a: gh.covariant_hvp(loss, metric, a["theta"], a["v_theta"]),
        ),
    }
    return metric, fns


def check_gauss_newton(problem, metric):
    """The natural gradient solves `G u = df` (relative residual, float32), and the
    covariant Hessian of the Levi-Civita connection is symmetric:
    `<u, nabla^2 f v> = <v, nabla^2 f u>` for the two tangent vectors of the problem.
    """
    theta, v, u = problem["theta"], problem["v_theta"], problem["v_psi"]
    grad = jax.jit(jax.grad(problem["loss"]))(theta)
    mvp = jax.jit(lambda p, w: metric.mvp(p, w))
    # theta is an argument, not a closed-over constant, so that XLA does not spend
    # seconds constant-folding the network.
    cov_hvp = jax.jit(lambda p, w: gh.covariant_hvp(problem["loss"], metric, p, w))

    def norm(tree):
        return jnp.linalg.norm(ravel_pytree(tree)[0])

    def check(outputs):
        flat_grad = ravel_pytree(grad)[0]
        residual = ravel_pytree(mvp(theta, outputs["gn_natural_gradient"]))[0]
        relative = float(
            jnp.linalg.norm(residual - flat_grad) / jnp.linalg.norm(flat_grad)
        )
        if not relative <= 1e-4:
            fail(f"GaussNewton natural gradient: relative residual {relative:.3g}")
        hv = outputs["gn_cov_hvp"]
        hu = cov_hvp(theta, u)
        uhv, vhu = float(tree_vdot(u, hv)), float(tree_vdot(v, hu))
        scale = max(float(norm(u) * norm(hv)), float(norm(v) * norm(hu)))
        asymmetry = abs(uhv - vhu) / scale
        if not asymmetry <= 1e-3:
            fail(f"GaussNewton covariant HVP not symmetric: {asymmetry:.3g}")
        return {"residual": relative, "asymmetry": asymmetry}

    return check


# --------------------------------------------------------------------------------------
# The run


LABELS = {}  # section -> {name: label}, filled by `section` and saved in the payload


def section(name, fns, inputs, check, config):
    """One section through the harness: compiled ahead of time (timed apart, with
    XLA's buffer sizes), run once and checked, then timed in rotating rounds."""
    LABELS[name] = {n: label for n, (label, _) in fns.items()}
    rows = hz.run_problem(
        hz.Problem(name, (inputs,), check=check),
        [hz.Contender(n, fn, label) for n, (label, fn) in fns.items()],
        rounds=config["rounds"][name],
        budget_s=config["budget_s"][name],
        round_s=config["round_s"],
        compile_apart=True,
    )
    return rows


def run(quick=False):
    """Check, then time, every section; the JSON-able payload for `render`."""
    env = hz.environment(quick=quick)
    config = QUICK if quick else FULL
    problem = make_problem(config["sizes"], config["batch"])
    print(f"MLP {config['sizes']}: {problem['n_params']:,} parameters", flush=True)
    inputs = problem_args(problem)
    results = {}
    print("covariant HVP ...", flush=True)
    results["hvp"] = section(
        "hvp", hvp_functions(problem), inputs, check_hvp(problem), config
    )
    print("Gauss-Newton ...", flush=True)
    metric, gn_fns = gauss_newton_functions(problem, GN_DAMPING)
    check = check_gauss_newton(problem, metric)
    results["gauss_newton"] = section("gauss_newton", gn_fns, inputs, check, config)
    print("trace ...", flush=True)
    # The invariant trace's reference: the naive trace at theta, the PyHessian way,
    # with other probes; computed once, not timed (it costs what the row at psi does).
    trace_reference = jax.jit(
        lambda a: bl.hutchinson_trace(
            problem["loss"], a["theta"], a["key2"], config["num_probes"]
        )
    )(inputs)
    trace_fns = trace_functions(problem, config["num_probes"])
    check = check_trace(trace_reference)
    results["trace"] = section("trace", trace_fns, inputs, check, config)
    print("eigenvalues ...", flush=True)
    eig_fns, lanczos_iterations = eig_functions(problem, config["k"])
    # Their reference: the naive (= invariant) ones at theta, other start vector.
    eig = ft.partial(gh.linalg.hessian_eigenvalues, k=config["k"], which="magnitude")
    theta_reference = jax.jit(
        lambda a: _ritz(eig(problem["loss"], a["theta"], key=a["key2"]))
    )(inputs)
    check = check_eig(problem, tuple(np.asarray(x) for x in theta_reference))
    results["eig"] = section("eig", eig_fns, inputs, check, config)
    print("memory (one subprocess per size) ...", flush=True)
    memory = bench_memory(
        config["memory_widths"], config["num_probes"], config["memory_ops"]
    )
    return {
        "env": hz.finish_environment(env),
        "meta": {
            "sizes": " -> ".join(map(str, config["sizes"])),
            "n_params": problem["n_params"],
            "batch": config["batch"],
            "scales": ", ".join(f'"{k}": {v:.3g}' for k, v in SCALES.items()).join(
                "{}"
            ),
            "num_probes": config["num_probes"],
            "k": config["k"],
            "lanczos_iterations": lanczos_iterations,
            "damping": GN_DAMPING,
        },
        "labels": LABELS,
        "results": results,
        "memory": memory,
    }


# --------------------------------------------------------------------------------------
# The page


def _steady(results, section, name):
    return results[section][name]["steady_s"]


def render(payload):
    meta, results, labels = payload["meta"], payload["results"], payload["labels"]
    rounds = {s: next(iter(r.values()))["rounds"] for s, r in results.items()}
    environment = hz.render_environment(
        payload["env"],
        notes=[
            "Float32, x64 off. No GPU: the device tool lends no GPU to this task, so "
            "the ~100M-parameter GPU run the issue asks for where one is lent was "
            "not done.",
            f"Network: tanh MLP {meta['sizes']}, {meta['n_params']:,} parameters (a "
            f"dict of float32 arrays `w0, b0, ...`), MSE on a fixed synthetic batch "
            f"of {meta['batch']}. Per-layer chart `gh.charts.Scale({meta['scales']})`"
            ", `psi = chart(theta)`, `psi_loss = "
            "gh.ScalarField(loss).reparametrize(chart)`.",
        ],
    )

    def table(section, base, columns=()):
        rows = {section: results[section]}
        return hz.render_table(
            rows, labels[section], base, first="1st run", columns=columns
        )

    own_base = {"cov_chart": "hvp_psi", "cov_diagonal": "hvp"}

    def same_coordinates(problem, name, row):
        base = own_base.get(name)
        if base is None or "steady_s" not in row:
            return ""
        return hz.fmt_ratio(row["steady_s"] / _steady(results, problem, base))

    gn_checks = results["gauss_newton"][hz.CHECK]
    ct, ce = results["trace"][hz.CHECK], results["eig"][hz.CHECK]
    values = ct["values"]
    estimate = "{:.5g} +- {:.2g}".format  # a trace and its standard error
    trace_cell = ("estimate +- std error", lambda p, n, r: estimate(*values[n]))
    eig_cell = (
        "eigenvalues",
        lambda p, n, r: ", ".join(f"{x:.4g}" for x in ce["values"][n]),
    )
    op_labels = {
        "grad": "`jax.grad`",
        "hvp_psi": "plain HVP",
        "cov_chart": "`covariant_hvp` (chart)",
        "trace_pyhessian": f"trace, PyHessian way ({meta['num_probes']} probes)",
        "trace_invariant": f"invariant trace ({meta['num_probes']} probes)",
        "eig_lanczos": f"plain Lanczos ({meta['lanczos_iterations']} its)",
        "eig_invariant": f"invariant top-{meta['k']} (Lanczos, "
        f"{meta['lanczos_iterations']} its)",
    }
    return hz.fill_page(
        "network",
        environment=environment,
        rounds_hvp=rounds["hvp"],
        rounds_trace=rounds["trace"],
        rounds_eig=rounds["eig"],
        hvp_table=table(
            "hvp", "hvp", [("/ plain HVP, same loss and coordinates", same_coordinates)]
        ),
        hvp_checks="; ".join(
            f"{name}: {diff:.1e} / {scale:.2g}"
            for name, (diff, scale) in results["hvp"][hz.CHECK].items()
        ),
        damping=f"{meta['damping']:g}",
        gn_table=table("gauss_newton", "gn_mvp"),
        gn_residual=f"{gn_checks['residual']:.1e}",
        gn_asymmetry=f"{gn_checks['asymmetry']:.1e}",
        num_probes=meta["num_probes"],
        trace_table=table("trace", "pyhessian_psi", [trace_cell]),
        same_probes=f"{ct['same probes']:.1e}",
        naive_vs_pyhessian=f"{ct['gh_naive_psi vs pyhessian_psi']:.1f}",
        trace_at_theta=estimate(*values["pyhessian_theta"]),
        invariant_vs_theta=f"{ct['gh_invariant_psi vs pyhessian_theta']:.1f}",
        naive_vs_invariant=f"{ct['naive vs invariant at psi']:.0f}",
        k=meta["k"],
        eig_table=table("eig", "pyhessian_psi", [eig_cell]),
        power_iterations=f"{ce['pyhessian_iterations']}",  # a list, as printed
        power_sum=sum(ce["pyhessian_iterations"]),
        lanczos_iterations=meta["lanczos_iterations"],
        naive_vs_plain=f"{ce['gh naive vs plain Lanczos']:.2g}",
        psi_vs_theta=f"{ce['invariant at psi vs at theta']:.2g}",
        naive_vs_power=f"{ce['gh naive vs PyHessian way']:.2g}",
        residual_bounds=", ".join(
            f"{name} {max(res):.2g}" for name, res in ce["residuals"].items()
        ),
        naive_vs_invariant_eig=f"{100 * ce['naive vs invariant at psi (relative)']:.0f}",
        memory_table=_memory.render_table(payload["memory"], op_labels),
        goals=hz.render_goals(GOALS, results, extra=extra_goal_lines(payload)),
    )


def extra_goal_lines(payload):
    """The lines that are not a ratio of two rows: eigenvalues (no numeric goal),
    Gauss-Newton, memory's exponent, the GPU run."""
    results, meta = payload["results"], payload["meta"]
    eig = results["eig"]
    inv = eig["gh_invariant_psi"]["steady_s"]
    out = [
        f"Top-{meta['k']} eigenvalues (no numeric goal): the invariant ones take "
        f"{inv / eig['pyhessian_psi']['steady_s']:.2f}x the time of PyHessian's power "
        f"iteration and {inv / eig['gh_naive_psi']['steady_s']:.2f}x geomhess's naive "
        "ones."
    ]
    rows = results["gauss_newton"]
    natural = rows["gn_natural_gradient"]["steady_s"]
    out.append(
        "Gauss-Newton metric in float32 (no numeric goal; it failed before the "
        f"solver was replaced): the natural gradient takes {hz.fmt_time(natural)} "
        f"({natural / rows['gn_mvp']['steady_s']:.0f} metric products' time), the "
        f"covariant HVP {hz.fmt_time(rows['gn_cov_hvp']['steady_s'])}."
    )
    out.append(_memory.goal_line(payload["memory"], GOAL_EXPONENT))
    out.append("~100M parameters on a GPU: not measured, no GPU is lent to this task.")
    return out


if __name__ == "__main__":
    # Only the memory worker runs this module as a script (one MLP size per fresh
    # process); the benchmark itself runs through `python -m benchmarks`.
    parser = argparse.ArgumentParser(description="memory worker of bench_network")
    parser.add_argument("--memory-worker", type=int, required=True)
    parser.add_argument("--num-probes", type=int, default=100)
    parser.add_argument("--memory-ops")
    args = parser.parse_args()
    only = args.memory_ops.split(",") if args.memory_ops else None
    memory_worker(args.memory_worker, args.num_probes, FULL["k"], only)
    sys.exit(0)
