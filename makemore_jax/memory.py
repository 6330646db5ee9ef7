"""Will a run fit in memory? An estimate made from shapes alone, before anything is allocated.

The estimate (a documented approximation, meant to catch the hopeless cases, not to be tight):

    parameters + optimiser state      the TrainState's arrays (jax.eval_shape of its init)
  + gradients                         one more copy of the parameters
  + one batch's activations           the sum of every intermediate array of one training
                                      step (forward and backward) at the training batch size,
                                      read from the step's jaxpr: an upper bound, since XLA
                                      frees and reuses buffers

It is compared with the memory there is: the default device's `bytes_limit` where the
backend reports one (GPUs), else the host's MemAvailable (/proc/meminfo, or
sysconf(SC_AVPHYS_PAGES) where that file is missing).
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

GB = 1e9


def _nbytes(tree) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)
               if hasattr(x, "shape") and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key))


def _jaxpr_bytes(jaxpr) -> int:
    """Every equation's outputs, sub-jaxprs (jit, cond, custom_vjp) included."""
    total = 0
    for eqn in jaxpr.eqns:
        total += sum(_nbytes(v.aval) for v in eqn.outvars if hasattr(v.aval, "shape"))
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                total += _jaxpr_bytes(inner)
    return total


def estimate_bytes(model, config, tc, example_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> int:
    """Bytes a training run needs, estimated from shapes (see the module docstring).

    Args:
        model, config, tc: the run's Model, model config and TrainConfig.
        example_shape, target_shape: the shapes of one batch's X and Y (e.g. [32, 3] and [32]).
    """
    from .train import create_train_state, loss_fn

    ts = jax.eval_shape(create_train_state, model, config, tc, jax.random.key(0))  # shapes only
    x = jax.ShapeDtypeStruct(example_shape, jnp.int32)
    y = jax.ShapeDtypeStruct(target_shape, jnp.int32)
    grad_fn = jax.value_and_grad(lambda p, s, x, y: loss_fn(model, config, p, s, x, y), has_aux=True)
    step = jax.make_jaxpr(grad_fn)(ts.params, ts.model_state, x, y)
    return _nbytes(ts) + _nbytes(ts.params) + _jaxpr_bytes(step.jaxpr)


def available_bytes() -> int:
    """Memory the default device can use: its bytes_limit where reported, else the host's MemAvailable."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def format_bytes(n: float) -> str:
    for unit, size in (("GB", GB), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:.0f} bytes"
