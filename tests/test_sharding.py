"""Sharded inputs over 4 CPU host devices give the single-device results.

The device count (`XLA_FLAGS=--xla_force_host_platform_device_count=4`) must be set
before JAX initializes, and the test process has already imported JAX, so the checks
run in a fresh interpreter (`tests/_sharding_script.py`), which prints a JSON report:

- (a) a batch of 8 points sharded over a 4-device mesh, `hessian_invariants`
  vmapped under `jit`;
- (b) an MLP's parameter pytree with every leaf split along its first axis over the
  4 devices, `covariant_hvp` and `riemannian_gradient` under `jit` with a `Diagonal`
  and a `GaussNewton` metric.

JAX's SPMD partitioner is the distributed engine: geomhess has no code for devices.
"""

import json
import os
import pathlib
import subprocess
import sys


SCRIPT = pathlib.Path(__file__).with_name("_sharding_script.py")
TOLERANCE = 1e-12


def _run_script() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_ENABLE_X64"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"sharding script failed ({result.returncode}):\n{result.stdout}\n"
        f"{result.stderr[-5000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sharded_results_equal_single_device():
    report = _run_script()
    assert report["x64"], report

    batch = report["batch"]
    assert batch["input_devices"] == 4, batch
    assert batch["output_devices"] == 4, batch
    assert batch["error"] <= TOLERANCE, batch

    params = report["params"]
    assert params["param_shards"] == {"W1": 4, "W2": 4, "b1": 4, "b2": 4}, params
    for name in ("diagonal", "gauss_newton"):
        result = params[name]
        assert "exception" not in result, f"{name}: {result.get('exception')}"
        assert result["error"] <= TOLERANCE, (name, result)
        assert result["gradient_error"] <= TOLERANCE, (name, result)
        assert result["output_devices"] == 4, (name, result)

    # (c) three `optim.hessian_free` steps, data parallel: the reductions run in
    # another order, so equal to rounding over the steps, not bit for bit.
    hessian_free = report["hessian_free"]
    assert "exception" not in hessian_free, hessian_free
    assert hessian_free["input_devices"] == 4, hessian_free
    assert hessian_free["error"] <= 1e-10, hessian_free
    assert hessian_free["moved"] > 1e-3, hessian_free
