"""The invariant Newton method as an optax transformation."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax

from .._core.checks import check_finite, require_finite
from ..operators._newton import (
    coordinate_newton_step,
    newton_solve,
    newton_step,
    operator_matrix,
    singular_msg,
)
from . import _tree as mt
from ._first_order import as_hyperparameter
from ._geometry import (
    CoordinateGeometry,
    ManifoldGeometry,
    as_geometry,
    check_retraction,
    euclidean_hvp,
    total_size,
)
from ._riemannian import check_params


class NewtonState(NamedTuple):
    """State of [`newton`][geomhess.optim.newton].

    Attributes:
        count: the number of updates so far (`int32`).
    """

    count: jax.Array


def check_value_fn(caller: str, value_fn):
    if value_fn is None:
        raise ValueError(
            f"`{caller}`: the keyword argument `value_fn` is required, as for "
            "`optax.lbfgs`: call `update(grads, state, params, value_fn=f)` with the "
            "objective `f(params)`."
        )


def riemannian_newton_step(
    geometry: CoordinateGeometry | ManifoldGeometry,
    f,
    x,
    damping,
    dense: bool,
    hvp_fn=None,
):
    """Solve `(Hess f(x) + damping) eta = -grad f(x)` for `eta` in `T_x M`.

    On coordinates this is [`newton_step`][geomhess.newton_step]'s system, lowered:
    `(nabla^2 f + damping G) eta = -df` with the covariant Hessian (from `hvp_fn`
    when given), symmetric in the dot product.

    On a manifold the operator is extended to the ambient space by the identity on
    the normal part, `A v = P (Hess + damping) P v + (v - P v)` with `P =
    to_tangent`: `A` is invertible exactly when the Riemannian Hessian (plus
    damping) is on `T_x M`, and as the right-hand side is tangent, so is the
    solution. `A` is self-adjoint in the manifold's inner product, not in the dot
    product (SPD, Hyperbolic), so MINRES solves the lowered system `flat(A v) =
    flat(b)`, with `flat(u)` the covector `w -> <u, w>_x` (the identity on an
    embedded manifold); the dense path solves `A` itself by LU.
    """
    x = check_finite("newton", x)
    egrad = require_finite("newton", jax.grad(f)(x), "the gradient")
    if isinstance(geometry, CoordinateGeometry):
        if damping_is_zero(damping):
            metric = geometry.metric
        else:
            metric = geometry.require_metric("newton")
        if hvp_fn is None and dense and isinstance(x, jax.Array) and x.ndim == 1:
            return newton_step(
                f, geometry.connection, x, damping=damping, metric=metric
            )
        return coordinate_newton_step(
            geometry.connection,
            metric,
            x,
            egrad,
            euclidean_hvp(f, x, hvp_fn),
            damping,
            dense=dense,
            caller="newton",
        )

    minus_rgrad = mt.tree_scale(-1, geometry.gradient(x, egrad))
    minus_rgrad = geometry.to_tangent(x, minus_rgrad)
    hessian = geometry.hessian(f, x, egrad, hvp_fn, caller="newton")

    def operator(v):
        tangent = geometry.to_tangent(x, v)
        hv = mt.tree_cast_like(hessian(tangent), x)
        hv = mt.tree_lincomb(1, hv, damping, tangent)
        return jtu.tree_map(
            lambda a, b, c: a + b - c, geometry.to_tangent(x, hv), v, tangent
        )

    message = singular_msg("newton", "the Riemannian Hessian on the tangent space")
    if dense:
        eta = newton_solve(
            minus_rgrad,
            caller="newton",
            message=message,
            matrix=operator_matrix(operator, minus_rgrad),
        )
    else:
        flat = geometry.flat(x)
        eta = newton_solve(
            flat(minus_rgrad),
            caller="newton",
            message=message,
            apply=lambda v: flat(operator(v)),
        )
    return geometry.to_tangent(x, eta)


def damping_is_zero(damping) -> bool:
    return isinstance(damping, (int, float)) and damping == 0


class _Newton(eqx.Module):
    geometry: CoordinateGeometry | ManifoldGeometry
    damping: Any
    retraction: str = eqx.field(static=True)
    dense_below: int = eqx.field(static=True)

    def init(self, params):
        del params
        return NewtonState(count=jnp.zeros([], jnp.int32))

    def update(
        self,
        updates,
        state,
        params=None,
        *,
        value_fn=None,
        hvp_fn=None,
        **extra_args,
    ):
        del updates, extra_args
        check_params("newton", params)
        check_value_fn("newton", value_fn)
        geometry = self.geometry
        dtype = mt.point_dtype(params)
        damping = self.damping
        if not damping_is_zero(damping):
            damping = jnp.asarray(damping, dtype)
        dense = total_size(params) <= self.dense_below
        eta = riemannian_newton_step(geometry, value_fn, params, damping, dense, hvp_fn)
        new_params = geometry.move(params, eta, self.retraction)
        count = optax.safe_int32_increment(state.count)
        return mt.difference(new_params, params), NewtonState(count)


def newton(
    connection_or_manifold,
    damping: float = 0.0,
    retraction: str = "exp",
    *,
    dense_below: int = 512,
) -> optax.GradientTransformationExtraArgs:
    """The invariant (Riemannian) Newton method as an optax transformation.

    `update(grads, state, params, *, value_fn, **extra)` takes the objective as the
    keyword-only `value_fn` (required, as with `optax.lbfgs`) and returns
    `updates = x' - x` with `x'` the Newton iterate; `grads` is not used (the gradient
    and the Hessian are computed from `value_fn`, so they are consistent).

    - **Coordinates** (a connection, a metric, or a `Coordinate` manifold): the step
      $\\eta$ solves $(\\nabla^2 f + \\lambda G)\\,\\eta = -df$ with the covariant
      Hessian ([`newton_step`][geomhess.newton_step]). Moved along the connection's
      exponential map ([`exp_map`][geomhess.exp_map], `retraction="exp"`), the
      iterates are the same points in every chart; `retraction="second_order"` uses
      $x + \\eta - \\tfrac12 \\Gamma(\\eta, \\eta)$, which agrees with the geodesic to
      second order (and keeps local quadratic convergence) but is chart-dependent at
      third order.
    - **Manifolds** (e.g. `Sphere`, `Stiefel`, `SPD`): the Riemannian Newton system
      $(\\operatorname{Hess} f(x) + \\lambda)\\,\\eta = -\\operatorname{grad} f(x)$ on
      $T_x M$[^absil], with the Riemannian HVP
      `manifold.ehvp_to_rhvp(x, egrad, ehvp, v)`. It is solved densely (LU on the
      ambient basis, with the operator extended by the identity on the normal space)
      when the params have at most `dense_below` entries, and matrix-free by MINRES
      ([`symmetric_solve`][geomhess.linalg.symmetric_solve]) otherwise. The step
      moves along `manifold.exp` (`retraction="exp"`) or `manifold.retract`
      (`"second_order"`; any retraction keeps local quadratic convergence).

    `update` also takes an optional keyword argument `hvp_fn(x, v)`, the Euclidean
    Hessian-vector product $\\nabla^2 f(x)\\, v$ written by hand, used in place of
    autodiff of `value_fn` for every HVP (on coordinates it needs a metric, and the
    Newton system is then solved as on a manifold, on $G^{-1}\\nabla^2 f$). See
    [`trust_region`][geomhess.optim.trust_region] for when it pays, and for the
    `jax.custom_jvp` alternative.

    Damping is $\\lambda G$, a tensor, so the damped step stays invariant. Newton
    converges to the nearest critical point of any index; use
    [`trust_region`][geomhess.optim.trust_region] for global convergence to minima.
    It must come last in an `optax.chain`.

    Args:
        connection_or_manifold: the geometry: a connection, a metric (its Levi-Civita
            connection), a `Coordinate` manifold, or a manifold.
        damping: $\\lambda \\ge 0$.
        retraction: `"exp"` or `"second_order"`.
        dense_below: the largest params size solved densely on manifolds.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state
        [`NewtonState`][geomhess.optim.NewtonState].

    [^absil]: P.-A. Absil, R. Mahony and R. Sepulchre, *Optimization Algorithms on
        Matrix Manifolds*, Princeton, 2008, Algorithm 5 (Riemannian Newton).
    """
    check_retraction("newton", retraction)
    geometry = as_geometry("newton", connection_or_manifold)
    # An exactly-zero damping stays a Python number so that `newton_step` takes its
    # undamped path (which needs no metric).
    if not (isinstance(damping, (int, float)) and damping == 0):
        damping = as_hyperparameter(damping, "newton", "damping", "nonnegative")
    module = _Newton(geometry, damping, retraction, dense_below)
    return optax.GradientTransformationExtraArgs(module.init, module.update)
