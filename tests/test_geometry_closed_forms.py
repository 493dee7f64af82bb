"""Closed forms: Christoffel symbols, curvature of constant-curvature spaces, geodesics,
graph curvatures and the classification of critical points."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, tol

import geomhess as gh


RTOL = tol(jnp.float64)


def sphere_metric(radius, n):
    """The round metric of the n-sphere of radius R in hyperspherical angles."""

    def G(phi):
        # g = R^2 diag(1, sin^2 phi_1, sin^2 phi_1 sin^2 phi_2, ...)
        sines = jnp.concatenate(
            [jnp.ones((1,), phi.dtype), jnp.cumprod(jnp.sin(phi[:-1]) ** 2)]
        )
        return radius**2 * jnp.diag(sines)

    return gh.metrics.FromFunction(G)


def test_christoffel_symbols_of_polar_coordinates():
    metric = gh.metrics.Euclidean(2).reparametrize(gh.charts.Polar())
    r, alpha = 1.7, 0.4
    gamma = gh.LeviCivita(metric).christoffel(jnp.array([r, alpha]))
    expected = np.zeros((2, 2, 2))
    expected[0, 1, 1] = -r  # Gamma^r_{alpha alpha}
    expected[1, 0, 1] = expected[1, 1, 0] = 1 / r  # Gamma^alpha_{r alpha}
    assert_close(gamma, expected, rtol=RTOL)
    # The connection carried by the inhomogeneous law gives the same symbols.
    carried = (
        gh.connections.Flat()
        .reparametrize(gh.charts.Polar())
        .christoffel(jnp.array([r, alpha]))
    )
    assert_close(carried, expected, rtol=RTOL)


def test_christoffel_symbols_of_the_round_sphere():
    theta, phi = 0.8, 2.1
    gamma = gh.LeviCivita(sphere_metric(2.5, 2)).christoffel(jnp.array([theta, phi]))
    expected = np.zeros((2, 2, 2))
    expected[0, 1, 1] = -np.sin(theta) * np.cos(theta)  # Gamma^theta_{phi phi}
    expected[1, 0, 1] = expected[1, 1, 0] = np.cos(theta) / np.sin(theta)
    assert_close(gamma, expected, rtol=RTOL)


def test_christoffel_symbols_of_spherical_coordinates_of_r3():
    metric = gh.metrics.Euclidean(3).reparametrize(gh.charts.Spherical())
    r, theta, phi = 1.3, 0.7, -0.4
    gamma = gh.LeviCivita(metric).christoffel(jnp.array([r, theta, phi]))
    s, c = np.sin(theta), np.cos(theta)
    expected = np.zeros((3, 3, 3))
    expected[0, 1, 1] = -r
    expected[0, 2, 2] = -r * s**2
    expected[1, 0, 1] = expected[1, 1, 0] = 1 / r
    expected[1, 2, 2] = -s * c
    expected[2, 0, 2] = expected[2, 2, 0] = 1 / r
    expected[2, 1, 2] = expected[2, 2, 1] = c / s
    assert_close(gamma, expected, rtol=RTOL)


@pytest.mark.parametrize(
    "n, radius", [(2, 1.0), (2, 0.5), (2, 3.0), (3, 1.0), (3, 2.0), (4, 1.5)]
)
def test_scalar_curvature_of_spheres(n, radius):
    phi = jnp.linspace(0.6, 1.9, n)  # inside the chart: every polar angle in (0, pi)
    expected = n * (n - 1) / radius**2  # 2/R^2 for S^2, 6/R^2 for S^3
    assert_close(
        gh.scalar_curvature(sphere_metric(radius, n), phi), expected, rtol=RTOL
    )


def test_sphere_metric_as_pullback_of_the_embedding():
    # The same sphere, its metric induced by the embedding of R^3 (matrix-free mvp).
    def embed(q):
        return 2.0 * jnp.array(
            [
                jnp.cos(q[0]),
                jnp.sin(q[0]) * jnp.cos(q[1]),
                jnp.sin(q[0]) * jnp.sin(q[1]),
            ]
        )

    induced = gh.metrics.Pullback(embed)
    q = jnp.array([0.9, 0.3])
    assert_close(induced.matrix(q), sphere_metric(2.0, 2).matrix(q), rtol=RTOL)
    assert_close(gh.scalar_curvature(induced, q), 2 / 2.0**2, rtol=RTOL)


@pytest.mark.parametrize("point", [[0.3, 0.7], [-2.0, 0.1], [5.0, 3.0]])
def test_scalar_curvature_of_the_hyperbolic_half_plane(point):
    metric = gh.metrics.FromFunction(lambda q: jnp.eye(2, dtype=q.dtype) / q[1] ** 2)
    assert_close(gh.scalar_curvature(metric, jnp.array(point)), -2.0, rtol=RTOL)


def test_flat_metric_in_curvilinear_coordinates_has_zero_curvature():
    metric = gh.metrics.Euclidean(3).reparametrize(gh.charts.Spherical())
    R = gh.riemann_tensor(metric, jnp.array([1.3, 0.7, -0.4]))
    assert_close(R, np.zeros((3, 3, 3, 3)), rtol=RTOL)


def test_known_geodesics():
    # Great circle on the unit sphere: from the equator, moving north at unit speed.
    metric = sphere_metric(1.0, 2)
    start = jnp.array([jnp.pi / 2, 0.3])
    for t in (0.5, 1.0):
        end = gh.exp_map(metric, start, jnp.array([-t, 0.0]))
        assert_close(end, [jnp.pi / 2 - t, 0.3], rtol=tol(jnp.float64, "ode"))
    # Along the equator (a geodesic too): phi advances linearly.
    end = gh.exp_map(metric, start, jnp.array([0.0, 1.2]))
    assert_close(end, [jnp.pi / 2, 1.5], rtol=tol(jnp.float64, "ode"))
    # Hyperbolic half-plane: a vertical line is a geodesic, y(t) = y0 exp(t v / y0).
    hyperbolic = gh.metrics.FromFunction(
        lambda q: jnp.eye(2, dtype=q.dtype) / q[1] ** 2
    )
    end = gh.exp_map(hyperbolic, jnp.array([0.4, 2.0]), jnp.array([0.0, 1.0]))
    assert_close(end, [0.4, 2.0 * np.exp(0.5)], rtol=tol(jnp.float64, "ode"))
    # Straight line in polar coordinates, from (1, 0) with velocity (0, 1) in Cartesian.
    polar = gh.charts.Polar()
    metric = gh.metrics.Euclidean(2).reparametrize(polar)
    y0, v_psi = polar.push_vector(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]))
    end = gh.exp_map(metric, y0, v_psi)
    assert_close(polar.inverse(end), [1.0, 1.0], rtol=1e-8)


def test_graph_curvatures_of_a_sphere_cap_away_from_critical_points():
    # The lower hemisphere of radius R, f = -sqrt(R^2 - |x|^2): every principal
    # curvature is 1/R, at every point (the gradient is far from zero off-centre).
    R = 2.0
    f = lambda x: -jnp.sqrt(R**2 - x @ x)
    for x in ([0.5, 0.3], [1.2, -0.9], [0.0, 0.0]):
        curv = gh.graph_curvatures(f, jnp.array(x))
        assert_close(curv.principal, [1 / R, 1 / R], rtol=RTOL)
        assert_close(curv.gaussian, 1 / R**2, rtol=RTOL)
        assert_close(curv.mean, 1 / R, rtol=RTOL)
    # A cylinder x -> -sqrt(R^2 - x_0^2): principal curvatures 0 and 1/R.
    cyl = gh.graph_curvatures(
        lambda x: -jnp.sqrt(R**2 - x[0] ** 2), jnp.array([0.7, 0.2])
    )
    assert_close(cyl.principal, [0.0, 1 / R], rtol=RTOL)
    assert_close(cyl.gaussian, 0.0, rtol=RTOL)


def test_graph_curvatures_at_a_critical_point_are_the_hessian_eigenvalues():
    f = lambda x: 1.5 * x[0] ** 2 - 0.5 * x[1] ** 2 + x[0] ** 3
    curv = gh.graph_curvatures(f, jnp.zeros(2))
    assert_close(curv.principal, [-1.0, 3.0], rtol=RTOL)


@pytest.mark.parametrize(
    "f, x, kind, index",
    [
        (lambda x: x @ x, [0.0, 0.0], "minimum", 0),
        (lambda x: -(x @ x), [0.0, 0.0], "maximum", 2),
        # The seed's worked example: x^3 + 2xy - y^2 has a saddle at the origin.
        (lambda x: x[0] ** 3 + 2 * x[0] * x[1] - x[1] ** 2, [0.0, 0.0], "saddle", 1),
        # x^4 + y^2: positive semidefinite Hessian, the test is inconclusive.
        (lambda x: x[0] ** 4 + x[1] ** 2, [0.0, 0.0], "degenerate", 0),
        # The seed tutorial's flaw: a positive definite Hessian where the gradient
        # does not vanish is not a minimum.
        (lambda x: x @ x, [0.5, 0.0], "not-critical", 0),
    ],
)
def test_classify_critical_point(f, x, kind, index):
    result = gh.classify_critical_point(f, jnp.array(x))
    assert result.kind == kind
    assert int(result.index) == index


def test_classification_is_invariant_under_reparametrization():
    # A saddle of a loss in Cartesian coordinates stays a saddle in polar coordinates
    # when the metric is carried along, although the calculus Hessian there has a
    # different spectrum.
    f = gh.ScalarField(lambda x: (x[0] - 1.0) ** 2 - (x[1] - 0.5) ** 2)
    x = jnp.array([1.0, 0.5])
    polar = gh.charts.Polar()
    metric_psi = gh.metrics.Euclidean(2).reparametrize(polar)
    a = gh.classify_critical_point(f, x)
    b = gh.classify_critical_point(f.reparametrize(polar), polar(x), metric_psi)
    assert a.kind == b.kind == "saddle"
    assert_close(b.eigenvalues, a.eigenvalues, rtol=RTOL)
    assert_close(b.eigenvalues, [-2.0, 2.0], rtol=RTOL)
