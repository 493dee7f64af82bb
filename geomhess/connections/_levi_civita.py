"""The Levi-Civita connection of a metric, matrix-free through the Koszul formula."""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .._core.checks import (
    check_point,
    cholesky_factor,
    nonfinite,
    nonfinite_or_not_pd_msg,
    raise_if,
)
from .._core.tree import basis, tree_add, tree_scale, tree_sub, tree_vdot
from ..metrics import AbstractMetric
from ._base import AbstractConnection


class LeviCivita(AbstractConnection):
    """The Levi-Civita connection of a metric: torsion-free and metric-compatible.

    With `Gamma_{l,ij} = 1/2 (d_i g_lj + d_j g_li - d_l g_ij)` and
    `Gamma^k_ij = g^{kl} Gamma_{l,ij}`, both contractions reduce to derivatives of
    the metric-vector product `x -> G(x) u`:

    - `contract(x, u, v) = G^{-1} 1/2 [(D_u G) v + (D_v G) u - grad_x <u, G(x) v>]`;
    - `contract_covector(x, v, w) = 1/2 [grad_x <w~, G(x) v> + (D_v G) w~ - (D_w~ G) v]`
      with `w~ = G^{-1} w`.

    Each costs one `raise_index`, two JVPs and one VJP of the metric; no Christoffel
    array and, for matrix-free metrics, no `d x d` matrix is formed.
    """

    metric: AbstractMetric

    def _directional(self, x, direction, u):
        """`(D_direction G) u`: the derivative of `x -> G(x) u` along `direction`."""
        return jax.jvp(lambda x_: self.metric.mvp(x_, u), (x,), (direction,))[1]

    def _gradient_of_inner(self, x, u, v):
        """`grad_x <u, G(x) v>` with `u`, `v` held fixed."""
        return jax.grad(lambda x_: tree_vdot(u, self.metric.mvp(x_, v)))(x)

    def contract(self, x, u, v):
        lowered = tree_sub(
            tree_add(self._directional(x, u, v), self._directional(x, v, u)),
            self._gradient_of_inner(x, u, v),
        )
        return self.metric.raise_index(x, tree_scale(0.5, lowered))

    def christoffel(self, x):
        """The dense symbols by the Koszul formula on the metric's Jacobian.

        `Gamma_{l,ij} = 1/2 (d_i g_lj + d_j g_li - d_l g_ij)` from `d` JVPs of
        `x -> G(x)`, then `G^{-1}` from one Cholesky factorization, applied to the
        `d(d+1)/2` pairs `i <= j`; the same numbers as `contract` on the basis pairs
        (tested), at a fraction of the cost. Raises if `x` holds NaN or inf, or if
        `G(x)` is not positive definite.
        """
        check_point("christoffel", x, flat=True)
        gamma, bad = christoffel_and_flag(self.metric, x)
        return raise_if(gamma, bad, nonfinite_or_not_pd_msg("christoffel"))

    def contract_covector(self, x, v, w):
        raised = self.metric.raise_index(x, w)
        return tree_scale(
            0.5,
            tree_sub(
                tree_add(
                    self._gradient_of_inner(x, raised, v),
                    self._directional(x, v, raised),
                ),
                self._directional(x, raised, v),
            ),
        )


def lowered_christoffel(metric: AbstractMetric, x):
    """`G(x)` and the Christoffel symbols of the first kind, `Gamma_{l,ij}`.

    `Gamma_{l,ij} = 1/2 (d_i g_lj + d_j g_li - d_l g_ij)`, indexed `[l, i, j]`, from
    one vmapped `jax.jvp` of `x -> G(x)` (which also returns `G` itself). Raising `l`
    gives `christoffel`; contracting `l` with a vector needs no inverse at all
    (`Gamma^k_ij df_k = Gamma_{l,ij} (G^{-1} df)^l`, as `covariant_hessian` does).
    """
    # d_metric[l, j, k] = d_k g_lj, one JVP per basis vector.
    G, d_metric = jax.vmap(
        lambda e: jax.jvp(metric.matrix, (x,), (e,)), out_axes=(None, -1)
    )(basis(x))
    lowered = 0.5 * (
        jnp.einsum("lji->lij", d_metric) + d_metric - jnp.einsum("ijl->lij", d_metric)
    )
    return G, lowered


def christoffel_and_flag(metric: AbstractMetric, x):
    """`LeviCivita(metric).christoffel(x)` with its run-time check not yet raised.

    Returns the `[k, i, j]` array and a flag: does `x` hold NaN or inf, or is `G(x)`
    not positive definite?
    """
    G, lowered = lowered_christoffel(metric, x)
    L, not_pd = cholesky_factor(G)
    # G^{-1} = L^{-T} L^{-1}: one triangular solve and one product.
    L_inv = jsl.solve_triangular(L, basis(x), lower=True)
    # The symbols are symmetric in (i, j): raise the d(d+1)/2 pairs i <= j only and
    # gather the full array from them (half the d^4 product; exactly symmetric).
    d = x.shape[0]
    upper_i, upper_j = np.triu_indices(d)
    pair = np.empty((d, d), np.int32)
    pair[upper_i, upper_j] = pair[upper_j, upper_i] = np.arange(upper_i.size)
    raised = (L_inv.T @ L_inv) @ lowered[:, upper_i, upper_j]
    return raised[:, pair], nonfinite(x) | not_pd
