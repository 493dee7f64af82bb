"""Leaf-by-leaf manifold operations over a params pytree.

A *manifold tree* is one manifold, or a pytree prefix of the params whose leaves are
manifolds ([`AbstractManifold`][geomhess.AbstractManifold]) or `None` (ordinary
Euclidean parameters). Each leaf acts on the whole params subtree below it: a
manifold's point may itself be a pytree (a `Product`), and a `None` leaf covers a whole
Euclidean subtree (a network's weights). Manifolds are never flattened: `is_leaf`
stops at them.
"""

import jax.numpy as jnp
import jax.tree_util as jtu

from .._core.tree import tree_add, tree_vdot
from ..manifolds import AbstractManifold


def is_manifold_leaf(node) -> bool:
    """A leaf of a manifold tree: a manifold, or `None` for Euclidean parameters."""
    return node is None or isinstance(node, AbstractManifold)


def split(caller: str, manifold, params):
    """Pair each manifold leaf with its params subtree.

    Returns:
        `(treedef, manifolds, subtrees)`: the structure of the manifold tree (with its
        manifold and `None` leaves as leaves), the list of leaves, and the list of the
        params subtrees below them.
    """
    treedef = jtu.tree_structure(manifold, is_leaf=is_manifold_leaf)
    manifolds = jtu.tree_leaves(manifold, is_leaf=is_manifold_leaf)
    try:
        subtrees = treedef.flatten_up_to(params)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{caller}`: the manifold tree must be one manifold or a pytree prefix of "
            f"`params` (leaves: manifolds, or `None` for Euclidean parameters). Got "
            f"the manifold tree {treedef} and params {jtu.tree_structure(params)}."
        ) from error
    for m in manifolds:
        if not is_manifold_leaf(m):
            raise ValueError(
                f"`{caller}`: a leaf of the manifold tree is {type(m).__name__}; "
                "expected a manifold (e.g. `geomhess.manifolds.Sphere(n)`) or `None`."
            )
    return treedef, manifolds, subtrees


def leaves_of(treedef, tree):
    """The subtrees of `tree` at the manifold tree's leaves."""
    return treedef.flatten_up_to(tree)


def point_dtype(x):
    """The floating dtype of a point (a pytree of arrays of one dtype)."""
    return jnp.result_type(*jtu.tree_leaves(x))


def tree_cast_like(tree, like):
    return jtu.tree_map(lambda a, b: jnp.asarray(a, dtype=b.dtype), tree, like)


def tree_scale(scalar, tree):
    """`scalar * tree`, each leaf in its own dtype (`scalar` a number or 0-d array)."""
    return jtu.tree_map(lambda a: jnp.asarray(scalar, a.dtype) * a, tree)


def tree_lincomb(a, x, b, y):
    """`a * x + b * y` for scalars `a`, `b`, each leaf in its own dtype."""
    return jtu.tree_map(
        lambda u, v: jnp.asarray(a, u.dtype) * u + jnp.asarray(b, v.dtype) * v, x, y
    )


def difference(new, old):
    """`new - old` in the dtype of `old`: the update that `optax.apply_updates` adds."""
    return jtu.tree_map(lambda n, o: (n - o).astype(o.dtype), new, old)


# The manifold operations, with `None` standing for the flat (Euclidean) leaf.


def egrad_to_rgrad(m, x, g):
    return g if m is None else m.egrad_to_rgrad(x, g)


def to_tangent(m, x, v):
    return v if m is None else m.to_tangent(x, v)


def to_manifold(m, x):
    return x if m is None else m.to_manifold(x)


def retract(m, x, v):
    return tree_add(x, v) if m is None else m.retract(x, v)


def exp(m, x, v):
    return tree_add(x, v) if m is None else m.exp(x, v)


def retract_transport(m, x, v, u):
    return (tree_add(x, v), u) if m is None else m.retract_transport(x, v, u)


def inner(m, x, u, v):
    return tree_vdot(u, v) if m is None else m.inner(x, u, v)


def norm(m, x, v):
    return jnp.sqrt(tree_vdot(v, v)) if m is None else m.norm(x, v)


def tree_add_scalar(tree, scalar):
    """`tree + scalar`, each leaf in its own dtype."""
    return jtu.tree_map(lambda a: a + jnp.asarray(scalar, a.dtype), tree)
