"""Where the covariant HVP's time over the HVP-and-gradient floor goes (issue 14).

On the benchmark MLP (float32, `(64, 1024, 1024, 16)`, 1,132,560 parameters, batch
128), `gh.covariant_hvp(loss, LeviCivita(Diagonal(1 + p^2)), theta, v)` is compared
with the floor any covariant HVP must pay, one forward-over-reverse pass that gives
both the gradient and the HVP. For this metric the connection term is elementwise,
`Gamma(v, .) df = p v df / (1 + p^2)`, so the gap is not arithmetic. The script
times, side by side in rotating rounds:

- the floor (`jax.jvp(jax.grad(loss), ...)`, both outputs);
- `gh.covariant_hvp`;
- the floor plus the connection term written by hand, `hv - p v df / (1 + p^2)`;
- the same without the division, `hv - p v df` (a wrong formula, timed only to show
  what the division costs);

and then records a `jax.profiler` trace of the last two and lists the XLA:CPU
operations (thunks) that differ.

    python -m benchmarks.profile_covariant_hvp --out benchmarks/profile_covariant_hvp.md
"""

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import tempfile


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.tree_util as jtu  # noqa: E402

import geomhess as gh  # noqa: E402
from benchmarks import _harness as hz  # noqa: E402
from benchmarks._networks import diagonal_metric  # noqa: E402
from benchmarks.bench_curvature import mlp_problem  # noqa: E402


def contenders(loss):
    connection = gh.LeviCivita(diagonal_metric())

    def floor(x, v):
        return jax.jvp(jax.grad(loss), (x,), (v,))

    def by_hand(combine):
        def run(x, v):
            df, hv = jax.jvp(jax.grad(loss), (x,), (v,))
            return jtu.tree_map(combine, hv, df, x, v)

        return run

    return {
        "floor: gradient and HVP, one `jax.jvp(jax.grad(loss))`": jax.jit(floor),
        "`gh.covariant_hvp(loss, LeviCivita(Diagonal(1 + p^2)), theta, v)`": jax.jit(
            lambda x, v: gh.covariant_hvp(loss, connection, x, v)
        ),
        "floor + `hv - p v df / (1 + p^2)` by hand": jax.jit(
            by_hand(lambda h, d, p, u: h - p * u * d / (1 + p * p))
        ),
        "floor + `hv - p v df` (no division; not the formula)": jax.jit(
            by_hand(lambda h, d, p, u: h - p * u * d)
        ),
    }


def thunk_times(fn, args, repeats=5):
    """Microseconds per call of each XLA:CPU operation, from a profiler trace."""
    jax.block_until_ready(fn(*args))
    folder = tempfile.mkdtemp()
    try:
        jax.profiler.start_trace(folder, create_perfetto_trace=True)
        for _ in range(repeats):
            jax.block_until_ready(fn(*args))
        jax.profiler.stop_trace()
        path = sorted(glob.glob(f"{folder}/**/*.json.gz", recursive=True))[-1]
        with gzip.open(path) as fh:
            trace = json.load(fh)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and not name.startswith(("$", "Thunk", "Pjit")):
            total[name] += event.get("dur", 0) / repeats
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the markdown report here")
    args = parser.parse_args(argv)
    net = mlp_problem((64, 1024, 1024, 16), 128)
    loss, theta, v = net.loss, net.theta, net.v
    fns = contenders(loss)
    times = hz.steady_times(fns, (theta, v), rounds=15, budget_s=60.0)
    floor = next(iter(times.values()))
    lines = [
        "# Profile: the covariant HVP against its floor",
        "",
        hz.profile_header("profile_covariant_hvp")
        + f" {net.name}, float32, {net.d:,} parameters; medians of 15 rotating rounds.",
        "",
        "| operation | steady | / floor |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {t * 1e3:.2f} ms | {t / floor:.2f}x |" for n, t in times.items()
    ]
    names = list(fns)
    with_div, without_div = (thunk_times(fns[n], (theta, v)) for n in names[2:])
    diff = {
        k: with_div.get(k, 0.0) - without_div.get(k, 0.0)
        for k in set(with_div) | set(without_div)
    }
    lines += [
        "",
        "XLA:CPU operations whose time differs most between the last two rows "
        "(a profiler trace of 5 calls each; tracing adds its own overhead, so "
        "read differences, not totals):",
        "",
        "| operation | with the division | without | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k in sorted(diff, key=lambda k: -abs(diff[k]))[:6]:
        lines.append(
            f"| `{k}` | {with_div.get(k, 0):.0f} us | {without_div.get(k, 0):.0f} us "
            f"| {diff[k]:+.0f} us |"
        )
    hz.write_report(lines, args.out)


if __name__ == "__main__":
    main()
