"""Scalar fields: functions on the manifold, stored in some coordinates."""

from collections.abc import Callable

import equinox as eqx
import jax

from ..charts import AbstractChart


class ScalarField(eqx.Module):
    """A function on the manifold written in some coordinates, e.g. a loss `L(theta)`.

    `fn` maps a point (an array or any pytree) to a scalar.

    Example:
        ```python
        loss = gh.ScalarField(lambda th: 0.5 * th @ th)
        loss_psi = loss.reparametrize(gh.charts.Polar())  # the same field in (r, alpha)
        ```
    """

    fn: Callable

    def __call__(self, x):
        """The value of the field at `x`."""
        return self.fn(x)

    def differential(self, x):
        """The differential `df` at `x`: a covector (the calculus gradient), one VJP."""
        return jax.grad(self.fn)(x)

    def reparametrize(self, chart: AbstractChart) -> "ScalarField":
        """The same field in the chart's output coordinates: `f o chart.inverse`."""
        return ScalarField(_ThroughInverse(self.fn, chart))


class _ThroughInverse(eqx.Module):
    fn: Callable
    chart: AbstractChart

    def __call__(self, y):
        return self.fn(self.chart.inverse(y))
