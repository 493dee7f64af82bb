"""The geometry a second-order method works with: a connection/metric on coordinates,
or an (embedded) manifold. Both give the same four things: the Riemannian gradient,
the Riemannian Hessian applied to a tangent vector, the inner product (for trust
radii and truncated CG), and a way to move."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._geodesic import exp_map, second_order_retraction
from .._hessian import covariant_hvp
from ..connections import AbstractConnection, LeviCivita
from ..manifolds import AbstractManifold, Coordinate
from ..metrics import AbstractMetric


RETRACTIONS = ("exp", "second_order")


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

    def hvp(self, f, x, egrad, v):
        """The shape operator's action `G^{-1} nabla^2 f v` (a tangent vector)."""
        del egrad
        metric = self.require_metric("hvp")
        return metric.raise_index(x, covariant_hvp(f, self.connection, x, v))

    def inner(self, x, u, v):
        return self.require_metric("inner").inner(x, u, v)

    def to_tangent(self, x, v):
        return v

    def move(self, x, v, retraction: str):
        if retraction == "exp":
            return exp_map(self.connection, x, v)
        return second_order_retraction(self.connection, x, v)


class ManifoldGeometry(eqx.Module):
    """A manifold with the `AbstractManifold` interface (embedded, or a product)."""

    manifold: AbstractManifold

    def gradient(self, x, egrad):
        return self.manifold.egrad_to_rgrad(x, egrad)

    def hvp(self, f, x, egrad, v):
        """The Riemannian Hessian `Hess f(x)[v]`: the Euclidean HVP (one
        forward-over-reverse pass) through `ehvp_to_rhvp`, projected to `T_x M`."""
        v = self.manifold.to_tangent(x, v)
        _, ehvp = jax.jvp(jax.grad(f), (x,), (v,))
        rhvp = self.manifold.ehvp_to_rhvp(x, egrad, ehvp, v)
        return self.manifold.to_tangent(x, rhvp)

    def inner(self, x, u, v):
        return self.manifold.inner(x, u, v)

    def to_tangent(self, x, v):
        return self.manifold.to_tangent(x, v)

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
