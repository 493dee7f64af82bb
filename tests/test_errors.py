"""Bad input gets a clear error, never a silent wrong number; messages are checked."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import geomhess as gh


def _loss(x):
    return 0.5 * x @ x


E2 = gh.metrics.Euclidean(2)


def test_shape_mismatch_is_named_at_trace_time():
    with pytest.raises(
        ValueError, match=r"covariant_hvp.*`v` has shape \(3,\).*shape \(2,\)"
    ):
        gh.covariant_hvp(_loss, E2, jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="exp_map.*`v`"):
        gh.exp_map(E2, jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match=r"Euclidean\(2\).*shape \(2,\), got \(3,\)"):
        E2.matrix(jnp.ones(3))
    with pytest.raises(ValueError, match="metric function returned shape"):
        gh.metrics.FromFunction(lambda q: jnp.eye(3)).matrix(jnp.ones(2))
    with pytest.raises(ValueError, match="1-D array point"):
        gh.covariant_hessian(_loss, E2, jnp.ones((2, 2)))


def test_dtype_mismatch_is_named():
    with pytest.raises(ValueError, match="dtype float32.*dtype float64"):
        gh.covariant_hvp(_loss, E2, jnp.ones(2), jnp.ones(2, jnp.float32))
    with pytest.raises(ValueError, match="floating point"):
        gh.covariant_hessian(_loss, E2, jnp.array([1, 2]))


def test_non_scalar_function_is_named():
    with pytest.raises(ValueError, match="must return a scalar"):
        gh.covariant_hessian(lambda x: x, E2, jnp.ones(2))


def test_wrong_geometry_type():
    with pytest.raises(TypeError, match="expected a connection"):
        gh.covariant_hessian(_loss, "euclidean", jnp.ones(2))


def test_metric_not_positive_definite():
    bad = gh.metrics.FromFunction(lambda q: jnp.diag(jnp.array([1.0, -1.0])))
    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive definite"):
        gh.hessian_invariants(_loss, bad, jnp.ones(2))
    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive definite"):
        bad.raise_index(jnp.ones(2), jnp.ones(2))
    diagonal = gh.metrics.Diagonal(lambda q: q)
    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive definite"):
        diagonal.raise_index(jnp.array([1.0, -2.0]), jnp.ones(2))


def test_errors_raise_inside_jit_too():
    bad = gh.metrics.FromFunction(lambda q: jnp.diag(jnp.array([1.0, -1.0])))
    f = eqx.filter_jit(lambda x: gh.hessian_invariants(_loss, bad, x).eigenvalues)
    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive definite"):
        f(jnp.ones(2))
    # With plain jax.jit the error surfaces as a runtime error carrying the message.
    g = jax.jit(lambda x: gh.charts.Polar()(x))
    with pytest.raises(Exception, match="outside the chart's domain"):
        jax.block_until_ready(g(jnp.zeros(2)))


def test_singular_chart_jacobian():
    with pytest.raises(ValueError, match="singular"):
        gh.charts.Affine(jnp.array([[1.0, 2.0], [2.0, 4.0]]))
    # x -> x^3 has a singular Jacobian at 0: the metric carried through it degenerates.
    cube = gh.charts.FromFunctions(lambda x: x**3, jnp.cbrt)
    metric = gh.metrics.Euclidean(2).reparametrize(gh.charts.Inverse(cube))
    with pytest.raises(
        eqx.EquinoxRuntimeError, match="singular|not positive definite|NaN"
    ):
        gh.hessian_invariants(_loss, metric, jnp.array([0.0, 1.0]))


def test_point_outside_the_chart_domain():
    with pytest.raises(eqx.EquinoxRuntimeError, match="origin"):
        gh.charts.Polar()(jnp.zeros(2))
    with pytest.raises(eqx.EquinoxRuntimeError, match="radius must be positive"):
        gh.charts.Polar().inverse(jnp.array([-1.0, 0.3]))
    with pytest.raises(eqx.EquinoxRuntimeError, match="> 0"):
        gh.charts.Elementwise.exp().inverse(jnp.array([1.0, -2.0]))
    with pytest.raises(eqx.EquinoxRuntimeError, match="> 0"):
        gh.charts.Elementwise.log()(jnp.array([1.0, -2.0]))
    with pytest.raises(eqx.EquinoxRuntimeError, match="origin"):
        gh.charts.Spherical()(jnp.array([1.0, 0.0, 0.0]))


def test_nan_input():
    x = jnp.array([np.nan, 1.0])
    for call in (
        lambda: gh.covariant_hessian(_loss, E2, x),
        lambda: gh.hessian_invariants(_loss, E2, x),
        lambda: gh.riemannian_gradient(_loss, E2, x),
        lambda: gh.newton_step(_loss, E2, x),
        lambda: gh.exp_map(E2, x, jnp.ones(2)),
    ):
        with pytest.raises(eqx.EquinoxRuntimeError, match="NaN"):
            call()


def test_nan_input_on_the_dense_christoffel_paths():
    # A constant metric stays finite at a NaN point, so only the point check can
    # catch it; christoffel and the dense covariant_hessian (d <= 4) fold that check
    # and the positive-definiteness one into one conditional.
    x = jnp.array([np.nan, 1.0])
    constant = gh.LeviCivita(gh.metrics.FromFunction(lambda q: jnp.eye(2)))
    for call in (
        lambda: constant.christoffel(x),
        lambda: gh.covariant_hessian(_loss, constant, x),
        lambda: gh.covariant_hessian(_loss, gh.connections.Flat(), x),
        lambda: jax.jit(constant.christoffel)(x),
    ):
        with pytest.raises(Exception, match="contains NaN or inf"):
            jax.block_until_ready(call())
    indefinite = gh.LeviCivita(
        gh.metrics.FromFunction(lambda q: jnp.diag(jnp.array([1.0, -1.0])))
    )
    for call in (
        lambda: indefinite.christoffel(jnp.ones(2)),
        lambda: gh.covariant_hessian(_loss, indefinite, jnp.ones(2)),
    ):
        with pytest.raises(eqx.EquinoxRuntimeError, match="not positive definite"):
            call()


def test_singular_newton_system():
    with pytest.raises(eqx.EquinoxRuntimeError, match="singular"):
        gh.newton_step(lambda x: x[0] ** 2, gh.connections.Flat(), jnp.ones(2))


def test_nan_point_in_the_optimizers_on_coordinates():
    # The coordinate Hessian checks the point once per update (not per product).
    x = jnp.array([np.nan, 1.0])
    for opt in (gh.optim.trust_region(E2), gh.optim.newton(E2)):
        with pytest.raises(Exception, match="contains NaN or inf"):
            jax.block_until_ready(
                opt.update(None, opt.init(x), x, value_fn=_loss, hvp_fn=None)
            )
