"""The Stiefel manifold of orthonormal frames and the Grassmann manifold."""

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._core.tree import tree_vdot
from ._base import (
    AbstractEmbeddedManifold,
    AbstractManifold,
    check_shape,
    normal,
    relative,
    sym,
)
from ._functions import (
    atanc_sqrt,
    cos_sqrt,
    inv_sqrtm_sym,
    safe_sqrt,
    sinc_sqrt,
    symmetric_function,
)


def _polar(X):
    """The orthonormal polar factor $X (X^\\top X)^{-1/2}$ of a full-rank `(n, p)`
    matrix: the closest matrix with orthonormal columns. Differentiable everywhere
    (including at orthonormal `X`, where $X^\\top X = I$ has repeated eigenvalues)."""
    return X @ inv_sqrtm_sym(X.T @ X)


def _frame_defect(x):
    """`max |X^T X - I|`: 0 exactly for orthonormal columns."""
    return jnp.max(jnp.abs(x.T @ x - jnp.eye(x.shape[1], dtype=x.dtype)))


def _random_frame(key, n, p, dtype):
    return _polar(normal(key, (n, p), dtype))


class Stiefel(AbstractEmbeddedManifold):
    """The Stiefel manifold $\\mathrm{St}(n, p) = \\{X \\in \\mathbb{R}^{n \\times p} :
    X^\\top X = I_p\\}$ with the embedded (Euclidean, $\\mathrm{tr}(U^\\top V)$) metric.

    Points and tangent vectors have shape `(n, p)`, `p <= n`;
    $T_X = \\{V : X^\\top V + V^\\top X = 0\\}$.

    - `to_tangent(X, V)` $= V - X \\mathrm{sym}(X^\\top V)$;
    - `to_manifold(X)` and `retract(X, V)` use the polar factor,
      $R_X(V) = (X + V)((X + V)^\\top (X + V))^{-1/2}$: the metric projection, a
      **second-order** retraction (one `(p, p)` `eigh`, $O(np^2)$);
    - `exp` is Edelman, Arias and Smith's closed form[^eas] for the embedded metric,
      $[X, V] \\exp\\begin{pmatrix} A & -S \\\\ I & A\\end{pmatrix}
      \\begin{pmatrix} e^{-A} \\\\ 0 \\end{pmatrix}$ with $A = X^\\top V$,
      $S = V^\\top V$ (two general matrix exponentials, $O(np^2 + p^3)$);
    - `log` and `dist` have no closed form and raise `NotImplementedError`;
    - `transport(X, Y, V)` $= P_Y V$, a projection: **not** an isometry;
    - Weingarten map $W_X(V, N) = -P_X(V \\mathrm{sym}(X^\\top N))$.

    [^eas]: Edelman, Arias, Smith, *The geometry of algorithms with orthogonality
        constraints*, SIAM J. Matrix Anal. Appl. 20 (1998), eq. 2.45.

    Attributes:
        n: the number of rows.
        p: the number of orthonormal columns.
    """

    n: int = eqx.field(static=True)
    p: int = eqx.field(static=True)

    def __check_init__(self):
        if not 1 <= self.p <= self.n:
            raise ValueError(
                f"`Stiefel`: need 1 <= p <= n, got n={self.n}, p={self.p}."
            )

    _what = "the Stiefel manifold"
    _point_hint = "max |X^T X - I| above the tolerance"

    def _check(self, caller, x):
        check_shape(f"Stiefel({self.n}, {self.p}).{caller}", "x", x, (self.n, self.p))

    def _point_defect(self, x):
        return _frame_defect(x)

    def _tangent_defect(self, x, v):
        return relative(jnp.max(jnp.abs(sym(x.T @ v))), jnp.max(jnp.abs(v)), 1)

    def to_tangent(self, x, v):
        self._check("to_tangent", x)
        return v - x @ sym(x.T @ v)

    def to_manifold(self, x):
        self._check("to_manifold", x)
        return _polar(x)

    def weingarten_operator(self, x, normal):
        # W_X(V, N) = -P_X(V sym(X^T N)); `ehvp_to_rhvp` projects once for both terms.
        s = -sym(x.T @ normal)
        return lambda v: v @ s

    def retract(self, x, v):
        """The polar retraction $\\mathrm{polar}(X + V)$, second order."""
        self._check("retract", x)
        x = self._checked_point("retract", x)
        v = self._checked_tangent("retract", x, v)
        return _polar(x + v)

    def exp(self, x, v):
        self._check("exp", x)
        x = self._checked_point("exp", x)
        v = self._checked_tangent("exp", x, v)
        p = self.p
        A = x.T @ v
        S = v.T @ v
        eye = jnp.eye(p, dtype=x.dtype)
        block = jnp.block([[A, -S], [eye, A]])
        right = jnp.concatenate([jsl.expm(-A), jnp.zeros_like(A)], axis=0)
        return jnp.concatenate([x, v], axis=1) @ (jsl.expm(block) @ right)

    def log(self, x, y):
        raise NotImplementedError(
            "`Stiefel.log`: the Stiefel manifold with the embedded metric has no "
            "closed-form logarithm. Use `retract`/`exp` to move, and `Grassmann` if "
            "only the spanned subspace matters."
        )

    def transport(self, x, y, v):
        """The projection $P_Y V$ onto $T_Y$: a vector transport, not an isometry."""
        self._check("transport", x)
        x = self._checked_point("transport", x)
        y = self._checked_point("transport", y, "y")
        v = self._checked_tangent("transport", x, v)
        return self.to_tangent(y, v)

    def dist(self, x, y):
        raise NotImplementedError(
            "`Stiefel.dist`: no closed-form geodesic distance on the Stiefel "
            "manifold (it needs the logarithm). Use `Grassmann.dist` for the distance "
            "between spanned subspaces, or the Frobenius norm `jnp.linalg.norm(x - y)` "
            "as a chordal surrogate."
        )

    def random_point(self, key, *, dtype=None):
        """The polar factor of a standard normal `(n, p)` matrix (Haar-distributed)."""
        return _random_frame(key, self.n, self.p, dtype)

    def random_tangent(self, key, x):
        self._check("random_tangent", x)
        return self.to_tangent(x, normal(key, (self.n, self.p), x.dtype))


# Module-level so `symmetric_function` caches on a stable static argument.
def _cos_sqrt(w):
    return cos_sqrt(w)


def _sinc_sqrt(w):
    return sinc_sqrt(w)


def _atanc_sqrt(w):
    return atanc_sqrt(w)


class Grassmann(AbstractManifold):
    """The Grassmann manifold $\\mathrm{Gr}(n, p)$ of `p`-dimensional subspaces of
    $\\mathbb{R}^n$, as the quotient $\\mathrm{St}(n, p) / O(p)$.

    A point is represented by any `(n, p)` matrix $X$ with orthonormal columns (its
    column space is the subspace); a tangent vector by its horizontal lift $V$ at $X$,
    with $X^\\top V = 0$. The metric is $\\mathrm{tr}(U^\\top V)$. Costs used as
    objectives must be invariant under $X \\mapsto XQ$, $Q \\in O(p)$ (they are
    functions of the subspace) for the gradient and Hessian to be meaningful.

    - `to_tangent(X, V)` $= (I - XX^\\top) V$, the horizontal projection;
      `egrad_to_rgrad` is the same; `ehvp_to_rhvp(X, G, H, V)` $= (I - XX^\\top) H -
      V X^\\top G$[^ams];
    - `exp(X, V)` $= X \\cos(\\Sigma') + U \\sin(\\Sigma')$ from the SVD, written as
      $X c(V^\\top V) + V s(V^\\top V)$ with $c(l) = \\cos\\sqrt l$,
      $s(l) = \\sin\\sqrt l/\\sqrt l$ (matrix functions by `eigh`, differentiable at
      $V = 0$); the result has orthonormal columns;
    - `log(X, Y)` $= M a(M^\\top M)$, $a(l) = \\arctan\\sqrt l/\\sqrt l$, with
      $M = (I - XX^\\top) Y (X^\\top Y)^{-1}$, the same as the usual
      $U \\arctan(\\Sigma) W^\\top$ from the SVD of $M$; needs $X^\\top Y$ invertible
      (no principal angle equal to $\\pi/2$); independent of the representative $Y$;
    - `dist(X, Y)` $= \\lVert \\log_X Y\\rVert$, the 2-norm of the principal angles;
    - `retract(X, V)` $= \\mathrm{polar}(X + V)$, **second order** on the quotient;
    - `transport(X, Y, V)` $= (I - YY^\\top) V$, the horizontal projection at $Y$:
      **not** an isometry.

    `exp` and `retract` return one representative of the resulting subspace;
    compare subspaces through the projectors $XX^\\top$, or with `dist`.

    [^ams]: Absil, Mahony, Sepulchre, *Riemannian geometry of Grassmann manifolds with
        a view on algorithmic computation*, Acta Appl. Math. 80 (2004).

    Attributes:
        n: the ambient dimension.
        p: the subspace dimension.
    """

    n: int = eqx.field(static=True)
    p: int = eqx.field(static=True)

    def __check_init__(self):
        if not 1 <= self.p <= self.n:
            raise ValueError(
                f"`Grassmann`: need 1 <= p <= n, got n={self.n}, p={self.p}."
            )

    _what = "the Grassmann manifold (orthonormal representatives)"
    _point_hint = "max |X^T X - I| above the tolerance"

    def _check(self, caller, x):
        check_shape(f"Grassmann({self.n}, {self.p}).{caller}", "x", x, (self.n, self.p))

    def _point_defect(self, x):
        return _frame_defect(x)

    def _tangent_defect(self, x, v):
        return relative(jnp.max(jnp.abs(x.T @ v)), jnp.max(jnp.abs(v)), 1)

    def inner(self, x, u, v):
        self._check("inner", x)
        return tree_vdot(u, v)

    def to_tangent(self, x, v):
        self._check("to_tangent", x)
        return v - x @ (x.T @ v)

    def to_manifold(self, x):
        self._check("to_manifold", x)
        return _polar(x)

    def egrad_to_rgrad(self, x, egrad):
        return self.to_tangent(x, egrad)

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        return self.to_tangent(x, ehvp) - v @ (x.T @ egrad)

    def retract(self, x, v):
        """$\\mathrm{polar}(X + V)$, a second-order retraction."""
        self._check("retract", x)
        x = self._checked_point("retract", x)
        v = self._checked_tangent("retract", x, v)
        return _polar(x + v)

    def exp(self, x, v):
        self._check("exp", x)
        x = self._checked_point("exp", x)
        v = self._checked_tangent("exp", x, v)
        S = v.T @ v
        return x @ symmetric_function(_cos_sqrt, S) + v @ symmetric_function(
            _sinc_sqrt, S
        )

    def log(self, x, y):
        self._check("log", x)
        x = self._checked_point("log", x)
        y = self._checked_point("log", y, "y")
        xty = x.T @ y
        # M = (I - X X^T) Y (X^T Y)^{-1}, by a solve rather than an inverse.
        M = jnp.linalg.solve(xty.T, (y - x @ xty).T).T
        return M @ symmetric_function(_atanc_sqrt, M.T @ M)

    def transport(self, x, y, v):
        """The horizontal projection at `y`: a vector transport, not an isometry."""
        self._check("transport", x)
        x = self._checked_point("transport", x)
        y = self._checked_point("transport", y, "y")
        v = self._checked_tangent("transport", x, v)
        return self.to_tangent(y, v)

    def dist(self, x, y):
        self._check("dist", x)
        u = self.log(x, y)
        return safe_sqrt(jnp.vdot(u, u))

    def random_point(self, key, *, dtype=None):
        """An orthonormal basis of a uniformly distributed subspace."""
        return _random_frame(key, self.n, self.p, dtype)

    def random_tangent(self, key, x):
        self._check("random_tangent", x)
        return self.to_tangent(x, normal(key, (self.n, self.p), x.dtype))
