"""The bad-input corpus: every case gives a clear error that names the problem (checked
on the message), eagerly, under `jax.jit` and, where it applies, under `jax.vmap`; or
the behaviour its docstring promises. None of them may return a silent number.

Errors raised while tracing (shapes, dtypes, pytree structures, hyperparameters) are
`ValueError`s in every mode. Errors that depend on values go through
`equinox.error_if`: eagerly an `EquinoxRuntimeError`, under `jax.jit` a
`JaxRuntimeError` whose text holds the same message (docs/checks.md).
"""

import dataclasses
import re
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import geomhess as gh
import geomhess.manifolds as gm


NAN = float("nan")
S3, ST, SPD2, H2 = gm.Sphere(3), gm.Stiefel(4, 2), gm.SPD(2), gm.Hyperbolic(2)
E2 = gh.metrics.Euclidean(2)
NORTH = jnp.array([0.0, 0.0, 1.0])
FRAME = jnp.eye(4)[:, :2]
ORIGIN_H = jnp.array([1.0, 0.0, 0.0])


def _bowl(x):
    return jnp.sum(x**2) + x[0] * x[1]


@dataclasses.dataclass(frozen=True)
class Case:
    """`fn(*args)` must raise an error whose message matches `match`. `vmap`: the
    case also runs on a batch of two copies of `args` (the bad one and itself)."""

    name: str
    fn: Callable
    args: tuple
    match: str
    vmap: bool = True


def _opt_update(opt, x, grad=None, state=None, **kwargs):
    state = opt.init(x) if state is None else state
    updates = opt.update(
        jnp.zeros_like(x) if grad is None else grad, state, x, **kwargs
    )
    return updates[0]


CASES = [
    # --- shapes, dtypes and pytree structures (raised while tracing) ---
    Case(
        "sphere point of the wrong shape",
        S3.exp,
        (jnp.ones(4), jnp.zeros(4)),
        "has shape",
    ),
    Case(
        "covariant_hvp vector shaped unlike the point",
        lambda x, v: gh.covariant_hvp(_bowl, E2, x, v),
        (jnp.ones(2), jnp.ones(3)),
        "must match",
    ),
    Case(
        "mixed float32 / float64 point and vector",
        lambda x, v: gh.covariant_hvp(_bowl, E2, x, v.astype(jnp.float32)),
        (jnp.ones(2), jnp.ones(2)),
        "must match",
    ),
    Case(
        "integer point to a dense operator",
        lambda x: gh.covariant_hessian(_bowl, E2, x.astype(jnp.int32)),
        (jnp.ones(2),),
        "floating point",
    ),
    Case(
        "integer point to a manifold",
        lambda x: S3.exp(x.astype(jnp.int32), x),
        (NORTH,),
        "floating point",
    ),
    Case(
        "Product point with too few factors",
        lambda x: gm.Product((S3, S3)).exp((x,), (x,)),
        (NORTH,),
        "does not match the manifolds' structure",
    ),
    Case(
        "rsgd state made for other params",
        lambda x: _opt_update(
            gh.optim.rsgd(0.1, S3, momentum=0.9),
            x,
            state=gh.optim.rsgd(0.1, S3, momentum=0.9).init(jnp.ones(1)),
        ),
        (NORTH,),
        "made by `init` for other params",
    ),
    Case(
        "radam state made for other params",
        lambda x: _opt_update(
            gh.optim.radam(0.1, S3), x, state=gh.optim.radam(0.1, S3).init(x[:2])
        ),
        (NORTH,),
        "made by `init` for other params",
    ),
    Case(
        "trust_region state made for other params",
        lambda x: _opt_update(
            gh.optim.trust_region(E2),
            x,
            state=gh.optim.trust_region(E2).init(jnp.ones(3)),
            value_fn=_bowl,
        ),
        (jnp.ones(2),),
        "made by `init` for other params",
        vmap=False,
    ),
    # --- NaN and inf in points, vectors and losses ---
    Case(
        "NaN point to the covariant Hessian",
        lambda x: gh.covariant_hessian(_bowl, E2, x),
        (jnp.array([NAN, 1.0]),),
        "NaN or inf",
    ),
    Case(
        "inf point to the Christoffel symbols",
        lambda x: gh.LeviCivita(
            gh.metrics.FromFunction(lambda q: jnp.eye(2) * (1 + q[0] ** 2))
        ).christoffel(x),
        (jnp.array([jnp.inf, 1.0]),),
        "NaN or inf",
    ),
    Case(
        "NaN point on the sphere",
        S3.exp,
        (jnp.array([NAN, 0.0, 1.0]), jnp.zeros(3)),
        "not on the sphere",
    ),
    Case(
        "NaN tangent vector", S3.exp, (NORTH, jnp.array([NAN, 0.0, 0.0])), "not tangent"
    ),
    Case(
        "NaN point to Sphere.dist (never 0)",
        S3.dist,
        (NORTH, jnp.array([NAN, 0.0, 0.0])),
        "not on the sphere",
    ),
    Case(
        "NaN gradient in rsgd",
        lambda x: _opt_update(gh.optim.rsgd(0.1, S3), x, grad=x * NAN),
        (NORTH,),
        "gradient holds NaN",
    ),
    Case(
        "NaN gradient in radam",
        lambda x: _opt_update(gh.optim.radam(0.1, S3), x, grad=x * NAN),
        (NORTH,),
        "gradient holds NaN",
    ),
    Case(
        "NaN gradient in riemannian(optax.sgd)",
        lambda x: _opt_update(gh.optim.riemannian(optax.sgd(0.1), S3), x, grad=x * NAN),
        (NORTH,),
        "gradient holds NaN",
    ),
    Case(
        "loss NaN at the iterate in trust_region",
        lambda x: _opt_update(
            gh.optim.trust_region(E2), x, value_fn=lambda q: jnp.log(q[0] - 10.0)
        ),
        (jnp.ones(2),),
        "loss or its gradient holds NaN",
        vmap=False,
    ),
    Case(
        "loss NaN at the iterate in newton",
        lambda x: _opt_update(
            gh.optim.newton(E2), x, value_fn=lambda q: jnp.sqrt(q[0] - 10.0)
        ),
        (jnp.ones(2),),
        "gradient.* holds NaN",
        vmap=False,
    ),
    # --- metrics: indefinite, singular, non-symmetric, NaN ---
    Case(
        "indefinite metric",
        lambda x: gh.metrics.FromFunction(
            lambda q: jnp.diag(jnp.array([1.0, -1.0]))
        ).raise_index(x, x),
        (jnp.ones(2),),
        "not positive definite",
    ),
    Case(
        "singular metric",
        lambda x: gh.metrics.FromFunction(lambda q: jnp.zeros((2, 2))).raise_index(
            x, x
        ),
        (jnp.ones(2),),
        "not positive definite",
    ),
    Case(
        "non-symmetric metric in its inner product",
        lambda x: gh.metrics.FromFunction(
            lambda q: jnp.array([[1.0, 0.5], [0.0, 1.0]])
        ).mvp(x, x),
        (jnp.ones(2),),
        "not symmetric",
    ),
    Case(
        "non-symmetric matrix to spd_solve",
        lambda b: gh.linalg.spd_solve(jnp.array([[2.0, 1.0], [0.0, 2.0]]), b),
        (jnp.ones(2),),
        "not symmetric",
    ),
    Case(
        "NaN metric",
        lambda x: gh.metrics.FromFunction(lambda q: jnp.eye(2) * NAN).raise_index(x, x),
        (jnp.ones(2),),
        "not positive definite",
    ),
    Case(
        "diagonal metric with a zero entry",
        lambda x: gh.metrics.Diagonal(lambda q: q * 0).raise_index(x, x),
        (jnp.ones(2),),
        "not positive definite",
    ),
    # --- charts at singular points and outside their domain ---
    Case(
        "Elementwise.log at a negative coordinate",
        gh.charts.Elementwise.log(),
        (jnp.array([-1.0, 1.0]),),
        r"needs every coordinate > 0",
    ),
    Case(
        "Elementwise.exp inverse at 0",
        gh.charts.Elementwise.exp().inverse,
        (jnp.array([0.0, 1.0]),),
        r"needs every coordinate > 0",
    ),
    Case(
        "Polar inverse with r < 0",
        gh.charts.Polar().inverse,
        (jnp.array([-1.0, 0.3]),),
        "radius must be positive",
    ),
    Case(
        "Polar's Jacobian at the origin (the check survives jacrev under jit)",
        jax.jacrev(gh.charts.Polar()),
        (jnp.zeros(2),),
        "outside the chart's domain",
    ),
    Case(
        "Spherical on its axis",
        jax.jacrev(gh.charts.Spherical()),
        (jnp.array([1.0, 0.0, 0.0]),),
        "outside the chart's domain",
    ),
    Case(
        "Spherical inverse with r = 0",
        gh.charts.Spherical().inverse,
        (jnp.array([0.0, 0.3, 0.2]),),
        "radius must be positive",
    ),
    # --- points off the manifold and vectors not tangent ---
    Case(
        "point off the sphere",
        S3.exp,
        (jnp.array([1.0, 1.0, 0.0]), jnp.zeros(3)),
        "not on the sphere",
    ),
    Case(
        "frame off Stiefel",
        ST.retract,
        (2 * FRAME, jnp.zeros((4, 2))),
        "not on the Stiefel",
    ),
    Case(
        "frame off Grassmann",
        gm.Grassmann(4, 2).log,
        (2 * FRAME, FRAME),
        "not on the Grassmann",
    ),
    Case(
        "non-symmetric SPD point",
        SPD2.exp,
        (jnp.array([[2.0, 1.0], [0.0, 2.0]]), jnp.zeros((2, 2))),
        "not symmetric positive definite",
    ),
    Case(
        "indefinite SPD point to dist (never 0)",
        SPD2.dist,
        (jnp.diag(jnp.array([1.0, -1.0])), jnp.eye(2)),
        "not symmetric positive definite",
    ),
    Case(
        "indefinite second SPD point to log",
        SPD2.log,
        (jnp.eye(2), jnp.diag(jnp.array([1.0, -1.0]))),
        "not symmetric positive definite",
    ),
    Case(
        "point off the hyperboloid",
        H2.exp,
        (jnp.array([1.0, 1.0, 0.0]), jnp.zeros(3)),
        "not on the hyperboloid",
    ),
    Case(
        "point on the lower sheet",
        H2.dist,
        (-ORIGIN_H, ORIGIN_H),
        "not on the hyperboloid",
    ),
    Case(
        "vector not tangent to the sphere",
        S3.exp,
        (NORTH, jnp.array([0.0, 0.0, 1.0])),
        "not tangent",
    ),
    Case("vector not tangent to Stiefel", ST.exp, (FRAME, FRAME), "not tangent"),
    Case(
        "non-symmetric SPD tangent vector",
        SPD2.retract,
        (jnp.eye(2), jnp.array([[0.0, 1.0], [0.0, 0.0]])),
        "not tangent",
    ),
    Case(
        "vector not tangent to the hyperboloid",
        H2.transport,
        (ORIGIN_H, ORIGIN_H, ORIGIN_H),
        "not tangent",
    ),
    # --- Newton at a numerically singular Hessian ---
    Case(
        "newton_step on a rank-1 Hessian",
        lambda x: gh.newton_step(
            lambda q: 0.5 * (0.1 * q[0] + 0.3 * q[1]) ** 2 + 0.7 * q[0], E2, x
        ),
        (jnp.array([0.2, 0.1]),),
        "singular",
    ),
    Case(
        "newton optimizer on a rank-1 Hessian",
        lambda x: _opt_update(
            gh.optim.newton(E2), x, value_fn=lambda q: (q[0] + q[1]) ** 2 + q[0]
        ),
        (jnp.array([0.2, 0.1]),),
        "singular",
        vmap=False,
    ),
]

# Hyperparameters are checked when the optimizer is made: no mode applies.
HYPERPARAMETERS = [
    ("rsgd learning rate 0", lambda: gh.optim.rsgd(0.0, S3), "learning_rate"),
    ("rsgd learning rate negative", lambda: gh.optim.rsgd(-0.1, S3), "learning_rate"),
    ("rsgd learning rate NaN", lambda: gh.optim.rsgd(NAN, S3), "learning_rate"),
    ("rsgd momentum 1", lambda: gh.optim.rsgd(0.1, S3, momentum=1.0), "momentum"),
    ("radam b1 = 1", lambda: gh.optim.radam(0.1, S3, b1=1.0), "b1"),
    ("radam learning rate NaN", lambda: gh.optim.radam(NAN, S3), "learning_rate"),
    (
        "trust_region negative radius",
        lambda: gh.optim.trust_region(S3, initial_radius=-1.0),
        "initial_radius",
    ),
    ("newton negative damping", lambda: gh.optim.newton(E2, damping=-1.0), "damping"),
    (
        "hessian_free negative damping",
        lambda: gh.optim.hessian_free(damping=-1.0),
        "damping",
    ),
    (
        "hessian_free increase below 1",
        lambda: gh.optim.hessian_free(increase=0.5),
        "increase",
    ),
]

# Estimators: bad sizes and keys, raised while tracing.
ESTIMATORS = [
    (
        "zero probes",
        lambda: gh.linalg.shape_operator_trace(
            _bowl, E2, jnp.ones(2), key=jr.key(0), num_probes=0
        ),
        "num_probes",
    ),
    (
        "an integer where a key belongs",
        lambda: gh.linalg.shape_operator_trace(_bowl, E2, jnp.ones(2), key=0),
        "key",
    ),
    (
        "more eigenvalues asked for than dimensions",
        lambda: gh.linalg.shape_operator_eigenvalues(
            _bowl, E2, jnp.ones(2), key=jr.key(0), k=3
        ),
        "capped at the dimension",
    ),
]


def _raise_message(call):
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is checked
        jax.block_until_ready(call())
    assert isinstance(
        info.value, ValueError | eqx.EquinoxRuntimeError | jax.errors.JaxRuntimeError
    ), f"unexpected exception type {type(info.value).__name__}: {info.value}"
    return str(info.value)


def _batched(args):
    return jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), args)


MODES = ["eager", "jit", "vmap"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_raises_a_clear_error(case, mode):
    if mode == "vmap" and not case.vmap:
        pytest.skip("an optimizer's update is not batched over params")
    if mode == "eager":
        call = lambda: case.fn(*case.args)  # noqa: E731
    elif mode == "jit":
        call = lambda: jax.jit(case.fn)(*case.args)  # noqa: E731
    else:
        call = lambda: jax.vmap(case.fn)(*_batched(case.args))  # noqa: E731
    message = _raise_message(call)
    assert re.search(case.match, message), message


@pytest.mark.parametrize(
    ("name", "make", "match"), HYPERPARAMETERS, ids=[h[0] for h in HYPERPARAMETERS]
)
def test_bad_hyperparameters_are_refused_when_the_optimizer_is_made(name, make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("name", "call", "match"), ESTIMATORS, ids=[e[0] for e in ESTIMATORS]
)
def test_bad_estimator_arguments(name, call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(HYPERPARAMETERS) + len(ESTIMATORS) >= 40


# --- behaviour the docstrings promise ---


@pytest.mark.parametrize("scale", [1.0, 1e-9, 1e9])
def test_classify_never_says_minimum_at_a_non_critical_point(scale):
    f = lambda x: scale * ((x[0] - 1) ** 2 + x[1] ** 2)  # noqa: E731
    for run in (
        gh.classify_critical_point,
        jax.jit(gh.classify_critical_point, static_argnums=0),
    ):
        assert run(f, jnp.zeros(2)).kind == "not-critical"
        assert run(f, jnp.array([1.0, 0.0])).kind == "minimum"


def test_newton_step_at_a_saddle_solves_the_newton_system():
    # Newton goes to the nearest critical point of any index (docstring): at a saddle
    # of a quadratic it lands on it in one step, and says nothing is wrong.
    f = lambda x: x[0] ** 2 - 3 * x[1] ** 2 + x[0] * x[1]  # noqa: E731
    x = jnp.array([0.4, -0.2])
    eta = gh.newton_step(f, E2, x)
    np.testing.assert_allclose(x + eta, jnp.zeros(2), atol=1e-14)
    assert gh.classify_critical_point(f, x + eta).kind == "saddle"


def test_norms_of_nan_vectors_are_nan_not_zero():
    v = jnp.array([NAN, 0.0, 0.0])
    assert np.isnan(S3.norm(NORTH, v))
    assert np.isnan(jax.jit(gm.Euclidean(3).dist)(jnp.zeros(3), v))


def test_spd_at_repeated_eigenvalues_has_finite_gradients():
    # The identity has one eigenvalue three times: `eigh`'s own JVP divides by gaps.
    M = gm.SPD(3)
    y = jnp.diag(jnp.array([2.0, 2.0, 0.5]))
    for fn in (
        lambda x: M.dist(x, y),
        lambda x: jnp.sum(M.log(x, y)),
        lambda x: jnp.sum(M.exp(x, jnp.eye(3))),
    ):
        g = jax.grad(fn)(jnp.eye(3))
        assert np.all(np.isfinite(g))
    # dist(I, diag(e^a)) = |a|: its gradient in y at a repeated eigenvalue, in closed form.
    a = jnp.array([0.3, 0.3, -0.2])
    g = jax.grad(lambda z: M.dist(jnp.eye(3), z))(jnp.diag(jnp.exp(a)))
    np.testing.assert_allclose(
        jnp.diag(g), a / jnp.linalg.norm(a) / jnp.exp(a), rtol=1e-10
    )


def test_checks_switch_off(monkeypatch):
    # GEOMHESS_CHECKS=0 (read when a function is traced) skips the per-step checks:
    # the off-manifold point is then used as given, as documented in docs/checks.md.
    x = jnp.array([2.0, 0.0, 0.0])
    monkeypatch.setenv("GEOMHESS_CHECKS", "0")
    np.testing.assert_allclose(S3.exp(x, jnp.zeros(3)), x)
    monkeypatch.setenv("GEOMHESS_CHECKS", "1")
    with pytest.raises(eqx.EquinoxRuntimeError, match="not on the sphere"):
        S3.exp(x, jnp.zeros(3))


def test_more_lanczos_steps_than_dimensions_are_capped_at_d():
    # Documented: `num_iterations` is capped at `d`, where Lanczos is exact.
    f = lambda x: x[0] ** 2 + 3 * x[1] ** 2 + x[0] * x[1]  # noqa: E731
    result = gh.linalg.shape_operator_eigenvalues(
        f, E2, jnp.ones(2), key=jr.key(0), k=2, num_iterations=50
    )
    exact = np.linalg.eigvalsh(np.array([[2.0, 1.0], [1.0, 6.0]]))
    np.testing.assert_allclose(np.sort(result.eigenvalues), exact, rtol=1e-12)


def test_under_filter_jit_the_message_is_the_first_line_after_the_traceback():
    # Under `eqx.filter_jit` the error is re-raised with the message as the first
    # line after the (short) traceback; under `jax.jit` it sits inside XLA's
    # callback error (docs/checks.md).
    x = jnp.array([1.0, 1.0, 0.0])
    message = _raise_message(lambda: eqx.filter_jit(S3.exp)(x, jnp.zeros(3)))
    lines = [line for line in message.splitlines()[1:] if line.strip()]
    first = next(line for line in lines if not line.startswith(" "))
    assert "`Sphere.exp`: the point `x` is not on the sphere" in first


def _callback_records(caplog):
    return [r for r in caplog.records if r.name == "jax._src.callback"]


@pytest.mark.parametrize("wrap", ["eager", "jax.jit"])
def test_the_first_line_printed_for_a_failed_check_is_its_message(wrap, caplog):
    # JAX logs a failed callback ("jax.pure_callback failed") with a traceback of its
    # own frames before raising; geomhess makes that record lead with the message,
    # so that under plain `jax.jit` too the first line on stderr says what is wrong.
    x = jnp.array([1.0, 1.0, 0.0])
    exp = S3.exp if wrap == "eager" else jax.jit(S3.exp)
    with pytest.raises(Exception) as info:
        jax.block_until_ready(exp(x, jnp.zeros(3)))
    assert "`Sphere.exp`: the point `x` is not on the sphere" in str(info.value)
    (record,) = _callback_records(caplog)
    first = record.getMessage().splitlines()[0]
    assert first.startswith(
        "geomhess check failed: `Sphere.exp`: the point `x` is not on the sphere"
    ), first
    assert record.exc_info is None  # JAX's frames are not printed before it


def test_the_log_filter_leaves_other_callbacks_alone(caplog):
    # An Equinox check that is not geomhess's keeps JAX's record as it is.
    f = jax.jit(lambda x: eqx.error_if(x, x > 0, "someone else's check"))
    with pytest.raises(Exception, match="someone else's check"):
        jax.block_until_ready(f(jnp.ones(())))
    (record,) = _callback_records(caplog)
    assert record.getMessage() == "jax.pure_callback failed"
    assert record.exc_info is not None
