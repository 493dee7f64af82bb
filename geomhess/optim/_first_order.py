"""Riemannian SGD and Adam with vector transport of their moments (Bécigneul-Ganea)."""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax

from .._core.checks import require_finite
from . import _tree as mt
from ._moment import MomentRule, moment_step
from ._riemannian import check_params, check_stabilize_every, check_state, stabilize


class RSGDState(NamedTuple):
    """State of [`rsgd`][geomhess.optim.rsgd].

    Attributes:
        count: the number of updates so far (`int32`).
        momentum: the momentum buffer, a tangent vector at the current params (shaped
            like them), or `None` without momentum.
    """

    count: jax.Array
    momentum: Any


class RAdamState(NamedTuple):
    """State of [`radam`][geomhess.optim.radam].

    Attributes:
        count: the number of updates so far (`int32`).
        mu: the first moment, a tangent vector at the current params (transported
            along each step).
        nu: the second moment: a scalar per manifold leaf (the squared Riemannian norm
            of the gradient), and an array per parameter for `None` (Euclidean) leaves.
    """

    count: jax.Array
    mu: Any
    nu: Any


# name -> (test, what the message says it must be)
_RULES = {
    "positive": (lambda v: v > 0, "> 0"),
    "nonnegative": (lambda v: v >= 0, ">= 0"),
    "below_one": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "above_one": (lambda v: v > 1, "> 1"),
    "at_most_one": (lambda v: 0 < v <= 1, "in (0, 1]"),
}


def as_hyperparameter(value, caller: str = "", name: str = "", rule: str | None = None):
    """A number becomes a 0-d array (so a new value does not recompile); a schedule
    (a callable of the step count) is kept as it is.

    A concrete number is checked: finite, and within `rule` (a key of `_RULES`), so
    that a negative learning rate or `b1 = 1` is refused when the optimizer is made
    instead of turning into a silent ascent or a division by zero. Traced values and
    schedules are not checked.
    """
    if value is None or isinstance(value, Callable):
        return value
    array = jnp.asarray(value)
    if rule is not None and not isinstance(array, jax.core.Tracer):
        number = np.asarray(array)
        test, must = _RULES[rule]
        if number.ndim != 0 or not np.isfinite(number) or not test(number):
            raise ValueError(
                f"`{caller}`: `{name}` must be a finite number {must}, got {value!r}."
            )
    return array


def evaluate(value, count):
    """A hyperparameter's value at step `count` (schedules are called)."""
    return value(count) if isinstance(value, Callable) else value


class _RSGD(eqx.Module):
    learning_rate: Any
    manifold: Any
    momentum: Any
    nesterov: bool = eqx.field(static=True)
    stabilize_every: int | None = eqx.field(static=True)

    def init(self, params):
        mt.split("rsgd", self.manifold, params)
        buffer = None if self.momentum is None else jtu.tree_map(jnp.zeros_like, params)
        return RSGDState(count=jnp.zeros([], jnp.int32), momentum=buffer)

    def update(self, updates, state, params=None, **extra_args):
        del extra_args
        check_params("rsgd", params)
        if self.momentum is not None:
            check_state("rsgd", "momentum", state.momentum, params)
        treedef, manifolds, xs = mt.split("rsgd", self.manifold, params)
        gs = mt.leaves_of(treedef, require_finite("rsgd", updates, "the gradient"))
        lr = evaluate(self.learning_rate, state.count)
        bufs = (
            [None] * len(xs)
            if self.momentum is None
            else mt.leaves_of(treedef, state.momentum)
        )
        if self.momentum is None:
            rule = MomentRule(0, 0, 0, 1, lambda _: (lr, None))
        elif self.nesterov:
            rule = MomentRule(self.momentum, 1, self.momentum, 1, lambda _: (lr, None))
        else:
            rule = MomentRule(self.momentum, 1, 1, 0, lambda _: (lr, None))
        new_points, new_bufs = [], []
        for m, x, g, buf in zip(manifolds, xs, gs, bufs, strict=True):
            new_x, buf, _ = moment_step(m, x, g, buf, rule)
            new_points.append(new_x)
            new_bufs.append(buf)
        count = optax.safe_int32_increment(state.count)
        if self.stabilize_every is not None:
            new_points = stabilize(manifolds, new_points, count, self.stabilize_every)
        new_params = treedef.unflatten(new_points)
        momentum = None if self.momentum is None else treedef.unflatten(new_bufs)
        return mt.difference(new_params, params), RSGDState(count, momentum)


class _RAdam(eqx.Module):
    learning_rate: Any
    manifold: Any
    b1: Any
    b2: Any
    eps: Any
    stabilize_every: int | None = eqx.field(static=True)

    def init(self, params):
        treedef, manifolds, xs = mt.split("radam", self.manifold, params)
        mu = jtu.tree_map(jnp.zeros_like, params)
        nu = treedef.unflatten(
            [
                jtu.tree_map(jnp.zeros_like, x)
                if m is None
                else jnp.zeros([], mt.point_dtype(x))
                for m, x in zip(manifolds, xs, strict=True)
            ]
        )
        return RAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

    def update(self, updates, state, params=None, **extra_args):
        del extra_args
        check_params("radam", params)
        check_state("radam", "mu", state.mu, params)
        treedef, manifolds, xs = mt.split("radam", self.manifold, params)
        gs = mt.leaves_of(treedef, require_finite("radam", updates, "the gradient"))
        mus = mt.leaves_of(treedef, state.mu)
        nus = mt.leaves_of(treedef, state.nu)
        count = optax.safe_int32_increment(state.count)
        lr = evaluate(self.learning_rate, state.count)
        new_points, new_mus, new_nus = [], [], []
        for m, x, g, mu, nu in zip(manifolds, xs, gs, mus, nus, strict=True):
            dtype = mt.point_dtype(x)
            b1 = jnp.asarray(self.b1, dtype)
            b2 = jnp.asarray(self.b2, dtype)
            eps = jnp.asarray(self.eps, dtype)
            t = count.astype(dtype)
            step_size = jnp.asarray(lr, dtype) / (1 - b1**t)
            if m is None:
                # Euclidean leaves keep Adam's per-coordinate second moment (geoopt's
                # `component_inner`), so `radam` reduces to Adam on them.
                g = mt.tree_cast_like(g, x)
                mu = mt.tree_lincomb(b1, mu, 1 - b1, g)
                nu = mt.tree_lincomb(b2, nu, 1 - b2, jtu.tree_map(jnp.square, g))
                correction = 1 / (1 - b2**t)
                denom = jtu.tree_map(jnp.sqrt, mt.tree_scale(correction, nu))
                direction = jtu.tree_map(jnp.divide, mu, mt.tree_add_scalar(denom, eps))
                new_x = mt.tree_add(x, mt.tree_scale(-step_size, direction))
            else:

                def length(rgrad_sq, nu=nu, b2=b2, t=t, eps=eps, step_size=step_size):
                    nu = b2 * nu + (1 - b2) * rgrad_sq
                    return step_size / (jnp.sqrt(nu / (1 - b2**t)) + eps), nu

                rule = MomentRule(b1, 1 - b1, 1, 0, length)
                new_x, mu, nu = moment_step(m, x, g, mu, rule)
            new_points.append(new_x)
            new_mus.append(mt.tree_cast_like(mu, x))
            new_nus.append(nu)
        if self.stabilize_every is not None:
            new_points = stabilize(manifolds, new_points, count, self.stabilize_every)
        new_params = treedef.unflatten(new_points)
        state = RAdamState(
            count, treedef.unflatten(new_mus), treedef.unflatten(new_nus)
        )
        return mt.difference(new_params, params), state


def rsgd(
    learning_rate: optax.ScalarOrSchedule,
    manifold,
    momentum: float | None = None,
    nesterov: bool = False,
    *,
    stabilize_every: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Riemannian SGD, with momentum carried by vector transport.

    With Riemannian gradient $g_t$ at $x_t$ and momentum $\\beta$:
    $m_t = \\beta\\, \\mathcal{T}(m_{t-1}) + g_t$, the direction $d_t = m_t$ (or
    $g_t + \\beta m_t$ with Nesterov), and
    $(x_{t+1}, \\mathcal{T}(m_t)) =
    \\mathrm{retract\\_transport}(x_t, -\\eta_t d_t, m_t)$: the momentum moves with the
    point into the new tangent space (Bécigneul and Ganea[^bg], as geoopt's
    `RiemannianSGD`). Without momentum it is plain Riemannian gradient descent with
    the manifold's retraction.

    Composition: must come **last** in an `optax.chain` (after e.g.
    `optax.clip_by_global_norm`); its updates are displacements `x' - x`, not
    gradients. The updates land on the manifold up to rounding (see
    [`riemannian`][geomhess.optim.riemannian]; `stabilize_every` as there).

    Args:
        learning_rate: a number or an optax schedule (a function of the step count).
        manifold: one manifold, or a pytree prefix of `params` with manifold or `None`
            (Euclidean) leaves.
        momentum: the momentum coefficient $\\beta$, or None for none.
        nesterov: use Nesterov momentum.
        stabilize_every: apply `to_manifold` every this many steps (None: never).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state
        [`RSGDState`][geomhess.optim.RSGDState]. Numbers are stored as arrays, so a
        new learning rate does not recompile a jitted step that takes the optimizer
        as an argument.

    [^bg]: G. Bécigneul and O.-E. Ganea, *Riemannian Adaptive Optimization Methods*,
        ICLR 2019.
    """
    if nesterov and momentum is None:
        raise ValueError("`rsgd`: `nesterov=True` needs a `momentum` coefficient.")
    check_stabilize_every("rsgd", stabilize_every)
    module = _RSGD(
        as_hyperparameter(learning_rate, "rsgd", "learning_rate", "positive"),
        manifold,
        as_hyperparameter(momentum, "rsgd", "momentum", "below_one"),
        nesterov,
        stabilize_every,
    )
    return optax.GradientTransformationExtraArgs(module.init, module.update)


def radam(
    learning_rate: optax.ScalarOrSchedule,
    manifold,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    stabilize_every: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Riemannian Adam (Bécigneul and Ganea[^bg]), with the first moment transported.

    For each manifold leaf, with Riemannian gradient $g_t$:
    $m_t = \\beta_1 \\mathcal{T}(m_{t-1}) + (1-\\beta_1) g_t$,
    $v_t = \\beta_2 v_{t-1} + (1-\\beta_2) \\|g_t\\|_{x_t}^2$ (a *scalar* per manifold
    leaf: a coordinate-wise second moment has no meaning on a manifold), and the step
    $-\\eta_t \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)$ with the usual bias
    corrections, retracted with `retract_transport`, which also carries $m_t$ to the
    new point. `None` (Euclidean) leaves keep Adam's per-coordinate second moment, so
    they are updated exactly as by `optax.adam`.

    On `Sphere` and `Stiefel` leaves the step is computed fused (the same formulas,
    evaluated on the coefficients of the span of the point, the gradient and the
    moment: one pass over the three arrays for their small Gram matrix, one pass
    to form the new point and moment), which is what makes its cost per step close
    to `optax.adam`'s on the sphere; other manifolds use their own `egrad_to_rgrad`,
    `inner` and `retract_transport`. The same holds for
    [`rsgd`][geomhess.optim.rsgd].

    Composition: must come **last** in an `optax.chain`; the updates land on the
    manifold up to rounding (see [`riemannian`][geomhess.optim.riemannian]).

    Args:
        learning_rate: a number or an optax schedule.
        manifold: one manifold, or a pytree prefix of `params` with manifold or `None`
            leaves.
        b1: the decay rate of the first moment.
        b2: the decay rate of the second moment.
        eps: added to the root of the second moment.
        stabilize_every: apply `to_manifold` every this many steps (None: never).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state
        [`RAdamState`][geomhess.optim.RAdamState].

    [^bg]: G. Bécigneul and O.-E. Ganea, *Riemannian Adaptive Optimization Methods*,
        ICLR 2019, Algorithm 1.
    """
    check_stabilize_every("radam", stabilize_every)
    module = _RAdam(
        as_hyperparameter(learning_rate, "radam", "learning_rate", "positive"),
        manifold,
        as_hyperparameter(b1, "radam", "b1", "below_one"),
        as_hyperparameter(b2, "radam", "b2", "below_one"),
        as_hyperparameter(eps, "radam", "eps", "nonnegative"),
        stabilize_every,
    )
    return optax.GradientTransformationExtraArgs(module.init, module.update)
