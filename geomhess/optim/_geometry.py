"""The geometry a second-order method works with: a connection/metric on coordinates,
or an (embedded) manifold. Both give the same four things: the Riemannian gradient,
the Riemannian Hessian applied to a tangent vector, the inner product (for trust
radii and truncated CG), and a way to move."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._core.checks import check_finite
from ..connections import AbstractConnection, LeviCivita
from ..manifolds import (
    AbstractEmbeddedManifold,
    AbstractManifold,
    Coordinate,
)
from ..metrics import AbstractMetric
from ..operators._geodesic import exp_map, second_order_retraction
from ..operators._hessian import covariant_from_euclidean_hvp


RETRACTIONS = ("exp", "second_order")


def euclidean_hvp(f, x, hvp_fn):
    """`v -> ∂²f(x) v`: the user's `hvp_fn(x, v)` if given, else forward-over-reverse
    autodiff of `f`."""
    if hvp_fn is not None:
        return lambda v: hvp_fn(x, v)
    grad_f = jax.grad(f)
    return lambda v: jax.jvp(grad_f, (x,), (v,))[1]


class CoordinateGeometry(eqx.Module):
    """A connection (and its metric, if it has one) on an open set of `R^d`."""

    connection: AbstractConnection
    metric: AbstractMetric | None

    def require_metric(self, caller: str) -> AbstractMetric:
        if self.metric is None:
            raise ValueError(
                f"`{caller}`: this method needs a metric (for the gradient, the "
                "Hessian's index raising, or the trust radius), but it was given a "
                f"connection without one ({type(self.connection).__name__}). Pass a "
                "metric, or `gh.LeviCivita(metric)`."
            )
        return self.metric

    def gradient(self, x, egrad):
        return self.require_metric("gradient").raise_index(x, egrad)

    def hessian(self, f, x, egrad, hvp_fn=None, *, caller="optim"):
        """`v -> G^{-1} nabla^2 f v` at `x`, for a loop over many `v`.

        The covariant Hessian is `∂²f v - Γ(v, ·) df` (as `Coordinate.ehvp_to_rhvp`)
        with the given `egrad` as `df`, and the Euclidean HVP from `euclidean_hvp`.
        The point is checked for NaN once here, not on every product.
        """
        metric = self.require_metric(caller)
        x = check_finite(caller, x)
        ehvp = euclidean_hvp(f, x, hvp_fn)

        def hessian(v):
            hv = covariant_from_euclidean_hvp(self.connection, x, v, egrad, ehvp(v))
            return metric.raise_index(x, hv)

        return hessian

    def inner(self, x, u, v):
        return self.require_metric("inner").inner(x, u, v)

    def to_tangent(self, x, v):
        return v

    def flat(self, x):
        """`u -> G u`, the covector of a vector (lowering an index)."""
        metric = self.require_metric("flat")
        return lambda u: metric.mvp(x, u)

    def move(self, x, v, retraction: str):
        if retraction == "exp":
            return exp_map(self.connection, x, v)
        return second_order_retraction(self.connection, x, v)


class ManifoldGeometry(eqx.Module):
    """A manifold with the `AbstractManifold` interface (embedded, or a product)."""

    manifold: AbstractManifold

    def gradient(self, x, egrad):
        return self.manifold.egrad_to_rgrad(x, egrad)

    def hessian(self, f, x, egrad, hvp_fn=None, *, caller="optim"):
        """`v -> Hess f(x)[v]` for tangent `v` at `x`, for a loop over many `v`.

        The Euclidean HVP from `euclidean_hvp`, turned Riemannian by
        `manifold.ehvp_to_rhvp`; on an embedded manifold by its `hessian_operator`,
        which computes what depends on `x` alone once (XLA does not hoist it out of
        the solver's loop: measured 1.4x slower on Brockett). `v` is not projected
        first: it is tangent up to rounding, and truncated CG projects its search
        direction anyway.
        """
        del caller
        ehvp = euclidean_hvp(f, x, hvp_fn)
        if isinstance(self.manifold, AbstractEmbeddedManifold):
            riemannian = self.manifold.hessian_operator(x, egrad)
        else:

            def riemannian(h, v):
                return self.manifold.ehvp_to_rhvp(x, egrad, h, v)

        return lambda v: riemannian(ehvp(v), v)

    def inner(self, x, u, v):
        return self.manifold.inner(x, u, v)

    def to_tangent(self, x, v):
        return self.manifold.to_tangent(x, v)

    def flat(self, x):
        """`u -> (w -> <u, w>_x)` as an ambient array: the identity on an embedded
        manifold (the dot product), the gradient of the bilinear inner product in its
        second argument otherwise (`X^-1 U X^-1` on SPD, `J u` on Hyperbolic)."""
        if isinstance(self.manifold, AbstractEmbeddedManifold):
            return lambda u: u
        return lambda u: jax.grad(lambda w: self.manifold.inner(x, u, w))(u)

    def move(self, x, v, retraction: str):
        if retraction == "exp":
            return self.manifold.exp(x, v)
        return self.manifold.retract(x, v)


def as_geometry(caller: str, geometry):
    """Wrap a connection, a metric, a `Coordinate` manifold or a manifold."""
    if isinstance(geometry, LeviCivita):
        return CoordinateGeometry(geometry, geometry.metric)
    if isinstance(geometry, AbstractConnection):
        return CoordinateGeometry(geometry, None)
    if isinstance(geometry, AbstractMetric):
        return CoordinateGeometry(LeviCivita(geometry), geometry)
    if isinstance(geometry, Coordinate):
        return CoordinateGeometry(LeviCivita(geometry.metric), geometry.metric)
    if isinstance(geometry, AbstractManifold):
        return ManifoldGeometry(geometry)
    raise TypeError(
        f"`{caller}`: expected a connection (e.g. `gh.LeviCivita(metric)`), a metric, "
        f"or a manifold (e.g. `gh.manifolds.Sphere(n)`), got {type(geometry).__name__}."
    )


def check_retraction(caller: str, retraction: str):
    if retraction not in RETRACTIONS:
        raise ValueError(
            f"`{caller}`: `retraction` must be one of {RETRACTIONS}, got "
            f"{retraction!r}."
        )


def total_size(x) -> int:
    return sum(int(jnp.size(leaf)) for leaf in jtu.tree_leaves(x))
