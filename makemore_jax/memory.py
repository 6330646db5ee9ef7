"""Will a run fit in memory? An estimate made from shapes alone, before anything is allocated.

The estimate (a documented approximation, meant to catch the hopeless cases, not to be tight):

    parameters + optimiser state      the TrainState's arrays (jax.eval_shape of its init)
  + gradients                         one more copy of the parameters (two under --grad-accum:
                                      the micro-batch's and their running sum)
  + one micro-batch's activations     twice the forward pass's residuals at the micro-batch's
                                      size (--batch-size): the arrays `jax.vjp` keeps for the backward pass
                                      (read with jax.eval_shape, nothing computed), and as much
                                      again for the backward's cotangents at their peak

Data parallel over n devices (a mesh), the estimate is per device: the batch's rows split n
ways, and under --shard fsdp the parameters, optimiser state and gradients too (each leaf's
shard, parallel.state_shardings), plus one gathered copy of the parameters, which the step
uses whole (XLA keeps each weight gathered from the forward pass to the backward's).

It is compared with the memory there is: the default device's `bytes_limit` where the
backend reports one (GPUs); else the host's MemAvailable (/proc/meminfo, or
sysconf(SC_AVPHYS_PAGES) where that file is missing), lowered to what a container's
cgroup limit (memory.max) or the process's address-space limit (ulimit -v) leaves.
"""

from __future__ import annotations

import math
import os
import resource

import jax
import jax.numpy as jnp
import numpy as np

GB = 1e9


def _nbytes(tree, shardings=None) -> int:
    """Bytes of a tree's arrays (PRNG keys left out); with shardings (a matching tree), of one device's shards."""
    leaves = jax.tree.leaves(tree)
    placed = jax.tree.leaves(shardings) if shardings is not None else [None] * len(leaves)
    return sum(math.prod(s.shard_shape(x.shape) if s is not None else x.shape) * np.dtype(x.dtype).itemsize
               for x, s in zip(leaves, placed, strict=True)
               if hasattr(x, "shape") and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key))


def estimate_bytes(model, config, tc, example_shape: tuple[int, ...], target_shape: tuple[int, ...], *,
                   mesh=None, shard: str = "none") -> int:
    """Bytes a training run needs (on each device of `mesh`), estimated from shapes (see the module docstring).

    Args:
        model, config, tc: the run's Model, model config and TrainConfig.
        example_shape, target_shape: the shapes of one micro-batch's X and Y (e.g. [32, 3] and [32]).
        mesh, shard: the data parallel mesh (None: one device) and how the state is placed on
            it ("none": replicated, "fsdp": split; parallel.state_shardings).
    Raises:
        parallel.ParallelError: fsdp with a parameter that no device count split (check_fsdp).
    """
    from .train import create_train_state, loss_fn

    ts = jax.eval_shape(create_train_state, model, config, tc, jax.random.key(0))  # shapes only
    per_device = lambda shape: shape if mesh is None else (-(-shape[0] // mesh.size), *shape[1:])  # noqa: E731
    x = jax.ShapeDtypeStruct(per_device(example_shape), jnp.int32)
    y = jax.ShapeDtypeStruct(per_device(target_shape), jnp.int32)
    # The sum of every intermediate of the step's jaxpr would count each fused elementwise op
    # (dropout's random bits, softmax's steps) as its own array: tens of times too much.
    residuals = jax.eval_shape(lambda p, s, x, y: jax.vjp(lambda p: loss_fn(model, config, p, s, x, y), p,
                                                          has_aux=True)[1], ts.params, ts.model_state, x, y)
    gradient_copies = 1 + (tc.grad_accum > 1)  # the step's gradients, and under accumulation their running sum
    if mesh is None:
        return _nbytes(ts) + gradient_copies * _nbytes(ts.params) + 2 * _nbytes(residuals)
    from .parallel import state_shardings
    shardings = state_shardings(ts, mesh, shard)
    gathered = _nbytes(ts.params) if shard == "fsdp" else 0
    return (_nbytes(ts, shardings) + gradient_copies * _nbytes(ts.params, shardings.params) + gathered
            + 2 * _nbytes(residuals))


def _device_stats() -> dict:
    try:
        return jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics
        return {}


def available_per_device(local_devices: int) -> int:
    """Memory each of this process's `local_devices` devices can use: a device's own
    (bytes_limit, a GPU's), or an equal part of the host's, which host devices share."""
    have = available_bytes()
    return have if "bytes_limit" in _device_stats() else have // max(local_devices, 1)


def available_bytes() -> int:
    """Memory the default device can use: its bytes_limit where reported, else the host's (see the module)."""
    stats = _device_stats()
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    host = _meminfo("/proc/meminfo", "MemAvailable:")
    if host is None:
        host = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limits = [host]
    cgroup_max, cgroup_used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cgroup_max is not None and cgroup_used is not None:
        limits.append(cgroup_max - cgroup_used)
    address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if address_space != resource.RLIM_INFINITY:
        limits.append(address_space - (_meminfo("/proc/self/status", "VmSize:") or 0))
    return max(min(limits), 0)


def _meminfo(path: str, key: str) -> int | None:
    """A "key: N kB" line of a /proc file, in bytes."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())  # "max" (no limit) is not an int
    except (OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    for unit, size in (("GB", GB), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:.0f} bytes"
