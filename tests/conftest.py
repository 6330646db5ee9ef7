"""Shared fixtures and the one tree-comparison helper the tests use."""

import contextlib
import importlib.util
import os
import tempfile

ONE_CPU_THREAD = "--xla_cpu_multi_thread_eigen=false"  # makemore_jax.xla's (importing it would import JAX first)


def _shared_compilation_cache() -> None:
    """One persistent XLA compilation cache per test run, fresh, shared by every xdist worker and every
    `python -m makemore_jax` subprocess the tests start (they inherit the environment): a program compiled
    once is loaded, not compiled again, by the next test that builds it. A JAX_COMPILATION_CACHE_DIR already
    set (.ci/run sets a fresh one) is used as it is; "" turns the cache off."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
        folder = (os.path.join(tempfile.gettempdir(), f"makemore-jax-test-xla-{run}") if run
                  else tempfile.mkdtemp(prefix="makemore-jax-test-xla-"))
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
    # As the command runs XLA (one CPU thread: two test workers share two cores), compiled for compile time:
    # LLVM at -O0 and XLA's older elemental emitters instead of its fusion emitters. The tests' programs are
    # small and compile-bound; measured on test_models, test_sequence_models and test_norms, 298 s of CPU
    # at -O0 alone, 180 s with both (the pinned losses hold: no fast-math either way).
    os.environ.setdefault("XLA_FLAGS", f"{ONE_CPU_THREAD} --xla_backend_optimization_level=0 "
                                       "--xla_cpu_use_fusion_emitters=false")
    # The benchmarks' worker processes and commands keep these XLA flags and this cache (benchmarks/harness.py)
    # instead of their own, so they load the programs the tests compiled rather than compiling them again.
    os.environ.setdefault("BENCH_KEEP_XLA", "1")
    # PyTorch at one intra-op thread, as XLA: two test workers share two cores, and a second thread each
    # oversubscribes them (the reference loops ran many times slower on a busy 2-core machine).
    os.environ.setdefault("OMP_NUM_THREADS", "1")


_shared_compilation_cache()  # before JAX is imported: it reads these variables once

import jax  # noqa: E402
import numpy as np
import pytest

from makemore_jax import data

SHARED_NAMES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "names.txt")

# ----------------------------------------------------------------------------- CI: no silent skips
# CI (which sets CI=true) installs the dev extra and the CPU build of torch (.ci/run), so there a
# test that would skip for a missing package fails instead: the PyTorch reference tests run, or
# the run is red. Locally, without CI set, such tests still skip.
CI_REQUIRED = ("torch", "matplotlib", "graphviz", "nbformat", "nbclient", "ipykernel", "tensorboardX", "tensorboard",
               "transformers", "safetensors")
MISSING_PACKAGE = "could not import "  # how pytest.importorskip words its skip


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config):
    if in_ci():
        missing = [name for name in CI_REQUIRED if importlib.util.find_spec(name) is None]
        if missing:
            raise pytest.UsageError(f"CI is set but these test packages are not installed: {', '.join(missing)} "
                                    "(pip install -e '.[dev]' torch==2.13.0)")


def _fail_missing_package_skip(report, message: str) -> None:
    if in_ci() and report.skipped and MISSING_PACKAGE in message:
        report.outcome = "failed"
        report.longrepr = f"CI is set, so a skip for a missing package fails: {message}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception):
        _fail_missing_package_skip(report, str(call.excinfo.value))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield  # a module-level importorskip skips the whole file at collection
    if report.skipped and isinstance(report.longrepr, tuple):
        _fail_missing_package_skip(report, str(report.longrepr[-1]))
    return report


@pytest.fixture(scope="session")
def bundled_words():
    return data.load_words(data.DEFAULT_DATA)


@pytest.fixture(scope="session")
def original_words():
    """makemore's original 32,033 names (../shared/data/names.txt), when present."""
    if not os.path.isfile(SHARED_NAMES):
        pytest.skip("makemore's original names.txt is not at ../shared/data/names.txt")
    return data.load_words(SHARED_NAMES)


@contextlib.contextmanager
def _enabled_x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture()
def x64():
    """Run one test in float64, then restore the previous setting."""
    with _enabled_x64():
        yield


@pytest.fixture(scope="module")
def x64_module():
    """Run a whole module in float64: `pytestmark = pytest.mark.usefixtures("x64_module")`."""
    with _enabled_x64():
        yield


def assert_trees_close(a, b, *, rtol=1e-6, atol=0.0):
    """Same structure, and every leaf close (exact when rtol = atol = 0)."""
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b, f"tree structures differ:\n{tree_a}\n{tree_b}"
    for x, y in zip(leaves_a, leaves_b):
        x, y = (np.asarray(jax.random.key_data(v) if _is_key(v) else v) for v in (x, y))
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, x.dtype, y.shape, y.dtype)
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def perturbed(params, scale: float):
    """Every leaf moved off its init by N(0, scale^2) noise (gains off 1, biases off 0), so each one matters."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(42), len(leaves))
    return jax.tree.unflatten(tree, [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def random_tokens(config, batch: int, key: int = 2):
    """int [batch, config.block_size] tokens drawn uniformly from config's vocabulary."""
    return jax.random.randint(jax.random.key(key), (batch, config.block_size), 0, config.vocab_size)


def run_cli(capsys, *argv) -> tuple:
    """`makemore-jax ARGV` as cli.main in this process: (exit status, standard output, standard error) since
    capsys was last read; an argparse refusal's SystemExit gives its status."""
    from makemore_jax.cli import main
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def json_log(path: str, tc):
    """The run's metrics.jsonl callback (loop.JsonLog) for a TrainConfig, as lifecycle.GradientFit builds it."""
    from makemore_jax import loop
    from makemore_jax.optim import make_schedule
    return loop.JsonLog(path, jax.jit(make_schedule(tc)))
