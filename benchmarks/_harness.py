"""One benchmark harness: declarations, the check before timing, the timer, the
environment record, markdown tables with ratios, goal lines, saved JSON and plots.

A benchmark declares `Problem`s (the arguments every contender gets, and how the
answers are checked), `Contender`s (a function of those arguments, or a turn that
times itself) and `Goal`s (a ratio of steady-state times with a bound), and calls
`run_problem` on each problem, which

1. calls every contender once, JAX's caches cleared before each, so that the
   "1st call" time holds tracing, compilation and one run (`block_until_ready`);
   with `compile_apart=True` the compile (`jax.jit(fn).lower(*args).compile()`) is
   timed on its own, and XLA's buffer sizes (`memory_analysis()`) are kept;
2. checks the answers: against the reference contender's with `check_against`, or
   with the problem's own `check(outputs)` (a closed form, a peer's answer, ...);
   a `CheckError` stops the run: wrong numbers are never timed;
3. times rotating rounds: in round `r` the contenders take their turns in an order
   shifted by `r`, so that load from other processes falls on all of them alike;
   each turn runs as many blocked calls as fit in `round_s`; the steady-state time
   is the median over rounds of the mean time per call, with the quartiles and the
   best round kept.

Contenders in another process (peers with their own environments) take the same
turns through `turn(loops) -> seconds per call` (they time themselves), or bring a
`measured` row timed by their own worker. A peer whose environment is missing gets
`unavailable` set: its rows read "not run: <reason>" and no number is invented.

A benchmark module (`bench_*.py`) has `run(quick) -> payload` (JSON-able, with the
`environment()` record) and `render(payload) -> markdown`; `python -m benchmarks`
runs each in its own subprocess, saves the payload with `save_json` and writes its
page with `write_page`, and `--render` redoes the pages from the saved JSON.

Beside the harness, one private module per concern that is no benchmark's own:
`_baselines.py` (the references written by hand in plain JAX: the PyHessian way,
a plain Lanczos, floors, the geometry of a step), `_memory.py` (memory against size,
one fresh process per size), `_peers.py` (peer libraries in their own venvs, driven
as JSON-line workers) and `_solvers.py` (geomhess's optimizers run to a gradient
tolerance).
"""

import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import string
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np


HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
PAGES = HERE / "pages"  # the results pages' templates (`fill_page`)
RESULTS_DIR = HERE / ".results"
CHECK = "_check"  # the key of a custom check's report in `run_problem`'s rows


class CheckError(RuntimeError):
    """A contender's answer is wrong (differs from the reference or a closed form):
    refuse to time it."""


@dataclasses.dataclass(frozen=True)
class Contender:
    """One implementation.

    Either `fn(*problem.args)` (called, checked and timed by the harness), or
    `turn(loops)` that runs `loops` calls itself and returns the seconds per call
    (a peer process, a stateful chain of steps), or a `measured` row timed
    elsewhere (a peer's batch worker). `reference=True` marks the reference of the
    default check; `unavailable` a reason it cannot run here (e.g. no venv).
    """

    name: str
    fn: Callable[..., Any] | None = None
    label: str = ""
    reference: bool = False
    unavailable: str | None = None
    turn: Callable[[int], float] | None = None
    measured: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
    """The arguments every `fn` contender is called with, a size for plots, and the
    check: `rtol` of `check_against` the reference, or `check(outputs)` (outputs
    of the `fn` contenders by name) that returns a JSON-able report or raises
    `CheckError`."""

    name: str
    args: tuple = ()
    size: float | None = None
    rtol: float = 1e-10
    check: Callable[[dict], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Goal:
    """`steady(numerator) / steady(denominator)` at most (`at_most=True`) or at
    least `bound`, on every problem in `problems` (all when None) where both ran.

    A term is a contender's name, `("+", a, b, ...)` (the sum of their times) or
    `("min", a, b, ...)` (the fastest). `text` says what the goal is; `link` is
    given to read when it is not met (a profile page).
    """

    numerator: Any
    denominator: Any
    bound: float
    at_most: bool = True
    problems: tuple | None = None
    text: str = ""
    link: str | None = None


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


def max_abs(tree):
    """The largest absolute entry of a pytree of arrays (0 when it has none)."""
    return max((float(np.max(np.abs(a))) for a in _leaves(tree) if a.size), default=0.0)


def max_abs_diff(a, b):
    """The largest absolute difference of two pytrees of arrays of the same shapes."""
    return max(
        (
            float(np.max(np.abs(x - y)))
            for x, y in zip(_leaves(a), _leaves(b), strict=True)
        ),
        default=0.0,
    )


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
    diff, scale = max_abs_diff(ref, out), max_abs(ref)
    if not diff <= rtol * max(1.0, scale):
        raise CheckError(
            f"max abs difference {diff:.3g} from the reference (largest entry "
            f"{scale:.3g}, tolerance {rtol:.1g} relative); refusing to time it"
        )
    return diff


def memory_stats(compiled):
    """XLA's buffer sizes of a compiled function (bytes), `{}` where unknown."""
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    return {
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "temp_bytes": int(stats.temp_size_in_bytes),
    }


def repeat_blocked(fn, args, loops):
    """Mean seconds per blocked call of `fn(*args)` over `loops` calls."""
    start = time.perf_counter()
    for _ in range(loops):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / loops


def time_turns(
    turns, *, rounds=21, round_s=0.02, budget_s=20.0, min_rounds=3, max_loops=2000
):
    """Rotating rounds of `turns[name](loops) -> seconds per call` (see module doc).

    Each turn is called once to warm up (a first call after `jax.clear_caches`
    recompiles) and once to calibrate `loops`; then up to `rounds` rounds (fewer
    when they would take much more than `budget_s`, never fewer than
    `min_rounds`). Returns `{name: {steady_s, q25_s, q75_s, best_s, n, rounds}}`.
    """
    names = list(turns)
    loops, cost = {}, 0.0
    for name in names:
        turns[name](1)
        once = turns[name](1)
        loops[name] = max(1, min(max_loops, int(round_s / max(once, 1e-7))))
        cost += loops[name] * once
    rounds = max(min_rounds, min(rounds, int(budget_s / max(cost, 1e-9))))
    samples = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(turns[name](loops[name]))
    out = {}
    for name in names:
        q25, med, q75 = np.percentile(samples[name], [25, 50, 75])
        out[name] = {
            "steady_s": float(med),
            "q25_s": float(q25),
            "q75_s": float(q75),
            "best_s": float(np.min(samples[name])),
            "n": rounds * loops[name],
            "rounds": rounds,
        }
    return out


def steady_times(fns, args, **timing):
    """Median seconds per blocked call of each `fns[name](*args)`, in rotating rounds
    (`time_turns`; `timing` are its keywords): the timer for the profile scripts."""
    turns = {
        name: (lambda loops, fn=fn: repeat_blocked(fn, args, loops))
        for name, fn in fns.items()
    }
    return {name: row["steady_s"] for name, row in time_turns(turns, **timing).items()}


def run_problem(
    problem,
    contenders,
    *,
    rounds=21,
    round_s=0.02,
    budget_s=20.0,
    min_rounds=3,
    compile_apart=False,
    progress=True,
):
    """Check, then time, every available contender on `problem` (see module doc).

    With `progress`, one line per problem is printed when it is timed: each
    contender's steady-state time (and compile time with `compile_apart`).

    Returns `{name: row}`: `first_s` (and `compile_s` plus XLA's buffer sizes with
    `compile_apart`), `steady_s`, `q25_s`, `q75_s`, `best_s`, `n`, `rounds`, and
    `diff` under the default check; `{"not_run": reason}` for an unavailable
    contender; a `measured` contender's row as given. A custom check's report is
    under the key `CHECK`.
    """
    live = [c for c in contenders if c.unavailable is None and c.measured is None]
    for c in live:
        if (c.fn is None) == (c.turn is None):
            raise ValueError(
                f"contender {c.name!r}: give exactly one of `fn` and `turn` (or "
                "`measured`, or `unavailable` with a reason)"
            )
    called = [c for c in live if c.fn is not None]
    refs = [c for c in called if c.reference]
    if problem.check is None and len(refs) != 1:
        raise ValueError(
            f"`run_problem` on {problem.name!r}: need exactly one available reference "
            f"contender (or a `Problem.check`), got {[c.name for c in refs]}"
        )
    rows, outputs, execs = {}, {}, {}
    for c in called:
        jax.clear_caches()
        fn, row = c.fn, {}
        if compile_apart:
            start = time.perf_counter()
            fn = jax.jit(c.fn).lower(*problem.args).compile()
            row["compile_s"] = time.perf_counter() - start
            row.update(memory_stats(fn))
        start = time.perf_counter()
        outputs[c.name] = jax.block_until_ready(fn(*problem.args))
        row["first_s"] = time.perf_counter() - start
        rows[c.name], execs[c.name] = row, fn
    try:
        if problem.check is None:
            reference = outputs[refs[0].name]
            for c in called:
                try:
                    rows[c.name]["diff"] = check_against(
                        reference, outputs[c.name], problem.rtol
                    )
                except CheckError as error:
                    raise CheckError(f"{c.name}: {error}") from None
            report = None
        else:
            report = problem.check(outputs)
    except CheckError as error:
        raise CheckError(f"{problem.name}, {error}") from None
    del outputs
    turns = {}
    for c in live:
        if c.turn is not None:
            turns[c.name] = c.turn
            rows[c.name] = {"first_s": None}
        else:
            turns[c.name] = lambda loops, fn=execs[c.name]: repeat_blocked(
                fn, problem.args, loops
            )
    timed = time_turns(
        turns,
        rounds=rounds,
        round_s=round_s,
        budget_s=budget_s,
        min_rounds=min_rounds,
    )
    out = {}
    for c in contenders:
        if c.unavailable is not None:
            out[c.name] = {"not_run": c.unavailable}
        elif c.measured is not None:
            out[c.name] = {"first_s": None, **c.measured, "measured_apart": True}
        else:
            out[c.name] = {**rows[c.name], **timed[c.name]}
    if report is not None:
        out[CHECK] = report
    if progress:
        print(progress_line(problem.name, out), flush=True)
    return out


def progress_line(name, rows):
    """`  name: contender time (compile time), ...` for a long run's log."""
    cells = []
    for contender, row in rows.items():
        if contender == CHECK:
            continue
        if "not_run" in row:
            cells.append(f"{contender} not run")
            continue
        cell = contender
        if row.get("steady_s") is not None:
            cell += f" {fmt_time(row['steady_s'])}"
        if row.get("compile_s") is not None:
            cell += f" (compile {fmt_time(row['compile_s'])})"
        cells.append(cell)
    return f"  {name}: " + ", ".join(cells)


# --------------------------------------------------------------------------------------
# The environment record


def _git(*args):
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment(peers=(), *, quick=False):
    """CPU model, cores, memory, OS, devices, versions (python, jax, jaxlib, numpy,
    scipy, equinox, optax, geomhess with its commit, and `peers`), date, command,
    whether it is a quick run, the load average and the BLAS threads.
    `finish_environment` adds the load after the run and its total time."""
    cpu, memory = platform.processor() or "unknown", "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "numpy", "scipy", "equinox", "optax", *peers):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    import geomhess

    versions["geomhess"] = geomhess.__version__
    commit = _git("rev-parse", "--short", "HEAD")
    if commit:
        dirty = _git("status", "--porcelain", "--", "geomhess")
        versions["geomhess"] += (
            f" (commit {commit}{', geomhess/ modified' if dirty else ''})"
        )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get(
            "GEOMHESS_BENCH_COMMAND", "python -m benchmarks " + " ".join(sys.argv[1:])
        ),
        "quick": quick,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "versions": versions,
        "load_1min": os.getloadavg()[0],
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "start": time.time(),
    }


def finish_environment(env):
    """The load average after the run and the run's total seconds, added to `env`."""
    env["load_after"] = os.getloadavg()[0]
    env["total_s"] = time.time() - env["start"]
    return env


def render_environment(env, *, peers=None, notes=()):
    """The lines every results page opens with: when, how, on what, with what.
    `peers` maps a peer environment's name to its versions, or to the reason it
    did not run."""
    kind = "quick smoke run: not for comparison" if env["quick"] else "full run"
    lines = [
        f"Measured {env['date']} with `{env['command'].strip()}` ({kind}; total "
        f"{env.get('total_s', 0):.0f} s).",
        "",
        f"- Machine: {env['cpu']}, {env['cores']} cores, {env['memory']} RAM, "
        f"{env['os']}; JAX devices: {env['devices']}. Load average (1 min) "
        f"{env['load_1min']:.1f} before and {env.get('load_after', 0):.1f} after the "
        "run (a shared machine: other jobs ran alongside).",
        "- geomhess environment: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f"; `OPENBLAS_NUM_THREADS={env['openblas_threads']}`.",
    ]
    for name, info in (peers or {}).items():
        if isinstance(info, Mapping):
            lines.append(
                f"- {name}: " + ", ".join(f"{k} {v}" for k, v in info.items()) + "."
            )
        else:
            lines.append(f"- {name}: not run: {info}")
    lines += [f"- {note}" for note in notes]
    return lines


# --------------------------------------------------------------------------------------
# Markdown


def profile_header(module):
    """The opening line of a profile page: when, with which command, on what.
    Profiles are single scripts, shorter-lived than a results page, so they carry
    one line instead of `render_environment`'s block."""
    return (
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m benchmarks.{module}`; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (a shared machine); jax "
        f"{jax.__version__}, device {jax.devices()[0].device_kind}."
    )


def timing_table(times, label, fmt, per):
    """Markdown rows `| name | time | time / first |` for a dict of times, the
    first entry the baseline; `per` names it in the header."""
    base = next(iter(times.values()))
    return [
        f"| {label} | time | / {per} |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {fmt(t)} | {t / base:.2f}x |" for name, t in times.items()),
    ]


def fill_page(name, **values):
    """The template `benchmarks/pages/{name}.md` with each `${key}` replaced by
    `values[key]` (a list of lines is joined by newlines, anything else by `str`).

    A results page's prose lives in its template, so that a benchmark's module holds
    its problems, contenders, checks and goals, and only the numbers for the prose.
    A template slot without a value, or a value without a slot, is an error.
    """
    template = string.Template((PAGES / f"{name}.md").read_text())
    slots = set(template.get_identifiers())
    if slots != set(values):
        raise KeyError(
            f"pages/{name}.md: slots without a value {sorted(slots - set(values))}, "
            f"values without a slot {sorted(set(values) - slots)}"
        )
    return template.substitute(
        {k: "\n".join(v) if isinstance(v, list) else str(v) for k, v in values.items()}
    )


def write_report(lines, out):
    """Print a profile report and, when `out` is given, write it there."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out:
        pathlib.Path(out).write_text(report)


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


def fmt_mib(nbytes):
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"


def _steady(entry):
    return None if entry is None or "not_run" in entry else entry.get("steady_s")


def term_time(timings, term):
    """The steady-state time of a goal's or a ratio's term (see `Goal`); None when
    a part did not run."""
    if isinstance(term, str):
        return _steady(timings.get(term))
    how, *names = term
    times = [_steady(timings.get(name)) for name in names]
    if any(t is None for t in times):
        return None
    if how == "+":
        return sum(times)
    if how == "min":
        return min(times)
    raise ValueError(f"unknown term {term!r}: use a name, ('+', ...) or ('min', ...)")


def term_text(term, labels=None):
    if isinstance(term, str):
        return (labels or {}).get(term) or f"`{term}`"
    how, *names = term
    parts = [term_text(name, labels) for name in names]
    return "(" + " + ".join(parts) + ")" if how == "+" else f"min({', '.join(parts)})"


def _header_term(term):
    if term == "*":
        return "this"
    return "base" if isinstance(term, Mapping) else term_text(term)


def _labels(contenders):
    if isinstance(contenders, Mapping):
        return dict(contenders)
    return {c.name: c.label or f"`{c.name}`" for c in contenders}


def render_table(
    results,
    contenders,
    base=None,
    *,
    ratios=None,
    columns=(),
    titles=None,
    first="1st call",
):
    """A markdown table: one row per (problem, contender).

    Columns: the problem (its title from `titles`), the contender (its label), the
    compile time where one was taken apart, the first call, the steady-state
    median and quartiles, the check's difference where the default check ran,
    XLA's temporary buffers where kept, one column per ratio `(numerator,
    denominator)` of terms (see `Goal`; `"*"` is the row itself; the default is
    `[("*", base)]`; `base` may be a dict per problem), then `columns`: `(header,
    cell(problem, name, row) -> str)`. `contenders` is a list of `Contender`s or
    an ordered `{name: label}`; a name missing from a problem is skipped.
    """
    labels = _labels(contenders)
    if ratios is None:
        ratios = [] if base is None else [("*", base)]
    rows = [(p, n, t[n]) for p, t in results.items() for n in labels if n in t]
    has = {
        key: any(key in r for _, _, r in rows)
        for key in ("compile_s", "diff", "temp_bytes")
    }

    def per_problem(term, problem):
        return term.get(problem) if isinstance(term, Mapping) else term

    headers = ["problem", "contender"]
    headers += ["compile"] if has["compile_s"] else []
    headers += [first, "steady (median)", "quartiles"]
    headers += ["check"] if has["diff"] else []
    headers += ["XLA temp (MiB)"] if has["temp_bytes"] else []
    for num, den in ratios:
        headers.append(" / ".join(_header_term(t) for t in (num, den)))
    headers += [h for h, _ in columns]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| --- | --- |" + " ---: |" * (len(headers) - 2),
    ]
    for problem, name, t in rows:
        timings = results[problem]
        title = (titles or {}).get(problem, problem)
        cells = [title, labels[name]]
        if "not_run" in t:
            cells.append(f"not run: {t['not_run']}")
            cells += [""] * (len(headers) - 3 - len(columns))
            cells += [cell(problem, name, t) for _, cell in columns]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells += [fmt_time(t.get("compile_s"))] if has["compile_s"] else []
        first_cell = fmt_time(t.get("first_s"))
        if t.get("measured_apart"):
            first_cell = "timed by its worker"
        steady = fmt_time(t["steady_s"])
        if t.get("measured_apart") and t.get("n") == 1:
            steady += " (1 call)"  # one call took the worker's whole budget
        cells += [
            first_cell,
            steady,
            "-"
            if t.get("q25_s") is None
            else f"{fmt_time(t['q25_s'])} - {fmt_time(t['q75_s'])}",
        ]
        if has["diff"]:
            cells.append("-" if t.get("diff") is None else f"{t['diff']:.1e}")
        if has["temp_bytes"]:
            cells.append(fmt_mib(t.get("temp_bytes")))
        for num, den in ratios:
            num, den = (
                name if x == "*" else per_problem(x, problem) for x in (num, den)
            )
            a, b = term_time(timings, num), term_time(timings, den)
            cells.append(fmt_ratio(a / b if a is not None and b else None))
        cells += [cell(problem, name, t) for _, cell in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_cell(results, key, fmt=str):
    """A `render_table` column's cell from the custom checks' reports: `fmt` of
    `results[problem][CHECK][name][key]`, "-" where that report has no entry (a
    dict) for the contender."""

    def cell(problem, name, row):
        entry = results[problem].get(CHECK, {}).get(name)
        return fmt(entry[key]) if isinstance(entry, Mapping) else "-"

    return cell


def evaluate_goal(goal, results, labels=None):
    """`(met, worst ratio, line)`; `met` is None when no problem had both terms.
    The line says "met" or "not met" (with `goal.link` to read then)."""
    ratios = {}
    for problem, timings in results.items():
        if goal.problems is not None and problem not in goal.problems:
            continue
        num = term_time(timings, goal.numerator)
        den = term_time(timings, goal.denominator)
        if num is not None and den:
            ratios[problem] = num / den
    relation = "<=" if goal.at_most else ">="
    text = (
        f"{goal.text + ': ' if goal.text else ''}"
        f"{term_text(goal.numerator, labels)} / {term_text(goal.denominator, labels)} "
        f"{relation} {goal.bound:g}x"
    )
    if not ratios:
        return (
            None,
            None,
            f"{text}: not measured in this run (no problem where both terms ran).",
        )
    pick = max if goal.at_most else min
    worst_problem = pick(ratios, key=ratios.get)
    worst = ratios[worst_problem]
    met = worst <= goal.bound if goal.at_most else worst >= goal.bound
    each = ", ".join(f"{p} {r:.2f}x" for p, r in ratios.items())
    if met:
        return (
            True,
            worst,
            f"{text}: met (worst {worst:.2f}x, on {worst_problem}; {each}).",
        )
    see = f"; see [{goal.link}]({goal.link})" if goal.link else ""
    return (
        False,
        worst,
        (f"{text}: not met (worst {worst:.2f}x, on {worst_problem}; {each}){see}."),
    )


GOALS_MARKERS = ("<!-- goals:begin -->", "<!-- goals:end -->")


def render_goals(goals, results, labels=None, extra=()):
    """A bullet list: one line per `Goal` (see `evaluate_goal`), then `extra`,
    between `GOALS_MARKERS` so that `goal_lines` finds it on the page."""
    lines = [evaluate_goal(goal, results, labels)[2] for goal in goals]
    bullets = "\n".join(f"- {line}" for line in [*lines, *extra])
    return f"{GOALS_MARKERS[0]}\n{bullets}\n{GOALS_MARKERS[1]}"


def goal_lines(page_text):
    """The goal bullets of every `render_goals` block on a rendered page."""
    begin, end = GOALS_MARKERS
    lines = []
    for chunk in page_text.split(begin)[1:]:
        lines += [
            ln for ln in chunk.split(end, 1)[0].splitlines() if ln.startswith("- ")
        ]
    return lines


def write_page(path, block, markers=None, header=""):
    """Write `block` into the markdown file `path`: between the `markers` (begin,
    end) when given (appended with them when absent), else as the whole file after
    `header`."""
    path = pathlib.Path(path)
    if markers is None:
        path.write_text(header + block)
        return path
    begin, end = markers
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{block}{end}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{begin}\n{block}{end}\n".lstrip()
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------
# Saved results and plots


def _plain(x):
    if isinstance(x, np.ndarray | np.generic):
        return x.tolist()
    return str(x)


def save_json(name, payload, directory=None):
    directory = pathlib.Path(RESULTS_DIR if directory is None else directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=_plain))
    return path


def load_json(name, directory=None):
    directory = pathlib.Path(RESULTS_DIR if directory is None else directory)
    return json.loads((directory / f"{name}.json").read_text())


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
