"""Euclidean space $\\mathbb{R}^{n_1 \\times \\dots \\times n_k}$ as a manifold."""

import equinox as eqx
import jax.numpy as jnp

from .._core.tree import tree_add, tree_sub, tree_vdot
from ._base import AbstractManifold, check_shape, normal
from ._functions import safe_sqrt


def _as_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


class Euclidean(AbstractManifold):
    """Flat space of arrays of a fixed shape, with the dot product as metric.

    `Euclidean(3)` is $\\mathbb{R}^3$ (points of shape `(3,)`), `Euclidean((4, 5))`
    holds `(4, 5)` matrices, `Euclidean(())` scalars. Every map is exact and cheap:
    `exp(x, v) = retract(x, v) = x + v`, `log(x, y) = y - x`, `transport` is the
    identity (an isometry, the parallel transport), `dist` is the Frobenius norm of
    `y - x`, and the Riemannian gradient and Hessian are the Euclidean ones.

    The methods other than `random_point` accept any pytree of arrays; `shape` is
    checked on array points.

    Attributes:
        shape: the shape of a point (an `int` means a vector).
    """

    shape: tuple[int, ...] = eqx.field(static=True, converter=_as_shape)

    def _check(self, caller, x):
        if isinstance(x, jnp.ndarray):
            check_shape(f"Euclidean.{caller}", "x", x, self.shape)

    def inner(self, x, u, v):
        self._check("inner", x)
        return tree_vdot(u, v)

    def to_tangent(self, x, v):
        self._check("to_tangent", x)
        return v

    def to_manifold(self, x):
        self._check("to_manifold", x)
        return x

    def egrad_to_rgrad(self, x, egrad):
        self._check("egrad_to_rgrad", x)
        return egrad

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        self._check("ehvp_to_rhvp", x)
        return ehvp

    def retract(self, x, v):
        """`x + v`, the exponential map itself (a retraction of every order)."""
        self._check("retract", x)
        return tree_add(x, v)

    def exp(self, x, v):
        self._check("exp", x)
        return tree_add(x, v)

    def log(self, x, y):
        self._check("log", x)
        return tree_sub(y, x)

    def transport(self, x, y, v):
        """The identity: parallel transport in flat space (an isometry)."""
        self._check("transport", x)
        return v

    def dist(self, x, y):
        self._check("dist", x)
        d = tree_sub(y, x)
        return safe_sqrt(tree_vdot(d, d))

    def random_point(self, key, *, dtype=None):
        """A standard normal array of shape `shape`."""
        return normal(key, self.shape, dtype)

    def random_tangent(self, key, x):
        self._check("random_tangent", x)
        return normal(key, jnp.shape(x), jnp.result_type(x))
