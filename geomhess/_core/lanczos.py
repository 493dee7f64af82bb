"""Lanczos in the metric's inner product, on pytrees (the Krylov core).

The shape operator `E = G^{-1} H` (with `H` the covariant Hessian, symmetric, and
`G` the metric, symmetric positive definite) is not symmetric, but it is
self-adjoint in the inner product `<u, v>_G = u^T G v`. Lanczos run in that inner
product (Parlett, *The Symmetric Eigenvalue Problem*, sec. 15.11, "B-Lanczos")
builds a `G`-orthonormal basis `V` of a Krylov space and a symmetric tridiagonal
`T = V^T H V` whose eigenvalues (Ritz values) approximate those of `E`, i.e. the
generalized eigenvalues of the pencil `(H, G)`. No `d x d` matrix is formed: each
step costs one application of `H` and one of `G^{-1}`, and the images `Z = G V` are
carried along (as `G w = H v - sum_j c_j G v_j`), so `G` itself is applied only when
the iteration restarts. For `G = I` (the naive, calculus quantities) `Z = V` is not
stored.

Vectors are pytrees shaped like the point (a network's parameters as they are),
and the basis is a block of rows (`_core.tree.rows_*`: every leaf gets a leading
axis of length `m`), `O(m d)` memory. Nothing is raveled inside the loop: on the
1M-parameter MLP of `benchmarks/profile_curvature.md` (section 3), raveling each
product and unraveling each basis vector cost about 0.6x of the chain of products
on XLA:CPU, because the slices of a raveled vector fed the network's matrix
products and its concatenation was fused with their consumers.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float

from .tree import (
    rows_combine,
    rows_set,
    rows_vdot,
    rows_zeros,
    tree_random,
    tree_scale,
    tree_sub,
    tree_vdot,
)


class LanczosDecomposition(NamedTuple):
    """The output of [`lanczos`][]: `E V^T ~= V^T T` in the `G` inner product.

    Attributes:
        basis: `V`, a block of `m` `G`-orthonormal vectors: a pytree shaped like
            the start vector with a leading axis `m` on every leaf.
        alphas: the diagonal of `T`, shape `(m,)`.
        offdiag: the off-diagonal of `T`, shape `(m - 1,)` (zero where the
            iteration restarted after an invariant subspace was found).
        beta_last: the `G`-norm of the last residual vector (the coupling to the
            next, uncomputed, basis vector).
        dropped: the `G`-norms of residual vectors dropped at restarts, shape
            `(m - 1,)` (zero where there was no restart); they enter the error
            bounds.
        start_norm: the `G`-norm of the start vector.
    """

    basis: Any
    alphas: Float[Array, " m"]
    offdiag: Float[Array, " m-1"]
    beta_last: Float[Array, ""]
    dropped: Float[Array, " m-1"]
    start_norm: Float[Array, ""]


def _orthogonalize(w, Gw, V, Z):
    # Classical Gram-Schmidt applied twice against every stored vector ("twice is
    # enough", Giraud et al. 2005): full reorthogonalization keeps `V` G-orthonormal
    # to working precision, so no spurious copies of converged Ritz values appear.
    # Rows of `V` not yet filled are zero and contribute nothing. `Z = None` means
    # `G = I` (then `Z = V` and `Gw = w`). The image is updated once with both
    # passes' coefficients (the update is linear in them), which saves one of the
    # memory-bound passes over the `(m, d)` blocks: five instead of six.
    B = V if Z is None else Z
    c1 = rows_vdot(B, w)
    w = tree_sub(w, rows_combine(c1, V))
    c2 = rows_vdot(B, w)
    w = tree_sub(w, rows_combine(c2, V))
    Gw = w if Z is None else tree_sub(Gw, rows_combine(c1 + c2, Z))
    return w, Gw


def lanczos(
    apply_h: Callable,
    apply_g_inv: Callable | None,
    apply_g: Callable | None,
    v0,
    num_iterations: int,
    key,
) -> LanczosDecomposition:
    """`m` steps of Lanczos for `E = G^{-1} H` in the `G` inner product.

    Starting from `v1 = v0 / ||v0||_G`, each step computes `w = G^{-1} H v_j`,
    `alpha_j = v_j^T H v_j`, orthogonalizes `w` against all previous `v_i` in the
    `G` inner product (twice), and sets `beta_j = ||w||_G`, `v_{j+1} = w / beta_j`.
    When `beta_j <= sqrt(eps) ||E v_j||_G` the Krylov space is (numerically)
    invariant: the iteration restarts from a random vector `G`-orthogonal to the
    basis, `T` gets a zero there, and `beta_j` is recorded in `dropped`. So with
    `m = d` the Ritz values are all the eigenvalues, even with repeated ones.

    The steps run in a loop of exactly `m` trips, whose steps do nothing once
    the iteration has broken down or filled all `m` rows; an outer
    `lax.while_loop` runs it from `v0`, and again from a random vector after each
    breakdown (rare: an invariant subspace; the trips after it are wasted). A
    fixed trip count matters under `vmap` (SLQ's probes in one batch): a loop
    whose exit depends on the data selects its whole state, the `(m, d)` basis
    included, after every step (SLQ with 4 probes x 20 steps in one batch on the
    1M MLP: 4.3 s with that loop, 3.2 s with the fixed one). The step is traced
    once.
    The basis is never an operand of a per-step conditional either (which made
    XLA copy it at every step, about doubling the cost of a step at network
    scale).

    Args:
        apply_h: `v -> H v` on vectors shaped like `v0` (symmetric `H`).
        apply_g_inv: `w -> G^{-1} w`, or `None` for `G = I`.
        apply_g: `v -> G v` (used once at the start and at restarts), or `None`
            for `G = I`. With `G = I` (both `None`) the images `Z = G V` are not
            stored, which saves one `(m, d)` array.
        v0: the start vector, a pytree of floating arrays of one dtype, not
            `G`-orthogonal to the wanted eigenvectors (a random vector is not,
            almost surely).
        num_iterations: `m <= d`, a static int.
        key: a `jax.random` key for restarts.

    Returns:
        A [`LanczosDecomposition`][]. Cost: `m` applications of `H` and of `G^{-1}`,
        `1 +` (number of restarts) of `G`, and `O(m^2 d)` flops.
    """
    if (apply_g is None) != (apply_g_inv is None):
        raise ValueError(
            "`lanczos`: pass both `apply_g` and `apply_g_inv`, or neither (G = I)."
        )
    euclidean = apply_g is None
    m = num_iterations
    dtype = jnp.result_type(*jtu.tree_leaves(v0))
    tol = float(np.sqrt(np.finfo(dtype).eps))

    state = dict(
        V=rows_zeros(m, v0),
        v=jtu.tree_map(jnp.zeros_like, v0),  # row `j` of `V`, carried (see `step`)
        Z=None if euclidean else rows_zeros(m, v0),
        alphas=jnp.zeros((m,), dtype),
        betas=jnp.zeros((m,), dtype),
        restarted=jnp.zeros((m,), bool),
        start_norm=jnp.zeros((), dtype),
        j=jnp.zeros((), jnp.int32),  # the row of the current basis vector
        broke=jnp.zeros((), bool),
    )

    def start(s):
        # Row `j` of the basis: `v0` normalized (j = 0), or after a breakdown a
        # random vector G-orthogonalized against the basis.
        j = s["j"]
        fresh = tree_random(jr.normal, jr.fold_in(key, j), v0)
        r = jtu.tree_map(lambda a, b: jnp.where(j == 0, a, b), v0, fresh)
        r, Gr = _orthogonalize(r, r if euclidean else apply_g(r), s["V"], s["Z"])
        norm = jnp.sqrt(jnp.maximum(tree_vdot(r, Gr), 0))
        inverse = 1 / jnp.where(norm > 0, norm, 1)
        s = dict(s)
        s["v"] = tree_scale(inverse, r)
        s["V"] = rows_set(s["V"], j, s["v"])
        if not euclidean:
            s["Z"] = rows_set(s["Z"], j, tree_scale(inverse, Gr))
        s["start_norm"] = jnp.where(j == 0, norm, s["start_norm"])
        s["broke"] = jnp.zeros((), bool)
        return s

    def step(_, s):
        # One step from row `j` (the current `v`); a no-op on the state once the
        # iteration has broken down (`broke`) or filled all `m` rows, so that it
        # runs in a loop of exactly `m` trips (see the docstring).
        # `v` is carried rather than read as `V[i]`: XLA fuses a slice of `V` into
        # the many consumers of `v` inside `apply_h`, and then cannot update `V` in
        # place, so it copied the whole `(m, d)` basis twice per step. On the
        # 1M-parameter MLP of `benchmarks/profile_curvature.md` (section 3) this
        # took 20 Lanczos steps from 3.58x to 2.98x the time of 20 products.
        i, V, Z, v = s["j"], s["V"], s["Z"], s["v"]
        active = ~s["broke"] & (i < m)
        h = apply_h(v)
        w = h if euclidean else apply_g_inv(h)
        alpha = tree_vdot(v, h)
        image_norm = jnp.sqrt(jnp.maximum(tree_vdot(h, w), 0))
        # `G w = H v` before orthogonalization; `_orthogonalize` keeps the pair
        # consistent, so `G` is never applied here.
        w, Gw = _orthogonalize(w, h, V, Z)
        beta = jnp.sqrt(jnp.maximum(tree_vdot(w, Gw), 0))
        breakdown = beta <= tol * image_norm
        # On a breakdown (or once broken) row `i + 1` stays zero, and the outer
        # loop's restart fills it; at the last step `i + 1 == m` is out of bounds
        # and the write is dropped. `where`, not a
        # product, so that nothing computed from a zero `v` can write a NaN.
        keep = active & ~breakdown & (beta > 0)
        inverse = 1 / jnp.where(beta > 0, beta, 1)

        def next_row(u):
            return jtu.tree_map(lambda a: jnp.where(keep, a * inverse, 0), u)

        s = dict(s)
        s["v"] = next_row(w)
        s["V"] = rows_set(V, i + 1, s["v"], mode="drop")
        if not euclidean:
            s["Z"] = rows_set(Z, i + 1, next_row(Gw), mode="drop")
        for name, value in (
            ("alphas", alpha),
            ("betas", beta),
            ("restarted", breakdown),
        ):
            new = jnp.where(active, value, s[name][jnp.minimum(i, m - 1)])
            s[name] = s[name].at[i].set(new, mode="drop")
        s["j"] = jnp.where(active, i + 1, i)
        s["broke"] = s["broke"] | (active & breakdown)
        return s

    def run(s):
        return jax.lax.fori_loop(0, m, step, start(s))

    state = jax.lax.while_loop(lambda s: s["j"] < m, run, state)
    betas, restarted = state["betas"], state["restarted"]
    zero = jnp.zeros((), dtype)
    return LanczosDecomposition(
        basis=state["V"],
        alphas=state["alphas"],
        offdiag=jnp.where(restarted, zero, betas)[: m - 1],
        beta_last=betas[m - 1],
        dropped=jnp.where(restarted, betas, zero)[: m - 1],
        start_norm=state["start_norm"],
    )


def tridiagonal_eigh(decomposition: LanczosDecomposition):
    """Ritz values `theta` (ascending), eigenvectors `S` of `T`, and error bounds.

    The bound for Ritz pair `i` is the `G`-norm of the residual of the Ritz vector
    `y_i = V^T S[:, i]`: `||E y_i - theta_i y_i||_G <= |beta_last S[m-1, i]| +
    sum_j dropped_j |S[j, i]|`. Since `E` is `G`-self-adjoint, some eigenvalue of `E`
    lies within that distance of `theta_i` (in exact arithmetic; rounding adds
    `O(eps ||E||)`, so the bounds are floored at `eps ||T||`). The bound is
    invariant under a change of coordinates.
    """
    alphas = decomposition.alphas
    T = (
        jnp.diag(alphas)
        + jnp.diag(decomposition.offdiag, 1)
        + jnp.diag(decomposition.offdiag, -1)
    )
    theta, S = jnp.linalg.eigh(T)
    residuals = jnp.abs(decomposition.beta_last * S[-1]) + jnp.abs(
        decomposition.dropped
    ) @ jnp.abs(S[:-1])
    # A computed residual is never below rounding, `eps ||T||`: floor it there, so
    # a converged Ritz value reports a meaningful bound rather than exactly 0.
    floor = jnp.finfo(alphas.dtype).eps * jnp.max(jnp.abs(theta))
    return theta, S, jnp.maximum(residuals, floor)
