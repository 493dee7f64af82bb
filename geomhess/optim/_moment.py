"""One step of the Riemannian momentum methods on one manifold leaf, and its fused
form on `Sphere` and `Stiefel`.

`rsgd` and `radam` differ only in scalars (how the moment mixes in the gradient, how
long the step is); the geometry of their step is shared and lives here:

1. the Riemannian gradient $g = \\operatorname{grad} f(x)$ and $\\|g\\|_x^2$;
2. the new moment $m' = k\\, m + a\\, g$ and the direction $d = b\\, m' + c\\, g$;
3. $(y, \\mathcal{T} m') = \\mathrm{retract\\_transport}(x, -s\\, d, m')$, with the step
   length $s$ a function of $\\|g\\|_x^2$ (Adam's second moment).

`moment_step` runs these with the manifold's own methods: each of them is one or
more passes over memory (on `Sphere(n)`, about eight reads or writes of an `n`-vector
for the projections, the norm, the retraction and the transport, where `optax.adam`
makes seven in all). On `Sphere` and `Stiefel` every vector involved lies in the span
of the three arrays $x$, $\\nabla f$ and $m$, with coefficients on the right (numbers
on the sphere, `(p, p)` matrices on Stiefel): the projection
$v - x\\, \\mathrm{sym}(x^\\top v)$, the polar retraction
$z (z^\\top z)^{-1/2}$ and the projection-transport only ever need the small Gram
matrix $[x, \\nabla f, m]^\\top [x, \\nabla f, m]$. So the fused form reads the three
arrays for the Gram matrix, runs the *same* formulas on the coefficients, and forms
$y$ and $\\mathcal{T} m'$ from the coefficients (on `Sphere` in one elementwise pass,
on `Stiefel` with one `(n, 3p) @ (3p, p)` product each, or an elementwise pass where
that was measured faster).
It equals `moment_step`'s generic path up to rounding (checked in the tests), and
is chosen by `functools.singledispatch` on the manifold's type, so the generic path
serves every other manifold (and `Stiefel` with many columns, where it is faster).
"""

import functools as ft
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from ..manifolds import Sphere, Stiefel
from ..manifolds._base import sym
from ..manifolds._functions import inv_sqrtm_sym
from . import _tree as mt


class MomentRule(NamedTuple):
    """The scalars of one step (each a number or a 0-d array).

    Attributes:
        keep: $k$, the weight of the old moment in the new one.
        mix: $a$, the weight of the Riemannian gradient in the new moment.
        along_moment: $b$, the weight of the new moment in the direction.
        along_gradient: $c$, the weight of the Riemannian gradient in the direction.
        length: a function of $\\|g\\|_x^2$ returning `(s, aux)`: the step length and
            anything else the optimizer wants back (Adam's second moment).
    """

    keep: Any
    mix: Any
    along_moment: Any
    along_gradient: Any
    length: Callable


@ft.singledispatch
def moment_step(manifold, x, egrad, moment, rule: MomentRule):
    """One step on one leaf: `(y, transported new moment, aux)`.

    `moment=None` means no moment (plain Riemannian gradient descent): the direction
    is `along_gradient * g` and the returned moment is `None`. This is the generic
    path, with the manifold's own methods (`manifold=None`: Euclidean); `Sphere` and
    `Stiefel` register a fused one.
    """
    return generic_moment_step(manifold, x, egrad, moment, rule)


def generic_moment_step(manifold, x, egrad, moment, rule: MomentRule):
    """`moment_step` with the manifold's methods (`egrad_to_rgrad`, `inner`,
    `retract_transport`), for any manifold."""
    rgrad = mt.tree_cast_like(mt.egrad_to_rgrad(manifold, x, egrad), x)
    dtype = mt.point_dtype(x)
    length, aux = rule.length(jnp.asarray(mt.inner(manifold, x, rgrad, rgrad), dtype))
    if moment is None:
        step = mt.tree_scale(-length * rule.along_gradient, rgrad)
        return mt.retract(manifold, x, step), None, aux
    new = mt.tree_lincomb(rule.keep, moment, rule.mix, rgrad)
    direction = mt.tree_lincomb(rule.along_moment, new, rule.along_gradient, rgrad)
    y, new = mt.retract_transport(manifold, x, mt.tree_scale(-length, direction), new)
    return y, mt.tree_cast_like(new, x), aux


def _span_step(arrays, p, rule, gram, combine):
    """The step computed on coefficients in `span(arrays)`, `arrays = [x, egrad]` or
    `[x, egrad, moment]`.

    A vector is `sum_i arrays[i] @ C[i]` with `(p, p)` blocks `C[i]`, stacked as a
    `(len(arrays) p, p)` matrix `C`; the ambient dot products of two vectors are
    `C^T K C'` with `K = gram(arrays)` the Gram matrix of `arrays`. The formulas
    are `Stiefel`'s (`Sphere`'s with `p = 1`): projection `v - x sym(x^T v)`, polar
    retraction `z (z^T z)^{-1/2}` and transport by projection at the new point.
    """
    k = len(arrays)
    dtype = arrays[0].dtype
    K = gram(arrays)
    eye = jnp.eye(p, dtype=dtype)
    unit = [
        jnp.zeros((k * p, p), dtype).at[i * p : (i + 1) * p].set(eye) for i in range(k)
    ]

    # The coefficient algebra works on matrices of a few dozen entries, with plain
    # `@`: XLA:CPU runs each as a small dot (about 2 us), where a broadcast-and-sum
    # form became a fused library reduction of about 15 us each (measured with
    # jax 0.10: the whole step 1.3x faster at `Stiefel(1000, 10)`).
    def dot(u, v):
        return u.T @ (K @ v)

    def to_tangent(base, v):
        return v - base @ sym(dot(base, v))

    def cast(value):
        return jnp.asarray(value, dtype)

    rgrad = to_tangent(unit[0], unit[1])
    length, aux = rule.length(jnp.trace(dot(rgrad, rgrad)))
    length = cast(length)
    if k == 2:
        direction = cast(rule.along_gradient) * rgrad
        new = None
    else:
        new = cast(rule.keep) * unit[2] + cast(rule.mix) * rgrad
        direction = cast(rule.along_moment) * new + cast(rule.along_gradient) * rgrad
    z = unit[0] - length * direction
    zz = dot(z, z)
    y = z / jnp.sqrt(zz) if p == 1 else z @ inv_sqrtm_sym(zz)
    if new is None:
        return combine(arrays, y), None, aux
    return combine(arrays, y), combine(arrays, to_tangent(y, new)), aux


@moment_step.register
def _(manifold: Sphere, x, egrad, moment, rule: MomentRule):
    manifold._check("moment_step", x)

    def gram(arrays):
        # One `dot` per pair: XLA:CPU runs these vector dots faster than one
        # `(n, 3)` product (whose operand it would first have to assemble).
        k = len(arrays)
        rows = [[None] * k for _ in range(k)]
        for i in range(k):
            for j in range(i, k):
                rows[i][j] = rows[j][i] = jnp.dot(arrays[i], arrays[j])
        return jnp.array(rows)

    def combine(arrays, c):
        # Elementwise, so the whole pass fuses into one loop (and with the
        # `apply_updates` that follows it in a jitted step).
        out = c[0, 0] * arrays[0]
        for i in range(1, len(arrays)):
            out = out + c[i, 0] * arrays[i]
        return out

    arrays = [x, egrad.astype(x.dtype)]
    if moment is not None:
        arrays.append(moment)
    return _span_step(arrays, 1, rule, gram, combine)


@moment_step.register
def _(manifold: Stiefel, x, egrad, moment, rule: MomentRule):
    manifold._check("moment_step", x)
    n, p = x.shape
    if p > _FUSED_MAX_P:
        return generic_moment_step(manifold, x, egrad, moment, rule)
    arrays = [x, egrad.astype(x.dtype)]
    if moment is not None:
        arrays.append(moment)
    # The arrays side by side, `(n, k p)`: the Gram matrix is one product (the whole
    # step 8-10 % faster than with a skinny product per pair).
    stacked = jnp.concatenate(arrays, axis=1)

    if p <= _BROADCAST_MAX_P and n >= _BROADCAST_MIN_N:
        combine = _broadcast_products
    else:
        combine = lambda _, c: stacked @ c
    return _span_step(arrays, p, rule, lambda _: stacked.T @ stacked, combine)


# The fused step multiplies `(n, 3p)` arrays by `(3p, p)` ones, about 15 n p^2
# multiply-adds where the generic path makes about 6 n p^2 in more passes over memory:
# fewer passes win at small `p`, fewer multiply-adds at large `p`. Measured (radam's
# step, jax 0.10, 2-core x86): fused 1.2-1.4x faster at `p = 10` (n = 1000 to
# 100_000); at `p = 16` 3-7 % faster for n >= 10_000, 1.6x slower at n = 1000; the
# generic path faster at `p = 20` (1.3x at n = 1000), `p = 32` and `p = 64` (1.35x
# at `Stiefel(4096, 64)`).
_FUSED_MAX_P = 16

# Where `sum_i arrays[i] @ c[i]` is faster written out as `k p` broadcast products
# (XLA:CPU fuses them, and the `apply_updates` after them, into one elementwise loop)
# than as one `stacked @ c` product. Measured on radam's whole step (jax 0.10, 2-core
# x86): the loop 10-25 % faster at `p = 10`, `n` from 2000 to 100_000; the same at
# `p = 5`; 20-26 % slower at `p = 10`, `n <= 1000`; 1.5-2.3x slower at `p = 20` and
# 1.8x at `Stiefel(512, 64)`.
_BROADCAST_MAX_P = 10
_BROADCAST_MIN_N = 2000


def _broadcast_products(arrays, c):
    p = c.shape[1]
    out = None
    for i, a in enumerate(arrays):
        for j in range(p):
            term = a[:, j : j + 1] * c[i * p + j][None, :]
            out = term if out is None else out + term
    return out
