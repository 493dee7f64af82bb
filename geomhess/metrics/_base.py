"""The abstract metric and the metric carried through a chart."""

import abc

import equinox as eqx
import jax

from .._core.tree import on_basis, tree_vdot
from ..charts import AbstractChart


class AbstractMetric(eqx.Module):
    """A Riemannian metric `G(x)` in some coordinates.

    Subclasses implement `matrix`, `mvp` and `raise_index`. `mvp` and `raise_index`
    are the matrix-free path (on metrics that support it, any pytree point);
    `matrix` is dense and meant for small `d`.
    """

    @abc.abstractmethod
    def matrix(self, x):
        """The metric's matrix `G(x)`, a dense `(d, d)` array."""

    @abc.abstractmethod
    def mvp(self, x, v):
        """The metric applied to a tangent vector, `G(x) v` (lowering its index)."""

    @abc.abstractmethod
    def raise_index(self, x, w):
        """Raise the index of a covector: `G(x)^{-1} w` (e.g. gradient from `df`)."""

    def inner(self, x, u, v):
        """The inner product `<u, v>_x = u^T G(x) v` of two tangent vectors at `x`."""
        return tree_vdot(u, self.mvp(x, v))

    def lower_index(self, x, v):
        """Lower the index of a tangent vector: `G(x) v`, the same as `mvp`."""
        return self.mvp(x, v)

    def reparametrize(self, chart) -> "Reparametrized":
        """The same metric in the chart's output coordinates `psi = chart(theta)`.

        Its matrix at `psi` is `J^{-T} G(theta) J^{-1}` with `J = d psi / d theta` at
        `theta = chart.inverse(psi)`; see [`Reparametrized`][geomhess.metrics.Reparametrized].
        """
        return Reparametrized(self, chart)


class Reparametrized(AbstractMetric):
    """A metric carried through a chart: `G~(psi) = J^{-T} G(theta) J^{-1}`.

    All three methods are matrix-free: `mvp` is one JVP and one VJP of
    `chart.inverse` around `metric.mvp`; `raise_index` is `J G^{-1} J^T w`, one VJP
    and one JVP of the chart around `metric.raise_index`, so no Jacobian is inverted.
    """

    metric: AbstractMetric
    chart: AbstractChart

    def matrix(self, y):
        return on_basis(lambda v: self.mvp(y, v), y)

    def mvp(self, y, v):
        x, pull = jax.vjp(self.chart.inverse, y)
        _, u = jax.jvp(self.chart.inverse, (y,), (v,))
        (out,) = pull(self.metric.mvp(x, u))
        return out

    def raise_index(self, y, w):
        x = self.chart.inverse(y)
        _, pull = jax.vjp(self.chart, x)
        (covector,) = pull(w)
        _, out = jax.jvp(self.chart, (x,), (self.metric.raise_index(x, covector),))
        return out
