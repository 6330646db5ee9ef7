"""The machine a benchmark ran on, and its measured matmul peak.

Every figure in results.md / results.json sits beside this record, so nobody compares
numbers across machines.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import time

from benchmarks.harness import ROOT

PACKAGES = ("jax", "jaxlib", "optax", "flax", "numpy", "torch", "matplotlib", "makemore-jax")


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def _cpuinfo_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def info() -> dict:
    """CPU model and flags, cores, memory, JAX device kind, package versions, date, git commit."""
    import jax
    cpu = _lscpu()
    flags = cpu.get("Flags") or _cpuinfo_flags()
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve")
            if f in flags.split()]
    return {
        "cpu_model": cpu.get("Model name") or platform.processor() or platform.machine(),
        "cpu_flags_simd": simd,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "threads_per_core": cpu.get("Thread(s) per core"),
        "memory_gib": _memory_gib(),
        "jax_device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
        "jax_devices": len(jax.devices()),
        "python": platform.python_version(),
        "os": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": _git_commit(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def markdown(m: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return (f"Machine: {m['cpu_model']} ({', '.join(m['cpu_flags_simd']) or 'no SIMD flags found'}), "
            f"{m['cores']} cores, {m['memory_gib']:.0f} GiB; JAX device {m['jax_device']}; "
            f"Python {m['python']}; {versions}; {m['date']}, commit {m['git_commit']}; "
            f"load average at the start {', '.join(f'{x:.2f}' for x in m['load_average'] or ())}.")


# ----------------------------------------------------------------------------- matmul peak (in workers)


def jax_matmul_peak(n: int = 2048, repeats: int = 10) -> dict:
    """GFLOP/s of an n x n float32 matmul in XLA, best of `repeats` (worker call)."""
    import jax
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    return {"gflops": 2 * n**3 / _best(lambda: f(a).block_until_ready(), repeats) / 1e9, "n": n}


def torch_matmul_peak(n: int = 2048, repeats: int = 10) -> dict:
    """GFLOP/s of an n x n float32 matmul in PyTorch at its thread setting (worker call)."""
    import torch
    a = torch.randn(n, n)
    a @ a
    return {"gflops": 2 * n**3 / _best(lambda: a @ a, repeats) / 1e9, "n": n, "threads": torch.get_num_threads()}


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


_PEAK: dict = {}


def matmul_peak(torch: bool) -> dict:
    """{"jax": GFLOP/s with XLA's own threads, "torch": with 2 threads (or None), "best"}.

    Measured once per suite run, each framework in a worker process of its own.
    """
    if not _PEAK:
        from benchmarks.harness import Pool, WorkerError
        with Pool() as pool:
            _PEAK["jax"] = pool["jax-xla-threads"].call(op="call", factory="benchmarks.machine:jax_matmul_peak")["gflops"]
            _PEAK["torch"] = None
            if torch:
                try:
                    _PEAK["torch"] = pool["torch-2t"].call(op="call", factory="benchmarks.machine:torch_matmul_peak")["gflops"]
                except WorkerError:
                    pass
        _PEAK["best"] = max(v for v in (_PEAK["jax"], _PEAK["torch"]) if v)
    return dict(_PEAK)
