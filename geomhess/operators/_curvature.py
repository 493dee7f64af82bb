"""Riemann, Ricci and scalar curvature of a metric (dense; small `d`).

Conventions (see the conventions page): `R[l, i, j, k] = R^l_{ijk}` with
`R(d_i, d_j) d_k = R^l_{ijk} d_l` and `R(X, Y) = nabla_X nabla_Y - nabla_Y nabla_X -
nabla_[X,Y]`, so that `R^l_{ijk} = d_i Gamma^l_jk - d_j Gamma^l_ik + Gamma^l_im
Gamma^m_jk - Gamma^l_jm Gamma^m_ik`; `Ric_jk = R^i_{ijk}`; spheres have positive
curvature.
"""

import jax
import jax.numpy as jnp

from .._core.checks import check_finite, check_point
from .._core.solve import spd_solve
from ._coerce import as_connection, as_metric


def riemann_tensor(metric, x):
    """The Riemann curvature tensor `R[l, i, j, k] = R^l_{ijk}` at `x`, shape `(d,)*4`.

    Args:
        metric: the metric (its Levi-Civita connection is used), or any connection.
        x: the point, shape `(d,)`.
    """
    check_point("riemann_tensor", x, flat=True)
    x = check_finite("riemann_tensor", x)
    connection = as_connection("riemann_tensor", metric)
    gamma = connection.christoffel(x)
    # jacfwd appends the derivative index: d_gamma[l, j, k, i] = d_i Gamma^l_jk.
    d_gamma = jnp.moveaxis(jax.jacfwd(connection.christoffel)(x), 3, 1)
    quadratic = jnp.einsum("lim,mjk->lijk", gamma, gamma)
    first = d_gamma + quadratic
    return first - jnp.swapaxes(first, 1, 2)


def ricci_tensor(metric, x):
    """The Ricci tensor `Ric_jk = R^i_{ijk}` at `x`, shape `(d, d)`."""
    return jnp.einsum("iijk->jk", riemann_tensor(metric, x))


def scalar_curvature(metric, x):
    """The scalar curvature `g^{jk} Ric_jk` at `x` (`2 / R^2` on the 2-sphere of
    radius `R`, `n (n - 1) / R^2` on `S^n`, `-2` on the hyperbolic half-plane)."""
    metric = as_metric("scalar_curvature", metric)
    ricci = ricci_tensor(metric, x)
    return jnp.trace(spd_solve(metric.matrix(x), ricci, caller="scalar_curvature"))
