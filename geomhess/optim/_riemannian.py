"""`riemannian(base, manifold)`: any optax transformation, moved along a manifold."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._core.checks import check_like, require_finite
from . import _tree as mt


class RiemannianState(NamedTuple):
    """State of [`riemannian`][geomhess.optim.riemannian].

    Attributes:
        count: the number of updates so far (`int32`), used by `stabilize_every`.
        base: the wrapped transformation's state.
    """

    count: jax.Array
    base: optax.OptState


def check_params(caller: str, params):
    if params is None:
        raise ValueError(
            f"`{caller}`: `params` is required (call `update(grads, state, params)`): "
            "a Riemannian update needs the current point to convert the gradient and "
            "to retract."
        )


def check_state(caller: str, field: str, value, params):
    """Refuse an optimizer state made for other params (it would broadcast)."""
    try:
        check_like(caller, f"state.{field}", value, params, "`params`")
    except ValueError as error:
        raise ValueError(
            f"{error} The optimizer state was made by `init` for other params; call "
            "`init(params)` for these."
        ) from None


class _Riemannian(eqx.Module):
    base: optax.GradientTransformationExtraArgs
    manifold: Any
    stabilize_every: int | None = eqx.field(static=True)

    def init(self, params):
        mt.split("riemannian", self.manifold, params)
        return RiemannianState(
            count=jnp.zeros([], jnp.int32), base=self.base.init(params)
        )

    def update(self, updates, state, params=None, **extra_args):
        check_params("riemannian", params)
        treedef, manifolds, xs = mt.split("riemannian", self.manifold, params)
        updates = require_finite("riemannian", updates, "the gradient")
        gs = mt.leaves_of(treedef, updates)
        rgrad = treedef.unflatten(
            [
                mt.egrad_to_rgrad(m, x, g)
                for m, x, g in zip(manifolds, xs, gs, strict=True)
            ]
        )
        step, base_state = self.base.update(rgrad, state.base, params, **extra_args)
        steps = mt.leaves_of(treedef, step)
        new = []
        for m, x, v in zip(manifolds, xs, steps, strict=True):
            v = mt.tree_cast_like(mt.to_tangent(m, x, v), x)
            new.append(mt.retract(m, x, v))
        count = optax.safe_int32_increment(state.count)
        if self.stabilize_every is not None:
            new = stabilize(manifolds, new, count, self.stabilize_every)
        new_params = treedef.unflatten(new)
        return mt.difference(new_params, params), RiemannianState(count, base_state)


def stabilize(manifolds, points, count, every: int):
    """Apply `to_manifold` to each point when `count` is a multiple of `every`."""

    def project(points):
        return [mt.to_manifold(m, x) for m, x in zip(manifolds, points, strict=True)]

    return jax.lax.cond(count % every == 0, project, lambda p: p, points)


def check_stabilize_every(caller: str, stabilize_every):
    if stabilize_every is not None and (
        not isinstance(stabilize_every, int) or stabilize_every < 1
    ):
        raise ValueError(
            f"`{caller}`: `stabilize_every` must be a positive int or None, got "
            f"{stabilize_every!r}."
        )


def riemannian(
    base: optax.GradientTransformation, manifold, *, stabilize_every: int | None = None
) -> optax.GradientTransformationExtraArgs:
    """Run any optax transformation on a manifold: Riemannian gradient in, retract out.

    `update(egrad, state, params, **extra)`:

    1. converts the Euclidean gradient to the Riemannian one,
       `rgrad = manifold.egrad_to_rgrad(x, egrad)`, leaf by leaf;
    2. calls `base.update(rgrad, base_state, params, **extra)` and projects its output
       `step` onto the tangent space (`to_tangent`);
    3. retracts, `x' = manifold.retract(x, step)`, and returns `updates = x' - x` in
       the params dtype, so that `optax.apply_updates(params, updates)` lands on the
       manifold.

    Caveats:

    - (a) The base's moment state (momentum, Adam's `mu` and `nu`) is *not*
      transported between tangent spaces: it is carried as ambient arrays from one
      point to the next. That is exact for stateless bases (`optax.sgd` without
      momentum) and flat manifolds, and an approximation otherwise. For momentum
      methods with proper vector transport use [`rsgd`][geomhess.optim.rsgd] and
      [`radam`][geomhess.optim.radam].
    - (b) `apply_updates` adds `x' - x` to `x`, which equals `x'` only up to rounding,
      so the iterates drift off the manifold by a few ulp per step. Pass
      `stabilize_every=k` to apply `to_manifold` to the retracted point every `k`
      steps (geoopt's `stabilize`); the drift then stays within a few hundred ulp.

    Composition: a geomhess transform must come **last** in an `optax.chain`; anything
    after it would rescale a displacement, not a gradient. Euclidean preprocessing
    such as `optax.clip_by_global_norm` goes before it.

    Args:
        base: any optax gradient transformation, e.g. `optax.sgd(0.1)`; it should
            produce a descent step (negative learning rate sign included, as optax
            optimizers do).
        manifold: one manifold for all of `params`, or a pytree prefix of `params`
            whose leaves are manifolds or `None` (ordinary Euclidean parameters).
        stabilize_every: apply `to_manifold` every this many steps (None: never).

    Returns:
        An `optax.GradientTransformationExtraArgs`; its state is a
        [`RiemannianState`][geomhess.optim.RiemannianState].

    Example:
        ```python
        opt = gh.optim.riemannian(optax.sgd(0.1), gh.manifolds.Sphere(3))
        state = opt.init(x)
        updates, state = opt.update(jax.grad(f)(x), state, x)
        x = optax.apply_updates(x, updates)
        ```
    """
    check_stabilize_every("riemannian", stabilize_every)
    module = _Riemannian(optax.with_extra_args_support(base), manifold, stabilize_every)
    return optax.GradientTransformationExtraArgs(module.init, module.update)
