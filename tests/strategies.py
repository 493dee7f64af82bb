"""Hypothesis strategies: random charts, metrics, fields and points.

Hypothesis draws seeds and sizes; the arrays come from `jax.random`, which is cheaper
and avoids pathological floats (STYLE B.6). Every chart comes with a point inside its
domain, and the matrices are drawn with a bounded condition number.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import geomhess as gh


def well_conditioned(key, d, *, max_cond=30.0, dtype=jnp.float64):
    """A random `(d, d)` matrix with condition number below `max_cond` (by rejection)."""
    while True:
        key, sub = jax.random.split(key)
        A = jnp.eye(d, dtype=dtype) + 0.5 * jax.random.normal(
            sub, (d, d), dtype
        ) / np.sqrt(d)
        if np.linalg.cond(np.asarray(A)) < max_cond:
            return A


def spd_matrix(key, d, dtype=jnp.float64):
    L = jax.random.normal(key, (d, d), dtype) / np.sqrt(d)
    return L @ L.T + 0.5 * jnp.eye(d, dtype=dtype)


@dataclasses.dataclass
class ChartCase:
    name: str
    chart: gh.AbstractChart
    x: jax.Array  # a point in the chart's domain (input coordinates)


def make_chart(kind: str, key, d: int, dtype=jnp.float64) -> ChartCase:
    """One chart of the registry, with a point inside its domain."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (d,), dtype)
    if kind == "affine":
        chart = gh.charts.Affine(
            well_conditioned(k2, d, dtype=dtype), jax.random.normal(k3, (d,), dtype)
        )
    elif kind == "exp_affine":  # psi = exp(A theta + b), the nonlinear example
        A = 0.5 * well_conditioned(k2, d, dtype=dtype)
        chart = (
            gh.charts.Affine(A, 0.1 * jax.random.normal(k3, (d,), dtype))
            >> gh.charts.Elementwise.exp()
        )
    elif kind == "softplus":
        chart = gh.charts.Elementwise.softplus() >> gh.charts.Affine(
            well_conditioned(k2, d, dtype=dtype)
        )
    elif kind in ("polar", "polar3"):  # polar in (x0, x1), identity elsewhere
        chart = _polar_embedded(d)
        x = x.at[0].set(
            1.0 + jnp.abs(x[0])
        )  # keep away from the origin of the (x0, x1) plane
    elif kind == "spherical":
        chart = gh.charts.Spherical()
        x = x + jnp.sign(x) * 0.3  # away from the axes where angles are undefined
    else:
        raise ValueError(kind)
    return ChartCase(kind, chart, x)


def _polar_then_identity(x):
    return jnp.concatenate([gh.charts.Polar()(x[:2]), x[2:]])


def _polar_then_identity_inverse(y):
    return jnp.concatenate([gh.charts.Polar().inverse(y[:2]), y[2:]])


def _polar_embedded(d):
    if d == 2:
        return gh.charts.Polar()
    return gh.charts.FromFunctions(_polar_then_identity, _polar_then_identity_inverse)


# Each chart kind with its dimension: one compilation per kind, many seeds per kind.
CHART_DIMS = {"affine": 3, "exp_affine": 3, "softplus": 2, "polar": 3, "spherical": 3}
CHART_KINDS = list(CHART_DIMS)


class RandomMetric(eqx.Module):
    """`G(x) = C + a(x) a(x)^T` with `a(x) = tanh(W x + b)`: SPD, position-dependent."""

    C: jax.Array
    W: jax.Array
    b: jax.Array

    def __call__(self, x):
        a = jnp.tanh(self.W @ x + self.b)
        return self.C + jnp.outer(a, a)


class RandomField(eqx.Module):
    """`0.5 x^T Q x + sum sin(B x) + c^T x`: smooth, non-quadratic, generic gradient."""

    Q: jax.Array
    B: jax.Array
    c: jax.Array

    def __call__(self, x):
        return 0.5 * x @ self.Q @ x + jnp.sum(jnp.sin(self.B @ x)) + self.c @ x


def make_metric(key, d, dtype=jnp.float64) -> gh.metrics.FromFunction:
    k1, k2, k3 = jax.random.split(key, 3)
    W = jax.random.normal(k2, (d, d), dtype) / np.sqrt(d)
    return gh.metrics.FromFunction(
        RandomMetric(spd_matrix(k1, d, dtype), W, jax.random.normal(k3, (d,), dtype))
    )


def make_field(key, d, dtype=jnp.float64) -> gh.ScalarField:
    k1, k2, k3 = jax.random.split(key, 3)
    B = jax.random.normal(k2, (d, d), dtype) / np.sqrt(d)
    return gh.ScalarField(
        RandomField(spd_matrix(k1, d, dtype), B, jax.random.normal(k3, (d,), dtype))
    )


@st.composite
def chart_cases(draw, kinds=CHART_KINDS) -> tuple[ChartCase, jax.Array]:
    kind = draw(st.sampled_from(kinds))
    d = CHART_DIMS[kind]
    seed = draw(st.integers(0, 2**31 - 1))
    key = jax.random.key(seed)
    k_chart, k_rest = jax.random.split(key)
    return make_chart(kind, k_chart, d), k_rest
