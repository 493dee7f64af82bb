"""Polar and n-dimensional spherical coordinates."""

import jax.numpy as jnp

from .._core.checks import check_point, raise_if
from ._base import AbstractChart


_ORIGIN_MSG = (
    "the point is outside the chart's domain: the angles are undefined at the origin "
    "(and, for `Spherical`, on the axis where the trailing coordinates all vanish)."
)


class Polar(AbstractChart):
    """Cartesian `(x, y)` to polar `(r, alpha)` coordinates.

    `r = sqrt(x^2 + y^2) > 0` and `alpha = atan2(y, x)` in `(-pi, pi]`. The chart is
    smooth away from the origin; the jump of `alpha` across the negative x axis does
    not affect derivatives. The origin raises an error (through `equinox.error_if`).
    """

    def __call__(self, x):
        check_point("Polar", x, flat=True)
        if x.shape != (2,):
            raise ValueError(f"`Polar`: expected a point of shape (2,), got {x.shape}.")
        # The check sits on the input: on `r`, it would be dropped under `jit` from
        # a `jax.vjp` or `jacrev` that discards the chart's value (then NaN).
        x = raise_if(x, (x[0] == 0) & (x[1] == 0), f"`Polar`: {_ORIGIN_MSG}")
        r = jnp.sqrt(x[0] ** 2 + x[1] ** 2)
        return jnp.stack([r, jnp.arctan2(x[1], x[0])])

    def inverse(self, y):
        check_point("Polar.inverse", y, flat=True)
        if y.shape != (2,):
            raise ValueError(
                f"`Polar.inverse`: expected a point of shape (2,), got {y.shape}."
            )
        y = raise_if(
            y, ~(y[0] > 0), "`Polar.inverse`: the radius must be positive (r > 0)."
        )
        r = y[0]
        return jnp.stack([r * jnp.cos(y[1]), r * jnp.sin(y[1])])


class Spherical(AbstractChart):
    """Cartesian `x in R^n` to hyperspherical `(r, phi_1, ..., phi_{n-1})`, any `n >= 2`.

    `x_1 = r cos phi_1`, `x_k = r sin phi_1 ... sin phi_{k-1} cos phi_k`, and
    `x_n = r sin phi_1 ... sin phi_{n-1}`, with `phi_1 .. phi_{n-2}` in `(0, pi)` and
    `phi_{n-1}` in `(-pi, pi]`. For `n = 2` this is `Polar`; for `n = 3`,
    `(r, polar angle, azimuth)` with the polar angle measured from the `x_1` axis.
    """

    def __call__(self, x):
        check_point("Spherical", x, flat=True)
        n = x.shape[0]
        if n < 2:
            raise ValueError(
                f"`Spherical`: needs n >= 2, got a point of shape {x.shape}."
            )
        # tail[k] = |x_{k:}| for k < n - 1 (|x_n| alone is never needed, and its sqrt
        # would put a NaN into reverse-mode derivatives where x_n = 0).
        # Checked on the input (see `Polar`): the trailing coordinates x_2..x_n all 0.
        x = raise_if(x, jnp.all(x[1:] == 0), f"`Spherical`: {_ORIGIN_MSG}")
        tail = jnp.sqrt(jnp.cumsum((x**2)[::-1])[::-1][: n - 1])
        # atan2 rather than arccos: it stays accurate near the poles.
        angles = jnp.arctan2(tail[1:], x[: n - 2])
        last = jnp.arctan2(x[n - 1], x[n - 2])
        return jnp.concatenate([tail[:1], angles, last[None]])

    def inverse(self, y):
        check_point("Spherical.inverse", y, flat=True)
        y = raise_if(
            y, ~(y[0] > 0), "`Spherical.inverse`: the radius must be positive (r > 0)."
        )
        r = y[0]
        angles = y[1:]
        sines = jnp.concatenate([jnp.ones((1,), y.dtype), jnp.cumprod(jnp.sin(angles))])
        cosines = jnp.concatenate([jnp.cos(angles), jnp.ones((1,), y.dtype)])
        return r * sines * cosines
