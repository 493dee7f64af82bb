"""Charts given by closed-form maps: identity, affine, elementwise and from functions."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float

from .._core.checks import error_if
from ._base import AbstractChart


class Identity(AbstractChart):
    """The identity chart `psi = theta`, on any pytree."""

    def __call__(self, x):
        return x

    def inverse(self, y):
        return y


class Affine(AbstractChart):
    """The affine chart `psi = A theta + b` on `R^d`.

    `A` must be invertible: a concrete `A` whose condition number exceeds
    `1 / eps` of its dtype is rejected with `ValueError` at construction.
    """

    matrix: Float[Array, "d d"]
    offset: Float[Array, " d"]

    def __init__(self, matrix, offset=None):
        matrix = jnp.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(
                f"`Affine`: `matrix` must be square (d, d), got shape {matrix.shape}."
            )
        offset = jnp.zeros(matrix.shape[0], matrix.dtype) if offset is None else offset
        offset = jnp.asarray(offset)
        if offset.shape != matrix.shape[:1] or offset.dtype != matrix.dtype:
            raise ValueError(
                f"`Affine`: `offset` has shape {offset.shape} and dtype {offset.dtype}, "
                f"expected shape {matrix.shape[:1]} and dtype {matrix.dtype}."
            )
        if not isinstance(matrix, jax.core.Tracer):
            cond = np.linalg.cond(np.asarray(matrix))
            if not np.isfinite(cond) or cond * jnp.finfo(matrix.dtype).eps > 1:
                raise ValueError(
                    f"`Affine`: `matrix` is singular or numerically singular "
                    f"(condition number {cond:.3g}); an affine chart must be invertible."
                )
        self.matrix = matrix
        self.offset = offset

    def __call__(self, x):
        return self.matrix @ x + self.offset

    def inverse(self, y):
        return jnp.linalg.solve(self.matrix, y - self.offset)


def _exp_inverse(y):
    y = error_if(
        y,
        jnp.any(~(y > 0)),
        "`Elementwise.exp`: the point is outside the chart's range: `log` needs "
        "every coordinate > 0.",
    )
    return jnp.log(y)


def _softplus_inverse(y):
    y = error_if(
        y,
        jnp.any(~(y > 0)),
        "`Elementwise.softplus`: the point is outside the chart's range: the "
        "inverse softplus needs every coordinate > 0.",
    )
    # log(expm1(y)) written to stay accurate for large y.
    return y + jnp.log(-jnp.expm1(-y))


def _log_forward(x):
    x = error_if(
        x,
        jnp.any(~(x > 0)),
        "`Elementwise.log`: the point is outside the chart's domain: `log` needs "
        "every coordinate > 0.",
    )
    return jnp.log(x)


class Elementwise(AbstractChart):
    """A chart applying a scalar diffeomorphism to every coordinate (on any pytree).

    Build it with a named constructor (`Elementwise.exp()`, `.log()`, `.softplus()`)
    or from a pair of scalar functions, `Elementwise(forward, inverse)`. For a
    constant rescaling use [`Scale`][geomhess.charts.Scale].
    """

    forward: Callable
    backward: Callable

    def __init__(self, forward: Callable, inverse: Callable):
        self.forward = forward
        self.backward = inverse

    @classmethod
    def exp(cls) -> "Elementwise":
        """`psi = exp(theta)`, defined on all of `R^d`, with range `psi > 0`."""
        return cls(jnp.exp, _exp_inverse)

    @classmethod
    def log(cls) -> "Elementwise":
        """`psi = log(theta)`, defined for `theta > 0`."""
        return cls(_log_forward, jnp.exp)

    @classmethod
    def softplus(cls) -> "Elementwise":
        """`psi = log(1 + exp(theta))`, with range `psi > 0`."""
        return cls(jax.nn.softplus, _softplus_inverse)

    def __call__(self, x):
        return jtu.tree_map(self.forward, x)

    def inverse(self, y):
        return jtu.tree_map(self.backward, y)


class Scale(AbstractChart):
    """`psi = scale * theta`, leaf by leaf.

    `scale` is a nonzero number, an array of nonzero entries shaped like the point
    (an elementwise rescaling), or a pytree prefix of the point holding one number
    per subtree: with per-layer scales `{"W1": alpha, "W2": 1 / alpha}` this is the
    rescaling `(W1, W2) -> (alpha W1, W2 / alpha)` of Dinh et al. (2017), under which
    a ReLU network computes the same function.
    """

    scale: object

    def __call__(self, x):
        return _map_scale(lambda s, leaf: s * leaf, self.scale, x)

    def inverse(self, y):
        return _map_scale(lambda s, leaf: leaf / s, self.scale, y)


def _map_scale(op, scale, tree):
    def apply(s, subtree):
        return jtu.tree_map(lambda leaf: op(jnp.asarray(s, leaf.dtype), leaf), subtree)

    if isinstance(scale, (int, float)) or (
        isinstance(scale, (jax.Array, np.ndarray)) and scale.ndim == 0
    ):
        return apply(scale, tree)
    return jtu.tree_map(apply, scale, tree)


class FromFunctions(AbstractChart):
    """A chart from a pair of plain functions, `forward: theta -> psi` and its inverse.

    The two must be inverse to each other on the domain you use; geomhess does not
    check this (a test like `chart.inverse(chart(x)) == x` at your points is cheap).
    """

    forward: Callable
    backward: Callable

    def __init__(self, forward: Callable, inverse: Callable):
        self.forward = forward
        self.backward = inverse

    def __call__(self, x):
        return self.forward(x)

    def inverse(self, y):
        return self.backward(y)
