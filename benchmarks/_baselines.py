"""The references geomhess is timed against, written by hand as a user would.

What a peer library does, re-implemented in plain JAX so that it runs in the same
process, on the same arrays and with the same probes as geomhess (`bench_network.py`):

- a plain Hessian-vector product, `jax.jvp` of `jax.grad`;
- Hutchinson's trace the PyHessian way (Yao et al. 2020), and the same with the
  product scaled leaf by leaf (the invariant trace in a scaled chart, by hand);
- PyHessian's top eigenvalues: power iteration with deflation (and, to check them,
  their residuals by plain HVPs);
- a plain Euclidean Lanczos with full reorthogonalization.

And the arithmetic a solver cannot avoid, or the geometry of a step alone, with no
library around it (`bench_optim.py`):

- the floor of a solver: a count of products with a matrix, in numpy and in JAX;
- the geometry of one Riemannian Adam step on `Sphere` or `Stiefel`.
"""

import functools as ft

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree

from geomhess._core.tree import tree_random, tree_vdot


# PyHessian's defaults for `hessian.eigenvalues`.
POWER_MAX_ITER = 100
POWER_TOL = 1e-3


# --------------------------------------------------------------------------------------
# Second order on a network, the PyHessian way and by hand


def plain_hvp(loss, x, v):
    """`H v` of `loss` at `x` (pytrees): `jax.jvp` of `jax.grad`."""
    return jax.jvp(jax.grad(loss), (x,), (v,))[1]


def flat_hvp(loss, x):
    """`(flat x, v -> H v)` on the flattened parameters, for the Krylov methods."""
    flat, unravel = ravel_pytree(x)
    return flat, lambda v: ravel_pytree(plain_hvp(loss, x, unravel(v)))[0]


def hutchinson_trace(loss, x, key, num_probes, scale=None):
    """Hutchinson's trace `z^T H z` over Rademacher `z`, as `PyHessian.trace` does.

    One Rademacher array per leaf of `x` (drawn as geomhess's estimators draw them,
    `geomhess._core.tree.tree_random`, keys from `jr.split(key, num_probes)`), a
    plain HVP, the mean over probes; a fixed `num_probes` (PyHessian stops early
    once the running mean moves less than 1e-3), the probes one after another in
    `lax.map`. With `scale` (a pytree like `x`) each sample is `z^T (scale * H z)`:
    in the chart `psi = s theta` the Euclidean metric of `theta` is `diag(1 / s^2)`,
    so `scale = s^2` gives the invariant trace `tr(G^{-1} H)` by hand, which must
    equal `gh.linalg.shape_operator_trace`'s to round-off. Returns
    `(estimate, std_error)`.
    """

    def sample(k):
        z = tree_random(jr.rademacher, k, x)
        hz = plain_hvp(loss, x, z)
        if scale is not None:
            hz = jtu.tree_map(jnp.multiply, scale, hz)
        return tree_vdot(z, hz)

    samples = jax.lax.map(sample, jr.split(key, num_probes))
    n = jnp.asarray(samples.shape[0], samples.dtype)
    return jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(n)


def pyhessian_eigenvalues(loss, x, key, k, max_iter=POWER_MAX_ITER, tol=POWER_TOL):
    """Top-`k` eigenvalues (by magnitude) the PyHessian way, with iterations and vectors.

    As `PyHessian.eigenvalues`: for each eigenvalue in turn, power iteration from a
    normalized Gaussian vector; each step orthogonalizes against the eigenvectors
    found so far (deflation), takes a plain HVP, the Rayleigh quotient `v^T H v`, and
    normalizes `H v`; it stops when the quotient changes by less than `tol`
    relatively, or after `max_iter` HVPs. Returns the eigenvalues `(k,)`, the HVPs
    each took `(k,)` and the unit eigenvectors `(k, d)` (flat).
    """
    flat, hvp = flat_hvp(loss, x)

    def normalize(v):
        return v / jnp.linalg.norm(v)

    found = jnp.zeros((k, flat.shape[0]), flat.dtype)  # unfilled rows are zero
    eigenvalues, iterations = [], []
    for i, key_i in enumerate(jr.split(key, k)):

        def cond(state):
            _, value, previous, step = state
            changed = jnp.abs(value - previous) >= tol * (jnp.abs(previous) + 1e-6)
            return (step < max_iter) & ((step < 2) | changed)

        def body(state, found=found):
            v, value, _, step = state
            v = normalize(v - (found @ v) @ found)
            hv = hvp(v)
            return normalize(hv), jnp.vdot(hv, v), value, step + 1

        v0 = normalize(jr.normal(key_i, flat.shape, flat.dtype))
        zero = jnp.zeros((), flat.dtype)
        v, value, _, steps = jax.lax.while_loop(cond, body, (v0, zero, zero, 0))
        found = found.at[i].set(v)
        eigenvalues.append(value)
        iterations.append(steps)
    return jnp.stack(eigenvalues), jnp.stack(iterations), found


def eigen_residuals(loss, x, values, vectors):
    """`||H y - theta y||` for each eigenpair `(theta, y)` of `values (k,)` and the
    flat unit `vectors (k, d)`, by plain HVPs (one after another): the bound that
    power iteration does not report."""
    hvp = flat_hvp(loss, x)[1]

    def one(value, vector):
        return jnp.linalg.norm(hvp(vector) - value * vector)

    return jax.lax.map(lambda a: one(*a), (values, vectors))


def plain_lanczos_eigenvalues(loss, x, key, k, num_iterations):
    """Top-`k` (by magnitude) Ritz values of plain Lanczos on plain HVPs.

    Euclidean Lanczos with full reorthogonalization (classical Gram-Schmidt twice),
    from the same start vector geomhess draws for this key, `num_iterations` HVPs.
    No restart on breakdown (none happens here). Returns the Ritz values and their
    residual bounds `|beta_m s_m|`.
    """
    flat, hvp = flat_hvp(loss, x)
    d, m = flat.shape[0], num_iterations
    v0 = jr.normal(jr.split(key)[0], flat.shape, flat.dtype)
    V = jnp.zeros((m, d), flat.dtype).at[0].set(v0 / jnp.linalg.norm(v0))

    def step(j, state):
        V, alphas, betas = state
        w = hvp(V[j])
        alpha = jnp.vdot(V[j], w)
        for _ in range(2):
            w = w - (V @ w) @ V
        beta = jnp.linalg.norm(w)
        V = V.at[j + 1].set(w / beta, mode="drop")
        return V, alphas.at[j].set(alpha), betas.at[j].set(beta)

    zeros = jnp.zeros((m,), flat.dtype)
    V, alphas, betas = jax.lax.fori_loop(0, m, step, (V, zeros, zeros))
    T = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    theta, S = jnp.linalg.eigh(T)
    residuals = jnp.abs(betas[-1] * S[-1])
    order = jnp.argsort(-jnp.abs(theta))[:k]
    return theta[order], residuals[order]


# --------------------------------------------------------------------------------------
# Floors and the geometry of a step, for the optimizers


@ft.partial(jax.jit, static_argnums=3)
def _jax_products(A, v, scale, count):
    """`count` products `v <- scale A v` (or `scale A V`) in a `lax.fori_loop`."""
    return jax.lax.fori_loop(0, count, lambda _, v: scale * (A @ v), v)


def _numpy_products(A, v, scale, count):
    for _ in range(count):
        v = scale * (A @ v)
    return v


def product_floor(A, v0, count):
    """Functions `(numpy, JAX)` of no arguments: `count` products with `A` (a numpy
    array) from `v0` and nothing else, in numpy and in jitted JAX: the arithmetic
    any solver must do when it evaluates as many Hessian-vector products and
    gradients of a quadratic form (one product with `A` each)."""
    # Scaled by the spectral radius, so that the iterates keep their size (a power
    # iteration): they neither overflow nor decay to zeros or subnormal numbers.
    scale = 1 / float(np.max(np.abs(np.linalg.eigvalsh(A))))
    A_jax, v_jax = jnp.asarray(A), jnp.asarray(v0)
    return (
        ft.partial(_numpy_products, A, v0, scale, count),
        ft.partial(_jax_products, A_jax, v_jax, scale, count),
    )


def geometry_chain(x, g, m):
    """The geometry of one Riemannian Adam step alone, with fixed scalars: project the
    gradient `g` at `x`, retract `x` along it, transport `m` to the new point by
    projection; `(y, transported m)`. numpy and JAX arrays alike.

    On `Stiefel` the polar factor's `(z^T z)^{-1/2}` is one Newton-Schulz step,
    `(3 I - z^T z) / 2` (exact to second order in the step): the six products of an
    `(n, p)` array with a `(p, p)` one or with another `(n, p)` one stay, the small
    `(p, p)` eigendecomposition goes. No moment arithmetic, no step-size logic: the
    geometry of a step as one would write it by hand. It is a reference, not a
    floor: `radam`'s fused step computes the same from one Gram matrix of
    `[x, g, m]` and can be faster.
    """
    if x.ndim == 1:
        r = g - (x @ g) * x
        z = x - 1e-3 * r
        y = z * (1.5 - 0.5 * (z @ z))
        return y, m - (y @ m) * y
    a = x.T @ g
    r = g - x @ (0.5 * (a + a.T))
    z = x - 1e-3 * r
    k = z.T @ z
    y = z @ (1.5 * np.eye(k.shape[0], dtype=k.dtype) - 0.5 * k)
    t = y.T @ m
    return y, m - y @ (0.5 * (t + t.T))


def geometry_steps(x0, g):
    """Functions `(numpy, JAX)` of no arguments: one `geometry_chain` step from the
    last, from `x0` with the gradient `g` (numpy arrays), which is also the first
    moment, chained from step to step as the optimizers' steps are."""

    def chained(chain, x, g):
        carry = [x, g]

        def step():
            carry[0], carry[1] = chain(carry[0], g, carry[1])
            return carry[0]

        return step

    return (
        chained(geometry_chain, np.asarray(x0), np.asarray(g)),
        chained(jax.jit(geometry_chain), jnp.asarray(x0), jnp.asarray(g)),
    )
