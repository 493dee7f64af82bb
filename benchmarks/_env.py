"""What every benchmark shares: the machine and versions it records, how it formats
times and ratios, and how it writes its results block into a markdown file."""

import importlib.metadata
import os
import pathlib
import platform
import subprocess

import jax

import geomhess as gh


ROOT = pathlib.Path(__file__).resolve().parent.parent


def machine_info():
    """CPU model, cores, memory, OS and JAX devices of this machine."""
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
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "jax_devices": ", ".join(str(dev) for dev in jax.devices()),
    }


def versions(*packages):
    """Python's and the given packages' versions, and geomhess's with its commit."""
    out = {"python": platform.python_version()}
    for package in packages:
        out[package] = importlib.metadata.version(package)
    out["geomhess"] = gh.__version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "geomhess"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out["geomhess"] += (
            f" (commit {commit}{', geomhess/ modified' if dirty else ''})"
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def fmt_time(seconds):
    """A duration for a table cell: µs, ms or s, three significant figures or so."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(x):
    return "-" if x is None else (f"{x:.0f}x" if x >= 100 else f"{x:.2f}x")


def run_header(meta, environment="geomhess environment", device="Machine"):
    """The lines every results block opens with: when, how, on what, with what."""
    m = meta["machine"]
    return [
        f"Measured {meta['date']} with `{meta['command']}` "
        f"({'quick smoke run: not for comparison' if meta['quick'] else 'full run'}; "
        f"total {meta['total_s']:.0f} s).",
        "",
        f"- {device}: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['os']}; "
        f"JAX devices: {m['jax_devices']}. Load average (1 min) "
        f"{meta['load_before']:.1f} before and {meta['load_after']:.1f} after the run "
        "(a shared machine: other jobs ran alongside).",
        f"- {environment}: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f"; `OPENBLAS_NUM_THREADS={meta['openblas_threads']}`.",
    ]


def write_results_block(path, block, begin, end):
    """Replace the text between the markers `begin` and `end` of `path` (or append them)."""
    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{block}{end}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{begin}\n{block}{end}\n".lstrip()
    path.write_text(text)
