"""One benchmark harness: declarations, the check before timing, the timer, the
environment record, markdown tables with ratios, goal lines, saved JSON and plots.

A benchmark declares `Problem`s (the arguments every contender gets), `Contender`s
(a function of those arguments, and whether it is a reference) and `Goal`s (a ratio
of two contenders' steady-state times with a bound). `run_problem` then

1. calls every contender once with JAX's caches cleared (trace, compile, run,
   `block_until_ready`): the "1st call" time;
2. checks every contender's output against the reference contender's
   (`CheckError` stops the run: wrong numbers are never timed);
3. times rotating rounds: in round `r` the contenders run in an order shifted by `r`,
   so that load from other processes falls on all of them alike; each round runs
   as many blocked calls as fit in `round_s`; the steady-state time is the median
   over rounds of the mean time per call, with the spread (quartiles) kept.

Out-of-process peers are contenders whose `unavailable` is set (a missing venv):
their rows read "not run: <reason>" and no number is invented for them.
"""

import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


HERE = pathlib.Path(__file__).resolve().parent
RESULTS_DIR = HERE / ".results"


class CheckError(RuntimeError):
    """A contender's answer differs from the reference's: refuse to time it."""


@dataclasses.dataclass(frozen=True)
class Contender:
    """One implementation: `fn(*problem.args)`; `reference=True` for the check's
    reference; `unavailable` a reason when it cannot run here (e.g. no venv)."""

    name: str
    fn: Callable[..., Any] | None
    label: str = ""
    reference: bool = False
    unavailable: str | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
    """The arguments every contender is called with, and a size for plots."""

    name: str
    args: tuple
    size: float | None = None
    rtol: float = 1e-10


@dataclasses.dataclass(frozen=True)
class Goal:
    """`steady(numerator) / steady(denominator)` at most (`at_most=True`) or at
    least `bound`, on every problem where both ran."""

    numerator: str
    denominator: str
    bound: float
    at_most: bool = True


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


def check_against(reference, output, rtol):
    """Max abs difference of `output` from `reference` (pytrees of arrays); raises
    `CheckError` above `rtol` times the reference's largest entry (or 1)."""
    ref, out = _leaves(reference), _leaves(output)
    if len(ref) != len(out) or any(
        a.shape != b.shape for a, b in zip(ref, out, strict=True)
    ):
        raise CheckError(
            f"structure differs: shapes {[a.shape for a in out]} against the "
            f"reference's {[a.shape for a in ref]}"
        )
    diff = max(
        (float(np.max(np.abs(a - b))) for a, b in zip(ref, out, strict=True)),
        default=0.0,
    )
    scale = max((float(np.max(np.abs(a))) for a in ref if a.size), default=0.0)
    if not diff <= rtol * max(1.0, scale):
        raise CheckError(
            f"max abs difference {diff:.3g} from the reference (largest entry "
            f"{scale:.3g}, tolerance {rtol:.1g} relative); refusing to time it"
        )
    return diff


def _blocked(fn, args):
    return jax.block_until_ready(fn(*args))


def run_problem(problem, contenders, *, rounds=21, round_s=0.02, budget_s=20.0):
    """Check, then time, every available contender on `problem` (see module doc).

    Returns `{name: {"first_s", "steady_s", "q25_s", "q75_s", "n", "diff"}}`, or
    `{name: {"not_run": reason}}` for an unavailable contender.
    """
    live = [c for c in contenders if c.unavailable is None]
    refs = [c for c in live if c.reference]
    if len(refs) != 1:
        raise ValueError(
            f"`run_problem` on {problem.name!r}: need exactly one available reference "
            f"contender, got {[c.name for c in refs]}"
        )
    jax.clear_caches()
    first, outputs = {}, {}
    for c in live:
        start = time.perf_counter()
        outputs[c.name] = _blocked(c.fn, problem.args)
        first[c.name] = time.perf_counter() - start
    reference = outputs[refs[0].name]
    diffs = {}
    for c in live:
        try:
            diffs[c.name] = check_against(reference, outputs[c.name], problem.rtol)
        except CheckError as error:
            raise CheckError(f"{problem.name}, {c.name}: {error}") from None
    del outputs
    loops, round_cost = {}, 0.0
    for c in live:
        start = time.perf_counter()
        _blocked(c.fn, problem.args)
        once = time.perf_counter() - start
        loops[c.name] = max(1, min(2000, int(round_s / max(once, 1e-7))))
        round_cost += loops[c.name] * once
    rounds = max(3, min(rounds, int(budget_s / max(round_cost, 1e-9))))
    samples = {c.name: [] for c in live}
    for r in range(rounds):
        shift = r % len(live)
        for c in live[shift:] + live[:shift]:
            start = time.perf_counter()
            for _ in range(loops[c.name]):
                _blocked(c.fn, problem.args)
            samples[c.name].append((time.perf_counter() - start) / loops[c.name])
    out = {}
    for c in contenders:
        if c.unavailable is not None:
            out[c.name] = {"not_run": c.unavailable}
            continue
        q25, med, q75 = np.percentile(samples[c.name], [25, 50, 75])
        out[c.name] = {
            "first_s": first[c.name],
            "steady_s": float(med),
            "q25_s": float(q25),
            "q75_s": float(q75),
            "n": rounds * loops[c.name],
            "diff": diffs[c.name],
        }
    return out


def environment(peers=()):
    """CPU model, cores, devices, versions (jax, jaxlib, numpy and `peers`), date,
    command, load average and BLAS threads."""
    cpu = platform.processor() or "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "numpy", "equinox", "optax", "geomhess", *peers):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "versions": versions,
        "load_1min": os.getloadavg()[0],
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def fmt_time(seconds):
    """A duration for a table cell: µs, ms or s."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(x):
    return "-" if x is None else (f"{x:.0f}x" if x >= 100 else f"{x:.2f}x")


def _steady(entry):
    return None if entry is None or "not_run" in entry else entry["steady_s"]


def render_table(results, contenders, base):
    """A markdown table: one row per (problem, contender), with the first call, the
    steady-state median and quartiles, the check's difference and `/ base`."""
    lines = [
        f"| problem | contender | 1st call | steady (median) | quartiles | "
        f"check | / {base} |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for problem, timings in results.items():
        denom = _steady(timings.get(base))
        for c in contenders:
            t = timings.get(c.name)
            label = c.label or f"`{c.name}`"
            if t is None:
                continue
            if "not_run" in t:
                lines.append(
                    f"| {problem} | {label} | not run: {t['not_run']} | | | | |"
                )
                continue
            ratio = t["steady_s"] / denom if denom else None
            lines.append(
                f"| {problem} | {label} | {fmt_time(t['first_s'])} "
                f"| {fmt_time(t['steady_s'])} "
                f"| {fmt_time(t['q25_s'])} - {fmt_time(t['q75_s'])} "
                f"| {t['diff']:.1e} | {fmt_ratio(ratio)} |"
            )
    return "\n".join(lines)


def evaluate_goal(goal, results):
    """`(met, worst ratio, line)`; `met` is None when no problem had both rows."""
    ratios = {}
    for problem, timings in results.items():
        num, den = (
            _steady(timings.get(goal.numerator)),
            _steady(timings.get(goal.denominator)),
        )
        if num is not None and den:
            ratios[problem] = num / den
    relation = "<=" if goal.at_most else ">="
    text = f"`{goal.numerator}` / `{goal.denominator}` {relation} {goal.bound:g}x"
    if not ratios:
        return None, None, f"{text}: not measured in this run."
    pick = max if goal.at_most else min
    worst_problem = pick(ratios, key=ratios.get)
    worst = ratios[worst_problem]
    met = worst <= goal.bound if goal.at_most else worst >= goal.bound
    verdict = "met" if met else "NOT met"
    return met, worst, f"{text}: {verdict} (worst {worst:.2f}x, on {worst_problem})."


def save_json(name, payload, directory=RESULTS_DIR):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def load_json(name, directory=RESULTS_DIR):
    return json.loads((pathlib.Path(directory) / f"{name}.json").read_text())


def plot_cost(path, series, *, xlabel, title):
    """A log-log PNG of steady-state time against size: `series` maps a label to a
    list of `(size, seconds)` points (points that did not run are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        points = sorted(p for p in points if p[1] is not None)
        if points:
            ax.loglog(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("steady-state time per call (s)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
