"""The networks the benchmarks share, defined once: a tanh MLP on fixed synthetic data
and a small CNN on scikit-learn's bundled 8x8 digits (nothing is downloaded), plus
the position-dependent diagonal metric `diag(1 + p^2)` they are measured under.

Each builder returns a `Network`: the parameters (a dict of arrays), `model(params,
x)`, the inputs, the targets and a key left over for tangents and probes. The loss
is the benchmark's own (a benchmark states what it measures), built on `model`.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu

import geomhess as gh


class Network(NamedTuple):
    params: dict
    model: Callable  # model(params, inputs) -> outputs
    inputs: jax.Array
    targets: jax.Array  # regression targets (MLP) or integer labels (CNN)
    key: jax.Array  # left for the tangents


def tanh_mlp(key, sizes, batch, dtype):
    """A tanh MLP with layer widths `sizes` (LeCun-normal weights `w0, b0, ...`) and
    `batch` standard-normal inputs and targets."""
    k_params, k_x, k_y, k_left = jr.split(key, 4)
    keys = jr.split(k_params, len(sizes) - 1)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = jr.normal(keys[i], (fan_in, fan_out), dtype) / math.sqrt(
            fan_in
        )
        params[f"b{i}"] = jnp.zeros(fan_out, dtype)
    inputs = jr.normal(k_x, (batch, sizes[0]), dtype)
    targets = jr.normal(k_y, (batch, sizes[-1]), dtype)
    n_layers = len(sizes) - 1

    def model(p, x):
        h = x
        for i in range(n_layers):
            h = h @ p[f"w{i}"] + p[f"b{i}"]
            if i < n_layers - 1:
                h = jnp.tanh(h)
        return h

    return Network(params, model, inputs, targets, k_left)


def digits_cnn(key, channels, batch, dtype):
    """Two 3x3 tanh convolutions with `channels = (c1, c2)`, 2x2 mean pooling and a
    dense layer to 10 classes, on the first `batch` of scikit-learn's digits (NHWC
    images in [0, 1], integer labels)."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn

    digits = load_digits()
    images = jnp.asarray(digits.images[:batch, :, :, None] / 16.0, dtype)
    labels = jnp.asarray(digits.target[:batch])
    c1, c2 = channels
    k1, k2, k3, k_left = jr.split(key, 4)
    params = {
        "k1": jr.normal(k1, (3, 3, 1, c1), dtype) / 3.0,
        "b1": jnp.zeros(c1, dtype),
        "k2": jr.normal(k2, (3, 3, c1, c2), dtype) / math.sqrt(9 * c1),
        "b2": jnp.zeros(c2, dtype),
        "w": jr.normal(k3, (16 * c2, 10), dtype) / math.sqrt(16 * c2),
        "b": jnp.zeros(10, dtype),
    }
    dims = ("NHWC", "HWIO", "NHWC")

    def model(p, x):
        h = x
        for kernel, bias in (("k1", "b1"), ("k2", "b2")):
            h = jax.lax.conv_general_dilated(
                h, p[kernel], (1, 1), "SAME", dimension_numbers=dims
            )
            h = jnp.tanh(h + p[bias])
        n = h.shape[0]
        h = h.reshape(n, 4, 2, 4, 2, c2).mean(axis=(2, 4)).reshape(n, 16 * c2)
        return h @ p["w"] + p["b"]

    return Network(params, model, images, labels, k_left)


def diagonal_metric():
    """`G(p) = diag(1 + p^2)`, leaf by leaf: position-dependent and matrix-free."""
    return gh.metrics.Diagonal(lambda p: jtu.tree_map(lambda w: 1 + w**2, p))
