"""Charts: round trips, closed forms, composition, pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, tol

import geomhess as gh


RTOL = tol(jnp.float64)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_spherical_round_trip_and_radius(n):
    x = jnp.linspace(-1.0, 1.5, n) + 0.1
    y = gh.charts.Spherical()(x)
    assert_close(y[0], jnp.linalg.norm(x), rtol=RTOL)
    assert_close(gh.charts.Spherical().inverse(y), x, rtol=RTOL)
    # The volume element: det J^-1 = r^(n-1) sin^(n-2) phi_1 ... sin phi_{n-2}.
    J_inv = jax.jacfwd(gh.charts.Spherical().inverse)(y)
    powers = jnp.arange(n - 2, 0, -1, dtype=y.dtype)
    expected = y[0] ** (n - 1) * jnp.prod(jnp.sin(y[1 : n - 1]) ** powers)
    assert_close(jnp.linalg.det(J_inv), expected, rtol=RTOL)


def test_spherical_in_two_dimensions_is_polar():
    x = jnp.array([-0.4, 1.1])
    assert_close(gh.charts.Spherical()(x), gh.charts.Polar()(x), rtol=RTOL)


def test_compose_inverse_and_rshift():
    A = jnp.array([[2.0, 1.0], [0.0, 1.0]])
    chart = gh.charts.Affine(A, jnp.array([0.5, -0.5])) >> gh.charts.Elementwise.exp()
    x = jnp.array([0.2, -0.3])
    assert_close(chart(x), jnp.exp(A @ x + jnp.array([0.5, -0.5])), rtol=RTOL)
    assert_close(chart.inverse(chart(x)), x, rtol=RTOL)
    inverse = gh.charts.Inverse(chart)
    assert_close(inverse(chart(x)), x, rtol=RTOL)
    assert_close(chart.jacobian(x) @ inverse.jacobian(chart(x)), np.eye(2), rtol=RTOL)


@pytest.mark.parametrize(
    "chart", [gh.charts.Elementwise.softplus(), gh.charts.Elementwise.log()]
)
def test_elementwise_round_trip(chart):
    x = jnp.array([0.1, 2.0, 40.0])
    assert_close(chart.inverse(chart(x)), x, rtol=RTOL)


def test_scale_on_pytrees_is_the_dinh_rescaling():
    params = {"W1": jnp.ones((3, 2)), "W2": jnp.full((1, 3), 2.0)}
    chart = gh.charts.Scale({"W1": 4.0, "W2": 0.25})
    out = chart(params)
    assert_close(out["W1"], 4.0 * params["W1"], rtol=RTOL)
    assert_close(out["W2"], 0.25 * params["W2"], rtol=RTOL)
    back = chart.inverse(out)
    assert_close(back["W2"], params["W2"], rtol=RTOL)
    # A ReLU network computes the same function at the rescaled parameters.
    x = jnp.array([0.3, -1.2])
    net = lambda p: p["W2"] @ jax.nn.relu(p["W1"] @ x)
    assert_close(net(out), net(params), rtol=RTOL)
