"""Metrics written by hand: Euclidean, from a matrix function, diagonal, induced."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._core.checks import check_point, membership_tol, raise_if, symmetry_defect
from .._core.solve import cg_solve, spd_solve
from .._core.tree import on_basis
from ._base import AbstractMetric


class Euclidean(AbstractMetric):
    """The Euclidean metric `G = I`.

    Without `d` it works on any pytree (its `mvp` and `raise_index` are the
    identity); with `d`, points must have shape `(d,)`.
    """

    d: int | None = eqx.field(default=None, static=True)

    def _check(self, x):
        if self.d is not None:
            check_point("Euclidean", x, flat=True)
            if x.shape != (self.d,):
                raise ValueError(
                    f"`Euclidean({self.d})`: expected a point of shape ({self.d},), "
                    f"got {x.shape}."
                )

    def matrix(self, x):
        self._check(x)
        check_point("Euclidean.matrix", x, flat=True)
        return jnp.eye(x.shape[0], dtype=x.dtype)

    def mvp(self, x, v):
        self._check(x)
        return v

    def raise_index(self, x, w):
        self._check(x)
        return w


class FromFunction(AbstractMetric):
    """A metric given by a plain function `x -> G(x)` returning a `(d, d)` matrix.

    This is the common way to define a manifold in user code, e.g. the hyperbolic
    half-plane: `FromFunction(lambda q: jnp.eye(2) / q[1] ** 2)`.
    `raise_index` solves by Cholesky and raises if `G(x)` is not positive definite.
    """

    fn: Callable

    def matrix(self, x):
        check_point("FromFunction", x, flat=True)
        G = self.fn(x)
        d = x.shape[0]
        if jnp.shape(G) != (d, d):
            raise ValueError(
                f"`metrics.FromFunction`: the metric function returned shape "
                f"{jnp.shape(G)} at a point of shape {x.shape}; expected ({d}, {d})."
            )
        # The inner product uses all of `G`, a Cholesky one triangle: a non-symmetric
        # `G` would make them disagree in silence.
        tol = membership_tol(jnp.result_type(G))
        return raise_if(
            G,
            symmetry_defect(G) > tol,
            f"`metrics.FromFunction`: the metric function returned a matrix that is "
            f"not symmetric (max |G - G^T| / max |G| above {tol:.1e}). "
            "A metric must be symmetric: return `0.5 * (G + G.T)` if that is what you "
            "mean.",
        )

    def mvp(self, x, v):
        return self.matrix(x) @ v

    def raise_index(self, x, w):
        return spd_solve(self.matrix(x), w, caller="metrics.FromFunction.raise_index")


class Diagonal(AbstractMetric):
    """A diagonal metric `G(x) = diag(fn(x))`, with `fn(x)` a pytree like `x`.

    Matrix-free on any pytree: `mvp` and `raise_index` are elementwise. Entries must
    be positive; a non-positive entry raises in `raise_index`.
    """

    fn: Callable

    def matrix(self, x):
        check_point("metrics.Diagonal.matrix", x, flat=True)
        return jnp.diag(self.fn(x))

    def mvp(self, x, v):
        return jtu.tree_map(jnp.multiply, self.fn(x), v)

    def raise_index(self, x, w):
        diag = self.fn(x)
        bad = jnp.any(jnp.stack([jnp.any(~(d > 0)) for d in jtu.tree_leaves(diag)]))
        diag = raise_if(
            diag,
            bad,
            "`metrics.Diagonal`: the metric is not positive definite here (a "
            "diagonal entry is <= 0 or NaN).",
        )
        return jtu.tree_map(jnp.divide, w, diag)


class Pullback(AbstractMetric):
    """The metric induced by a map into a space with a metric: `G = Df^T G_amb Df`.

    `embedding` maps coordinates `x` (shape `(d,)`) to an ambient point (shape
    `(n,)`, `n >= d`), e.g. a parametrized surface in `R^3`; `ambient` is the
    ambient metric (Euclidean by default). `mvp` is one JVP and one VJP;
    `raise_index` solves by Cholesky for 1-D points and by CG otherwise. The
    embedding must be an immersion (full-rank Jacobian) at the points used.
    """

    embedding: Callable
    ambient: AbstractMetric = Euclidean()

    def matrix(self, x):
        check_point("metrics.Pullback.matrix", x, flat=True)
        return on_basis(lambda v: self.mvp(x, v), x)

    def mvp(self, x, v):
        z, pull = jax.vjp(self.embedding, x)
        _, dz = jax.jvp(self.embedding, (x,), (v,))
        (out,) = pull(self.ambient.mvp(z, dz))
        return out

    def raise_index(self, x, w):
        if isinstance(x, jax.Array) and x.ndim == 1:
            return spd_solve(self.matrix(x), w, caller="metrics.Pullback.raise_index")
        return cg_solve(
            lambda v: self.mvp(x, v), w, caller="metrics.Pullback.raise_index"
        )
