"""float32 inputs give float32 outputs, with float32 accuracy (optax float64_test style).

Runs in the x64 suite (inputs passed as float32 explicitly) and in the float32 smoke
run (`GEOMHESS_TEST_X64=0 pytest -m float32`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, tol
from jax.flatten_util import ravel_pytree

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


# ---------------------------------------------------------------------------------
# Krylov solves at network scale. lineax 0.1.1's CG (the previous `cg_solve`)
# declared a step broken, and returned NaN, unless `|p^T A p| > 200 eps d |r^T r|`:
# with `d` in the thousands that rejects ordinary float32 problems whose smallest
# eigenvalue is below about `0.1`, e.g. every damped Gauss-Newton metric below.
# ---------------------------------------------------------------------------------


def _relative_error(actual, desired):
    actual = np.asarray(actual, np.float64)
    return np.linalg.norm(actual - desired) / np.linalg.norm(desired)


def test_cg_converges_on_a_large_spd_system_in_float32():
    d = 2000
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    A = (Q * np.logspace(-2, 0, d)) @ Q.T
    b = rng.standard_normal(d)
    A32, b32 = jnp.asarray(A, F32), jnp.asarray(b, F32)
    x = gh.linalg.cg_solve(lambda v: A32 @ v, b32)
    assert x.dtype == F32 and np.all(np.isfinite(np.asarray(x)))
    assert _relative_error(x, np.linalg.solve(A, b)) < tol(F32)


def _mlp(params, inputs):
    hidden = jnp.tanh(inputs @ params["w0"] + params["b0"][None, :])
    hidden = jnp.tanh(hidden @ params["w1"] + params["b1"][None, :])
    return hidden @ params["w2"] + params["b2"][None, :]


def test_gauss_newton_raise_index_at_network_scale_in_float32():
    # 5,768 parameters, damping 1e-2: the smallest eigenvalue of the metric is the
    # damping (the rank of J^T J is at most N * 8 = 256).
    rng = np.random.default_rng(1)
    shapes = {
        "w0": (16, 64),
        "b0": (64,),
        "w1": (64, 64),
        "b1": (64,),
        "w2": (64, 8),
        "b2": (8,),
    }
    params = {
        name: rng.standard_normal(shape) / np.sqrt(shape[0] if len(shape) > 1 else 10)
        for name, shape in shapes.items()
    }
    inputs = rng.standard_normal((32, 16))
    w = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    damping = 1e-2
    as32 = lambda tree: {k: jnp.asarray(v, F32) for k, v in tree.items()}
    metric = gh.metrics.GaussNewton(_mlp, jnp.asarray(inputs, F32), damping=damping)
    raised = metric.raise_index(as32(params), as32(w))
    flat = ravel_pytree(raised)[0]
    assert flat.dtype == F32 and np.all(np.isfinite(np.asarray(flat)))

    # The reference in float64 (numpy), by the Woodbury identity on the dense
    # Jacobian: G = damping I + J^T J / N, J of shape (N * 8, d). The Jacobian is
    # computed in float64 when x64 is on, else in float32 (then the reference is
    # exact for a matrix within float32 rounding of G).
    dtype = jnp.float64 if jax.config.jax_enable_x64 else F32
    flat_params, unravel = ravel_pytree(
        {k: jnp.asarray(v, dtype) for k, v in params.items()}
    )
    J = jax.jacrev(lambda p: _mlp(unravel(p), jnp.asarray(inputs, dtype)).ravel())(
        flat_params
    )
    J = np.asarray(J, np.float64)
    n = inputs.shape[0]
    w_flat = np.asarray(
        ravel_pytree({k: jnp.asarray(v, dtype) for k, v in w.items()})[0], np.float64
    )
    small = n * damping * np.eye(J.shape[0]) + J @ J.T
    reference = (w_flat - J.T @ np.linalg.solve(small, J @ w_flat)) / damping
    assert _relative_error(flat, reference) < tol(F32)
