"""Meshes and shardings: one run over many devices, and over many processes (machines).

Data parallel training is the plain train step under `jax.jit` with shardings, no pmap:

    mesh = data_mesh(4)                      # a 1-d Mesh over 4 devices, axis "data"
    ts, summary = train.fit(..., mesh=mesh)  # the batch split over "data", the rest replicated

Every minibatch is drawn on the device as on one device (same key, same rows); a sharding
constraint then splits its rows over the mesh, and the parameters, optimiser state,
BatchNorm statistics and metrics are constrained to be replicated. XLA's partitioner turns
the sums over the batch (the loss, the gradients, BatchNorm's mean and variance) into
all-reduces, so the numbers are those of the global batch on one device, up to the order
of float32 additions.

With `shard="fsdp"` (`--shard fsdp`) the parameters and the optimiser state are split over the
same mesh axis instead of replicated, each leaf along one of its axes (`fsdp_axis`): every
device keeps 1/n of them between steps, and XLA's sharding propagation gathers each weight
where the step needs it whole and reduce-scatters its gradient, so the update runs on the
shards. The batch rows stay split as above, and the numbers are those of the replicated run,
up to the order of float32 additions. A parameter with no axis that divides by the device
count is refused by name (`ParallelError`), not padded: padding a parameter would change the
model it is.

Several processes (one per machine, or several on one) join with `initialize` before JAX
runs anything; the mesh then spans every process's devices, each process holds the whole
(small) training split, and its devices compute their rows of every global batch. On CPUs
the cross-process all-reduces use gloo. Nothing here names a device kind: the same code
runs on CPU host devices, on GPUs and on TPUs.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"  # mesh axis of data parallel training: rows of the batch
RUNS = "runs"  # mesh axis of a sweep: whole runs
_HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
SHARDS = ("none", "fsdp")  # --shard: parameters and optimiser state replicated, or split over the mesh


class ParallelError(ValueError):
    """A device or process request this machine (or cluster) cannot meet."""


# ----------------------------------------------------------------------------- before JAX starts


def request_host_devices(count: int | None = None) -> None:
    """Split the CPU into `count` XLA host devices (default: one per core), unless XLA_FLAGS says.

    Takes effect only if set before JAX's first computation in the process; it changes
    nothing on a GPU or TPU backend, whose devices are the accelerators. A user's own
    `--xla_force_host_platform_device_count` in XLA_FLAGS wins.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _HOST_DEVICES_FLAG in flags:
        return
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICES_FLAG}={max(count, 1)}".strip()


def parse_devices(text: str) -> int | None:
    """`--devices` value: a positive integer, or "all" (None)."""
    if text == "all":
        return None
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ValueError(f"expected a positive integer or 'all', got {text!r}")
    return int(text)


def cluster_size_from_env() -> int:
    """Processes a launcher started for this step (srun, mpirun); 1 outside one.

    Slurm's SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: a shell inside a many-task allocation
    that was not started by srun is one process and must not wait for others.
    """
    for name in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def processes_asked(num_processes: int | None) -> int:
    """The process count of the run being started: --num-processes, else the launcher's."""
    return num_processes if num_processes is not None else cluster_size_from_env()


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Join JAX's distributed runtime when several processes are asked for; True if joined.

    Args:
        coordinator: "HOST:PORT" of process 0 (its machine, any free port).
        num_processes, process_id: this run's process count and this process's index.
            Without any of the three, a Slurm or Open MPI launch of several tasks is
            detected by `jax.distributed.initialize` itself; a single process returns False.
    """
    explicit = (coordinator, num_processes, process_id)
    if all(v is None for v in explicit) and cluster_size_from_env() <= 1:
        return False
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise ParallelError("--coordinator, --num-processes and --process-id go together (or none, under Slurm/MPI)")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ParallelError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    # CPU devices of different processes all-reduce through gloo (XLA's CPU default has none).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)
    with _quiet_native_output():
        _connect_all_devices()
    return True


def _connect_all_devices() -> None:
    """Sum one number per device over every device of every process, once.

    The first cross-process collective makes the collectives library connect its peers
    (gloo on CPUs, which prints a "[Gloo] Rank r is connected to ..." line per device);
    doing it here, under `_quiet_native_output`, keeps that out of the user's output and
    checks that every process has joined before any data is read.
    """
    devices = jax.devices()
    mesh = Mesh(np.asarray(devices), ("all",))
    ones = np.ones(jax.local_device_count(), np.int32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("all")), ones)
    total = jax.jit(lambda v: v.sum(), out_shardings=NamedSharding(mesh, P()))(x)
    if int(total.addressable_data(0)) != len(devices):
        raise RuntimeError(f"the processes' devices summed to {int(total.addressable_data(0))}, not {len(devices)}")


@contextlib.contextmanager
def _quiet_native_output():
    """Catch what native code writes to file descriptors 1 and 2 meanwhile; drop "[Gloo]" lines.

    The collectives library prints from C++ straight to the descriptors, past sys.stdout,
    so the descriptors themselves point at a temporary file for the duration; every other
    line is written back to where it was headed when the block ends (also on an error).
    """
    sys.stdout.flush(), sys.stderr.flush()
    saved = [(fd, os.dup(fd), tempfile.TemporaryFile()) for fd in (1, 2)]
    for fd, _, caught in saved:
        os.dup2(caught.fileno(), fd)
    try:
        yield
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        for fd, original, caught in saved:
            os.dup2(original, fd)
            os.close(original)
            caught.seek(0)
            kept = b"".join(line for line in caught.read().splitlines(keepends=True) if not line.startswith(b"[Gloo]"))
            caught.close()
            while kept:
                kept = kept[os.write(fd, kept):]


def is_writer() -> bool:
    """Whether this process writes checkpoints, logs and output (process 0 only)."""
    return jax.process_index() == 0


# ----------------------------------------------------------------------------- meshes


def mesh_over(count: int | None, axis: str) -> Mesh:
    """A 1-d Mesh over the first `count` devices (None: all of them, of every process)."""
    devices = jax.devices()
    if count is None:
        count = len(devices)
    if count > len(devices):
        raise ParallelError(f"--devices {count}: only {len(devices)} {devices[0].platform} device(s) visible")
    if jax.process_count() > 1 and count != len(devices):
        raise ParallelError(f"--devices {count}: with {jax.process_count()} processes the mesh spans all "
                            f"{len(devices)} devices (leave --devices out, or use --devices all)")
    return Mesh(np.asarray(devices[:count]), (axis,))


def data_mesh(count: int | None) -> Mesh | None:
    """The mesh of data parallel training, or None for one device in one process (no sharding)."""
    if count == 1 and jax.process_count() == 1:
        return None
    return mesh_over(count, DATA)


# ----------------------------------------------------------------------------- placement


def replicate(tree, mesh: Mesh):
    """Put every leaf whole on every device of the mesh (also across processes).

    Each process passes its own copy of the same values (numpy, or arrays on its devices).
    """
    sharding = NamedSharding(mesh, P())
    return place(tree, jax.tree.map(lambda _: sharding, tree))


def place(tree, shardings):
    """Put each leaf of `tree` on the mesh as its entry of `shardings` (a tree of NamedSharding) says.

    Each process passes its own copy of the whole values (numpy, or arrays on its devices);
    a process makes only the pieces its own devices hold.
    """
    def put(x, sharding):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
        whole = np.asarray(x)
        return jax.make_array_from_callback(whole.shape, sharding, lambda index: whole[index])

    return jax.tree.map(put, tree, shardings)


def local_copy(tree):
    """Every leaf whole on one device of this process, for saving or evaluating alone.

    A replicated leaf (also one spread over several processes) gives its local copy; a
    leaf split over this process's devices is gathered; a leaf split over several
    processes' devices is gathered from all of them, a collective that every process of
    the run must enter at the same point.
    """
    def one(x):
        if not isinstance(x, jax.Array) or len(x.sharding.device_set) == 1:
            return x
        if x.is_fully_replicated:
            return x.addressable_data(0)
        if not x.is_fully_addressable:
            from jax.experimental import multihost_utils
            with _quiet_native_output():  # a first gather between the processes' devices connects gloo anew
                whole = multihost_utils.process_allgather(x, tiled=True)
            return jax.device_put(whole, jax.local_devices()[0])
        return jax.device_put(x, x.addressable_shards[0].device)

    return jax.tree.map(one, tree)


def spans_processes(tree) -> bool:
    """Whether some leaf is split over devices of several processes (so `local_copy` is a collective)."""
    return any(isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated
               for x in jax.tree.leaves(tree))


def agreed(flag: bool) -> bool:
    """Process 0's `flag` on every process (a collective in a multi-process run), e.g. a
    decision taken by the clock that the processes must all take alike."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    with _quiet_native_output():  # as local_copy's gather
        return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


# ----------------------------------------------------------------------------- sharded parameters (fsdp)


def fsdp_axis(shape: tuple[int, ...], n: int) -> int | None:
    """The axis a leaf of `shape` is split along over n devices: its largest that divides by n
    (the first of equal ones), or None (a scalar, or no axis divides)."""
    dividing = [i for i, size in enumerate(shape) if size % n == 0]
    return max(dividing, key=lambda i: shape[i]) if dividing else None


def fsdp_spec(shape: tuple[int, ...], n: int, axis_name: str = DATA) -> P:
    """The PartitionSpec of a leaf under fsdp: split along fsdp_axis over `axis_name`, else replicated."""
    axis = fsdp_axis(shape, n)
    return P() if axis is None else P(*([None] * axis), axis_name)


def check_fsdp(params, n: int) -> None:
    """Refuse (ParallelError) a parameter of `params` (arrays or shapes) with no axis dividing by n devices."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if fsdp_axis(leaf.shape, n) is None:
            name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
            raise ParallelError(f"--shard fsdp: no axis of {name} (shape {tuple(leaf.shape)}) divides by {n} "
                                f"devices; use a device count that divides it, or leave --shard out")


def state_shardings(ts, mesh: Mesh, shard: str = "none"):
    """The NamedSharding of every leaf of a TrainState (arrays or jax.ShapeDtypeStructs) on `mesh`.

    shard "none": all replicated. "fsdp": params and opt_state split by fsdp_spec (the
    optimiser's moments as their parameters; its scalar counts replicated), the step, the
    model state and the key replicated. Raises ParallelError as check_fsdp.
    """
    if shard not in SHARDS:
        raise ParallelError(f"--shard must be one of {', '.join(SHARDS)}, got {shard!r}")
    replicated = NamedSharding(mesh, P())
    whole = ts.replace(**{name: jax.tree.map(lambda _: replicated, getattr(ts, name))
                          for name in ("step", "params", "model_state", "opt_state", "key")})
    if shard == "none":
        return whole
    check_fsdp(ts.params, mesh.size)
    split = lambda x: NamedSharding(mesh, fsdp_spec(x.shape, mesh.size, mesh.axis_names[0]))  # noqa: E731
    return whole.replace(params=jax.tree.map(split, ts.params), opt_state=jax.tree.map(split, ts.opt_state))


# ----------------------------------------------------------------------------- the step


def data_parallel_step(train_step, mesh: Mesh, shardings=None):
    """train_step(ts, batch) with the batch's rows split over the mesh and the state as `shardings` says.

    Args:
        train_step: (ts, (x [B, ...], y [B, ...])) -> (ts, metrics), e.g. train.make_train_step's.
        mesh: a 1-d mesh; B must be a multiple of its size.
        shardings: the state's NamedShardings (state_shardings), kept on the way in and out;
            None: everything replicated.
    Returns:
        the same function, to run under jit (train.make_train_chunk) over the mesh.
    """
    rows = NamedSharding(mesh, P(mesh.axis_names[0]))
    replicated = NamedSharding(mesh, P())

    def step(ts, batch):
        kept = replicated if shardings is None else shardings
        batch = jax.lax.with_sharding_constraint(batch, rows)
        ts, metrics = train_step(jax.lax.with_sharding_constraint(ts, kept), batch)
        return jax.lax.with_sharding_constraint(ts, kept), jax.lax.with_sharding_constraint(metrics, replicated)

    return step
