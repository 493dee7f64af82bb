"""Linear solves with the metric and the Hessian: dense for small `d`, Krylov otherwise."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx

from .._checks import cholesky


def _tolerances(tree):
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(tree))
    eps = float(jnp.finfo(dtype).eps)
    return 100 * eps, 100 * eps


def spd_solve(matrix, b, *, caller: str = "spd_solve"):
    """Solve `A x = b` for a symmetric positive definite `A` by Cholesky.

    Raises (through `equinox.error_if`) if `A` is not positive definite.
    """
    L = cholesky(caller, matrix)
    return jsl.cho_solve((L, True), b)


def cg_solve(mvp: Callable, b, *, rtol=None, atol=None, max_steps=None):
    """Solve `A x = b` for a symmetric positive definite `A` given by `v -> A v`.

    Matrix-free conjugate gradients (`lineax.CG`) on any pytree `b`. Tolerances
    default to `100 eps` of `b`'s dtype.
    """
    default_rtol, default_atol = _tolerances(b)
    structure = jax.eval_shape(lambda: b)
    operator = lx.FunctionLinearOperator(
        mvp, structure, tags=[lx.symmetric_tag, lx.positive_semidefinite_tag]
    )
    solver = lx.CG(
        rtol=default_rtol if rtol is None else rtol,
        atol=default_atol if atol is None else atol,
        max_steps=max_steps,
    )
    return lx.linear_solve(operator, b, solver).value


def symmetric_solve(mvp: Callable, b, *, rtol=None, atol=None, max_steps=None):
    """Solve `A x = b` for a symmetric, possibly indefinite `A` given by `v -> A v`.

    Matrix-free GMRES (`lineax.GMRES`; lineax's CG refuses indefinite operators and it
    has no MINRES). Used for Newton steps away from minima.
    """
    default_rtol, default_atol = _tolerances(b)
    structure = jax.eval_shape(lambda: b)
    operator = lx.FunctionLinearOperator(mvp, structure, tags=[lx.symmetric_tag])
    solver = lx.GMRES(
        rtol=default_rtol if rtol is None else rtol,
        atol=default_atol if atol is None else atol,
        max_steps=max_steps,
    )
    return lx.linear_solve(operator, b, solver).value
