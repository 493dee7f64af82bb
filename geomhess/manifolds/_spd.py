"""Symmetric positive-definite matrices with the affine-invariant metric."""

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._core.checks import (
    checks_enabled,
    cholesky_factor,
    membership_tol,
    raise_if,
    symmetry_defect,
)
from ._base import AbstractManifold, check_shape, normal, relative, sym
from ._functions import expm_sym, logm_sym, safe_sqrt, sqrtm_sym


def _whiten(L, V):
    """$L^{-1} V L^{-\\top}$ by two triangular solves."""
    half = jsl.solve_triangular(L, V, lower=True)
    return jsl.solve_triangular(L, half.T, lower=True).T


class SPD(AbstractManifold):
    """Symmetric positive-definite `(n, n)` matrices with the affine-invariant metric
    $\\langle U, V\\rangle_X = \\mathrm{tr}(X^{-1} U X^{-1} V)$.

    Tangent vectors are symmetric `(n, n)` matrices. Every map is closed form; with
    $X = LL^\\top$ (Cholesky) and $W = L^{-1} Y L^{-\\top}$:

    - `to_tangent(X, V)` $= \\mathrm{sym}(V)$; `to_manifold(X)` $= \\mathrm{sym}(X)$
      (it does not repair lost definiteness);
    - `egrad_to_rgrad(X, G)` $= X \\mathrm{sym}(G) X$;
      `ehvp_to_rhvp(X, G, H, V)` $= X \\mathrm{sym}(H) X + \\mathrm{sym}(V
      \\mathrm{sym}(G) X)$;
    - `exp(X, V)` $= L \\exp(L^{-1} V L^{-\\top}) L^\\top$,
      `log(X, Y)` $= L \\log(W) L^\\top$, `dist(X, Y)` $= \\lVert \\log W\\rVert_F$;
    - `retract(X, V)` $= X + V + \\frac12 V X^{-1} V$, PD for every symmetric $V$ and
      **second order**;
    - `transport(X, Y, V)` $= E V E^\\top$ with $E = (YX^{-1})^{1/2} = L W^{1/2}
      L^{-1}$: the parallel transport along the geodesic, an **isometry**.

    The matrix functions `exp`, `log` and `sqrt` are computed by `eigh` with a
    Daleckii-Krein custom JVP, so their first derivatives are finite and correct at
    repeated eigenvalues (for instance at $X = I$). Cost: one Cholesky, a few
    triangular solves and at most two `eigh` of `(n, n)` matrices per call.

    [^pennec]: Pennec, Fillard, Ayache, *A Riemannian framework for tensor
        computing*, IJCV 66 (2006).

    Attributes:
        n: the matrix size.
    """

    n: int = eqx.field(static=True)

    _what = "the SPD matrices"

    def _check(self, caller, x):
        check_shape(f"SPD({self.n}).{caller}", "x", x, (self.n, self.n))

    def _point_defect(self, x):
        return symmetry_defect(x)

    def _tangent_defect(self, x, v):
        size = jnp.max(jnp.abs(x))
        return relative(jnp.max(jnp.abs(v - v.T)), jnp.max(jnp.abs(v)), size)

    def _spd_check(self, caller, x, name):
        """`(L, bad, message)`: the Cholesky factor of `x`, and whether `x` is not
        symmetric (to the tolerance) or not positive definite."""
        L, bad = cholesky_factor(x)
        tol = membership_tol(x.dtype)
        return (
            L,
            bad,
            f"`SPD({self.n}).{caller}`: the point `{name}` is not symmetric positive "
            f"definite (not symmetric to {tol:.1e} relative, or its Cholesky "
            "factorization failed: an eigenvalue <= 0, or NaN/inf). Symmetrize with "
            "`manifold.to_manifold(x)`; a lost definiteness cannot be repaired by "
            "projection. `GEOMHESS_CHECKS=0` skips this check.",
        )

    def _cholesky(self, caller, x):
        """The Cholesky factor of the point `x`, checked when checks are on. A
        Cholesky of a matrix that is not SPD gives NaN, which would reach `dist` and
        `log` as NaN or, through `sqrt`, as a silent number."""
        L, bad, message = self._spd_check(caller, x, "x")
        return raise_if(L, bad, message) if checks_enabled() else L

    def _checked_spd(self, caller, y, name="y"):
        """`y`, checked as `_cholesky` checks `x` (one more Cholesky when on)."""
        if not checks_enabled():
            return y
        _, bad, message = self._spd_check(caller, y, name)
        return raise_if(y, bad, message)

    def inner(self, x, u, v):
        self._check("inner", x)
        L = jnp.linalg.cholesky(x)
        return jnp.vdot(_whiten(L, u), _whiten(L, v).T)

    def to_tangent(self, x, v):
        self._check("to_tangent", x)
        return sym(v)

    def to_manifold(self, x):
        self._check("to_manifold", x)
        return sym(x)

    def egrad_to_rgrad(self, x, egrad):
        self._check("egrad_to_rgrad", x)
        return x @ sym(egrad) @ x

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        self._check("ehvp_to_rhvp", x)
        return x @ sym(ehvp) @ x + sym(v @ sym(egrad) @ x)

    def retract(self, x, v):
        """$X + V + \\frac12 V X^{-1} V$, second order, always PD."""
        self._check("retract", x)
        L = self._cholesky("retract", x)
        v = self._checked_tangent("retract", x, v)
        half = jsl.solve_triangular(L, v, lower=True)
        return sym(x + v + 0.5 * half.T @ half)

    def exp(self, x, v):
        self._check("exp", x)
        L = self._cholesky("exp", x)
        v = self._checked_tangent("exp", x, v)
        return sym(L @ expm_sym(_whiten(L, v)) @ L.T)

    def log(self, x, y):
        self._check("log", x)
        L = self._cholesky("log", x)
        y = self._checked_spd("log", y)
        return sym(L @ logm_sym(_whiten(L, y)) @ L.T)

    def transport(self, x, y, v):
        """Parallel transport along the geodesic from `x` to `y` (an isometry)."""
        self._check("transport", x)
        L = self._cholesky("transport", x)
        y = self._checked_spd("transport", y)
        v = self._checked_tangent("transport", x, v)
        root = sqrtm_sym(_whiten(L, y))
        return sym(L @ root @ _whiten(L, v) @ root @ L.T)

    def dist(self, x, y):
        self._check("dist", x)
        L = self._cholesky("dist", x)
        y = self._checked_spd("dist", y)
        log_w = logm_sym(_whiten(L, y))
        return safe_sqrt(jnp.vdot(log_w, log_w))

    def random_point(self, key, *, dtype=None):
        """$\\exp(S)$ for a symmetric $S$ with standard normal entries scaled by
        $1/\\sqrt{2n}$ (well conditioned)."""
        A = normal(key, (self.n, self.n), dtype)
        return expm_sym(sym(A) / jnp.sqrt(2.0 * self.n).astype(A.dtype))

    def random_tangent(self, key, x):
        self._check("random_tangent", x)
        return sym(normal(key, (self.n, self.n), x.dtype))
