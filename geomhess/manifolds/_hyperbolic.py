"""Hyperbolic space in the Lorentz (hyperboloid) model."""

import equinox as eqx
import jax.numpy as jnp

from ._base import AbstractManifold, check_shape, normal, relative
from ._functions import cosh_sqrt, safe_sqrt, sinhc_sqrt


def minkowski(u, v):
    """The Minkowski product $\\langle u, v\\rangle_L = -u_0 v_0 + \\sum_{i \\ge 1} u_i
    v_i$."""
    return -u[0] * v[0] + jnp.dot(u[1:], v[1:])


def _flip_time(g):
    """$J g$ with $J = \\mathrm{diag}(-1, 1, \\dots, 1)$: raises a Minkowski index."""
    return g.at[0].multiply(-1)


class Hyperbolic(AbstractManifold):
    """Hyperbolic space $\\mathbb{H}^n$ (curvature $-1$) in the Lorentz model.

    Points are the upper sheet of the hyperboloid,
    $\\{x \\in \\mathbb{R}^{n+1} : \\langle x, x\\rangle_L = -1, x_0 > 0\\}$, of shape
    `(n + 1,)`; $T_x = \\{v : \\langle x, v\\rangle_L = 0\\}$, and the metric is the
    Minkowski product $\\langle u, v\\rangle_L = -u_0 v_0 + \\sum_i u_i v_i$, positive
    definite on each tangent space. The Lorentz model is chosen for numerics: every
    map is closed form without the boundary blow-up of the Poincare ball. Cost
    $O(n)$ everywhere.

    - `to_tangent(x, v)` $= v + \\langle x, v\\rangle_L x$ (Minkowski-orthogonal
      projection); `to_manifold(x)` keeps the space part and recomputes
      $x_0 = \\sqrt{1 + \\lVert x_{1:}\\rVert^2}$;
    - `egrad_to_rgrad(x, g)` $= P_x(Jg)$, $J = \\mathrm{diag}(-1, 1, \\dots, 1)$;
      `ehvp_to_rhvp(x, g, h, v)` $= P_x(Jh) + (x^\\top g) v$ [^boumal];
    - `exp(x, v)` $= \\cosh(\\lVert v\\rVert_L) x + \\sinh(\\lVert v\\rVert_L) v /
      \\lVert v\\rVert_L$; `retract` is `exp` (exact, so of every order);
    - `log(x, y)` $= d\\, u / \\lVert u\\rVert_L$ with $u = y + \\langle x, y\\rangle_L
      x$, $d$ the distance;
    - `dist(x, y)` $= 2 \\operatorname{arsinh}(\\lVert y - x\\rVert_L / 2)$, accurate
      for near points (equal to $\\operatorname{arcosh}(-\\langle x, y\\rangle_L)$);
    - `transport(x, y, v)` $= v + \\frac{\\langle y, v\\rangle_L}{1 - \\langle x,
      y\\rangle_L}(x + y)$: parallel transport along the geodesic, an **isometry**.

    Accuracy degrades like $x_0^2$ far from the origin (the Minkowski products
    cancel), as in every hyperboloid implementation.

    [^boumal]: Boumal, *An introduction to optimization on smooth manifolds*, CUP
        2023, section 7.6.

    Attributes:
        n: the dimension of hyperbolic space (points have `n + 1` coordinates).
    """

    n: int = eqx.field(static=True)

    _what = "the hyperboloid's upper sheet"
    _point_hint = "|<x, x>_L + 1| / x_0^2 above the tolerance, or x_0 <= 0"

    def _check(self, caller, x):
        check_shape(f"Hyperbolic({self.n}).{caller}", "x", x, (self.n + 1,))

    def _point_defect(self, x):
        # Relative to x_0^2: the Minkowski product cancels to that accuracy.
        defect = jnp.abs(minkowski(x, x) + 1) / jnp.maximum(x[0] ** 2, 1)
        return jnp.where(x[0] > 0, defect, jnp.inf)

    def _tangent_defect(self, x, v):
        size = jnp.linalg.norm(x)
        return relative(jnp.abs(minkowski(x, v)) / size, jnp.linalg.norm(v), size)

    def inner(self, x, u, v):
        self._check("inner", x)
        return minkowski(u, v)

    def to_tangent(self, x, v):
        self._check("to_tangent", x)
        return v + minkowski(x, v) * x

    def to_manifold(self, x):
        self._check("to_manifold", x)
        space = x[1:]
        time = jnp.sqrt(1 + jnp.dot(space, space))
        return jnp.concatenate([time[None], space])

    def egrad_to_rgrad(self, x, egrad):
        return self.to_tangent(x, _flip_time(egrad))

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        return self.to_tangent(x, _flip_time(ehvp)) + jnp.dot(x, egrad) * v

    def retract(self, x, v):
        """The exponential map itself (exact)."""
        return self.exp(x, v)

    def exp(self, x, v):
        self._check("exp", x)
        x = self._checked_point("exp", x)
        v = self._checked_tangent("exp", x, v)
        l = jnp.maximum(minkowski(v, v), 0.0)
        return cosh_sqrt(l) * x + sinhc_sqrt(l) * v

    def log(self, x, y):
        self._check("log", x)
        x = self._checked_point("log", x)
        y = self._checked_point("log", y, "y")
        u = y + minkowski(x, y) * x
        s = safe_sqrt(minkowski(u, u))
        d = self.dist(x, y)
        positive = s > 0
        factor = jnp.where(positive, d / jnp.where(positive, s, 1.0), 1.0)
        return factor * u

    def transport(self, x, y, v):
        """Parallel transport along the geodesic from `x` to `y` (an isometry)."""
        self._check("transport", x)
        x = self._checked_point("transport", x)
        y = self._checked_point("transport", y, "y")
        v = self._checked_tangent("transport", x, v)
        return v + minkowski(y, v) / (1 - minkowski(x, y)) * (x + y)

    def dist(self, x, y):
        self._check("dist", x)
        x = self._checked_point("dist", x)
        y = self._checked_point("dist", y, "y")
        d = y - x
        return 2 * jnp.arcsinh(0.5 * safe_sqrt(minkowski(d, d)))

    def random_point(self, key, *, dtype=None):
        """$x_{1:}$ standard normal, $x_0 = \\sqrt{1 + \\lVert x_{1:}\\rVert^2}$."""
        space = normal(key, (self.n,), dtype)
        return self.to_manifold(jnp.concatenate([jnp.zeros_like(space[:1]), space]))

    def random_tangent(self, key, x):
        self._check("random_tangent", x)
        return self.to_tangent(x, normal(key, (self.n + 1,), x.dtype))
