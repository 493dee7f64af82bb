"""Metrics of a model: Gauss-Newton and Fisher (matrix-free), and per-layer metrics.

The parameter space of a model `outputs = model(params, inputs)` carries metrics that
come from the model itself rather than from the coordinates: the generalized
Gauss-Newton matrix `J^T Lambda J` of a loss and the Fisher information of a
likelihood. Both are products of Jacobians, so geomhess never forms them: `mvp` is one
JVP and one VJP of the model, on any pytree of parameters. Both depend on the
parameters (through `J` and `Lambda`), and JAX differentiates `mvp` with respect to
them, which is what the Levi-Civita connection needs.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._core.checks import check_like, check_point, check_solver_options, error_if
from .._core.solve import cg_solve
from .._core.tree import on_basis
from ._base import AbstractMetric


def _batch_size(caller: str, outputs) -> int:
    """The number of examples `N`: the common leading axis of the model's outputs."""
    leaves = jtu.tree_leaves(outputs)
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) > 0 else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]
        raise ValueError(
            f"`{caller}`: the model's outputs must have a common leading batch axis "
            f"(one row per example), got leaves of shapes {shapes}."
        )
    (size,) = sizes
    return size


def squared_error_curvature(outputs, u):
    """`Lambda u` for the mean squared error `L = 1/(2N) sum_n ||z_n - y_n||^2`.

    The Hessian of `L` with respect to the outputs `z` (shape `(N, ...)`, `N`
    examples) is `Lambda = I / N`, whatever the targets `y`.

    Args:
        outputs: the model's outputs `z`, a pytree whose leaves share a leading axis `N`.
        u: an output-space vector shaped like `outputs`.

    Returns:
        `u / N`, shaped like `outputs`. Cost: elementwise.
    """
    n = _batch_size("squared_error_curvature", outputs)
    return jtu.tree_map(lambda leaf: leaf / jnp.asarray(n, leaf.dtype), u)


def softmax_cross_entropy_curvature(outputs, u):
    """`Lambda u` for the mean softmax cross-entropy of logits `z` (shape `(N, C)`).

    With `p_n = softmax(z_n)`, the Hessian of `L = -1/N sum_n log p_{n, y_n}` with
    respect to `z_n` is `(diag(p_n) - p_n p_n^T) / N`, whatever the labels `y`; it is
    positive semidefinite with the null vector `1` (logits are defined up to a shift).

    Args:
        outputs: the logits, an array of shape `(N, C)` (classes on the last axis).
        u: an output-space vector of the same shape.

    Returns:
        `(p * u - p <p, u>) / N` row by row, shape `(N, C)`. Cost: `O(N C)`.
    """
    n = _batch_size("softmax_cross_entropy_curvature", outputs)
    if not isinstance(outputs, jax.Array) or outputs.ndim < 2:
        raise ValueError(
            "`softmax_cross_entropy_curvature`: the outputs must be logits of shape "
            f"(N, C), got {jax.tree_util.tree_structure(outputs)} with shapes "
            f"{[jnp.shape(leaf) for leaf in jtu.tree_leaves(outputs)]}."
        )
    p = jax.nn.softmax(outputs, axis=-1)
    pu = p * u
    return (pu - p * jnp.sum(pu, axis=-1, keepdims=True)) / jnp.asarray(n, p.dtype)


_LOSS_CURVATURES = {
    "squared_error": squared_error_curvature,
    "softmax_cross_entropy": softmax_cross_entropy_curvature,
}


def _not_pd_without_damping(caller: str) -> str:
    return (
        f"`{caller}`: `raise_index` needs `damping > 0`. Without damping the "
        "Gauss-Newton / Fisher matrix `J^T Lambda J` is usually singular: (1) its rank "
        "is at most the number of outputs `N * C`, often below the number of "
        "parameters; (2) `Lambda` itself may be singular (softmax logits are defined "
        "up to a shift); (3) symmetries of the model (e.g. ReLU rescalings) give it "
        "null directions. Build the metric with e.g. `damping=1e-3`, the "
        "Levenberg-Marquardt term `+ damping * I`."
    )


class AbstractModelMetric(AbstractMetric):
    """A metric `G(params) = J^T Lambda J + damping I` of a model, matrix-free.

    `J = d model(params, inputs) / d params` is the model's Jacobian at the stored
    `inputs` and `Lambda = Lambda(outputs)` an output-space curvature (positive
    semidefinite), given by subclasses through `output_curvature`. This is the one
    place the formula lives: `GaussNewton` and `Fisher` only choose `Lambda`.

    - `mvp(params, v) = J^T (Lambda (J v)) + damping v`: one JVP and one VJP of the
      model (about three forward passes), on any pytree `params`; no `d x d` matrix.
    - `raise_index(params, w)`: conjugate gradients on `mvp` (each step one `mvp`;
      see [`cg_solve`][geomhess.linalg.cg_solve]) with the metric's `rtol`, `atol`
      and `max_steps`; needs `damping > 0` (see below). The number of steps grows
      like `sqrt(cond G)`, with `cond G ~ ||J^T Lambda J|| / damping`.
    - `matrix(params)`: dense, for 1-D `params` only (`mvp` vmapped over the basis).

    The metric depends on `params` through `J` and `Lambda`; JAX differentiates
    `mvp` with respect to `params` (JVP-of-VJP), so
    [`LeviCivita`][geomhess.LeviCivita] and `covariant_hvp` work on it, matrix-free.

    Without damping `J^T Lambda J` is usually singular (rank at most the number of
    outputs; softmax logits and network symmetries add null directions), so it is
    then only positive semidefinite: `mvp`, `inner` and `matrix` are fine, but
    `raise_index` (and everything that uses it: the Riemannian gradient, the
    Levi-Civita connection) raises `ValueError` when `damping` is the number 0
    and, through `equinox.error_if`, when a traced `damping` is not positive.
    """

    model: eqx.AbstractVar[Callable]
    inputs: eqx.AbstractVar[object]
    damping: eqx.AbstractVar[float | jax.Array]
    rtol: eqx.AbstractVar[float | None]
    atol: eqx.AbstractVar[float | None]
    max_steps: eqx.AbstractVar[int | None]

    @abc.abstractmethod
    def output_curvature(self, outputs, u):
        """`Lambda(outputs) u`, the output-space curvature applied to `u`."""

    def _caller(self, method: str) -> str:
        return f"metrics.{type(self).__name__}.{method}"

    def _model_at(self, params):
        return self.model(params, self.inputs)

    def mvp(self, x, v):
        caller = self._caller("mvp")
        check_point(caller, x)
        check_like(caller, "v", v, x)
        outputs, jv = jax.jvp(self._model_at, (x,), (v,))
        _, pull = jax.vjp(self._model_at, x)
        (out,) = pull(self.output_curvature(outputs, jv))
        return jtu.tree_map(
            lambda g, leaf: g + jnp.asarray(self.damping, leaf.dtype) * leaf, out, v
        )

    def matrix(self, x):
        check_point(self._caller("matrix"), x, flat=True)
        return on_basis(lambda v: self.mvp(x, v), x)

    def raise_index(self, x, w):
        caller = self._caller("raise_index")
        check_point(caller, x)
        check_like(caller, "w", w, x)
        damping = self.damping
        if isinstance(damping, (int, float)):
            if not damping > 0:
                raise ValueError(_not_pd_without_damping(caller))
        else:
            w = error_if(w, ~(damping > 0), _not_pd_without_damping(caller))
        return cg_solve(
            lambda v: self.mvp(x, v),
            w,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            caller=caller,
        )


class GaussNewton(AbstractModelMetric):
    """The generalized Gauss-Newton metric `G = J^T Lambda J + damping I` of a model.

    For a loss `L(params) = ell(model(params, inputs))` the Hessian is
    `J^T (d^2 ell) J + sum_o (d ell / d z_o) d^2 z_o`; the GGN keeps the first term,
    `Lambda = d^2 ell` (the curvature of the loss in output space), which is positive
    semidefinite for convex `ell` whatever the model. Matrix-free on any pytree of
    parameters; see [`AbstractModelMetric`][geomhess.metrics.AbstractModelMetric]
    for the cost and for why `raise_index` needs `damping > 0`.

    Args:
        model: `model(params, inputs) -> outputs`, evaluated on the whole batch; the
            outputs' leaves have a leading batch axis `N` for the named losses.
        inputs: the batch (any pytree), stored and traced like any array field.
        loss_hessian: `"squared_error"` (mean `1/(2N) sum ||z_n - y_n||^2`, so
            `Lambda = I / N`), `"softmax_cross_entropy"` (mean cross-entropy of
            logits `(N, C)`, `Lambda = (diag p_n - p_n p_n^T) / N` per example), or
            a callable `(outputs, u) -> Lambda(outputs) u`. For any convex scalar loss
            `ell(outputs)` the callable is
            `lambda z, u: jax.jvp(jax.grad(ell), (z,), (u,))[1]`.
        damping: `lambda` in `+ lambda I`; `> 0` makes the metric positive definite.
        rtol: the relative residual tolerance of `raise_index`'s conjugate
            gradients, `||G u - w|| <= max(atol, rtol ||w||)`; `None` for the
            default of [`cg_solve`][geomhess.linalg.cg_solve] (`100 eps`:
            `2.2e-14` in float64, `1.2e-5` in float32).
        atol: the absolute residual tolerance, `None` for `0`.
        max_steps: the iteration cap of `raise_index` (a static int), `None` for
            `min(10 d, 10000)`; reaching it without meeting the tolerance raises.

    Example:
        ```python
        metric = gh.metrics.GaussNewton(mlp, X, "softmax_cross_entropy", damping=1e-3)
        gh.covariant_hvp(loss, gh.LeviCivita(metric), params, v)
        ```
    """

    model: Callable
    inputs: object
    loss_hessian: Callable
    damping: float | jax.Array
    rtol: float | None
    atol: float | None
    max_steps: int | None = eqx.field(static=True)

    def __init__(
        self,
        model: Callable,
        inputs,
        loss_hessian: str | Callable = "squared_error",
        damping: float | jax.Array = 0.0,
        *,
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int | None = None,
    ):
        if isinstance(loss_hessian, str):
            if loss_hessian not in _LOSS_CURVATURES:
                raise ValueError(
                    f"`metrics.GaussNewton`: unknown `loss_hessian={loss_hessian!r}`; "
                    f"expected one of {sorted(_LOSS_CURVATURES)} or a callable "
                    "`(outputs, u) -> Lambda u`."
                )
            loss_hessian = _LOSS_CURVATURES[loss_hessian]
        elif not callable(loss_hessian):
            raise ValueError(
                "`metrics.GaussNewton`: `loss_hessian` must be a name or a callable "
                f"`(outputs, u) -> Lambda u`, got {type(loss_hessian).__name__}."
            )
        _check_damping("metrics.GaussNewton", damping)
        check_solver_options("metrics.GaussNewton", rtol, atol, max_steps)
        self.model = model
        self.inputs = inputs
        self.loss_hessian = loss_hessian
        self.damping = damping
        self.rtol = rtol
        self.atol = atol
        self.max_steps = max_steps

    def output_curvature(self, outputs, u):
        return self.loss_hessian(outputs, u)


class Fisher(AbstractModelMetric):
    """The (expected) Fisher information metric of a model's likelihood, matrix-free.

    `F = 1/N sum_n E_{y ~ p(y | x_n, params)}[s_n s_n^T] + damping I` with the score
    `s_n = d log p(y | x_n, params) / d params`. For an exponential family in its
    natural parameter, written as the model's output (logits for `"categorical"`,
    the mean for `"gaussian"` with fixed variance), `F = J^T Lambda J` with `Lambda`
    the Hessian of the negative log-likelihood in output space, which does not
    depend on `y`: the expected Fisher *equals* the generalized Gauss-Newton matrix
    of the mean negative log-likelihood, and is computed by the same code
    ([`AbstractModelMetric`][geomhess.metrics.AbstractModelMetric]).

    - `"categorical"`: outputs are logits `(N, C)`; `Lambda_n = (diag p_n - p_n p_n^T) / N`.
    - `"gaussian"`: outputs are means `(N, ...)` of `N(mean, variance I)`;
      `Lambda = I / (N variance)`.

    Cost per `mvp`: one JVP and one VJP of the model. This is the expected (true)
    Fisher, not the "empirical Fisher" built from the observed labels' gradients.

    Args:
        model: `model(params, inputs) -> outputs` on the whole batch.
        inputs: the batch (any pytree).
        likelihood: `"categorical"` or `"gaussian"`.
        variance: the Gaussian noise variance (ignored for `"categorical"`).
        damping: `lambda` in `+ lambda I`; `> 0` makes the metric positive definite.
        rtol: the relative residual tolerance of `raise_index`'s conjugate
            gradients, `||G u - w|| <= max(atol, rtol ||w||)`; `None` for the
            default of [`cg_solve`][geomhess.linalg.cg_solve] (`100 eps`:
            `2.2e-14` in float64, `1.2e-5` in float32).
        atol: the absolute residual tolerance, `None` for `0`.
        max_steps: the iteration cap of `raise_index` (a static int), `None` for
            `min(10 d, 10000)`; reaching it without meeting the tolerance raises.
    """

    model: Callable
    inputs: object
    likelihood: str = eqx.field(static=True)
    variance: float | jax.Array
    damping: float | jax.Array
    rtol: float | None
    atol: float | None
    max_steps: int | None = eqx.field(static=True)

    def __init__(
        self,
        model: Callable,
        inputs,
        likelihood: str = "categorical",
        *,
        variance: float | jax.Array = 1.0,
        damping: float | jax.Array = 0.0,
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int | None = None,
    ):
        if likelihood not in ("categorical", "gaussian"):
            raise ValueError(
                f"`metrics.Fisher`: unknown `likelihood={likelihood!r}`; expected "
                "'categorical' (logits) or 'gaussian' (means, fixed variance)."
            )
        if isinstance(variance, (int, float)) and not variance > 0:
            raise ValueError(
                f"`metrics.Fisher`: `variance` must be positive, got {variance}."
            )
        _check_damping("metrics.Fisher", damping)
        check_solver_options("metrics.Fisher", rtol, atol, max_steps)
        self.model = model
        self.inputs = inputs
        self.likelihood = likelihood
        self.variance = variance
        self.damping = damping
        self.rtol = rtol
        self.atol = atol
        self.max_steps = max_steps

    def output_curvature(self, outputs, u):
        if self.likelihood == "categorical":
            return softmax_cross_entropy_curvature(outputs, u)
        lambda_u = squared_error_curvature(outputs, u)
        return jtu.tree_map(
            lambda leaf: leaf / jnp.asarray(self.variance, leaf.dtype), lambda_u
        )


def _check_damping(caller: str, damping):
    if isinstance(damping, (int, float)) and not damping >= 0:
        raise ValueError(f"`{caller}`: `damping` must be >= 0, got {damping}.")


def _is_metric(node) -> bool:
    return isinstance(node, AbstractMetric)


def _is_scalar(node) -> bool:
    return isinstance(node, (int, float)) or (
        isinstance(node, (jax.Array, np.ndarray)) and node.ndim == 0
    )


class PerLayer(AbstractMetric):
    """A block-diagonal metric: one scale or one metric per subtree of the parameters.

    `blocks` is a pytree prefix of the point. Each of its leaves is either a positive
    number `c` (the block is `c I`) or an [`AbstractMetric`][geomhess.AbstractMetric]
    acting on that subtree (position dependent if that metric is). For example
    `PerLayer({"W1": 2.0, "b1": 1.0, "W2": gh.metrics.Euclidean()})` on
    `params = {"W1": ..., "b1": ..., "W2": ...}`, or `PerLayer(c)` for `c I`.

    `mvp` and `raise_index` act block by block, matrix-free on any pytree (cost: one
    block `mvp` / `raise_index` each, elementwise for scalar blocks); `matrix` is
    for 1-D points (a single block). Scalar blocks must be positive: a traced
    non-positive scale raises in `raise_index` through `equinox.error_if`, a
    concrete one at construction.
    """

    blocks: object

    def __init__(self, blocks):
        for leaf in jtu.tree_leaves(blocks, is_leaf=_is_metric):
            if _is_metric(leaf):
                continue
            if isinstance(leaf, (int, float)) and not leaf > 0:
                raise ValueError(
                    f"`metrics.PerLayer`: every scalar block must be > 0, got {leaf}."
                )
            if not isinstance(leaf, (int, float)) and jnp.ndim(leaf) != 0:
                raise ValueError(
                    "`metrics.PerLayer`: each block is a positive number or a metric; "
                    f"got an array of shape {jnp.shape(leaf)}. For one weight per "
                    "coordinate use `metrics.Diagonal`."
                )
        self.blocks = blocks

    def _map(self, scalar_op, metric_op, x, v):
        def apply(block, x_sub, v_sub):
            if _is_metric(block):
                return metric_op(block, x_sub, v_sub)
            return jtu.tree_map(
                lambda leaf: scalar_op(jnp.asarray(block, leaf.dtype), leaf), v_sub
            )

        if _is_metric(self.blocks) or _is_scalar(self.blocks):
            return apply(self.blocks, x, v)
        try:
            return jtu.tree_map(apply, self.blocks, x, v, is_leaf=_is_metric)
        except ValueError as error:
            raise ValueError(
                f"`metrics.PerLayer`: `blocks` (structure "
                f"{jtu.tree_structure(self.blocks, is_leaf=_is_metric)}) must be a "
                f"pytree prefix of the point (structure {jtu.tree_structure(x)})."
            ) from error

    def mvp(self, x, v):
        check_like("metrics.PerLayer.mvp", "v", v, x)
        return self._map(jnp.multiply, lambda m, x_, v_: m.mvp(x_, v_), x, v)

    def raise_index(self, x, w):
        check_like("metrics.PerLayer.raise_index", "w", w, x)

        def divide(c, leaf):
            c = error_if(
                c,
                ~(c > 0),
                "`metrics.PerLayer.raise_index`: a scalar block is not positive, so "
                "the metric is not positive definite.",
            )
            return leaf / c

        return self._map(divide, lambda m, x_, w_: m.raise_index(x_, w_), x, w)

    def matrix(self, x):
        check_point("metrics.PerLayer.matrix", x, flat=True)
        return on_basis(lambda v: self.mvp(x, v), x)
