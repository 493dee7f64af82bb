"""Matrix-free spectral estimators of the shape operator (issue 4).

References are dense: `gh.hessian_invariants` (the symmetric generalized eigenproblem
of the pencil `(nabla^2 f, G)`) on 1-D points, and the same pencil assembled on the
raveled point for pytrees. Randomized estimates are checked against their own
reported error (`|estimate - truth| < 4 std_error`), and deterministic limits (a
sketch spanning the space, `num_iterations = d`) to float64 tolerance.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest
from helpers import assert_close, assert_not_close
from jax.flatten_util import ravel_pytree

import geomhess as gh


# Module-level data from numpy, so that importing this file in the float32 smoke run
# (x64 off) gives float32 arrays instead of a "float64 not available" warning.
_RNG = np.random.default_rng(0)
D = 12
_A = _RNG.standard_normal((D, D))
_A = jnp.asarray(_A @ _A.T / D + np.eye(D))


def _loss(x):
    return 0.5 * x @ _A @ x + jnp.sum(jnp.sin(x)) + 0.1 * jnp.sum(x**4)


LOSS = gh.ScalarField(_loss)
METRIC = gh.metrics.FromFunction(
    lambda x: jnp.eye(D, dtype=x.dtype) * (1 + x @ x) + 0.1 * jnp.outer(x, x)
)
POINT = jnp.asarray(0.3 * _RNG.standard_normal(D))


def _convex_loss(x):
    # Positive definite shape operator at POINT (for the log-determinant).
    return 0.5 * x @ _A @ x + 0.05 * jnp.sum(x**4) + 0.1 * jnp.sum(jnp.cos(x))


CONVEX = gh.ScalarField(_convex_loss)


# The dense references, jit-compiled (eager dispatch of the vmapped HVPs is slow).
_invariants = eqx.filter_jit(gh.hessian_invariants)


@pytest.fixture(scope="module")
def dense():
    return _invariants(LOSS, METRIC, POINT)


@pytest.fixture(scope="module")
def dense_convex():
    return _invariants(CONVEX, METRIC, POINT)


# ---------------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_within_reported_error(dense, method):
    result = gh.linalg.shape_operator_trace(
        LOSS, METRIC, POINT, key=jr.key(3), num_probes=30, method=method
    )
    assert result.num_probes == 30 and result.method == method
    assert float(result.std_error) > 0
    assert abs(float(result.estimate - dense.trace)) < 4 * float(result.std_error)


def test_hutchpp_exact_when_sketch_spans_space(dense):
    result = gh.linalg.shape_operator_trace(
        LOSS, METRIC, POINT, key=jr.key(4), num_probes=3 * D
    )
    assert_close(result.estimate, dense.trace, rtol=1e-10)
    assert float(result.std_error) == 0.0


def test_hutchpp_deflation_lowers_error():
    # A spectrum with a few dominant eigenvalues: the sketch removes them, so the
    # residual Hutchinson has far smaller variance than plain Hutchinson.
    d = 40
    scales = jnp.concatenate(
        [jnp.array([100.0, 50.0, 20.0]), jnp.linspace(0.1, 1.0, d - 3)]
    )
    Q = jnp.linalg.qr(jr.normal(jr.key(5), (d, d), dtype=jnp.float64))[0]
    H = (Q * scales[None, :]) @ Q.T
    f = lambda x: 0.5 * x @ H @ x
    x = jnp.zeros(d, jnp.float64)
    kwargs = dict(key=jr.key(6), num_probes=30)
    plain = gh.linalg.hessian_trace(f, x, method="hutchinson", **kwargs)
    plus = gh.linalg.hessian_trace(f, x, method="hutch++", **kwargs)
    truth = float(jnp.sum(scales))
    assert abs(float(plus.estimate) - truth) < 4 * float(plus.std_error)
    assert float(plus.std_error) < 0.2 * float(plain.std_error)


def test_naive_trace_is_calculus_hessian_trace():
    hessian = jax.hessian(_loss)(POINT)
    result = gh.linalg.hessian_trace(LOSS, POINT, key=jr.key(7), num_probes=3 * D)
    assert_close(result.estimate, jnp.trace(hessian), rtol=1e-10)


def test_batch_size_does_not_change_the_estimate():
    kwargs = dict(key=jr.key(8), num_probes=10, method="hutchinson")
    one = gh.linalg.shape_operator_trace(LOSS, METRIC, POINT, **kwargs)
    batched = gh.linalg.shape_operator_trace(
        LOSS, METRIC, POINT, batch_size=4, **kwargs
    )
    assert_close(batched.estimate, one.estimate, rtol=1e-12)
    assert_close(batched.std_error, one.std_error, rtol=1e-12)


# ---------------------------------------------------------------------------------
# Eigenvalues
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_lanczos_matches_dense_generalized_eigenvalues(dense, which):
    result = gh.linalg.shape_operator_eigenvalues(
        LOSS, METRIC, POINT, key=jr.key(9), k=4, num_iterations=D, which=which
    )
    eig = np.asarray(dense.eigenvalues)
    expected = {
        "largest": eig[::-1],
        "smallest": eig,
        "magnitude": eig[np.argsort(-np.abs(eig))],
    }[which][:4]
    assert_close(result.eigenvalues, expected, rtol=1e-8)
    assert np.all(np.asarray(result.residuals) < 1e-8)


def test_lanczos_residuals_bound_the_error(dense):
    # Few iterations: not converged, but each Ritz value is within its residual of
    # an eigenvalue.
    result = gh.linalg.shape_operator_eigenvalues(
        LOSS, METRIC, POINT, key=jr.key(10), k=6, num_iterations=8
    )
    eig = np.asarray(dense.eigenvalues)
    distance = np.min(np.abs(np.asarray(result.eigenvalues)[:, None] - eig), axis=1)
    assert np.all(distance <= np.asarray(result.residuals) + 1e-10)
    # The top eigenvalue is isolated: its error is also below residual^2 / gap.
    gap = eig[-1] - eig[-2]
    error = abs(float(result.eigenvalues[0]) - eig[-1])
    assert error <= float(result.residuals[0]) ** 2 / gap + 1e-12
    assert error < 1e-4


def test_lanczos_repeated_eigenvalues_restart():
    # The Krylov space of a Hessian with two distinct eigenvalues has dimension 2;
    # the restarts still recover every eigenvalue with its multiplicity.
    f = lambda x: 0.5 * jnp.sum(x**2) + x[0] ** 2
    x = jnp.ones(8, jnp.float64)
    result = gh.linalg.hessian_eigenvalues(f, x, key=jr.key(11), k=8, num_iterations=8)
    expected = np.array([3.0] + [1.0] * 7)
    assert_close(result.eigenvalues, expected, rtol=1e-10)
    assert np.all(np.asarray(result.residuals) < 1e-8)


# ---------------------------------------------------------------------------------
# Stochastic Lanczos quadrature
# ---------------------------------------------------------------------------------


def test_slq_logdet_within_error(dense_convex):
    assert float(dense_convex.eigenvalues[0]) > 0
    result = gh.linalg.shape_operator_logdet(
        CONVEX, METRIC, POINT, key=jr.key(12), num_probes=20, num_iterations=8
    )
    assert result.num_probes == 20 and result.num_iterations == 8
    error = abs(float(result.estimate - dense_convex.logdet))
    assert error < 4 * float(result.std_error)


def test_slq_logdet_shift(dense):
    # log det(E + I) of an indefinite E, exact quadrature (num_iterations = d).
    result = gh.linalg.shape_operator_logdet(
        LOSS, METRIC, POINT, key=jr.key(13), num_probes=20, num_iterations=D, shift=1.0
    )
    truth = float(jnp.sum(jnp.log(dense.eigenvalues + 1.0)))
    assert abs(float(result.estimate) - truth) < 4 * float(result.std_error)


@pytest.mark.parametrize("metric", [gh.metrics.Euclidean(), METRIC])
def test_density_integrates_to_one(dense, metric):
    grid = jnp.linspace(-2.0, 8.0, 501, dtype=jnp.float64)
    result = gh.linalg.shape_operator_density(
        LOSS,
        metric,
        POINT,
        key=jr.key(14),
        grid=grid,
        sigma=0.1,
        num_probes=8,
        num_iterations=D,
    )
    step = float(grid[1] - grid[0])
    assert_close(jnp.sum(result.density) * step, 1.0, rtol=1e-6)
    assert_close(jnp.sum(result.weights, axis=1), np.ones(8), rtol=1e-10)
    if isinstance(metric, gh.metrics.Euclidean):
        assert float(jnp.min(result.weights)) >= -1e-12
        assert float(jnp.min(result.density)) >= -1e-12
    else:
        # The mean of the density is an unbiased estimate of tr(E) / d.
        mean = jnp.sum(grid * result.density) * step
        mean_error = jnp.sqrt(jnp.sum((grid * result.std_error) ** 2)) * step
        assert abs(float(mean - dense.trace / D)) < 4 * float(mean_error) + 1e-6


# ---------------------------------------------------------------------------------
# Pytrees and invariance
# ---------------------------------------------------------------------------------


def _network_loss(params):
    dtype = params["W1"].dtype
    inputs = jnp.linspace(-1.0, 1.0, 15, dtype=dtype).reshape(5, 3)
    targets = jnp.sin(jnp.arange(5, dtype=dtype))
    hidden = jnp.tanh(inputs @ params["W1"] + params["b1"][None, :])
    return 0.5 * jnp.mean((hidden @ params["W2"] - targets) ** 2) + 0.05 * sum(
        jnp.sum(leaf**2) for leaf in jtu.tree_leaves(params)
    )


NETWORK = gh.ScalarField(_network_loss)
PARAMS = {
    "W1": jnp.asarray(0.5 * _RNG.standard_normal((3, 4))),
    "b1": jnp.asarray(0.1 * _RNG.standard_normal(4)),
    "W2": jnp.asarray(0.5 * _RNG.standard_normal(4)),
}
SCALES = {"W1": 3.0, "b1": 0.5, "W2": 1.0 / 3.0}


# The per-layer rescaling psi_l = s_l theta_l (Dinh et al. 2017 use it for ReLU nets).
CHART = gh.charts.Scale(SCALES)
PSI = CHART(PARAMS)
PSI_LOSS = NETWORK.reparametrize(CHART)
PSI_METRIC = gh.metrics.Euclidean().reparametrize(CHART)


@eqx.filter_jit
def _dense_pencil(f, metric, x):
    """`(H, G)` in the raveled coordinates, assembled from the matrix-free products."""
    flat, unravel = ravel_pytree(x)
    connection = gh.LeviCivita(metric)

    def hvp(v):
        return ravel_pytree(gh.covariant_hvp(f, connection, x, unravel(v)))[0]

    def mvp(v):
        return ravel_pytree(metric.mvp(x, unravel(v)))[0]

    eye = jnp.eye(flat.shape[0], dtype=flat.dtype)
    return jax.vmap(hvp, out_axes=-1)(eye), jax.vmap(mvp, out_axes=-1)(eye)


def _diagonal_metric():
    return gh.metrics.Diagonal(lambda p: jtu.tree_map(lambda l: 1.0 + l**2, p))


@pytest.mark.parametrize(
    "f, metric, x",
    [(NETWORK, _diagonal_metric(), PARAMS), (PSI_LOSS, PSI_METRIC, PSI)],
    ids=["diagonal", "reparametrized"],
)
def test_pytree_matches_flattened_dense(f, metric, x):
    H, G = _dense_pencil(f, metric, x)
    eig = np.asarray(gh.linalg.generalized_eigvalsh(H, G))
    d = eig.shape[0]
    values = gh.linalg.shape_operator_eigenvalues(
        f, metric, x, key=jr.key(23), k=3, num_iterations=d, return_eigenvectors=True
    )
    assert_close(values.eigenvalues, eig[::-1][:3], rtol=1e-8)
    # Ritz vectors are G-orthonormal tangent vectors with H y = theta G y.
    Y = jax.vmap(lambda y: ravel_pytree(y)[0])(values.eigenvectors)
    assert_close(Y @ G @ Y.T, np.eye(3), rtol=1e-10)
    assert_close(H @ Y.T, (G @ Y.T) * values.eigenvalues[None, :], rtol=1e-8)
    trace = gh.linalg.shape_operator_trace(
        f, metric, x, key=jr.key(24), num_probes=3 * d
    )
    assert_close(trace.estimate, np.sum(eig), rtol=1e-9)


def test_invariant_quantities_agree_across_per_layer_rescaling():
    theta_metric = gh.metrics.Euclidean()
    psi_metric, psi_loss, psi = PSI_METRIC, PSI_LOSS, PSI
    d = ravel_pytree(PARAMS)[0].shape[0]
    kw = dict(k=3, num_iterations=d)

    theta_eig = gh.linalg.shape_operator_eigenvalues(
        NETWORK, theta_metric, PARAMS, key=jr.key(25), **kw
    )
    psi_eig = gh.linalg.shape_operator_eigenvalues(
        psi_loss, psi_metric, psi, key=jr.key(26), **kw
    )
    assert_close(psi_eig.eigenvalues, theta_eig.eigenvalues, rtol=1e-8)

    theta_tr = gh.linalg.shape_operator_trace(
        NETWORK, theta_metric, PARAMS, key=jr.key(27), num_probes=3 * d
    )
    psi_tr = gh.linalg.shape_operator_trace(
        psi_loss, psi_metric, psi, key=jr.key(28), num_probes=3 * d
    )
    assert_close(psi_tr.estimate, theta_tr.estimate, rtol=1e-9)

    # The naive (calculus) quantities of the same loss change with the chart.
    naive_eig = gh.linalg.hessian_eigenvalues(psi_loss, psi, key=jr.key(26), **kw)
    assert_close(naive_eig.eigenvalues, _naive_reference(psi_loss, psi)[:3], rtol=1e-8)
    assert_not_close(naive_eig.eigenvalues, theta_eig.eigenvalues, rtol=1e-2)
    naive_tr = gh.linalg.hessian_trace(psi_loss, psi, key=jr.key(28), num_probes=3 * d)
    assert_not_close(naive_tr.estimate, theta_tr.estimate, rtol=1e-2)


def test_invariance_under_a_nonlinear_chart(dense):
    # psi = exp(theta): the Christoffel symbols in psi are nonzero, so this checks
    # the connection term of the covariant HVP along the Krylov path.
    chart = gh.charts.Elementwise.exp()
    psi = chart(POINT)
    result = gh.linalg.shape_operator_eigenvalues(
        LOSS.reparametrize(chart),
        METRIC.reparametrize(chart),
        psi,
        key=jr.key(29),
        k=D,
        num_iterations=D,
        which="smallest",
    )
    assert_close(result.eigenvalues, dense.eigenvalues, rtol=1e-8)


@eqx.filter_jit
def _naive_reference(f, x):
    flat, unravel = ravel_pytree(x)
    H = jax.hessian(lambda v: f(unravel(v)))(flat)
    return jnp.linalg.eigvalsh(H)[::-1]


# ---------------------------------------------------------------------------------
# Errors, jit, float32
# ---------------------------------------------------------------------------------


def test_errors():
    key = jr.key(0)
    with pytest.raises(ValueError, match="`method`"):
        gh.linalg.shape_operator_trace(LOSS, METRIC, POINT, key=key, method="xtrace")
    with pytest.raises(ValueError, match="`num_probes`"):
        gh.linalg.shape_operator_trace(LOSS, METRIC, POINT, key=key, num_probes=2)
    with pytest.raises(ValueError, match="`key`"):
        gh.linalg.shape_operator_trace(LOSS, METRIC, POINT, key=0)
    with pytest.raises(ValueError, match="exceeds"):
        gh.linalg.shape_operator_eigenvalues(LOSS, METRIC, POINT, key=key, k=D + 1)
    with pytest.raises(ValueError, match="`which`"):
        gh.linalg.shape_operator_eigenvalues(LOSS, METRIC, POINT, key=key, which="LA")
    with pytest.raises(ValueError, match="`grid`"):
        gh.linalg.shape_operator_density(
            LOSS, METRIC, POINT, key=key, grid=jnp.zeros((2, 2), jnp.float64)
        )


def test_under_outer_jit(dense):
    @eqx.filter_jit
    def top(x, key):
        return gh.linalg.shape_operator_eigenvalues(
            LOSS, METRIC, x, key=key, k=2, num_iterations=D
        ).eigenvalues

    assert_close(
        top(POINT, jr.key(30)), np.asarray(dense.eigenvalues)[::-1][:2], rtol=1e-8
    )


@pytest.mark.float32
def test_float32_follows_dtype():
    x = jnp.asarray(POINT, jnp.float32)
    A = jnp.asarray(_A, jnp.float32)
    f = lambda x: 0.5 * x @ A @ x + jnp.sum(jnp.sin(x))
    metric = gh.metrics.Diagonal(lambda x: 1.0 + x**2)
    trace = gh.linalg.shape_operator_trace(f, metric, x, key=jr.key(31), num_probes=9)
    values = gh.linalg.shape_operator_eigenvalues(
        f, metric, x, key=jr.key(32), k=2, num_iterations=D
    )
    for leaf in (trace.estimate, trace.std_error, values.eigenvalues):
        assert leaf.dtype == jnp.float32
    dense_eig = np.asarray(_invariants(f, metric, x).eigenvalues)
    assert_close(values.eigenvalues, dense_eig[::-1][:2], rtol=1e-4)
