"""The invariant Newton step."""

import jax
import jax.numpy as jnp

from .._core.checks import check_finite, check_point, nonfinite, raise_if
from .._core.solve import symmetric_solve
from .._core.tree import tree_axpy, tree_scale
from ._coerce import as_connection, as_metric
from ._hessian import covariant_hessian, covariant_hvp


_SINGULAR_MSG = (
    "`newton_step`: the covariant Hessian (plus damping) is singular or numerically "
    "singular at this point, so the Newton step is undefined. Likely causes: (1) a "
    "degenerate critical point or an inflection; (2) a flat direction of the loss "
    "(add `damping`); (3) NaN in the point or the loss."
)


def newton_step(f, connection, x, *, damping=0.0, metric=None):
    """The invariant Newton step: `eta` solving `(nabla^2 f + damping G) eta = -df`.

    With the covariant Hessian of `connection`, the step is a tangent vector that
    transforms as one (`eta~ = J eta`) under a change of chart; moved along the
    connection's exponential map ([`exp_map`][geomhess.exp_map]), Newton's iterates
    are the same points in every chart. The damping term `damping * G` is a tensor,
    so damped steps stay invariant too.

    For a 1-D point the system is solved densely (LU); for a pytree point it is
    solved matrix-free by MINRES on `covariant_hvp` (the system is symmetric but
    indefinite away from minima).

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

    def apply(v):
        hv = covariant_hvp(f, connection, x, v)
        return tree_axpy(damping, metric.mvp(x, v), hv) if damped else hv

    minus_df = tree_scale(-1.0, jax.grad(f)(x))
    minus_df = raise_if(
        minus_df,
        nonfinite(minus_df),
        "`newton_step`: the gradient of `f` holds NaN or inf at this point.",
    )
    if isinstance(x, jax.Array) and x.ndim == 1:
        H = covariant_hessian(f, connection, x)
        if damped:
            H = H + damping * metric.matrix(x)
        eta = jnp.linalg.solve(H, minus_df)
    else:
        eta = symmetric_solve(apply, minus_df, caller="newton_step")
    return raise_if(eta, nonfinite(eta), _SINGULAR_MSG)
