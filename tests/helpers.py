"""Tolerances and comparisons: the one place tolerances live."""

import jax.numpy as jnp
import numpy as np


def tol(dtype, kind: str = "algebraic") -> float:
    """Relative tolerance for a dtype: `algebraic` identities or `ode`-based results."""
    if jnp.dtype(dtype) == jnp.float64:
        return {"algebraic": 1e-10, "ode": 1e-7}[kind]
    return {"algebraic": 1e-4, "ode": 1e-3}[kind]


def assert_close(actual, desired, *, rtol, atol=None):
    actual, desired = np.asarray(actual), np.asarray(desired)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(
        actual, desired, rtol=rtol, atol=rtol * scale if atol is None else atol
    )


def assert_not_close(actual, desired, *, rtol):
    """The negative control: the two must differ by more than `rtol`."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    diff = np.max(np.abs(actual - desired)) / max(1.0, float(np.max(np.abs(desired))))
    assert diff > rtol, f"expected a difference above {rtol}, got {diff}"
