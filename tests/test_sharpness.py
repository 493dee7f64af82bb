"""The sharpness monitor (issue 14, part 3): along one training run of a ReLU MLP on
4x4-pooled digits (108 parameters), the naive sharpness of the rescaled network moves
and the invariant one does not.

Under the uniform `Scale(alpha)`, `psi = alpha theta`, the Hessian is
`alpha^{-2} H`, the carried Euclidean metric `alpha^{-2} I` and the shape operator
`E` itself: with the same key, the naive estimates are `alpha^{-2}` times those in
`theta` and the invariant ones equal, to rounding. Under Dinh's per-layer rescaling
`(alpha W1, alpha b1, W2 / alpha)` the naive trace is
`alpha^{-2} tr H11 + alpha^2 tr H22` (no single factor) and the invariant estimates
agree with the dense values of `theta` within their error bars.
"""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from helpers import assert_close
from jax.flatten_util import ravel_pytree

import geomhess as gh


datasets = pytest.importorskip("sklearn.datasets")

F64 = jnp.float64
HIDDEN, NUM_CLASSES, NUM_SAMPLES, NUM_STEPS, EVERY = 4, 10, 200, 30, 10
ALPHA = 4.0
OPTIONS = dict(num_probes=30, k=2, num_iterations=20)


def _mlp(params, inputs):
    hidden = jax.nn.relu(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T


def _problem():
    digits = datasets.load_digits()
    images = digits.images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)) / 16.0
    index = np.random.default_rng(0).permutation(images.shape[0])[:NUM_SAMPLES]
    inputs = jnp.asarray(images[index].reshape(NUM_SAMPLES, -1), F64)
    labels = jnp.asarray(digits.target[index])

    def loss(params):
        logp = jax.nn.log_softmax(_mlp(params, inputs), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    key_1, key_2 = jr.split(jr.key(0))
    params = {
        "W1": jr.normal(key_1, (HIDDEN, 16), F64) / 4.0,
        "b1": jnp.full((HIDDEN,), 0.1, F64),
        "W2": jr.normal(key_2, (NUM_CLASSES, HIDDEN), F64) / 2.0,
    }
    return loss, params


def _charts():
    alpha = jnp.asarray(ALPHA, F64)
    return {
        "scale": gh.charts.Scale(alpha),
        "dinh": gh.charts.Scale({"W1": alpha, "b1": alpha, "W2": 1 / alpha}),
    }


@pytest.fixture(scope="module")
def run():
    """One Adam run in `theta` with the monitor in the chain; the same monitor also
    follows the rescaled trajectory `psi_t = chart(theta_t)` of each chart."""
    loss, params = _problem()
    key = jr.key(5)
    monitor = gh.diagnostics.sharpness_monitor(
        EVERY, key=key, metric=gh.metrics.Euclidean(), **OPTIONS
    )
    optimizer = optax.chain(optax.adam(1e-2), monitor)
    charts = _charts()
    carried = {
        name: (
            gh.ScalarField(loss).reparametrize(chart),
            gh.metrics.Euclidean().reparametrize(chart),
        )
        for name, chart in charts.items()
    }
    states = {name: monitor.init(chart(params)) for name, chart in charts.items()}

    @jax.jit
    def train(params, state, states):
        def step(carry, _):
            params, state, states = carry
            grads = jax.grad(loss)(params)
            updates, state = optimizer.update(grads, state, params, value_fn=loss)
            new_states = {}
            for name, chart in charts.items():
                value_fn, metric = carried[name]
                psi = chart(params)
                passed, new_states[name] = monitor.update(
                    grads, states[name], psi, value_fn=value_fn, metric=metric
                )
            return (optax.apply_updates(params, updates), state, new_states), (
                params,
                passed,
                grads,
            )

        return jax.lax.scan(step, (params, state, states), None, length=NUM_STEPS)

    with jax.numpy_dtype_promotion("standard"):
        (final, state, states), (trajectory, passed, grads) = train(
            params, optimizer.init(params), states
        )
    return loss, final, state, states, trajectory, passed, grads


def test_monitor_passes_updates_through_and_logs_every_k(run):
    loss, final, state, states, trajectory, passed, grads = run
    for a, b in zip(jax.tree.leaves(passed), jax.tree.leaves(grads), strict=True):
        np.testing.assert_array_equal(a, b)
    monitor_state = state[1]
    assert int(monitor_state.count) == NUM_STEPS
    logged = list(range(0, NUM_STEPS, EVERY))
    np.testing.assert_array_equal(monitor_state.steps[: len(logged)], logged)
    assert np.all(np.asarray(monitor_state.steps[len(logged) :]) == -1)
    assert np.all(np.isfinite(monitor_state.log.trace[: len(logged)]))
    assert np.all(np.isnan(monitor_state.log.trace[len(logged) :]))
    # The state is a pytree that checkpoints.
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, monitor_state)
    buffer.seek(0)
    restored = eqx.tree_deserialise_leaves(buffer, monitor_state)
    np.testing.assert_array_equal(
        restored.log.eigenvalues, monitor_state.log.eigenvalues
    )


def test_uniform_scale_rescales_naive_by_alpha_squared_only(run):
    *_, state, states, trajectory, _, _ = run
    theta_log, psi_log = state[1].log, states["scale"].log
    n = len(range(0, NUM_STEPS, EVERY))
    rtol = 1e-8
    assert_close(psi_log.trace[:n], theta_log.trace[:n], rtol=rtol)
    assert_close(psi_log.eigenvalues[:n], theta_log.eigenvalues[:n], rtol=rtol)
    assert_close(
        psi_log.naive_trace[:n] * ALPHA**2, theta_log.naive_trace[:n], rtol=rtol
    )
    assert_close(
        psi_log.naive_eigenvalues[:n] * ALPHA**2,
        theta_log.naive_eigenvalues[:n],
        rtol=rtol,
    )
    # In theta (Euclidean metric) the invariant and the naive numbers are the same.
    assert_close(theta_log.trace[:n], theta_log.naive_trace[:n], rtol=rtol)
    assert np.all(
        np.asarray(psi_log.naive_trace[:n])
        < 0.1 * np.asarray(theta_log.naive_trace[:n])
    )


def test_dinh_rescaling_against_dense_values(run):
    loss, _, state, states, trajectory, _, _ = run
    log = states["dinh"].log
    for slot, step in enumerate(range(0, NUM_STEPS, EVERY)):
        params = jax.tree.map(lambda leaf, t=step: leaf[t], trajectory)
        theta, unravel = ravel_pytree(params)
        H = np.asarray(jax.hessian(lambda v, u=unravel: loss(u(v)))(theta))
        first = np.asarray(
            ravel_pytree(
                {
                    "W1": jnp.ones_like(params["W1"], dtype=bool),
                    "b1": jnp.ones_like(params["b1"], dtype=bool),
                    "W2": jnp.zeros_like(params["W2"], dtype=bool),
                }
            )[0]
        )
        trace_11, trace_22 = (
            np.trace(H[first][:, first]),
            np.trace(H[~first][:, ~first]),
        )
        naive = trace_11 / ALPHA**2 + trace_22 * ALPHA**2
        assert abs(float(log.naive_trace[slot]) - naive) < 4 * float(
            log.naive_trace_std_error[slot]
        )
        assert abs(naive - np.trace(H)) > 0.2 * abs(np.trace(H))
        # The invariant trace and top eigenvalues are those of H (E = J H J^{-1}).
        eigenvalues = np.linalg.eigvalsh(H)[::-1]
        assert abs(float(log.trace[slot]) - np.trace(H)) < 4 * float(
            log.trace_std_error[slot]
        )
        bound = np.asarray(log.residuals[slot]) + 1e-9 * eigenvalues[0]
        assert np.all(
            np.abs(np.asarray(log.eigenvalues[slot]) - eigenvalues[:2]) <= bound
        )


def test_monitor_errors():
    loss, params = _problem()
    monitor = gh.diagnostics.sharpness_monitor(2, key=jr.key(0))
    state = monitor.init(params)
    with pytest.raises(ValueError, match="`value_fn` is required"):
        monitor.update(params, state, params)
    with pytest.raises(ValueError, match="no metric"):
        monitor.update(params, state, params, value_fn=loss)
    with pytest.raises(ValueError, match="`every` must be an int >= 1"):
        gh.diagnostics.sharpness_monitor(0, key=jr.key(0))
