"""The symmetric generalized eigenproblem `A v = lambda B v`, `B` positive definite."""

import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .checks import cholesky


def generalized_eigvalsh(A, B, *, caller: str = "generalized_eigvalsh"):
    """Eigenvalues of `B^{-1} A` for symmetric `A` and symmetric positive definite `B`.

    Computed stably as the eigenvalues of the symmetric `L^{-1} A L^{-T}`, where
    `B = L L^T`, never as `eigvals` of the non-symmetric product `B^{-1} A`. Returned
    in ascending order. Raises (through `equinox.error_if`) if `B` is not positive
    definite.
    """
    return eigvalsh_from_cholesky(A, cholesky(caller, B))


def eigvalsh_from_cholesky(A, L):
    """Eigenvalues of `B^{-1} A` given the Cholesky factor `L` of `B = L L^T`:
    those of the symmetric `L^{-1} A L^{-T}`, ascending."""
    A = 0.5 * (A + A.T)
    half = jsl.solve_triangular(L, A, lower=True)
    C = jsl.solve_triangular(L, half.T, lower=True)
    return jnp.linalg.eigvalsh(0.5 * (C + C.T))
