"""geomhess's optimizers driven to a gradient tolerance, as the optimizer benchmark
times them: one call from the starting point to the tolerance.

An objective goes to `update` as `value_fn=` (and `hvp_fn=` for a `WithHVP`), as
an equinox module (`Objective`) so that its data are traced arguments of the
jitted solve, not constants baked into the executable. `solve_while` runs the
whole iteration in one `lax.while_loop`, `solve_python` as a Python loop over a
jitted step (one host sync per step), and `count_hvps` counts the Euclidean
Hessian-vector products a solve with `hvp_fn` evaluates.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import geomhess as gh


class Objective(eqx.Module):
    """`fn(*data, *args)`: a module, so that the data (matrices, weights) are
    traced, not baked into the executable."""

    fn: Callable = eqx.field(static=True)
    data: tuple

    def __call__(self, *args):
        return self.fn(*self.data, *args)


class WithHVP(eqx.Module):
    """An objective passed with `hvp_fn` (autodiff for its value and gradient)."""

    f: eqx.Module
    hvp: eqx.Module


def update_kwargs(f):
    """`value_fn=` (and `hvp_fn=`) for `update`."""
    if isinstance(f, WithHVP):
        return {"value_fn": f.f, "hvp_fn": f.hvp}
    return {"value_fn": f}


def gradient_norm(manifold, f, x, state=None):
    """The Riemannian gradient norm at `x`: read from a `TrustRegionState` (which
    keeps it for the point it moved to), computed otherwise."""
    if isinstance(state, gh.optim.TrustRegionState):
        return state.grad_norm
    f = update_kwargs(f)["value_fn"]
    return manifold.norm(x, manifold.egrad_to_rgrad(x, jax.grad(f)(x)))


@eqx.filter_jit
def solve_while(opt, manifold, f, x0, tol, max_iterations):
    """Iterate `opt` inside one `lax.while_loop` until the Riemannian gradient norm
    is below `tol`; returns `(x, gradient norm, iterations)`."""

    def cond(carry):
        _, _, g, k = carry
        return (g >= tol) & (k < max_iterations)

    def body(carry):
        x, state, _, k = carry
        updates, state = opt.update(None, state, x, **update_kwargs(f))
        x = optax.apply_updates(x, updates)
        return x, state, gradient_norm(manifold, f, x, state), k + 1

    initial = (
        x0,
        opt.init(x0),
        gradient_norm(manifold, f, x0),
        jnp.zeros([], jnp.int32),
    )
    x, _, g, k = jax.lax.while_loop(cond, body, initial)
    return x, g, k


@eqx.filter_jit
def _step(opt, manifold, f, x, state):
    updates, state = opt.update(None, state, x, **update_kwargs(f))
    x = optax.apply_updates(x, updates)
    return x, state, gradient_norm(manifold, f, x, state)


@eqx.filter_jit
def _initial(opt, manifold, f, x):
    return opt.init(x), gradient_norm(manifold, f, x)


def solve_python(opt, manifold, f, x0, tol, max_iterations):
    """The same iteration as a Python loop over a jitted step (one host sync each)."""
    state, g = _initial(opt, manifold, f, x0)
    x, k = x0, 0
    while float(g) >= tol and k < max_iterations:
        x, state, g = _step(opt, manifold, f, x, state)
        k += 1
    return x, g, jnp.asarray(k)


def count_hvps(opt, f, x0, tol, max_iterations):
    """`(Euclidean HVPs, outer iterations)` of a solve with `f = WithHVP(...)`,
    counted by a host callback, step by step, until the gradient norm of the
    optimizer's state is below `tol` (after at least one step)."""
    calls = []
    kwargs = update_kwargs(f)
    hvp = kwargs.pop("hvp_fn")

    def counting_hvp(x, v):
        jax.debug.callback(lambda: calls.append(1))
        return hvp(x, v)

    step = jax.jit(lambda x, s: opt.update(None, s, x, hvp_fn=counting_hvp, **kwargs))
    x, state, outer = x0, opt.init(x0), 0
    while outer == 0 or (float(state.grad_norm) >= tol and outer < max_iterations):
        updates, state = step(x, state)
        jax.effects_barrier()
        x = optax.apply_updates(x, updates)
        outer += 1
    return len(calls), outer
