"""`optim.hessian_free`: the invariant Hessian-free optimizer (issue 14, part 1)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest
from helpers import assert_close, assert_not_close

import geomhess as gh


F64 = jnp.float64


def _spd(key, d, shift):
    a = jr.normal(key, (d, d), F64)
    return a @ a.T / d + shift * jnp.eye(d, dtype=F64)


def _leaves(tree):
    return np.concatenate([np.ravel(leaf) for leaf in jtu.tree_leaves(tree)])


# (a) a quadratic: with enough CG steps the update is the dense damped Newton step.
def test_quadratic_step_is_the_dense_damped_newton_step():
    d, lam = 6, 0.3
    k1, k2, k3, k4 = jr.split(jr.key(0), 4)
    A, G = _spd(k1, d, 0.5), _spd(k2, d, 0.2)
    b, x = jr.normal(k3, (d,), F64), jr.normal(k4, (d,), F64)
    f = lambda x: 0.5 * x @ (A @ x) + b @ x
    metric = gh.metrics.FromFunction(lambda x: G)
    opt = gh.optim.hessian_free(
        metric, damping=lam, kappa=1e-14, theta=0.0, max_inner=d
    )
    updates, state = opt.update(x, opt.init(x), x, value_fn=f)
    expected = jnp.linalg.solve(A + lam * G, -(A @ x + b))
    assert_close(updates, expected, rtol=1e-10)
    assert bool(state.accepted)
    # A quadratic model that is exact up to the damping: rho > 1, so lambda shrinks.
    assert float(state.rho) > 1
    assert_close(state.damping, lam * 2 / 3, rtol=1e-14)


# (c) the Levenberg-Marquardt rule and the rejection on a constructed case.
def test_damping_increases_and_the_step_is_rejected_when_the_loss_rises():
    # f = sqrt(1 + x^2) at x = 2: the Newton step (H = 5^{-3/2}) overshoots to -8,
    # where f is larger, so rho < 0 < 1/4.
    f = lambda x: jnp.sqrt(1 + x @ x)
    x = jnp.array([2.0], F64)
    lam = 1e-3
    opt = gh.optim.hessian_free(gh.metrics.Euclidean(1), damping=lam)
    updates, state = opt.update(x, opt.init(x), x, value_fn=f)
    g, H = 2 / jnp.sqrt(5.0), 5.0**-1.5
    s = -g / (H + lam)
    model = g * s + 0.5 * (H + lam) * s * s
    rho = (jnp.sqrt(1 + (2 + s) ** 2) - jnp.sqrt(5.0)) / model
    assert_close(state.rho, rho, rtol=1e-10)
    assert float(rho) < 0.25
    assert not bool(state.accepted)
    assert_close(updates, jnp.zeros(1, F64), rtol=0, atol=0)
    assert_close(state.damping, 1.5 * lam, rtol=1e-14)


def test_damping_stays_in_the_middle_band():
    # f = sqrt(1 + x^2) at x = 1: g = 2^{-1/2}, H = 2^{-3/2}; with lambda = 0.1 the
    # step is s = -1.557 and rho = 0.489 (by hand: f(x + s) - f(x) = -0.2695, m(s) =
    # -0.551), inside (1/4, 3/4), so lambda stays.
    f = lambda x: jnp.sqrt(1 + x @ x)
    x = jnp.array([1.0], F64)
    g, H = 2**-0.5, 2**-1.5

    def rho_of(lam):
        s = -g / (H + lam)
        model = g * s + 0.5 * (H + lam) * s * s
        return (f(x + s) - f(x)) / model

    lam = 0.1
    assert 0.25 < float(rho_of(lam)) < 0.75
    opt = gh.optim.hessian_free(gh.metrics.Euclidean(1), damping=lam)
    _, state = opt.update(x, opt.init(x), x, value_fn=f)
    assert_close(state.rho, rho_of(lam), rtol=1e-10)
    assert_close(state.damping, lam, rtol=0, atol=0)


# (b) invariance on a small MLP.
HIDDEN, D_IN, CLASSES, N = 5, 6, 3, 40


def _mlp(params, inputs):
    hidden = jnp.tanh(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T


def _data(key, n=N):
    k1, k2 = jr.split(key)
    inputs = jr.normal(k1, (n, D_IN), F64)
    labels = jr.randint(k2, (n,), 0, CLASSES)
    return inputs, labels


def _loss(inputs, labels):
    def loss(params):
        logp = jax.nn.log_softmax(_mlp(params, inputs), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    return loss


def _init(key):
    k1, k2 = jr.split(key)
    return {
        "W1": jr.normal(k1, (HIDDEN, D_IN), F64) / jnp.sqrt(jnp.asarray(D_IN, F64)),
        "b1": jnp.zeros(HIDDEN, F64),
        "W2": jr.normal(k2, (CLASSES, HIDDEN), F64),
    }


def _run(opt, loss, params, steps, metric=None):
    @jax.jit
    def step(params, state):
        updates, state = opt.update(params, state, params, value_fn=loss, metric=metric)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    path = [params]
    for _ in range(steps):
        params, state = step(params, state)
        path.append(params)
    return path, state


def _charts():
    key = jr.key(3)
    M = jnp.eye(HIDDEN, dtype=F64) + 0.4 * jr.normal(key, (HIDDEN, HIDDEN), F64)
    N2 = jnp.eye(HIDDEN, dtype=F64) + 0.4 * jr.normal(jr.key(4), (HIDDEN, HIDDEN), F64)
    M_inv, N2_inv = jnp.linalg.inv(M), jnp.linalg.inv(N2)
    affine = gh.charts.FromFunctions(
        lambda p: {
            "W1": M @ p["W1"] + 1.0,
            "b1": 3.0 * p["b1"] - 2.0,
            "W2": p["W2"] @ N2,
        },
        lambda q: {
            "W1": M_inv @ (q["W1"] - 1.0),
            "b1": (q["b1"] + 2.0) / 3.0,
            "W2": q["W2"] @ N2_inv,
        },
    )
    alpha = jnp.asarray(10.0, F64)
    scale = gh.charts.Scale({"W1": alpha, "b1": alpha, "W2": 1 / alpha})
    return {"scale": scale, "affine": affine}


@pytest.mark.parametrize("name", ["scale", "affine"])
def test_iterates_are_invariant_and_naive_newton_cg_moves(name):
    chart = _charts()[name]
    inputs, labels = _data(jr.key(1))
    loss = _loss(inputs, labels)
    loss_psi = lambda y: loss(chart.inverse(y))
    params = _init(jr.key(2))
    steps = 4
    metric = gh.metrics.GaussNewton(_mlp, inputs, "softmax_cross_entropy", damping=1e-2)
    # A large initial damping: the covariant Hessian is indefinite at the start, and
    # the Levenberg-Marquardt rule then lowers lambda step by step.
    opt = gh.optim.hessian_free(damping=100.0, max_inner=10)
    path, state = _run(opt, loss, params, steps, metric)
    path_psi, state_psi = _run(
        opt, loss_psi, chart(params), steps, metric.reparametrize(chart)
    )
    assert float(loss(path[-1])) < float(loss(path[0]))
    for a, b in zip(path, path_psi, strict=True):
        assert_close(_leaves(chart.inverse(b)), _leaves(a), rtol=1e-10)
    assert_close(state_psi.damping, state.damping, rtol=1e-10)

    naive = gh.optim.hessian_free(gh.metrics.Euclidean(), damping=1.0, max_inner=10)
    naive_path, _ = _run(naive, loss, params, steps)
    naive_psi, _ = _run(naive, loss_psi, chart(params), steps)
    assert_not_close(
        _leaves(chart.inverse(naive_psi[-1])), _leaves(naive_path[-1]), rtol=1e-3
    )


# (d) mini-batches with a smaller curvature batch.
def test_minibatch_with_a_smaller_curvature_batch_decreases_the_loss():
    inputs, _ = _data(jr.key(5), n=256)
    # Labels a network can learn: the argmax of a random linear map of the inputs.
    labels = jnp.argmax(inputs @ jr.normal(jr.key(9), (D_IN, CLASSES), F64), axis=-1)
    full = _loss(inputs, labels)
    params = _init(jr.key(6))
    opt = gh.optim.hessian_free(damping=10.0, max_inner=10)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, curvature_batch):
        metric = gh.metrics.GaussNewton(
            _mlp, curvature_batch[0], "softmax_cross_entropy", damping=1e-2
        )
        updates, state = opt.update(
            params,
            state,
            params,
            value_fn=_loss(*batch),
            curvature_fn=_loss(*curvature_batch),
            metric=metric,
        )
        return optax.apply_updates(params, updates), state

    start = float(full(params))
    rng = np.random.default_rng(0)
    for _ in range(15):
        index = rng.permutation(256)
        g, c = index[:64], index[64:80]
        params, state = step(
            params, state, (inputs[g], labels[g]), (inputs[c], labels[c])
        )
    assert float(full(params)) < 0.8 * start
    assert int(state.count) == 15


# (e) checkpoint round trip.
def test_state_checkpoint_round_trip(tmp_path):
    inputs, labels = _data(jr.key(7))
    loss = _loss(inputs, labels)
    params = _init(jr.key(8))
    metric = gh.metrics.GaussNewton(_mlp, inputs, "softmax_cross_entropy", damping=0.1)
    opt = gh.optim.hessian_free(metric, damping=0.5, max_inner=5)
    _, state = opt.update(params, opt.init(params), params, value_fn=loss)
    path = tmp_path / "state.eqx"
    eqx.tree_serialise_leaves(path, state)
    loaded = eqx.tree_deserialise_leaves(path, opt.init(params))
    for a, b in zip(jtu.tree_leaves(state), jtu.tree_leaves(loaded), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.dtype == b.dtype
    assert int(loaded.count) == 1


# (f) bad input.
def test_bad_input_gives_clear_errors():
    metric = gh.metrics.Euclidean(2)
    with pytest.raises(ValueError, match="`damping` must be non-negative"):
        gh.optim.hessian_free(metric, damping=-1.0)
    with pytest.raises(ValueError, match="`radius` must be positive"):
        gh.optim.hessian_free(metric, radius=0.0)
    with pytest.raises(TypeError, match="must be a metric"):
        gh.optim.hessian_free("gauss-newton")
    x = jnp.ones(2, F64)
    opt = gh.optim.hessian_free(metric)
    with pytest.raises(ValueError, match="`value_fn` is required"):
        opt.update(x, opt.init(x), x)
    no_metric = gh.optim.hessian_free()
    with pytest.raises(ValueError, match="no metric"):
        no_metric.update(x, no_metric.init(x), x, value_fn=lambda x: x @ x)
    with pytest.raises(Exception, match="is not finite"):
        out = opt.update(x, opt.init(x), x, value_fn=lambda x: jnp.nan * (x @ x))
        jax.block_until_ready(out)
