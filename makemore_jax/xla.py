"""How the package sets up XLA before JAX's first computation in a process.

ONE_CPU_THREAD is the XLA flag the makemore-jax command runs with; benchmarks and tests
that want JAX as the command runs it import it from here.
"""

from __future__ import annotations

import os

ONE_CPU_THREAD = "--xla_cpu_multi_thread_eigen=false"


def use_one_cpu_thread() -> None:
    """Run XLA's CPU backend without Eigen's thread pool, unless XLA_FLAGS says otherwise.

    The lectures' models are latency-bound: their matmuls are too small to split across
    threads, and the hand-offs cost more than they save (benchmarks/RESULTS.md). Takes
    effect only before JAX's first computation in the process.
    """
    os.environ.setdefault("XLA_FLAGS", ONE_CPU_THREAD)


def use_compilation_cache() -> None:
    """Keep compiled programs in ~/.cache/makemore-jax/xla (JAX's persistent cache), unless
    JAX_COMPILATION_CACHE_DIR says otherwise ("" turns it off): a second run of the same
    command skips most of its XLA compiles (benchmarks/ABLATIONS.md).
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import jax
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    jax.config.update("jax_compilation_cache_dir", os.path.join(cache, "makemore-jax", "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
