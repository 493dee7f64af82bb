"""The Laplace evidence with the prior on the Riemannian volume (issue 14, part 2)."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._core.checks import check_point, error_if
from .._core.eigen import generalized_eigvalsh
from .._core.tree import on_basis, tree_sub, tree_vdot
from ..connections import Flat, LeviCivita
from ..linalg import shape_operator_eigenvalues, shape_operator_logdet
from ..metrics import Euclidean
from ..operators._coerce import as_metric
from ..operators._hessian import covariant_hvp


class Evidence(eqx.Module):
    """A Laplace estimate of the log marginal likelihood and its pieces.

    `estimate = log_likelihood + log_prior + d/2 log(2 pi) - logdet / 2`.

    Attributes:
        estimate: the Laplace log evidence `log Z`.
        std_error: its standard error, `logdet_std_error / 2` (zero on the dense
            path). It is the stochastic (probe) error of SLQ only, not its quadrature
            error, nor the error of the Laplace approximation itself.
        log_likelihood: `log p(D | x*)` at the point.
        log_prior: the prior's log density at the point, with respect to the
            Riemannian volume of the metric (the Lebesgue measure of the coordinates
            for [`naive_log_evidence`][geomhess.laplace.naive_log_evidence]).
        logdet: `log det E` of the posterior shape operator
            `E = G^{-1} nabla^2 (-log p(D | x) - log p(x))` at the point.
        logdet_std_error: the SLQ standard error of `logdet` (zero if dense).
        min_eigenvalue: the smallest eigenvalue of `E` (dense), or the smallest
            Ritz value of a Lanczos run (SLQ path; an upper bound on the smallest
            eigenvalue, so a value `<= 0` proves that the point is not a maximum).
        dimension: `d`, the number of parameters.
    """

    estimate: Float[Array, ""]
    std_error: Float[Array, ""]
    log_likelihood: Float[Array, ""]
    log_prior: Float[Array, ""]
    logdet: Float[Array, ""]
    logdet_std_error: Float[Array, ""]
    min_eigenvalue: Float[Array, ""]
    dimension: int = eqx.field(static=True)


_NOT_A_MAXIMUM = (
    "`{caller}`: the posterior shape operator has an eigenvalue <= 0 at `params`, so "
    "`params` is not a strict local maximum of the log joint and the Laplace "
    "approximation does not apply. Likely causes: (1) the optimization has not "
    "converged (train further, e.g. with L-BFGS in float64); (2) the prior is too "
    "weak for a flat direction of the likelihood (increase its precision); (3) the "
    "point is a saddle."
)


def gaussian_log_prior(metric, mean, precision) -> Callable:
    """An isotropic Gaussian in the metric: `log p(x) = -tau/2 |x - m|^2_G + d/2 log(tau / 2 pi)`.

    `|x - m|^2_G = <x - m, x - m>_{G(m)}` uses the metric at the mean `m`. The
    returned function is a log density **with respect to the Riemannian volume**
    `sqrt(det G) dx`, the form [`log_evidence`][geomhess.laplace.log_evidence] takes:
    for a constant metric (the Euclidean metric, or any constant metric carried
    through an affine chart, e.g. [`Scale`][geomhess.charts.Scale]) it is the
    Gaussian `N(m, (tau G)^{-1})` of the coordinates divided by `sqrt(det G)`, so
    it is exactly normalized, and it is the same function of the point in every
    affine chart: `x - m` is a vector and `G(m)` transforms as `J^{-T} G J^{-1}`. With
    `metric = gh.metrics.Euclidean()` in the coordinates `theta` and carried to
    `psi = chart(theta)` with `metric.reparametrize(chart)`, it is the usual
    `N(m, tau^{-1} I)` prior on `theta`, written in `psi`.

    For a position-dependent metric the normalization is that of the metric frozen at
    `m` (exact only to leading order in `1 / tau`), and under a nonlinear chart
    `x - m` is no longer a vector: the function is then invariant under affine charts
    only.

    Args:
        metric: the metric (in the coordinates of the point).
        mean: the mean `m`, a point (pytree) like the parameters.
        precision: `tau > 0`, a number or a scalar array.

    Returns:
        `log_prior(x)`, a scalar function of the point. Cost per call: one `metric.mvp`.
    """
    caller = "laplace.gaussian_log_prior"
    check_point(caller, mean)
    metric = as_metric(caller, metric)
    if isinstance(precision, (int, float)) and not precision > 0:
        raise ValueError(f"`{caller}`: `precision` must be > 0, got {precision}.")
    d = sum(int(jnp.size(leaf)) for leaf in jax.tree_util.tree_leaves(mean))

    def log_prior(x):
        delta = tree_sub(x, mean)
        squared = tree_vdot(delta, metric.mvp(mean, delta))
        tau = jnp.asarray(precision, squared.dtype)
        two_pi = jnp.asarray(2 * math.pi, squared.dtype)
        return -0.5 * tau * squared + 0.5 * d * jnp.log(tau / two_pi)

    return log_prior


def _dense_eigenvalues(f, metric, x):
    """Eigenvalues of `E = G^{-1} nabla^2 f`, dense: the covariant HVP and the metric
    applied to every basis vector, then the symmetric generalized eigenproblem."""
    flat, unravel = ravel_pytree(x)
    connection = Flat() if isinstance(metric, Euclidean) else LeviCivita(metric)

    def hvp(v):
        return ravel_pytree(covariant_hvp(f, connection, x, unravel(v)))[0]

    def mvp(v):
        return ravel_pytree(metric.mvp(x, unravel(v)))[0]

    return generalized_eigvalsh(
        on_basis(hvp, flat), on_basis(mvp, flat), caller="laplace.log_evidence"
    )


def log_evidence(
    log_likelihood: Callable,
    log_prior: Callable,
    metric,
    params,
    *,
    key=None,
    num_probes: int = 30,
    num_iterations: int = 30,
    dense: bool = False,
    batch_size: int | None = None,
) -> Evidence:
    """The Laplace log evidence with the invariant volume, at a MAP `params`.

    With `s(x) = log p(D | x) + log p_vol(x)` the log joint, where `p_vol` is the
    prior's density **with respect to the Riemannian volume** `dvol = sqrt(det G) dx`
    (a scalar function on the manifold, so `s` is one too), the evidence is
    `Z = integral exp(s) dvol`. In normal coordinates at the maximum `x*` the volume
    is `dx` to second order and the Hessian of `s` is `G^{-1} nabla^2 s`, so

    $$\\log Z \\approx \\log p(D\\mid x^*) + \\log p_{\\rm vol}(x^*) + \\tfrac d2 \\log 2\\pi
    - \\tfrac12 \\log\\det E, \\qquad E = G^{-1} \\nabla^2(-s)(x^*),$$

    with `nabla^2` the covariant Hessian (equal to the calculus one at a critical
    point). Every term is a scalar (`E` is a (1,1) tensor, its determinant is the
    same in every chart), so the estimate is **the same number in every chart**
    once the functions and the metric are carried to it (`ScalarField.reparametrize`,
    `metric.reparametrize`): exactly for the dense path, and for SLQ up to its
    error bar (probes are drawn in coordinates; under a uniform
    [`Scale`][geomhess.charts.Scale] the same `key` even gives the same estimate).

    The link with the Euclidean Laplace: `log det E = log det nabla^2(-s) - log det G`
    and the Lebesgue density of the prior is `p = p_vol sqrt(det G)`, so the two
    agree term by term when `G` is constant (up to where the expansion is taken
    otherwise). The Euclidean formula is invariant under a linear chart only if the
    user also transforms the prior as a density (`- log |det J|`); with the prior
    kept as the same function of the point (or an isotropic prior of fixed precision
    in whatever parameters one has) it moves: see
    [`naive_log_evidence`][geomhess.laplace.naive_log_evidence].
    [`gaussian_log_prior`][geomhess.laplace.gaussian_log_prior] builds `p_vol` for a
    Gaussian prior.

    Args:
        log_likelihood: `params -> log p(D | params)`, a scalar (the sum over the
            data, not the mean).
        log_prior: `params -> log p_vol(params)`, the prior's log density with
            respect to the metric's volume.
        metric: the metric `G` in the coordinates of `params` (its Levi-Civita
            connection is used for the covariant Hessian).
        params: the MAP, any pytree of floating arrays of one dtype.
        key: a `jax.random` key (required unless `dense=True`).
        num_probes: SLQ probes (`>= 2` for an error bar).
        num_iterations: Lanczos steps per probe (capped at `d`).
        dense: compute `log det E` exactly from the dense `(d, d)` matrices (for
            small `d`; `d` covariant HVPs and a generalized eigenproblem).
        batch_size: SLQ probes evaluated at once, default one (as in
            [`shape_operator_trace`][geomhess.linalg.shape_operator_trace]: at
            least the number of probes runs them all in one `vmap`, with no loop).

    Returns:
        An [`Evidence`][geomhess.laplace.Evidence]. Cost (SLQ):
        `(num_probes + 1) * num_iterations` covariant HVPs and `raise_index` (the
        extra Lanczos run gives `min_eigenvalue`).

    Raises:
        ValueError: (through `equinox.error_if`) if `E` has an eigenvalue `<= 0`
            (dense) or a Ritz value `<= 0` (SLQ): `params` is not a maximum.
    """
    caller = "laplace.log_evidence"
    check_point(caller, params)
    metric = as_metric(caller, metric)
    if not callable(log_likelihood) or not callable(log_prior):
        raise ValueError(
            f"`{caller}`: `log_likelihood` and `log_prior` must be functions of the "
            "parameters returning a scalar."
        )

    def negative_log_joint(x):
        return -(log_likelihood(x) + log_prior(x))

    d = sum(int(jnp.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
    likelihood_value = jnp.asarray(log_likelihood(params))
    prior_value = jnp.asarray(log_prior(params))
    if likelihood_value.shape != () or prior_value.shape != ():
        raise ValueError(
            f"`{caller}`: `log_likelihood` and `log_prior` must return scalars, got "
            f"shapes {likelihood_value.shape} and {prior_value.shape}."
        )
    dtype = likelihood_value.dtype
    if dense:
        eigenvalues = _dense_eigenvalues(negative_log_joint, metric, params)
        smallest = eigenvalues[0]
        logdet = jnp.sum(jnp.log(jnp.abs(eigenvalues)))
        logdet_error = jnp.zeros((), dtype)
    else:
        if key is None:
            raise ValueError(
                f"`{caller}`: the SLQ path needs `key=jax.random.key(...)`; or pass "
                "`dense=True` for a small network."
            )
        estimate = shape_operator_logdet(
            negative_log_joint,
            metric,
            params,
            key=key,
            num_probes=num_probes,
            num_iterations=num_iterations,
            batch_size=batch_size,
        )
        logdet, logdet_error = estimate.estimate, estimate.std_error
        smallest = shape_operator_eigenvalues(
            negative_log_joint,
            metric,
            params,
            key=jax.random.fold_in(key, 1),
            k=1,
            num_iterations=min(num_iterations, d),
            which="smallest",
        ).eigenvalues[0]
    logdet = error_if(logdet, ~(smallest > 0), _NOT_A_MAXIMUM.format(caller=caller))
    half_log_two_pi = jnp.asarray(0.5 * d * math.log(2 * math.pi), dtype)
    value = likelihood_value + prior_value + half_log_two_pi - 0.5 * logdet
    return Evidence(
        estimate=value,
        std_error=0.5 * logdet_error,
        log_likelihood=likelihood_value,
        log_prior=prior_value,
        logdet=logdet,
        logdet_std_error=logdet_error,
        min_eigenvalue=smallest,
        dimension=d,
    )


def naive_log_evidence(log_likelihood, log_prior, params, **kwargs) -> Evidence:
    """The Euclidean Laplace log evidence of the coordinates `params` are written in.

    `log p(D | x*) + log p(x*) + d/2 log(2 pi) - 1/2 log det nabla^2(-log p(D|x) - log p(x))`
    with the calculus Hessian and `log_prior` read as a Lebesgue density of these
    coordinates: [`log_evidence`][geomhess.laplace.log_evidence] with
    `metric=gh.metrics.Euclidean()`.

    How it moves: under a linear chart `psi = A theta + b` (e.g. `Scale`), the
    Hessian at the image point is `A^{-T} H A^{-1}`, so if the likelihood and the
    prior are carried as the same functions of the point (`f o chart.inverse`, the
    usual practice of "keeping the prior"), the naive evidence in `psi` is the one in
    `theta` plus `log |det A|` exactly: `d log alpha` for `Scale(alpha)`, and
    `(d_1 - d_2) log alpha` for Dinh's `(alpha W_1, alpha b_1, W_2 / alpha)` with
    `d_1` the size of `(W_1, b_1)` and `d_2` of `W_2`. The evidence does not change
    only if the prior is transformed as a density (`- log |det A|`), which the
    invariant form does through `sqrt(det G)`. An isotropic prior of the same
    precision `tau` in whatever parameters one has is a different prior in each
    chart (`tau A^T A` on `theta`), and its evidence is different again.

    Args:
        log_likelihood: `params -> log p(D | params)`.
        log_prior: `params -> log p(params)`, a Lebesgue log density of `params`.
        params: the MAP, any pytree.
        **kwargs: `key`, `num_probes`, `num_iterations`, `dense`, `batch_size`, as
            for `log_evidence`.
    """
    return log_evidence(log_likelihood, log_prior, Euclidean(), params, **kwargs)
