"""Checkpoints: optimizer states, params and manifolds through `eqx.tree_serialise_leaves`.

A run that is stopped after `k` steps, written to a checkpoint (a file or a
`BytesIO`), read back into freshly built, like-structured templates (an
`opt.init` of *other* params, other points) and resumed must give the same iterates
as the uninterrupted run, bit for bit: the state carries everything the update
reads (counts, transported moments, the trust-region radius and cached gradient),
and the jitted step is the same computation on the same bits.
"""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import geomhess as gh
import geomhess.manifolds as gm


F64 = jnp.float64
STEPS, STOP = 6, 3


class Loss(eqx.Module):
    """`<x, A x N> + <C, x>` on the ambient array (a module, so one compiled step
    serves every problem of the same shape); for SPD points, `- logdet x` is added so
    the loss is bounded below there."""

    A: jax.Array
    N: jax.Array
    C: jax.Array
    spd: bool = eqx.field(static=True)

    def __call__(self, x):
        if isinstance(x, dict):
            return sum(self(v) for v in jax.tree_util.tree_leaves(x))
        y = x.reshape(x.shape[0], -1)
        value = jnp.vdot(y, self.A @ y @ self.N) + jnp.vdot(self.C, y)
        if self.spd:
            value = value - jnp.linalg.slogdet(x)[1]
        return value


def _loss(key, manifold, point):
    y = point.reshape(point.shape[0], -1)
    n, p = y.shape
    ka, kc = jr.split(key)
    A = jr.normal(ka, (n, n), dtype=F64)
    A = 0.5 * (A + A.T)
    if isinstance(manifold, gm.SPD):
        A = 0.1 * (A @ A.T + jnp.eye(n, dtype=F64))
    N = jnp.diag(jnp.arange(1, p + 1, dtype=F64))
    C = jr.normal(kc, (n, p), dtype=F64)
    return Loss(A, N, C, isinstance(manifold, gm.SPD))


@eqx.filter_jit
def _step(opt, f, x, state):
    updates, state = opt.update(jax.grad(f)(x), state, x, value_fn=f)
    return optax.apply_updates(x, updates), state


def _run(opt, f, x, state, steps):
    iterates = []
    for _ in range(steps):
        x, state = _step(opt, f, x, state)
        iterates.append(x)
    return iterates, state


OPTIMIZERS = {
    "riemannian-sgd": lambda M: gh.optim.riemannian(optax.sgd(0.02, momentum=0.9), M),
    "riemannian-adam": lambda M: gh.optim.riemannian(optax.adam(0.02), M),
    "rsgd": lambda M: gh.optim.rsgd(0.02, M, momentum=0.9),
    "rsgd-nesterov": lambda M: gh.optim.rsgd(0.02, M, momentum=0.9, nesterov=True),
    "rsgd-stabilized": lambda M: gh.optim.rsgd(0.02, M, 0.5, stabilize_every=2),
    "radam": lambda M: gh.optim.radam(0.02, M),
    "newton": lambda M: gh.optim.newton(M, damping=1.0),
    "trust-region": lambda M: gh.optim.trust_region(M, initial_radius=0.5),
}
MANIFOLDS = {
    "sphere": gm.Sphere(5),
    "stiefel": gm.Stiefel(5, 2),
    "spd": gm.SPD(3),
}


def _assert_bitwise(a, b):
    for p, q in zip(
        jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True
    ):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(np.asarray(p), np.asarray(q))


@pytest.mark.parametrize("to_file", [False, True], ids=["bytesio", "file"])
@pytest.mark.parametrize("manifold_name", list(MANIFOLDS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_resumed_run_gives_the_same_iterates(name, manifold_name, to_file, tmp_path):
    # optax.adam's bias correction raises a float to an int32 count, which the test
    # suite's strict dtype promotion refuses (optax's code, not geomhess's): that base
    # runs under standard promotion, as it does for users.
    promotion = "standard" if name == "riemannian-adam" else "strict"
    with jax.numpy_dtype_promotion(promotion):
        _check_resume(name, manifold_name, to_file, tmp_path)


def _check_resume(name, manifold_name, to_file, tmp_path):
    M = MANIFOLDS[manifold_name]
    key_point, key_loss, key_other = jr.split(jr.key(0), 3)
    x0 = M.random_point(key_point, dtype=F64)
    f = _loss(key_loss, M, x0)
    opt = OPTIMIZERS[name](M)

    whole, final_state = _run(opt, f, x0, opt.init(x0), STEPS)

    first, state = _run(opt, f, x0, opt.init(x0), STOP)
    checkpoint = {"params": first[-1], "state": state}
    target = tmp_path / "checkpoint.eqx" if to_file else io.BytesIO()
    eqx.tree_serialise_leaves(target, checkpoint)
    if not to_file:
        target.seek(0)
    # The templates: another point, and the state a fresh `init` builds there.
    other = M.random_point(key_other, dtype=F64)
    template = {"params": other, "state": opt.init(other)}
    loaded = eqx.tree_deserialise_leaves(target, template)
    _assert_bitwise(loaded, checkpoint)

    rest, resumed_state = _run(opt, f, loaded["params"], loaded["state"], STEPS - STOP)
    _assert_bitwise(first + rest, whole)
    _assert_bitwise(resumed_state, final_state)
    # Not vacuous: the iterates moved, and the state is not the initial one.
    assert float(jnp.max(jnp.abs(whole[-1] - x0))) > 1e-3
    assert int(final_state.count) == STEPS


def test_resumed_run_on_a_mixed_tree():
    # A manifold leaf and a Euclidean (None) leaf: radam keeps a scalar second moment
    # for the first and Adam's per-coordinate one for the second.
    M = {"x": gm.Sphere(4), "b": None}
    x0 = {"x": gm.Sphere(4).random_point(jr.key(1), dtype=F64), "b": jnp.ones(3, F64)}
    A = jnp.diag(jnp.arange(4, dtype=F64))
    f = lambda p: p["x"] @ A @ p["x"] + jnp.sum((p["b"] - 2.0) ** 2)
    opt = gh.optim.radam(0.05, M)
    whole, _ = _run(opt, f, x0, opt.init(x0), STEPS)
    first, state = _run(opt, f, x0, opt.init(x0), STOP)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (first[-1], state))
    buffer.seek(0)
    template = jax.tree_util.tree_map(jnp.zeros_like, (x0, opt.init(x0)))
    params, state = eqx.tree_deserialise_leaves(buffer, template)
    rest, _ = _run(opt, f, params, state, STEPS - STOP)
    _assert_bitwise(first + rest, whole)


def test_hyperparameters_round_trip():
    # The geomhess optimizers are pytrees whose numbers are arrays: a checkpoint of the
    # optimizer restores its learning rate into an optimizer built with another one.
    sphere = gm.Sphere(4)
    for make in (
        lambda lr: gh.optim.radam(lr, sphere),
        lambda lr: gh.optim.rsgd(lr, sphere, momentum=0.5),
    ):
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, make(0.125))
        buffer.seek(0)
        restored = eqx.tree_deserialise_leaves(buffer, make(0.5))
        assert bool(eqx.tree_equal(restored, make(0.125)))
        assert not bool(eqx.tree_equal(restored, make(0.5)))


def _poincare_metric(q):
    return (2 / (1 - q @ q)) ** 2 * jnp.eye(q.shape[0], dtype=q.dtype)


def test_manifolds_round_trip(getkey):
    metric = gh.metrics.FromFunction(_poincare_metric)
    coordinate = gm.Coordinate(metric, origin=jnp.array([0.1, -0.2], F64))
    manifolds = [
        gm.Euclidean((2, 3)),
        gm.Sphere(4),
        gm.Stiefel(5, 2),
        gm.Grassmann(5, 2),
        gm.SPD(3),
        gm.Hyperbolic(3),
        coordinate,
        gm.Product((gm.Sphere(3), gm.SPD(2), coordinate)),
    ]
    for M in manifolds:
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, M)
        buffer.seek(0)
        # The template has the same structure, other array values (where there are
        # any: Coordinate's origin); the static fields (sizes) are the structure.
        template = jax.tree_util.tree_map(
            lambda leaf: jnp.zeros_like(leaf) if eqx.is_array(leaf) else leaf, M
        )
        loaded = eqx.tree_deserialise_leaves(buffer, template)
        assert bool(eqx.tree_equal(loaded, M)), M
        key = getkey()
        _assert_bitwise(
            loaded.random_point(key, dtype=F64), M.random_point(key, dtype=F64)
        )
    # Not vacuous: the template did differ from the manifold where it has arrays.
    assert not bool(
        eqx.tree_equal(gm.Coordinate(metric, origin=jnp.zeros(2, F64)), coordinate)
    )
