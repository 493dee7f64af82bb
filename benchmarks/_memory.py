"""Memory against problem size, one fresh process per size.

A benchmark module that measures memory runs itself as a script once per size
(`python -m benchmarks.bench_NAME --memory-worker SIZE ...`, through `in_workers`);
the worker builds that size's operations and calls `measure`, which prints one JSON
line. For each operation `measure` keeps XLA's compiled buffer sizes (arguments,
outputs, temporaries) and the rise of the peak resident set size during its first
execution, from the RSS just before it (after compiling, with freed heap returned
to the OS by `malloc_trim`), `/proc/self/clear_refs` resetting the kernel's peak
(`VmHWM`). A fresh process per size keeps one size's caches and heap out of the
next one's numbers. `exponents` fits memory against the parameter count on a log-log
scale, `goal_line` says whether it grows linearly, and `render_table` writes the
page's table.
"""

import ctypes
import gc
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

from benchmarks import _harness as hz


# Every allocation of 64 KiB or more gets its own mapping, returned to the OS when
# freed: otherwise glibc serves later allocations from freed heap that is still
# resident, and the RSS rise undercounts.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _proc_status(field):
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def _release_freed_memory():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss():
    """Reset the kernel's resident-set high-water mark (`VmHWM`) to the current RSS."""
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(ops, args, warm_up):
    """Compile each `ops[name](args)`, then measure its first execution (see the
    module doc); `{"ops": {name: entry}, "process_peak_bytes": ...}`.

    `warm_up(args)` runs first: the runtime's one-time start-up (thread pools, the
    first execution's allocations) must not be charged to the first operation."""
    jax.block_until_ready(jax.jit(warm_up)(args))
    _release_freed_memory()
    out = {"ops": {}}
    for name, fn in ops.items():
        compiled = jax.jit(fn).lower(args).compile()
        entry = hz.memory_stats(compiled)
        _release_freed_memory()
        before = _proc_status("VmRSS")
        if _reset_peak_rss():
            result = jax.block_until_ready(compiled(args))
            entry["rss_rise_bytes"] = _proc_status("VmHWM") - before
            del result
        entry["rss_before_bytes"] = before
        del compiled
        out["ops"][name] = entry
        _release_freed_memory()
    out["process_peak_bytes"] = _proc_status("VmHWM")
    return out


def in_workers(module, sizes, argv=(), *, size_name="size"):
    """`python -m module --memory-worker SIZE *argv` in a fresh process per size;
    the JSON line each prints, as a list (one progress line per size)."""
    results = []
    for size in sizes:
        command = [sys.executable, "-m", module, "--memory-worker", str(size), *argv]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(os.environ, **WORKER_ENV),
            cwd=hz.ROOT,
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"memory worker ({size_name} {size}) failed:\n{proc.stderr[-3000:]}"
            )
        entry = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(entry)
        print(
            f"  {size_name} {size:5d}: {entry['n_params']:>9,} params, "
            + ", ".join(
                f"{name} {op.get('rss_rise_bytes', 0) / 2**20:.1f} MiB"
                for name, op in entry["ops"].items()
            ),
            flush=True,
        )
    return results


def _exponent(xs, ys):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def exponents(memory):
    """`{op: {"xla": slope, "rss": slope or None}}`: memory (XLA's outputs and
    temporaries; the RSS rise, where every size measured one) against the parameter
    count, on a log-log scale (1 = linear)."""
    params = [entry["n_params"] for entry in memory]
    out = {}
    for op in memory[0]["ops"]:
        xla = [
            e["ops"][op]["temp_bytes"] + e["ops"][op]["output_bytes"] for e in memory
        ]
        rss = [e["ops"][op].get("rss_rise_bytes") for e in memory]
        out[op] = {
            "xla": _exponent(params, xla),
            "rss": _exponent(params, rss)
            if all(r is not None and r > 0 for r in rss)
            else None,
        }
    return out


def goal_line(memory, bound):
    """The goal "memory linear in the parameter count": every fitted exponent (all
    operations, both measures) at most `bound`."""
    worst = max(max(g["xla"], g["rss"] or 0) for g in exponents(memory).values())
    return (
        "Memory linear in the parameter count: largest fitted exponent "
        f"{worst:.2f} over all operations and both measures (goal <= {bound}), "
        f"{'met' if worst <= bound else 'not met'}."
    )


def render_table(memory, labels):
    """The markdown lines: one row per operation (its label from `labels`), per size
    XLA's outputs and temporaries and the RSS rise in MiB (and bytes per parameter),
    the fitted exponents; then the whole process's peak RSS."""
    fitted = exponents(memory)
    lines = [
        "| operation | "
        + " | ".join(
            f"{e['n_params']:,} params: XLA / RSS rise, MiB (B/param)" for e in memory
        )
        + " | exponent XLA / RSS |",
        "| --- |" + " ---: |" * (len(memory) + 1),
    ]
    for op in memory[0]["ops"]:
        cells = []
        for e in memory:
            o, n = e["ops"][op], e["n_params"]
            xla, rss = o["temp_bytes"] + o["output_bytes"], o.get("rss_rise_bytes")
            cells.append(
                f"{hz.fmt_mib(xla)} ({xla / n:.0f}) / "
                + ("-" if rss is None else f"{hz.fmt_mib(rss)} ({rss / n:.0f})")
            )
        g = fitted[op]
        rss_exp = "-" if g["rss"] is None else f"{g['rss']:.2f}"
        lines.append(
            f"| {labels[op]} | "
            + " | ".join(cells)
            + f" | {g['xla']:.2f} / {rss_exp} |"
        )
    lines += [
        "",
        "Process peak RSS (whole process, JAX runtime included): "
        + ", ".join(
            f"{hz.fmt_mib(e['process_peak_bytes'])} MiB at {e['n_params']:,}"
            for e in memory
        )
        + ". Exponent: least-squares slope of log memory against log parameters "
        "(1 = linear).",
    ]
    return lines
