"""Small pytree helpers shared by the matrix-free paths.

Everything on the matrix-free path (metrics' `mvp` and `raise_index`, connections'
contractions, `covariant_hvp`) works on any pytree of arrays, so that a network's
parameters go in as they are. These helpers are the only arithmetic on pytrees.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu


def tree_add(a, b):
    return jtu.tree_map(jnp.add, a, b)


def tree_sub(a, b):
    return jtu.tree_map(jnp.subtract, a, b)


def tree_scale(scalar, a):
    """`scalar * a`, leaf by leaf, in each leaf's dtype (the scalar is cast first)."""
    return jtu.tree_map(lambda leaf: jnp.asarray(scalar, leaf.dtype) * leaf, a)


def tree_axpy(scalar, a, b):
    """`scalar * a + b`, leaf by leaf, in each leaf's dtype (the scalar is cast first)."""
    return jtu.tree_map(
        lambda x, y: (jnp.asarray(scalar, x.dtype) * x + y).astype(y.dtype), a, b
    )


def tree_vdot(a, b):
    """Euclidean inner product `sum_i a_i b_i` of two pytrees of the same structure."""
    leaves = [
        jnp.vdot(x, y)
        for x, y in zip(jtu.tree_leaves(a), jtu.tree_leaves(b), strict=True)
    ]
    return sum(leaves[1:], leaves[0])


def tree_zeros_like(a):
    return jtu.tree_map(jnp.zeros_like, a)


def basis(x):
    """The standard basis of `R^d` for a flat point `x`, one basis vector per row."""
    return jnp.eye(x.shape[0], dtype=x.dtype)


def on_basis(fn, x):
    """Stack `fn(e_j)` over the basis vectors `e_j` as columns: the matrix of a linear map.

    `fn` is linear in its argument; vmapping it over the basis is how every dense
    object in geomhess is derived from its matrix-free form (one formula, one place).
    """
    return jax.vmap(fn, out_axes=-1)(basis(x))


def tree_random(sample, key, x):
    """One random array per leaf of `x`: `sample(key, shape, dtype)` with the leaf's
    shape and dtype and one key per leaf (split from `key` in leaf order), e.g.
    `sample=jax.random.rademacher` for Hutchinson probes on a network's parameters."""
    leaves, treedef = jtu.tree_flatten(x)
    keys = jr.split(key, len(leaves))
    return jtu.tree_unflatten(
        treedef,
        [
            sample(k, jnp.shape(leaf), jnp.result_type(leaf))
            for k, leaf in zip(keys, leaves, strict=True)
        ],
    )


# A block of `m` tangent vectors is stored as one pytree shaped like the point with
# a leading axis of length `m` on every leaf (row `i` of every leaf is vector `i`),
# so a Krylov basis is never raveled into one `(m, d)` array.


def rows_zeros(m, x):
    """A block of `m` zero vectors shaped like `x`: leaves of shape `(m, *leaf.shape)`."""
    return jtu.tree_map(lambda leaf: jnp.zeros((m, *jnp.shape(leaf)), leaf.dtype), x)


def rows_set(B, i, v, **at_kwargs):
    """The block `B` with row `i` replaced by the vector `v` (`at[i].set` per leaf)."""
    return jtu.tree_map(lambda rows, leaf: rows.at[i].set(leaf, **at_kwargs), B, v)


def rows_vdot(B, w):
    """`B w`: the `(m,)` Euclidean inner products of each row of `B` with `w`."""
    parts = [
        jnp.tensordot(rows, leaf, axes=jnp.ndim(leaf))
        for rows, leaf in zip(jtu.tree_leaves(B), jtu.tree_leaves(w), strict=True)
    ]
    return sum(parts[1:], parts[0])


def rows_combine(c, B):
    """`c^T B`: the combination `sum_i c_i B_i` of the rows, a vector (for `c` of
    shape `(m,)`) or a block (for `c` of shape `(m, k)`, one combination per column)."""
    return jtu.tree_map(lambda rows: jnp.tensordot(c, rows, axes=(0, 0)), B)
