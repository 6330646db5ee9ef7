"""The machine a benchmark runs on (CPU, cores, versions, matmul peak: every figure sits beside
`info()`, so nobody compares numbers across machines) and the settings benchmarks share."""

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_XLA_THREAD = "--xla_cpu_multi_thread_eigen=false"  # what the makemore-jax command runs with (cli.py)
PACKAGES = ("jax", "jaxlib", "optax", "flax", "numpy", "torch", "matplotlib", "makemore-jax")
SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve")


def shared_names() -> str | None:
    """makemore's names.txt ($MAKEMORE_ORIGINAL_NAMES, else ../shared/data beside the checkout), or None."""
    path = os.environ.get("MAKEMORE_ORIGINAL_NAMES", os.path.join(ROOT, "..", "shared", "data", "names.txt"))
    return path if os.path.isfile(path) else None


def torch_available() -> bool:
    """Whether the PyTorch columns can run: torch importable and not switched off (--no-torch)."""
    return not os.environ.get("BENCH_NO_TORCH") and importlib.util.find_spec("torch") is not None


def _cpuinfo() -> dict[str, str]:
    try:
        with open("/proc/cpuinfo") as f:
            return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in f) if v}
    except OSError:
        return {}


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def info() -> dict:
    """CPU model and SIMD flags, cores, memory, JAX device, package versions, date, git commit, load."""
    import jax
    flags, device = _cpuinfo().get("flags", "").split(), jax.devices()[0]
    try:
        git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {"cpu_model": cpu_model(), "cpu_flags_simd": [f for f in SIMD if f in flags], "cores": os.cpu_count(),
            "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "jax_device": f"{device.platform}: {device.device_kind}", "python": platform.python_version(),
            "os": platform.platform(), "packages": {p: _version(p) for p in PACKAGES},
            "git_commit": git, "load_average": os.getloadavg(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def markdown(m: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return (f"Machine: {m['cpu_model']} ({', '.join(m['cpu_flags_simd']) or 'no SIMD flags found'}), "
            f"{m['cores']} cores, {m['memory_gib']:.0f} GiB; JAX device {m['jax_device']}; Python {m['python']}; "
            f"{versions}; {m['date']}, commit {m['git_commit']}; load average at the start "
            f"{', '.join(f'{x:.2f}' for x in m['load_average'])}.")
