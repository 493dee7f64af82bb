"""An open subset of $\\mathbb{R}^d$ (or of a pytree space) with any geomhess metric."""

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu

from .._core.tree import tree_random, tree_scale, tree_sub
from ..connections import LeviCivita
from ..metrics import AbstractMetric
from ..operators._geodesic import exp_map, second_order_retraction
from ..operators._hessian import covariant_from_euclidean_hvp
from ._base import AbstractManifold, normal


def _ode_tolerances(x):
    dtype = jnp.result_type(*jtu.tree_leaves(x))
    return (1e-12, 1e-12) if dtype == jnp.float64 else (1e-6, 1e-6)


def _transport_field(t, w, args):
    """The parallel-transport ODE $\\dot w = -\\Gamma(c(t))(\\dot c, w)$ along the
    segment $c(t) = x + t (y - x)$. Module-level, with the data in `args`, so that
    diffrax's compiled solve is reused across calls."""
    connection, x, direction = args
    # Cast the solver's time to each leaf's dtype (strict promotion).
    position = jtu.tree_map(lambda d, x0: t.astype(x0.dtype) * d + x0, direction, x)
    return tree_scale(-1.0, connection.contract(position, direction, w))


class Coordinate(AbstractManifold):
    """A manifold given in one chart: an open set of $\\mathbb{R}^d$ (or of the
    space of pytrees like the point) with a [`Metric`][geomhess.AbstractMetric].

    This wraps any geomhess metric (`FromFunction`, `Diagonal`, a `reparametrize`d
    one, a Fisher metric, ...) as a manifold for the optimizers. Points, tangent
    vectors and covectors are all in the metric's coordinates; the connection is the
    metric's Levi-Civita connection (`self.connection`), used matrix-free.

    - `inner` is `metric.inner`; `to_tangent` and `to_manifold` are the identity
      (an open set); the domain is not checked here (the metric's own checks apply);
    - `egrad_to_rgrad(x, g)` $= G^{-1} g$ (`metric.raise_index`);
    - `ehvp_to_rhvp(x, g, h, v)` $= G^{-1}(h - \\Gamma^k_{ij} v^j g_k)$: the
      covariant Hessian-vector product with the index raised, the same as
      [`covariant_hvp`][geomhess.covariant_hvp] followed by `raise_index` (one
      `contract_covector` plus one `raise_index`);
    - `exp` integrates the geodesic equation ([`exp_map`][geomhess.exp_map], about
      1e-8 relative in float64);
    - `retract(x, v)` $= x + v - \\frac12 \\Gamma(v, v)$, the second-order Taylor
      expansion of the geodesic: a **second-order** retraction (one `contract`);
      like any retraction it is only defined while it stays inside the domain;
    - `transport(x, y, v)` is the **parallel transport** along the straight segment
      $x + t(y - x)$ in coordinates, by integrating $\\dot v = -\\Gamma(y - x, v)$
      with diffrax (Dopri8, tolerances 1e-12 in float64, 1e-6 in float32). Parallel
      transport along any curve is an **isometry**; note the coordinate identity is
      not (the metric changes from `x` to `y`);
    - `log` and `dist` raise `NotImplementedError` (they need geodesic shooting,
      which geomhess does not provide yet).

    Attributes:
        metric: the Riemannian metric, in the coordinates of the point.
        origin: a point of the domain around which `random_point` samples (a pytree
            like the points); without it `random_point` raises.
        spread: the standard deviation of `random_point` around `origin`.
    """

    metric: AbstractMetric
    origin: object = None
    spread: float = eqx.field(default=0.1, static=True)

    @property
    def connection(self) -> LeviCivita:
        """The Levi-Civita connection of `metric`."""
        return LeviCivita(self.metric)

    def inner(self, x, u, v):
        return self.metric.inner(x, u, v)

    def to_tangent(self, x, v):
        return v

    def to_manifold(self, x):
        return x

    def egrad_to_rgrad(self, x, egrad):
        return self.metric.raise_index(x, egrad)

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        hv = covariant_from_euclidean_hvp(self.connection, x, v, egrad, ehvp)
        return self.metric.raise_index(x, hv)

    def retract(self, x, v):
        """$x + v - \\frac12\\Gamma(v, v)$: the second-order retraction."""
        return second_order_retraction(self.connection, x, v)

    def exp(self, x, v):
        return exp_map(self.connection, x, v)

    def log(self, x, y):
        raise NotImplementedError(
            "`Coordinate.log`: the logarithm of a general metric needs geodesic "
            "shooting, which geomhess does not provide yet. Use `exp` or `retract` "
            "to move, and `transport` for vectors."
        )

    def dist(self, x, y):
        raise NotImplementedError(
            "`Coordinate.dist`: the geodesic distance of a general metric needs the "
            "logarithm (geodesic shooting), which geomhess does not provide yet. Use "
            "`manifold.norm(x, y - x)` as a first-order estimate for near points."
        )

    def transport(self, x, y, v):
        """Parallel transport along the coordinate segment from `x` to `y`."""
        rtol, atol = _ode_tolerances(x)
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(_transport_field),
            diffrax.Dopri8(),
            t0=0.0,
            t1=1.0,
            dt0=None,
            y0=v,
            args=(self.connection, x, tree_sub(y, x)),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=4096,
        )
        return jtu.tree_map(lambda leaf: leaf[-1], solution.ys)

    def random_point(self, key, *, dtype=None):
        """`origin` plus `spread` times standard normal noise (dtype of `origin` when
        `dtype` is None)."""
        if self.origin is None:
            raise NotImplementedError(
                "`Coordinate.random_point`: the domain of the metric is unknown; "
                "pass `origin=` (a point of the domain) when building the manifold."
            )
        noise = tree_random(normal, key, self.origin)
        out = jtu.tree_map(lambda o, n: o + self.spread * n, self.origin, noise)
        if dtype is not None:
            out = jtu.tree_map(lambda leaf: leaf.astype(dtype), out)
        return out

    def random_tangent(self, key, x):
        return tree_random(normal, key, x)
