"""Metrics of a model (Gauss-Newton, Fisher, per-layer) and charts on parameter pytrees.

The matrix-free metrics are checked against dense formulas written out here from the
definitions (explicit Jacobians, output-space curvatures, expected score outer
products, Christoffel symbols from `jacfwd` of the dense metric), on a tiny MLP whose
parameters are a dict pytree.
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.tree_util as jtu
import numpy as np
import pytest
from helpers import assert_close, assert_not_close, tol
from jax.flatten_util import ravel_pytree

import geomhess as gh


F64 = jnp.float64
RTOL = tol(F64)
N, D_IN, HIDDEN, D_OUT = 5, 2, 3, 3


def _tanh_mlp(params, inputs):
    hidden = jnp.tanh(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T


def _relu_mlp(params, inputs):
    hidden = jax.nn.relu(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T


def _problem(seed=0, dtype=F64):
    """Parameters (a dict pytree), a batch, regression targets, labels and a tangent.

    Drawn with numpy: eager `jax.random` calls compile once per shape, which costs
    more than the tests themselves on a small machine.
    """
    rng = np.random.default_rng(seed)
    normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), dtype)
    params = {
        "W1": normal(HIDDEN, D_IN),
        "b1": normal(HIDDEN) * jnp.asarray(0.5, dtype),
        "W2": normal(D_OUT, HIDDEN),
    }
    inputs = normal(N, D_IN)
    targets = normal(N, D_OUT)
    labels = jnp.asarray(rng.integers(0, D_OUT, N))
    tangent = jtu.tree_map(lambda leaf: normal(*leaf.shape), params)
    return params, inputs, targets, labels, tangent


def _squared_error(inputs, targets):
    def loss(params):
        residual = _tanh_mlp(params, inputs) - targets
        return jnp.asarray(0.5, F64) * jnp.mean(jnp.sum(residual**2, axis=-1))

    return loss


def _cross_entropy(inputs, labels):
    def loss(params):
        logp = jax.nn.log_softmax(_tanh_mlp(params, inputs), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    return loss


def _flat_jacobian(params, inputs, model=_tanh_mlp):
    """`J[n, o, i] = d model(params)[n, o] / d flat_params[i]`, by `jacfwd`."""
    flat, unravel = ravel_pytree(params)
    return jax.jacfwd(lambda f: model(unravel(f), inputs))(flat)


def _flat(metric_or_fn, params):
    """A dense `(d, d)` matrix of a linear map of parameter pytrees."""
    flat, unravel = ravel_pytree(params)
    column = lambda e: ravel_pytree(metric_or_fn(unravel(e)))[0]
    return jax.jit(jax.vmap(column, out_axes=-1))(jnp.eye(flat.size, dtype=flat.dtype))


# ---------------------------------------------------------------- dense formulas


def test_gauss_newton_squared_error_is_jacobian_product():
    params, inputs, *_, tangent = _problem()
    damping = 0.25
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=damping)
    J = _flat_jacobian(params, inputs).reshape(N * D_OUT, -1)
    d = J.shape[1]
    expected = J.T @ J / jnp.asarray(N, F64) + damping * jnp.eye(d, dtype=F64)
    assert_close(_flat(lambda v: metric.mvp(params, v), params), expected, rtol=RTOL)
    # The dense path on a flat point goes through the same `mvp`.
    flat, unravel = ravel_pytree(params)
    flat_metric = gh.metrics.GaussNewton(
        lambda f, x: _tanh_mlp(unravel(f), x), inputs, damping=damping
    )
    assert_close(jax.jit(lambda f: flat_metric.matrix(f))(flat), expected, rtol=RTOL)
    v_flat = ravel_pytree(tangent)[0]
    assert_close(
        metric.inner(params, tangent, tangent), v_flat @ expected @ v_flat, rtol=RTOL
    )


def test_gauss_newton_softmax_is_block_diagonal_curvature():
    params, inputs, *_ = _problem(1)
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs, "softmax_cross_entropy")
    J = _flat_jacobian(params, inputs).reshape(N * D_OUT, -1)
    p = jax.nn.softmax(_tanh_mlp(params, inputs), axis=-1)
    blocks = [jnp.diag(p_n) - jnp.outer(p_n, p_n) for p_n in p]
    Lambda = jsl.block_diag(*blocks) / jnp.asarray(N, F64)
    expected = J.T @ Lambda @ J
    assert_close(_flat(lambda v: metric.mvp(params, v), params), expected, rtol=RTOL)


def test_categorical_fisher_is_expected_score_outer_product():
    """`F = 1/N sum_n sum_c p_nc s_nc s_nc^T` with `s_nc = d log p_nc / d params`."""
    params, inputs, *_ = _problem(2)
    flat, unravel = ravel_pytree(params)
    log_p = lambda f: jax.nn.log_softmax(_tanh_mlp(unravel(f), inputs), axis=-1)
    scores = jax.jacfwd(log_p)(flat)  # (N, C, d)
    p = jnp.exp(log_p(flat))
    expected = jnp.einsum("nc,nci,ncj->ij", p, scores, scores) / jnp.asarray(N, F64)
    fisher = gh.metrics.Fisher(_tanh_mlp, inputs, "categorical")
    dense = _flat(lambda v: fisher.mvp(params, v), params)
    assert_close(dense, expected, rtol=RTOL)
    # The expected Fisher equals the GGN of the mean cross-entropy (natural link).
    ggn = gh.metrics.GaussNewton(_tanh_mlp, inputs, "softmax_cross_entropy")
    assert_close(_flat(lambda v: ggn.mvp(params, v), params), dense, rtol=RTOL)


def test_gaussian_fisher_is_scaled_squared_error_gauss_newton():
    params, inputs, *_ = _problem(3)
    variance = 0.5
    fisher = gh.metrics.Fisher(_tanh_mlp, inputs, "gaussian", variance=variance)
    J = _flat_jacobian(params, inputs).reshape(N * D_OUT, -1)
    # E[s s^T] for y ~ N(mu, variance I): s = J^T (y - mu) / variance.
    expected = J.T @ J / jnp.asarray(N * variance, F64)
    assert_close(_flat(lambda v: fisher.mvp(params, v), params), expected, rtol=RTOL)


def test_callable_loss_hessian_from_a_scalar_loss():
    """`loss_hessian` as the output-space HVP of a loss equals the named one."""
    params, inputs, _, labels, tangent = _problem(4)

    def ell(logits):
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    custom = gh.metrics.GaussNewton(
        _tanh_mlp, inputs, lambda z, u: jax.jvp(jax.grad(ell), (z,), (u,))[1]
    )
    named = gh.metrics.GaussNewton(_tanh_mlp, inputs, "softmax_cross_entropy")
    assert_close(
        ravel_pytree(custom.mvp(params, tangent))[0],
        ravel_pytree(named.mvp(params, tangent))[0],
        rtol=RTOL,
    )


def test_gauss_newton_is_the_hessian_at_an_interpolating_point():
    """With zero residuals the second term of the Hessian vanishes: H = GGN."""
    params, inputs, *_ = _problem(5)
    targets = _tanh_mlp(params, inputs)
    loss = _squared_error(inputs, targets)
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs)
    hessian = _flat(lambda v: jax.jvp(jax.grad(loss), (params,), (v,))[1], params)
    assert_close(_flat(lambda v: metric.mvp(params, v), params), hessian, rtol=RTOL)


# ---------------------------------------------------------------- solves and errors


def test_raise_index_inverts_mvp_and_needs_damping():
    params, inputs, *_, tangent = _problem(6)
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=1e-2)
    raised = jax.jit(lambda p, w: metric.raise_index(p, w))(params, tangent)
    assert_close(
        ravel_pytree(metric.mvp(params, raised))[0],
        ravel_pytree(tangent)[0],
        rtol=1e-8,
    )
    with pytest.raises(ValueError, match="damping > 0"):
        gh.metrics.GaussNewton(_tanh_mlp, inputs).raise_index(params, tangent)
    with pytest.raises(ValueError, match="damping > 0"):
        gh.riemannian_gradient(
            _squared_error(inputs, inputs[:, :1]),
            gh.metrics.Fisher(_tanh_mlp, inputs),
            params,
        )
    # A traced damping is checked at run time, through `equinox.error_if`.
    traced = jax.jit(
        lambda damping: gh.metrics.GaussNewton(
            _tanh_mlp, inputs, damping=damping
        ).raise_index(params, tangent)
    )
    with pytest.raises(Exception, match="damping > 0"):
        jax.block_until_ready(traced(jnp.asarray(0.0, F64)))


def test_raise_index_solver_options():
    params, inputs, *_, tangent = _problem(6)
    # A looser tolerance is honoured (the residual is above the default's) ...
    loose = gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=1e-2, rtol=1e-3)
    raised = loose.raise_index(params, tangent)
    residual = ravel_pytree(loose.mvp(params, raised))[0] - ravel_pytree(tangent)[0]
    relative = float(
        jnp.linalg.norm(residual) / jnp.linalg.norm(ravel_pytree(tangent)[0])
    )
    assert relative <= 1e-3
    # ... and too few steps raise, naming the metric.
    capped = gh.metrics.Fisher(_tanh_mlp, inputs, "gaussian", damping=1e-2, max_steps=2)
    with pytest.raises(Exception, match="Fisher.raise_index.*did not reach"):
        jax.block_until_ready(capped.raise_index(params, tangent))
    with pytest.raises(ValueError, match="`max_steps`"):
        gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=1e-2, max_steps=0)
    with pytest.raises(ValueError, match="`rtol`"):
        gh.metrics.Fisher(_tanh_mlp, inputs, damping=1e-2, rtol=-1.0)


def test_construction_errors():
    params, inputs, *_, tangent = _problem(7)
    with pytest.raises(ValueError, match="unknown `loss_hessian"):
        gh.metrics.GaussNewton(_tanh_mlp, inputs, "hinge")
    with pytest.raises(ValueError, match="damping"):
        gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=-1.0)
    with pytest.raises(ValueError, match="likelihood"):
        gh.metrics.Fisher(_tanh_mlp, inputs, "poisson")
    with pytest.raises(ValueError, match="variance"):
        gh.metrics.Fisher(_tanh_mlp, inputs, "gaussian", variance=0.0)
    scalar_model = gh.metrics.GaussNewton(lambda p, x: jnp.sum(_tanh_mlp(p, x)), inputs)
    with pytest.raises(ValueError, match="leading batch axis"):
        scalar_model.mvp(params, tangent)
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs)
    with pytest.raises(ValueError, match="`v` has"):
        metric.mvp(params, {"W1": tangent["W1"]})
    with pytest.raises(ValueError, match="1-D array point"):
        metric.matrix(params)


# ---------------------------------------------------------------- the connection


def _dense_covariant_hessian(loss_flat, G_fn, x):
    """`d^2 f - Gamma^k_ij d_k f`, with Gamma from `jacfwd` of the dense metric."""
    G = G_fn(x)
    dG = jax.jacfwd(G_fn)(x)  # dG[l, j, i] = d_i g_lj
    lowered = 0.5 * (
        jnp.transpose(dG, (0, 2, 1)) + dG - jnp.transpose(dG, (2, 1, 0))
    )  # Gamma_{l, ij}
    gamma = jnp.linalg.solve(G, lowered.reshape(G.shape[0], -1)).reshape(dG.shape)
    return jax.hessian(loss_flat)(x) - jnp.einsum(
        "kij,k->ij", gamma, jax.grad(loss_flat)(x)
    )


@pytest.mark.parametrize("kind", ["gauss_newton", "fisher"])
def test_covariant_hvp_of_model_metric_matches_dense(kind):
    params, inputs, targets, labels, tangent = _problem(8)
    if kind == "gauss_newton":
        loss = _squared_error(inputs, targets)
        make = lambda model: gh.metrics.GaussNewton(model, inputs, damping=0.1)
    else:
        loss = _cross_entropy(inputs, labels)
        make = lambda model: gh.metrics.Fisher(model, inputs, damping=0.1)
    metric = make(_tanh_mlp)
    flat, unravel = ravel_pytree(params)
    flat_metric = make(lambda f, x: _tanh_mlp(unravel(f), x))
    loss_flat = lambda f: loss(unravel(f))

    hvp = jax.jit(lambda p, v: gh.covariant_hvp(loss, gh.LeviCivita(metric), p, v))
    matrix_free = ravel_pytree(hvp(params, tangent))[0]
    dense = jax.jit(
        lambda f: _dense_covariant_hessian(loss_flat, flat_metric.matrix, f)
    )(flat)
    v_flat = ravel_pytree(tangent)[0]
    assert_close(matrix_free, dense @ v_flat, rtol=1e-8)
    if kind == "gauss_newton":
        # The dense operator on the flattened parameters agrees too.
        covariant = jax.jit(
            lambda f: gh.covariant_hessian(loss_flat, gh.LeviCivita(flat_metric), f)
        )(flat)
        assert_close(covariant, dense, rtol=1e-8)
    # The connection term matters: the plain HVP differs.
    plain = ravel_pytree(jax.jvp(jax.grad(loss), (params,), (tangent,))[1])[0]
    assert_not_close(plain, matrix_free, rtol=1e-4)


def test_model_metric_under_vmap_and_grad():
    params, inputs, *_, tangent = _problem(9)
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=0.1)
    # vmap over several tangent vectors.
    stacked = jtu.tree_map(lambda leaf: jnp.stack([leaf, 2 * leaf]), tangent)
    out = jax.jit(jax.vmap(lambda v: metric.mvp(params, v)))(stacked)
    single = metric.mvp(params, tangent)
    assert_close(out["W2"][1], 2 * single["W2"], rtol=RTOL)
    # grad of the squared norm against a finite difference along `tangent`.
    norm = lambda p: metric.inner(p, tangent, tangent)
    grad = ravel_pytree(jax.jit(jax.grad(norm))(params))[0]
    eps = 1e-6
    shifted = lambda s: jtu.tree_map(lambda p, t: p + s * t, params, tangent)
    fd = (norm(shifted(eps)) - norm(shifted(-eps))) / (2 * eps)
    assert_close(grad @ ravel_pytree(tangent)[0], fd, rtol=1e-6)


# ---------------------------------------------------------------- PerLayer


def test_per_layer_scalars_is_block_scaled_identity():
    params, _, targets, _, tangent = _problem(10)
    scales = {"W1": 2.0, "b1": 0.5, "W2": 3.0}
    metric = gh.metrics.PerLayer(scales)
    out = metric.mvp(params, tangent)
    for name, c in scales.items():
        assert_close(out[name], c * tangent[name], rtol=RTOL)
    back = metric.raise_index(params, out)
    assert_close(ravel_pytree(back)[0], ravel_pytree(tangent)[0], rtol=RTOL)
    # A constant metric is flat: the covariant HVP is the plain HVP.
    loss = lambda p: jnp.sum(jnp.sin(ravel_pytree(p)[0])) + jnp.sum(p["W1"] ** 3)
    plain = jax.jvp(jax.grad(loss), (params,), (tangent,))[1]
    covariant = gh.covariant_hvp(loss, metric, params, tangent)
    assert_close(ravel_pytree(covariant)[0], ravel_pytree(plain)[0], rtol=RTOL)
    flat = ravel_pytree(params)[0]
    assert_close(
        gh.metrics.PerLayer(2.0).matrix(flat),
        2.0 * jnp.eye(flat.size, dtype=F64),
        rtol=RTOL,
    )


def test_per_layer_with_a_metric_block_matches_one_diagonal_metric():
    params, inputs, targets, _, tangent = _problem(11)
    loss = _squared_error(inputs, targets)
    positive = lambda leaf: jnp.asarray(1.0, F64) + leaf**2
    per_layer = gh.metrics.PerLayer(
        {"W1": gh.metrics.Diagonal(positive), "b1": 2.0, "W2": 3.0}
    )
    whole = gh.metrics.Diagonal(
        lambda p: {
            "W1": positive(p["W1"]),
            "b1": jnp.full_like(p["b1"], 2.0),
            "W2": jnp.full_like(p["W2"], 3.0),
        }
    )
    for method in ("mvp", "raise_index"):
        a = getattr(per_layer, method)(params, tangent)
        b = getattr(whole, method)(params, tangent)
        assert_close(ravel_pytree(a)[0], ravel_pytree(b)[0], rtol=RTOL)
    a = gh.covariant_hvp(loss, per_layer, params, tangent)
    b = gh.covariant_hvp(loss, whole, params, tangent)
    assert_close(ravel_pytree(a)[0], ravel_pytree(b)[0], rtol=RTOL)


def test_per_layer_errors():
    params, *_, tangent = _problem(12)
    with pytest.raises(ValueError, match="> 0"):
        gh.metrics.PerLayer({"W1": 1.0, "b1": -1.0, "W2": 1.0})
    with pytest.raises(ValueError, match="metrics.Diagonal"):
        gh.metrics.PerLayer({"W1": jnp.ones(3, F64), "b1": 1.0, "W2": 1.0})
    with pytest.raises(ValueError, match="prefix"):
        gh.metrics.PerLayer({"W1": 1.0, "W3": 1.0}).mvp(params, tangent)
    traced = jax.jit(
        lambda c: gh.metrics.PerLayer({"W1": c, "b1": 1.0, "W2": 1.0}).raise_index(
            params, tangent
        )
    )
    with pytest.raises(Exception, match="not positive"):
        jax.block_until_ready(traced(jnp.asarray(0.0, F64)))


# ---------------------------------------------------------------- charts on pytrees


def _shape_operator_flat(loss, metric, x):
    """The dense shape operator `G^{-1} nabla^2 f` of a pytree point, column by column."""
    return _flat(
        lambda v: metric.raise_index(x, gh.covariant_hvp(loss, metric, x, v)), x
    )


def test_dinh_rescaling_changes_sharpness_not_the_invariant_trace():
    """Dinh et al. (2017): `(W1, b1, W2) -> (a W1, a b1, W2 / a)` leaves a ReLU net's
    function unchanged but rescales the Hessian; the shape operator with the
    Euclidean metric carried through the chart does not change."""
    params, inputs, targets, *_ = _problem(13)
    alpha = 4.0
    chart = gh.charts.Scale({"W1": alpha, "b1": alpha, "W2": 1.0 / alpha})
    psi = chart(params)
    assert_close(_relu_mlp(psi, inputs), _relu_mlp(params, inputs), rtol=RTOL)

    def loss(p):
        residual = _relu_mlp(p, inputs) - targets
        return jnp.asarray(0.5, F64) * jnp.mean(jnp.sum(residual**2, axis=-1))

    loss_psi = gh.ScalarField(loss).reparametrize(chart)
    euclidean = gh.metrics.Euclidean()
    hessian = lambda f, x: _flat(lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1], x)
    naive_theta = jnp.trace(hessian(loss, params))
    naive_psi = jnp.trace(hessian(loss, psi))  # the same function, rescaled point
    assert_not_close(naive_psi, naive_theta, rtol=1e-2)

    theta_op = _shape_operator_flat(loss, euclidean, params)
    psi_op = _shape_operator_flat(loss_psi, euclidean.reparametrize(chart), psi)
    assert_close(jnp.trace(psi_op), jnp.trace(theta_op), rtol=RTOL)
    assert_close(
        jnp.sort(jnp.linalg.eigvals(psi_op).real),
        jnp.sort(jnp.linalg.eigvalsh(theta_op)),
        rtol=1e-8,
    )


def test_elementwise_chart_tensor_law_for_gauss_newton_on_pytrees():
    """Under `psi = softplus(theta)` leaf by leaf, with `J = diag(sigmoid(theta))`,
    `nabla^2 f~(psi) [J v] = J^{-T} nabla^2 f(theta) [v]` for the Levi-Civita
    connection of the Gauss-Newton metric carried through the chart."""
    params, inputs, targets, _, tangent = _problem(14)
    loss = _squared_error(inputs, targets)
    chart = gh.charts.Elementwise.softplus()
    metric = gh.metrics.GaussNewton(_tanh_mlp, inputs, damping=0.1)
    psi = chart(params)
    jac = jtu.tree_map(jax.nn.sigmoid, params)
    v_psi = jtu.tree_map(jnp.multiply, jac, tangent)

    theta_hvp = jax.jit(lambda x, v: gh.covariant_hvp(loss, metric, x, v))
    psi_hvp = jax.jit(
        lambda y, v: gh.covariant_hvp(
            gh.ScalarField(loss).reparametrize(chart), metric.reparametrize(chart), y, v
        )
    )
    expected = jtu.tree_map(jnp.divide, theta_hvp(params, tangent), jac)
    assert_close(
        ravel_pytree(psi_hvp(psi, v_psi))[0], ravel_pytree(expected)[0], rtol=1e-8
    )
    # The metric itself: <J u, J v>~ at psi equals <u, v> at theta.
    carried = metric.reparametrize(chart)
    assert_close(
        jax.jit(lambda y, v: carried.inner(y, v, v))(psi, v_psi),
        jax.jit(lambda x, v: metric.inner(x, v, v))(params, tangent),
        rtol=RTOL,
    )


def test_composed_chart_on_pytrees_round_trips_and_keeps_the_metric():
    params, inputs, *_, tangent = _problem(15)
    scale = gh.charts.Scale({"W1": 2.0, "b1": 1.0, "W2": 0.5})
    chart = scale >> gh.charts.Elementwise.exp()
    psi = chart(params)
    assert_close(
        ravel_pytree(chart.inverse(psi))[0], ravel_pytree(params)[0], rtol=RTOL
    )
    metric = gh.metrics.PerLayer({"W1": 2.0, "b1": 1.0, "W2": 3.0})
    pushed = jax.jvp(chart, (params,), (tangent,))[1]
    assert_close(
        metric.reparametrize(chart).inner(psi, pushed, pushed),
        metric.inner(params, tangent, tangent),
        rtol=RTOL,
    )


def test_scalar_scale_chart_on_pytrees():
    """A single scale works on any pytree: `G~ = G / s^2`, the Hessian `H / s^2`."""
    params, inputs, targets, _, tangent = _problem(16)
    loss = _squared_error(inputs, targets)
    s = 3.0
    chart = gh.charts.Scale(s)
    metric = gh.metrics.PerLayer({"W1": 2.0, "b1": 1.0, "W2": 0.5})
    carried = metric.reparametrize(chart)
    psi = chart(params)
    lowered = carried.mvp(psi, tangent)
    expected = jtu.tree_map(lambda leaf: leaf / s**2, metric.mvp(params, tangent))
    assert_close(ravel_pytree(lowered)[0], ravel_pytree(expected)[0], rtol=RTOL)
    hvp = gh.covariant_hvp(
        gh.ScalarField(loss).reparametrize(chart), carried, psi, tangent
    )
    plain = jax.jvp(jax.grad(loss), (params,), (tangent,))[1]
    expected = jtu.tree_map(lambda leaf: leaf / s**2, plain)
    assert_close(ravel_pytree(hvp)[0], ravel_pytree(expected)[0], rtol=RTOL)
