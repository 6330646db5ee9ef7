"""Shared fixtures and the one tree-comparison helper the tests use."""

import contextlib
import os

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "")  # the CLI's persistent compile cache off: tests compile afresh

import jax  # noqa: E402
import numpy as np
import pytest

from makemore_jax import data

SHARED_NAMES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "names.txt")


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
