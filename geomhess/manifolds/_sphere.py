"""The unit sphere in $\\mathbb{R}^n$."""

import equinox as eqx
import jax.numpy as jnp

from ._base import AbstractEmbeddedManifold, check_shape, normal, relative
from ._functions import cos_sqrt, safe_sqrt, sinc_sqrt


class Sphere(AbstractEmbeddedManifold):
    """The unit sphere $S^{n-1} = \\{x \\in \\mathbb{R}^n : \\lVert x\\rVert = 1\\}$,
    with the metric induced by $\\mathbb{R}^n$.

    Points and tangent vectors have shape `(n,)` (so `Sphere(3)` is the 2-sphere in
    $\\mathbb{R}^3$); $T_x S = \\{v : x^\\top v = 0\\}$. All maps are closed form and
    cost $O(n)$:

    - `to_tangent(x, v)` $= v - (x^\\top v) x$;
      `to_manifold(x)` $= x / \\lVert x\\rVert$;
    - `exp(x, v)` $= \\cos(\\lVert v\\rVert) x
      + \\sin(\\lVert v\\rVert) v / \\lVert v\\rVert$;
    - `log(x, y)` $= \\theta\\, u / \\lVert u\\rVert$ with $u = y - (x^\\top y) x$ and
      $\\theta = \\operatorname{atan2}(\\lVert u\\rVert, x^\\top y)$ (undefined at the
      antipode $y = -x$);
    - `dist(x, y)` $= 2 \\arcsin(\\lVert x - y\\rVert / 2)$ (accurate for near points);
    - `retract(x, v)` $= (x + v) / \\lVert x + v\\rVert$, the metric projection, a
      **second-order** retraction;
    - `transport(x, y, v)` $= P_y v$, the projection onto $T_y S$: a vector
      transport, **not** an isometry (it shortens vectors unless $x = y$);
    - Weingarten map $W_x(v, n) = -(x^\\top n) v$, so
      $\\operatorname{Hess} f(x)[v]
      = P_x(\\nabla^2 \\bar f v) - (x^\\top \\nabla \\bar f) v$.

    The maps `exp` and `log` are written in $\\lVert v\\rVert^2$, so their derivatives
    are finite at $v = 0$ and $y = x$.

    Attributes:
        n: the ambient dimension (the sphere has dimension `n - 1`).
    """

    n: int = eqx.field(static=True)

    _what = "the sphere"
    _point_hint = "|x|^2 - 1 above the tolerance"

    def _check(self, caller, x):
        check_shape(f"Sphere({self.n}).{caller}", "x", x, (self.n,))

    def _point_defect(self, x):
        return jnp.abs(jnp.dot(x, x) - 1)

    def _tangent_defect(self, x, v):
        return relative(jnp.abs(jnp.dot(x, v)), jnp.linalg.norm(v), 1)

    def to_tangent(self, x, v):
        self._check("to_tangent", x)
        return v - jnp.dot(x, v) * x

    def to_manifold(self, x):
        self._check("to_manifold", x)
        return x / jnp.linalg.norm(x)

    def weingarten_operator(self, x, normal):
        # W_x(v, n) = -(x . n) v, already tangent for a tangent `v`.
        scale = -jnp.dot(x, normal)
        return lambda v: scale * v

    def retract(self, x, v):
        """$(x + v)/\\lVert x + v\\rVert$: the metric projection, second order."""
        self._check("retract", x)
        x = self._checked_point("retract", x)
        v = self._checked_tangent("retract", x, v)
        return self.to_manifold(x + v)

    def exp(self, x, v):
        self._check("exp", x)
        x = self._checked_point("exp", x)
        v = self._checked_tangent("exp", x, v)
        l = jnp.dot(v, v)
        return cos_sqrt(l) * x + sinc_sqrt(l) * v

    def log(self, x, y):
        self._check("log", x)
        x = self._checked_point("log", x)
        y = self._checked_point("log", y, "y")
        c = jnp.dot(x, y)
        u = y - c * x
        s = safe_sqrt(jnp.dot(u, u))
        theta = jnp.arctan2(s, c)
        # theta / sin(theta) with sin(theta) = |u|; equal to 1 in the limit y -> x.
        positive = s > 0
        factor = jnp.where(positive, theta / jnp.where(positive, s, 1.0), 1.0)
        return factor * u

    def transport(self, x, y, v):
        """The projection $P_y v$: a vector transport, not an isometry."""
        self._check("transport", x)
        x = self._checked_point("transport", x)
        y = self._checked_point("transport", y, "y")
        v = self._checked_tangent("transport", x, v)
        return self.to_tangent(y, v)

    def dist(self, x, y):
        self._check("dist", x)
        x = self._checked_point("dist", x)
        y = self._checked_point("dist", y, "y")
        d = x - y
        chord = safe_sqrt(jnp.dot(d, d))
        return 2 * jnp.arcsin(jnp.minimum(0.5 * chord, 1.0))

    def random_point(self, key, *, dtype=None):
        """A uniform point on the sphere (a normalized standard normal vector)."""
        return self.to_manifold(normal(key, (self.n,), dtype))

    def random_tangent(self, key, x):
        self._check("random_tangent", x)
        return self.to_tangent(x, normal(key, (self.n,), x.dtype))
