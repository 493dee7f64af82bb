"""Invariant and naive sharpness of a loss during training (issue 14, part 3)."""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jaxtyping import Array, Float, Int

from .._core.checks import check_point
from ..linalg import (
    hessian_eigenvalues,
    hessian_trace,
    shape_operator_eigenvalues,
    shape_operator_trace,
)


class Sharpness(eqx.Module):
    """The invariant and the naive sharpness of a loss at one point.

    Attributes:
        trace: Hutch++ estimate of `tr(G^{-1} nabla^2 f)`, the invariant trace.
        trace_std_error: its standard error.
        eigenvalues: the `k` largest Ritz values of the shape operator
            `G^{-1} nabla^2 f` (Lanczos), largest first.
        residuals: their residual bounds (an eigenvalue lies within each).
        naive_trace: Hutch++ estimate of the calculus `tr(d^2 f)` (PyHessian's).
        naive_trace_std_error: its standard error.
        naive_eigenvalues: the `k` largest Ritz values of `d^2 f`.
        naive_residuals: their residual bounds.
    """

    trace: Float[Array, "*n"]
    trace_std_error: Float[Array, "*n"]
    eigenvalues: Float[Array, "*n k"]
    residuals: Float[Array, "*n k"]
    naive_trace: Float[Array, "*n"]
    naive_trace_std_error: Float[Array, "*n"]
    naive_eigenvalues: Float[Array, "*n k"]
    naive_residuals: Float[Array, "*n k"]


def sharpness(
    value_fn,
    metric,
    params,
    *,
    key,
    num_probes: int = 30,
    k: int = 1,
    num_iterations: int = 20,
    batch_size: int | None = None,
) -> Sharpness:
    """The invariant sharpness (of `G^{-1} nabla^2 f`) and the naive one (of `d^2 f`).

    The invariant trace and top eigenvalues are those of the shape operator, the
    same in every chart once `value_fn` and `metric` are carried to it; the naive
    ones are the calculus Hessian's, which a change of parameters rescales: under
    `psi = alpha theta` (`gh.charts.Scale(alpha)`) the Hessian is
    `alpha^{-2} d^2 f`, so the naive trace and eigenvalues are multiplied by
    `alpha^{-2}` while the invariant ones do not move. (Under Dinh's
    `(alpha W_1, alpha b_1, W_2 / alpha)` there is no single factor: the naive trace
    is `alpha^{-2} tr H_11 + alpha^2 tr H_22`.) With the same `key` in two charts
    related by a uniform `Scale`, the estimates are equal (invariant) and rescaled by
    exactly `alpha^{-2}` (naive) up to rounding, as the probes and Krylov spaces are
    the same.

    Traces by Hutch++ ([`shape_operator_trace`][geomhess.linalg.shape_operator_trace])
    and eigenvalues by Lanczos
    ([`shape_operator_eigenvalues`][geomhess.linalg.shape_operator_eigenvalues]).

    Args:
        value_fn: the loss `f(params)`, a scalar.
        metric: the metric in the coordinates of `params` (e.g. the Euclidean metric
            of a reference parametrization carried by `reparametrize`, or a
            `GaussNewton` metric).
        params: the point, any pytree of floating arrays of one dtype.
        key: a `jax.random` key (the same key for both halves, so that under a
            uniform `Scale` they use the same probes).
        num_probes: the Hutch++ budget per trace (at least 3).
        k: how many top eigenvalues.
        num_iterations: Lanczos steps per eigenvalue run (capped at `d`).
        batch_size: Hutch++ probes evaluated at once, default one (as in
            [`shape_operator_trace`][geomhess.linalg.shape_operator_trace]: at
            least the number of probes runs them all in one `vmap`, with no loop).

    Returns:
        A [`Sharpness`][geomhess.diagnostics.Sharpness]. Cost:
        `2 (num_probes + num_iterations)` Hessian-vector products (half of them
        covariant, each with a `raise_index`, for the invariant half; for a
        Euclidean metric carried by a linear chart that is about one more
        gradient each), i.e. with an HVP at about 2 to 4 gradients, roughly
        `4 to 8 (num_probes + num_iterations)` gradient evaluations.
    """
    trace_key, eig_key = jax.random.split(key)
    invariant = shape_operator_trace(
        value_fn,
        metric,
        params,
        key=trace_key,
        num_probes=num_probes,
        batch_size=batch_size,
    )
    naive = hessian_trace(
        value_fn, params, key=trace_key, num_probes=num_probes, batch_size=batch_size
    )
    top = shape_operator_eigenvalues(
        value_fn, metric, params, key=eig_key, k=k, num_iterations=num_iterations
    )
    naive_top = hessian_eigenvalues(
        value_fn, params, key=eig_key, k=k, num_iterations=num_iterations
    )
    return Sharpness(
        trace=invariant.estimate,
        trace_std_error=invariant.std_error,
        eigenvalues=top.eigenvalues,
        residuals=top.residuals,
        naive_trace=naive.estimate,
        naive_trace_std_error=naive.std_error,
        naive_eigenvalues=naive_top.eigenvalues,
        naive_residuals=naive_top.residuals,
    )


class SharpnessState(NamedTuple):
    """State of [`sharpness_monitor`][geomhess.diagnostics.sharpness_monitor].

    A ring buffer of the last `history` evaluations: evaluation `j` (at step
    `j * every`) is in slot `j % history`.

    Attributes:
        count: the number of updates so far (`int32`).
        steps: the step of each slot's evaluation, `-1` for a slot not yet written.
        log: a [`Sharpness`][geomhess.diagnostics.Sharpness] whose arrays have a
            leading `history` axis (NaN in slots not yet written).
    """

    count: Int[Array, ""]
    steps: Int[Array, " history"]
    log: Sharpness


class _SharpnessMonitor(eqx.Module):
    every: int = eqx.field(static=True)
    history: int = eqx.field(static=True)
    key: jax.Array
    metric: object
    num_probes: int = eqx.field(static=True)
    k: int = eqx.field(static=True)
    num_iterations: int = eqx.field(static=True)
    batch_size: int | None = eqx.field(static=True)

    def init(self, params):
        check_point("sharpness_monitor", params)
        dtype = jnp.result_type(*jtu.tree_leaves(params))

        def empty(*shape):
            return jnp.full((self.history, *shape), jnp.nan, dtype)

        log = Sharpness(
            empty(),
            empty(),
            empty(self.k),
            empty(self.k),
            empty(),
            empty(),
            empty(self.k),
            empty(self.k),
        )
        return SharpnessState(
            count=jnp.zeros([], jnp.int32),
            steps=jnp.full((self.history,), -1, jnp.int32),
            log=log,
        )

    def update(
        self, updates, state, params=None, *, value_fn=None, metric=None, **extra_args
    ):
        del extra_args
        caller = "sharpness_monitor"
        if params is None:
            raise ValueError(
                f"`{caller}`: `update` needs `params` (call "
                "`update(updates, state, params, value_fn=loss)`)."
            )
        if value_fn is None:
            raise ValueError(
                f"`{caller}`: the keyword argument `value_fn` is required, as for "
                "`optax.lbfgs`: call `update(grads, state, params, value_fn=f)`."
            )
        metric = self.metric if metric is None else metric
        if metric is None:
            raise ValueError(
                f"`{caller}`: no metric: pass `metric=` to `sharpness_monitor` or as "
                "a keyword argument of `update` (e.g. a `GaussNewton` on the batch)."
            )
        count = state.count
        slot = (count // self.every) % self.history

        def evaluate(operand):
            steps, log = operand
            result = sharpness(
                value_fn,
                metric,
                params,
                key=jax.random.fold_in(self.key, count),
                num_probes=self.num_probes,
                k=self.k,
                num_iterations=self.num_iterations,
                batch_size=self.batch_size,
            )
            log = jtu.tree_map(
                lambda buffer, value: buffer.at[slot].set(value.astype(buffer.dtype)),
                log,
                result,
            )
            return steps.at[slot].set(count), log

        steps, log = jax.lax.cond(
            count % self.every == 0,
            evaluate,
            lambda operand: operand,
            (state.steps, state.log),
        )
        return updates, SharpnessState(optax.safe_int32_increment(count), steps, log)


def sharpness_monitor(
    every: int,
    *,
    key,
    metric=None,
    history: int = 64,
    num_probes: int = 30,
    k: int = 1,
    num_iterations: int = 20,
    batch_size: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """An optax transformation that logs the invariant and naive sharpness every `every` steps.

    It passes `updates` through unchanged (put it anywhere in an `optax.chain`; it
    reads `params`, which is the point before the update) and, on steps
    `0, every, 2 every, ...` (a `jax.lax.cond` on the step count, so it is one
    compiled step function), computes [`sharpness`][geomhess.diagnostics.sharpness]
    at `params`: the Hutch++ trace and top Lanczos eigenvalues of the shape operator
    `G^{-1} nabla^2 f` and of the calculus Hessian. The results go in a ring buffer
    in the state ([`SharpnessState`][geomhess.diagnostics.SharpnessState]), a
    pytree that checkpoints with `equinox.tree_serialise_leaves`.

    `update(updates, state, params, *, value_fn, metric=None, **extra)`: `value_fn`
    (the loss at `params`, on the current batch) is required, as with `optax.lbfgs`;
    `metric` overrides the one given here (pass it when it depends on the batch, e.g.
    a `GaussNewton` metric). The probe key of evaluation at step `t` is
    `fold_in(key, t)`: deterministic, and the same in two runs of the same steps.

    Cost: on an evaluation step, `2 (num_probes + num_iterations)` Hessian-vector
    products (see `sharpness`), none on the others; amortized over `every` steps
    that is `2 (num_probes + num_iterations) / every` HVPs per step. With the
    defaults and `every=100`, one HVP per step on average, i.e. a few gradients'
    worth on one step in a hundred.

    Args:
        every: evaluate every `every` steps (a static int >= 1).
        key: a `jax.random` key.
        metric: the default metric (in the coordinates of `params`).
        history: the ring buffer's length.
        num_probes: the Hutch++ budget (>= 3).
        k: how many top eigenvalues.
        num_iterations: Lanczos steps.
        batch_size: Hutch++ probes evaluated at once.

    Returns:
        An `optax.GradientTransformationExtraArgs`.
    """
    caller = "sharpness_monitor"
    for name, value, minimum in (
        ("every", every, 1),
        ("history", history, 1),
        ("num_probes", num_probes, 3),
        ("k", k, 1),
        ("num_iterations", num_iterations, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(
                f"`{caller}`: `{name}` must be an int >= {minimum}, got {value!r}."
            )
    if k > num_iterations:
        raise ValueError(
            f"`{caller}`: `k={k}` exceeds `num_iterations={num_iterations}`."
        )
    module = _SharpnessMonitor(
        every, history, key, metric, num_probes, k, num_iterations, batch_size
    )
    return optax.GradientTransformationExtraArgs(module.init, module.update)
