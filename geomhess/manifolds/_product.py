"""Products of manifolds."""

import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu

from ._base import AbstractManifold
from ._functions import safe_sqrt


def _is_manifold(node) -> bool:
    return isinstance(node, AbstractManifold)


class Product(AbstractManifold):
    """The Riemannian product $M_1 \\times \\dots \\times M_k$ of a pytree of manifolds.

    `manifolds` is a tuple (or any pytree) whose leaves are manifolds; a point, a
    tangent vector and a Euclidean gradient are the same pytree with one component
    (itself possibly a pytree) per factor, e.g. `Product((Sphere(3), SPD(2)))` has
    points `(x_sphere, X_spd)`. Every map acts factor by factor; `inner` sums the
    factors' inner products and `dist` is $\\sqrt{\\sum_i d_i^2}$. A factor's
    `NotImplementedError` (e.g. `Stiefel.log`) propagates. The retraction's order is
    the lowest of the factors'; `transport` is an isometry exactly when every
    factor's is.

    Attributes:
        manifolds: a tuple or pytree of manifolds.
    """

    manifolds: object

    def _parts(self, *trees):
        leaves, treedef = jtu.tree_flatten(self.manifolds, is_leaf=_is_manifold)
        parts = []
        for tree in trees:
            try:
                parts.append(treedef.flatten_up_to(tree))
            except (ValueError, TypeError) as error:
                raise ValueError(
                    "`Product`: a point or vector has pytree structure "
                    f"{jtu.tree_structure(tree)}, which does not match the manifolds' "
                    f"structure {treedef} (one leaf per factor manifold). ({error})"
                ) from None
        return leaves, treedef, parts

    def _map(self, method, *trees):
        leaves, treedef, parts = self._parts(*trees)
        out = [
            getattr(m, method)(*args) for m, *args in zip(leaves, *parts, strict=True)
        ]
        return jtu.tree_unflatten(treedef, out)

    def _sum(self, values):
        return sum(values[1:], values[0])

    def inner(self, x, u, v):
        leaves, _, (xs, us, vs) = self._parts(x, u, v)
        return self._sum(
            [m.inner(*a) for m, *a in zip(leaves, xs, us, vs, strict=True)]
        )

    def to_tangent(self, x, v):
        return self._map("to_tangent", x, v)

    def to_manifold(self, x):
        return self._map("to_manifold", x)

    def egrad_to_rgrad(self, x, egrad):
        return self._map("egrad_to_rgrad", x, egrad)

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        return self._map("ehvp_to_rhvp", x, egrad, ehvp, v)

    def retract(self, x, v):
        """Each factor's retraction (the order is the lowest of the factors')."""
        return self._map("retract", x, v)

    def exp(self, x, v):
        return self._map("exp", x, v)

    def log(self, x, y):
        return self._map("log", x, y)

    def transport(self, x, y, v):
        """Each factor's transport (an isometry when each factor's is)."""
        return self._map("transport", x, y, v)

    def dist(self, x, y):
        leaves, _, (xs, ys) = self._parts(x, y)
        squares = [
            jnp.square(m.dist(a, b)) for m, a, b in zip(leaves, xs, ys, strict=True)
        ]
        return safe_sqrt(self._sum(squares))

    def random_point(self, key, *, dtype=None):
        """Independent random points of the factors (one split key each)."""
        leaves, treedef = jtu.tree_flatten(self.manifolds, is_leaf=_is_manifold)
        keys = jr.split(key, len(leaves))
        return jtu.tree_unflatten(
            treedef,
            [m.random_point(k, dtype=dtype) for m, k in zip(leaves, keys, strict=True)],
        )

    def random_tangent(self, key, x):
        leaves, treedef, (xs,) = self._parts(x)
        keys = jr.split(key, len(leaves))
        return jtu.tree_unflatten(
            treedef,
            [m.random_tangent(k, a) for m, k, a in zip(leaves, keys, xs, strict=True)],
        )
