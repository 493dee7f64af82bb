"""The Levi-Civita connection of a metric, matrix-free through the Koszul formula."""

import jax
import jax.numpy as jnp

from .._checks import check_point
from .._tree import on_basis, tree_add, tree_scale, tree_sub, tree_vdot
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
        `x -> G(x)`, then `G^{-1}` from `d` raises and one product; the same numbers
        as `contract` on the basis pairs (tested), at a fraction of the cost.
        """
        check_point("christoffel", x, flat=True)
        # d_metric[l, j, k] = d_k g_lj
        d_metric = on_basis(lambda e: jax.jvp(self.metric.matrix, (x,), (e,))[1], x)
        lowered = 0.5 * (
            jnp.einsum("lji->lij", d_metric)
            + d_metric
            - jnp.einsum("ijl->lij", d_metric)
        )
        # `G^{-1}` from `d` raises (one factorization of `G(x)`, shared by the
        # columns under vmap), then one product: `d` solves instead of `d^2`.
        inverse = on_basis(lambda e: self.metric.raise_index(x, e), x)
        return jnp.einsum("kl,lij->kij", inverse, lowered)

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
