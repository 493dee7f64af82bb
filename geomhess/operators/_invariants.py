"""Invariants of the shape operator, and the classification of critical points."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._core.checks import check_finite, check_point, nonfinite_or_not_pd_msg, raise_if
from .._core.eigen import eigvalsh_from_cholesky, generalized_eigvalsh
from ..metrics import Euclidean
from ._coerce import as_connection, as_metric
from ._hessian import (
    _DENSE_LEVI_CIVITA_MAX_D,
    covariant_hessian,
    dense_levi_civita_hessian,
)


class HessianInvariants(eqx.Module):
    """Eigenvalues, trace and determinant of the shape operator `G^{-1} nabla^2 f`.

    Attributes:
        eigenvalues: ascending, shape `(d,)`.
        trace: their sum.
        det: their product.
        logdet: `log |det|`, the sum of `log |eigenvalue|` (stable for large `d`).
        sign: the sign of `det` (`-1`, `0` or `1`).
    """

    eigenvalues: Float[Array, " d"]
    trace: Float[Array, ""]
    det: Float[Array, ""]
    logdet: Float[Array, ""]
    sign: Float[Array, ""]


def _invariants_from_eigenvalues(eigenvalues) -> HessianInvariants:
    return HessianInvariants(
        eigenvalues=eigenvalues,
        trace=jnp.sum(eigenvalues),
        det=jnp.prod(eigenvalues),
        logdet=jnp.sum(jnp.log(jnp.abs(eigenvalues))),
        sign=jnp.prod(jnp.sign(eigenvalues)),
    )


def hessian_invariants(f, metric, x) -> HessianInvariants:
    """Eigenvalues, trace, determinant and log-determinant of the shape operator.

    These are the invariant curvature quantities: the same numbers in every chart
    (with the metric and `f` reparametrized alike). They are the generalized
    eigenvalues of the symmetric pencil `(nabla^2 f, G)`, computed by a Cholesky
    reduction to a symmetric eigenproblem rather than by `eigvals(G^{-1} H)`.

    Args:
        f: a scalar function of a 1-D point.
        metric: the metric; its Levi-Civita connection is used in the Hessian.
        x: the point, shape `(d,)`.

    Returns:
        A [`HessianInvariants`][geomhess.HessianInvariants].
    """
    check_point("hessian_invariants", x, flat=True)
    metric = as_metric("hessian_invariants", metric)
    if x.shape[0] <= _DENSE_LEVI_CIVITA_MAX_D:
        # One factorization of G for the Hessian and the eigenproblem, one check.
        dense = dense_levi_civita_hessian("hessian_invariants", f, metric, x)
        eigenvalues = eigvalsh_from_cholesky(dense.hessian, dense.cholesky)
        message = nonfinite_or_not_pd_msg("hessian_invariants")
        eigenvalues = raise_if(eigenvalues, dense.bad, message)
    else:
        x = check_finite("hessian_invariants", x)
        H = covariant_hessian(f, as_connection("hessian_invariants", metric), x)
        eigenvalues = generalized_eigvalsh(
            H, metric.matrix(x), caller="hessian_invariants"
        )
    return _invariants_from_eigenvalues(eigenvalues)


class CriticalPointKind(eqx.Enumeration):
    """What kind of point `classify_critical_point` found (usable inside `jit`)."""

    minimum = "a strict local minimum: the shape operator is positive definite"
    maximum = "a strict local maximum: the shape operator is negative definite"
    saddle = "a saddle: the shape operator has eigenvalues of both signs"
    degenerate = (
        "a degenerate critical point: the shape operator is semidefinite with a zero "
        "eigenvalue, so the second-derivative test is inconclusive"
    )
    not_critical = "not a critical point: the gradient does not vanish"


_KIND_NAMES = ("minimum", "maximum", "saddle", "degenerate", "not-critical")


class CriticalPoint(eqx.Module):
    """The result of [`classify_critical_point`][geomhess.classify_critical_point].

    Attributes:
        kind_item: the `CriticalPointKind` item (works inside `jit`).
        index: the Morse index, the number of negative eigenvalues.
        eigenvalues: the shape operator's eigenvalues, ascending.
        gradient_norm: the Riemannian norm of the gradient, `sqrt(df . G^{-1} df)`.
    """

    kind_item: CriticalPointKind
    index: Int[Array, ""]
    eigenvalues: Float[Array, " d"]
    gradient_norm: Float[Array, ""]

    @property
    def kind(self) -> str:
        """One of `"minimum"`, `"maximum"`, `"saddle"`, `"degenerate"`,
        `"not-critical"` (only outside `jit`; inside, use `kind_item`)."""
        return _KIND_NAMES[int(self.kind_item._value)]


def classify_critical_point(
    f, x, metric=None, *, grad_tol=None, eig_tol=None
) -> CriticalPoint:
    """Classify `x` by the second-derivative test, checking the gradient first.

    1. If the Riemannian gradient norm `sqrt(df . G^{-1} df)` exceeds `grad_tol`
       times the largest eigenvalue magnitude of the shape operator `G^{-1} nabla^2 f`,
       the point is `"not-critical"` (a Hessian test there says nothing about
       extrema). The ratio is the length of a Newton step, so the test does not
       change when `f` is scaled: `1e-9 * ((x0 - 1)**2 + x1**2)` at the origin is
       not critical, whatever the factor. (A zero Hessian makes any nonzero gradient
       "not critical".)
    2. Otherwise the shape operator's eigenvalues decide: all `> eig_tol` is a
       `"minimum"`, all `< -eig_tol` a `"maximum"`, some of each sign a `"saddle"`,
       and anything else (semidefinite with an eigenvalue within `eig_tol` of zero)
       `"degenerate"`: the test is inconclusive there, it does not mean "flat minimum".

    Both tests are invariant under reparametrization when `metric` and `f` are
    carried through the chart together.

    Args:
        f: a scalar function of a 1-D point.
        x: the point, shape `(d,)`.
        metric: the metric (default: Euclidean).
        grad_tol: tolerance on the gradient norm, relative to the largest
            eigenvalue magnitude (a length in the metric: the Newton step's); default
            `sqrt(eps)` of the dtype (`1.5e-8` in float64, `3.5e-4` in float32).
        eig_tol: tolerance on eigenvalues, relative to the largest in magnitude;
            default `sqrt(eps)` of the dtype.

    Returns:
        A [`CriticalPoint`][geomhess.CriticalPoint]; `.kind` is the string.
    """
    check_point("classify_critical_point", x, flat=True)
    metric = (
        Euclidean() if metric is None else as_metric("classify_critical_point", metric)
    )
    default_tol = float(np.sqrt(np.finfo(x.dtype).eps))
    grad_tol = default_tol if grad_tol is None else grad_tol
    eig_tol = default_tol if eig_tol is None else eig_tol

    caller = "classify_critical_point"
    if x.shape[0] <= _DENSE_LEVI_CIVITA_MAX_D:
        dense = dense_levi_civita_hessian(caller, f, metric, x)
        eigenvalues = eigvalsh_from_cholesky(dense.hessian, dense.cholesky)
        gradient_norm = jnp.sqrt(jnp.maximum(jnp.vdot(dense.df, dense.gradient), 0))
        eigenvalues, gradient_norm = raise_if(
            (eigenvalues, gradient_norm), dense.bad, nonfinite_or_not_pd_msg(caller)
        )
    else:
        x = check_finite(caller, x)
        df = jax.grad(f)(x)
        gradient = metric.raise_index(x, df)
        gradient_norm = jnp.sqrt(jnp.maximum(jnp.vdot(df, gradient), 0))
        eigenvalues = hessian_invariants(f, metric, x).eigenvalues
    scale = jnp.max(jnp.abs(eigenvalues))
    threshold = eig_tol * scale
    positive = eigenvalues > threshold
    negative = eigenvalues < -threshold
    K = CriticalPointKind
    kind = K.where(
        gradient_norm > grad_tol * scale,
        K.not_critical,
        K.where(
            jnp.all(positive),
            K.minimum,
            K.where(
                jnp.all(negative),
                K.maximum,
                K.where(jnp.any(positive) & jnp.any(negative), K.saddle, K.degenerate),
            ),
        ),
    )
    return CriticalPoint(
        kind_item=kind,
        index=jnp.sum(negative),
        eigenvalues=eigenvalues,
        gradient_norm=gradient_norm,
    )
