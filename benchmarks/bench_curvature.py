"""Curvature-operator benchmarks on the harness: covariant HVP, Gauss-Newton product,
Lanczos, Hutchinson / Hutch++ / SLQ, one Hessian-free step, and memory.

On a float32 MLP `(64, 1024, 1024, 16)` (1,132,560 parameters, batch 128) and a
small float32 CNN on scikit-learn's bundled 8x8 digits (nothing downloaded), every
row below runs side by side in the same rotating rounds of `_harness.run_problem`,
with a check per row (the anchors do not compute the same numbers as the rows they
anchor, so there is no single reference):

| row | anchor | goal |
| --- | --- | --- |
| `gh.covariant_hvp`, `LeviCivita(Diagonal(1 + p^2))` | one `jax.jvp(jax.grad(loss))` (HVP and gradient) | <= 1.15x |
| `gh.metrics.GaussNewton(...).mvp` | `jax.grad(loss)` | <= 2.2x |
| `gh.linalg.shape_operator_eigenvalues`, `m` steps | `m` chained shape-operator products; matfree `tridiag_sym` | <= 1.1x; <= 1x |
| `gh.linalg.hessian_trace` (Hutchinson) and `hessian_logdet` (SLQ), one probe at a time (the default) and all at once (`batch_size`) | matfree `stochtrace` / `funm`, same probes (all at once) | all at once <= 1.1x |
| one `gh.optim.hessian_free` step, `k` CG steps | `k` chained products and one gradient | <= 1.2x |

Checks before timing (float32 tolerances): the covariant HVP against the floor's
`hv - p v df / (1 + p^2)` (the Levi-Civita term of this metric, by hand); the
Gauss-Newton product through `<w, G v> = <J w, Lambda J v>`; gh's Ritz values against
matfree's on the symmetrized operator `G^{1/2} E G^{-1/2}` started at `G^{1/2} v0`
(the same tridiagonal in exact arithmetic); gh's Hutchinson and SLQ estimates against
matfree's with the very same Rademacher probes; Hutch++ against Hutchinson within
their standard errors; the Hessian-free update against preconditioned CG written by
hand; the floors against the same products looped in Python. Memory: XLA's compiled
temporary bytes of every row and the largest array in its optimized HLO, asserted
below `d^2` elements (nothing `d x d` is formed).

Usage:
    python -m benchmarks --only curvature           # rewrites results_curvature.md
    python -m benchmarks --only curvature --quick   # tiny sizes, about a minute
"""

import os


# One BLAS thread, as in the other benchmarks; set before numpy/jax load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _harness as hz  # noqa: E402
from benchmarks._networks import diagonal_metric, digits_cnn, tanh_mlp  # noqa: E402
from geomhess._core.tree import tree_random  # noqa: E402


DTYPE = jnp.float32  # what networks train in; x64 stays off in this script


# ---------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Net:
    name: str
    model: Callable  # model(params, inputs) -> outputs
    loss: Callable  # loss(params), the batch closed over
    inputs: object
    loss_hessian: str  # for gh.metrics.GaussNewton
    theta: dict
    v: dict
    w: dict

    @property
    def d(self):
        return sum(leaf.size for leaf in jtu.tree_leaves(self.theta))


def _tangents(key, theta):
    """Two random tangents `v, w` at `theta`."""
    return tuple(tree_random(jr.normal, k, theta) for k in jr.split(key))


def mlp_problem(sizes, batch):
    theta, model, inputs, targets, key = tanh_mlp(jr.PRNGKey(0), sizes, batch, DTYPE)

    def loss(p):
        # 1/(2N) sum_n ||z_n - y_n||^2: the loss GaussNewton("squared_error") models.
        return 0.5 * jnp.sum((model(p, inputs) - targets) ** 2) / batch

    name = f"MLP {tuple(sizes)}, batch {batch}"
    v, w = _tangents(key, theta)
    return Net(name, model, loss, inputs, "squared_error", theta, v, w)


def cnn_problem(channels, batch):
    theta, model, images, labels, key = digits_cnn(
        jr.PRNGKey(1), channels, batch, DTYPE
    )

    def loss(p):
        logp = jax.nn.log_softmax(model(p, images))
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    name = f"CNN digits 8x8, channels {channels}, batch {batch}"
    v, w = _tangents(key, theta)
    return Net(name, model, loss, images, "softmax_cross_entropy", theta, v, w)


# ---------------------------------------------------------------------------------
# The rows (contenders) and their checks
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """A contender, and `check(outputs) -> diff` that raises `hz.CheckError`."""

    contender: hz.Contender
    check: Callable
    group: str


def _close(name, got, want, rtol):
    try:
        return hz.check_against(want, got, rtol)
    except hz.CheckError as error:
        raise hz.CheckError(f"{name}: {error}") from None


def build_rows(net, *, m, k_eig, k_cg, probes, slq_probes, slq_steps, hf_damping):
    loss, theta, v = net.loss, net.theta, net.v
    metric = diagonal_metric()
    connection = gh.LeviCivita(metric)
    key = jr.key(0)
    flat0, unravel = ravel_pytree(theta)
    d = flat0.shape[0]

    def cov(x, u):
        return gh.covariant_hvp(loss, connection, x, u)

    def shape_apply(x, u):
        # E u = G^{-1} nabla^2 f u: one covariant HVP and the diagonal raise_index.
        return metric.raise_index(x, cov(x, u))

    def normalized(u):
        norm = jnp.sqrt(sum(jnp.vdot(a, a) for a in jtu.tree_leaves(u)))
        return jtu.tree_map(lambda a: a / norm, u)

    def chain(x, u, steps):
        # `steps` chained shape-operator products, as Lanczos and CG must do (each
        # needs the previous product): the Krylov floor.
        return jax.lax.fori_loop(
            0, steps, lambda _, u: normalized(shape_apply(x, u)), u
        )

    one_product = jax.jit(lambda x, u: normalized(shape_apply(x, u)))

    def looped(x, u, steps):
        for _ in range(steps):
            u = one_product(x, u)
        return u

    rows = []

    def add(name, fn, check, group, label="", reference=False):
        rows.append(
            Row(hz.Contender(name, jax.jit(fn), label, reference), check, group)
        )

    # --- covariant HVP against the HVP-and-gradient floor ---
    def floor(x, u):
        return jax.jvp(jax.grad(loss), (x,), (u,))

    add(
        "cov_hvp",
        cov,
        lambda o: _close(
            "cov_hvp",
            o["cov_hvp"],
            # Levi-Civita of Diagonal(1 + p^2): Gamma^i_ii = p_i / (1 + p_i^2).
            jtu.tree_map(
                lambda h, g, p, u: h - p * u * g / (1 + p * p),
                o["floor"][1],
                o["floor"][0],
                theta,
                v,
            ),
            1e-4,
        ),
        "hvp",
        "`gh.covariant_hvp`, `LeviCivita(Diagonal(1 + p^2))`",
        reference=True,
    )
    add(
        "floor",
        floor,
        lambda o: 0.0,  # the floor is checked through cov_hvp and grad
        "hvp",
        "floor: `jax.jvp(jax.grad(loss))` (HVP and gradient)",
    )
    add(
        "grad",
        lambda x, u: jax.grad(loss)(x),
        lambda o: _close("grad", o["grad"], o["floor"][0], 1e-5),
        "hvp",
        "`jax.grad(loss)`",
    )

    # --- Gauss-Newton metric-vector product ---
    gn = gh.metrics.GaussNewton(net.model, net.inputs, net.loss_hessian)

    def gn_check(o):
        # <w, G v> = <J w, Lambda J v>, Lambda from the named loss's Hessian.
        z, jv = jax.jvp(lambda p: net.model(p, net.inputs), (theta,), (v,))
        _, jw = jax.jvp(lambda p: net.model(p, net.inputs), (theta,), (net.w,))
        want = jnp.vdot(jw, gn.output_curvature(z, jv))
        got = sum(
            jnp.vdot(a, b)
            for a, b in zip(
                jtu.tree_leaves(net.w), jtu.tree_leaves(o["gn_mvp"]), strict=True
            )
        )
        return _close("gn_mvp", got, want, 1e-4)

    add(
        "gn_mvp",
        lambda x, u: gn.mvp(x, u),
        gn_check,
        "hvp",
        f"`GaussNewton(model, inputs, {net.loss_hessian!r}).mvp`",
    )

    # --- Lanczos on the shape operator ---
    def gh_lanczos(x, u):
        return gh.linalg.shape_operator_eigenvalues(
            loss, metric, x, key=key, k=k_eig, num_iterations=m
        ).eigenvalues

    def mf_lanczos(x, u):
        from matfree import decomp

        # gh starts at v0 = normal(split(key)[0]); E = G^{-1} H is G-self-adjoint,
        # and S = G^{-1/2} H G^{-1/2} = G^{1/2} E G^{-1/2} is symmetric, so Lanczos
        # on S from G^{1/2} v0 gives the same tridiagonal matrix.
        v0 = jr.normal(jr.split(key)[0], (d,), DTYPE)
        root = (
            jnp.sqrt(ravel_pytree(metric.diagonal(x))[0])
            if hasattr(metric, "diagonal")
            else None
        )
        root = jnp.sqrt(1 + ravel_pytree(x)[0] ** 2) if root is None else root

        def matvec(s):
            return ravel_pytree(cov(x, unravel(s / root)))[0] / root

        _, T, *_ = decomp.tridiag_sym(m, reortho="full")(matvec, root * v0)
        return jnp.sort(jnp.linalg.eigvalsh(T))[::-1][:k_eig]

    add(
        "lanczos",
        gh_lanczos,
        lambda o: 0.0,
        "krylov",
        f"`gh.linalg.shape_operator_eigenvalues`, {m} steps",
        reference=False,
    )
    add(
        "mf_lanczos",
        mf_lanczos,
        lambda o: _close("mf_lanczos", o["mf_lanczos"], o["lanczos"], 2e-3),
        "krylov",
        f"matfree `tridiag_sym({m}, reortho='full')` on `G^1/2 E G^-1/2`",
    )
    add(
        "chain",
        lambda x, u: chain(x, u, m),
        lambda o: _close("chain", o["chain"], looped(theta, v, m), 1e-3),
        "krylov",
        f"floor: {m} chained `G^-1 covariant_hvp`",
    )

    # --- traces and log-determinants (Euclidean metric: the calculus Hessian, the
    # operator matfree's symmetric Lanczos and Hutchinson take as they are) ---
    def hvp_e(x, u):
        return jax.jvp(jax.grad(loss), (x,), (u,))[1]

    tree_probes = lambda x: jax.vmap(  # gh's Hutchinson probes, leaf by leaf
        lambda kk: tree_random(jr.rademacher, kk, x)
    )(jr.split(key, probes))

    def slq_probes_flat():  # gh's SLQ probes: split(key_)[0] of split(key, n)
        return jax.vmap(lambda kk: jr.rademacher(jr.split(kk)[0], (d,), DTYPE))(
            jr.split(key, slq_probes)
        )

    def gh_trace(batch_size):
        def trace(x, u):
            est = gh.linalg.hessian_trace(
                loss,
                x,
                key=key,
                num_probes=probes,
                method="hutchinson",
                batch_size=batch_size,
            )
            return est.estimate, est.std_error

        return trace

    def mf_trace(x, u):
        from matfree import stochtrace

        est = stochtrace.estimator_monte_carlo(
            stochtrace.monte_carlo_trace(), lambda _key: tree_probes(x)
        )
        return est(lambda z: hvp_e(x, z), key)

    def gh_hutchpp(x, u):
        est = gh.linalg.hessian_trace(
            loss, x, key=key, num_probes=probes, method="hutch++"
        )
        return est.estimate, est.std_error

    def hutchpp_check(o):
        (a, sa), (b, sb) = o["hutch++"], o["hutchinson"]
        gap = abs(float(a) - float(b))
        bound = 4 * math.sqrt(float(sa) ** 2 + float(sb) ** 2)
        if not gap <= bound:
            raise hz.CheckError(
                f"hutch++: |{a:.4g} - {b:.4g}| > 4 standard errors ({bound:.3g})"
            )
        return gap

    shift = {}  # filled below: makes H + shift I positive definite for log

    def gh_slq(batch_size):
        return lambda x, u: (
            gh.linalg.hessian_logdet(
                loss,
                x,
                key=key,
                num_probes=slq_probes,
                num_iterations=slq_steps,
                shift=shift["s"],
                batch_size=batch_size,
            ).estimate
        )

    def mf_slq(x, u):
        from matfree import decomp, funm, stochtrace

        s = shift["s"]
        integrand = funm.monte_carlo_funm_sym(
            funm.dense_funm_sym_eigh(lambda t: jnp.log(jnp.abs(t + s))),
            decomp.tridiag_sym(slq_steps, reortho="full"),
        )
        est = stochtrace.estimator_monte_carlo(
            integrand, lambda _key: slq_probes_flat()
        )
        return est(lambda z: ravel_pytree(hvp_e(x, unravel(z)))[0], key)

    add(
        "hutchinson",
        gh_trace(None),
        lambda o: _close("hutchinson", o["hutchinson"][0], o["mf_trace"], 1e-4),
        "trace",
        f"`gh.linalg.hessian_trace`, Hutchinson, {probes} probes one at a time "
        "(the default)",
    )
    add(
        "hutchinson_batched",
        gh_trace(probes),
        lambda o: _close(
            "hutchinson_batched", o["hutchinson_batched"][0], o["mf_trace"], 1e-4
        ),
        "trace",
        f"`gh.linalg.hessian_trace`, Hutchinson, {probes} probes, "
        f"`batch_size={probes}` (all at once, as matfree runs them)",
    )
    add(
        "mf_trace",
        mf_trace,
        lambda o: 0.0,
        "trace",
        f"matfree `estimator_monte_carlo(monte_carlo_trace())`, same {probes} probes",
    )
    add(
        "hutch++",
        gh_hutchpp,
        hutchpp_check,
        "trace",
        f"`gh.linalg.hessian_trace`, Hutch++, {probes} HVPs",
    )
    add(
        "slq",
        gh_slq(None),
        lambda o: _close("slq", o["slq"], o["mf_slq"], 1e-3),
        "trace",
        f"`gh.linalg.hessian_logdet`, {slq_probes} probes x {slq_steps} steps, one "
        "probe at a time (the default)",
    )
    add(
        "slq_batched",
        gh_slq(slq_probes),
        lambda o: _close("slq_batched", o["slq_batched"], o["mf_slq"], 1e-3),
        "trace",
        f"`gh.linalg.hessian_logdet`, {slq_probes} probes x {slq_steps} steps, "
        f"`batch_size={slq_probes}` (all at once, as matfree runs them)",
    )
    add(
        "mf_slq",
        mf_slq,
        lambda o: 0.0,
        "trace",
        "matfree `monte_carlo_funm_sym` (SLQ), same probes and steps",
    )

    # --- one Hessian-free step ---
    opt = gh.optim.hessian_free(
        metric, damping=hf_damping, kappa=0.0, min_inner=k_cg, max_inner=k_cg
    )
    state0 = opt.init(theta)

    def hf_step(x, u):
        updates, state = opt.update(x, state0, x, value_fn=loss)
        return updates, state.accepted, state.inner_steps_stop

    def pcg_by_hand(x):
        # k steps of CG on A s = -G^{-1} df, A = G^{-1} nabla^2 f + lambda I, in
        # the G inner product (= CG on nabla^2 f + lambda G preconditioned by G^{-1}).
        g = jax.grad(loss)(x)
        lin = lambda a, p, b, q: jtu.tree_map(lambda s, t: a * s + b * t, p, q)
        ip = lambda p, q: metric.inner(x, p, q)
        op = lambda p: lin(1.0, shape_apply(x, p), hf_damping, p)
        r = jtu.tree_map(jnp.negative, metric.raise_index(x, g))
        s, p = jtu.tree_map(jnp.zeros_like, x), r
        for _ in range(k_cg):
            ap = op(p)
            alpha = ip(r, r) / ip(p, ap)
            s = lin(1.0, s, alpha, p)
            r_new = lin(1.0, r, -alpha, ap)
            p = lin(1.0, r_new, ip(r_new, r_new) / ip(r, r), p)
            r = r_new
        return s

    def hf_check(o):
        updates, accepted, stop = o["hf_step"]
        if not bool(accepted) or int(stop) != 4:
            raise hz.CheckError(
                f"hf_step: accepted={bool(accepted)}, CG stop code {int(stop)} (want an "
                f"accepted step after exactly {k_cg} CG steps, code 4); change the damping"
            )
        return _close("hf_step", updates, jax.jit(pcg_by_hand)(theta), 2e-2)

    add(
        "hf_step",
        hf_step,
        hf_check,
        "hf",
        f"one `gh.optim.hessian_free` step, {k_cg} CG steps",
    )

    def chain_grad(x, u):
        return jax.value_and_grad(loss)(x), chain(x, u, k_cg)

    add(
        "chain_grad",
        chain_grad,
        lambda o: _close(
            "chain_grad", o["chain_grad"][1], looped(theta, v, k_cg), 1e-3
        ),
        "hf",
        f"floor: {k_cg} chained `G^-1 covariant_hvp` + one `value_and_grad`",
    )

    # The shift for SLQ: past the smallest Ritz value of H (outside the timing).
    smallest = gh.linalg.hessian_eigenvalues(
        loss, theta, key=jr.key(1), k=1, which="smallest", num_iterations=m
    ).eigenvalues[0]
    largest = gh.linalg.hessian_eigenvalues(
        loss, theta, key=jr.key(1), k=1, which="largest", num_iterations=m
    ).eigenvalues[0]
    shift["s"] = float(max(0.0, -float(smallest)) + 0.1 * abs(float(largest)))
    # `lanczos` is the check reference of the Krylov group but not of the run; the
    # run's one reference is `cov_hvp` (for run_problem's convention).
    return rows, shift["s"]


_SHAPE = re.compile(r"\b[fsubc](?:16|32|64|8)\[([0-9,]*)\]")


def memory_of(fn, args, d):
    """XLA's compiled buffer sizes and the largest array (elements) in the
    optimized HLO; asserts no array has `d^2` elements or more."""
    compiled = fn.lower(*args).compile()
    largest = max(
        (
            math.prod(int(n) for n in dims.split(",") if n)
            for dims in _SHAPE.findall(compiled.as_text())
        ),
        default=0,
    )
    assert largest < d * d, f"an array of {largest} >= d^2 = {d * d} elements"
    return {**hz.memory_stats(compiled), "largest_elems": int(largest)}


def bench_net(net, sizes, timing):
    """Check every row (its own check, see `Row`), then time all of them in the
    same rotating rounds; the results, the memory and the SLQ shift."""
    rows, shift = build_rows(net, **sizes)
    problem = hz.Problem(
        net.name,
        (net.theta, net.v),
        size=float(net.d),
        check=lambda outputs: {
            row.contender.name: float(row.check(outputs)) for row in rows
        },
    )
    results = hz.run_problem(problem, [row.contender for row in rows], **timing)
    memory = {
        row.contender.name: memory_of(row.contender.fn, problem.args, net.d)
        for row in rows
    }
    meta = [
        {"name": r.contender.name, "label": r.contender.label, "group": r.group}
        for r in rows
    ]
    return results, memory, shift, meta


# ---------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------


PAGE = "results_curvature.md"
HEADER = "# Curvature operators against their floors and matfree\n\n"

GROUPS = {
    "hvp": ("Covariant HVP and Gauss-Newton product", "floor"),
    "krylov": ("Lanczos on the shape operator", "chain"),
    "trace": ("Trace and log-determinant (Euclidean metric, same probes)", "mf_trace"),
    "hf": ("One Hessian-free step", "chain_grad"),
}

GOALS = [
    hz.Goal(
        "cov_hvp",
        "floor",
        1.15,
        text="covariant HVP at most 1.15x the HVP-and-gradient floor",
        link="profile_covariant_hvp.md",
    ),
    hz.Goal("gn_mvp", "grad", 2.2, text="Gauss-Newton product at most 2.2x `jax.grad`"),
    hz.Goal(
        "lanczos",
        "chain",
        1.1,
        text="Lanczos at most 1.1x `m` chained shape-operator products",
        link="profile_curvature.md",
    ),
    hz.Goal(
        "lanczos",
        "mf_lanczos",
        1.0,
        text="Lanczos no slower than matfree `tridiag_sym`",
        link="profile_curvature.md",
    ),
    # matfree evaluates all probes at once: compared at the same batching.
    hz.Goal(
        "hutchinson_batched",
        "mf_trace",
        1.1,
        text="Hutchinson at most 1.1x matfree, same probes, all at once",
        link="profile_curvature.md",
    ),
    hz.Goal(
        "slq_batched",
        "mf_slq",
        1.1,
        text="SLQ log-determinant at most 1.1x matfree, same probes, all at once",
        link="profile_curvature.md",
    ),
    hz.Goal(
        "hf_step",
        "chain_grad",
        1.2,
        text="one Hessian-free step at most 1.2x `k` products and one gradient",
        link="profile_curvature.md",
    ),
]


def run(quick=False):
    """Check, then time, every row on both networks; the payload for `render`."""
    env = hz.environment(peers=("matfree",), quick=quick)
    if quick:
        nets = [mlp_problem((16, 48, 48, 4), 32), cnn_problem((4, 8), 64)]
        sizes = dict(
            m=8, k_eig=3, k_cg=5, probes=6, slq_probes=2, slq_steps=6, hf_damping=10.0
        )
        timing = dict(rounds=3, round_s=0.002, budget_s=1.0)
    else:
        nets = [mlp_problem((64, 1024, 1024, 16), 128), cnn_problem((16, 32), 512)]
        sizes = dict(
            m=20,
            k_eig=5,
            k_cg=10,
            probes=30,
            slq_probes=4,
            slq_steps=20,
            hf_damping=100.0,
        )
        timing = dict(rounds=9, round_s=0.05, budget_s=60.0)
    results, memory, shifts, meta, dims = {}, {}, {}, {}, {}
    for net in nets:
        start = time.perf_counter()
        results[net.name], memory[net.name], shifts[net.name], meta[net.name] = (
            bench_net(net, sizes, timing)
        )
        dims[net.name] = net.d
        print(
            f"{net.name}: d = {net.d:,}, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return {
        "env": hz.finish_environment(env),
        "sizes": sizes,
        "dims": dims,
        "rows": meta,
        "results": results,
        "memory": memory,
        "shifts": shifts,
    }


SIZE_KEYS = ("m", "k_eig", "k_cg", "hf_damping", "probes", "slq_probes", "slq_steps")


def render(payload):
    results, memory, sizes = payload["results"], payload["memory"], payload["sizes"]
    names = list(results)
    first = payload["rows"][names[0]]
    labels = {row["name"]: row["label"] for row in first}
    goal_table = [
        "| goal | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for goal in GOALS:
        cells = []
        for name in names:
            met, worst, _ = hz.evaluate_goal(goal, {name: results[name]}, labels)
            verdict = "met" if met else "NOT met"
            cells.append("-" if worst is None else f"{worst:.2f}x ({verdict})")
        goal_table.append(
            f"| `{goal.numerator}` / `{goal.denominator}` <= {goal.bound:g}x | "
            + " | ".join(cells)
            + " |"
        )
    check = (
        "check",
        lambda problem, name, row: f"{results[problem][hz.CHECK][name]:.1e}",
    )
    group_tables = []
    for group, (title, base) in GROUPS.items():
        group_labels = {r["name"]: r["label"] for r in first if r["group"] == group}
        table = hz.render_table(results, group_labels, base, columns=[check])
        group_tables.append(f"## {title}\n\n{table}")
    memory_table = [
        "| network | d | row | temp | temp / (4 d) | largest array | / d |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        d = payload["dims"][name]
        for row, mem in memory[name].items():
            temp = mem.get("temp_bytes", 0)
            memory_table.append(
                f"| {name} | {d:,} | `{row}` | {hz.fmt_mib(temp)} "
                f"| {temp / (4 * d):.1f} | {mem['largest_elems']:,} "
                f"| {mem['largest_elems'] / d:.1f} |"
            )
    return hz.fill_page(
        "curvature",
        environment=hz.render_environment(payload["env"], notes=["float32, x64 off."]),
        **{key: sizes[key] for key in SIZE_KEYS},
        goals=hz.render_goals(GOALS, results, labels),
        goal_table=goal_table,
        group_tables="\n\n".join(group_tables),
        memory_table=memory_table,
        shifts=", ".join(f"{n}: {s:.3g}" for n, s in payload["shifts"].items()),
    )
