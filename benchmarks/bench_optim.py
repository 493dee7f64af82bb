"""Riemannian optimizers of geomhess against pymanopt and geoopt, side by side in one run.

Two measurements (issue 3):

1. **Trust regions to a gradient norm of 1e-8** (float64): the Rayleigh quotient
   `f(x) = x^T A x` on `Sphere(1000)` (minimum: the smallest eigenvalue of `A`) and
   the Brockett cost `f(X) = tr(X^T A X N)`, `N = diag(p, ..., 1)`, on `Stiefel(n, p)`
   (minimum: `sum_i N_ii lambda_i` over the `p` smallest eigenvalues), from the same
   random starting point: `gh.optim.trust_region` against pymanopt's `TrustRegions`,
   both with hand-written derivatives (pymanopt's numpy backend) and with autodiff of
   the cost alone (pymanopt's PyTorch backend), and against the arithmetic floor
   (the products with `A` alone). Also from a warm start near the minimizer, with
   `gh.optim.newton` as well.
2. **Riemannian Adam step time** (float32): `gh.optim.radam` on `Sphere` and
   `Stiefel` parameters against `optax.adam` on unconstrained parameters of the same
   size, the geometry of a step by hand, and geoopt's `RiemannianAdam` (torch) on
   the same manifold, with `torch.optim.Adam` as torch's unconstrained reference.

Every result is checked before it is timed: all solvers must end at the known
minimum (against `numpy.linalg.eigh`: the value and the minimizer) with a gradient
norm below the tolerance, on the manifold, and at pymanopt's minimizer; `radam` must
stay on the manifold and agree with geoopt's `RiemannianAdam` after a few steps.
pymanopt and geoopt run in their own environment (`.venv-optim-peers`, made by
`benchmarks/setup_optim_peers.sh`) through `benchmarks/optim_peers_worker.py`, a
subprocess that takes commands one at a time (`benchmarks/_peers.py`), so that
geomhess and its peers take turns in every timing round (`benchmarks/_harness.py`);
without that environment their rows read "not run". The geomhess solves to the
tolerance are `benchmarks/_solvers.py`'s, the floors and the geometry of a step by
hand `benchmarks/_baselines.py`'s.

    python -m benchmarks --only optim [--quick]
"""

import os


# jaxlib's CPU LAPACK kernels (the `eigh` of Stiefel's polar retraction) and numpy in
# the peer process call OpenBLAS, which starts a thread per core. On this 2-core
# shared machine that oversubscribes the cores: pymanopt's Brockett(1000, 10) solve
# took 56 s with 2 OpenBLAS threads and 12 s with 1. One thread is set before numpy,
# scipy and jax load (and the peer process inherits it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import functools as ft  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _baselines as bl, _harness as hz, _peers, _solvers  # noqa: E402


PAGE = "results_optim.md"  # its prose (how it is measured) lives there
MARKERS = ("<!-- results:begin -->", "<!-- results:end -->")
PEER_PYTHON = hz.ROOT / ".venv-optim-peers" / "bin" / "python"

TOL = 1e-8  # the gradient norm to reach
MAX_ITERATIONS = 1000
LR = 1e-3  # the Adam learning rate (it does not change the cost of a step)
PROFILE = "profile_trust_region.md"  # where the trust region's time goes
# The trust-region problems' sizes, `(rayleigh_n, brockett_sizes)`: a full run's
# (which `profile_trust_region.py` profiles too) and a quick run's.
TR_SIZES = (1000, ((100, 5), (500, 10)))
TR_SIZES_QUICK = (200, ((50, 3),))

GOALS_TR = [
    hz.Goal(
        "gh_tr_hvp_fn",
        "floor_gh",
        1.3,
        text="`trust_region` with `hvp_fn` within 1.3x the JAX floor (geomhess's "
        "own product count), every problem",
        link=PROFILE,
    ),
    hz.Goal(
        "gh_tr",
        "floor_gh",
        2.2,
        text="`trust_region` with autodiff derivatives (the default) within 2.2x the "
        "JAX floor, every problem",
        link=PROFILE,
    ),
    hz.Goal(
        "pymanopt_torch",
        "gh_tr",
        10.0,
        at_most=False,
        text="`trust_region` at least 10x faster than pymanopt given the cost alone "
        "(PyTorch autodiff)",
        link=PROFILE,
    ),
    hz.Goal(
        "pymanopt",
        "gh_tr",
        10.0,
        at_most=False,
        text="`trust_region` at least 10x faster than pymanopt with hand-written "
        "derivatives (numpy), random starts",
        link=PROFILE,
    ),
]
GOALS_ADAM = [
    hz.Goal(
        "gh_radam",
        ("+", "optax_adam", "geometry_jax"),
        1.2,
        text="`radam` within 1.2x `optax.adam` plus the geometry by hand in JAX",
    ),
    hz.Goal(
        "gh_radam",
        "optax_adam",
        1.3,
        text="`radam` within 1.3x `optax.adam` (the first goal, superseded by the "
        "one above: it cannot hold where the geometry alone, the `geometry_jax` row "
        "of the same run, costs more than Adam's own arithmetic, as on every problem "
        "where it is not met)",
    ),
    hz.Goal(
        ("min", "geoopt@1", "geoopt@2"),
        "gh_radam",
        1.0,
        at_most=False,
        text="`radam` faster than geoopt's `RiemannianAdam` (its faster thread count)",
    ),
]


# --------------------------------------------------------------------------------------
# Problems: numpy arrays, the same for geomhess and (through an .npz file) the peers.


def goe(rng, n):
    """A random symmetric `(n, n)` matrix, spectrum about `[-sqrt 2, sqrt 2]`."""
    B = rng.standard_normal((n, n))
    return (B + B.T) / (2 * math.sqrt(n))


def make_tr_problems(rayleigh_n, brockett_sizes, seed):
    """Rayleigh on the sphere (from a random and from a warm start) and Brockett."""
    problems = {}
    rng = np.random.default_rng(seed)
    A = goe(rng, rayleigh_n)
    eigenvalues, eigenvectors = np.linalg.eigh(A)
    x0 = rng.standard_normal(rayleigh_n)
    base = {
        "kind": "rayleigh",
        "A": A,
        "f_min": eigenvalues[0],
        "x_min": eigenvectors[:, 0],
    }
    problems[f"rayleigh{rayleigh_n}"] = {**base, "x0": x0 / np.linalg.norm(x0)}
    # A warm start: 0.05 away from the minimizer (where Newton converges to it).
    noise = rng.standard_normal(rayleigh_n)
    warm = eigenvectors[:, 0] + 0.05 * noise / np.linalg.norm(noise)
    problems[f"rayleigh{rayleigh_n}-warm"] = {**base, "x0": warm / np.linalg.norm(warm)}
    for n, p in brockett_sizes:
        A = goe(rng, n)
        d = np.arange(p, 0, -1).astype(np.float64)
        X0, _ = np.linalg.qr(rng.standard_normal((n, p)))
        problems[f"brockett{n}x{p}"] = {
            "kind": "brockett",
            "A": A,
            "N": np.diag(d),
            "x0": X0,
            "f_min": float(d @ np.linalg.eigvalsh(A)[:p]),
            # The largest weight goes with the smallest eigenvalue.
            "x_min": np.linalg.eigh(A)[1][:, :p],
        }
    for problem in problems.values():
        # The gaps that make the minimizer unique (up to signs): between the lowest
        # eigenvalues, p + 1 of them on Stiefel(n, p).
        w = np.linalg.eigvalsh(problem["A"])
        k = 2 if problem["kind"] == "rayleigh" else problem["x0"].shape[1] + 1
        problem["gap"] = float(np.min(np.diff(w[:k])))
    return problems


def make_adam_problems(sphere_sizes, stiefel_sizes, seed):
    """A float32 point on the manifold and a fixed float32 gradient, per size."""
    rng = np.random.default_rng(seed + 1)
    problems = {}
    for n in sphere_sizes:
        x = rng.standard_normal(n)
        problems[f"sphere{n}"] = {
            "kind": "sphere",
            "x0": (x / np.linalg.norm(x)).astype(np.float32),
            "g": rng.standard_normal(n).astype(np.float32),
        }
    for n, p in stiefel_sizes:
        X, _ = np.linalg.qr(rng.standard_normal((n, p)))
        problems[f"stiefel{n}x{p}"] = {
            "kind": "stiefel",
            "x0": X.astype(np.float32),
            "g": rng.standard_normal((n, p)).astype(np.float32),
        }
    return problems


def manifold_of(problem):
    shape = problem["x0"].shape
    if problem["kind"] in ("rayleigh", "sphere"):
        return gh.manifolds.Sphere(shape[0])
    return gh.manifolds.Stiefel(*shape)


def pymanopt_radii(problem):
    """pymanopt's default trust-region radii: `typical_dist / 8` and `typical_dist`."""
    typical = (
        math.pi if problem["kind"] == "rayleigh" else math.sqrt(problem["x0"].shape[1])
    )
    return typical / 8, typical


# --------------------------------------------------------------------------------------
# Objectives, as `_solvers.Objective` modules, so that `A` is traced (not baked into
# the executable).


def rayleigh(A, x):
    """`x^T A x`, differentiated by JAX."""
    return x @ (A @ x)


def brockett(A, d, X):
    """`tr(X^T A X N) = sum(X * (A X) * d)` with `N = diag(d)`, differentiated by JAX."""
    return jnp.sum(X * (A @ X) * d)


# The same objectives with hand-written derivatives (what pymanopt is given): JAX does
# not know that `A` is symmetric, so its Hessian-vector product of `x^T A x` costs two
# products with `A` (`A v` and `A^T v`); this rule costs one. `A` and `d` are data:
# their tangents are ignored (they are never differentiated).
rayleigh_by_hand = jax.custom_jvp(rayleigh)
brockett_by_hand = jax.custom_jvp(brockett)


@rayleigh_by_hand.defjvp
def _rayleigh_jvp(primals, tangents):
    (A, x), (_, v) = primals, tangents
    Ax = A @ x
    return x @ Ax, 2 * (Ax @ v)


@brockett_by_hand.defjvp
def _brockett_jvp(primals, tangents):
    (A, d, X), (_, _, V) = primals, tangents
    AXd = (A @ X) * d
    return jnp.sum(X * AXd), 2 * jnp.sum(AXd * V)


def rayleigh_hvp(A, x, v):
    """The Euclidean HVP of `x^T A x` by hand, `2 A v`, for `hvp_fn`."""
    return 2 * (A @ v)


def brockett_hvp(A, d, X, V):
    """The Euclidean HVP of `tr(X^T A X N)` by hand, `2 A V N`, for `hvp_fn`."""
    return 2 * (A @ V) * d


def objective(problem, by_hand=False, hvp_fn=False):
    """The problem's cost as a module: differentiated by JAX, or with the
    hand-written derivatives (`by_hand`), or with JAX's value and gradient and the
    hand-written HVP (`hvp_fn`)."""
    A = jnp.asarray(problem["A"])
    if problem["kind"] == "rayleigh":
        data, f, f_by_hand, hvp = (A,), rayleigh, rayleigh_by_hand, rayleigh_hvp
    else:
        data = (A, jnp.asarray(np.diag(problem["N"])))
        f, f_by_hand, hvp = brockett, brockett_by_hand, brockett_hvp
    module = _solvers.Objective
    if hvp_fn:
        return _solvers.WithHVP(module(f, data), module(hvp, data))
    return module(f_by_hand if by_hand else f, data)


def gh_contenders(name, problem):
    """`label -> (solve, optimizer, objective)` for one problem."""
    manifold = manifold_of(problem)
    same = gh.optim.trust_region(manifold, *pymanopt_radii(problem))
    loop, f = _solvers.solve_while, objective(problem)
    out = {
        "gh_tr": (loop, same, f),
        "gh_tr_hvp_fn": (loop, same, objective(problem, hvp_fn=True)),
        "gh_tr_by_hand": (loop, same, objective(problem, by_hand=True)),
    }
    if name.endswith("-warm"):
        out["gh_newton"] = (loop, gh.optim.newton(manifold), f)
    else:
        out["gh_tr_default"] = (loop, gh.optim.trust_region(manifold), f)
        out["gh_tr_python"] = (_solvers.solve_python, same, f)
    return out


# pymanopt's two configurations: `label -> backend` (see optim_peers_worker.py).
PYMANOPT_BACKENDS = {"pymanopt": "numpy", "pymanopt_torch": "pytorch"}

TR_ROWS = {
    "pymanopt": "pymanopt `TrustRegions` (numpy, hand-written gradient and Hessian)",
    "pymanopt_torch": "pymanopt `TrustRegions` (PyTorch backend: the cost alone, "
    "autodiff derivatives)",
    "gh_tr": "`gh.optim.trust_region`, pymanopt's radii, `lax.while_loop`",
    "gh_tr_hvp_fn": "the same, with a hand-written Euclidean HVP (`hvp_fn=`)",
    "gh_tr_by_hand": "the same, objective with hand-written derivatives (`custom_jvp`)",
    "gh_tr_default": "`gh.optim.trust_region`, geomhess's default radii",
    "gh_tr_python": "`gh.optim.trust_region`, pymanopt's radii, Python loop over a "
    "jitted step",
    "gh_newton": "`gh.optim.newton` (matrix-free MINRES), `lax.while_loop`",
}


# --------------------------------------------------------------------------------------
# Part 1: trust regions


def off_manifold(x):
    """How far `x` is off its manifold: `| |x| - 1 |` on the sphere, the largest
    entry of `|x^T x - I|` on Stiefel."""
    if x.ndim == 1:
        return abs(float(np.linalg.norm(x)) - 1)
    return float(np.max(np.abs(x.T @ x - np.eye(x.shape[1]))))


def check_point(name, problem, label, x, iterations):
    """The final point: on the manifold, gradient below `TOL`, at the minimum."""
    x = np.asarray(x, dtype=np.float64)
    A = problem["A"]
    if problem["kind"] == "rayleigh":
        value = float(x @ A @ x)
        egrad = 2 * A @ x
        rgrad = egrad - (x @ egrad) * x
    else:
        d = np.diag(problem["N"])
        value = float(np.sum(x * (A @ x) * d))
        egrad = 2 * (A @ x) * d
        xtg = x.T @ egrad
        rgrad = egrad - x @ (0.5 * (xtg + xtg.T))
    feasibility = off_manifold(x)
    grad_norm = float(np.linalg.norm(rgrad))
    error = value - problem["f_min"]
    scale = max(1.0, abs(problem["f_min"]))
    # A gradient of 1e-8 leaves f - f* of order 1e-16 / gap; the margin is for the
    # numpy recomputation here (round-off of A x) on top of it.
    if not (
        grad_norm < 10 * TOL and abs(error) <= 1e-10 * scale and feasibility < 1e-10
    ):
        raise hz.CheckError(
            f"{label}: |grad| = {grad_norm:.3g}, f - f* = {error:.3g}, "
            f"off the manifold by {feasibility:.3g} after {iterations} iterations; "
            "refusing to time a solver that did not converge to the minimum."
        )
    return {
        "iterations": int(iterations),
        "grad_norm": grad_norm,
        "f_error": error,
        "feasibility": feasibility,
        "x": x,
    }


def same_minimizer(reference, x):
    """Largest `1 - |<x_i, y_i>|` over columns (eigenvectors up to sign)."""
    a = reference.reshape(reference.shape[0], -1)
    b = x.reshape(x.shape[0], -1)
    return float(np.max(1 - np.abs(np.sum(a * b, axis=0))))


# --------------------------------------------------------------------------------------
# Part 2: Adam steps


def adam_step_fns(problem):
    """`label -> (step, carry)` for the JAX contenders: `radam` on the manifold,
    `optax.adam` on an unconstrained array of the same shape, and a reference:
    `optax.adam` fed the gradient projected onto the tangent space (what the
    projection alone adds to `optax.adam`; no retraction or transport, so it
    leaves the manifold)."""
    x0 = jnp.asarray(problem["x0"])
    g = jnp.asarray(problem["g"])
    manifold = manifold_of(problem)
    out = {}
    for label, opt, project in (
        ("gh_radam", gh.optim.radam(LR, manifold), False),
        ("optax_adam", optax.adam(LR), False),
        ("projected_adam", optax.adam(LR), True),
    ):

        @jax.jit
        def step(x, state, g, opt=opt, project=project):
            if project:
                g = manifold.to_tangent(x, g)
            updates, state = opt.update(g, state, x)
            return optax.apply_updates(x, updates), state

        out[label] = (step, [x0, opt.init(x0), g])
    return out


def radam_check(problem, peers, name, tmp, steps=3):
    """`steps` radam steps in float64 stay on the manifold and (with the peers)
    agree with geoopt's RiemannianAdam from the same point with the same gradient
    (float64, so that float32 round-off in sums over a million entries does not
    hide a difference of algorithm)."""
    x = jnp.asarray(problem["x0"], jnp.float64)
    g = jnp.asarray(problem["g"], jnp.float64)
    opt = gh.optim.radam(LR, manifold_of(problem))
    state = opt.init(x)

    @jax.jit
    def step(x, state):
        updates, state = opt.update(g, state, x)
        return optax.apply_updates(x, updates), state

    for _ in range(steps):
        x, state = step(x, state)
    ours = np.asarray(x)
    moved = float(np.max(np.abs(ours - problem["x0"])))
    diff = 0.0
    if peers is not None:
        out = pathlib.Path(tmp) / f"{name}.npz"
        peers.call(op="geoopt_check", name=name, steps=steps, lr=LR, out=str(out))
        with np.load(out) as saved:
            diff = float(np.max(np.abs(ours - saved["x"])))
    feasibility = off_manifold(ours)
    # On the sphere the same algorithm: agreement to round-off. On Stiefel geoopt
    # retracts by QR, geomhess by the polar factor: the same to second order in the
    # step, so they differ by about (step size)^2.
    tol = (1e-9 if problem["kind"] == "sphere" else 1e-2) * moved
    if not (diff <= tol and feasibility < 1e-12 and moved > 0):
        raise hz.CheckError(
            f"{name}: radam and geoopt differ by {diff:.3g} after {steps} steps (moved "
            f"{moved:.3g}); radam is off the manifold by {feasibility:.3g}."
        )
    return {
        "vs_geoopt": diff if peers is not None else None,
        "moved": moved,
        "feasibility": feasibility,
    }


PEER_ADAM = {
    f"{which}@{threads}": (which, threads)
    for which in ("geoopt", "torch_adam")
    for threads in (1, 2)
}


# --------------------------------------------------------------------------------------
# Titles


def problem_title(name, problem):
    if problem["kind"] == "rayleigh":
        start = (
            "warm start (0.05 from the minimizer)"
            if name.endswith("-warm")
            else "random start"
        )
        return (
            f"Rayleigh quotient on `Sphere({problem['x0'].shape[0]})`, {start}; "
            f"eigengap {problem['gap']:.3g}"
        )
    n, p = problem["x0"].shape
    return (
        f"Brockett on `Stiefel({n}, {p})`, random start; smallest gap between the "
        f"{p + 1} lowest eigenvalues {problem['gap']:.3g}"
    )


def hessian_calls(entry):
    """pymanopt's Hessian-vector product count, with its PyTorch backend's where that
    differs (rounding in the autodiff derivatives can change truncated CG's stops)."""
    numpy_calls, autodiff_calls = (
        entry["hessian_calls"],
        entry["hessian_calls_autodiff"],
    )
    if numpy_calls == autodiff_calls:
        return f"{numpy_calls}"
    return f"{numpy_calls} ({autodiff_calls} on its PyTorch backend)"


def adam_label(name):
    if name.startswith("sphere"):
        return f"`Sphere({int(name[6:]):,})`"
    n, p = name[7:].split("x")
    return f"`Stiefel({int(n):,}, {p})`"


FLOOR_ROWS = {
    "floor_numpy": "floor: pymanopt's count of products with `A` alone, numpy",
    "floor_jax": "floor: pymanopt's count of products with `A` alone, JAX "
    "(`lax.fori_loop`, jitted)",
    "floor_gh": "floor: geomhess's count (the `hvp_fn` row's) of products with `A` "
    "alone, JAX",
}
ADAM_ROWS = {
    "gh_radam": "`gh.optim.radam`",
    "optax_adam": "`optax.adam` (unconstrained)",
    "projected_adam": "`optax.adam` on the projected gradient",
    "geoopt@1": "geoopt `RiemannianAdam`, 1 torch thread",
    "geoopt@2": "geoopt `RiemannianAdam`, 2 torch threads",
    "torch_adam@1": "`torch.optim.Adam`, 1 thread",
    "torch_adam@2": "`torch.optim.Adam`, 2 threads",
    "geometry_numpy": "the geometry of a step by hand, numpy",
    "geometry_jax": "the geometry of a step by hand, JAX",
}


def bench_tr(name, problem, peers, tmp, timing, why_not=None):
    """One trust-region problem: the peers' first solves checked, then the harness
    runs, checks and times everything."""
    manifold, A = manifold_of(problem), problem["A"]
    x0 = jnp.asarray(problem["x0"])
    solvers = gh_contenders(name, problem)
    report = {"gap": problem["gap"]}
    contenders = [
        hz.Contender(
            label,
            ft.partial(solve, opt, manifold, f, x0, TOL, MAX_ITERATIONS),
            TR_ROWS[label],
        )
        for label, (solve, opt, f) in solvers.items()
    ]
    out = pathlib.Path(tmp) / f"{name}.npz"
    peer_x = None
    if peers is None:
        for label in PYMANOPT_BACKENDS:
            contenders.append(hz.Contender(label, unavailable=why_not))
        for label in ("floor_numpy", "floor_jax"):
            contenders.append(
                hz.Contender(label, unavailable="needs pymanopt's product count")
            )
    else:

        def peer_solve(loops, backend):
            """pymanopt solves `loops` times (`wall_s` per solve), its last point
            written to `out`."""
            return peers.call(
                op="tr", name=name, loops=loops, tol=TOL, out=str(out), backend=backend
            )

        answers = {}
        for label, backend in PYMANOPT_BACKENDS.items():
            answers[label] = answer = peer_solve(1, backend)
            with np.load(out) as saved:
                x = saved["x"]
            try:
                report[label] = check_point(
                    name, problem, label, x, answer["iterations"]
                )
            except hz.CheckError as error:
                raise hz.CheckError(f"{name}, {error}") from None
            report[label]["stopping"] = answer["stopping"]
            report[label]["vs_min"] = same_minimizer(problem["x_min"], x)
            peer_x = x if label == "pymanopt" else peer_x

        for label, backend in PYMANOPT_BACKENDS.items():
            turn = lambda loops, backend=backend: peer_solve(loops, backend)["wall_s"]
            contenders.append(hz.Contender(label, label=TR_ROWS[label], turn=turn))
        report["hessian_calls"] = answers["pymanopt"]["hessian_calls"]
        report["hessian_calls_autodiff"] = answers["pymanopt_torch"]["hessian_calls"]
        # One product with `A` per Hessian-vector product and per gradient (at each
        # iterate, the starting point included).
        report["products"] = (
            report["hessian_calls"] + answers["pymanopt"]["iterations"] + 1
        )
        numpy_fn, jax_fn = bl.product_floor(A, problem["x0"], report["products"])
        contenders.append(hz.Contender("floor_numpy", numpy_fn))
        contenders.append(hz.Contender("floor_jax", jax_fn))
    # geomhess's own count of products with `A` for the `hvp_fn` solve, counted as
    # pymanopt's is.
    _, opt, f = solvers["gh_tr_hvp_fn"]
    hvps, iterations = _solvers.count_hvps(opt, f, x0, TOL, MAX_ITERATIONS)
    report["products_gh"] = hvps + iterations + 1
    _, jax_fn = bl.product_floor(A, problem["x0"], report["products_gh"])
    contenders.append(hz.Contender("floor_gh", jax_fn))

    def check(outputs):
        for label in solvers:
            x, _, k = outputs[label]
            x = np.asarray(x)
            report[label] = check_point(name, problem, label, x, int(k))
            report[label]["vs_min"] = same_minimizer(problem["x_min"], x)
            if peer_x is not None:
                report[label]["vs_pymanopt"] = same_minimizer(peer_x, x)
        for label, entry in report.items():
            if (
                isinstance(entry, dict)
                and not max(entry["vs_min"], entry.get("vs_pymanopt", 0)) < 1e-8
            ):
                raise hz.CheckError(
                    f"{label} ends at another minimizer (1 - |<x, x*>| = "
                    f"{entry['vs_min']:.3g} against eigh's, "
                    f"{entry.get('vs_pymanopt', 0):.3g} against pymanopt's)"
                )
        return report

    return hz.run_problem(hz.Problem(name, check=check), contenders, **timing)


def bench_adam(name, problem, peers, tmp, timing, why_not=None):
    """One Adam problem: radam checked (and against geoopt), then the harness times
    the steps, each chained from the last."""
    contenders = []
    for label, (step, carry) in adam_step_fns(problem).items():

        def one_step(step=step, carry=carry):
            carry[0], carry[1] = step(*carry)
            return carry[0]

        contenders.append(hz.Contender(label, one_step, ADAM_ROWS[label]))
    for label, (which, threads) in PEER_ADAM.items():
        if peers is None:
            contenders.append(hz.Contender(label, unavailable=why_not))
            continue

        def peer_turn(loops, which=which, threads=threads):
            return peers.call(
                op="geoopt", name=name, which=which, loops=loops, lr=LR, threads=threads
            )["step_s"]

        contenders.append(hz.Contender(label, turn=peer_turn))
    steps = bl.geometry_steps(problem["x0"], problem["g"])
    for label, fn in zip(("geometry_numpy", "geometry_jax"), steps, strict=True):
        contenders.append(hz.Contender(label, fn))

    def check(outputs):
        try:
            report = radam_check(problem, peers, name, tmp)
        except hz.CheckError as error:
            raise hz.CheckError(f"{error}") from None
        x = np.asarray(outputs["gh_radam"], np.float64)
        report["feasibility_f32"] = off_manifold(x)
        if not report["feasibility_f32"] < 1e-5:
            raise hz.CheckError(
                f"radam's float32 step is off the manifold by "
                f"{report['feasibility_f32']:.3g}"
            )
        report["size"] = int(problem["x0"].size)
        return report

    return hz.run_problem(hz.Problem(name, check=check), contenders, **timing)


def run(quick=False, seed=0):
    """Check, then time, everything; the JSON-able payload for `render`."""
    jax.config.update("jax_enable_x64", True)
    env = hz.environment(quick=quick)
    if quick:
        rayleigh_n, brockett_sizes = TR_SIZES_QUICK
        sphere_sizes, stiefel_sizes = [10_000], [(1_000, 10)]
        rounds, min_rounds, tr_budget, adam_budget = 3, 3, 1.0, 0.5
    else:
        rayleigh_n, brockett_sizes = TR_SIZES
        sphere_sizes, stiefel_sizes = (
            [100_000, 1_000_000],
            [(10_000, 10), (100_000, 10), (4_096, 64)],
        )
        rounds, min_rounds, tr_budget, adam_budget = 21, 5, 25.0, 12.0
    tr_problems = make_tr_problems(rayleigh_n, brockett_sizes, seed)
    adam_problems = make_adam_problems(sphere_sizes, stiefel_sizes, seed)
    tr_timing = dict(
        rounds=rounds, round_s=0.2, budget_s=tr_budget, min_rounds=min_rounds
    )
    adam_timing = dict(
        rounds=2 * rounds, round_s=0.03, budget_s=adam_budget, min_rounds=min_rounds
    )
    with tempfile.TemporaryDirectory() as tmp:
        problems_path = pathlib.Path(tmp) / "problems.npz"
        groups = {"tr": tr_problems, "adam": adam_problems}
        _peers.save_problems(problems_path, groups, ("kind", "A", "N", "x0", "g"))
        worker = _peers.worker(
            PEER_PYTHON,
            hz.HERE / "optim_peers_worker.py",
            setup="setup_optim_peers.sh",
            directory=tmp,
            # torch's OpenMP threads spin after each parallel region by default,
            # which on a loaded 2-core machine made its 2-thread steps 10-1000x
            # slower (and stole the cores from whoever ran next); passive waiting
            # is its best setting here.
            env={"OMP_WAIT_POLICY": "PASSIVE", **os.environ},
            first={"op": "load", "path": str(problems_path)},
        )
        with worker as (peers, why_not):
            peer_versions = why_not if peers is None else peers.call(op="versions")
            print("trust regions (checked, then timed) ...", flush=True)
            tr = {
                name: bench_tr(name, problem, peers, tmp, tr_timing, why_not)
                for name, problem in tr_problems.items()
            }
            print("Adam steps (checked, then timed) ...", flush=True)
            adam = {
                name: bench_adam(name, problem, peers, tmp, adam_timing, why_not)
                for name, problem in adam_problems.items()
            }
    return {
        "env": hz.finish_environment(env),
        "peer_versions": peer_versions,
        "titles": {name: problem_title(name, p) for name, p in tr_problems.items()},
        "tr": tr,
        "adam": adam,
    }


# --------------------------------------------------------------------------------------
# The page


def render(payload):
    tr, adam = payload["tr"], payload["adam"]
    random_starts = tuple(name for name in tr if not name.endswith("-warm"))
    labels = {**TR_ROWS, **FLOOR_ROWS}
    sci = "{:.1e}".format
    tr_tables = []
    for name, rows in tr.items():
        report = rows[hz.CHECK]

        def per_iteration(problem, label, row, report=report):
            entry = report.get(label)
            if not isinstance(entry, dict) or "steady_s" not in row:
                return "-"
            return hz.fmt_time(row["steady_s"] / max(entry["iterations"], 1))

        counts = f"geomhess's `hvp_fn` solve made {report['products_gh']} products"
        if "hessian_calls" in report:
            counts = (
                f"pymanopt's truncated CG evaluated {hessian_calls(report)} "
                f"Hessian-vector products ({report['products']} products with `A` "
                f"in all); {counts}"
            )
        table = hz.render_table(
            {name: rows},
            labels,
            ratios=[("pymanopt", "*"), ("pymanopt_torch", "*"), ("*", "floor_gh")],
            columns=[
                ("iterations", hz.report_cell(tr, "iterations")),
                ("per iteration", per_iteration),
                ("final grad norm", hz.report_cell(tr, "grad_norm", sci)),
                ("f - f*", hz.report_cell(tr, "f_error", sci)),
            ],
        )
        tr_tables.append(f"**{payload['titles'][name]}; {counts}.**\n\n{table}")
    tr_goals = [
        dataclasses.replace(goal, problems=random_starts)
        if goal.numerator == "pymanopt"
        else goal
        for goal in GOALS_TR
    ]

    def best_over_adam(p, n, r):
        if "best_s" not in r:
            return "-"
        return hz.fmt_ratio(r["best_s"] / adam[p]["optax_adam"]["best_s"])

    adam_table = hz.render_table(
        adam,
        ADAM_ROWS,
        ratios=[
            ("*", "optax_adam"),
            ("*", ("+", "optax_adam", "geometry_jax")),
            (("min", "geoopt@1", "geoopt@2"), "*"),
        ],
        titles={
            name: f"{adam_label(name)}, {r[hz.CHECK]['size']:,} floats"
            for name, r in adam.items()
        },
        columns=[("best rounds / `optax_adam`", best_over_adam)],
    )
    vs_geoopt = {k: v[hz.CHECK]["vs_geoopt"] for k, v in adam.items()}
    return hz.fill_page(
        "optim",
        environment=hz.render_environment(
            payload["env"],
            peers={"Peer environment (`.venv-optim-peers`)": payload["peer_versions"]},
        ),
        tol=f"{TOL:g}",
        tr_tables="\n\n".join(tr_tables),
        tr_goals=hz.render_goals(tr_goals, tr, extra=iteration_lines(tr)),
        lr=f"{LR:g}",
        adam_table=adam_table,
        vs_geoopt=", ".join(
            f"{adam_label(k)} " + ("not run" if d is None else f"{d:.1e}")
            for k, d in vs_geoopt.items()
        ),
        moved=f"{max(v[hz.CHECK]['moved'] for v in adam.values()):.0e}",
        adam_goals=hz.render_goals(GOALS_ADAM, adam),
    )


def iteration_lines(tr):
    """Iterations against pymanopt's (same radii, same algorithm): not a time."""
    out = []
    for name, rows in tr.items():
        report = rows[hz.CHECK]
        if name.endswith("-warm") or "pymanopt" not in report:
            continue
        ours, theirs = report["gh_tr"]["iterations"], report["pymanopt"]["iterations"]
        out.append(
            f"{name}: iterations {ours} (geomhess, pymanopt's radii) against {theirs} "
            f"(pymanopt): {'met' if ours <= theirs else 'not met'}."
        )
    if not out:
        out.append(
            "Iterations against pymanopt's: not measured (pymanopt did not run)."
        )
    return out
