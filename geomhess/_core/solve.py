"""Linear solves with the metric and the Hessian: dense for small `d`, Krylov otherwise.

The Krylov solvers here are our own, on pytrees, in one `lax.while_loop` each:
conjugate gradients for symmetric positive definite operators (the metric's
`raise_index`) and MINRES for symmetric indefinite ones (Newton steps). Both are
wrapped in `jax.lax.custom_linear_solve`, so JVPs, VJPs and `vmap` go through the
solve by implicit differentiation (another solve with the same operator), not
through the iterations.

Why not `lineax.CG`: in lineax 0.1.1 a CG step is declared broken (and the solution
set to NaN) unless `|p^T A p| > 200 eps d |r^T r|`, a bound that grows with the
dimension `d`; at network scale in float32 (`d` in the thousands and up) ordinary
damped Gauss-Newton metrics trip it. The breakdown test here is relative to the
operator's own scale instead. lineax also has no MINRES, and its restarted
GMRES(20) broke down (NaN) on small symmetric indefinite systems that MINRES solves
(see `tests/test_linalg.py`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.tree_util as jtu
import numpy as np

from .checks import (
    check_floating,
    check_like,
    check_solver_options,
    cholesky,
    raise_if,
)
from .tree import tree_axpy, tree_scale


# ---------------------------------------------------------------------------------
# Tolerances
# ---------------------------------------------------------------------------------

# The default relative tolerance on the residual, `||b - A x|| <= rtol ||b||`, is
# `100 eps` of the dtype: `2.2e-14` in float64, `1.2e-5` in float32. Both solvers
# stop on the recursively updated residual, which keeps decreasing in floating point
# after the true residual has reached its floor (about `eps ||A|| ||x||`, at most
# `eps cond(A) ||b||`), so this is reachable whatever the conditioning; it costs
# iterations (for CG about `sqrt(cond A) / 2` per factor `e`), not failures. (lineax
# also requires the last change of `x` to be below `rtol |x|` entry by entry, a
# stricter test in float32.) The accuracy of `x` is about `rtol cond(A)` but never better than `eps cond(A)`: a
# damped Gauss-Newton metric of a network has `cond(G) ~ ||J^T Lambda J|| /
# damping`, easily `1e3`-`1e5`, so in float32 the solution is good to `1e-4`-`1e-2`
# relative whatever the tolerance; `rtol=1e-4` then saves iterations at no loss.
_RTOL_EPS = 100

# The default cap on iterations: `10 d` as in SciPy and lineax, but never more than
# this, so that a metric too ill-conditioned for its tolerance reports an error in
# minutes instead of running for hours at network scale.
_MAX_STEPS_CAP = 10_000


def _scalar_dtype(tree):
    """The widest floating dtype among the leaves (numpy's rule, not JAX's strict one)."""
    return np.result_type(*(jnp.result_type(leaf) for leaf in jtu.tree_leaves(tree)))


def _defaults(caller, b, rtol, atol, max_steps):
    check_floating(caller, "the right-hand side `b`", b)
    leaves = jtu.tree_leaves(b)
    dtype = _scalar_dtype(b)
    if rtol is None:
        rtol = float(_RTOL_EPS * jnp.finfo(dtype).eps)
    if atol is None:
        atol = 0.0
    size = sum(int(jnp.size(leaf)) for leaf in leaves)
    if max_steps is None:
        max_steps = min(10 * size, _MAX_STEPS_CAP)
    check_solver_options(caller, rtol, atol, max_steps)
    return dtype, rtol, atol, int(max_steps)


# ---------------------------------------------------------------------------------
# Dot products on pytrees accumulate in each leaf's dtype (a float32 network gets
# float32 reductions, as in its own matmuls) and are summed in `dtype`; `axpy` and
# scaling are `geomhess._tree`'s.
# ---------------------------------------------------------------------------------


def _dot(a, b, dtype):
    terms = [
        jnp.vdot(x, y).astype(dtype)
        for x, y in zip(jtu.tree_leaves(a), jtu.tree_leaves(b), strict=True)
    ]
    return sum(terms[1:], terms[0])


def _check_mvp(caller, mvp, b):
    check_like(caller, "mvp(b)", jax.eval_shape(mvp, b), b, "`b`")


# ---------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------


def spd_solve(matrix, b, *, caller: str = "spd_solve"):
    """Solve `A x = b` for a symmetric positive definite `A` by Cholesky.

    Raises (through `equinox.error_if`) if `A` is not positive definite.
    """
    L = cholesky(caller, matrix)
    return jsl.cho_solve((L, True), b)


# ---------------------------------------------------------------------------------
# Conjugate gradients
# ---------------------------------------------------------------------------------


def _not_pd_msg(caller):
    return (
        f"`{caller}`: the operator is not positive definite: conjugate gradients met "
        "a direction `p` with `p^T A p <= eps ||A|| ||p||^2` (zero, negative or NaN "
        "curvature). Likely causes: (1) the metric is only positive semidefinite, "
        "e.g. a Gauss-Newton or Fisher metric without `damping` (or with a damping "
        "below `eps ||G||`); (2) the operator is indefinite or not symmetric (for "
        "symmetric indefinite systems use `geomhess.linalg.symmetric_solve`); "
        "(3) the operator produced NaN or inf."
    )


def _not_converged_msg(caller, method):
    return (
        f"`{caller}`: {method} did not reach the tolerance `||b - A x|| <= max(atol, "
        "rtol ||b||)` within `max_steps` iterations. Likely causes: (1) the operator "
        "is (nearly) singular, e.g. a metric with too little `damping` or a Newton "
        "step at a degenerate critical point; (2) it is badly conditioned for "
        "`max_steps` (raise `max_steps` or loosen `rtol`); (3) the operator "
        "produced NaN or inf."
    )


def _cg_iterate(caller, mvp, b, dtype, rtol, atol, max_steps):
    eps = jnp.asarray(jnp.finfo(dtype).eps, dtype)
    gamma0 = _dot(b, b, dtype)
    tol = jnp.maximum(
        jnp.asarray(atol, dtype), jnp.asarray(rtol, dtype) * jnp.sqrt(gamma0)
    )
    zeros = jtu.tree_map(jnp.zeros_like, b)
    init = (
        zeros,  # x
        b,  # r = b - A x
        b,  # p, the search direction
        gamma0,  # r^T r
        jnp.zeros((), dtype),  # a lower bound on ||A||: max ||A p|| / ||p||
        jnp.zeros((), jnp.int32),  # steps taken
        jnp.zeros((), bool),  # broken down (non-positive curvature)
    )

    def cond(state):
        *_, gamma, _, step, broken = state
        return (~broken) & (step < max_steps) & (jnp.sqrt(gamma) > tol)

    def body(state):
        x, r, p, gamma, a_norm, step, _ = state
        Ap = mvp(p)
        pAp = _dot(p, Ap, dtype)
        pp = _dot(p, p, dtype)
        ApAp = _dot(Ap, Ap, dtype)
        safe_pp = jnp.where(pp > 0, pp, 1)
        a_norm = jnp.maximum(a_norm, jnp.sqrt(ApAp / safe_pp))
        # The curvature along `p` measured against the operator's own scale: an
        # SPD operator has `p^T A p >= lambda_min ||p||^2`, and anything below
        # `eps ||A|| ||p||^2` is rounding. (Not a bound growing with `d`.)
        broken = ~(pAp > eps * a_norm * pp)
        alpha = jnp.where(broken, 0, gamma / jnp.where(broken, 1, pAp))
        x = tree_axpy(alpha, p, x)
        r = tree_axpy(-alpha, Ap, r)
        gamma_next = jnp.where(broken, gamma, _dot(r, r, dtype))
        beta = gamma_next / jnp.where(gamma > 0, gamma, 1)
        p = tree_axpy(beta, p, r)
        return x, r, p, gamma_next, a_norm, step + 1, broken

    x, _, _, gamma, _, _, broken = jax.lax.while_loop(cond, body, init)
    x = raise_if(x, broken, _not_pd_msg(caller))
    not_converged = ~broken & ~(jnp.sqrt(gamma) <= tol)
    return raise_if(x, not_converged, _not_converged_msg(caller, "conjugate gradients"))


def _krylov_solve(iterate, caller, mvp, b, rtol, atol, max_steps):
    dtype, rtol, atol, max_steps = _defaults(caller, b, rtol, atol, max_steps)
    _check_mvp(caller, mvp, b)

    def solve(matvec, rhs):
        return iterate(caller, matvec, rhs, dtype, rtol, atol, max_steps)

    # Symmetric: the transposed solve is the same solve, and derivatives of `x` with
    # respect to `b` and to whatever `mvp` closes over come from one more solve.
    return jax.lax.custom_linear_solve(mvp, b, solve, symmetric=True)


def cg_solve(
    mvp: Callable, b, *, rtol=None, atol=None, max_steps=None, caller="cg_solve"
):
    """Solve `A x = b` for a symmetric positive definite `A` given by `v -> A v`.

    Matrix-free conjugate gradients (Hestenes-Stiefel, no preconditioner) on any
    pytree `b`, in one `lax.while_loop`, from `x = 0`. Dot products accumulate in
    the leaves' dtype. It stops when the (recursively updated) residual satisfies
    `||b - A x|| <= max(atol, rtol ||b||)`.

    Errors are raised through `equinox.error_if` (so `EQX_ON_ERROR` applies):

    - "not positive definite" when a search direction `p` has curvature
      `p^T A p <= eps ||A|| ||p||^2` (zero, negative or NaN), with `||A||`
      estimated on the fly as the largest `||A p|| / ||p||` seen. The test is
      relative to the operator's scale and does not grow with the dimension.
    - "did not reach the tolerance" after `max_steps` iterations.

    Derivatives (JVP, VJP, `vmap`) go through `jax.lax.custom_linear_solve`: one
    more solve with the same operator, not differentiation of the iterations.

    Args:
        mvp: `v -> A v`, linear, mapping pytrees shaped like `b` to the same.
        b: the right-hand side, any pytree of floating arrays.
        rtol: relative tolerance on the residual; default `100 eps` of `b`'s
            dtype (`2.2e-14` in float64, `1.2e-5` in float32). The accuracy of
            `x` is about `rtol cond(A)` and never better than `eps cond(A)`.
        atol: absolute tolerance on the residual norm, default `0`.
        max_steps: the iteration cap, default `min(10 d, 10000)` for `d` the
            total size of `b`.
        caller: the name that error messages start with.

    Returns:
        `x`, shaped like `b`. Cost: one `mvp` per iteration; in exact arithmetic
        at most `d` iterations, in practice about `sqrt(cond(A)) log(2 / rtol)`.
    """
    return _krylov_solve(_cg_iterate, caller, mvp, b, rtol, atol, max_steps)


# ---------------------------------------------------------------------------------
# MINRES
# ---------------------------------------------------------------------------------


def _minres_iterate(caller, mvp, b, dtype, rtol, atol, max_steps):
    # Paige and Saunders (1975), as in SciPy's `minres` without preconditioner or
    # shift: Lanczos builds an orthonormal basis `v_k` and a tridiagonal `T_k`;
    # Givens rotations keep the QR factorization of `T_k` current, so `x_k`
    # minimizes `||b - A x||` over the Krylov space with a three-term update and
    # `|phibar|` is the residual norm.
    tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    beta1 = jnp.sqrt(_dot(b, b, dtype))
    tol = jnp.maximum(jnp.asarray(atol, dtype), jnp.asarray(rtol, dtype) * beta1)
    zeros = jtu.tree_map(jnp.zeros_like, b)
    zero = jnp.zeros((), dtype)
    v = tree_scale(1 / jnp.where(beta1 > 0, beta1, 1), b)
    init = dict(
        x=zeros,
        v_prev=zeros,
        v=v,
        beta=zero,  # the coupling of v_prev and v in T
        w=zeros,  # the last two update directions
        w_prev=zeros,
        cs=-jnp.ones((), dtype),
        sn=zero,
        dbar=zero,
        epsln=zero,
        phibar=beta1,
        step=jnp.zeros((), jnp.int32),
    )

    def cond(state):
        return (state["step"] < max_steps) & (jnp.abs(state["phibar"]) > tol)

    def body(s):
        # One Lanczos step: beta_next v_next = A v - alpha v - beta v_prev.
        u = tree_axpy(-s["beta"], s["v_prev"], mvp(s["v"]))
        alpha = _dot(s["v"], u, dtype)
        u = tree_axpy(-alpha, s["v"], u)
        beta_next = jnp.sqrt(_dot(u, u, dtype))
        # Apply the previous rotation to the new column of T, then a new rotation
        # to annihilate beta_next.
        delta = s["cs"] * s["dbar"] + s["sn"] * alpha
        gbar = s["sn"] * s["dbar"] - s["cs"] * alpha
        epsln = s["sn"] * beta_next
        dbar = -s["cs"] * beta_next
        gamma = jnp.maximum(jnp.hypot(gbar, beta_next), tiny)
        cs = gbar / gamma
        sn = beta_next / gamma
        phi = cs * s["phibar"]
        phibar = sn * s["phibar"]
        # w_k = (v_k - epsln_{k-1} w_{k-2} - delta_k w_{k-1}) / gamma_k.
        w = tree_scale(
            1 / gamma,
            tree_axpy(-delta, s["w"], tree_axpy(-s["epsln"], s["w_prev"], s["v"])),
        )
        x = tree_axpy(phi, w, s["x"])
        # beta_next = 0: the Krylov space is invariant and the residual is zero
        # (phibar = 0 above), so the next basis vector is never used.
        v_next = tree_scale(1 / jnp.where(beta_next > 0, beta_next, 1), u)
        return dict(
            x=x,
            v_prev=s["v"],
            v=v_next,
            beta=beta_next,
            w=w,
            w_prev=s["w"],
            cs=cs,
            sn=sn,
            dbar=dbar,
            epsln=epsln,
            phibar=phibar,
            step=s["step"] + 1,
        )

    final = jax.lax.while_loop(cond, body, init)
    x = final["x"]
    not_converged = ~(jnp.abs(final["phibar"]) <= tol)
    return raise_if(x, not_converged, _not_converged_msg(caller, "MINRES"))


def symmetric_solve(
    mvp: Callable,
    b,
    *,
    rtol=None,
    atol=None,
    max_steps=None,
    caller="symmetric_solve",
):
    """Solve `A x = b` for a symmetric, possibly indefinite `A` given by `v -> A v`.

    Matrix-free MINRES (Paige and Saunders 1975, no preconditioner) on any pytree
    `b`, in one `lax.while_loop`, from `x = 0`: each iterate minimizes the residual
    `||b - A x||` over the Krylov space, so the residual decreases monotonically
    even when `A` is indefinite (a Newton step away from a minimum), where
    conjugate gradients can break down and restarted GMRES can stall. Short
    recurrences: memory is a few vectors, whatever the number of iterations. It
    stops when the (recursively updated) residual satisfies
    `||b - A x|| <= max(atol, rtol ||b||)`, and raises through `equinox.error_if`
    if that does not happen within `max_steps` (e.g. a singular `A` with `b` not
    in its range).

    Derivatives (JVP, VJP, `vmap`) go through `jax.lax.custom_linear_solve`.

    Args:
        mvp: `v -> A v`, linear and symmetric, on pytrees shaped like `b`.
        b: the right-hand side, any pytree of floating arrays.
        rtol: relative tolerance on the residual; default `100 eps` of `b`'s
            dtype (`2.2e-14` in float64, `1.2e-5` in float32).
        atol: absolute tolerance on the residual norm, default `0`.
        max_steps: the iteration cap, default `min(10 d, 10000)`.
        caller: the name that error messages start with.

    Returns:
        `x`, shaped like `b`. Cost: one `mvp` per iteration.
    """
    return _krylov_solve(_minres_iterate, caller, mvp, b, rtol, atol, max_steps)
