"""Invariant spectral quantities of the shape operator, matrix-free on pytrees.

The shape operator `E = G^{-1} nabla^2 f` (the covariant Hessian with one index
raised by the metric) is a linear map of the tangent space to itself, so its trace,
eigenvalues, log-determinant and spectral density are the same numbers in every
chart. This module estimates them with randomized and Krylov methods that only
apply the operator to vectors, so the point may be a network's parameter pytree:

| quantity | method | cost |
| --- | --- | --- |
| `tr E` | Hutchinson, or Hutch++ (Meyer, Musco, Musco, Woodruff 2021) | one HVP per probe |
| top-`k` eigenvalues | Lanczos in the `G` inner product, full reorthogonalization | one HVP per iteration |
| `log det E`, spectral density | stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017) | one HVP per probe per iteration |

"HVP" here is one covariant Hessian-vector product plus one `raise_index` (for
the Levi-Civita connection of a non-Euclidean metric the HVP itself also contains a
`raise_index` and a few metric JVPs, see [`covariant_hvp`][geomhess.covariant_hvp]).

The naive, calculus counterparts (the quantities PyHessian reports) are the same
functions with `metric=gh.metrics.Euclidean()`, where the connection is flat and
`E` is the calculus Hessian; `hessian_trace`, `hessian_eigenvalues`,
`hessian_logdet` and `hessian_density` are thin aliases for that. Comparing the two
across a reparametrization shows which numbers are geometry and which are chart.

Coordinates: `x` is the point in the coordinates `f` and `metric` are written in
(any pytree of floating arrays with one dtype); Hutchinson's probes and the Krylov
vectors are pytrees shaped like the point, Hutch++'s sketch is raveled with
`jax.flatten_util.ravel_pytree` (its QR needs one matrix), and only blocks of `k`
vectors (a sketch, a Krylov basis) are stored, never a `(d, d)` matrix. Every
function takes an explicit `key`; with the same key the result is deterministic.
"""

import numbers
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._core.checks import check_finite, check_point
from .._core.lanczos import lanczos, tridiagonal_eigh
from .._core.tree import rows_combine, rows_vdot, tree_random, tree_vdot
from ..connections import Flat, LeviCivita
from ..metrics import Euclidean
from ..operators._coerce import as_metric
from ..operators._hessian import covariant_hvp


# ---------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------


class TraceEstimate(eqx.Module):
    """A randomized estimate of `tr(G^{-1} nabla^2 f)`.

    Attributes:
        estimate: the estimate of the trace.
        std_error: the estimated standard error of `estimate`: the sample standard
            deviation of the Hutchinson terms over `sqrt(number of terms)` (for
            Hutch++ only the residual part is random, and the error is zero once
            the sketch spans the whole space). About 95% of estimates fall within
            two standard errors of the truth when the number of terms is not tiny.
            NaN when there are fewer than 2 random terms (e.g. Hutch++ with
            `num_probes` 3 to 5).
        num_probes: the budget, the number of operator applications used.
        method: `"hutchinson"` or `"hutch++"`.
    """

    estimate: Float[Array, ""]
    std_error: Float[Array, ""]
    num_probes: int = eqx.field(static=True)
    method: str = eqx.field(static=True)


class EigenvalueEstimate(eqx.Module):
    """Ritz values of the shape operator from Lanczos.

    Attributes:
        eigenvalues: the `k` selected Ritz values, in the order of `which`.
        residuals: for each, the `G`-norm of the Ritz vector's residual,
            `||E y - theta y||_G` with `||y||_G = 1`: an eigenvalue of `E` lies
            within this distance of the Ritz value (a rigorous bound in exact
            arithmetic, up to `O(eps ||E||)` rounding). For an isolated eigenvalue
            with gap `delta` to the rest of the spectrum the error is also at most
            `residual**2 / delta`.
        num_iterations: the number of Lanczos steps taken.
        eigenvectors: with `return_eigenvectors=True`, the Ritz vectors `y`
            (tangent vectors at `x`, `G`-orthonormal, `E y ~= theta y`) stacked
            along a new leading axis of every leaf of `x`; otherwise `None`.
    """

    eigenvalues: Float[Array, " k"]
    residuals: Float[Array, " k"]
    num_iterations: int = eqx.field(static=True)
    eigenvectors: object = None


class LogdetEstimate(eqx.Module):
    """A stochastic Lanczos quadrature estimate of `log |det(E + shift I)|`.

    Attributes:
        estimate: the estimate.
        std_error: the standard error from the probes (sample standard deviation
            over `sqrt(num_probes)`). It does not include the quadrature error of
            `num_iterations` Lanczos steps, which is small when the spectrum is
            away from zero (it decays geometrically with `num_iterations` at a
            rate set by the condition number).
        num_probes: the number of probe vectors.
        num_iterations: the Lanczos steps per probe.
    """

    estimate: Float[Array, ""]
    std_error: Float[Array, ""]
    num_probes: int = eqx.field(static=True)
    num_iterations: int = eqx.field(static=True)


class SpectralDensity(eqx.Module):
    """A smoothed estimate of the spectral density of the shape operator.

    The density is `phi(t) = (1/d) sum_i N(t; lambda_i, sigma^2)` over the `d`
    eigenvalues of `E`; it integrates to 1 over the real line.

    Attributes:
        grid: the points `t` where the density is evaluated.
        density: the estimate of `phi` on `grid`.
        std_error: the pointwise standard error over the probes.
        nodes: the quadrature nodes (Ritz values) of each probe, shape
            `(num_probes, m)`.
        weights: the matching quadrature weights, normalized so each probe's
            weights sum to 1. With a Euclidean metric they are nonnegative (the
            classical SLQ); with another metric they can be of either sign (see
            [`shape_operator_density`][geomhess.linalg.shape_operator_density]).
        sigma: the Gaussian smoothing width.
    """

    grid: Float[Array, " g"]
    density: Float[Array, " g"]
    std_error: Float[Array, " g"]
    nodes: Float[Array, "n m"]
    weights: Float[Array, "n m"]
    sigma: Float[Array, ""]


# ---------------------------------------------------------------------------------
# The operator
# ---------------------------------------------------------------------------------


def _ravel(tree):
    # The barrier keeps XLA from fusing the elementwise work that produces the
    # leaves into the concatenation: on XLA:CPU such a fused concatenate ran
    # several times slower than the same work done apart and then copied.
    return ravel_pytree(jax.lax.optimization_barrier(tree))[0]


class _ShapeOperator(eqx.Module):
    """`H`, `G^{-1}` and `G` at a point, on tangent vectors shaped like the point.

    Lanczos and Hutchinson use these as they are; `flat` gives the same maps on
    raveled `(d,)` vectors, for Hutch++'s sketch (a `(k, d)` matrix for QR).
    """

    f: Callable
    metric: object
    connection: object
    x: object
    unravel: Callable
    euclidean: bool = eqx.field(static=True)

    def hvp(self, v):
        return covariant_hvp(self.f, self.connection, self.x, v)

    def raise_index(self, w):
        return self.metric.raise_index(self.x, w)

    def mvp(self, v):
        return self.metric.mvp(self.x, v)

    def apply(self, v):
        """`E v = G^{-1} H v`."""
        return self.raise_index(self.hvp(v))

    def flat(self, method):
        """`method` (one of the maps above) on raveled `(d,)` vectors."""
        return lambda v: _ravel(method(self.unravel(v)))

    def run_lanczos(self, v0, num_iterations, key):
        """[`lanczos`][] on this operator; for `G = I` without storing `Z = G V`."""
        if self.euclidean:
            return lanczos(self.hvp, None, None, v0, num_iterations, key)
        return lanczos(self.hvp, self.raise_index, self.mvp, v0, num_iterations, key)


def _shape_operator(caller, f, metric, x):
    check_point(caller, x)
    dtypes = {jnp.result_type(leaf) for leaf in jax.tree_util.tree_leaves(x)}
    if len(dtypes) != 1:
        raise ValueError(
            f"`{caller}`: all leaves of the point `x` must share one dtype, got "
            f"{sorted(str(d) for d in dtypes)}."
        )
    metric = as_metric(caller, metric)
    # The Levi-Civita connection of the Euclidean metric is flat: skip its (zero)
    # contraction, so the naive quantities cost exactly one Hessian-vector product.
    euclidean = isinstance(metric, Euclidean)
    connection = Flat() if euclidean else LeviCivita(metric)
    x = check_finite(caller, x)
    flat, unravel = ravel_pytree(x)
    return _ShapeOperator(f, metric, connection, x, unravel, euclidean), flat


def _check_key(caller, key):
    if not isinstance(key, jax.Array) or not (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        raise ValueError(
            f"`{caller}`: `key` must be a `jax.random` key (e.g. "
            f"`jax.random.key(0)`), got {type(key).__name__} "
            f"{getattr(key, 'shape', '')} {getattr(key, 'dtype', '')}."
        )


def _check_positive_int(caller, name, value, minimum=1):
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < minimum
    ):
        raise ValueError(
            f"`{caller}`: `{name}` must be an int >= {minimum}, got {value!r}."
        )
    return int(value)


def _mean_and_error(samples):
    n = samples.shape[0]
    mean = jnp.mean(samples, axis=0)
    if n < 2:
        return mean, jnp.full_like(mean, jnp.nan)
    std = jnp.std(samples, axis=0, ddof=1)
    return mean, std / jnp.sqrt(jnp.asarray(n, samples.dtype))


# ---------------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------------


def _map_probes(fn, xs, batch_size):
    """`jax.lax.map(fn, xs, batch_size=batch_size)`, but one `vmap` when a single
    batch holds every probe: `lax.map` would still wrap that batch in a one-trip
    scan, and XLA:CPU runs a convolution inside a loop many times slower than
    outside one (`benchmarks/profile_curvature.md`, sections 1 and 2)."""
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if batch_size is not None and batch_size >= n:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=batch_size)


def _hutchinson(op, key, num_probes, batch_size):
    # On the pytree itself, one Rademacher array per leaf: raveling each probe and
    # unraveling each product would copy every parameter four times per probe.
    def sample(k):
        z = tree_random(jr.rademacher, k, op.x)
        return tree_vdot(z, op.apply(z))

    samples = _map_probes(sample, jr.split(key, num_probes), batch_size=batch_size)
    return _mean_and_error(samples)


def _hutch_plus_plus(op, flat, key, num_probes, batch_size):
    (d,) = flat.shape
    k = num_probes // 3
    apply, mvp, hvp, raise_index = map(
        op.flat, (op.apply, op.mvp, op.hvp, op.raise_index)
    )
    sketch_key, residual_key = jr.split(key)
    # The sketch: range of E S for a Rademacher S, then an orthonormal basis U
    # (Householder QR, so U is orthonormal even when E S is rank deficient).
    S = jr.rademacher(sketch_key, (k, d), flat.dtype)
    Y = _map_probes(apply, S, batch_size=batch_size)
    U = jnp.linalg.qr(Y.T)[0].T  # (r, d), r = min(k, d)
    # The G-orthogonal projector onto span(U) is P = U^T M^{-1} U G with
    # M = U G U^T; since E is G-self-adjoint, tr(P E) = tr(M^{-1} U H U^T), a small
    # symmetric problem.
    GU = _map_probes(mvp, U, batch_size=batch_size)
    HU = _map_probes(hvp, U, batch_size=batch_size)
    M = U @ GU.T
    M = 0.5 * (M + M.T)
    A = U @ HU.T
    A = 0.5 * (A + A.T)
    factor = jsl.cho_factor(M, lower=True)
    head = jnp.trace(jsl.cho_solve(factor, A))
    if U.shape[0] == d:
        # The sketch spans the tangent space: P = I and the trace is exact.
        return head, jnp.zeros((), flat.dtype)

    # tr((I - P) E) by Hutchinson: z^T (I - P) E (I - P) z, using G E y = H y so that
    # (I - P) is applied on the left without another G product.
    def sample(key_):
        z = jr.rademacher(key_, (d,), flat.dtype)
        y = z - jsl.cho_solve(factor, U @ mvp(z)) @ U
        h = hvp(y)
        return jnp.vdot(z, raise_index(h)) - jnp.vdot(
            U @ z, jsl.cho_solve(factor, U @ h)
        )

    num_residual = num_probes - 2 * k
    samples = _map_probes(
        sample, jr.split(residual_key, num_residual), batch_size=batch_size
    )
    tail, error = _mean_and_error(samples)
    return head + tail, error


@eqx.filter_jit
def _trace_impl(f, metric, x, key, num_probes, method, batch_size):
    op, flat = _shape_operator("shape_operator_trace", f, metric, x)
    if method == "hutchinson":
        estimate, error = _hutchinson(op, key, num_probes, batch_size)
    else:
        estimate, error = _hutch_plus_plus(op, flat, key, num_probes, batch_size)
    return TraceEstimate(estimate, error, num_probes, method)


def shape_operator_trace(
    f,
    metric,
    x,
    *,
    key,
    num_probes: int = 99,
    method: str = "hutch++",
    batch_size: int | None = None,
) -> TraceEstimate:
    """Randomized trace of the shape operator, `tr(G^{-1} nabla^2 f)` at `x`.

    The trace is invariant under reparametrization (the Laplace-Beltrami of `f` at
    a critical point). Both methods use Rademacher probes `z` with `E[z z^T] = I`,
    so `E[z^T E z] = tr E`:

    - `"hutchinson"`: the mean of `z^T G^{-1} (nabla^2 f z)` over `num_probes`
      probes. Cost per probe: one covariant HVP and one `raise_index`.
    - `"hutch++"` (Meyer et al. 2021, Algorithm 1, adapted to the `G` inner
      product): with `k = num_probes // 3`, sketch `Y = E S` for a `d x k`
      Rademacher `S`, take an orthonormal basis `U` of its range and the
      `G`-orthogonal projector `P` onto it; then `tr E = tr(P E) + tr((I-P) E (I-P))`.
      The first term is exact, `tr(M^{-1} U H U^T)` with `M = U G U^T` (`k` HVPs,
      `k` metric products), and the second is Hutchinson with the remaining
      `num_probes - 2k` probes (one HVP, one `raise_index`, one metric product
      each). Deflating the dominant eigen-directions lowers the variance from
      `O(1/sqrt(n))` to `O(1/n)` relative for fast-decaying spectra; once
      `num_probes // 3 >= d` the sketch spans everything and the result is exact
      (reported `std_error` 0). Hutch++ is used rather than XTrace because its
      error estimate is a plain sample standard error and its memory is one
      `(k, d)` block.

    The estimator's mean is invariant; its variance (and so `std_error`) is not,
    because the probe distribution is written in the coordinates of `x`.

    Args:
        f: a scalar function of the point (e.g. a [`ScalarField`][geomhess.ScalarField]).
        metric: the metric in the same coordinates (its Levi-Civita connection is
            used); `gh.metrics.Euclidean()` gives the naive calculus trace.
        x: the point, any pytree of floating arrays of one dtype.
        key: a `jax.random` key.
        num_probes: the budget: the number of covariant HVPs (at least 1 for
            Hutchinson, 3 for Hutch++).
        method: `"hutch++"` (default) or `"hutchinson"`.
        batch_size: how many probes to evaluate at once; default one at a time
            (a loop, memory `O(d)`). Smaller than the number of probes: a loop over
            batches (`jax.lax.map`), memory `O(batch_size d)`; at least the number
            of probes: all in one `vmap` with no loop, the fastest where memory
            allows (on XLA:CPU a convolution inside a loop is many times slower,
            `benchmarks/profile_curvature.md`).

    Returns:
        A [`TraceEstimate`][geomhess.linalg.TraceEstimate] with `.estimate`,
        `.std_error`, `.num_probes`.
    """
    caller = "shape_operator_trace"
    _check_key(caller, key)
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(
            f"`{caller}`: `method` must be 'hutch++' or 'hutchinson', got {method!r}."
        )
    num_probes = _check_positive_int(
        caller, "num_probes", num_probes, minimum=3 if method == "hutch++" else 1
    )
    return _trace_impl(f, metric, x, key, num_probes, method, batch_size)


# ---------------------------------------------------------------------------------
# Eigenvalues
# ---------------------------------------------------------------------------------


_WHICH = ("largest", "smallest", "magnitude")


@eqx.filter_jit
def _ritz_impl(f, metric, x, key, num_iterations, vectors):
    # `k` and `which` only select among the Ritz values, outside this function, so
    # that calls differing in them share one compilation.
    op, flat = _shape_operator("shape_operator_eigenvalues", f, metric, x)
    start_key, restart_key = jr.split(key)
    v0 = op.unravel(jr.normal(start_key, flat.shape, flat.dtype))
    decomposition = op.run_lanczos(v0, num_iterations, restart_key)
    theta, S, residuals = tridiagonal_eigh(decomposition)
    # Ritz vectors y_i = V^T S[:, i], a block of m rows.
    ritz_vectors = rows_combine(S, decomposition.basis) if vectors else None
    return theta, residuals, ritz_vectors


def shape_operator_eigenvalues(
    f,
    metric,
    x,
    *,
    key,
    k: int = 5,
    num_iterations: int | None = None,
    which: str = "largest",
    return_eigenvectors: bool = False,
) -> EigenvalueEstimate:
    """Extreme eigenvalues of the shape operator `G^{-1} nabla^2 f` by Lanczos.

    These are the generalized eigenvalues of the symmetric pencil
    `(nabla^2 f, G)`, invariant under reparametrization. Lanczos runs on
    `E = G^{-1} nabla^2 f` in the `G` inner product, where `E` is self-adjoint, from
    a random Gaussian start vector, with full reorthogonalization (so it is meant
    for `num_iterations` up to a few hundred). Ritz values converge first at the
    ends of the spectrum; check `.residuals`.

    Args:
        f: a scalar function of the point.
        metric: the metric in the same coordinates (Levi-Civita connection);
            `gh.metrics.Euclidean()` gives the naive Hessian eigenvalues.
        x: the point, any pytree of floating arrays of one dtype.
        key: a `jax.random` key (start vector and restarts).
        k: how many eigenvalues to return.
        num_iterations: Lanczos steps `m`, default `max(3k, 30)`; capped at `d`.
            With `m = d` the Ritz values are all the eigenvalues.
        which: `"largest"` (largest algebraic first, the default), `"smallest"`
            (smallest algebraic first) or `"magnitude"` (largest `|lambda|` first,
            the quantity power iteration finds).
        return_eigenvectors: also return the Ritz vectors (`O(k d)` memory).
            They are tangent vectors: under a chart they transform as `J y`.

    Returns:
        An [`EigenvalueEstimate`][geomhess.linalg.EigenvalueEstimate] with
        `.eigenvalues`, `.residuals` (and `.eigenvectors`). Cost: `m` covariant
        HVPs and `m` `raise_index`, `O(m d)` memory and `O(m^2 d)` flops.
    """
    caller = "shape_operator_eigenvalues"
    _check_key(caller, key)
    k = _check_positive_int(caller, "k", k)
    if which not in _WHICH:
        raise ValueError(f"`{caller}`: `which` must be one of {_WHICH}, got {which!r}.")
    d = _size(x)
    num_iterations = max(3 * k, 30) if num_iterations is None else num_iterations
    num_iterations = min(
        _check_positive_int(caller, "num_iterations", num_iterations), d
    )
    if k > num_iterations:
        raise ValueError(
            f"`{caller}`: `k={k}` exceeds the number of Lanczos iterations "
            f"({num_iterations}, capped at the dimension d={d})."
        )
    theta, residuals, ritz_vectors = _ritz_impl(
        f, metric, x, key, num_iterations, bool(return_eigenvectors)
    )
    if which == "largest":
        order = jnp.argsort(-theta)
    elif which == "smallest":
        order = jnp.argsort(theta)
    else:
        order = jnp.argsort(-jnp.abs(theta))
    order = order[:k]
    eigenvectors = None
    if ritz_vectors is not None:
        eigenvectors = jax.tree_util.tree_map(lambda rows: rows[order], ritz_vectors)
    return EigenvalueEstimate(
        theta[order], residuals[order], num_iterations, eigenvectors
    )


def _size(x):
    return sum(int(jnp.size(leaf)) for leaf in jax.tree_util.tree_leaves(x))


# ---------------------------------------------------------------------------------
# Stochastic Lanczos quadrature
# ---------------------------------------------------------------------------------


def _slq_nodes_weights(op, flat, key, num_probes, num_iterations, batch_size):
    """Quadrature nodes and weights with `z^T f(E) z ~= sum_i w_i f(theta_i)`.

    Lanczos in the `G` inner product from a Rademacher `z` gives
    `f(E) z ~= ||z||_G V^T f(T) e_1`, so
    `z^T f(E) z ~= ||z||_G sum_i (c . s_i) s_i[0] f(theta_i)` with `c = V z` the
    Euclidean projections of `z` on the basis. With `G = I`, `c = ||z|| e_1` and the
    weights are the classical `||z||^2 s_i[0]^2 >= 0`.
    """

    def probe(key_):
        probe_key, restart_key = jr.split(key_)
        z = op.unravel(jr.rademacher(probe_key, flat.shape, flat.dtype))
        decomposition = op.run_lanczos(z, num_iterations, restart_key)
        theta, S, _ = tridiagonal_eigh(decomposition)
        c = rows_vdot(decomposition.basis, z)
        weights = decomposition.start_norm * (c @ S) * S[0]
        return theta, weights

    return _map_probes(probe, jr.split(key, num_probes), batch_size=batch_size)


def _check_slq(caller, key, num_probes, num_iterations, x):
    _check_key(caller, key)
    num_probes = _check_positive_int(caller, "num_probes", num_probes)
    num_iterations = _check_positive_int(caller, "num_iterations", num_iterations)
    return num_probes, min(num_iterations, _size(x))


@eqx.filter_jit
def _logdet_impl(f, metric, x, key, num_probes, num_iterations, shift, batch_size):
    op, flat = _shape_operator("shape_operator_logdet", f, metric, x)
    nodes, weights = _slq_nodes_weights(
        op, flat, key, num_probes, num_iterations, batch_size
    )
    values = jnp.log(jnp.abs(nodes + jnp.asarray(shift, flat.dtype)))
    # A node with zero weight (from a restarted, decoupled Krylov block) must not
    # turn the sum into NaN through log(0).
    samples = jnp.sum(jnp.where(weights == 0, 0, weights * values), axis=1)
    estimate, error = _mean_and_error(samples)
    return LogdetEstimate(estimate, error, num_probes, num_iterations)


def shape_operator_logdet(
    f,
    metric,
    x,
    *,
    key,
    num_probes: int = 30,
    num_iterations: int = 30,
    shift: float = 0.0,
    batch_size: int | None = None,
) -> LogdetEstimate:
    """`log |det(E + shift I)|` of the shape operator by stochastic Lanczos quadrature.

    `log |det E| = tr log|E| = E_z[z^T log|E| z]` for Rademacher `z`; each quadratic
    form is a Gauss-type quadrature from `num_iterations` Lanczos steps in the `G`
    inner product (see `shape_operator_density` for the weights). Invariant under
    reparametrization, and equal to `log|det nabla^2 f| - log det G` (the naive
    calculus log-determinant is chart dependent). `shift` adds `shift * I` to `E`
    (e.g. a damping that makes it positive definite; `E + shift I` is still a
    tensor).

    Validity: the quadrature converges fast when `E + shift I` is positive (or
    negative) definite and well conditioned, the usual SLQ setting. With eigenvalues
    near zero, or of both signs, `log|.|` is not smooth on the spectrum and the
    quadrature error (not in `.std_error`) can dominate; increase `num_iterations`.

    Args:
        f: a scalar function of the point.
        metric: the metric (Levi-Civita connection); `Euclidean()` for the naive one.
        x: the point, any pytree of floating arrays of one dtype.
        key: a `jax.random` key.
        num_probes: the number of Rademacher probes (>= 2 for an error estimate).
        num_iterations: Lanczos steps per probe (capped at `d`; exact at `d`).
        shift: a number added to every eigenvalue.
        batch_size: probes evaluated at once, default one (as in
            [`shape_operator_trace`][geomhess.linalg.shape_operator_trace]: at
            least `num_probes` runs them all in one `vmap`, with no loop).

    Returns:
        A [`LogdetEstimate`][geomhess.linalg.LogdetEstimate]. Cost:
        `num_probes * num_iterations` covariant HVPs and `raise_index`, memory
        `O(num_iterations * d)` per probe in flight.
    """
    num_probes, num_iterations = _check_slq(
        "shape_operator_logdet", key, num_probes, num_iterations, x
    )
    return _logdet_impl(
        f, metric, x, key, num_probes, num_iterations, shift, batch_size
    )


@eqx.filter_jit
def _density_impl(
    f, metric, x, key, num_probes, num_iterations, grid, sigma, batch_size
):
    op, flat = _shape_operator("shape_operator_density", f, metric, x)
    nodes, weights = _slq_nodes_weights(
        op, flat, key, num_probes, num_iterations, batch_size
    )
    # For Rademacher probes every probe's weights sum to z^T z = d exactly.
    weights = weights / jnp.asarray(flat.shape[0], flat.dtype)
    grid = jnp.asarray(grid, flat.dtype)
    sigma = jnp.asarray(sigma, flat.dtype)
    scaled = (grid[None, None, :] - nodes[:, :, None]) / sigma
    kernel = jnp.exp(-0.5 * scaled**2) / (
        sigma * jnp.sqrt(2 * jnp.pi).astype(flat.dtype)
    )
    per_probe = jnp.sum(weights[:, :, None] * kernel, axis=1)
    density, error = _mean_and_error(per_probe)
    return SpectralDensity(grid, density, error, nodes, weights, sigma)


def shape_operator_density(
    f,
    metric,
    x,
    *,
    key,
    grid,
    sigma: float | None = None,
    num_probes: int = 10,
    num_iterations: int = 50,
    batch_size: int | None = None,
) -> SpectralDensity:
    """Spectral density of the shape operator by stochastic Lanczos quadrature.

    Estimates `phi(t) = (1/d) sum_i N(t; lambda_i, sigma^2)` over the eigenvalues
    `lambda_i` of `E = G^{-1} nabla^2 f` (Ghorbani, Krishnan, Xiao 2019 for the
    calculus Hessian). For each Rademacher probe `z`, Lanczos in the `G` inner
    product gives nodes `theta_i` and weights `w_i` with
    `z^T g(E) z ~= sum_i w_i g(theta_i)` for smooth `g`; the density is the probe
    average of `(1/d) sum_i w_i N(t; theta_i, sigma^2)`. Each probe's weights sum to
    exactly 1 after the `1/d`, so the density integrates to 1 (up to the part of the
    Gaussians outside `grid`).

    With `G = I` the weights are the classical nonnegative Gauss weights. With
    another metric the quadrature is "two-sided" (`z` paired with `f(E) z` in the
    Euclidean product, because `E` is only `G`-self-adjoint), so individual weights
    can be negative and a few-probe density can dip slightly below zero; it is
    unbiased as `num_probes` grows, and the spectrum it estimates is invariant.

    Args:
        f: a scalar function of the point.
        metric: the metric (Levi-Civita connection); `Euclidean()` for the naive one.
        x: the point, any pytree of floating arrays of one dtype.
        key: a `jax.random` key.
        grid: the points `t`, a 1-D array.
        sigma: the smoothing width; default 1% of the grid's span.
        num_probes: the number of probes.
        num_iterations: Lanczos steps per probe (capped at `d`).
        batch_size: probes evaluated at once, default one (as in
            [`shape_operator_trace`][geomhess.linalg.shape_operator_trace]).

    Returns:
        A [`SpectralDensity`][geomhess.linalg.SpectralDensity] with `.grid`,
        `.density`, `.std_error`, `.nodes`, `.weights`. Cost:
        `num_probes * num_iterations` covariant HVPs and `raise_index`.
    """
    caller = "shape_operator_density"
    num_probes, num_iterations = _check_slq(caller, key, num_probes, num_iterations, x)
    if jnp.ndim(grid) != 1 or jnp.size(grid) < 2:
        raise ValueError(
            f"`{caller}`: `grid` must be a 1-D array of at least 2 points, got "
            f"shape {jnp.shape(grid)}."
        )
    if sigma is None:
        sigma = (jnp.max(grid) - jnp.min(grid)) / 100
    return _density_impl(
        f, metric, x, key, num_probes, num_iterations, grid, sigma, batch_size
    )


# ---------------------------------------------------------------------------------
# The naive (calculus) counterparts
# ---------------------------------------------------------------------------------


def hessian_trace(f, x, **kwargs) -> TraceEstimate:
    """The naive trace of the calculus Hessian, `tr d^2 f` (PyHessian's trace).

    `shape_operator_trace(f, gh.metrics.Euclidean(), x, **kwargs)`: chart
    dependent; compare it with the invariant trace under a reparametrization.
    """
    return shape_operator_trace(f, Euclidean(), x, **kwargs)


def hessian_eigenvalues(f, x, **kwargs) -> EigenvalueEstimate:
    """The naive top eigenvalues of the calculus Hessian `d^2 f` (PyHessian's).

    `shape_operator_eigenvalues(f, gh.metrics.Euclidean(), x, **kwargs)`.
    """
    return shape_operator_eigenvalues(f, Euclidean(), x, **kwargs)


def hessian_logdet(f, x, **kwargs) -> LogdetEstimate:
    """The naive `log |det d^2 f|` by SLQ.

    `shape_operator_logdet(f, gh.metrics.Euclidean(), x, **kwargs)`.
    """
    return shape_operator_logdet(f, Euclidean(), x, **kwargs)


def hessian_density(f, x, **kwargs) -> SpectralDensity:
    """The naive spectral density of the calculus Hessian (PyHessian's ESD).

    `shape_operator_density(f, gh.metrics.Euclidean(), x, **kwargs)`.
    """
    return shape_operator_density(f, Euclidean(), x, **kwargs)
