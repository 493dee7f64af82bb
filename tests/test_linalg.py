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


# 4 leaves a remainder batch; 12 and 40 hold every probe in one batch (one vmap, no
# loop); each must give what one probe at a time gives.
@pytest.mark.parametrize("batch_size", [4, 12, 40])
@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_batch_size_does_not_change_the_trace(method, batch_size):
    kwargs = dict(key=jr.key(8), num_probes=12, method=method)
    one = gh.linalg.shape_operator_trace(LOSS, METRIC, POINT, **kwargs)
    batched = gh.linalg.shape_operator_trace(
        LOSS, METRIC, POINT, batch_size=batch_size, **kwargs
    )
    assert_close(batched.estimate, one.estimate, rtol=1e-12)
    assert_close(batched.std_error, one.std_error, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_batch_size_does_not_change_the_logdet(batch_size):
    kwargs = dict(key=jr.key(8), num_probes=3, num_iterations=D, shift=10.0)
    one = gh.linalg.shape_operator_logdet(LOSS, METRIC, POINT, **kwargs)
    batched = gh.linalg.shape_operator_logdet(
        LOSS, METRIC, POINT, batch_size=batch_size, **kwargs
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


def test_lanczos_restarts_in_the_metric_inner_product():
    # G = 2 I (a constant, non-Euclidean metric: Z = G V is stored): E = H / 2 has
    # two distinct eigenvalues, so the Krylov space breaks down after two steps and
    # the iteration restarts; the residuals are floored at eps ||T||, never 0.
    f = lambda x: 0.5 * jnp.sum(x**2) + x[0] ** 2
    metric = gh.metrics.Diagonal(lambda x: 2.0 * jnp.ones_like(x))
    x = jnp.ones(8, jnp.float64)
    result = gh.linalg.shape_operator_eigenvalues(
        f, metric, x, key=jr.key(15), k=8, num_iterations=8
    )
    assert_close(result.eigenvalues, np.array([1.5] + [0.5] * 7), rtol=1e-10)
    residuals = np.asarray(result.residuals)
    assert np.all(residuals < 1e-8) and np.all(residuals > 0)


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


# ---------------------------------------------------------------------------------
# Krylov solves: conjugate gradients and MINRES
# ---------------------------------------------------------------------------------


def _symmetric(d, eigenvalues, seed):
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]
    return (Q * eigenvalues) @ Q.T


def _rhs(d, seed):
    return np.random.default_rng(seed).standard_normal(d)


def test_cg_matches_dense_solve():
    d = 60
    A = _symmetric(d, np.logspace(-2, 1, d), 40)
    b = _rhs(d, 41)
    x = jax.jit(lambda b: gh.linalg.cg_solve(lambda v: jnp.asarray(A) @ v, b))(
        jnp.asarray(b)
    )
    # The default float64 rtol is 100 eps; the condition number is 1e3.
    assert_close(x, np.linalg.solve(A, b), rtol=1e-10)
    # A looser tolerance is honoured: fewer steps, a larger residual.
    loose = gh.linalg.cg_solve(lambda v: jnp.asarray(A) @ v, jnp.asarray(b), rtol=1e-3)
    residual = np.linalg.norm(A @ np.asarray(loose) - b) / np.linalg.norm(b)
    assert 1e-8 < residual <= 1e-3


def test_minres_matches_dense_solve_on_indefinite_systems():
    d = 50
    eigenvalues = np.concatenate([-np.logspace(-1, 1, 20), np.logspace(-1, 1, d - 20)])
    A = _symmetric(d, eigenvalues, 42)
    b = _rhs(d, 43)
    solve = jax.jit(
        lambda b: gh.linalg.symmetric_solve(lambda v: jnp.asarray(A) @ v, b, rtol=1e-13)
    )
    assert_close(solve(jnp.asarray(b)), np.linalg.solve(A, b), rtol=1e-10)


def test_minres_on_a_system_where_restarted_gmres_failed():
    # A spectrum symmetric about zero, `+-linspace(0.1, 10)`: lineax's GMRES with
    # restart 20 (the previous `symmetric_solve`) returned NaN here.
    d = 50
    eigenvalues = np.concatenate(
        [-np.linspace(0.1, 10, d // 2), np.linspace(0.1, 10, d - d // 2)]
    )
    A = _symmetric(d, eigenvalues, 44)
    b = _rhs(d, 45)
    x = gh.linalg.symmetric_solve(lambda v: jnp.asarray(A) @ v, jnp.asarray(b))
    assert_close(x, np.linalg.solve(A, b), rtol=1e-9)


def test_krylov_solves_on_pytrees():
    d = 30
    A = _symmetric(d, np.concatenate([-np.ones(10), np.linspace(0.5, 3, d - 10)]), 46)
    b_flat = _rhs(d, 47)
    b = {"W": jnp.asarray(b_flat[:20].reshape(4, 5)), "c": jnp.asarray(b_flat[20:])}
    unravel = ravel_pytree(b)[1]
    mvp = lambda v: unravel(jnp.asarray(A) @ ravel_pytree(v)[0])
    x = gh.linalg.symmetric_solve(mvp, b, rtol=1e-13)
    assert jtu.tree_structure(x) == jtu.tree_structure(b)
    assert_close(ravel_pytree(x)[0], np.linalg.solve(A, b_flat), rtol=1e-10)
    # CG on the SPD operator A^2 + I.
    spd = A @ A + np.eye(d)
    mvp_spd = lambda v: unravel(jnp.asarray(spd) @ ravel_pytree(v)[0])
    x = gh.linalg.cg_solve(mvp_spd, b, rtol=1e-13)
    assert_close(ravel_pytree(x)[0], np.linalg.solve(spd, b_flat), rtol=1e-10)


@pytest.mark.parametrize("solve", [gh.linalg.cg_solve, gh.linalg.symmetric_solve])
def test_krylov_solve_derivatives_are_implicit(solve):
    # d/ds of (s A)^-1 b = -(1/s) x, and d/db of 1^T (s A)^-1 b = (s A)^-1 1, through
    # `custom_linear_solve` (not through the iterations); and `vmap`.
    d = 20
    A = jnp.asarray(_symmetric(d, np.linspace(0.5, 4.0, d), 48))
    b = jnp.asarray(_rhs(d, 49))
    s = jnp.asarray(2.0, jnp.float64)
    x = lambda s, b: solve(lambda v: s * (A @ v), b, rtol=1e-13)
    _, dx = jax.jvp(lambda s: x(s, b), (s,), (jnp.ones((), jnp.float64),))
    assert_close(dx, -x(s, b) / s, rtol=1e-10)
    expected = np.linalg.solve(2.0 * np.asarray(A), np.ones(d))
    grad = jax.grad(lambda b: jnp.sum(x(s, b)))(b)
    assert_close(grad, expected, rtol=1e-10)
    batched = jax.vmap(lambda b: x(s, b))(jnp.stack([b, jnp.ones(d, jnp.float64)]))
    assert_close(batched[1], expected, rtol=1e-10)


def test_krylov_solve_errors():
    d = 20
    indefinite = jnp.asarray(_symmetric(d, np.linspace(-1.0, 1.0, d), 50))
    spd = jnp.asarray(_symmetric(d, np.logspace(-3, 0, d), 51))
    b = jnp.asarray(_rhs(d, 52))
    with pytest.raises(Exception, match="not positive definite"):
        jax.block_until_ready(gh.linalg.cg_solve(lambda v: indefinite @ v, b))
    with pytest.raises(Exception, match="not positive definite"):
        jax.block_until_ready(gh.linalg.cg_solve(lambda v: -spd @ v, b))
    with pytest.raises(Exception, match="did not reach the tolerance"):
        jax.block_until_ready(gh.linalg.cg_solve(lambda v: spd @ v, b, max_steps=3))
    with pytest.raises(Exception, match="did not reach the tolerance"):
        jax.block_until_ready(
            gh.linalg.symmetric_solve(lambda v: indefinite @ v, b, max_steps=3)
        )
    # A singular system with `b` outside the range: MINRES cannot reach the
    # tolerance, and says so instead of returning garbage.
    singular = jnp.asarray(_symmetric(d, np.concatenate([[0.0], np.ones(d - 1)]), 53))
    with pytest.raises(Exception, match="did not reach the tolerance"):
        jax.block_until_ready(gh.linalg.symmetric_solve(lambda v: singular @ v, b))
    with pytest.raises(ValueError, match="`max_steps`"):
        gh.linalg.cg_solve(lambda v: spd @ v, b, max_steps=0)
    with pytest.raises(ValueError, match="`rtol`"):
        gh.linalg.symmetric_solve(lambda v: spd @ v, b, rtol=-1.0)
    with pytest.raises(ValueError, match="`mvp\\(b\\)`"):
        gh.linalg.cg_solve(lambda v: v[:3], b)
    # b = 0 gives x = 0 at once.
    zero = gh.linalg.cg_solve(lambda v: spd @ v, jnp.zeros(d, jnp.float64))
    assert float(jnp.max(jnp.abs(zero))) == 0.0
