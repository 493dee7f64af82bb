"""Every public operator under `jit`, `vmap` and `grad`, against the eager result."""

import functools as ft

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from helpers import assert_close, tol
from strategies import make_field, make_metric

import geomhess as gh


RTOL = tol(jnp.float64)
D = 2


@ft.cache
def _data():
    # Built on first use, not at import: the float32 smoke run (x64 off) collects
    # this module too, and float64 arrays cannot be made there.
    return (
        make_metric(jax.random.key(1), D),
        make_field(jax.random.key(2), D),
        jnp.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]]),
    )


V_VALUES = (0.7, -0.4)

# name -> function of (metric, f, x) returning an array; scalar-valued versions for grad.
OPERATORS = {
    "covariant_hessian": lambda m, f, x: gh.covariant_hessian(f, m, x),
    "covariant_hvp": lambda m, f, x: gh.covariant_hvp(f, m, x, jnp.array(V_VALUES)),
    "riemannian_gradient": lambda m, f, x: gh.riemannian_gradient(f, m, x),
    "shape_operator": lambda m, f, x: gh.shape_operator(f, m, x),
    "hessian_invariants": lambda m, f, x: gh.hessian_invariants(f, m, x).eigenvalues,
    "newton_step": lambda m, f, x: gh.newton_step(f, m, x),
    "exp_map": lambda m, f, x: gh.exp_map(m, x, 0.3 * jnp.array(V_VALUES)),
    "classify_critical_point": lambda m, f, x: (
        gh.classify_critical_point(f, x, m).eigenvalues
    ),
    "graph_curvatures": lambda m, f, x: gh.graph_curvatures(f, x).principal,
    "riemann_tensor": lambda m, f, x: gh.riemann_tensor(m, x),
    "ricci_tensor": lambda m, f, x: gh.ricci_tensor(m, x),
    "scalar_curvature": lambda m, f, x: gh.scalar_curvature(m, x),
    "christoffel": lambda m, f, x: gh.LeviCivita(m).christoffel(x),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_jit_vmap_grad(name):
    METRIC, FIELD, POINTS = _data()
    op = OPERATORS[name]
    # One eager call is the reference (eager evaluation is slow to warm up).
    eager = op(METRIC, FIELD, POINTS[0])
    jitted = eqx.filter_jit(op)
    assert_close(jitted(METRIC, FIELD, POINTS[0]), eager, rtol=RTOL)
    per_point = jnp.stack([jitted(METRIC, FIELD, x) for x in POINTS])
    vmapped = eqx.filter_jit(jax.vmap(op, in_axes=(None, None, 0)))
    assert_close(vmapped(METRIC, FIELD, POINTS), per_point, rtol=RTOL)
    # grad of a scalar summary with respect to the point, against central differences.
    scalar = eqx.filter_jit(lambda x: jnp.sum(jnp.sin(op(METRIC, FIELD, x))))
    g = eqx.filter_jit(jax.grad(scalar))(POINTS[0])
    h = 1e-5
    steps = h * jnp.eye(D)
    fd = jnp.stack(
        [(scalar(POINTS[0] + e) - scalar(POINTS[0] - e)) / (2 * h) for e in steps]
    )
    assert_close(g, fd, rtol=1e-6)


def test_grad_through_the_metric_parameters():
    METRIC, FIELD, POINTS = _data()

    # Differentiating an invariant with respect to the metric's own parameters (a
    # pytree leaf of the module) works and matches finite differences.
    def trace_of(scale):
        metric = gh.metrics.FromFunction(lambda x: METRIC.matrix(x) * scale)
        return gh.hessian_invariants(FIELD, metric, POINTS[0]).trace

    g = jax.grad(trace_of)(jnp.asarray(1.3))
    # trace(G^-1 H) with G scaled by s: the Hessian's connection term is scale
    # invariant, so trace scales as 1/s and d/ds = -trace(1) / s^2.
    assert_close(g, -trace_of(jnp.asarray(1.0)) / 1.3**2, rtol=1e-9)
