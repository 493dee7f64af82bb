"""Run geomhess operators on sharded inputs over 4 host devices; print a JSON report.

Run by `tests/test_sharding.py` in a fresh process, with
`XLA_FLAGS=--xla_force_host_platform_device_count=4` and `JAX_ENABLE_X64=1` set
before JAX starts (they cannot be changed once JAX is initialized). Each check
computes the same quantity on sharded and on single-device (unsharded) inputs under
`jax.jit` and records the largest relative difference and the output sharding.
"""

import json
import sys

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import geomhess as gh


jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
F64 = jnp.float64


def relative_error(a, b) -> float:
    a = np.concatenate([np.ravel(leaf) for leaf in jtu.tree_leaves(a)])
    b = np.concatenate([np.ravel(leaf) for leaf in jtu.tree_leaves(b)])
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def check_batch_of_points(mesh) -> dict:
    """(a) 8 points sharded over 4 devices, `hessian_invariants` vmapped under jit."""
    rng = np.random.default_rng(0)
    points = jnp.asarray(rng.uniform(0.5, 1.5, (8, 2)), F64)

    def f(x):
        return jnp.sin(x[0]) * x[1] ** 2 + jnp.asarray(0.3, F64) * x[0] ** 3

    # A position-dependent metric, so the connection term is exercised.
    metric = gh.metrics.FromFunction(
        lambda q: (
            jnp.diag(jnp.asarray(1.0, F64) + q**2)
            + jnp.asarray(0.1, F64) * jnp.outer(q, q)
        )
    )
    fn = jax.jit(jax.vmap(lambda x: gh.hessian_invariants(f, metric, x).eigenvalues))
    single = np.asarray(fn(points))
    sharded_points = jax.device_put(points, NamedSharding(mesh, P("data", None)))
    sharded = fn(sharded_points)
    return {
        "input_devices": len(sharded_points.sharding.device_set),
        "output_devices": len(sharded.sharding.device_set),
        "error": relative_error(sharded, single),
    }


def mlp(params, inputs):
    hidden = jnp.tanh(inputs @ params["W1"].T + params["b1"][None, :])
    return hidden @ params["W2"].T + params["b2"][None, :]


def check_sharded_parameters(mesh) -> dict:
    """(b) An MLP's parameters split along their first axis over 4 devices."""
    rng = np.random.default_rng(1)
    normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), F64)
    params = {
        "W1": normal(8, 4),
        "b1": normal(8),
        "W2": normal(4, 8),
        "b2": normal(4),
    }
    tangent = jtu.tree_map(lambda leaf: normal(*leaf.shape), params)
    inputs = normal(16, 4)
    targets = normal(16, 4)

    def loss(p):
        residual = mlp(p, inputs) - targets
        return jnp.asarray(0.5, F64) * jnp.mean(jnp.sum(residual**2, axis=-1))

    metrics = {
        "diagonal": gh.metrics.Diagonal(
            lambda p: jtu.tree_map(lambda leaf: jnp.asarray(1.0, F64) + leaf**2, p)
        ),
        "gauss_newton": gh.metrics.GaussNewton(mlp, inputs, damping=0.1),
    }
    spec = {"W1": P("model", None), "b1": P("model"), "W2": P("model", None)}
    spec["b2"] = P("model")
    shardings = {k: NamedSharding(mesh, s) for k, s in spec.items()}
    sharded_params = jax.device_put(params, shardings)
    sharded_tangent = jax.device_put(tangent, shardings)
    report = {
        "param_shards": {
            k: len(v.addressable_shards) for k, v in sharded_params.items()
        },
    }
    for name, metric in metrics.items():
        try:
            fn = jax.jit(lambda p, v, m=metric: gh.covariant_hvp(loss, m, p, v))
            single = fn(params, tangent)
            sharded = fn(sharded_params, sharded_tangent)
            gradient = jax.jit(lambda p, m=metric: gh.riemannian_gradient(loss, m, p))
            report[name] = {
                "error": relative_error(sharded, single),
                "gradient_error": relative_error(
                    gradient(sharded_params), gradient(params)
                ),
                "output_devices": len(sharded["W1"].sharding.device_set),
            }
        except Exception as error:  # reported, so the test names what broke
            report[name] = {"exception": f"{type(error).__name__}: {error}"[:2000]}
    return report


def check_hessian_free(mesh) -> dict:
    """Data parallel `optim.hessian_free`: the batch (inputs, labels and the
    GaussNewton metric's inputs) split over the 4 devices, params replicated; three
    jitted steps against the same steps on unsharded arrays."""
    import optax

    key_1, key_2, key_3 = jax.random.split(jax.random.key(5), 3)
    inputs = jax.random.normal(key_1, (32, 6), F64)
    labels = jnp.argmax(inputs @ jax.random.normal(key_2, (6, 3), F64), axis=-1)
    params = {
        "W1": jax.random.normal(key_3, (5, 6), F64) / 3,
        "b1": jnp.zeros(5, F64),
        "W2": jnp.ones((3, 5), F64) / 5,
        "b2": jnp.zeros(3, F64),
    }
    opt = gh.optim.hessian_free(damping=100.0, max_inner=8)

    @jax.jit
    def run(params, inputs, labels):
        def loss(p):
            logp = jax.nn.log_softmax(mlp(p, inputs), axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

        metric = gh.metrics.GaussNewton(
            mlp, inputs, "softmax_cross_entropy", damping=1e-2
        )
        state = opt.init(params)
        for _ in range(3):
            updates, state = opt.update(
                params, state, params, value_fn=loss, metric=metric
            )
            params = optax.apply_updates(params, updates)
        return params, state.damping

    try:
        single = run(params, inputs, labels)
        data = NamedSharding(mesh, P("data"))
        sharded_inputs = jax.device_put(inputs, NamedSharding(mesh, P("data", None)))
        sharded = run(params, sharded_inputs, jax.device_put(labels, data))
        return {
            "input_devices": len(sharded_inputs.sharding.device_set),
            "error": relative_error(sharded, single),
            "moved": relative_error(single[0], params),
        }
    except Exception as error:  # reported, so the test names what broke
        return {"exception": f"{type(error).__name__}: {error}"[:2000]}


def main() -> int:
    devices = jax.devices()
    if len(devices) != 4:
        print(json.dumps({"error": f"expected 4 devices, got {len(devices)}"}))
        return 2
    mesh_data = Mesh(np.array(devices), ("data",))
    mesh_model = Mesh(np.array(devices), ("model",))
    report = {
        "x64": bool(jax.config.jax_enable_x64),
        "batch": check_batch_of_points(mesh_data),
        "params": check_sharded_parameters(mesh_model),
        "hessian_free": check_hessian_free(mesh_data),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
