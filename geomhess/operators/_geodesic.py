"""The exponential map of a connection, by integrating the geodesic equation."""

import diffrax
import jax
import jax.numpy as jnp

from .._core.checks import check_finite, check_like, check_point
from .._core.tree import tree_add, tree_scale
from ._coerce import as_connection


def _default_tolerances(x):
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(x))
    if dtype == jnp.float64:
        return 1e-12, 1e-12
    return 1e-6, 1e-6


def _geodesic_vector_field(t, state, connection):
    # A module-level function with the connection passed as `args` (a pytree), so
    # diffrax's compiled solve is reused across calls instead of retraced per closure.
    position, velocity = state
    return velocity, tree_scale(-1.0, connection.contract(position, velocity, velocity))


def exp_map(connection, x, v, *, t1=1.0, rtol=None, atol=None, max_steps=4096):
    """The exponential map: the geodesic from `x` with initial velocity `v`, at time `t1`.

    Integrates `x'' = -Gamma(x', x')` (`Gamma` contracted by `connection.contract`,
    matrix-free) with diffrax's 8th-order Dormand-Prince method and an adaptive step
    controller. The default tolerances (`1e-12` in float64, `1e-6` in float32) give
    about `1e-8` relative accuracy in float64. Differentiable (through diffrax's
    checkpointed adjoint), and usable under `jit` and `vmap`.

    Args:
        connection: the connection, or a metric (its Levi-Civita connection is used).
        x: the base point, an array or pytree.
        v: the initial velocity, shaped like `x`.
        t1: the time at which to evaluate the geodesic (`exp(x, t1 v)`).
        rtol: relative tolerance of the step-size controller.
        atol: absolute tolerance of the step-size controller.
        max_steps: the cap on integrator steps; exceeding it raises.

    Returns:
        The end point, shaped like `x`.
    """
    check_point("exp_map", x)
    check_like("exp_map", "v", v, x)
    connection = as_connection("exp_map", connection)
    x = check_finite("exp_map", x)
    default_rtol, default_atol = _default_tolerances(x)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(x))

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_geodesic_vector_field),
        diffrax.Dopri8(),
        # Times in the point's dtype: Python floats would promote a float32 state to
        # float64 under x64.
        t0=jnp.zeros((), dtype),
        t1=jnp.asarray(t1, dtype),
        dt0=None,
        y0=(x, v),
        stepsize_controller=diffrax.PIDController(
            rtol=default_rtol if rtol is None else rtol,
            atol=default_atol if atol is None else atol,
        ),
        args=connection,
        max_steps=max_steps,
    )
    return jax.tree_util.tree_map(lambda leaf: leaf[-1], solution.ys[0])


def second_order_retraction(connection, x, v):
    """`x + v - Gamma(v, v) / 2`: the geodesic's second-order Taylor expansion.

    A second-order retraction for any connection: it agrees with
    [`exp_map`][geomhess.exp_map] up to `O(|v|^3)`, at the cost of one `contract`.
    """
    connection = as_connection("second_order_retraction", connection)
    return tree_add(tree_add(x, v), tree_scale(-0.5, connection.contract(x, v, v)))
