"""The cost of the per-step checks: a radam step with GEOMHESS_CHECKS=1 and =0, each
in its own process (the switch is read at trace time). Prints markdown rows for
docs/checks.md. Run: `python benchmarks/bench_checks.py`."""

import json
import os
import subprocess
import sys


code = r"""
import os, time, json
import jax; jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, jax.random as jr, optax, geomhess as gh
out = {}
for name, M, shape in [("Sphere(1000)", gh.manifolds.Sphere(1000), None), ("Stiefel(1000,10)", gh.manifolds.Stiefel(1000, 10), None), ("SPD(10)", gh.manifolds.SPD(10), None)]:
    x = M.random_point(jr.key(0))
    A = jr.normal(jr.key(1), (x.size, x.size)) / x.size
    f = lambda x: jnp.vdot(x.ravel(), A @ x.ravel())
    opt = gh.optim.radam(1e-3, M)
    @jax.jit
    def run(x, s):
        def body(c, _):
            x, s = c
            u, s = opt.update(jax.grad(f)(x), s, x)
            return (optax.apply_updates(x, u), s), None
        return jax.lax.scan(body, (x, s), None, length=200)[0]
    s = opt.init(x)
    jax.block_until_ready(run(x, s))
    ts = []
    for _ in range(15):
        t = time.perf_counter(); jax.block_until_ready(run(x, s)); ts.append(time.perf_counter() - t)
    ts.sort(); out[name] = ts[len(ts)//2] / 200
print(json.dumps(out))
"""
res = {}
for flag in ("1", "0"):
    env = dict(os.environ, GEOMHESS_CHECKS=flag, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    res[flag] = json.loads(r.stdout.strip().splitlines()[-1])
for k in res["1"]:
    print(
        f"| radam step on {k} | {res['1'][k] * 1e6:.1f} us | {res['0'][k] * 1e6:.1f} us | {res['1'][k] / res['0'][k]:.2f}x |"
    )
