"""The slope checks: fit, plot and the three public checks."""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ..manifolds import AbstractManifold


@dataclasses.dataclass(frozen=True)
class SlopeCheck:
    """The result of a Taylor-remainder slope check.

    Attributes:
        name: which check (`"gradient"`, `"hessian"`, `"retraction"`).
        steps: the step sizes $t$ (a numpy array, log-spaced from `1e-8` to `1`).
        errors: the remainders $E(t)$.
        slope: the slope of $\\log E$ against $\\log t$ fitted on `window`; `inf`
            when every remainder is at rounding level (the model is exact).
        expected_slope: 2 for a gradient, 3 for a Hessian, `order + 1` for a
            retraction.
        window: `(start, stop)` indices of `steps` used for the fit.
        ok: whether `slope >= expected_slope - tolerance`.
        details: further checks, e.g. `tangent_error` (how far the gradient or the
            HVP is from the tangent space, relative) and `symmetry_error`
            (`|<u, H w> - <H u, w>|`, relative) for the Hessian.
        figure: the matplotlib `Figure` when `plot=True`, else None.
    """

    name: str
    steps: np.ndarray
    errors: np.ndarray
    slope: float
    expected_slope: float
    window: tuple[int, int]
    ok: bool
    details: dict[str, Any]
    figure: Any = None


def _fit_slope(steps, errors, floor, window_length):
    """The slope on the straightest window of `window_length` consecutive points
    whose remainders are all above `floor` (rounding level)."""
    log_t, log_e = np.log10(steps), np.log10(np.maximum(errors, 1e-300))
    above = errors > floor
    best = None
    for start in range(len(steps) - window_length + 1):
        stop = start + window_length
        if not above[start:stop].all():
            continue
        slope, offset = np.polyfit(log_t[start:stop], log_e[start:stop], 1)
        residual = np.max(
            np.abs(slope * log_t[start:stop] + offset - log_e[start:stop])
        )
        if best is None or residual < best[0]:
            best = (residual, float(slope), (start, stop))
    if best is None:
        return float("inf"), (0, 0)
    return best[1], best[2]


def _finish(name, steps, errors, expected, floor, tolerance, details, plot):
    steps, errors = np.asarray(steps, np.float64), np.asarray(errors, np.float64)
    window_length = max(5, len(steps) // 5)
    slope, window = _fit_slope(steps, errors, floor, window_length)
    figure = None
    if plot:
        figure = _plot(name, steps, errors, slope, expected, window, floor)
    return SlopeCheck(
        name=name,
        steps=steps,
        errors=errors,
        slope=slope,
        expected_slope=float(expected),
        window=window,
        ok=bool(slope >= expected - tolerance),
        details=details,
        figure=figure,
    )


def _plot(name, steps, errors, slope, expected, window, floor):
    # Imported here: matplotlib is optional. `Figure` is used without pyplot, so no
    # global figure state or GUI backend is touched.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.5))
    ax = figure.add_subplot()
    ax.loglog(steps, np.maximum(errors, 1e-300), ".-", label="remainder $E(t)$")
    ax.axhline(floor, color="0.7", linestyle=":", label="rounding level")
    start, stop = window
    if stop > start:
        anchor = (start + stop) // 2
        reference = errors[anchor] * (steps / steps[anchor]) ** expected
        ax.loglog(steps, reference, "--", label=f"slope {expected:g} (expected)")
        ax.loglog(steps[start:stop], errors[start:stop], "o", fillstyle="none")
    ax.set_xlabel("step size $t$")
    ax.set_ylabel("remainder")
    ax.set_title(f"check_{name}: fitted slope {slope:.3g}")
    ax.legend(fontsize="small")
    ax.set_ylim(bottom=max(1e-300, float(np.min(errors[errors > 0], initial=1e-300))))
    return figure


def _steps(x):
    dtype = jnp.result_type(*jtu.tree_leaves(x))
    return jnp.logspace(-8, 0, 51, dtype=dtype), dtype


def _unit_tangent(manifold, key, x):
    u = manifold.random_tangent(key, x)
    length = manifold.norm(x, u)
    # A direction at rounding level (not exactly 0 in float64) is as useless as 0.
    dtype = _steps(x)[1]
    if not float(length) > float(jnp.sqrt(jnp.finfo(dtype).eps)):
        raise ValueError(
            "the random tangent direction is zero (was `x` drawn with the same key? "
            "e.g. `Sphere.random_tangent(key, random_point(key))` is 0); pass an "
            "independent `key`."
        )
    scale = 1 / length
    return jtu.tree_map(lambda a: (scale * a).astype(a.dtype), u)


def _scaled(t, u):
    return jtu.tree_map(lambda a: (t * a).astype(a.dtype), u)


def _mover(caller, manifold, retraction):
    if retraction == "retract":
        return manifold.retract
    if retraction == "exp":
        return manifold.exp
    if isinstance(retraction, Callable):
        return retraction
    raise ValueError(
        f"`{caller}`: `retraction` must be 'retract', 'exp' or a function "
        f"`(x, v) -> point`, got {retraction!r}."
    )


def _tangent_error(manifold, x, v):
    residual = jtu.tree_map(jnp.subtract, v, manifold.to_tangent(x, v))
    scale = jnp.maximum(manifold.norm(x, v), jnp.finfo(_steps(x)[1]).tiny)
    return float(
        jnp.sqrt(sum(jnp.vdot(r, r) for r in jtu.tree_leaves(residual))) / scale
    )


def _chordal(x, y):
    difference = jtu.tree_map(jnp.subtract, x, y)
    return jnp.sqrt(sum(jnp.vdot(d, d) for d in jtu.tree_leaves(difference)))


def _check_manifold(caller, manifold):
    if not isinstance(manifold, AbstractManifold):
        raise TypeError(
            f"`{caller}`: expected a manifold (e.g. `geomhess.manifolds.Sphere(3)`), "
            f"got {type(manifold).__name__}."
        )


def check_gradient(
    f: Callable,
    manifold: AbstractManifold,
    x,
    *,
    key,
    grad: Callable | None = None,
    retraction="retract",
    tolerance: float = 0.1,
    plot: bool = False,
) -> SlopeCheck:
    """Check a Riemannian gradient: $E(t) = |f(R_x(tu)) - f(x) - t\\langle
    \\operatorname{grad} f(x), u\\rangle_x|$ should decay with slope 2.

    Args:
        f: the cost, a scalar function of the point (in the manifold's
            representation, e.g. ambient coordinates).
        manifold: the manifold.
        x: the point.
        key: a JAX PRNG key for the random tangent direction.
        grad: the Riemannian gradient `x -> grad f(x)` to check; default
            `manifold.egrad_to_rgrad(x, jax.grad(f)(x))` (which checks
            `egrad_to_rgrad`).
        retraction: `"retract"`, `"exp"` or a function `(x, v) -> point`.
        tolerance: how far below 2 the slope may be.
        plot: also draw the log-log plot (returned as `result.figure`).

    Returns:
        A [`SlopeCheck`][geomhess.diagnostics.SlopeCheck]; `details` has
        `tangent_error`.
    """
    _check_manifold("check_gradient", manifold)
    move = _mover("check_gradient", manifold, retraction)
    steps, dtype = _steps(x)
    u = _unit_tangent(manifold, key, x)
    fx = f(x)
    g = grad(x) if grad is not None else manifold.egrad_to_rgrad(x, jax.grad(f)(x))
    slope_at_zero = manifold.inner(x, g, u)
    values = jax.vmap(lambda t: f(move(x, _scaled(t, u))))(steps)
    errors = jnp.abs(values - fx - steps * slope_at_zero)
    floor = 100 * float(jnp.finfo(dtype).eps) * max(1.0, float(jnp.abs(fx)))
    details = {"tangent_error": _tangent_error(manifold, x, g)}
    return _finish("gradient", steps, errors, 2, floor, tolerance, details, plot)


def check_hessian(
    f: Callable,
    manifold: AbstractManifold,
    x,
    *,
    key,
    grad: Callable | None = None,
    hvp: Callable | None = None,
    retraction="exp",
    tolerance: float = 0.1,
    plot: bool = False,
) -> SlopeCheck:
    """Check a Riemannian Hessian: $E(t) = |f(R_x(tu)) - f(x) - t\\langle g, u\\rangle
    - \\tfrac{t^2}{2}\\langle \\operatorname{Hess} f(x)[u], u\\rangle|$ should decay
    with slope 3.

    The slope is 3 only along a **second-order** retraction (the default `"exp"`,
    or a second-order `retract`) or at a critical point; along a first-order
    retraction it is 2 even for a correct Hessian (Manopt's caveat).

    Args:
        f: the cost.
        manifold: the manifold.
        x: the point.
        key: a JAX PRNG key (two random tangent directions are drawn).
        grad: the Riemannian gradient `x -> grad f(x)`; default from `jax.grad` and
            `egrad_to_rgrad`.
        hvp: the Riemannian Hessian `(x, v) -> Hess f(x)[v]` to check; default
            `manifold.ehvp_to_rhvp` of a forward-over-reverse Euclidean HVP.
        retraction: `"exp"`, `"retract"` or a function `(x, v) -> point`.
        tolerance: how far below 3 the slope may be.
        plot: also draw the log-log plot.

    Returns:
        A [`SlopeCheck`][geomhess.diagnostics.SlopeCheck]; `details` has
        `tangent_error` (of `Hess f(x)[u]`) and `symmetry_error`
        ($|\\langle u, Hw\\rangle - \\langle Hu, w\\rangle|$ relative to
        $\\|Hu\\|\\|w\\|$).
    """
    _check_manifold("check_hessian", manifold)
    move = _mover("check_hessian", manifold, retraction)
    steps, dtype = _steps(x)
    key_u, key_w = jax.random.split(key)
    u = _unit_tangent(manifold, key_u, x)
    w = _unit_tangent(manifold, key_w, x)
    egrad = jax.grad(f)(x)
    g = grad(x) if grad is not None else manifold.egrad_to_rgrad(x, egrad)

    def hess(v):
        if hvp is not None:
            return hvp(x, v)
        _, ehvp = jax.jvp(jax.grad(f), (x,), (v,))
        return manifold.ehvp_to_rhvp(x, egrad, ehvp, v)

    Hu, Hw = hess(u), hess(w)
    fx = f(x)
    first = manifold.inner(x, g, u)
    second = manifold.inner(x, Hu, u)
    values = jax.vmap(lambda t: f(move(x, _scaled(t, u))))(steps)
    errors = jnp.abs(values - fx - steps * first - 0.5 * steps**2 * second)
    floor = 100 * float(jnp.finfo(dtype).eps) * max(1.0, float(jnp.abs(fx)))
    scale = max(float(manifold.norm(x, Hu)), float(manifold.norm(x, Hw)), 1e-300)
    asymmetry = float(jnp.abs(manifold.inner(x, u, Hw) - manifold.inner(x, Hu, w)))
    details = {
        "tangent_error": _tangent_error(manifold, x, Hu),
        "symmetry_error": asymmetry / scale,
    }
    return _finish("hessian", steps, errors, 3, floor, tolerance, details, plot)


def check_retraction(
    manifold: AbstractManifold,
    x,
    *,
    key,
    retraction: Callable | None = None,
    order: int = 1,
    tolerance: float = 0.1,
    plot: bool = False,
) -> SlopeCheck:
    """Check the order of a retraction: $E(t) = d(R_x(tu), \\exp_x(tu))$ decays with
    slope `order + 1` (2 for a first-order retraction, 3 for a second-order one).

    Args:
        manifold: the manifold (its `exp` and `dist` are the reference).
        x: the point.
        key: a JAX PRNG key for the random tangent direction.
        retraction: the retraction `(x, v) -> point` to check; default
            `manifold.retract`.
        order: the claimed order (1 or 2).
        tolerance: how far below `order + 1` the slope may be.
        plot: also draw the log-log plot.

    Returns:
        A [`SlopeCheck`][geomhess.diagnostics.SlopeCheck] (`slope - 1` estimates the
        order; `inf` when the retraction equals `exp` to rounding).
    """
    _check_manifold("check_retraction", manifold)
    move = manifold.retract if retraction is None else retraction
    steps, dtype = _steps(x)
    u = _unit_tangent(manifold, key, x)
    distance, kind = manifold.dist, "geodesic"
    try:
        distance(x, x)
    except NotImplementedError:
        # Without a closed-form distance, the ambient (chordal) distance agrees with
        # the geodesic one to leading order, which is all a slope needs.
        distance, kind = _chordal, "chordal"
    errors = jax.vmap(
        lambda t: distance(move(x, _scaled(t, u)), manifold.exp(x, _scaled(t, u)))
    )(steps)
    scale = max(1.0, float(jnp.sqrt(sum(jnp.vdot(a, a) for a in jtu.tree_leaves(x)))))
    floor = 100 * float(jnp.finfo(dtype).eps) * scale
    details = {"distance": kind}
    return _finish(
        "retraction", steps, errors, order + 1, floor, tolerance, details, plot
    )
