"""The abstract chart and the charts built from other charts."""

import abc

import equinox as eqx
import jax

from .._core.checks import check_like, check_point


class AbstractChart(eqx.Module):
    """A reparametrization: a diffeomorphism `theta -> psi` between coordinate systems.

    Subclasses implement `__call__` (`theta -> psi`) and `inverse` (`psi -> theta`).
    Points outside the chart's domain raise through `equinox.error_if` (eagerly and
    under `jit`; see the conventions page for `EQX_ON_ERROR`).

    Charts compose left to right: `(a >> b)(x) == b(a(x))`.
    """

    @abc.abstractmethod
    def __call__(self, x):
        """Map a point from input coordinates `theta` to output coordinates `psi`."""

    @abc.abstractmethod
    def inverse(self, y):
        """Map a point from output coordinates `psi` back to input coordinates `theta`."""

    def jacobian(self, x):
        """The Jacobian `J = d psi / d theta` at `x`, a dense `(d, d)` array."""
        check_point("AbstractChart.jacobian", x, flat=True)
        return jax.jacfwd(self)(x)

    def push_vector(self, x, v):
        """Transport a tangent vector: returns `(psi, J v)` (one JVP)."""
        check_like("AbstractChart.push_vector", "v", v, x)
        return jax.jvp(self, (x,), (v,))

    def pull_covector(self, x, w):
        """Pull back a covector given in `psi` coordinates to `theta`: `J^T w` (one VJP)."""
        y, vjp = jax.vjp(self, x)
        check_like("AbstractChart.pull_covector", "w", w, y)
        (out,) = vjp(w)
        return out

    def __rshift__(self, other: "AbstractChart") -> "Compose":
        if not isinstance(other, AbstractChart):
            return NotImplemented
        return Compose(self, other)


class Compose(AbstractChart):
    """The composition `second o first`: `x -> second(first(x))`.

    `Compose(a, b)` is what `a >> b` builds.
    """

    first: AbstractChart
    second: AbstractChart

    def __call__(self, x):
        return self.second(self.first(x))

    def inverse(self, y):
        return self.first.inverse(self.second.inverse(y))


class Inverse(AbstractChart):
    """The inverse of a chart: `psi -> theta`."""

    chart: AbstractChart

    def __call__(self, x):
        return self.chart.inverse(x)

    def inverse(self, y):
        return self.chart(y)
