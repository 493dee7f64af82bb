"""The abstract connection, the flat one, and a connection carried through a chart."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .._core.checks import check_point
from .._core.tree import on_basis, tree_add, tree_zeros_like
from ..charts import AbstractChart


class AbstractConnection(eqx.Module):
    """An affine connection in some coordinates, given by its Christoffel symbols.

    Subclasses implement two contractions, never the `d^3` array itself:

    - `contract(x, u, v)`, the vector `Gamma^k_ij u^i v^j` (indexed by `k`);
    - `contract_covector(x, v, w)`, the covector `Gamma^k_ij v^j w_k` (indexed by
      `i`), the term a covariant Hessian-vector product needs.

    Both work on any pytree point where the connection allows it. The dense array
    `christoffel(x)` (index order `[k, i, j]`) is derived from `contract`.
    """

    @abc.abstractmethod
    def contract(self, x, u, v):
        """`Gamma^k_ij(x) u^i v^j`: the connection contracted with two tangent vectors."""

    @abc.abstractmethod
    def contract_covector(self, x, v, w):
        """`Gamma^k_ij(x) v^j w_k`, a covector in `i`: the connection with a vector and a
        covector."""

    @abc.abstractmethod
    def christoffel(self, x):
        """The dense Christoffel symbols `Gamma[k, i, j] = Gamma^k_ij(x)` (small `d`)."""

    def reparametrize(self, chart: AbstractChart) -> "Reparametrized":
        """The same connection in the chart's output coordinates (the inhomogeneous law);
        see [`Reparametrized`][geomhess.connections.Reparametrized]."""
        return Reparametrized(self, chart)


def christoffel_from_contract(connection: AbstractConnection, x):
    """The dense array `Gamma[k, i, j]` from `contract` on all basis pairs.

    The generic dense path, derived from the matrix-free one: `d^2` contractions.
    Connections with a cheaper dense form (Levi-Civita) use it as their test oracle.
    """
    check_point("christoffel", x, flat=True)
    # on_basis puts the basis index last: inner gives [k, j], outer [k, j, i].
    dense = on_basis(lambda u: on_basis(lambda v: connection.contract(x, u, v), x), x)
    return jnp.swapaxes(dense, 1, 2)


def contract_covector_by_vjp(connection: AbstractConnection, x, v, w):
    """`Gamma^k_ij v^j w_k` as the VJP of the linear map `u -> contract(x, u, v)`.

    The generic way to get the covector contraction of any connection: one VJP
    through `contract`. Connections with a cheaper closed form (Levi-Civita) use it.
    """
    _, pull = jax.vjp(lambda u: connection.contract(x, u, v), tree_zeros_like(v))
    (out,) = pull(w)
    return out


class Flat(AbstractConnection):
    """The flat connection of Cartesian coordinates: `Gamma = 0`, on any pytree."""

    def contract(self, x, u, v):
        return tree_zeros_like(v)

    def contract_covector(self, x, v, w):
        return tree_zeros_like(w)

    def christoffel(self, x):
        check_point("christoffel", x, flat=True)
        d = x.shape[0]
        return jnp.zeros((d, d, d), x.dtype)


class Reparametrized(AbstractConnection):
    """A connection carried through a chart `psi = phi(theta)`: the inhomogeneous law.

    In `psi` coordinates,
    `Gamma~^k_ij = (dpsi^k/dtheta^o) [Gamma^o_mn (dtheta^m/dpsi^i)(dtheta^n/dpsi^j)
    + d^2 theta^o / dpsi^i dpsi^j]`. Contracted with `u, v` this is
    `J (Gamma(Dphi^{-1} u, Dphi^{-1} v) + D^2 phi^{-1}[u, v])`: nested JVPs of
    `chart.inverse` and one JVP of the chart, never the dense arrays.
    """

    connection: AbstractConnection
    chart: AbstractChart

    def contract(self, y, u, v):
        inverse = self.chart.inverse

        def inverse_jvp_u(y_):
            return jax.jvp(inverse, (y_,), (u,))[1]

        x, v_theta = jax.jvp(inverse, (y,), (v,))
        u_theta, second = jax.jvp(inverse_jvp_u, (y,), (v,))
        inner = tree_add(self.connection.contract(x, u_theta, v_theta), second)
        return jax.jvp(self.chart, (x,), (inner,))[1]

    def contract_covector(self, y, v, w):
        return contract_covector_by_vjp(self, y, v, w)

    def christoffel(self, y):
        return christoffel_from_contract(self, y)
