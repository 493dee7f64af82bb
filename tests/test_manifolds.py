"""The manifold contract, run on every manifold, plus closed-form checks.

`ALL_MANIFOLDS` lists each manifold with what it claims (a closed-form log and
distance, the retraction's order, an isometric transport); the contract tests check
exactly those claims, and that the rest raises `NotImplementedError`.
"""

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest
from helpers import assert_close, tol

import geomhess as gh
import geomhess.manifolds as gm
from geomhess._core.tree import tree_random
from geomhess.manifolds._functions import expm_sym, logm_sym, sqrtm_sym


def _half_plane(q):
    return jnp.eye(2, dtype=q.dtype) / q[1] ** 2


def _stretched(q):
    # A non-diagonal, position-dependent metric on R^3.
    J = jnp.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 1.0]], dtype=q.dtype)
    scale = 1.0 + 0.5 * jnp.sin(q[0]) ** 2 + 0.25 * q[2] ** 2
    return scale * (J.T @ J)


def _generic_cost(x):
    """A smooth non-quadratic function of the ambient point, any pytree."""
    out = []
    for i, leaf in enumerate(jtu.tree_leaves(x)):
        flat = jnp.ravel(leaf)
        c = jnp.linspace(0.5, 1.5, flat.size, dtype=flat.dtype) + 0.1 * i
        out.append(jnp.sum(jnp.sin(c * flat)) + 0.5 * jnp.sum(c * flat**2) ** 2 / 4)
    return sum(out[1:], out[0])


def _grassmann_cost(X):
    """A function of the subspace only (invariant under X -> XQ)."""
    P = X @ X.T
    n = X.shape[0]
    A = jnp.arange(n * n, dtype=X.dtype).reshape(n, n) / (n * n)
    return jnp.sum((A + A.T) * P) + jnp.sum(jnp.sin(P))


def _identity(x):
    return x


def _grassmann_canon(X):
    return X @ X.T


@dataclasses.dataclass(frozen=True)
class Case:
    manifold: gm.AbstractManifold
    has_log: bool = True
    has_dist: bool = True
    retraction_order: int = 2  # 0: the retraction is the exponential map itself
    isometric_transport: bool = False
    cost: Callable = _generic_cost
    canon: Callable = _identity  # compare points up to symmetry
    step: float = 0.4  # the size of "small" tangent vectors
    kind: str = "algebraic"  # tolerance kind for exp (ODE for Coordinate)


ALL_MANIFOLDS = {
    "euclidean": Case(
        gm.Euclidean((2, 3)), retraction_order=0, isometric_transport=True
    ),
    "sphere": Case(gm.Sphere(4)),
    "stiefel": Case(gm.Stiefel(5, 3), has_log=False, has_dist=False),
    "stiefel_square": Case(gm.Stiefel(3, 3), has_log=False, has_dist=False),
    "grassmann": Case(gm.Grassmann(5, 2), cost=_grassmann_cost, canon=_grassmann_canon),
    "spd": Case(gm.SPD(3), isometric_transport=True),
    "hyperbolic": Case(gm.Hyperbolic(3), retraction_order=0, isometric_transport=True),
    "coordinate_half_plane": Case(
        gm.Coordinate(
            gh.metrics.FromFunction(_half_plane), origin=jnp.array([0.3, 1.0])
        ),
        has_log=False,
        has_dist=False,
        isometric_transport=True,
        step=0.2,
        kind="ode",
    ),
    "coordinate_stretched": Case(
        gm.Coordinate(
            gh.metrics.FromFunction(_stretched), origin=jnp.array([0.2, -0.1, 0.3])
        ),
        has_log=False,
        has_dist=False,
        isometric_transport=True,
        kind="ode",
    ),
    "product": Case(
        gm.Product((gm.Sphere(3), gm.SPD(2), gm.Euclidean(2))),
        isometric_transport=False,
    ),
    "product_isometric": Case(
        gm.Product({"h": gm.Hyperbolic(2), "p": gm.SPD(2)}),
        retraction_order=2,
        isometric_transport=True,
    ),
}
CASES = pytest.mark.parametrize(
    "case", list(ALL_MANIFOLDS.values()), ids=list(ALL_MANIFOLDS)
)


def _tree_close(a, b, rtol):
    jtu.tree_map(lambda x, y: assert_close(x, y, rtol=rtol), a, b)


def _scale(c, tree):
    return jtu.tree_map(lambda leaf: (c * leaf).astype(leaf.dtype), tree)


def _add(a, b):
    return jtu.tree_map(jnp.add, a, b)


def _sub(a, b):
    return jtu.tree_map(jnp.subtract, a, b)


def _vdot(a, b):
    return sum(
        jnp.vdot(x, y)
        for x, y in zip(jtu.tree_leaves(a), jtu.tree_leaves(b), strict=True)
    )


def _ambient(key, x):
    return tree_random(jr.normal, key, x)


def _small_tangent(m, key, x, size):
    v = m.random_tangent(key, x)
    return _scale(size / m.norm(x, v), v)


def _setup(case, getkey):
    m = case.manifold
    x = m.random_point(getkey())
    return m, x


@CASES
def test_point_on_manifold(case, getkey):
    m, x = _setup(case, getkey)
    for leaf in jtu.tree_leaves(x):
        assert leaf.dtype == jnp.float64
    _tree_close(m.to_manifold(x), x, tol(jnp.float64))
    y = m.exp(x, _small_tangent(m, getkey(), x, case.step))
    _tree_close(m.to_manifold(y), y, tol(jnp.float64, case.kind))
    z = m.retract(x, _small_tangent(m, getkey(), x, case.step))
    _tree_close(m.to_manifold(z), z, tol(jnp.float64))


@CASES
def test_to_tangent(case, getkey):
    m, x = _setup(case, getkey)
    rtol = tol(jnp.float64)
    v = _ambient(getkey(), x)
    p = m.to_tangent(x, v)
    _tree_close(m.to_tangent(x, p), p, rtol)
    # Orthogonal projection: the removed part is orthogonal to every tangent vector.
    u = m.random_tangent(getkey(), x)
    assert abs(float(m.inner(x, _sub(v, p), u))) < rtol * 10
    # Random tangents are tangent; the norm is the square root of the inner product.
    _tree_close(m.to_tangent(x, u), u, rtol)
    assert_close(m.norm(x, u) ** 2, m.inner(x, u, u), rtol=rtol)
    _tree_close(m.zero_tangent(x), _scale(0.0, u), rtol)


@CASES
def test_exp_log_dist(case, getkey):
    m, x = _setup(case, getkey)
    rtol = tol(jnp.float64, case.kind)
    v = _small_tangent(m, getkey(), x, case.step)
    y = m.exp(x, v)
    _tree_close(m.exp(x, m.zero_tangent(x)), x, rtol)
    if case.has_log:
        _tree_close(m.log(x, y), v, rtol)
        _tree_close(m.log(x, x), m.zero_tangent(x), rtol)
    else:
        with pytest.raises(NotImplementedError, match=type(m).__name__):
            m.log(x, y)
    if case.has_dist:
        assert_close(m.dist(x, y) ** 2, m.inner(x, v, v), rtol=rtol)
        assert_close(m.dist(y, x), m.dist(x, y), rtol=rtol)
        assert float(m.dist(x, x)) < rtol
    else:
        with pytest.raises(NotImplementedError, match=type(m).__name__):
            m.dist(x, y)


@CASES
def test_transport(case, getkey):
    m, x = _setup(case, getkey)
    rtol = tol(jnp.float64, case.kind)
    v = _small_tangent(m, getkey(), x, case.step)
    u1, u2 = m.random_tangent(getkey(), x), m.random_tangent(getkey(), x)
    y, t1 = m.retract_transport(x, v, u1)
    _tree_close(y, m.retract(x, v), rtol)
    _tree_close(t1, m.transport(x, y, u1), rtol)
    _tree_close(m.to_tangent(y, t1), t1, rtol)  # lands in T_y M
    _tree_close(m.transport(x, x, u1), u1, rtol)  # identity when y = x
    t2 = m.transport(x, y, u2)
    before, after = m.inner(x, u1, u2), m.inner(y, t1, t2)
    if case.isometric_transport:
        assert_close(after, before, rtol=rtol)
    else:
        # Projection transports are not isometries; they do not lengthen vectors.
        assert float(m.norm(y, t1)) <= float(m.norm(x, u1)) * (1 + rtol)


@CASES
def test_retraction_order(case, getkey):
    m, x = _setup(case, getkey)
    v = _small_tangent(m, getkey(), x, 1.0)

    def error(t):
        r = case.canon(m.retract(x, _scale(t, v)))
        e = case.canon(m.exp(x, _scale(t, v)))
        d = _sub(r, e)
        return float(jnp.sqrt(_vdot(d, d)))

    ts = [1e-1, 1e-2, 1e-3]
    errors = [error(t) for t in ts]
    if case.retraction_order == 0:
        assert max(errors) < tol(jnp.float64, case.kind)
        return
    # The retraction agrees with exp to order k: the error is O(t^(k+1)).
    slopes = [np.log10(errors[i] / errors[i + 1]) for i in range(2)]
    assert errors[1] > 0
    assert min(slopes) > case.retraction_order + 1 - 0.3, (errors, slopes)


@CASES
def test_egrad_to_rgrad(case, getkey):
    m, x = _setup(case, getkey)
    rtol = tol(jnp.float64)
    egrad = jax.grad(case.cost)(x)
    rgrad = m.egrad_to_rgrad(x, egrad)
    _tree_close(m.to_tangent(x, rgrad), rgrad, rtol)
    for _ in range(2):
        u = m.random_tangent(getkey(), x)
        assert_close(m.inner(x, rgrad, u), _vdot(egrad, u), rtol=rtol)


def _second_derivative(case, x, v):
    """d^2/dt^2 f(c(t)) at 0 along a curve with c'(0) = v and zero initial
    acceleration: a second-order retraction or exp. Central differences of the exact
    first derivative (a JVP), Richardson-extrapolated: O(h^4)."""
    m = case.manifold
    curve = m.exp if case.retraction_order in (0, 1) else m.retract

    def first(t):
        def along(s):
            return case.cost(curve(x, _scale(s, v)))

        return jax.jvp(along, (t,), (jnp.ones_like(t),))[1]

    def central(h):
        h = jnp.asarray(h, dtype=jnp.float64)
        return (first(h) - first(-h)) / (2 * h)

    h = 1e-3
    return (4 * central(h / 2) - central(h)) / 3


@CASES
def test_ehvp_to_rhvp(case, getkey):
    m, x = _setup(case, getkey)
    rtol = 1e-7  # finite differences of exact first derivatives
    egrad = jax.grad(case.cost)(x)
    u, v = m.random_tangent(getkey(), x), m.random_tangent(getkey(), x)
    ehvp = jax.jvp(jax.grad(case.cost), (x,), (v,))[1]
    hv = m.ehvp_to_rhvp(x, egrad, ehvp, v)
    _tree_close(m.to_tangent(x, hv), hv, tol(jnp.float64))
    # <Hess f[v], v> and, by polarization, <Hess f[v], u>.
    assert_close(m.inner(x, hv, v), _second_derivative(case, x, v), rtol=rtol)
    q_plus = _second_derivative(case, x, _add(u, v))
    q_minus = _second_derivative(case, x, _sub(u, v))
    assert_close(m.inner(x, hv, u), (q_plus - q_minus) / 4, rtol=rtol)


@pytest.mark.parametrize(
    "m", [gm.Sphere(5), gm.Stiefel(5, 2)], ids=["sphere", "stiefel"]
)
def test_weingarten_is_the_derivative_of_the_projection(m, getkey):
    # Absil, Mahony, Trumpf: W_x(v, n) = P_x((D_v P)(x)[n]) for tangent v, normal n.
    x = m.random_point(getkey(), dtype=jnp.float64)
    v = m.random_tangent(getkey(), x)
    ambient = jr.normal(getkey(), x.shape, jnp.float64)
    n = ambient - m.to_tangent(x, ambient)
    derivative = jax.jvp(lambda y: m.to_tangent(y, n), (x,), (v,))[1]
    expected = m.to_tangent(x, derivative)
    assert_close(m.weingarten(x, v, n), expected, rtol=tol(jnp.float64))
    # ... and the Hessian operator is P(h) + W(v, n) for the normal part of egrad.
    h, g = jr.normal(getkey(), x.shape, jnp.float64), jnp.asarray(ambient)
    expected = m.to_tangent(x, h) + m.weingarten(x, v, n)
    assert_close(m.ehvp_to_rhvp(x, g, h, v), expected, rtol=tol(jnp.float64))


def test_coordinate_rhvp_is_covariant_hvp(getkey):
    case = ALL_MANIFOLDS["coordinate_stretched"]
    m, x = _setup(case, getkey)
    v = m.random_tangent(getkey(), x)
    egrad = jax.grad(case.cost)(x)
    ehvp = jax.jvp(jax.grad(case.cost), (x,), (v,))[1]
    expected = m.metric.raise_index(x, gh.covariant_hvp(case.cost, m.metric, x, v))
    assert_close(m.ehvp_to_rhvp(x, egrad, ehvp, v), expected, rtol=tol(jnp.float64))


def test_sphere_rayleigh_hessian(getkey):
    n = 5
    m = gm.Sphere(n)
    A = jr.normal(getkey(), (n, n), dtype=jnp.float64)
    A = A + A.T
    x, v = m.random_point(getkey()), None
    v = m.random_tangent(getkey(), x)
    hv = m.ehvp_to_rhvp(x, 2 * A @ x, 2 * A @ v, v)
    expected = m.to_tangent(x, 2 * A @ v) - 2 * (x @ A @ x) * v
    assert_close(hv, expected, rtol=tol(jnp.float64))


@pytest.mark.parametrize("name", ["grassmann", "hyperbolic", "product"])
def test_jit_and_vmap(name, getkey):
    case = ALL_MANIFOLDS[name]
    m = case.manifold
    rtol = tol(jnp.float64)

    def everything(key):
        k1, k2 = jr.split(key)
        x = m.random_point(k1)
        v = _small_tangent(m, k2, x, 0.3)
        y = m.exp(x, v)
        return {
            "x": x,
            "retract_transport": m.retract_transport(x, v, v),
            "exp": y,
            "inner": m.inner(x, v, v),
            "log": m.log(x, y),
            "dist": m.dist(x, y),
            "rgrad": m.egrad_to_rgrad(x, jax.grad(case.cost)(x)),
            "to_tangent": m.to_tangent(x, y),
        }

    keys = jr.split(getkey(), 3)
    batched = jax.jit(jax.vmap(everything))(keys)
    _tree_close(jtu.tree_map(lambda leaf: leaf[1], batched), everything(keys[1]), rtol)
    assert_close(batched["dist"] ** 2, batched["inner"], rtol=rtol)


def test_coordinate_transport_jit(getkey):
    m = ALL_MANIFOLDS["coordinate_half_plane"].manifold
    x = m.random_point(getkey())
    v = _small_tangent(m, getkey(), x, 0.2)
    rtol = tol(jnp.float64, "ode")
    # The manifold holds an array (`origin`) and a function, so filter-jit it.
    transport = eqx.filter_jit(lambda m, x, y, v: m.transport(x, y, v))
    assert_close(transport(m, x, x + v, v), m.transport(x, x + v, v), rtol=rtol)


@pytest.mark.parametrize(
    "name", ["sphere", "grassmann", "spd", "hyperbolic", "stiefel"]
)
def test_derivatives_at_zero(name, getkey):
    # exp and log are written in |v|^2 and by eigh with a Daleckii-Krein JVP, so
    # their derivatives are finite at v = 0 (and at y = x, repeated eigenvalues).
    case = ALL_MANIFOLDS[name]
    m = case.manifold
    x = m.random_point(getkey())
    u = m.random_tangent(getkey(), x)

    @jax.jit
    def derivatives(x, u):
        zero = m.zero_tangent(x)
        d_exp = jax.jvp(lambda v: m.exp(x, v), (zero,), (u,))[1]
        d_retr = jax.jvp(lambda v: m.retract(x, v), (zero,), (u,))[1]
        g = None
        if case.has_log:
            g = jax.grad(lambda y: m.inner(x, m.log(x, y), u))(x)
        return d_exp, d_retr, g

    d_exp, d_retr, g = derivatives(x, u)
    # d/dv exp(x, v) at v = 0 applied to u is u; the same for the retraction.
    assert_close(d_exp, u, rtol=tol(jnp.float64))
    assert_close(d_retr, u, rtol=tol(jnp.float64))
    if g is not None:
        assert np.all(np.isfinite(np.asarray(g)))


def test_spd_logm_gradient_at_identity(getkey):
    n = 4
    C = jr.normal(getkey(), (n, n), dtype=jnp.float64)
    C = 0.5 * (C + C.T)

    def f(X):
        return jnp.sum(logm_sym(X) * C)

    # D log(I)[H] = H, so the gradient at the identity is C.
    g = jax.grad(f)(jnp.eye(n, dtype=jnp.float64))
    assert_close(g, C, rtol=tol(jnp.float64))
    # At a repeated eigenvalue away from 1: the Daleckii-Krein divided differences.
    lam = jnp.array([2.0, 2.0, 3.0, 5.0], dtype=jnp.float64)
    Q = jnp.linalg.qr(jr.normal(getkey(), (n, n), dtype=jnp.float64))[0]
    X = (Q * lam[None, :]) @ Q.T
    li, lj = lam[:, None], lam[None, :]
    same = li == lj
    F = jnp.where(
        same, 1 / li, (jnp.log(li) - jnp.log(lj)) / jnp.where(same, 1.0, li - lj)
    )
    expected = Q @ (F * (Q.T @ C @ Q)) @ Q.T
    assert_close(jax.grad(f)(X), expected, rtol=tol(jnp.float64))
    # expm and sqrtm at the identity: D exp(I)[H] = e H, D sqrt(I)[H] = H / 2.
    I = jnp.eye(n, dtype=jnp.float64)
    assert_close(jax.grad(lambda X: jnp.sum(expm_sym(X) * C))(I), jnp.e * C, rtol=1e-10)
    assert_close(jax.grad(lambda X: jnp.sum(sqrtm_sym(X) * C))(I), 0.5 * C, rtol=1e-10)
    # The affine-invariant distance is differentiable at distinct points near I.
    m = gm.SPD(n)
    g = jax.grad(lambda Y: m.dist(I, Y))(X)
    assert np.all(np.isfinite(np.asarray(g)))


def test_spd_geometric_mean(getkey):
    m = gm.SPD(3)
    A, B = m.random_point(getkey()), m.random_point(getkey())
    w, Q = jnp.linalg.eigh(A)
    A_half = (Q * jnp.sqrt(w)[None, :]) @ Q.T
    A_minus_half = (Q / jnp.sqrt(w)[None, :]) @ Q.T
    mean = A_half @ sqrtm_sym(A_minus_half @ B @ A_minus_half) @ A_half
    midpoint = m.exp(A, 0.5 * m.log(A, B))
    assert_close(midpoint, mean, rtol=tol(jnp.float64))
    # The mean is equidistant: d(A, M) = d(M, B) = d(A, B) / 2.
    assert_close(m.dist(A, midpoint), 0.5 * m.dist(A, B), rtol=tol(jnp.float64))
    assert_close(m.dist(midpoint, B), 0.5 * m.dist(A, B), rtol=tol(jnp.float64))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"Sphere\(3\)\.exp"):
        gm.Sphere(3).exp(jnp.ones(4), jnp.ones(4))
    with pytest.raises(ValueError, match="Stiefel"):
        gm.Stiefel(2, 3)
    with pytest.raises(NotImplementedError, match="origin"):
        gm.Coordinate(gh.metrics.Euclidean(2)).random_point(jr.key(0))


@pytest.mark.float32
@pytest.mark.parametrize("name", ["sphere", "spd"])
def test_float32(name, getkey):
    m = ALL_MANIFOLDS[name].manifold
    rtol = tol(jnp.float32)
    x = m.random_point(getkey(), dtype=jnp.float32)
    assert x.dtype == jnp.float32
    v = _small_tangent(m, getkey(), x, 0.4)
    u = m.random_tangent(getkey(), x)
    assert v.dtype == jnp.float32 and u.dtype == jnp.float32
    outputs = {
        "exp": m.exp(x, v),
        "log": m.log(x, m.exp(x, v)),
        "retract": m.retract(x, v),
        "transport": m.transport(x, m.retract(x, v), u),
        "rgrad": m.egrad_to_rgrad(x, u),
        "rhvp": m.ehvp_to_rhvp(x, u, v, v),
        "to_manifold": m.to_manifold(x),
        "inner": m.inner(x, u, v),
        "dist": m.dist(x, m.exp(x, v)),
    }
    for key, value in outputs.items():
        assert value.dtype == jnp.float32, key
    assert_close(outputs["log"], v, rtol=rtol)
    assert_close(outputs["dist"] ** 2, m.inner(x, v, v), rtol=rtol)
    g = jax.grad(lambda y: m.dist(x, y))(outputs["exp"])
    assert g.dtype == jnp.float32
