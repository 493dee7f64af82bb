"""Smooth scalar and symmetric-matrix functions with finite, correct derivatives.

Closed-form exponential and logarithm maps are full of expressions such as
$\\sin(\\lVert v\\rVert) / \\lVert v\\rVert$ or $(I + V^\\top V)^{-1/2}$. Written
naively they have NaN derivatives where they are smooth: at $v = 0$ (through the
norm) and at matrices with repeated eigenvalues such as the identity (through `eigh`,
whose JVP divides by eigenvalue gaps). This module writes them so that their values
and first derivatives are correct everywhere:

- scalar functions of $l = \\lVert v\\rVert^2$ (not of $\\lVert v\\rVert$) with a Taylor
  branch near $l = 0$, selected by the double-`where` trick so the unused branch never
  produces a NaN cotangent;
- [`symmetric_function`][] evaluates $f(A)$ for symmetric $A$ through `eigh`, with a
  custom JVP given by the Daleckii-Krein formula, whose divided differences are
  replaced by $f'$ of the mean where two eigenvalues (nearly) coincide.
"""

import functools as ft

import jax
import jax.numpy as jnp


def _series(l, coefficients):
    out = jnp.zeros_like(l) + coefficients[-1]
    for c in reversed(coefficients[:-1]):
        out = out * l + c
    return out


def _with_taylor(exact, coefficients, threshold, l):
    """`exact(l)` away from 0, its Taylor polynomial in `l` for `|l| < threshold`."""
    small = jnp.abs(l) < threshold
    # The double `where`: the exact branch is evaluated on a safe dummy value where
    # the Taylor branch is used, so neither its value nor its derivative is NaN.
    safe = jnp.where(small, jnp.ones_like(l), l)
    return jnp.where(small, _series(l, coefficients), exact(safe))


# Taylor coefficients (in powers of l) through l^4; with the thresholds below the
# truncation error is below float64 rounding for the values and first derivatives.
_COS = (1.0, -1 / 2, 1 / 24, -1 / 720, 1 / 40320, -1 / 3628800)
_SINC = (1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880, -1 / 39916800)
_ATANC = (1.0, -1 / 3, 1 / 5, -1 / 7, 1 / 9, -1 / 11, 1 / 13)


def cos_sqrt(l):
    """$\\cos\\sqrt{l}$ for $l \\ge 0$ (tiny negative `l` from rounding allowed)."""
    return _with_taylor(lambda s: jnp.cos(jnp.sqrt(s)), _COS, 1e-2, l)


def sinc_sqrt(l):
    """$\\sin\\sqrt{l}/\\sqrt{l}$ for $l \\ge 0$, equal to 1 at 0; smooth in `l`."""
    return _with_taylor(lambda s: jnp.sin(jnp.sqrt(s)) / jnp.sqrt(s), _SINC, 1e-2, l)


def _unalternate(coefficients):
    return tuple(abs(c) for c in coefficients)


def cosh_sqrt(l):
    """$\\cosh\\sqrt{l}$ for $l \\ge 0$; smooth in `l`."""
    return _with_taylor(lambda s: jnp.cosh(jnp.sqrt(s)), _unalternate(_COS), 1e-2, l)


def sinhc_sqrt(l):
    """$\\sinh\\sqrt{l}/\\sqrt{l}$ for $l \\ge 0$, equal to 1 at 0; smooth in `l`."""
    return _with_taylor(
        lambda s: jnp.sinh(jnp.sqrt(s)) / jnp.sqrt(s), _unalternate(_SINC), 1e-2, l
    )


def atanc_sqrt(l):
    """$\\arctan\\sqrt{l}/\\sqrt{l}$, $l \\ge 0$; smooth in `l`, equal to 1 at 0."""

    def exact(s):
        r = jnp.sqrt(jnp.abs(s))
        return jnp.arctan(r) / r

    return _with_taylor(exact, _ATANC, 1e-3, l)


def safe_sqrt(l):
    """$\\sqrt{l}$ with derivative 0 (not NaN) at $l \\le 0$, and NaN for NaN `l`.

    Used for norms and distances, which are not differentiable at 0 anyway. A NaN
    stays NaN (a NaN point has no distance; 0 would be a silent wrong number), and
    a tiny negative `l` from rounding gives 0.
    """
    positive = l > 0
    root = jnp.sqrt(jnp.where(positive, l, jnp.ones_like(l)))
    return jnp.where(positive, root, jnp.where(jnp.isnan(l), l, jnp.zeros_like(l)))


def _transpose(a):
    return jnp.swapaxes(a, -1, -2)


def _elementwise_derivative(f, w):
    return jax.jvp(f, (w,), (jnp.ones_like(w),))[1]


@ft.partial(jax.custom_jvp, nondiff_argnums=(0,))
def symmetric_function(f, A):
    """$f(A) = Q\\,\\mathrm{diag}(f(\\lambda))\\,Q^\\top$ for a symmetric matrix $A$.

    `f` is an elementwise, differentiable scalar function written in `jax.numpy` (pass
    a module-level function, not a fresh lambda, so `jit` caches are reused). Only the
    symmetric part of `A` is used.

    The JVP is the Daleckii-Krein formula
    $Df(A)[E] = Q\\,(F \\circ Q^\\top \\mathrm{sym}(E) Q)\\,Q^\\top$ with
    $F_{ij} = (f(\\lambda_i) - f(\\lambda_j))/(\\lambda_i - \\lambda_j)$, and
    $F_{ij} = f'((\\lambda_i + \\lambda_j)/2)$ when
    $|\\lambda_i - \\lambda_j|
    \\le \\sqrt{\\varepsilon}\\max(|\\lambda_i|, |\\lambda_j|)$.
    So first derivatives are finite and correct at repeated eigenvalues (the identity,
    for instance), where differentiating `eigh` gives NaN. Higher derivatives go
    through `eigh`'s own JVP and are only reliable at distinct eigenvalues.

    Cost: one `eigh` of an `(n, n)` matrix; the JVP adds one `eigh` and four matmuls.
    """
    w, Q = jnp.linalg.eigh(A)
    return (Q * f(w)[..., None, :]) @ _transpose(Q)


@symmetric_function.defjvp
def _symmetric_function_jvp(f, primals, tangents):
    (A,), (dA,) = primals, tangents
    w, Q = jnp.linalg.eigh(A)
    fw = f(w)
    out = (Q * fw[..., None, :]) @ _transpose(Q)
    wi, wj = w[..., :, None], w[..., None, :]
    gap = wi - wj
    eps = jnp.finfo(w.dtype).eps
    scale = jnp.maximum(jnp.maximum(jnp.abs(wi), jnp.abs(wj)), jnp.finfo(w.dtype).tiny)
    close = jnp.abs(gap) <= jnp.sqrt(eps) * scale
    divided = (fw[..., :, None] - fw[..., None, :]) / jnp.where(
        close, jnp.ones_like(gap), gap
    )
    F = jnp.where(close, _elementwise_derivative(f, 0.5 * (wi + wj)), divided)
    sym_dA = 0.5 * (dA + _transpose(dA))
    dout = Q @ (F * (_transpose(Q) @ sym_dA @ Q)) @ _transpose(Q)
    return out, dout


# Module-level scalar functions, so `symmetric_function`'s static argument is stable.
def _sqrt(w):
    return jnp.sqrt(w)


def _inv_sqrt(w):
    return 1 / jnp.sqrt(w)


def expm_sym(A):
    """Matrix exponential of a symmetric matrix (eigh; finite derivatives)."""
    return symmetric_function(jnp.exp, A)


def logm_sym(A):
    """Principal logarithm of an SPD matrix (eigh; finite derivatives everywhere)."""
    return symmetric_function(jnp.log, A)


def sqrtm_sym(A):
    """Principal square root of an SPD matrix (eigh; finite derivatives everywhere)."""
    return symmetric_function(_sqrt, A)


def inv_sqrtm_sym(A):
    """$A^{-1/2}$ of an SPD matrix (eigh; finite derivatives everywhere)."""
    return symmetric_function(_inv_sqrt, A)
