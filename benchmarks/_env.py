"""What every benchmark records beside its numbers: the machine and the versions."""

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
