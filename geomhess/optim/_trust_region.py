"""Riemannian trust-region method with truncated CG (Steihaug-Toint), on optax."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax

from .._core.checks import check_finite, require_finite
from . import _tree as mt
from ._first_order import as_hyperparameter
from ._geometry import (
    CoordinateGeometry,
    ManifoldGeometry,
    as_geometry,
    check_retraction,
    total_size,
)
from ._newton import check_value_fn
from ._riemannian import check_params, check_state


class TrustRegionState(NamedTuple):
    """State of [`trust_region`][geomhess.optim.trust_region].

    The objective's value and gradient at the point the last update moved to are
    kept, so the next update does not evaluate them again: it checks that its
    `params` are that point (bit for bit, as `optax.apply_updates` gives them), and
    evaluates `value_fn` there otherwise (first call, or params changed in between).

    Attributes:
        count: the number of outer iterations so far (`int32`).
        radius: the trust-region radius $\\Delta$, measured in the metric.
        point: the point where `value`, `egrad` and `grad_norm` were evaluated (NaN
            before the first update).
        value: $f$ at `point`.
        egrad: the Euclidean gradient of $f$ at `point`.
        grad_norm: the Riemannian gradient norm $\\|\\operatorname{grad} f\\|$ at
            `point` (a convergence test can read it from the state).
    """

    count: jax.Array
    radius: jax.Array
    point: Any
    value: jax.Array
    egrad: Any
    grad_norm: jax.Array


# Why the inner solver stopped (pymanopt's names).
RUNNING, NEGATIVE_CURVATURE, EXCEEDED_RADIUS, CONVERGED, MAX_INNER, ZERO_GRADIENT = (
    range(6)
)


def _where(condition, a, b):
    return jtu.tree_map(lambda u, v: jnp.where(condition, u, v), a, b)


def truncated_cg(
    geometry, x, rgrad, hess, radius, *, kappa, theta, min_inner, max_inner
):
    """Steihaug-Toint truncated CG: `min <g, eta> + <eta, H eta> / 2, |eta| <= radius`.

    Inner products and norms are the metric's at `x`, so the step and the radius are
    invariant under reparametrization. Stops on negative curvature or at the boundary
    (returning the boundary point along the current direction), or when the residual
    has decreased by `min(|r0|^theta, kappa)` (superlinear convergence for `theta=1`).

    Returns:
        `(eta, H eta, stop)` with `stop` one of the module's stop codes.
    """
    dtype = mt.point_dtype(x)
    inner = lambda u, v: jnp.asarray(geometry.inner(x, u, v), dtype)
    zero = jtu.tree_map(jnp.zeros_like, rgrad)
    r_r = inner(rgrad, rgrad)
    norm_r0 = jnp.sqrt(r_r)
    radius2 = radius * radius
    target = norm_r0 * jnp.minimum(norm_r0**theta, kappa)
    initial = (
        jnp.zeros([], jnp.int32),
        zero,  # eta
        zero,  # H eta
        rgrad,  # r
        mt.tree_scale(-1, rgrad),  # delta
        jnp.zeros([], dtype),  # <eta, eta>
        jnp.zeros([], dtype),  # <eta, delta>
        r_r,  # <delta, delta>
        r_r,  # <r, r>
        jnp.where(norm_r0 == 0, ZERO_GRADIENT, RUNNING).astype(jnp.int32),
    )

    def cond(carry):
        return carry[-1] == RUNNING

    def body(carry):
        j, eta, Heta, r, delta, e_Pe, e_Pd, d_Pd, z_r, _ = carry
        Hdelta = hess(delta)
        d_Hd = inner(delta, Hdelta)
        alpha = z_r / d_Hd
        e_Pe_new = e_Pe + 2 * alpha * e_Pd + alpha * alpha * d_Pd
        negative = d_Hd <= 0
        boundary = negative | (e_Pe_new >= radius2)
        # The step to the boundary along `delta`: the positive root of
        # |eta + tau delta|^2 = radius^2.
        tau = (-e_Pd + jnp.sqrt(e_Pd * e_Pd + d_Pd * (radius2 - e_Pe))) / d_Pd
        eta_b = mt.tree_lincomb(1, eta, tau, delta)
        Heta_b = mt.tree_lincomb(1, Heta, tau, Hdelta)
        eta_i = mt.tree_lincomb(1, eta, alpha, delta)
        Heta_i = mt.tree_lincomb(1, Heta, alpha, Hdelta)
        # The residual stays tangent (a sum of tangent vectors); only the search
        # direction is projected against drift, as pymanopt does.
        r_i = mt.tree_lincomb(1, r, alpha, Hdelta)
        r_r = inner(r_i, r_i)
        converged = (j >= min_inner) & (jnp.sqrt(r_r) <= target)
        beta = r_r / z_r
        delta_i = geometry.to_tangent(x, mt.tree_lincomb(-1, r_i, beta, delta))
        e_Pd_i = beta * (e_Pd + alpha * d_Pd)
        d_Pd_i = r_r + beta * beta * d_Pd
        stop = jnp.where(
            boundary,
            jnp.where(negative, NEGATIVE_CURVATURE, EXCEEDED_RADIUS),
            jnp.where(
                converged, CONVERGED, jnp.where(j + 1 >= max_inner, MAX_INNER, RUNNING)
            ),
        ).astype(jnp.int32)
        return (
            j + 1,
            _where(boundary, eta_b, eta_i),
            _where(boundary, Heta_b, Heta_i),
            r_i,
            delta_i,
            e_Pe_new,
            e_Pd_i,
            d_Pd_i,
            r_r,
            stop,
        )

    final = jax.lax.while_loop(cond, body, initial)
    return final[1], final[2], final[-1]


class _TrustRegion(eqx.Module):
    geometry: CoordinateGeometry | ManifoldGeometry
    initial_radius: Any
    max_radius: Any
    acceptance: Any
    kappa: Any
    theta: Any
    retraction: str = eqx.field(static=True)
    min_inner: int = eqx.field(static=True)
    max_inner: int | None = eqx.field(static=True)

    def init(self, params):
        dtype = mt.point_dtype(params)
        nan = jnp.asarray(jnp.nan, dtype)
        return TrustRegionState(
            count=jnp.zeros([], jnp.int32),
            radius=jnp.asarray(self.initial_radius, dtype),
            point=jtu.tree_map(lambda a: jnp.full_like(a, jnp.nan), params),
            value=nan,
            egrad=jtu.tree_map(jnp.zeros_like, params),
            grad_norm=nan,
        )

    def _evaluate(self, value_fn, x):
        """`(f(x), egrad, grad norm)` in the dtype of `x`."""
        dtype = mt.point_dtype(x)
        fx, egrad = jax.value_and_grad(value_fn)(x)
        egrad = mt.tree_cast_like(egrad, x)
        rgrad = self._rgrad(x, egrad)
        norm = jnp.sqrt(jnp.asarray(self.geometry.inner(x, rgrad, rgrad), dtype))
        return jnp.asarray(fx, dtype), egrad, norm

    def _rgrad(self, x, egrad):
        geometry = self.geometry
        return geometry.to_tangent(x, mt.tree_cast_like(geometry.gradient(x, egrad), x))

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
        check_params("trust_region", params)
        check_value_fn("trust_region", value_fn)
        check_state("trust_region", "point", state.point, params)
        if isinstance(self.geometry, CoordinateGeometry):
            self.geometry.require_metric("trust_region")
        geometry = self.geometry
        x = params
        dtype = mt.point_dtype(x)
        cast = lambda value: jnp.asarray(value, dtype)
        same = jnp.all(
            jnp.stack(
                [
                    jnp.array_equal(a, b)
                    for a, b in zip(
                        jtu.tree_leaves(x), jtu.tree_leaves(state.point), strict=True
                    )
                ]
            )
        )
        fx, egrad, norm = jax.lax.cond(
            same,
            lambda: (state.value, state.egrad, state.grad_norm),
            lambda: self._evaluate(value_fn, x),
        )
        x = check_finite("trust_region", x)
        # A NaN loss at the iterate would reject every step and shrink the radius
        # forever; a NaN at a candidate only rejects that candidate.
        fx, egrad = require_finite(
            "trust_region", (fx, egrad), "the loss or its gradient"
        )
        rgrad = self._rgrad(x, egrad)
        hessian = geometry.hessian(value_fn, x, egrad, hvp_fn, caller="trust_region")
        max_inner = total_size(x) if self.max_inner is None else self.max_inner
        eta, Heta, stop = truncated_cg(
            geometry,
            x,
            rgrad,
            lambda v: mt.tree_cast_like(hessian(v), x),
            state.radius,
            kappa=cast(self.kappa),
            theta=cast(self.theta),
            min_inner=self.min_inner,
            max_inner=max_inner,
        )
        proposal = geometry.move(x, eta, self.retraction)
        # The point the caller will hold if the step is accepted, exactly as
        # `optax.apply_updates(x, proposal - x)` computes it: its value and gradient
        # are kept in the state for the next update.
        candidate = jtu.tree_map(
            lambda a, b: (a + (b - a).astype(a.dtype)).astype(a.dtype), x, proposal
        )
        f_candidate, g_candidate, norm_candidate = self._evaluate(value_fn, candidate)
        # The ratio of actual to predicted decrease, both regularized by a few
        # hundred ulp of `f` (as pymanopt does) so that rounding near convergence
        # neither rejects good steps nor divides 0 by 0.
        regularization = 1e3 * jnp.finfo(dtype).eps * jnp.maximum(1, jnp.abs(fx))
        actual = fx - f_candidate + regularization
        predicted = (
            -cast(geometry.inner(x, rgrad, eta))
            - 0.5 * cast(geometry.inner(x, eta, Heta))
            + regularization
        )
        rho = actual / predicted
        model_decreased = predicted >= 0
        shrink = (rho < 0.25) | ~model_decreased | jnp.isnan(rho)
        grow = (rho > 0.75) & ((stop == NEGATIVE_CURVATURE) | (stop == EXCEEDED_RADIUS))
        radius = jnp.where(
            shrink,
            state.radius / 4,
            jnp.where(
                grow, jnp.minimum(2 * state.radius, cast(self.max_radius)), state.radius
            ),
        )
        accept = model_decreased & (rho > cast(self.acceptance))
        new_params = _where(accept, proposal, x)
        count = optax.safe_int32_increment(state.count)
        new_state = TrustRegionState(
            count,
            radius,
            _where(accept, candidate, x),
            jnp.where(accept, f_candidate, fx),
            _where(accept, g_candidate, egrad),
            jnp.where(accept, norm_candidate, norm),
        )
        return mt.difference(new_params, x), new_state


def trust_region(
    manifold_or_connection,
    initial_radius: float = 1.0,
    max_radius: float | None = None,
    *,
    acceptance: float = 0.1,
    kappa: float = 0.1,
    theta: float = 1.0,
    min_inner: int = 1,
    max_inner: int | None = None,
    retraction: str = "second_order",
) -> optax.GradientTransformationExtraArgs:
    """Riemannian trust-region method with truncated CG (Absil, Baker and Gallivan).

    Each `update(grads, state, params, *, value_fn, **extra)` is one outer iteration
    (as pymanopt's `TrustRegions`[^abg]): truncated CG (Steihaug-Toint) minimizes the
    quadratic model $f(x) + \\langle g, \\eta\\rangle + \\tfrac12\\langle \\eta,
    \\operatorname{Hess} f(x)[\\eta]\\rangle$ in the ball $\\|\\eta\\|_x \\le \\Delta$;
    the step is accepted when the actual-to-predicted decrease ratio $\\rho$ exceeds
    `acceptance`, and $\\Delta$ shrinks by 4 when $\\rho < 1/4$ and doubles (up to
    `max_radius`) when $\\rho > 3/4$ and the step reached the boundary. `updates` is
    zero on a rejected step. `value_fn` (the objective) is keyword-only and required;
    `grads` is not used.

    The Hessian-vector products inside truncated CG dominate the cost. By default
    they are forward-over-reverse autodiff of `value_fn`, which for a quadratic form
    such as $x^\\top A x$ costs *two* products with $A$ ($A v$ and $A^\\top v$, since
    JAX does not know $A$ is symmetric). Two ways to make it one:

    - pass the keyword argument `hvp_fn(x, v)`, returning the Euclidean
      Hessian-vector product $\\nabla^2 f(x)\\, v$ (in the coordinates of `params`),
      next to `value_fn`: `update(grads, state, params, value_fn=f, hvp_fn=h)`, e.g.
      `h = lambda x, v: 2 * (A @ v)`. It is used for every HVP; the gradient still
      comes from `value_fn`.
    - or give the objective hand-written derivatives with `jax.custom_jvp`: a rule
      that returns `2 * (A @ x) @ v` as the tangent of `x @ (A @ x)` makes both the
      gradient and the HVP of autodiff cost one product with $A$ each.

    The state keeps $f$, its gradient and the gradient norm at the point the update
    moved to, so an outer iteration evaluates `value_fn` and its gradient once, at
    the proposed point (see [`TrustRegionState`][geomhess.optim.TrustRegionState]).

    The radius, the inner products of truncated CG and the Hessian (the covariant
    Hessian with one index raised, or the Riemannian Hessian of a manifold) are all
    the metric's, so the iterates are invariant under reparametrization (with
    `retraction="exp"` exactly; `"second_order"` agrees to second order). The state
    holds the radius. Must come last in an `optax.chain`.

    Args:
        manifold_or_connection: a manifold, a metric, a Levi-Civita connection, or a
            `Coordinate` manifold (a metric is required).
        initial_radius: $\\Delta_0$.
        max_radius: $\\bar\\Delta$ (default `8 * initial_radius`).
        acceptance: $\\rho'$, the least ratio for accepting a step.
        kappa: truncated CG stops when the residual falls below
            $\\|r_0\\| \\min(\\|r_0\\|^\\theta, \\kappa)$.
        theta: the exponent in that stopping rule ($\\theta = 1$: quadratic local
            convergence).
        min_inner: the least number of CG iterations.
        max_inner: the most CG iterations (default: the number of entries of the
            params).
        retraction: `"exp"` (geodesics) or `"second_order"` (`x + eta -
            Gamma(eta, eta) / 2` on coordinates, `manifold.retract` on manifolds).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state
        [`TrustRegionState`][geomhess.optim.TrustRegionState].

    [^abg]: P.-A. Absil, C. G. Baker and K. A. Gallivan, *Trust-region methods on
        Riemannian manifolds*, Found. Comput. Math. 7 (2007); Absil, Mahony and
        Sepulchre, *Optimization Algorithms on Matrix Manifolds*, Algorithms 10-11.
    """
    check_retraction("trust_region", retraction)
    geometry = as_geometry("trust_region", manifold_or_connection)
    as_hyperparameter(initial_radius, "trust_region", "initial_radius", "positive")
    if max_radius is None:
        max_radius = 8 * initial_radius
    if (
        isinstance(max_radius, (int, float))
        and isinstance(initial_radius, (int, float))
        and not max_radius >= initial_radius
    ):
        raise ValueError(
            f"`trust_region`: `max_radius` ({max_radius}) must be at least "
            f"`initial_radius` ({initial_radius})."
        )
    module = _TrustRegion(
        geometry,
        as_hyperparameter(initial_radius, "trust_region", "initial_radius", "positive"),
        as_hyperparameter(max_radius, "trust_region", "max_radius", "positive"),
        as_hyperparameter(acceptance, "trust_region", "acceptance", "below_one"),
        as_hyperparameter(kappa, "trust_region", "kappa", "below_one"),
        as_hyperparameter(theta, "trust_region", "theta", "nonnegative"),
        retraction,
        min_inner,
        max_inner,
    )
    return optax.GradientTransformationExtraArgs(module.init, module.update)
