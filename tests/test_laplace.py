"""The Laplace evidence with the invariant volume (issue 14, part 2).

A tanh MLP `x -> W2 tanh(W1 x + b1)` on 4x4-pooled digits (162 parameters, so the
dense `(d, d)` shape operator is cheap) is trained to its MAP under a Gaussian prior
`N(0, tau^{-1} I)` on `theta`. The invariant evidence, with that prior written as a
density on the Riemannian volume of the Euclidean metric of `theta` carried to each
chart, is the same in every chart; the naive one, with the functions carried as
scalars, moves by `log |det J|`. The activation is smooth (tanh, not ReLU) because
the Laplace approximation needs a twice-differentiable log joint at a well converged
MAP: L-BFGS on the ReLU network stalls at a kink with a gradient of norm ~1.
"""

import math

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
HIDDEN, NUM_CLASSES, NUM_TRAIN, NUM_TEST = 6, 10, 200, 400
RTOL = 1e-9


def _mlp(params, inputs):
    hidden = jnp.tanh(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T


def _data():
    digits = datasets.load_digits()
    # 2x2 average pooling: 8x8 -> 4x4 inputs, so the network stays small.
    images = digits.images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)) / 16.0
    rng = np.random.default_rng(0)
    index = rng.permutation(images.shape[0])
    train, test = index[:NUM_TRAIN], index[NUM_TRAIN : NUM_TRAIN + NUM_TEST]
    flat = images.reshape(images.shape[0], -1)
    return (
        (jnp.asarray(flat[train], F64), jnp.asarray(digits.target[train])),
        (jnp.asarray(flat[test], F64), jnp.asarray(digits.target[test])),
    )


def _log_likelihood(inputs, labels):
    def log_likelihood(params):
        logp = jax.nn.log_softmax(_mlp(params, inputs), axis=-1)
        return jnp.sum(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    return log_likelihood


def _init(key, d_in):
    key_1, key_2 = jr.split(key)
    return {
        "W1": jr.normal(key_1, (HIDDEN, d_in), F64) / jnp.sqrt(jnp.asarray(d_in, F64)),
        "b1": jnp.full((HIDDEN,), 0.1, F64),
        "W2": jr.normal(key_2, (NUM_CLASSES, HIDDEN), F64)
        / jnp.sqrt(jnp.asarray(HIDDEN, F64)),
    }


def _map(log_likelihood, log_prior, params, num_steps=2000):
    """The MAP by full-batch L-BFGS in float64 (run under standard promotion: optax
    mixes Python floats with int32 counts)."""

    def loss(p):
        return -(log_likelihood(p) + log_prior(p))

    optimizer = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=loss
            )
            return (optax.apply_updates(params, updates), state), value

        (params, _), _ = jax.lax.scan(
            step, (params, optimizer.init(params)), None, length=num_steps
        )
        return params

    with jax.numpy_dtype_promotion("standard"):
        params = run(params)
    grad_norm = float(jnp.linalg.norm(ravel_pytree(jax.grad(loss)(params))[0]))
    assert grad_norm < 1e-6, grad_norm
    return params


def _prior(tau):
    return gh.laplace.gaussian_log_prior(
        gh.metrics.Euclidean(),
        {
            "W1": jnp.zeros((HIDDEN, 16), F64),
            "b1": jnp.zeros(HIDDEN, F64),
            "W2": jnp.zeros((NUM_CLASSES, HIDDEN), F64),
        },
        tau,
    )


@pytest.fixture(scope="module")
def problem():
    (inputs, labels), test = _data()
    log_likelihood = _log_likelihood(inputs, labels)
    log_prior = _prior(1.0)
    params = _map(log_likelihood, log_prior, _init(jr.key(0), inputs.shape[1]))
    return log_likelihood, log_prior, params, test


def _dense_reference(log_likelihood, log_prior, params):
    """The Euclidean Laplace from `jax.hessian` and `slogdet`, independently."""
    theta, unravel = ravel_pytree(params)

    def negative_log_joint(v):
        return -(log_likelihood(unravel(v)) + log_prior(unravel(v)))

    sign, logdet = jnp.linalg.slogdet(jax.hessian(negative_log_joint)(theta))
    assert float(sign) == 1.0
    d = theta.shape[0]
    return float(
        -negative_log_joint(theta) + 0.5 * d * math.log(2 * math.pi) - 0.5 * logdet
    )


def _charts(params):
    """Uniform `Scale(alpha)`, Dinh's per-layer rescaling and a per-layer affine
    chart (an invertible matrix acting on each raveled leaf, plus an offset), with
    `log |det J|` of each."""
    alpha = 3.0
    sizes = {k: v.size for k, v in params.items()}
    dinh = gh.charts.Scale(
        {
            "W1": jnp.asarray(alpha, F64),
            "b1": jnp.asarray(alpha, F64),
            "W2": jnp.asarray(1 / alpha, F64),
        }
    )
    keys = dict(zip(params, jr.split(jr.key(7), len(params)), strict=True))
    matrices = {
        k: 1.5 * jnp.eye(n, dtype=F64)
        + 0.3 * jr.normal(keys[k], (n, n), F64) / math.sqrt(n)
        for k, n in sizes.items()
    }
    offsets = {k: jnp.full((n,), 0.2, F64) for k, n in sizes.items()}

    def forward(p):
        return {
            k: (matrices[k] @ v.reshape(-1) + offsets[k]).reshape(v.shape)
            for k, v in p.items()
        }

    def inverse(q):
        return {
            k: jnp.linalg.solve(matrices[k], v.reshape(-1) - offsets[k]).reshape(
                v.shape
            )
            for k, v in q.items()
        }

    affine = gh.charts.FromFunctions(forward, inverse)
    d = sum(sizes.values())
    return {
        "scale": (gh.charts.Scale(jnp.asarray(alpha, F64)), d * math.log(alpha)),
        "dinh": (dinh, (sizes["W1"] + sizes["b1"] - sizes["W2"]) * math.log(alpha)),
        "affine": (
            affine,
            sum(float(jnp.linalg.slogdet(m)[1]) for m in matrices.values()),
        ),
    }


def _in_chart(chart, log_likelihood, log_prior, params):
    """The likelihood, the prior (as scalars) and the metric carried to `psi`."""
    return (
        gh.ScalarField(log_likelihood).reparametrize(chart),
        gh.ScalarField(log_prior).reparametrize(chart),
        gh.metrics.Euclidean().reparametrize(chart),
        chart(params),
    )


def test_dense_evidence_is_the_euclidean_laplace(problem):
    log_likelihood, log_prior, params, _ = problem
    reference = _dense_reference(log_likelihood, log_prior, params)
    evidence = gh.laplace.log_evidence(
        log_likelihood, log_prior, gh.metrics.Euclidean(), params, dense=True
    )
    naive = gh.laplace.naive_log_evidence(log_likelihood, log_prior, params, dense=True)
    assert_close(evidence.estimate, reference, rtol=RTOL)
    assert_close(naive.estimate, reference, rtol=RTOL)
    assert float(evidence.std_error) == 0 and float(evidence.min_eigenvalue) > 0
    pieces = (
        evidence.log_likelihood
        + evidence.log_prior
        + 0.5 * evidence.dimension * math.log(2 * math.pi)
        - 0.5 * evidence.logdet
    )
    assert_close(pieces, evidence.estimate, rtol=1e-14)


def test_slq_within_its_error_bar(problem):
    log_likelihood, log_prior, params, _ = problem
    dense = gh.laplace.log_evidence(
        log_likelihood, log_prior, gh.metrics.Euclidean(), params, dense=True
    )
    for seed in range(3):
        slq = gh.laplace.log_evidence(
            log_likelihood,
            log_prior,
            gh.metrics.Euclidean(),
            params,
            key=jr.key(seed),
            num_probes=30,
            num_iterations=40,
        )
        assert float(slq.std_error) > 0
        assert abs(float(slq.estimate - dense.estimate)) < 4 * float(slq.std_error)
        # The smallest Ritz value bounds the smallest eigenvalue from above.
        assert float(slq.min_eigenvalue) >= float(dense.min_eigenvalue) * (1 - 1e-8)


def test_invariant_evidence_is_the_same_in_every_chart(problem):
    log_likelihood, log_prior, params, _ = problem
    at_theta = gh.laplace.log_evidence(
        log_likelihood, log_prior, gh.metrics.Euclidean(), params, dense=True
    )
    naive_theta = gh.laplace.naive_log_evidence(
        log_likelihood, log_prior, params, dense=True
    )
    slq_theta = gh.laplace.log_evidence(
        log_likelihood,
        log_prior,
        gh.metrics.Euclidean(),
        params,
        key=jr.key(3),
        num_iterations=40,
    )
    for name, (chart, log_abs_det) in _charts(params).items():
        ll, lp, metric, psi = _in_chart(chart, log_likelihood, log_prior, params)
        invariant = gh.laplace.log_evidence(ll, lp, metric, psi, dense=True)
        assert_close(invariant.estimate, at_theta.estimate, rtol=RTOL)
        assert_close(invariant.logdet, at_theta.logdet, rtol=RTOL)
        naive = gh.laplace.naive_log_evidence(ll, lp, psi, dense=True)
        # The naive evidence moves by log |det J| exactly, and that is not small.
        assert abs(log_abs_det) > 1.0, name
        assert_close(
            naive.estimate - naive_theta.estimate,
            log_abs_det,
            rtol=RTOL,
            atol=RTOL * abs(float(naive_theta.estimate)),
        )
        slq = gh.laplace.log_evidence(
            ll, lp, metric, psi, key=jr.key(3), num_iterations=40
        )
        if name == "scale":
            # Uniform scaling commutes with E: the same probes give the same number.
            assert_close(slq.estimate, slq_theta.estimate, rtol=1e-8)
        assert abs(float(slq.estimate - at_theta.estimate)) < 4 * float(slq.std_error)


def test_not_a_maximum_raises(problem):
    log_likelihood, log_prior, params, _ = problem
    with pytest.raises(Exception, match="not a strict local maximum"):
        gh.laplace.log_evidence(
            lambda p: -log_likelihood(p),
            log_prior,
            gh.metrics.Euclidean(),
            params,
            dense=True,
        )
    with pytest.raises(ValueError, match="needs `key="):
        gh.laplace.log_evidence(
            log_likelihood, log_prior, gh.metrics.Euclidean(), params
        )
    with pytest.raises(ValueError, match="must be > 0"):
        gh.laplace.gaussian_log_prior(gh.metrics.Euclidean(), params, 0.0)
