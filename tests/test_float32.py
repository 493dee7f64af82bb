"""float32 inputs give float32 outputs, with float32 accuracy (optax float64_test style).

Runs in the x64 suite (inputs passed as float32 explicitly) and in the float32 smoke
run (`GEOMHESS_TEST_X64=0 pytest -m float32`).
"""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, tol

import geomhess as gh


pytestmark = pytest.mark.float32
F32 = jnp.float32


def _loss(x):
    return 0.5 * x @ x + jnp.sin(x[0])


def test_invariants_across_charts_in_float32():
    polar = gh.charts.Polar()
    theta = jnp.array([1.0, 0.5], F32)
    loss = gh.ScalarField(_loss)
    inv = gh.hessian_invariants(loss, gh.metrics.Euclidean(2), theta)
    inv_psi = gh.hessian_invariants(
        loss.reparametrize(polar),
        gh.metrics.Euclidean(2).reparametrize(polar),
        polar(theta),
    )
    assert inv.eigenvalues.dtype == inv_psi.eigenvalues.dtype == F32
    assert_close(inv_psi.eigenvalues, inv.eigenvalues, rtol=tol(F32))


def test_operators_keep_float32():
    x = jnp.array([0.3, 0.7], F32)
    v = jnp.array([1.0, -1.0], F32)
    metric = gh.metrics.FromFunction(lambda q: jnp.eye(2, dtype=q.dtype) * (1 + q @ q))
    outputs = {
        "covariant_hessian": gh.covariant_hessian(_loss, metric, x),
        "covariant_hvp": gh.covariant_hvp(_loss, metric, x, v),
        "riemannian_gradient": gh.riemannian_gradient(_loss, metric, x),
        "shape_operator": gh.shape_operator(_loss, metric, x),
        "newton_step": gh.newton_step(_loss, metric, x),
        "exp_map": gh.exp_map(metric, x, 0.1 * v),
        "graph_curvatures": gh.graph_curvatures(_loss, x).principal,
        "scalar_curvature": gh.scalar_curvature(metric, x),
        "christoffel": gh.LeviCivita(metric).christoffel(x),
    }
    for name, out in outputs.items():
        assert out.dtype == F32, name
        assert np.all(np.isfinite(np.asarray(out))), name


def test_scalar_curvature_of_the_sphere_in_float32():
    metric = gh.metrics.FromFunction(
        lambda q: jnp.diag(jnp.stack([jnp.ones((), q.dtype), jnp.sin(q[0]) ** 2]))
    )
    assert_close(
        gh.scalar_curvature(metric, jnp.array([0.8, 0.1], F32)), 2.0, rtol=tol(F32)
    )


def test_exp_map_in_float32():
    metric = gh.metrics.Euclidean(2).reparametrize(gh.charts.Polar())
    end = gh.exp_map(metric, jnp.array([1.0, 0.0], F32), jnp.array([0.0, 1.0], F32))
    assert end.dtype == F32
    assert_close(gh.charts.Polar().inverse(end), [1.0, 1.0], rtol=tol(F32, "ode"))
