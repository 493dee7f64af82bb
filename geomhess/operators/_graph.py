"""Curvatures of a loss landscape: the graph `{(x, f(x))}` as a hypersurface."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._core.checks import check_finite, check_point
from .._core.eigen import generalized_eigvalsh


class GraphCurvatures(eqx.Module):
    """Principal, Gaussian and mean curvature of a graph hypersurface.

    Attributes:
        principal: the principal curvatures, ascending, shape `(d,)`.
        gaussian: their product (the Gauss-Kronecker curvature).
        mean: their average, `trace(S) / d`.
    """

    principal: Float[Array, " d"]
    gaussian: Float[Array, ""]
    mean: Float[Array, ""]


def graph_curvatures(f, x) -> GraphCurvatures:
    """Curvatures of the graph `{(x, f(x))}` of `f: R^d -> R` in `R^{d+1}` at `(x, f(x))`.

    The essay's "flatness" made precise: the graph has induced metric
    `g = I + df df^T` and, for the upward unit normal `(-df, 1) / W` with
    `W = sqrt(1 + |df|^2)`, second fundamental form `h = d^2 f / W`. The principal
    curvatures are the eigenvalues of the shape operator `g^{-1} h` (a symmetric
    generalized eigenproblem). Valid at every point, critical or not; at a critical
    point they reduce to the eigenvalues of the calculus Hessian. A convex bowl has
    positive curvatures.

    Args:
        f: a scalar function of a 1-D point, in Cartesian coordinates of `R^d`.
        x: the point, shape `(d,)`.
    """
    check_point("graph_curvatures", x, flat=True)
    x = check_finite("graph_curvatures", x)
    df = jax.grad(f)(x)
    hessian = jax.hessian(f)(x)
    w = jnp.sqrt(1 + jnp.vdot(df, df))
    metric = jnp.eye(x.shape[0], dtype=x.dtype) + jnp.outer(df, df)
    principal = generalized_eigvalsh(hessian / w, metric, caller="graph_curvatures")
    return GraphCurvatures(
        principal=principal, gaussian=jnp.prod(principal), mean=jnp.mean(principal)
    )
