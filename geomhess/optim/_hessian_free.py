"""An invariant Hessian-free (truncated Newton-CG) optimizer, on optax (Martens 2010)."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax

from .._core.checks import error_if
from ..connections import LeviCivita
from ..metrics import AbstractMetric
from . import _tree as mt
from ._first_order import as_hyperparameter
from ._geometry import CoordinateGeometry
from ._newton import check_value_fn
from ._riemannian import check_params
from ._trust_region import truncated_cg


class HessianFreeState(NamedTuple):
    """State of [`hessian_free`][geomhess.optim.hessian_free] (all arrays).

    Attributes:
        count: the number of updates so far (`int32`).
        damping: the Levenberg-Marquardt damping $\\lambda$ for the next update.
        value: $f$ at the params of the last update (NaN before the first).
        rho: the last reduction ratio $\\rho$ (NaN before the first update).
        accepted: whether the last step was accepted (`bool`).
        inner_steps_stop: why the last truncated CG stopped (the stop codes of
            `trust_region`'s truncated CG: 1 negative curvature, 2 trust radius,
            3 converged, 4 iteration cap, 5 zero gradient).
    """

    count: jax.Array
    damping: jax.Array
    value: jax.Array
    rho: jax.Array
    accepted: jax.Array
    inner_steps_stop: jax.Array


def _check_positive(name, value, *, strict):
    if isinstance(value, (int, float)):
        bad = not (value > 0) if strict else not (value >= 0)
        if bad:
            raise ValueError(
                f"`hessian_free`: `{name}` must be {'positive' if strict else 'non-negative'}, "
                f"got {value}."
            )


class _HessianFree(eqx.Module):
    metric: AbstractMetric | None
    damping: Any
    radius: Any
    kappa: Any
    theta: Any
    increase: Any
    decrease: Any
    min_damping: Any
    min_inner: int = eqx.field(static=True)
    max_inner: int = eqx.field(static=True)

    def init(self, params):
        dtype = mt.point_dtype(params)
        nan = jnp.asarray(jnp.nan, dtype)
        return HessianFreeState(
            count=jnp.zeros([], jnp.int32),
            damping=jnp.asarray(self.damping, dtype),
            value=nan,
            rho=nan,
            accepted=jnp.zeros([], bool),
            inner_steps_stop=jnp.zeros([], jnp.int32),
        )

    def update(
        self,
        updates,
        state,
        params=None,
        *,
        value_fn=None,
        metric=None,
        curvature_fn=None,
        hvp_fn=None,
        **extra_args,
    ):
        del updates, extra_args
        check_params("hessian_free", params)
        check_value_fn("hessian_free", value_fn)
        metric = self.metric if metric is None else metric
        if not isinstance(metric, AbstractMetric):
            raise ValueError(
                "`hessian_free`: no metric: pass one to `hessian_free(metric)` or to "
                "`update(..., metric=...)` (e.g. `gh.metrics.GaussNewton(model, "
                f"batch, ...)`), got {type(metric).__name__}."
            )
        geometry = CoordinateGeometry(LeviCivita(metric), metric)
        x = params
        dtype = mt.point_dtype(x)
        cast = lambda value: jnp.asarray(value, dtype)
        fx, egrad = jax.value_and_grad(value_fn)(x)
        fx = cast(fx)
        fx = error_if(
            fx,
            ~jnp.isfinite(fx),
            "`hessian_free`: the loss `value_fn(params)` is not finite (NaN or inf) "
            "at the current params; check the data, the initialization and the "
            "learning problem before the step.",
        )
        egrad = mt.tree_cast_like(egrad, x)
        if curvature_fn is None:
            curvature_fn, curvature_grad = value_fn, egrad
        else:
            # The covariant Hessian needs the gradient of the same function whose
            # second derivatives it takes (the connection term Gamma(v, .) df).
            curvature_grad = mt.tree_cast_like(jax.grad(curvature_fn)(x), x)
        rgrad = geometry.gradient(x, egrad)
        rgrad = mt.tree_cast_like(rgrad, x)
        hessian = geometry.hessian(
            curvature_fn, x, curvature_grad, hvp_fn, caller="hessian_free"
        )
        damping = state.damping

        # G^{-1} (nabla^2 f + lambda G) v: CG on it in the G inner product is CG on
        # (nabla^2 f + lambda G) preconditioned by G^{-1}, which is invariant.
        def operator(v):
            return mt.tree_lincomb(1, mt.tree_cast_like(hessian(v), x), damping, v)

        eta, A_eta, stop = truncated_cg(
            geometry,
            x,
            rgrad,
            operator,
            cast(self.radius),
            kappa=cast(self.kappa),
            theta=cast(self.theta),
            min_inner=self.min_inner,
            max_inner=self.max_inner,
        )
        # m(s) = g.s + s.(H + lambda G) s / 2 = <G^{-1} g, s>_G + <s, A s>_G / 2.
        model = cast(geometry.inner(x, rgrad, eta)) + 0.5 * cast(
            geometry.inner(x, eta, A_eta)
        )
        candidate = jtu.tree_map(lambda a, b: (a + b).astype(a.dtype), x, eta)
        f_new = cast(value_fn(candidate))
        rho = (f_new - fx) / model
        rho = jnp.where(jnp.isfinite(rho), rho, -jnp.inf)
        new_damping = jnp.where(
            rho < 0.25,
            damping * cast(self.increase),
            jnp.where(rho > 0.75, damping * cast(self.decrease), damping),
        )
        new_damping = jnp.maximum(new_damping, cast(self.min_damping))
        accept = jnp.isfinite(f_new) & (f_new < fx)
        step = jtu.tree_map(lambda s: jnp.where(accept, s, jnp.zeros_like(s)), eta)
        new_state = HessianFreeState(
            optax.safe_int32_increment(state.count),
            new_damping,
            fx,
            rho,
            accept,
            stop,
        )
        return step, new_state


def hessian_free(
    metric: AbstractMetric | None = None,
    *,
    damping: float = 1.0,
    radius: float = 1e3,
    kappa: float = 1e-2,
    theta: float = 1.0,
    min_inner: int = 1,
    max_inner: int = 50,
    increase: float = 1.5,
    decrease: float = 2.0 / 3.0,
    min_damping: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Invariant Hessian-free optimization: truncated CG on $(\\nabla^2 f + \\lambda G)
    s = -\\partial f$ with Levenberg-Marquardt damping (Martens 2010[^martens]).

    Each `update(grads, state, params, *, value_fn, metric=None, curvature_fn=None,
    hvp_fn=None)` is one outer step at $x$ = `params`:

    1. $f(x)$ and $\\partial f(x)$ from `value_fn` (`grads` is not used), an error
       (`equinox.error_if`) when $f(x)$ is not finite;
    2. truncated CG (the Steihaug-Toint solver of
       [`trust_region`][geomhess.optim.trust_region], in a metric ball of radius
       `radius`) on $G^{-1}(\\nabla^2 f + \\lambda G) s = -G^{-1}\\partial f$ **in the
       $G$ inner product**, i.e. CG on $(\\nabla^2 f + \\lambda G)s = -\\partial f$
       preconditioned by $G^{-1}$. $\\nabla^2 f$ is the covariant Hessian of the
       metric's Levi-Civita connection (`covariant_from_euclidean_hvp`: one
       Euclidean HVP and one connection contraction per CG step);
    3. the ratio $\\rho = (f(x+s) - f(x)) / m(s)$ with $m(s) = \\partial f\\cdot s +
       \\tfrac12 s\\cdot(\\nabla^2 f + \\lambda G)s$, from quantities CG returns (one
       extra loss evaluation); $\\lambda \\leftarrow$ `increase` $\\lambda$ when
       $\\rho < 1/4$, `decrease` $\\lambda$ when $\\rho > 3/4$ (Martens' 3/2, 2/3);
    4. the step is **rejected** (`updates` zero, $\\lambda$ still increased) when it
       does not decrease the loss: $f(x+s) \\ge f(x)$ or not finite.

    Extra arguments (optax's `extra_args` convention, as `optax.lbfgs` takes
    `value_fn`): `value_fn(params)` is the (gradient-batch) loss, required;
    `metric` overrides the metric given at construction (build it from the
    curvature batch, e.g. `GaussNewton(model, x_curv, ...)`; it is a pytree, so a
    new batch each step does not recompile); `curvature_fn(params)` is the loss on
    the curvature batch whose Hessian CG uses (default `value_fn`), so the
    curvature batch can be smaller than the gradient batch (Martens); `hvp_fn(x,
    v)` a hand-written Euclidean HVP of `curvature_fn`.

    **Invariance.** Let $\\psi = \\phi(\\theta)$ be a chart. Run in $\\psi$ with the
    loss $f\\circ\\phi^{-1}$ and the metric carried as a tensor ($J^{-T} G J^{-1}$,
    e.g. `metric.reparametrize(chart)`, or a `GaussNewton`/`Fisher` *without* its
    `damping I` term of the model written in $\\psi$): the CG iterates are
    $J s_k$, since preconditioned CG with preconditioner $G^{-1}$ is invariant,
    while plain CG on $\\nabla^2 f + \\lambda G$ (Euclidean inner product) is not
    under a non-orthogonal chart. The update adds $s$ to $x$ (as Martens' HF does)
    instead of following the exponential map: for an **affine** chart (Dinh's
    `Scale`, a per-layer affine map) $\\phi(x + s) = \\phi(x) + J s$ exactly, so the
    iterates are invariant; for a non-linear chart only to first order. Which
    metrics give which invariance: a tensor (reparametrized) metric, all charts; a
    `GaussNewton`/`Fisher` with `damping > 0` built in the new parameters, only
    orthogonal linear charts (the `damping I` term is not a tensor); a fixed
    `Diagonal` or `Euclidean`, only charts that preserve it (a `Diagonal` carried
    through a diagonal chart stays diagonal). `Euclidean` gives the naive
    (non-invariant) Newton-CG.

    **Sharding.** The step is pure JAX on pytrees: with params replicated and the
    batch sharded over a `jax.sharding.Mesh` (data parallel), `jit` inserts the
    reductions, and nothing here changes. Multi-host: call
    `jax.distributed.initialize()` on every process, build the mesh from
    `jax.devices()` (all hosts' devices), make global batch arrays with
    `jax.make_array_from_process_local_data`, and run the same jitted step on every
    process; the scalars (`rho`, the acceptance) are then global, so every host
    takes the same branch.

    Cost per step: one gradient, $k \\le$ `max_inner` covariant HVPs (each also
    one `raise_index` of the metric: CG inside a `GaussNewton`), one loss
    evaluation. Must come last in an `optax.chain`.

    Args:
        metric: the metric $G$ (`GaussNewton`, `Fisher`, `Diagonal`, a user metric),
            or `None` to pass one to every `update`.
        damping: the initial $\\lambda \\ge 0$.
        radius: the trust radius of truncated CG in the metric's norm.
        kappa: CG stops when the residual falls below $\\|r_0\\|\\min(\\|r_0\\|^\\theta,
            \\kappa)$.
        theta: the exponent of that rule.
        min_inner: the least number of CG steps.
        max_inner: the most CG steps $k$.
        increase: the factor on $\\lambda$ when $\\rho < 1/4$ (`> 1`).
        decrease: the factor on $\\lambda$ when $\\rho > 3/4$ (in `(0, 1]`).
        min_damping: a floor for $\\lambda$.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state
        [`HessianFreeState`][geomhess.optim.HessianFreeState].

    Raises:
        ValueError: a negative `damping`, a non-positive `radius`, bad factors,
            a missing `value_fn` or metric.

    [^martens]: J. Martens, *Deep learning via Hessian-free optimization*, ICML 2010.
    """
    if metric is not None and not isinstance(metric, AbstractMetric):
        raise TypeError(
            "`hessian_free`: `metric` must be a metric (e.g. `gh.metrics.GaussNewton`)"
            f" or None, got {type(metric).__name__}."
        )
    _check_positive("damping", damping, strict=False)
    _check_positive("min_damping", min_damping, strict=False)
    _check_positive("radius", radius, strict=True)
    if isinstance(increase, (int, float)) and not increase > 1:
        raise ValueError(f"`hessian_free`: `increase` must be > 1, got {increase}.")
    if isinstance(decrease, (int, float)) and not 0 < decrease <= 1:
        raise ValueError(
            f"`hessian_free`: `decrease` must be in (0, 1], got {decrease}."
        )
    if not (isinstance(max_inner, int) and max_inner >= min_inner >= 0):
        raise ValueError(
            "`hessian_free`: need integers `max_inner >= min_inner >= 0`, got "
            f"{max_inner}, {min_inner}."
        )
    module = _HessianFree(
        metric,
        as_hyperparameter(damping, "hessian_free", "damping", "nonnegative"),
        as_hyperparameter(radius, "hessian_free", "radius", "positive"),
        as_hyperparameter(kappa, "hessian_free", "kappa", "below_one"),
        as_hyperparameter(theta, "hessian_free", "theta", "nonnegative"),
        as_hyperparameter(increase, "hessian_free", "increase", "above_one"),
        as_hyperparameter(decrease, "hessian_free", "decrease", "at_most_one"),
        as_hyperparameter(min_damping, "hessian_free", "min_damping", "nonnegative"),
        min_inner,
        max_inner,
    )
    return optax.GradientTransformationExtraArgs(module.init, module.update)
