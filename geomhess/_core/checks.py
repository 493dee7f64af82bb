"""Validation: shape/dtype problems at trace time, data problems through `eqx.error_if`.

Shape and dtype problems are known while tracing, so they raise `ValueError` at once,
naming the function, the argument and the shapes. Problems that depend on values (a
metric that is not positive definite, a point outside a chart's domain, NaN input) are
checked with [`equinox.error_if`][], which raises eagerly and inside `jit`; the
environment variable `EQX_ON_ERROR` (`raise`, `nan`, `breakpoint`) chooses what happens.

The checks that run on every step of an optimizer (points on the manifold, vectors
tangent, losses and gradients finite) are switched off by `GEOMHESS_CHECKS=0`, read
when a function is traced (set it before the first call; `jit` caches keep what they
were traced with). See docs/checks.md for the list and their cost.

Under plain `jax.jit` a failed check reaches the user twice: JAX logs "jax.pure_callback
failed" with a traceback of its own frames, then raises a `JaxRuntimeError` whose text
starts with more frames. The log filter below makes that first record lead with the
check's message instead (see `_LeadWithMessage`); `equinox.filter_jit` raises the
message itself as an `EquinoxRuntimeError`.
"""

import logging
import os

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


def _describe(tree):
    leaves = jtu.tree_leaves(tree)
    if len(leaves) == 1 and jtu.tree_structure(tree).num_nodes == 1:
        leaf = leaves[0]
        return f"shape {tuple(jnp.shape(leaf))} and dtype {jnp.result_type(leaf)}"
    parts = ", ".join(
        f"{tuple(jnp.shape(leaf))} {jnp.result_type(leaf)}" for leaf in leaves
    )
    return f"structure {jtu.tree_structure(tree)} with leaves [{parts}]"


def check_floating(caller: str, name: str, tree):
    """Check that `tree` (named `name` in the message, e.g. "the point `x`") is a
    non-empty pytree of floating-point arrays."""
    leaves = jtu.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"`{caller}`: {name} is an empty pytree.")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(
                f"`{caller}`: {name} must be floating point, got {_describe(tree)}. "
                "Cast it first, e.g. `jnp.asarray(value, dtype=jnp.float64)`."
            )


def check_point(caller: str, x, *, flat: bool = False):
    """Check that `x` is a floating-point array (or pytree of them); `flat` asks for 1-D."""
    check_floating(caller, "the point `x`", x)
    leaves = jtu.tree_leaves(x)
    if flat:
        if not (len(leaves) == 1 and jnp.ndim(leaves[0]) == 1 and leaves[0] is x):
            raise ValueError(
                f"`{caller}`: this dense operator needs a 1-D array point of shape "
                f"(d,), got {_describe(x)}. For pytrees of parameters use the "
                "matrix-free operators (`covariant_hvp`, `riemannian_gradient`), or "
                "flatten with `jax.flatten_util.ravel_pytree`."
            )


def check_like(caller: str, name: str, value, x, x_name: str = "the point `x`"):
    """Check that `value` (a vector or covector at `x`, say) has the structure, shapes
    and dtypes of `x`; `value` may hold `jax.ShapeDtypeStruct`s."""
    same_structure = jtu.tree_structure(value) == jtu.tree_structure(x)
    if same_structure:
        for leaf, ref in zip(jtu.tree_leaves(value), jtu.tree_leaves(x), strict=True):
            if jnp.shape(leaf) != jnp.shape(ref) or jnp.result_type(
                leaf
            ) != jnp.result_type(ref):
                same_structure = False
                break
    if not same_structure:
        raise ValueError(
            f"`{caller}`: `{name}` has {_describe(value)} but {x_name} has "
            f"{_describe(x)}; they must match (same shapes and dtypes)."
        )


# The messages of geomhess's run-time checks, so that the log filter touches only ours.
# Messages are fixed strings (at most formatted with the calling function's name, never
# with array values), so the set stays small however often the checks are traced.
_MESSAGES: set[str] = set()


class _LeadWithMessage(logging.Filter):
    """Put a failed geomhess check's message first in JAX's "pure_callback failed" log.

    The record's traceback lists only JAX's and Equinox's frames; it is dropped, and the
    message (without Equinox's paragraph about `filter_jit`) becomes the record's text.
    Records of other callbacks pass unchanged.
    """

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        if error is None or type(error).__name__ != "_EquinoxRuntimeError":
            return True
        message = str(error).split("\n\n\n", 1)[0]
        if message in _MESSAGES:
            record.msg = (
                "geomhess check failed: %s\n(the exception that follows carries the "
                "same message; under `jax.jit` it comes after JAX's frames, and "
                "`equinox.filter_jit` in place of `jax.jit` raises it alone)"
            )
            record.args = (message,)
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("jax._src.callback").addFilter(_LeadWithMessage())


def error_if(x, bad, message: str):
    """`equinox.error_if(x, bad, message)`, with `message` registered for the log filter.

    Every run-time check in geomhess goes through here (or `raise_if`)."""
    _MESSAGES.add(message)
    return eqx.error_if(x, bad, message)


def raise_if(tree, bad, message: str):
    """`tree` unchanged, with `eqx.error_if(..., bad, message)` attached to it.

    Only a scalar zero goes through `error_if` and is added to every leaf: XLA fuses
    that add into the next elementwise pass, where passing `tree` itself through the
    error's conditional copies it (and, sharded, gathers it). Each conditional costs
    about a microsecond, which shows on small dense calls: an operator with several
    run-time checks ORs them into one (a `branched_error_if` choosing among messages
    costs more than two).
    """
    zero = error_if(jnp.zeros((), jnp.float32), bad, message)
    return jtu.tree_map(lambda leaf: leaf + zero.astype(leaf.dtype), tree)


def check_solver_options(caller: str, rtol, atol, max_steps):
    """Check a Krylov solver's options: tolerances `>= 0`, `max_steps` an int `>= 1`.

    `None` means "the solver's default" and passes; traced tolerances are not checked.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, (int, float)) and not value >= 0:
            raise ValueError(f"`{caller}`: `{name}` must be >= 0, got {value}.")
    if max_steps is not None and (
        isinstance(max_steps, bool)
        or not isinstance(max_steps, (int, np.integer))
        or max_steps < 1
    ):
        raise ValueError(
            f"`{caller}`: `max_steps` must be None or an int >= 1, got {max_steps!r}."
        )


def nonfinite(x):
    """A boolean scalar: does the pytree `x` hold a NaN or inf anywhere?"""
    leaves = jtu.tree_leaves(x)
    return jnp.any(jnp.stack([~jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def require_finite(caller: str, tree, what: str):
    """`tree`, raising (eagerly and under `jit`) if it holds NaN or inf; `what` names
    it in the message ("the gradient", "the loss"). Off with `GEOMHESS_CHECKS=0`."""
    if not checks_enabled():
        return tree
    return raise_if(
        tree,
        nonfinite(tree),
        f"`{caller}`: {what} holds NaN or inf at the current params, so no step can "
        "be computed from it. Check the loss there (a log of a non-positive number, "
        "an overflow, a division by zero), or lower the learning rate if the run "
        "diverged. `GEOMHESS_CHECKS=0` skips this check.",
    )


def nonfinite_msg(caller: str) -> str:
    return f"`{caller}`: the point `x` contains NaN or inf values."


def check_finite(caller: str, x):
    """Raise (through `eqx.error_if`) if the point `x` holds NaN or inf."""
    return raise_if(x, nonfinite(x), nonfinite_msg(caller))


NOT_PD_MSG = (
    "the metric is not positive definite, or not symmetric, at this point (its "
    "Cholesky factorization failed, or it is not symmetric to 10 sqrt(eps) relative). "
    "Likely causes: (1) the metric function returns a matrix that is not symmetric "
    "positive definite here (symmetrize it, `0.5 * (G + G.T)`, if that is what you "
    "mean); (2) the metric was reparametrized through a chart whose Jacobian is "
    "singular at this point (J^-T G J^-1 degenerates); (3) the point is outside the "
    "chart's domain or contains NaN."
)


def symmetry_defect(G):
    """`max |G - G^T| / max |G|` (0 for a zero matrix), a scalar per matrix."""
    scale = jnp.max(jnp.abs(G), axis=(-2, -1))
    defect = jnp.max(jnp.abs(G - jnp.swapaxes(G, -1, -2)), axis=(-2, -1))
    return jnp.where(scale > 0, defect / jnp.where(scale > 0, scale, 1), defect)


def cholesky_factor(G):
    """The Cholesky factor of a symmetric matrix and a flag: is `G` not symmetric
    (to `membership_tol`) or not positive definite?"""
    # `jnp.linalg.cholesky` reads one triangle only, so a non-symmetric `G` would be
    # factored as a different matrix: the solve and the inner product (which uses
    # all of `G`) would silently disagree. It returns NaNs where it fails; a NaN
    # anywhere in `G` reaches the diagonal of `L`, so `d` entries tell it all.
    L = jnp.linalg.cholesky(G)
    failed = ~jnp.all(jnp.isfinite(jnp.diagonal(L, axis1=-2, axis2=-1)))
    asymmetric = jnp.any(symmetry_defect(G) > membership_tol(jnp.result_type(G)))
    return L, failed | asymmetric


def nonfinite_or_not_pd_msg(caller: str) -> str:
    """The message of one check for both a non-finite point and a metric not PD."""
    return f"`{caller}`: the point `x` contains NaN or inf values, or {NOT_PD_MSG}"


def cholesky(caller: str, G):
    """Cholesky factor of a symmetric matrix, raising a clear error if it is not PD."""
    L, bad = cholesky_factor(G)
    return raise_if(L, bad, f"`{caller}`: {NOT_PD_MSG}")


def checks_enabled() -> bool:
    """Are the per-step value checks on? `GEOMHESS_CHECKS=0` turns them off."""
    return os.environ.get("GEOMHESS_CHECKS", "1").strip().lower() not in (
        "0",
        "false",
        "off",
        "no",
    )


def membership_tol(dtype) -> float:
    """The tolerance of "on the manifold" and "tangent": `10 sqrt(eps)` of the dtype
    (`1.5e-7` in float64, `3.5e-3` in float32), far above the drift of long runs
    (tests/test_float32_on_manifold.py: about 200 ulp in 1000 float32 steps) and far
    below a point that was never on the manifold."""
    return 10 * float(np.sqrt(np.finfo(dtype).eps))


def require_small(tree, defect, message: str):
    """`tree`, with an error raised (eagerly and under `jit`) when the scalar
    `defect` is above `membership_tol` or NaN; nothing when checks are off."""
    if not checks_enabled():
        return tree
    tol = membership_tol(jnp.result_type(defect))
    return raise_if(tree, ~(defect <= tol), message)
