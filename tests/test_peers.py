"""The built-in manifolds against the peers' numbers: pymanopt (numpy) and geoopt (torch).

Each comparison feeds geomhess and the peer **the same inputs**: points, tangent
vectors, an ambient vector and the Euclidean gradient and Hessian-vector product of
one cost, drawn with numpy seeds (float64). Agreement is to `tol(float64)` = 1e-10
relative (`helpers.assert_close`), except `Coordinate.exp`, which integrates the
geodesic ODE (`tol(float64, "ode")` = 1e-7).

What is compared with what (P: `pymanopt.manifolds`, numpy backend; G: `geoopt`):

| geomhess | peer | operations |
| --- | --- | --- |
| `Euclidean((2, 3))` | P `Euclidean(2, 3)`; G `Euclidean(ndim=2)` | all ten |
| `Sphere(5)` | P `Sphere(5)`; G `Sphere()` | all ten |
| `Stiefel(6, 3)` | P `Stiefel(6, 3, retraction="polar")`; G `EuclideanStiefel()` | all but log, dist |
| `Grassmann(6, 2)` | P `Grassmann(6, 2)` (G has none) | all ten |
| `SPD(3)` | P `SymmetricPositiveDefinite(3)`; G `SymmetricPositiveDefinite()` (AIM) | all ten |
| `Hyperbolic(3)` | G `Lorentz(k=1)`; P `PoincareBall(3)` through the isometry | all ten |
| `Coordinate` (Poincare metric) | P `PoincareBall(3)`; G `PoincareBall(c=1)` | all but log, dist |
| `Product` | P `Product([Sphere, SPD, Euclidean])`; G `ProductManifold` (+ `Lorentz`) | all ten |

The ten operations: inner product, norm, projection onto the tangent space,
Riemannian gradient and Riemannian Hessian from Euclidean derivatives (G has no
Hessian conversion, so the Hessian is compared with P only), exp, log, dist,
retraction and transport.

Where the conventions differ, the matching definition is compared instead:

- **Stiefel retraction.** P's default and G's retraction are QR-based, geomhess's is
  the polar factor: compared with P's `retraction="polar"` entry for entry, and with
  the QR retractions through the spanned subspace (the QR and polar factors of
  $X + V$ have the same column space), as projectors $YY^\\top$.
- **Grassmann exp.** P re-orthonormalizes its result by QR, so the representatives
  differ by a factor in $O(p)$: compared as subspaces (projectors).
- **SPD transport.** P's is the identity (a vector transport, not parallel transport);
  geomhess's is parallel transport along the geodesic: compared with G's (parallel)
  `transp`, and with P in the `Product` only through the factors where they coincide.
- **Hyperbolic.** P has only the Poincare ball. geomhess's hyperboloid is compared
  with G's `Lorentz` directly, and with P's `PoincareBall` through the isometry
  $\\pi(x) = x_{1:}/(1 + x_0)$: points are mapped by $\\pi$, tangent vectors by its
  differential, and the ball's Euclidean derivatives are those of $f \\circ \\pi^{-1}$
  (by autodiff), so the Riemannian gradients and Hessians must correspond under
  $d\\pi$. (The projection is specific to the hyperboloid embedding and is compared
  with G only.)
- **Coordinate.** The Poincare-ball metric $(2/(1-\\lVert x\\rVert^2))^2 I$ as a
  `Coordinate` manifold is P's `PoincareBall`: inner product, norm, projection (the
  identity), gradient, Hessian (P's Koszul formula against geomhess's matrix-free
  Levi-Civita term) and exp (P's closed form against geomhess's ODE). geomhess's
  retraction is the second-order $x + v - \\frac12\\Gamma(v, v)$ where P's is exp, so
  their gap must shrink like $t^3$. geomhess transports along the coordinate segment
  and G along the geodesic; on a diameter of the ball the two curves coincide, so the
  transports are compared there. geomhess has no `Coordinate.log` or `dist`.
- **Not compared** (undefined on both sides): Stiefel `log`/`dist` (no closed form in
  geomhess, P or G).

Then the properties the peers' own test suites check, on the same inputs:
`exp(x, log(x, y)) = y`, `log(x, exp(x, v)) = v`, `dist(x, exp(x, v)) = |v|`, the
projection is idempotent and lands in the tangent space, and the transport lands in
the tangent space at `y` and is an isometry where it is parallel transport.

The peers are optional (`pip install -e '.[peers]'`): without them the module is
skipped, unless `GEOMHESS_REQUIRE_PEERS=1` (set by `scripts/test.sh`, hence in CI),
where a missing peer is a failure.
"""

import dataclasses
import importlib
import os
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_close, tol

import geomhess as gh
import geomhess.manifolds as gm


# The comparisons are float64 ones: in the float32 run (`GEOMHESS_TEST_X64=0`, which
# selects `-m float32` anyway) there is nothing to compare at 1e-10.
pytestmark = pytest.mark.skipif(
    not jax.config.jax_enable_x64, reason="float64 comparisons (the x64 run)"
)
RTOL = tol(jnp.float64)
SEEDS = (0, 1, 2)
OPS = (
    "inner",
    "norm",
    "projection",
    "rgrad",
    "rhess",
    "exp",
    "log",
    "dist",
    "retraction",
    "transport",
)
# geoopt decorates its functions with `torch.jit.script`, which torch 2.1x deprecates
# (also at call time, for the SPD matrix functions).
TORCH_JIT = pytest.mark.filterwarnings(
    "ignore:.*torch.jit.script.* is deprecated:DeprecationWarning"
)


def _import_peer(name: str):
    # Importing pymanopt imports its JAX backend, which turns on `jax_enable_x64` for
    # the whole process: restore the suite's setting, so that no other test module
    # run in the same process (the float32 run, for one) sees a changed JAX.
    x64 = jax.config.jax_enable_x64
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    except ImportError as error:
        message = (
            f"the peer `{name}` is not installed ({error}); install the extra with "
            "`pip install -e '.[peers]'`"
        )
        if os.environ.get("GEOMHESS_REQUIRE_PEERS", "0") not in ("", "0"):
            pytest.fail(f"GEOMHESS_REQUIRE_PEERS is set, but {message}")
        pytest.skip(message)
    finally:
        jax.config.update("jax_enable_x64", x64)


@pytest.fixture(scope="module")
def pm():
    """`pymanopt.manifolds` (numpy backend: only numpy arrays are passed)."""
    return _import_peer("pymanopt.manifolds")


@pytest.fixture(scope="module")
def geo():
    """`(geoopt, torch)`."""
    return _import_peer("geoopt"), _import_peer("torch")


# ---------------------------------------------------------------------------------
# Inputs, drawn with numpy seeds.
# ---------------------------------------------------------------------------------


def _unit(z):
    return z / np.linalg.norm(z)


def _sym(A):
    return 0.5 * (A + A.T)


def _qr(A):
    return np.linalg.qr(A)[0]


def _minkowski(u, v):
    return -u[0] * v[0] + u[1:] @ v[1:]


def _hyperboloid(space):
    return np.concatenate([[np.sqrt(1 + space @ space)], space])


def _poincare_metric(q):
    return (2 / (1 - q @ q)) ** 2 * jnp.eye(q.shape[0], dtype=q.dtype)


POINCARE = gm.Coordinate(gh.metrics.FromFunction(_poincare_metric))


@dataclasses.dataclass(frozen=True)
class Draw:
    """How to draw inputs for one manifold: `point(rng)`, `near(rng, x)` (a second
    point, close enough for `log` to be defined), `tangent(rng, x)` and the ambient
    shape (a tuple of shapes for a product)."""

    point: Callable
    near: Callable
    tangent: Callable
    shape: object


DRAWS = {
    "euclidean": Draw(
        lambda r: r.normal(size=(2, 3)),
        lambda r, x: r.normal(size=(2, 3)),
        lambda r, x: r.normal(size=(2, 3)),
        (2, 3),
    ),
    "sphere": Draw(
        lambda r: _unit(r.normal(size=5)),
        lambda r, x: _unit(x + 0.6 * r.normal(size=5)),
        lambda r, x: (z := 0.6 * r.normal(size=5)) - (x @ z) * x,
        (5,),
    ),
    "stiefel": Draw(
        lambda r: _qr(r.normal(size=(6, 3))),
        lambda r, x: _qr(x + 0.4 * r.normal(size=(6, 3))),
        lambda r, x: (z := 0.5 * r.normal(size=(6, 3))) - x @ _sym(x.T @ z),
        (6, 3),
    ),
    "grassmann": Draw(
        lambda r: _qr(r.normal(size=(6, 2))),
        lambda r, x: _qr(x + 0.4 * r.normal(size=(6, 2))),
        lambda r, x: (z := 0.3 * r.normal(size=(6, 2))) - x @ (x.T @ z),
        (6, 2),
    ),
    "spd": Draw(
        lambda r: (
            (Q := _qr(r.normal(size=(3, 3)))) @ np.diag(np.exp(r.normal(size=3))) @ Q.T
        ),
        lambda r, x: (
            (Q := _qr(r.normal(size=(3, 3)))) @ np.diag(np.exp(r.normal(size=3))) @ Q.T
        ),
        lambda r, x: _sym(r.normal(size=(3, 3))),
        (3, 3),
    ),
    "hyperbolic": Draw(
        lambda r: _hyperboloid(0.8 * r.normal(size=3)),
        lambda r, x: _hyperboloid(0.8 * r.normal(size=3)),
        lambda r, x: (z := 0.6 * r.normal(size=4)) + _minkowski(x, z) * x,
        (4,),
    ),
    "coordinate": Draw(
        lambda r: 0.6 * r.uniform() * _unit(r.normal(size=3)),
        lambda r, x: 0.6 * r.uniform() * _unit(r.normal(size=3)),
        lambda r, x: 0.3 * (1 - x @ x) * r.normal(size=3),
        (3,),
    ),
}


def _product_draw(names):
    draws = [DRAWS[n] for n in names]
    return Draw(
        lambda r: tuple(d.point(r) for d in draws),
        lambda r, x: tuple(d.near(r, a) for d, a in zip(draws, x, strict=True)),
        lambda r, x: tuple(d.tangent(r, a) for d, a in zip(draws, x, strict=True)),
        tuple(d.shape for d in draws),
    )


DRAWS["product"] = _product_draw(("sphere", "spd", "euclidean"))
DRAWS["product_lorentz"] = _product_draw(("sphere", "spd", "euclidean", "hyperbolic"))


class Cost:
    """`f(x) = <c, x> + x^T B x / 2 + sum(sin x)` on the ambient space (summed over
    the factors of a product): a cost with a non-trivial normal gradient and a
    Hessian that is not a multiple of the identity."""

    def __init__(self, rng, shape):
        if isinstance(shape[0], tuple):
            self.parts = [Cost(rng, s) for s in shape]
            return
        self.parts = None
        d = int(np.prod(shape))
        self.c = rng.normal(size=shape)
        self.B = _sym(rng.normal(size=(d, d)))

    def __call__(self, x):
        if self.parts is not None:
            return sum(p(a) for p, a in zip(self.parts, x, strict=True))
        flat = x.ravel()
        return jnp.vdot(self.c, x) + 0.5 * flat @ (self.B @ flat) + jnp.sum(jnp.sin(x))


def _np(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def _jnp(tree):
    return jax.tree_util.tree_map(jnp.asarray, tree)


@dataclasses.dataclass
class Inputs:
    x: object  # a point
    y: object  # a second point, near enough for `log`
    u: object  # tangent at x
    v: object  # tangent at x
    a: object  # an ambient vector
    g: object  # the Euclidean gradient of the cost at x
    h: object  # the Euclidean Hessian of the cost at x applied to u
    cost: Cost


def draw(name: str, seed: int) -> Inputs:
    d = DRAWS[name]
    rng = np.random.default_rng(seed)
    x = d.point(rng)
    y = d.near(rng, x)
    u, v = d.tangent(rng, x), d.tangent(rng, x)
    shapes = d.shape if isinstance(d.shape[0], tuple) else (d.shape,)
    a = tuple(rng.normal(size=s) for s in shapes)
    a = a if isinstance(d.shape[0], tuple) else a[0]
    cost = Cost(rng, d.shape)
    g, h = jax.jvp(jax.grad(cost), (_jnp(x),), (_jnp(u),))
    return Inputs(x, y, u, v, a, _np(g), _np(h), cost)


# ---------------------------------------------------------------------------------
# The operations, in geomhess's and the peers' names.
# ---------------------------------------------------------------------------------


def geomhess_op(M, op, i: Inputs):
    x, y, u, v, a, g, h = (_jnp(t) for t in (i.x, i.y, i.u, i.v, i.a, i.g, i.h))
    return _np(
        {
            "inner": lambda: M.inner(x, u, v),
            "norm": lambda: M.norm(x, u),
            "projection": lambda: M.to_tangent(x, a),
            "rgrad": lambda: M.egrad_to_rgrad(x, g),
            "rhess": lambda: M.ehvp_to_rhvp(x, g, h, u),
            "exp": lambda: M.exp(x, u),
            "log": lambda: M.log(x, y),
            "dist": lambda: M.dist(x, y),
            "retraction": lambda: M.retract(x, u),
            "transport": lambda: M.transport(x, y, u),
        }[op]()
    )


def _listify(tree):
    return list(tree) if isinstance(tree, tuple) else tree


def pymanopt_op(P, op, i: Inputs):
    x, y, u, v, a, g, h = (_listify(t) for t in (i.x, i.y, i.u, i.v, i.a, i.g, i.h))
    out = {
        "inner": lambda: P.inner_product(x, u, v),
        "norm": lambda: P.norm(x, u),
        "projection": lambda: P.projection(x, a),
        "rgrad": lambda: P.euclidean_to_riemannian_gradient(x, g),
        "rhess": lambda: P.euclidean_to_riemannian_hessian(x, g, h, u),
        "exp": lambda: P.exp(x, u),
        "log": lambda: P.log(x, y),
        "dist": lambda: P.dist(x, y),
        "retraction": lambda: P.retraction(x, u),
        "transport": lambda: P.transport(x, y, u),
    }[op]()
    return tuple(np.asarray(o) for o in out) if isinstance(out, list) else out


def _projector(X):
    return X @ X.T


def assert_tree_close(actual, desired, rtol=RTOL):
    if isinstance(desired, tuple | list):
        assert len(actual) == len(desired)
        for p, q in zip(actual, desired, strict=True):
            assert_close(p, q, rtol=rtol)
    else:
        assert_close(actual, desired, rtol=rtol)


# ---------------------------------------------------------------------------------
# pymanopt.
# ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PymanoptCase:
    manifold: gm.AbstractManifold
    peer: Callable  # pymanopt.manifolds -> the peer manifold
    skip: dict = dataclasses.field(default_factory=dict)  # op -> why not compared here
    canon: dict = dataclasses.field(default_factory=dict)  # op -> compare f(outputs)
    rtol: dict = dataclasses.field(default_factory=dict)


_SPD_TRANSPORT = (
    "pymanopt's SPD transport is the identity, geomhess's is parallel transport: "
    "compared with geoopt's parallel transport in test_geoopt"
)
PYMANOPT = {
    "euclidean": PymanoptCase(gm.Euclidean((2, 3)), lambda pm: pm.Euclidean(2, 3)),
    "sphere": PymanoptCase(gm.Sphere(5), lambda pm: pm.Sphere(5)),
    "stiefel": PymanoptCase(
        gm.Stiefel(6, 3),
        lambda pm: pm.Stiefel(6, 3, retraction="polar"),
        skip={
            "log": "no closed form (geomhess and pymanopt both raise)",
            "dist": "no closed form (geomhess and pymanopt both raise)",
        },
    ),
    "grassmann": PymanoptCase(
        gm.Grassmann(6, 2),
        lambda pm: pm.Grassmann(6, 2),
        canon={"exp": _projector},
    ),
    "spd": PymanoptCase(
        gm.SPD(3),
        lambda pm: pm.SymmetricPositiveDefinite(3),
        skip={"transport": _SPD_TRANSPORT},
    ),
    "product": PymanoptCase(
        gm.Product((gm.Sphere(5), gm.SPD(3), gm.Euclidean((2, 3)))),
        lambda pm: pm.Product(
            [pm.Sphere(5), pm.SymmetricPositiveDefinite(3), pm.Euclidean(2, 3)]
        ),
        skip={"transport": _SPD_TRANSPORT + " (ProductManifold)"},
    ),
}


def _pairs(cases, ops):
    """`(name, op)` for every operation a case compares (`skip` says why the others
    are not compared there: nothing is skipped at run time)."""
    return [(n, op) for n, c in cases.items() for op in ops if op not in c.skip]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "op"), _pairs(PYMANOPT, OPS))
def test_pymanopt(pm, name, op, seed):
    case = PYMANOPT[name]
    i = draw(name, seed)
    ours = geomhess_op(case.manifold, op, i)
    theirs = pymanopt_op(case.peer(pm), op, i)
    if op in case.canon:
        ours, theirs = case.canon[op](ours), case.canon[op](theirs)
    assert_tree_close(ours, theirs, rtol=case.rtol.get(op, RTOL))


def test_pymanopt_product_transport_where_it_coincides(pm):
    # The sphere and Euclidean factors' transports are the same definition (the
    # projection, the identity); the SPD factor's is not (see the module docstring).
    M = PYMANOPT["product"].manifold
    P = PYMANOPT["product"].peer(pm)
    i = draw("product", 3)
    ours = geomhess_op(M, "transport", i)
    theirs = pymanopt_op(P, "transport", i)
    assert_tree_close((ours[0], ours[2]), (theirs[0], theirs[2]))
    assert_close(theirs[1], i.u[1], rtol=0)  # pymanopt's SPD transport: identity


@pytest.mark.parametrize("seed", SEEDS)
def test_stiefel_qr_retraction_spans_the_polar_one(pm, seed):
    i = draw("stiefel", seed)
    ours = geomhess_op(gm.Stiefel(6, 3), "retraction", i)
    theirs = pymanopt_op(pm.Stiefel(6, 3), "retraction", i)  # QR, the default
    assert_close(_projector(ours), _projector(theirs), rtol=RTOL)
    # The representatives do differ: the comparison above is not vacuous.
    assert np.max(np.abs(ours - theirs)) > 1e-3


# The hyperboloid and the Poincare ball: pi(x) = x[1:] / (1 + x[0]) is an isometry.


def _to_ball(x):
    return x[1:] / (1 + x[0])


def _from_ball(p):
    s = p @ p
    return jnp.concatenate([((1 + s) / (1 - s))[None], 2 * p / (1 - s)])


def _ball_vector(x, v):
    """The differential of `_to_ball` at `x` applied to `v`."""
    return jax.jvp(_to_ball, (jnp.asarray(x),), (jnp.asarray(v),))[1]


HYPERBOLIC_OPS = ("inner", "norm", "rgrad", "rhess", "exp", "log", "dist", "retraction")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", HYPERBOLIC_OPS)
def test_hyperbolic_against_the_poincare_ball(pm, op, seed):
    H, B = gm.Hyperbolic(3), pm.PoincareBall(3)
    i = draw("hyperbolic", seed)
    x, y, u, v = (jnp.asarray(t) for t in (i.x, i.y, i.u, i.v))
    p, q = _np(_to_ball(x)), _np(_to_ball(y))
    pu, pv = _np(_ball_vector(x, u)), _np(_ball_vector(x, v))
    # The ball's Euclidean derivatives are those of the same function, f o pi^{-1}.
    ball_cost = lambda b: i.cost(_from_ball(b))
    bg, bh = _np(jax.jvp(jax.grad(ball_cost), (jnp.asarray(p),), (jnp.asarray(pu),)))
    g, h = jnp.asarray(i.g), jnp.asarray(i.h)
    if op == "inner":
        ours, theirs = H.inner(x, u, v), B.inner_product(p, pu, pv)
    elif op == "norm":
        ours, theirs = H.norm(x, u), B.norm(p, pu)
    elif op == "rgrad":
        ours = _ball_vector(x, H.egrad_to_rgrad(x, g))
        theirs = B.euclidean_to_riemannian_gradient(p, bg)
    elif op == "rhess":
        ours = _ball_vector(x, H.ehvp_to_rhvp(x, g, h, u))
        theirs = B.euclidean_to_riemannian_hessian(p, bg, bh, pu)
    elif op in ("exp", "retraction"):
        move = H.exp if op == "exp" else H.retract
        ours = _to_ball(move(x, u))
        theirs = (B.exp if op == "exp" else B.retraction)(p, pu)
    elif op == "log":
        ours, theirs = _ball_vector(x, H.log(x, y)), B.log(p, q)
    else:
        ours, theirs = H.dist(x, y), B.dist(p, q)
    assert_close(_np(ours), theirs, rtol=RTOL)


COORDINATE_OPS = ("inner", "norm", "projection", "rgrad", "rhess", "exp")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", COORDINATE_OPS)
def test_coordinate_poincare_metric_against_pymanopt(pm, op, seed):
    i = draw("coordinate", seed)
    ours = geomhess_op(POINCARE, op, i)
    theirs = pymanopt_op(pm.PoincareBall(3), op, i)
    kind = "ode" if op == "exp" else "algebraic"
    assert_close(ours, theirs, rtol=tol(jnp.float64, kind))


def test_coordinate_second_order_retraction_against_pymanopt_exp(pm):
    # geomhess's retraction is x + v - Gamma(v, v)/2, pymanopt's is its exp: the
    # gap is O(t^3), so halving t divides it by about 8.
    i = draw("coordinate", 0)
    B = pm.PoincareBall(3)
    x, u = jnp.asarray(i.x), jnp.asarray(i.u)
    gaps = [
        np.linalg.norm(np.asarray(POINCARE.retract(x, t * u)) - B.exp(i.x, t * i.u))
        for t in (0.2, 0.1, 0.05)
    ]
    ratios = [a / b for a, b in zip(gaps, gaps[1:], strict=False)]
    assert all(7 < r < 9 for r in ratios), (gaps, ratios)


# ---------------------------------------------------------------------------------
# geoopt.
# ---------------------------------------------------------------------------------


def _torch(torch, tree):
    if isinstance(tree, tuple):
        return torch.cat([torch.from_numpy(np.asarray(t).ravel().copy()) for t in tree])
    return torch.from_numpy(np.array(tree, np.float64))


def _unpack(tree, flat):
    """geoopt's product packs the factors into one flat vector: unpack like `tree`."""
    if not isinstance(tree, tuple):
        return flat
    out, start = [], 0
    for t in tree:
        size = np.asarray(t).size
        out.append(flat[start : start + size].reshape(np.shape(t)))
        start += size
    return tuple(out)


def geoopt_op(G, op, i: Inputs, torch):
    x, y, u, v, a, g = (_torch(torch, t) for t in (i.x, i.y, i.u, i.v, i.a, i.g))
    norm = (
        (lambda: G.norm(u)) if type(G).__name__ == "Lorentz" else lambda: G.norm(x, u)
    )
    out = {
        "inner": lambda: G.inner(x, u, v),
        "norm": norm,
        "projection": lambda: G.proju(x, a),
        # `egrad2rgrad` of Lorentz flips the sign of g's time part in place.
        "rgrad": lambda: G.egrad2rgrad(x, g.clone()),
        "exp": lambda: G.expmap(x, u),
        "log": lambda: G.logmap(x, y),
        "dist": lambda: G.dist(x, y),
        "retraction": lambda: G.retr(x, u),
        "transport": lambda: G.transp(x, y, u),
    }[op]()
    out = out.detach().numpy()
    return _unpack(i.x, out) if out.ndim == 1 else out


def _lorentz(geoopt, torch):
    return geoopt.Lorentz(k=torch.tensor(1.0, dtype=torch.float64))


@dataclasses.dataclass(frozen=True)
class GeooptCase:
    manifold: gm.AbstractManifold
    peer: Callable  # (geoopt, torch) -> the peer manifold
    draw: str
    skip: dict = dataclasses.field(default_factory=dict)
    canon: dict = dataclasses.field(default_factory=dict)


GEOOPT = {
    "euclidean": GeooptCase(
        gm.Euclidean((2, 3)), lambda g, t: g.Euclidean(ndim=2), "euclidean"
    ),
    "sphere": GeooptCase(gm.Sphere(5), lambda g, t: g.Sphere(), "sphere"),
    "stiefel": GeooptCase(
        gm.Stiefel(6, 3),
        lambda g, t: g.EuclideanStiefel(),
        "stiefel",
        skip={"log": "no closed form", "dist": "no closed form"},
        # geoopt's retraction is QR-based, geomhess's polar: the same subspace.
        canon={"retraction": _projector},
    ),
    "spd": GeooptCase(gm.SPD(3), lambda g, t: g.SymmetricPositiveDefinite(), "spd"),
    "hyperbolic": GeooptCase(gm.Hyperbolic(3), _lorentz, "hyperbolic"),
    "product": GeooptCase(
        gm.Product((gm.Sphere(5), gm.SPD(3), gm.Euclidean((2, 3)), gm.Hyperbolic(3))),
        lambda g, t: g.ProductManifold(
            (g.Sphere(), 5),
            (g.SymmetricPositiveDefinite(), (3, 3)),
            (g.Euclidean(ndim=2), (2, 3)),
            (_lorentz(g, t), 4),
        ),
        "product_lorentz",
    ),
}
GEOOPT_OPS = tuple(op for op in OPS if op != "rhess")


@TORCH_JIT
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "op"), _pairs(GEOOPT, GEOOPT_OPS))
def test_geoopt(geo, name, op, seed):
    geoopt, torch = geo
    case = GEOOPT[name]
    i = draw(case.draw, seed)
    ours = geomhess_op(case.manifold, op, i)
    theirs = geoopt_op(case.peer(geoopt, torch), op, i, torch)
    if op in case.canon:
        ours, theirs = case.canon[op](ours), case.canon[op](theirs)
    assert_tree_close(ours, theirs)


@TORCH_JIT
@pytest.mark.parametrize("seed", SEEDS)
def test_coordinate_transport_against_geoopt_on_a_diameter(geo, seed):
    # On a diameter of the ball the coordinate segment is a geodesic, so geomhess's
    # segment transport and geoopt's geodesic parallel transport are the same map.
    geoopt, torch = geo
    ball = geoopt.PoincareBall(c=torch.tensor(1.0, dtype=torch.float64))
    i = draw("coordinate", seed)
    y = -0.7 * i.x / np.linalg.norm(i.x)  # through the origin, on the other side
    ours = POINCARE.transport(jnp.asarray(i.x), jnp.asarray(y), jnp.asarray(i.u))
    theirs = ball.transp(_torch(torch, i.x), _torch(torch, y), _torch(torch, i.u))
    assert_close(np.asarray(ours), theirs.numpy(), rtol=tol(jnp.float64, "ode"))
    # Not vacuous: the transported vector is not the coordinate identity.
    assert np.max(np.abs(theirs.numpy() - i.u)) > 1e-2


# ---------------------------------------------------------------------------------
# The properties the peers' test suites check, on the same inputs.
# ---------------------------------------------------------------------------------

PROPERTY_CASES = {
    "euclidean": (gm.Euclidean((2, 3)), True),
    "sphere": (gm.Sphere(5), False),
    "stiefel": (gm.Stiefel(6, 3), False),
    "grassmann": (gm.Grassmann(6, 2), False),
    "spd": (gm.SPD(3), True),
    "hyperbolic": (gm.Hyperbolic(3), True),
    "coordinate": (POINCARE, True),
    "product": (PYMANOPT["product"].manifold, False),
    "product_lorentz": (GEOOPT["product"].manifold, False),
}


def _tree_sub(a, b):
    return jax.tree_util.tree_map(lambda p, q: np.asarray(p) - np.asarray(q), a, b)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(PROPERTY_CASES))
def test_peer_suite_properties(name, seed):
    M, isometric = PROPERTY_CASES[name]
    i = draw(name, seed)
    x, y, u, a = (_jnp(t) for t in (i.x, i.y, i.u, i.a))
    ode = name == "coordinate"
    rtol = tol(jnp.float64, "ode" if ode else "algebraic")

    # Projection: idempotent, and tangent (projecting a tangent vector changes nothing).
    p = M.to_tangent(x, a)
    assert_tree_close(_np(M.to_tangent(x, p)), _np(p))
    assert_tree_close(_np(M.to_tangent(x, u)), _np(i.u))

    # dist(x, exp(x, u)) = |u| (u is short enough to stay below the cut locus).
    if not ode and name != "stiefel":
        assert_close(M.dist(x, M.exp(x, u)), M.norm(x, u), rtol=rtol)
        # exp(x, log(x, y)) = y and log(x, exp(x, u)) = u.
        back = M.exp(x, M.log(x, y))
        if name == "grassmann":
            assert_close(_projector(np.asarray(back)), _projector(i.y), rtol=rtol)
        else:
            assert_tree_close(_np(back), i.y, rtol=rtol)
        assert_tree_close(_np(M.log(x, M.exp(x, u))), i.u, rtol=rtol)

    # Transport: tangent at y; an isometry where it is parallel transport, norm
    # non-increasing where it is a projection.
    w = M.transport(x, y, u)
    assert_tree_close(_np(M.to_tangent(y, w)), _np(w), rtol=rtol)
    before, after = float(M.norm(x, u)), float(M.norm(y, w))
    if isometric:
        assert_close(after, before, rtol=rtol)
    else:
        assert after <= before * (1 + RTOL)
