"""geomhess.optim: Riemannian optimizers on optax."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from helpers import assert_close, assert_not_close

import geomhess as gh
import geomhess.optim
from geomhess.manifolds import SPD, Grassmann, Sphere, Stiefel


F64 = jnp.float64


def symmetric(key, n, dtype=F64):
    A = jr.normal(key, (n, n), dtype=dtype)
    return 0.5 * (A + A.T)


class MixedLoss(eqx.Module):
    """A Rayleigh quotient on `p["x"]` plus a quadratic on `p["b"]`."""

    A: jax.Array

    def __call__(self, p):
        return p["x"] @ self.A @ p["x"] + jnp.sum(p["b"] ** 2)


class Rayleigh(eqx.Module):
    """The Rayleigh quotient `x -> x^T A x` (a module, so `A` is traced, not baked in:
    problems of the same shape share compiled steps)."""

    A: jax.Array

    def __call__(self, x):
        return x @ self.A @ x


def rayleigh(A):
    return Rayleigh(A)


@eqx.filter_jit
def _step(opt, f, x, state):
    updates, state = opt.update(jax.grad(f)(x), state, x, value_fn=f)
    return optax.apply_updates(x, updates), state


def run(opt, f, x, steps):
    """Iterate `opt` on `f` from `x`; return the iterates."""
    state = opt.init(x)
    iterates = [x]
    for _ in range(steps):
        x, state = _step(opt, f, x, state)
        iterates.append(x)
    return iterates


def scan(opt, f, x, steps):
    """`steps` iterations inside one `lax.scan` (fast for first-order methods)."""

    def body(carry, _):
        x, state = carry
        updates, state = opt.update(jax.grad(f)(x), state, x)
        return (optax.apply_updates(x, updates), state), None

    (x, _), _ = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, steps))(x)
    return x


def rgrad_norm(manifold, f, x):
    return float(manifold.norm(x, manifold.egrad_to_rgrad(x, jax.grad(f)(x))))


def assert_superlinear(norms):
    """The gradient norms above rounding decrease with shrinking ratios, ending
    far below a linear rate."""
    live = [g for g in norms if g > 1e-12]
    ratios = [b / a for a, b in zip(live, live[1:], strict=False)]
    assert len(ratios) >= 2, norms
    tail = ratios[-3:]
    assert all(b < a for a, b in zip(tail, tail[1:], strict=False)), ratios
    assert tail[-1] < 1e-2, ratios
    assert norms[-1] < 1e-11, norms


# Rayleigh quotient on the sphere: minimum = smallest eigenvalue.


@pytest.fixture
def rayleigh_problem(getkey):
    n = 8
    A = symmetric(getkey(), n)
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(A))
    near = eigenvectors[:, 0] + 0.1 * np.asarray(jr.normal(getkey(), (n,), dtype=F64))
    x0 = Sphere(n).to_manifold(jnp.asarray(near))
    return Sphere(n), A, eigenvalues[0], eigenvectors[:, 0], x0


@pytest.mark.parametrize(
    "make",
    [
        lambda M: gh.optim.newton(M),
        lambda M: gh.optim.newton(M, retraction="second_order"),
        lambda M: gh.optim.trust_region(M),
        lambda M: gh.optim.trust_region(M, retraction="exp"),
    ],
    ids=["newton-exp", "newton-retract", "trust-region", "trust-region-exp"],
)
def test_second_order_rayleigh_superlinear(rayleigh_problem, make):
    sphere, A, smallest, v, x0 = rayleigh_problem
    f = rayleigh(A)
    iterates = run(make(sphere), f, x0, 7)
    norms = [rgrad_norm(sphere, f, x) for x in iterates]
    print("Riemannian gradient norms:", [f"{g:.3e}" for g in norms])
    assert_superlinear(norms)
    x = iterates[-1]
    assert abs(float(f(x)) - smallest) < 1e-12
    assert abs(abs(float(x @ v)) - 1) < 1e-12
    assert abs(float(jnp.linalg.norm(x)) - 1) < 1e-14


def test_trust_region_from_random_start(getkey):
    n = 8
    A = symmetric(getkey(), n)
    sphere = Sphere(n)
    f = rayleigh(A)
    x0 = sphere.random_point(getkey(), dtype=F64)
    iterates = run(gh.optim.trust_region(sphere), f, x0, 30)
    values = [float(f(x)) for x in iterates]
    # A trust-region method never increases the cost.
    assert all(b <= a + 1e-14 for a, b in zip(values, values[1:], strict=False))
    assert abs(values[-1] - np.linalg.eigvalsh(np.asarray(A))[0]) < 1e-12


@pytest.mark.parametrize(
    "make",
    [
        lambda M: gh.optim.rsgd(0.05, M),
        lambda M: gh.optim.rsgd(0.02, M, momentum=0.9),
        lambda M: gh.optim.rsgd(0.02, M, momentum=0.9, nesterov=True),
        lambda M: gh.optim.radam(0.05, M),
        lambda M: gh.optim.riemannian(optax.sgd(0.05), M),
        lambda M: gh.optim.riemannian(optax.sgd(0.02, momentum=0.9), M),
    ],
    ids=[
        "rsgd",
        "rsgd-momentum",
        "rsgd-nesterov",
        "radam",
        "riemannian-sgd",
        "sgd-mom",
    ],
)
def test_first_order_rayleigh(getkey, make):
    n = 8
    A = symmetric(getkey(), n)
    sphere = Sphere(n)
    f = rayleigh(A)
    x = scan(make(sphere), f, sphere.random_point(getkey(), dtype=F64), 600)
    assert abs(float(f(x)) - np.linalg.eigvalsh(np.asarray(A))[0]) < 1e-8
    assert abs(float(jnp.linalg.norm(x)) - 1) < 1e-13


def test_stabilize_keeps_iterates_on_the_manifold(getkey):
    n = 8
    A = symmetric(getkey(), n)
    sphere = Sphere(n)
    x0 = sphere.random_point(getkey(), dtype=F64)
    eps = float(jnp.finfo(F64).eps)
    for opt in [
        gh.optim.riemannian(optax.sgd(0.01), sphere, stabilize_every=10),
        gh.optim.rsgd(0.01, sphere, momentum=0.5, stabilize_every=10),
        gh.optim.radam(0.01, sphere, stabilize_every=10),
    ]:
        x = scan(opt, rayleigh(A), x0, 1000)
        assert abs(float(jnp.linalg.norm(x)) - 1) < 300 * eps


# Other manifolds (closed-form optima).


def test_brockett_on_stiefel(getkey):
    n, p = 6, 3
    A = symmetric(getkey(), n)
    N = jnp.diag(jnp.arange(p, 0, -1).astype(F64))
    stiefel = Stiefel(n, p)
    f = lambda X: jnp.trace(X.T @ A @ X @ N)
    eigenvalues = np.linalg.eigvalsh(np.asarray(A))
    expected = float(np.sum(np.arange(p, 0, -1) * eigenvalues[:p]))
    iterates = run(
        gh.optim.trust_region(stiefel), f, stiefel.random_point(getkey(), dtype=F64), 40
    )
    X = iterates[-1]
    assert abs(float(f(X)) - expected) < 1e-10
    assert_close(X.T @ X, jnp.eye(p, dtype=F64), rtol=1e-13)


def test_dominant_subspace_on_grassmann(getkey):
    n, p = 7, 2
    A = symmetric(getkey(), n)
    grassmann = Grassmann(n, p)
    f = lambda X: -jnp.trace(X.T @ A @ X)
    _, U = np.linalg.eigh(np.asarray(A))
    U = U[:, -p:]
    X0 = grassmann.to_manifold(jnp.asarray(U) + 0.1 * jr.normal(getkey(), (n, p), F64))
    iterates = run(gh.optim.newton(grassmann), f, X0, 6)
    norms = [rgrad_norm(grassmann, f, X) for X in iterates]
    print("Riemannian gradient norms:", [f"{g:.3e}" for g in norms])
    assert_superlinear(norms)
    X = iterates[-1]
    assert_close(X @ X.T, U @ U.T, rtol=1e-12)


@pytest.mark.parametrize(
    "manifold", [SPD(3), gh.manifolds.Hyperbolic(4)], ids=["SPD(3)", "Hyperbolic(4)"]
)
def test_matrix_free_newton_on_non_embedded_metrics_matches_dense(manifold, getkey):
    # Issue 15, item 1: the metric of SPD and Hyperbolic is not the ambient dot
    # product, so MINRES on A itself (self-adjoint only in <,>_x) went wrong;
    # the matrix-free path must solve the lowered system and give the dense step.
    a = manifold.random_point(getkey(), dtype=F64)
    f = lambda x: manifold.dist(x, a) ** 2 + 0.3 * jnp.sum(x) ** 2
    x = manifold.random_point(getkey(), dtype=F64)
    dense, matrix_free = (gh.optim.newton(manifold, dense_below=n) for n in (10_000, 0))
    step = lambda opt: opt.update(jax.grad(f)(x), opt.init(x), x, value_fn=f)[0]
    want, got = step(dense), step(matrix_free)
    assert float(jnp.max(jnp.abs(want))) > 1e-3  # a real step, not zero
    assert_close(got, want, rtol=1e-10)


def _sqrtm(S):
    w, V = np.linalg.eigh(S)
    return (V * np.sqrt(w)) @ V.T


def geometric_mean(A, B):
    """`A # B = A^{1/2} (A^{-1/2} B A^{-1/2})^{1/2} A^{1/2}`."""
    root = _sqrtm(A)
    inverse_root = np.linalg.inv(root)
    return root @ _sqrtm(inverse_root @ B @ inverse_root) @ root


@pytest.mark.parametrize("diagonal", [False, True])
def test_karcher_mean_on_spd(getkey, diagonal):
    n = 3
    spd = SPD(n)
    if diagonal:
        A = jnp.diag(jnp.array([1.0, 4.0, 0.5], dtype=F64))
        B = jnp.diag(jnp.array([9.0, 1.0, 2.0], dtype=F64))
        expected = np.diag(np.sqrt(np.diag(A) * np.diag(B)))
    else:
        A, B = (
            spd.random_point(getkey(), dtype=F64),
            spd.random_point(getkey(), dtype=F64),
        )
        expected = geometric_mean(np.asarray(A), np.asarray(B))
    np.testing.assert_allclose(geometric_mean(np.asarray(A), np.asarray(B)), expected)
    f = lambda X: 0.5 * (spd.dist(X, A) ** 2 + spd.dist(X, B) ** 2)
    X = scan(gh.optim.rsgd(0.5, spd), f, jnp.eye(n, dtype=F64), 60)
    assert_close(X, expected, rtol=1e-10)


# Invariance: Newton in two charts of the plane.


def _plane_loss(x):
    a, b = x[0] - 2.0, x[1] - 1.0
    return a**2 + 2.0 * b**2 + 0.5 * a**4 + a * b


def _plane_problem():
    # A module-level function, so that compiled steps are shared between tests.
    loss = gh.ScalarField(_plane_loss)
    polar = gh.charts.Polar()
    metric = gh.metrics.Euclidean(2)
    return loss, polar, metric, metric.reparametrize(polar), loss.reparametrize(polar)


@pytest.mark.parametrize("geometry", ["metric", "coordinate", "trust-region"])
def test_invariant_newton_in_two_charts(geometry):
    loss, polar, metric, metric_psi, loss_psi = _plane_problem()
    if geometry == "metric":
        opt, opt_psi = gh.optim.newton(metric), gh.optim.newton(metric_psi)
    elif geometry == "coordinate":
        opt = gh.optim.newton(gh.manifolds.Coordinate(metric))
        opt_psi = gh.optim.newton(gh.manifolds.Coordinate(metric_psi))
    else:
        opt = gh.optim.trust_region(metric, 0.5, retraction="exp")
        opt_psi = gh.optim.trust_region(metric_psi, 0.5, retraction="exp")
    x0 = jnp.array([0.5, 2.5], dtype=F64)
    iterates = run(opt, loss, x0, 4)
    iterates_psi = run(opt_psi, loss_psi, polar(x0), 4)
    for x, y in zip(iterates, iterates_psi, strict=True):
        assert_close(polar.inverse(y), x, rtol=1e-7)
    assert float(jnp.linalg.norm(iterates[1] - x0)) > 0.1


def test_plain_newton_depends_on_the_chart():
    loss, polar, _, _, loss_psi = _plane_problem()

    def plain_newton(f, x):
        return x - jnp.linalg.solve(jax.hessian(f)(x), jax.grad(f)(x))

    x0 = jnp.array([0.5, 2.5], dtype=F64)
    x1 = jax.jit(plain_newton, static_argnums=0)(loss, x0)
    y1 = jax.jit(plain_newton, static_argnums=0)(loss_psi, polar(x0))
    assert_not_close(polar.inverse(y1), x1, rtol=1e-3)
    # ... while the invariant step from the same point agrees across charts.
    invariant = run(gh.optim.newton(gh.metrics.Euclidean(2)), loss, x0, 1)[-1]
    assert_close(invariant, x1, rtol=1e-12)


def test_newton_damping_is_invariant():
    loss, polar, metric, metric_psi, loss_psi = _plane_problem()
    x0 = jnp.array([0.5, 2.5], dtype=F64)
    opt, opt_psi = gh.optim.newton(metric, 0.3), gh.optim.newton(metric_psi, 0.3)
    x1 = run(opt, loss, x0, 1)[-1]
    y1 = run(opt_psi, loss_psi, polar(x0), 1)[-1]
    assert_close(polar.inverse(y1), x1, rtol=1e-7)
    undamped = run(gh.optim.newton(metric), loss, x0, 1)[-1]
    assert_not_close(x1, undamped, rtol=1e-3)


# optax integration.


def test_chain_with_clipping(getkey):
    n = 6
    A = symmetric(getkey(), n)
    sphere = Sphere(n)
    f = rayleigh(A)
    x = sphere.random_point(getkey(), dtype=F64)
    g = 100.0 * jax.grad(f)(x)
    opt = optax.chain(optax.clip_by_global_norm(1.0), gh.optim.rsgd(0.1, sphere))
    updates, _ = opt.update(g, opt.init(x), x)
    clipped = g / jnp.linalg.norm(g)
    expected = sphere.retract(x, -0.1 * sphere.egrad_to_rgrad(x, clipped)) - x
    assert_close(updates, expected, rtol=1e-14)
    x = scan(opt, f, x, 600)
    assert abs(float(f(x)) - np.linalg.eigvalsh(np.asarray(A))[0]) < 1e-6


def test_euclidean_leaves_match_optax(getkey):
    schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.5)
    params = {"w": jr.normal(getkey(), (3,), F64)}
    grads = [{"w": jr.normal(getkey(), (3,), F64)} for _ in range(3)]
    ours, reference = gh.optim.rsgd(schedule, None), optax.sgd(schedule)
    s1, s2 = ours.init(params), reference.init(params)
    for g in grads:
        u1, s1 = ours.update(g, s1, params)
        u2, s2 = reference.update(g, s2, params)
        assert_close(u1["w"], u2["w"], rtol=1e-15)
    # RAdam on a `None` leaf is Adam, written out here.
    opt = gh.optim.radam(0.1, {"w": None}, b1=0.8, b2=0.9, eps=1e-8)
    state = opt.init(params)
    m = v = np.zeros(3)
    for t, g in enumerate(grads, start=1):
        updates, state = opt.update(g, state, params)
        gw = np.asarray(g["w"])
        m, v = 0.8 * m + 0.2 * gw, 0.9 * v + 0.1 * gw**2
        step = -0.1 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-8)
        assert_close(updates["w"], step, rtol=1e-13)


def test_mixed_manifold_tree(getkey):
    n = 5
    A = symmetric(getkey(), n)
    target = jr.normal(getkey(), (2, 3), F64)
    params = {
        "direction": Sphere(n).random_point(getkey(), dtype=F64),
        "weights": {"a": jnp.zeros((2, 3), F64), "b": jnp.ones((4,), F64)},
    }
    manifold = {"direction": Sphere(n), "weights": None}

    def f(p):
        fit = jnp.sum((p["weights"]["a"] - target) ** 2) + jnp.sum(
            p["weights"]["b"] ** 2
        )
        return rayleigh(A)(p["direction"]) + fit

    for opt in [gh.optim.radam(0.05, manifold), gh.optim.rsgd(0.1, manifold, 0.5)]:
        p = scan(opt, f, params, 800)
        assert abs(float(rayleigh(A)(p["direction"])) - np.linalg.eigvalsh(A)[0]) < 1e-8
        assert_close(p["weights"]["a"], target, rtol=1e-6)
    nu = gh.optim.radam(0.05, manifold).init(params).nu
    assert nu["direction"].shape == ()
    assert nu["weights"]["a"].shape == (2, 3)


def test_serialise_round_trip(getkey, tmp_path):
    n = 4
    sphere = Sphere(n)
    A = symmetric(getkey(), n)
    f = rayleigh(A)
    params = {"x": sphere.random_point(getkey(), dtype=F64), "b": jnp.ones(2, F64)}
    manifold = {"x": sphere, "b": None}
    for i, opt in enumerate(
        [
            gh.optim.radam(0.1, manifold),
            gh.optim.rsgd(0.1, manifold, momentum=0.9),
            gh.optim.riemannian(optax.sgd(0.1, momentum=0.9), manifold),
        ]
    ):
        state, p = opt.init(params), params
        for _ in range(2):
            p, state = _step(opt, MixedLoss(A), p, state)
        path = tmp_path / f"state{i}.eqx"
        eqx.tree_serialise_leaves(path, state)
        loaded = eqx.tree_deserialise_leaves(path, opt.init(params))
        assert bool(eqx.tree_equal(loaded, state))
    for opt in [gh.optim.newton(sphere), gh.optim.trust_region(sphere)]:
        x = params["x"]
        _, state = _step(opt, f, x, opt.init(x))
        path = tmp_path / "second_order.eqx"
        eqx.tree_serialise_leaves(path, state)
        loaded = eqx.tree_deserialise_leaves(path, opt.init(x))
        assert bool(eqx.tree_equal(loaded, state))
    assert gh.optim.trust_region(sphere, 0.5).init(params["x"]).radius == 0.5


def _riemannian_sgd(M, h):
    return gh.optim.riemannian(optax.sgd(h), M)


def _counted_step():
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(opt, x, state, A):
        f = rayleigh(A)
        updates, state = opt.update(jax.grad(f)(x), state, x, value_fn=f)
        return optax.apply_updates(x, updates), state

    return step


@pytest.mark.parametrize(
    "make",
    [
        lambda M, h: gh.optim.rsgd(h, M, momentum=0.9),
        lambda M, h: gh.optim.radam(h, M),
        _riemannian_sgd,
        lambda M, h: gh.optim.newton(M, damping=h),
        lambda M, h: gh.optim.trust_region(M, initial_radius=h),
    ],
    ids=["rsgd", "radam", "riemannian", "newton", "trust-region"],
)
def test_no_retrace_and_new_hyperparameter_does_not_recompile(getkey, make):
    sphere = Sphere(5)
    A = symmetric(getkey(), 5)
    step = _counted_step()  # fails on a second trace
    x = sphere.random_point(getkey(), dtype=F64)
    opt = make(sphere, 0.1)
    state = opt.init(x)
    for _ in range(3):
        x, state = step(opt, x, state, A)
    if make is not _riemannian_sgd:
        # A new learning rate, damping or radius: the same trace. (A new optax base
        # is a new set of closures, which retraces: optax#577.)
        opt = make(sphere, 0.05)
    for _ in range(2):
        x, state = step(opt, x, state, A)


def test_float32_keeps_dtype(getkey):
    sphere = Sphere(4)
    A = symmetric(getkey(), 4, jnp.float32)
    x = sphere.random_point(getkey(), dtype=jnp.float32)
    f = rayleigh(A)
    for opt in [
        gh.optim.rsgd(0.1, sphere, momentum=0.9),
        gh.optim.radam(0.1, sphere),
        gh.optim.riemannian(optax.sgd(0.1), sphere),
        gh.optim.newton(sphere),
        gh.optim.trust_region(sphere),
    ]:
        y, state = _step(opt, f, x, opt.init(x))
        assert y.dtype == jnp.float32
        for leaf in jax.tree_util.tree_leaves(state):
            assert leaf.dtype in (jnp.float32, jnp.int32)


def test_errors(getkey):
    sphere = Sphere(3)
    x = sphere.random_point(getkey(), dtype=F64)
    g = jnp.ones(3, F64)
    with pytest.raises(ValueError, match="`params` is required"):
        opt = gh.optim.rsgd(0.1, sphere)
        opt.update(g, opt.init(x), None)
    with pytest.raises(ValueError, match="`value_fn` is required"):
        opt = gh.optim.newton(sphere)
        opt.update(g, opt.init(x), x)
    with pytest.raises(ValueError, match="pytree prefix"):
        gh.optim.radam(0.1, {"a": sphere, "b": None}).init(x)
    with pytest.raises(ValueError, match="retraction"):
        gh.optim.newton(sphere, retraction="qr")
    with pytest.raises(TypeError, match="expected a connection"):
        gh.optim.newton("sphere")
    with pytest.raises(ValueError, match="nesterov"):
        gh.optim.rsgd(0.1, sphere, nesterov=True)
    with pytest.raises(ValueError, match="needs a metric"):
        opt = gh.optim.trust_region(gh.connections.Flat())
        opt.update(g, opt.init(x), x, value_fn=lambda x: x @ x)


# The fused first-order step on Sphere and Stiefel, and the trust region's fast paths.


def _radam_rule(nu):
    def length(rgrad_sq):
        new = 0.9 * nu + 0.1 * rgrad_sq
        return 0.3 / (jnp.sqrt(new) + 1e-8), new

    return geomhess.optim._moment.MomentRule(0.9, 0.1, 1, 0, length)


_RULES = {
    "radam": _radam_rule,
    "nesterov": lambda nu: geomhess.optim._moment.MomentRule(
        0.9, 1, 0.9, 1, lambda _: (0.05, nu)
    ),
    "plain": lambda nu: geomhess.optim._moment.MomentRule(
        0, 0, 0, 1, lambda _: (0.05, nu)
    ),
}


@pytest.mark.parametrize("rule", list(_RULES))
@pytest.mark.parametrize(
    "manifold",
    [
        Sphere(7),
        Stiefel(9, 3),
        Stiefel(6, 1),
        # Tall enough for the Stiefel combination's elementwise form.
        Stiefel(geomhess.optim._moment._BROADCAST_MIN_N, 3),
    ],
    ids=["sphere", "st93", "st61", "st_tall"],
)
def test_fused_moment_step_is_the_generic_one(getkey, manifold, rule):
    from geomhess.optim._moment import generic_moment_step, moment_step

    x = manifold.random_point(getkey(), dtype=F64)
    m = None if rule == "plain" else manifold.random_tangent(getkey(), x)
    fused = generic = (x, m, jnp.zeros([], F64))
    for _ in range(6):
        g = jr.normal(getkey(), x.shape, F64)
        fused = moment_step(manifold, fused[0], g, fused[1], _RULES[rule](fused[2]))
        generic = generic_moment_step(
            manifold, generic[0], g, generic[1], _RULES[rule](generic[2])
        )
        for a, b in zip(fused, generic, strict=True):
            if a is not None:
                assert_close(a, b, rtol=1e-13)
    y = fused[0].reshape(x.shape[0], -1)
    assert_close(y.T @ y, jnp.eye(y.shape[1], dtype=F64), rtol=1e-14)
    # It moved: entries of a unit column are about 1 / sqrt(n), so the tall case's
    # bound scales with them (the others keep the bound 0.1).
    bound = 0.1 * min(1.0, (9 / x.shape[0]) ** 0.5)
    assert float(jnp.max(jnp.abs(fused[0] - x))) > bound


@pytest.mark.parametrize(
    "manifold",
    # The last one has more columns than the fused step takes: the generic path.
    [Sphere(50), Stiefel(40, 4), Stiefel(40, geomhess.optim._moment._FUSED_MAX_P + 1)],
    ids=str,
)
def test_radam_fused_stays_on_the_manifold(getkey, manifold):
    A = symmetric(getkey(), manifold.n)
    f = lambda x: jnp.sum(x * (A @ x))
    x = scan(gh.optim.radam(0.01, manifold), f, manifold.random_point(getkey()), 500)
    y = x.reshape(x.shape[0], -1)
    eps = float(jnp.finfo(F64).eps)
    assert float(jnp.max(jnp.abs(y.T @ y - jnp.eye(y.shape[1], dtype=F64)))) < 300 * eps


@pytest.mark.parametrize(
    "manifold",
    [Sphere(6), Stiefel(6, 3), Grassmann(6, 2), SPD(3)],
    ids=["sphere", "stiefel", "grassmann", "spd"],
)
def test_hessian_operator_is_ehvp_to_rhvp(getkey, manifold):
    from geomhess.optim._geometry import ManifoldGeometry

    A = symmetric(getkey(), 6)
    if isinstance(manifold, SPD):
        f = lambda X: jnp.trace(X @ X @ A[:3, :3]) + jnp.sum(X**3)
    else:
        f = lambda x: jnp.sum(x * (A @ x)) + jnp.sum(x**3)
    x = manifold.random_point(getkey(), dtype=F64)
    v = manifold.random_tangent(getkey(), x)
    egrad = jax.grad(f)(x)
    ehvp = jax.jvp(jax.grad(f), (x,), (v,))[1]
    expected = manifold.to_tangent(x, manifold.ehvp_to_rhvp(x, egrad, ehvp, v))
    actual = ManifoldGeometry(manifold).hessian(f, x, egrad)(v)
    assert_close(actual, expected, rtol=1e-12)


class _RayleighHVP(eqx.Module):
    A: jax.Array

    def __call__(self, x, v):
        return (self.A + self.A.T) @ v


class _BrockettHVP(eqx.Module):
    A: jax.Array
    d: jax.Array

    def __call__(self, X, V):
        return 2 * (self.A @ V) * self.d[None, :]


class _Brockett(eqx.Module):
    A: jax.Array
    d: jax.Array

    def __call__(self, X):
        return jnp.sum(X * (self.A @ X) * self.d[None, :])


@eqx.filter_jit
def _step_hvp(opt, f, hvp, x, state):
    updates, state = opt.update(None, state, x, value_fn=f, hvp_fn=hvp)
    return optax.apply_updates(x, updates), state


@pytest.mark.parametrize("method", ["trust_region", "newton"])
@pytest.mark.parametrize("problem", ["rayleigh", "brockett"])
def test_hvp_fn_gives_the_same_iterates(getkey, method, problem):
    if problem == "rayleigh":
        manifold = Sphere(8)
        A = symmetric(getkey(), 8)
        f, hvp = rayleigh(A), _RayleighHVP(A)
    else:
        manifold = Stiefel(7, 3)
        A = symmetric(getkey(), 7)
        d = jnp.arange(3, 0, -1).astype(F64)
        f, hvp = _Brockett(A, d), _BrockettHVP(A, d)
    opt = getattr(gh.optim, method)(manifold)
    x0 = manifold.random_point(getkey(), dtype=F64)
    if method == "newton":
        # Newton from near the minimizer, so that every step is well defined.
        x0 = run(gh.optim.trust_region(manifold), f, x0, 4)[-1]
    x, y = x0, x0
    state_x, state_y = opt.init(x0), opt.init(x0)
    for _ in range(6):
        x, state_x = _step(opt, f, x, state_x)
        y, state_y = _step_hvp(opt, f, hvp, y, state_y)
        assert_close(y, x, rtol=1e-10)


def test_hvp_fn_on_coordinates():
    loss, _, metric, _, _ = _plane_problem()
    hvp = lambda x, v: jax.jvp(jax.grad(loss), (x,), (v,))[1]
    x0 = jnp.array([0.5, 2.5], dtype=F64)
    for opt in [gh.optim.trust_region(metric, 0.5), gh.optim.newton(metric)]:
        x, y = x0, x0
        state_x, state_y = opt.init(x0), opt.init(x0)
        for _ in range(3):
            x, state_x = _step(opt, loss, x, state_x)
            y, state_y = _step_hvp(opt, loss, hvp, y, state_y)
            assert_close(y, x, rtol=1e-10)


def test_trust_region_state_keeps_value_and_gradient(getkey):
    sphere = Sphere(8)
    A = symmetric(getkey(), 8)
    f = rayleigh(A)
    opt = gh.optim.trust_region(sphere)
    x = sphere.random_point(getkey(), dtype=F64)
    state = opt.init(x)
    for _ in range(4):
        x, state = _step(opt, f, x, state)
        # The kept values are those at the point the caller now holds.
        assert bool(jnp.array_equal(state.point, x))
        assert_close(state.value, f(x), rtol=1e-14)
        assert_close(state.grad_norm, rgrad_norm(sphere, f, x), rtol=1e-12)
    # Params changed between updates: the update evaluates afresh, and moves as a
    # new optimizer would from there.
    z = sphere.random_point(getkey(), dtype=F64)
    moved, _ = _step(opt, f, z, state)
    fresh, _ = _step(opt, f, z, opt.init(z)._replace(radius=state.radius))
    assert_close(moved, fresh, rtol=1e-14)
