"""What the per-step checks cost: `radam` steps with `GEOMHESS_CHECKS=1` and `=0`.

The switch is read when a function is traced, so each setting needs a process of its
own: two workers (this module with `--worker`, `_peers.Worker`'s line protocol), one
per setting, take their turns in the same timing rounds (`_harness.run_problem`).
One call is `STEPS` radam steps in one `lax.scan` (float64) on a quadratic cost; the
check before timing is that both settings end at the same point (the checks never
change a number). The table goes into `docs/checks.md`.

    python -m benchmarks --only checks
"""

import json
import os
import pathlib
import sys


PAGE = "../docs/checks.md"
MARKERS = ("<!-- bench_checks:begin -->", "<!-- bench_checks:end -->")
STEPS = 200
ROWS = {
    "checks_on": "`GEOMHESS_CHECKS=1` (default)",
    "checks_off": "`GEOMHESS_CHECKS=0`",
}
SETTINGS = {"checks_on": "1", "checks_off": "0"}


def problems(quick):
    """`{name: manifold}`. The cost on each is `<x, A x>` with a dense `A` of the
    point's first dimension (`x^T A x` on `Sphere`, `tr(X^T A X)` on `Stiefel` and
    `SPD`), so that on `Stiefel(n, p)` it is `n x n` and not `np x np`."""
    import geomhess as gh

    if quick:
        return {"Sphere(100)": gh.manifolds.Sphere(100), "SPD(4)": gh.manifolds.SPD(4)}
    return {
        "Sphere(1000)": gh.manifolds.Sphere(1000),
        "Stiefel(1000, 10)": gh.manifolds.Stiefel(1000, 10),
        "SPD(10)": gh.manifolds.SPD(10),
    }


def worker():
    """One setting's process: answers `load`, `run` (the final point) and `time`."""
    import time

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import optax

    import geomhess as gh

    runs = {}

    def build(manifold):
        x = manifold.random_point(jr.key(0))
        n = x.shape[0]
        A = jr.normal(jr.key(1), (n, n)) / n
        cost = lambda x: jnp.vdot(x, A @ x)  # noqa: E731
        opt = gh.optim.radam(1e-3, manifold)

        @jax.jit
        def run(x, s):
            def body(carry, _):
                x, s = carry
                u, s = opt.update(jax.grad(cost)(x), s, x)
                return (optax.apply_updates(x, u), s), None

            return jax.lax.scan(body, (x, s), None, length=STEPS)[0][0]

        args = (x, opt.init(x))
        jax.block_until_ready(run(*args))
        return lambda: run(*args)

    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "quit":
                break
            if command["op"] == "load":
                runs = {n: build(m) for n, m in problems(command["quick"]).items()}
                answer = {"ok": True}
            elif command["op"] == "run":
                answer = {"x": jnp.ravel(runs[command["problem"]]()).tolist()}
            elif command["op"] == "time":
                fn = runs[command["problem"]]
                start = time.perf_counter()
                for _ in range(command["loops"]):
                    jax.block_until_ready(fn())
                answer = {"s": (time.perf_counter() - start) / command["loops"]}
        except Exception as error:  # the parent stops with this message
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


def run(quick=False):
    import contextlib
    import tempfile

    import numpy as np

    from benchmarks import _harness as hz, _peers

    env = hz.environment(quick=quick)
    names = list(problems(quick))
    timing = dict(rounds=3, round_s=0.05, budget_s=2.0) if quick else {}
    results = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        workers = {}
        for label, flag in SETTINGS.items():
            log_dir = pathlib.Path(tmp) / label  # each worker's own stderr log
            log_dir.mkdir()
            workers[label], why_not = stack.enter_context(
                _peers.worker(
                    pathlib.Path(sys.executable),
                    ["-m", "benchmarks.bench_checks", "--worker"],
                    setup="../scripts/setup.sh",  # this venv
                    directory=log_dir,
                    env=dict(os.environ, GEOMHESS_CHECKS=flag),
                    first={"op": "load", "quick": quick},
                )
            )
            if why_not:
                raise SystemExit(f"bench_checks: the {label} worker: {why_not}")
        for name in names:

            def check(_outputs, name=name):
                on, off = (
                    np.asarray(workers[k].call(op="run", problem=name)["x"])
                    for k in SETTINGS
                )
                diff = float(np.max(np.abs(on - off)))
                if not diff <= 1e-12 * max(1.0, float(np.max(np.abs(on)))):
                    raise hz.CheckError(
                        f"{name}: the two settings differ by {diff:.3g}"
                    )
                return {"diff": diff}

            contenders = [
                hz.Contender(
                    label,
                    label=ROWS[label],
                    turn=lambda loops, w=workers[label], name=name: w.call(
                        op="time", problem=name, loops=loops
                    )["s"],
                )
                for label in SETTINGS
            ]
            print(f"{name} ...", flush=True)
            results[name] = hz.run_problem(
                hz.Problem(name, check=check), contenders, **timing
            )
    return {"env": hz.finish_environment(env), "results": results}


def render(payload):
    from benchmarks import _harness as hz

    results = payload["results"]
    lines = hz.render_environment(payload["env"])
    lines += [
        "",
        f"One call is {STEPS} radam steps in one `lax.scan` (float64); the two "
        "settings run in two processes that take turns in every timing round. "
        "Checked before timing: both settings end at the same point (max abs "
        "difference "
        + ", ".join(f"{p} {r[hz.CHECK]['diff']:.1e}" for p, r in results.items())
        + ").",
        "",
        hz.render_table(results, ROWS, "checks_off", first="1st call"),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--worker"]:
        sys.exit("run `python -m benchmarks --only checks`; `--worker` is its worker")
    worker()
