"""Dinh et al. (2017) rescaling of a trained ReLU network (issue 4, reproduced results).

A ReLU MLP `x -> W2 relu(W1 x + b1)` computes the same function at
`psi = (alpha W1, alpha b1, W2 / alpha)` for every `alpha > 0`, so "flatness" read off
the calculus Hessian (its trace, its top eigenvalue) can be made anything by a change of
parameters that changes nothing else. With `H11` the `(W1, b1)` block and `H22` the
`W2` block of the Hessian at `theta`, the chart is linear with
`J = diag(alpha, 1 / alpha)`, so the Hessian in `psi` is `J^{-1} H J^{-1}` and

    tr H_psi = alpha^-2 tr H11 + alpha^2 tr H22   (exactly),

while the shape operator `G^{-1} H` with the Euclidean metric of `theta` carried to
`psi` is `J E J^{-1}`: same trace, same eigenvalues. The network is trained on a
subset of scikit-learn's bundled digits (no download), with softmax cross-entropy.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest
from helpers import assert_close, assert_not_close
from jax.flatten_util import ravel_pytree

import geomhess as gh


datasets = pytest.importorskip("sklearn.datasets")

F64 = jnp.float64
ALPHAS = (0.1, 0.5, 1.0, 2.0, 10.0)
HIDDEN, NUM_CLASSES, NUM_SAMPLES, NUM_STEPS = 8, 10, 300, 300
# Identities that hold exactly in exact arithmetic, checked in float64.
RTOL = 1e-9


def _mlp(params, inputs):
    hidden = jax.nn.relu(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T


def _scales(alpha):
    """Dinh's rescaling: the first layer (weights and bias) by `alpha`, the second by
    `1 / alpha`. There is no output bias (it would keep scale 1 and add a constant
    term to the predicted trace)."""
    alpha = jnp.asarray(alpha, F64)
    return {"W1": alpha, "b1": alpha, "W2": 1 / alpha}


def _train():
    """A ReLU MLP 64 -> 8 -> 10 (600 parameters) trained with Adam on 300 digits."""
    digits = datasets.load_digits()
    rng = np.random.default_rng(0)
    index = rng.permutation(digits.target.shape[0])[:NUM_SAMPLES]
    inputs = jnp.asarray(digits.data[index] / 16.0, F64)
    labels = jnp.asarray(digits.target[index])

    def loss(params):
        logp = jax.nn.log_softmax(_mlp(params, inputs), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    key_1, key_2 = jr.split(jr.key(0))
    d_in = inputs.shape[1]
    params = {
        "W1": jr.normal(key_1, (HIDDEN, d_in), F64) / jnp.sqrt(jnp.asarray(d_in, F64)),
        "b1": jnp.zeros(HIDDEN, F64),
        "W2": jr.normal(key_2, (NUM_CLASSES, HIDDEN), F64)
        / jnp.sqrt(jnp.asarray(HIDDEN, F64)),
    }
    optimizer = optax.adam(1e-2)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, _), values = jax.lax.scan(
            step, (params, optimizer.init(params)), None, length=NUM_STEPS
        )
        return params, values

    # optax's Adam mixes Python floats with its int32 step count (bias correction),
    # which the tests' strict promotion rejects; only the training runs under the
    # standard rules, the geometry below stays strict.
    with jax.numpy_dtype_promotion("standard"):
        params, values = train(params)
    assert float(values[-1]) < 0.1 * float(values[0])
    return loss, params, inputs


@pytest.fixture(scope="module")
def problem():
    return _train()


@eqx.filter_jit
def _dense(loss, params, scales):
    """The naive Hessian and the dense shape-operator invariants at `psi = chart(theta)`.

    `loss` is the very function used in training, evaluated at the rescaled
    parameters: the network at `psi` is the network at `theta`. On the raveled
    parameters the per-layer chart is the elementwise `Scale` by the raveled scales.
    """
    theta, unravel = ravel_pytree(params)
    flat_scales = ravel_pytree(
        jtu.tree_map(lambda s, leaf: jnp.full_like(leaf, s), scales, params)
    )[0]
    chart = gh.charts.Scale(flat_scales)
    psi = chart(theta)
    flat_loss = gh.ScalarField(lambda v: loss(unravel(v)))
    naive = jax.hessian(flat_loss)(psi)
    carried = gh.metrics.Euclidean(theta.shape[0]).reparametrize(chart)
    invariants = gh.hessian_invariants(flat_loss, carried, psi)
    return naive, jnp.linalg.eigvalsh(naive), invariants


@pytest.fixture(scope="module")
def dense(problem):
    loss, params, _ = problem
    return {alpha: _dense(loss, params, _scales(alpha)) for alpha in ALPHAS}


@pytest.fixture(scope="module")
def blocks(problem, dense):
    """`tr H11`, `tr H22`, the blocks' top eigenvalues and `||H12||_2` at `theta`."""
    _, params, _ = problem
    first = ravel_pytree(
        {
            "W1": jnp.ones_like(params["W1"], dtype=bool),
            "b1": jnp.ones_like(params["b1"], dtype=bool),
            "W2": jnp.zeros_like(params["W2"], dtype=bool),
        }
    )[0]
    first = np.asarray(first)
    H = np.asarray(dense[1.0][0])
    H11, H22 = H[first][:, first], H[~first][:, ~first]
    return (
        np.trace(H11),
        np.trace(H22),
        np.linalg.eigvalsh(H11)[-1],
        np.linalg.eigvalsh(H22)[-1],
        np.linalg.norm(H[first][:, ~first], 2),
    )


def test_rescaled_network_is_the_same_function(problem):
    loss, params, inputs = problem
    outputs = _mlp(params, inputs)
    for alpha in ALPHAS:
        chart = gh.charts.Scale(_scales(alpha))
        psi = chart(params)
        assert_close(_mlp(psi, inputs), outputs, rtol=1e-12)
        # So the loss in psi, L o chart^{-1}, is the training loss itself.
        assert_close(
            gh.ScalarField(loss).reparametrize(chart)(psi), loss(psi), rtol=1e-12
        )
        assert_close(loss(psi), loss(params), rtol=1e-12)


def test_naive_trace_moves_as_predicted(dense, blocks):
    trace_11, trace_22, *_ = blocks
    assert trace_11 > 0 and trace_22 > 0
    at_one = np.trace(dense[1.0][0])
    for alpha in ALPHAS:
        naive_trace = np.trace(dense[alpha][0])
        predicted = trace_11 / alpha**2 + trace_22 * alpha**2
        assert_close(naive_trace, predicted, rtol=RTOL)
        if alpha != 1.0:
            assert_not_close(naive_trace, at_one, rtol=0.5)


def test_naive_top_eigenvalue_moves(dense, blocks):
    *_, top_11, top_22, norm_12 = blocks
    at_one = dense[1.0][1][-1]
    for alpha in ALPHAS:
        top = dense[alpha][1][-1]
        # Below: the Rayleigh quotient of H_psi on each block's top eigenvector.
        # Above: x^T H_psi x <= a |u|^2 + 2 ||H12|| |u| |w| + c |w|^2 for x = (u, w).
        a, c = top_11 / alpha**2, top_22 * alpha**2
        upper = 0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + norm_12**2)
        assert max(a, c) * (1 - RTOL) <= top <= upper * (1 + RTOL)
        if alpha != 1.0:
            assert_not_close(top, at_one, rtol=0.5)
    assert dense[0.1][1][-1] > 10 * at_one and dense[10.0][1][-1] > 10 * at_one


def test_invariant_trace_and_eigenvalues_stay_fixed(dense):
    reference = dense[1.0][2]
    # At alpha = 1 the carried metric is the identity: the shape operator is the
    # calculus Hessian.
    assert_close(reference.eigenvalues, dense[1.0][1], rtol=RTOL)
    for alpha in ALPHAS:
        invariants = dense[alpha][2]
        assert_close(invariants.trace, reference.trace, rtol=RTOL)
        assert_close(invariants.eigenvalues, reference.eigenvalues, rtol=RTOL)
        # The top eigenvalues, each to a relative tolerance of its own.
        np.testing.assert_allclose(
            invariants.eigenvalues[-3:], reference.eigenvalues[-3:], rtol=RTOL
        )


def test_matrix_free_estimates_within_their_reported_error(problem, dense):
    """Hutch++ and Lanczos on the parameter pytree (no raveling by the user), against
    the dense values, for every alpha."""
    loss, params, _ = problem
    for i, alpha in enumerate(ALPHAS):
        chart = gh.charts.Scale(_scales(alpha))
        psi = chart(params)
        carried = gh.metrics.Euclidean().reparametrize(chart)
        naive_eigenvalues, invariants = dense[alpha][1], dense[alpha][2]

        trace = gh.linalg.shape_operator_trace(
            loss, carried, psi, key=jr.key(10 + i), num_probes=60
        )
        assert float(trace.std_error) > 0
        error = abs(float(trace.estimate - invariants.trace))
        assert error < 4 * float(trace.std_error)

        naive_trace = gh.linalg.hessian_trace(
            loss, psi, key=jr.key(20 + i), num_probes=60
        )
        error = abs(float(naive_trace.estimate) - float(jnp.sum(naive_eigenvalues)))
        assert error < 4 * float(naive_trace.std_error)

        top = gh.linalg.shape_operator_eigenvalues(
            loss, carried, psi, key=jr.key(30 + i), k=3, num_iterations=30
        )
        # Some eigenvalue lies within the residual of each Ritz value; the top three
        # are well separated here, so it is the matching one.
        bound = np.asarray(top.residuals) + RTOL * float(invariants.eigenvalues[-1])
        assert np.all(
            np.abs(top.eigenvalues - invariants.eigenvalues[::-1][:3]) <= bound
        )
