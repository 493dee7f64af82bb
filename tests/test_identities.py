"""Identities as oracles: Christoffel symmetry, metric compatibility, Riemann symmetries
and Bianchi identities, and dense against matrix-free agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, tol
from strategies import make_field, make_metric

import geomhess as gh


RTOL = tol(jnp.float64)


def _setup(seed, d):
    key = jax.random.key(seed)
    k1, k2, k3 = jax.random.split(key, 3)
    return make_metric(k1, d), make_field(k2, d), 0.5 * jax.random.normal(k3, (d,))


@pytest.mark.parametrize("seed, d", [(0, 2), (1, 3), (2, 4)])
def test_levi_civita_is_symmetric_and_metric_compatible(seed, d):
    metric, _, x = _setup(seed, d)
    gamma = gh.LeviCivita(metric).christoffel(x)
    assert_close(gamma, jnp.swapaxes(gamma, 1, 2), rtol=RTOL)  # torsion-free
    # d_k g_ij = Gamma^l_ki g_lj + Gamma^l_kj g_il
    G = metric.matrix(x)
    dG = jnp.moveaxis(jax.jacfwd(metric.matrix)(x), 2, 0)  # [k, i, j]
    rhs = jnp.einsum("lki,lj->kij", gamma, G) + jnp.einsum("lkj,il->kij", gamma, G)
    assert_close(dG, rhs, rtol=RTOL)


@pytest.mark.parametrize("seed, d", [(3, 2), (4, 3), (5, 4)])
def test_riemann_symmetries_and_first_bianchi(seed, d):
    metric, _, x = _setup(seed, d)
    R = gh.riemann_tensor(metric, x)  # R[l, i, j, k] = R^l_ijk
    Rm = jnp.einsum("ml,lijk->ijkm", metric.matrix(x), R)  # Rm_ijkm = <R(i,j)k, m>
    assert np.max(np.abs(Rm)) > 1e-3  # a genuinely curved metric
    assert_close(Rm, -jnp.swapaxes(Rm, 0, 1), rtol=RTOL)
    assert_close(Rm, -jnp.swapaxes(Rm, 2, 3), rtol=RTOL)
    assert_close(Rm, jnp.transpose(Rm, (2, 3, 0, 1)), rtol=RTOL)
    bianchi = R + jnp.transpose(R, (0, 2, 3, 1)) + jnp.transpose(R, (0, 3, 1, 2))
    assert_close(bianchi, np.zeros_like(R), rtol=RTOL)
    ricci = gh.ricci_tensor(metric, x)
    assert_close(ricci, ricci.T, rtol=RTOL)


def test_contracted_second_bianchi_identity():
    # div Ric = 1/2 dS:  g^{ij} (nabla_i Ric)_jk = 1/2 d_k S.
    metric, _, x = _setup(6, 3)
    connection = gh.LeviCivita(metric)
    ric, d_ric = (
        gh.ricci_tensor(metric, x),
        jax.jacfwd(lambda p: gh.ricci_tensor(metric, p))(x),
    )
    gamma = connection.christoffel(x)
    # (nabla_i Ric)_jk = d_i Ric_jk - Gamma^l_ij Ric_lk - Gamma^l_ik Ric_jl
    nabla = (
        jnp.moveaxis(d_ric, 2, 0)
        - jnp.einsum("lij,lk->ijk", gamma, ric)
        - jnp.einsum("lik,jl->ijk", gamma, ric)
    )
    divergence = jnp.einsum("ij,ijk->k", jnp.linalg.inv(metric.matrix(x)), nabla)
    dS = jax.grad(lambda p: gh.scalar_curvature(metric, p))(x)
    assert_close(divergence, 0.5 * dS, rtol=1e-8)


@pytest.mark.parametrize("seed, d", [(7, 2), (8, 3), (9, 5)])
def test_dense_and_matrix_free_agree(seed, d):
    metric, f, x = _setup(seed, d)
    connection = gh.LeviCivita(metric)
    gamma = connection.christoffel(x)
    # The dense Koszul path against the d^2 matrix-free contractions.
    assert_close(
        gamma, gh.connections.christoffel_from_contract(connection, x), rtol=RTOL
    )
    key = jax.random.key(seed + 100)
    u, v, w = jax.random.normal(key, (3, d))
    # Both contractions against the dense array.
    assert_close(
        connection.contract(x, u, v), jnp.einsum("kij,i,j->k", gamma, u, v), rtol=RTOL
    )
    assert_close(
        connection.contract_covector(x, v, w),
        jnp.einsum("kij,j,k->i", gamma, v, w),
        rtol=RTOL,
    )
    # The generic VJP path agrees with the Koszul closed form.
    assert_close(
        gh.connections.contract_covector_by_vjp(connection, x, v, w),
        connection.contract_covector(x, v, w),
        rtol=RTOL,
    )
    # The covariant Hessian: dense array formula, dense operator and matrix-free HVP.
    df = jax.grad(f)(x)
    dense = jax.hessian(f)(x) - jnp.einsum("kij,k->ij", gamma, df)
    H = gh.covariant_hessian(f, connection, x)
    assert_close(H, dense, rtol=RTOL)
    assert_close(H, H.T, rtol=RTOL)
    assert_close(gh.covariant_hvp(f, connection, x, v), dense @ v, rtol=RTOL)
    # The metric: matrix against mvp and raise_index.
    G = metric.matrix(x)
    assert_close(metric.mvp(x, v), G @ v, rtol=RTOL)
    assert_close(metric.raise_index(x, w), jnp.linalg.solve(G, w), rtol=RTOL)
    assert_close(
        gh.riemannian_gradient(f, metric, x), jnp.linalg.solve(G, df), rtol=RTOL
    )
    assert_close(gh.shape_operator(f, metric, x), jnp.linalg.solve(G, dense), rtol=RTOL)
    eig = np.sort(np.linalg.eigvals(np.linalg.solve(G, dense)).real)
    assert_close(gh.hessian_invariants(f, metric, x).eigenvalues, eig, rtol=1e-9)


@pytest.mark.parametrize("seed, d", [(10, 3), (11, 6)])
def test_large_d_path_agrees_with_the_dense_levi_civita_path(seed, d, monkeypatch):
    # Above `_DENSE_LEVI_CIVITA_MAX_D` the operators switch to covariant HVPs on the
    # basis and a separate generalized eigensolve; force that switch at small d.
    import geomhess.operators._hessian as hessian_module
    import geomhess.operators._invariants as invariants_module

    metric, f, x = _setup(seed, d)
    connection = gh.LeviCivita(metric)

    def everything():
        return (
            gh.covariant_hessian(f, connection, x),
            gh.shape_operator(f, metric, x),
            gh.hessian_invariants(f, metric, x).eigenvalues,
            gh.classify_critical_point(f, x, metric).gradient_norm,
        )

    dense = everything()
    for module in (hessian_module, invariants_module):
        monkeypatch.setattr(module, "_DENSE_LEVI_CIVITA_MAX_D", 0)
    for a, b in zip(dense, everything(), strict=True):
        assert_close(a, b, rtol=RTOL)


def test_matrix_free_metrics_on_pytrees():
    # A diagonal metric on a dict of parameters: the matrix-free path never flattens.
    params = {"w": jnp.array([[0.5, -1.0], [2.0, 0.3]]), "b": jnp.array([0.1, -0.2])}
    metric = gh.metrics.Diagonal(
        lambda p: jax.tree_util.tree_map(lambda a: 1.0 + a**2, p)
    )
    loss = lambda p: jnp.sum(jnp.tanh(p["w"] @ p["b"])) + jnp.sum(p["w"] ** 3) / 3
    v = {"w": jnp.array([[1.0, 0.0], [0.5, -0.5]]), "b": jnp.array([0.3, 1.0])}
    # Compare with the same computation on the flattened vector.
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    flat_v, _ = jax.flatten_util.ravel_pytree(v)
    flat_metric = gh.metrics.FromFunction(lambda q: jnp.diag(1.0 + q**2))
    flat_loss = lambda q: loss(unravel(q))
    hvp_tree = gh.covariant_hvp(loss, metric, params, v)
    hvp_flat = gh.covariant_hvp(flat_loss, flat_metric, flat, flat_v)
    assert_close(jax.flatten_util.ravel_pytree(hvp_tree)[0], hvp_flat, rtol=RTOL)
    rgrad = gh.riemannian_gradient(loss, metric, params)
    assert_close(
        jax.flatten_util.ravel_pytree(rgrad)[0],
        gh.riemannian_gradient(flat_loss, flat_metric, flat),
        rtol=RTOL,
    )
    # Newton on the pytree (Krylov) against the dense flat solve.
    eta_tree = gh.newton_step(loss, metric, params, damping=1.0)
    eta_flat = gh.newton_step(flat_loss, flat_metric, flat, damping=1.0)
    assert_close(jax.flatten_util.ravel_pytree(eta_tree)[0], eta_flat, rtol=1e-8)
