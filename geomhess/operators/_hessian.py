"""Riemannian gradient, covariant Hessian (matrix-free and dense) and shape operator."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._core.checks import (
    check_finite,
    check_like,
    check_point,
    cholesky_factor,
    nonfinite,
    nonfinite_msg,
    nonfinite_or_not_pd_msg,
    raise_if,
)
from .._core.tree import basis, on_basis, tree_sub
from ..connections import LeviCivita
from ..connections._levi_civita import lowered_christoffel
from ._coerce import as_connection, as_metric


def _check_scalar(caller, f, x):
    out = jax.eval_shape(f, x)
    if getattr(out, "shape", None) != ():
        raise ValueError(
            f"`{caller}`: `f` must return a scalar, but returned "
            f"{getattr(out, 'shape', type(out))} at the point given."
        )


def riemannian_gradient(f, metric, x):
    """The Riemannian gradient `G(x)^{-1} df(x)`, a tangent vector at `x`.

    Args:
        f: a scalar function of the point (e.g. a [`ScalarField`][geomhess.ScalarField]).
        metric: the metric, or a Levi-Civita connection (whose metric is used).
        x: the point, an array or (with a matrix-free metric) any pytree.

    Returns:
        A tangent vector shaped like `x`. Cost: one gradient and one `raise_index`.
    """
    check_point("riemannian_gradient", x)
    _check_scalar("riemannian_gradient", f, x)
    metric = as_metric("riemannian_gradient", metric)
    x = check_finite("riemannian_gradient", x)
    return metric.raise_index(x, jax.grad(f)(x))


def covariant_from_euclidean_hvp(connection, x, v, df, hv):
    """`hv - Gamma^k_ij v^j df_k`: the covariant HVP from the Euclidean one and `df`.

    The one place the connection enters a Hessian-vector product; used by
    `covariant_hvp` and wherever the Euclidean HVP comes from elsewhere (a user's
    hand-written HVP, `Coordinate.ehvp_to_rhvp`).
    """
    return tree_sub(hv, connection.contract_covector(x, v, df))


def covariant_hvp(f, connection, x, v):
    """The covariant Hessian applied to a vector: `(d^2 f - Gamma^k_ij df_k) v`, matrix-free.

    One Hessian-vector product (forward-over-reverse, which also yields `df`) plus one
    connection contraction `connection.contract_covector(x, v, df)`. For the
    Levi-Civita connection that is one `raise_index`, two JVPs and one VJP of the
    metric; the Christoffel array is never formed.

    Args:
        f: a scalar function of the point.
        connection: the connection, or a metric (its Levi-Civita connection is used).
        x: the point, an array or any pytree.
        v: a tangent vector at `x`, shaped like `x`.

    Returns:
        The covector `nabla^2 f(x) v`, shaped like `x` (lower index: apply
        `metric.raise_index` to get the shape operator's action).
    """
    check_point("covariant_hvp", x)
    check_like("covariant_hvp", "v", v, x)
    _check_scalar("covariant_hvp", f, x)
    connection = as_connection("covariant_hvp", connection)
    x = check_finite("covariant_hvp", x)
    df, hv = jax.jvp(jax.grad(f), (x,), (v,))
    return covariant_from_euclidean_hvp(connection, x, v, df, hv)


# Connections other than Levi-Civita (`Flat`, a reparametrized connection) have no
# symbols of the first kind at hand: up to this dimension their dense
# `christoffel(x)` is contracted with `df`, above it `d` covariant HVPs are stacked.
# (The crossover was measured for Levi-Civita, between d = 4 and 5, before its
# faster path below; it is kept for the others, not re-measured.)
_DENSE_CHRISTOFFEL_MAX_D = 4
# Up to this dimension the Levi-Civita covariant Hessian is built densely from the
# symbols of the first kind: faster than `d` covariant HVPs at every `d` measured
# (3 to 60; 3x at d = 30), but it holds `d^3` metric derivatives.
_DENSE_LEVI_CIVITA_MAX_D = 128


def _gradient_and_hessian(caller, f, x):
    """`df` and the calculus Hessian `d^2 f` at a 1-D point, from one vmapped
    forward-over-reverse pass over the basis."""
    _check_scalar(caller, f, x)
    return jax.vmap(lambda e: jax.jvp(jax.grad(f), (x,), (e,)), out_axes=(None, -1))(
        basis(x)
    )


class DenseHessian(NamedTuple):
    """The dense covariant Hessian of a Levi-Civita connection and its by-products."""

    hessian: jax.Array  # nabla^2 f, (d, d)
    df: jax.Array  # the differential, (d,)
    gradient: jax.Array  # the Riemannian gradient G^{-1} df, (d,)
    cholesky: jax.Array  # L with G = L L^T, lower triangular
    bad: jax.Array  # the run-time check, not yet raised: x not finite or G not PD


def dense_levi_civita_hessian(caller: str, f, metric, x) -> DenseHessian:
    """`nabla^2 f = d^2 f - Gamma_{l,ij} (G^{-1} df)^l` from one factorization of `G`.

    Contracting the symbols of the first kind with the Riemannian gradient needs one
    solve, where raising them (`christoffel`) needs `G^{-1}` and a `d^4` product.
    The check is returned, not raised, so that a caller can OR in its own.
    """
    df, hessian = _gradient_and_hessian(caller, f, x)
    G, lowered = lowered_christoffel(metric, x)
    L, not_pd = cholesky_factor(G)
    gradient = jsl.cho_solve((L, True), df)
    return DenseHessian(
        hessian=hessian - jnp.einsum("lij,l->ij", lowered, gradient),
        df=df,
        gradient=gradient,
        cholesky=L,
        bad=nonfinite(x) | not_pd,
    )


def covariant_hessian(f, connection, x):
    """The covariant Hessian `nabla^2 f = d^2 f - Gamma^k_ij df_k`, a `(d, d)` array.

    A tensor everywhere, not only at critical points: under `psi = phi(theta)` it
    transforms as `J^{-T} H J^{-1}`. For the Levi-Civita connection (up to
    `d = 128`) it is `d^2 f - Gamma_{l,ij} (G^{-1} df)^l`, from `d` JVPs of `G` and
    one Cholesky factorization; otherwise it is `covariant_hvp` on the basis vectors
    (for `d <= 4`, the dense `connection.christoffel(x)`). The paths give the same
    numbers (tested).

    Args:
        f: a scalar function of a 1-D point.
        connection: the connection, or a metric (its Levi-Civita connection is used).
        x: the point, shape `(d,)`.
    """
    check_point("covariant_hessian", x, flat=True)
    connection = as_connection("covariant_hessian", connection)
    d = x.shape[0]
    if isinstance(connection, LeviCivita) and d <= _DENSE_LEVI_CIVITA_MAX_D:
        dense = dense_levi_civita_hessian("covariant_hessian", f, connection.metric, x)
        message = nonfinite_or_not_pd_msg("covariant_hessian")
        return raise_if(dense.hessian, dense.bad, message)
    if isinstance(connection, LeviCivita) or d > _DENSE_CHRISTOFFEL_MAX_D:
        return on_basis(lambda v: covariant_hvp(f, connection, x, v), x)
    df, hessian = _gradient_and_hessian("covariant_hessian", f, x)
    out = hessian - jnp.einsum("kij,k->ij", connection.christoffel(x), df)
    return raise_if(out, nonfinite(x), nonfinite_msg("covariant_hessian"))


def shape_operator(f, metric, x):
    """The shape operator `E = G^{-1} nabla^2 f` (one index of the Hessian raised).

    Uses the Levi-Civita connection of `metric`. A linear map of the tangent space
    to itself: under `psi = phi(theta)` it transforms as `J E J^{-1}`, so its
    eigenvalues, trace and determinant are invariant. For those, prefer
    [`hessian_invariants`][geomhess.hessian_invariants], which is symmetric and stable.

    Returns:
        A `(d, d)` array (generally non-symmetric).
    """
    check_point("shape_operator", x, flat=True)
    metric = as_metric("shape_operator", metric)
    if x.shape[0] <= _DENSE_LEVI_CIVITA_MAX_D:
        dense = dense_levi_civita_hessian("shape_operator", f, metric, x)
        shape = jsl.cho_solve((dense.cholesky, True), dense.hessian)
        return raise_if(shape, dense.bad, nonfinite_or_not_pd_msg("shape_operator"))
    connection = as_connection("shape_operator", metric)
    return on_basis(
        lambda v: metric.raise_index(x, covariant_hvp(f, connection, x, v)), x
    )
