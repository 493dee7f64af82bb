"""The invariant Newton step, and the one Newton solve the optimizers share."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._core.checks import check_finite, check_point, nonfinite, raise_if
from .._core.solve import symmetric_solve
from .._core.tree import tree_axpy, tree_scale
from ._coerce import as_connection, as_metric
from ._hessian import covariant_from_euclidean_hvp, covariant_hessian


def singular_msg(caller: str, what: str = "the covariant Hessian") -> str:
    return (
        f"`{caller}`: {what} (plus damping) is singular or numerically singular at "
        "this point, so the Newton step is undefined (its condition number exceeds "
        "1 / (sqrt(d) eps)). Likely causes: (1) a degenerate critical point or an "
        "inflection; (2) a flat direction of the loss (add `damping`); (3) NaN in "
        "the point or the loss."
    )


def operator_matrix(apply, b):
    """The matrix of a linear map on pytrees shaped like `b`, column by column."""
    flat_b, unravel = ravel_pytree(b)
    basis = jnp.eye(flat_b.shape[0], dtype=flat_b.dtype)
    return jax.vmap(lambda e: ravel_pytree(apply(unravel(e)))[0], out_axes=-1)(basis)


def newton_solve(b, *, caller: str, message: str, apply=None, matrix=None):
    """Solve the Newton system `A eta = b`, refusing a singular `A`.

    With `matrix`, densely by LU, and `eta` is refused when
    `||A||_F ||eta|| > ||b|| / (sqrt(d) eps)`: a step that large means a condition
    number beyond `1 / (sqrt(d) eps)`, where LU returns rounding noise (a rank-1
    Hessian gives steps of `1e17`). Otherwise matrix-free by MINRES on `apply`, which
    must be **symmetric in the dot product** (a lowered, covector-valued operator);
    MINRES reports its own non-convergence. A NaN or inf step is refused either way.
    """
    if matrix is not None:
        flat_b, unravel = ravel_pytree(b)
        flat_eta = jnp.linalg.solve(matrix, flat_b)
        bound = float(np.sqrt(flat_b.shape[0]) * np.finfo(flat_b.dtype).eps)
        too_large = jnp.linalg.norm(matrix) * jnp.linalg.norm(
            flat_eta
        ) * bound > jnp.linalg.norm(flat_b)
        bad = too_large | nonfinite(flat_eta)
        return raise_if(unravel(flat_eta), bad, message)
    eta = symmetric_solve(apply, b, caller=caller)
    return raise_if(eta, nonfinite(eta), message)


def coordinate_newton_step(
    connection, metric, x, df, ehvp, damping, *, dense: bool, caller: str
):
    """`eta` solving `(nabla^2 f + damping G) eta = -df`, from `df` and the Euclidean
    HVP `ehvp(v)`: the lowered (covector-valued, symmetric) system, densely or by
    MINRES. `metric` is needed only when damped."""
    damped = not (isinstance(damping, (int, float)) and damping == 0)

    def apply(v):
        hv = covariant_from_euclidean_hvp(connection, x, v, df, ehvp(v))
        return tree_axpy(damping, metric.mvp(x, v), hv) if damped else hv

    minus_df = tree_scale(-1.0, df)
    matrix = operator_matrix(apply, minus_df) if dense else None
    return newton_solve(
        minus_df,
        caller=caller,
        message=singular_msg(caller),
        apply=apply,
        matrix=matrix,
    )


def newton_step(f, connection, x, *, damping=0.0, metric=None):
    """The invariant Newton step: `eta` solving `(nabla^2 f + damping G) eta = -df`.

    With the covariant Hessian of `connection`, the step is a tangent vector that
    transforms as one (`eta~ = J eta`) under a change of chart; moved along the
    connection's exponential map ([`exp_map`][geomhess.exp_map]), Newton's iterates
    are the same points in every chart. The damping term `damping * G` is a tensor,
    so damped steps stay invariant too.

    For a 1-D point the system is solved densely (LU on the covariant Hessian); for a
    pytree point it is solved matrix-free by MINRES on `covariant_hvp` (the lowered
    system is symmetric, but indefinite away from minima). The optimizer
    [`newton`][geomhess.optim.newton] solves the same system. A numerically
    singular Hessian (condition number above `1 / (sqrt(d) eps)`) raises instead of
    returning a huge step.

    Args:
        f: a scalar function of the point.
        connection: the connection, or a metric (its Levi-Civita connection is used).
        x: the point.
        damping: `lambda >= 0` for the damped step (Levenberg-Marquardt style).
        metric: the metric `G` for damping; defaults to the connection's metric
            (Levi-Civita) and is required otherwise when `damping` is nonzero.

    Returns:
        The step `eta`, a tangent vector shaped like `x`.
    """
    check_point("newton_step", x)
    x = check_finite("newton_step", x)
    connection = as_connection("newton_step", connection)
    damped = not (isinstance(damping, (int, float)) and damping == 0)
    if damped:
        metric = as_metric("newton_step", connection if metric is None else metric)
    df = jax.grad(f)(x)
    df = raise_if(
        df, nonfinite(df), "`newton_step`: the gradient of `f` holds NaN or inf here."
    )
    if isinstance(x, jax.Array) and x.ndim == 1:
        H = covariant_hessian(f, connection, x)
        if damped:
            H = H + damping * metric.matrix(x)
        return newton_solve(
            -df, caller="newton_step", message=singular_msg("newton_step"), matrix=H
        )
    grad_f = jax.grad(f)

    def ehvp(v):
        return jax.jvp(grad_f, (x,), (v,))[1]

    return coordinate_newton_step(
        connection, metric, x, df, ehvp, damping, dense=False, caller="newton_step"
    )
