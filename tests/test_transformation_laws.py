"""Transformation laws under random charts (hypothesis), with negative controls.

For a chart `psi = phi(theta)` with Jacobian `J` at `theta`, and everything carried
through it (the field `f o phi^{-1}`, the metric `J^-T G J^-1`, the connection by the
inhomogeneous law), the invariant objects transform as tensors and their spectra and
Newton iterates are chart-independent; the calculus ones are not.

All quantities of one example are computed by one `eqx.filter_jit` function, so each
chart kind compiles once and further hypothesis examples only execute.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from helpers import assert_close, assert_not_close, tol
from hypothesis import given
from strategies import chart_cases, make_field, make_metric

import geomhess as gh


RTOL = tol(jnp.float64)


@eqx.filter_jit
def _laws(chart, metric, f, x):
    """Everything the tests below compare, in theta and in psi coordinates."""
    y = chart(x)
    J = chart.jacobian(x)
    J_inv = jax.jacfwd(chart.inverse)(y)
    f_psi, metric_psi = f.reparametrize(chart), metric.reparametrize(chart)
    flat, flat_psi = gh.connections.Flat(), gh.connections.Flat().reparametrize(chart)
    v = jnp.arange(1.0, x.shape[0] + 1.0)
    w = jnp.linspace(-1.0, 1.0, x.shape[0])
    out = dict(y=y, J=J, J_inv=J_inv, x_back=chart.inverse(y), v=v, w=w)
    # Vectors and covectors.
    out["v_psi"] = chart.push_vector(x, v)[1]
    out["df"] = f.differential(x)
    out["df_psi"] = f_psi.differential(y)
    out["pulled_df"] = chart.pull_covector(x, out["df_psi"])
    # The metric.
    out["G"] = metric.matrix(x)
    out["G_psi"] = metric_psi.matrix(y)
    out["mvp_raise_psi"] = metric_psi.mvp(y, metric_psi.raise_index(y, w))
    # The connection, three ways.
    out["gamma"] = gh.LeviCivita(metric).christoffel(x)
    out["gamma_carried"] = gh.LeviCivita(metric).reparametrize(chart).christoffel(y)
    out["gamma_of_carried_metric"] = gh.LeviCivita(metric_psi).christoffel(y)
    out["inverse_hessian"] = jax.hessian(chart.inverse)(y)
    # Hessians: covariant (two connections), calculus, shape operator.
    out["H_lc"] = gh.covariant_hessian(f, metric, x)
    out["H_lc_psi"] = gh.covariant_hessian(f_psi, metric_psi, y)
    out["H_flat"] = gh.covariant_hessian(f, flat, x)
    out["H_flat_psi"] = gh.covariant_hessian(f_psi, flat_psi, y)
    out["H_naive_psi"] = jax.hessian(f_psi)(y)
    out["E"] = gh.shape_operator(f, metric, x)
    out["E_psi"] = gh.shape_operator(f_psi, metric_psi, y)
    out["inv"] = gh.hessian_invariants(f, metric, x)
    out["inv_psi"] = gh.hessian_invariants(f_psi, metric_psi, y)
    # Newton: flat connection (plain Newton in theta) and Levi-Civita.
    eta = gh.newton_step(f, flat, x)
    eta_psi = gh.newton_step(f_psi, flat_psi, y)
    scale = 0.2 / jnp.maximum(1.0, jnp.linalg.norm(eta))  # stay inside the domain
    out.update(eta=eta, eta_psi=eta_psi, x_next=x + scale * eta)
    out["x_next_from_psi"] = chart.inverse(gh.exp_map(flat_psi, y, scale * eta_psi))
    out["eta_lc"] = gh.newton_step(f, metric, x)
    out["eta_lc_psi"] = gh.newton_step(f_psi, metric_psi, y)
    out["plain_newton_psi"] = -jnp.linalg.solve(out["H_naive_psi"], out["df_psi"])
    return out


def _compute(case_and_key):
    case, key = case_and_key
    d = case.x.shape[0]
    k_metric, k_field = jax.random.split(key)
    f = make_field(k_field, d)
    q = _laws(case.chart, make_metric(k_metric, d), f, case.x)
    return case, f, jax.tree_util.tree_map(np.asarray, q)


@given(chart_cases())
def test_chart_round_trip_vectors_and_covectors(case_and_key):
    case, _, q = _compute(case_and_key)
    assert_close(q["x_back"], case.x, rtol=RTOL)
    assert_close(q["J_inv"] @ q["J"], np.eye(case.x.shape[0]), rtol=RTOL)
    assert_close(q["v_psi"], q["J"] @ q["v"], rtol=RTOL)
    # The differential is a covector: df(theta) = J^T df~(psi).
    assert_close(q["pulled_df"], q["df"], rtol=RTOL)
    assert_close(q["J"].T @ q["df_psi"], q["df"], rtol=RTOL)


@given(chart_cases())
def test_metric_law(case_and_key):
    _, _, q = _compute(case_and_key)
    assert_close(q["G_psi"], q["J_inv"].T @ q["G"] @ q["J_inv"], rtol=RTOL)
    # raise_index goes through the chart (J G^-1 J^T): it must invert mvp.
    assert_close(q["mvp_raise_psi"], q["w"], rtol=RTOL)


@given(chart_cases())
def test_connection_law_is_levi_civita_of_reparametrized_metric(case_and_key):
    _, _, q = _compute(case_and_key)
    assert_close(q["gamma_carried"], q["gamma_of_carried_metric"], rtol=RTOL)
    # The dense inhomogeneous law written out independently:
    # Gamma~^k_ij = J^k_o (Gamma^o_mn Ji^m_i Ji^n_j + d2theta^o / dpsi^i dpsi^j).
    J, J_inv = q["J"], q["J_inv"]
    homogeneous = np.einsum("omn,mi,nj->oij", q["gamma"], J_inv, J_inv)
    expected = np.einsum("ko,oij->kij", J, homogeneous + q["inverse_hessian"])
    assert_close(q["gamma_carried"], expected, rtol=RTOL)


@given(chart_cases())
def test_covariant_hessian_is_a_tensor_away_from_critical_points(case_and_key):
    case, _, q = _compute(case_and_key)
    assert np.linalg.norm(q["df"]) > 1e-2  # genuinely non-critical
    J_inv = q["J_inv"]
    assert_close(q["H_lc_psi"], J_inv.T @ q["H_lc"] @ J_inv, rtol=RTOL)
    assert_close(q["H_flat_psi"], J_inv.T @ q["H_flat"] @ J_inv, rtol=RTOL)
    # Negative control: the calculus Hessian is not a tensor here (unless the chart
    # is affine, whose second derivatives vanish).
    if case.name != "affine":
        assert_not_close(q["H_naive_psi"], J_inv.T @ q["H_flat"] @ J_inv, rtol=1e-6)


@given(chart_cases())
def test_shape_operator_spectrum_is_invariant(case_and_key):
    _, _, q = _compute(case_and_key)
    inv, inv_psi = q["inv"], q["inv_psi"]
    for name in ("eigenvalues", "trace", "det", "logdet", "sign"):
        assert_close(getattr(inv_psi, name), getattr(inv, name), rtol=RTOL)
    # E~ = J E J^-1 as matrices too.
    assert_close(q["E_psi"], q["J"] @ q["E"] @ q["J_inv"], rtol=RTOL)
    # Negative control: the calculus Hessian's eigenvalues move.
    assert_not_close(
        np.linalg.eigvalsh(q["H_naive_psi"]), np.linalg.eigvalsh(q["H_flat"]), rtol=1e-6
    )


@given(chart_cases(kinds=["exp_affine", "polar", "softplus", "spherical"]))
def test_newton_iterates_agree_across_charts(case_and_key):
    _, _, q = _compute(case_and_key)
    J = q["J"]
    # The covariant step is a vector, eta~ = J eta, for both connections ...
    assert_close(q["eta_psi"], J @ q["eta"], rtol=RTOL)
    assert_close(q["eta_lc_psi"], J @ q["eta_lc"], rtol=RTOL)
    # ... and moved along the exponential map it lands on the same point.
    assert_close(q["x_next_from_psi"], q["x_next"], rtol=tol(jnp.float64, "ode"))
    # Negative control: plain Newton in psi (calculus Hessian) is a different step.
    assert_not_close(q["plain_newton_psi"], J @ q["eta"], rtol=1e-6)
