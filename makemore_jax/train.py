"""One training engine for every model: a pure train step, fused into chunks with lax.scan.

The device runs `chunk_size` steps per dispatch; minibatches are drawn on the device from
the device-resident training arrays by the data kind's sampler (kinds.py) with the key
`fold_in(key, step)`, so a run's numbers depend only on the seed and the step, not on how
the steps were cut into chunks. The host loop (loop.py) only advances chunks, checks the
losses for divergence, logs and shows progress.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from . import loop
from .kinds import batch_rows, row_batch
from .data import IGNORE
from .losses import cross_entropy
from .loop import DIVERGENCE_FACTOR
from .models import Model, Penalty
from .optim import OPTIMIZERS, TrainConfig, make_optimizer, make_schedule  # noqa: F401 (train's public names)
from .settings import SettingError, UsageError

class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue exactly: a pytree, saved whole in checkpoints."""

    step: jax.Array  # int32 scalar: steps taken
    params: dict
    model_state: dict  # e.g. BatchNorm running statistics; {} for stateless models
    opt_state: optax.OptState
    key: jax.Array  # base key of the minibatch draws; step s uses fold_in(key, s)


class Diverged(RuntimeError):
    """The loss went NaN/inf or far up (DIVERGENCE_FACTOR) at `step`; `last_good` is the state before that chunk."""

    def __init__(self, step: int, last_good: TrainState, loss: float = math.nan, reference: float = math.nan):
        why = (f"the loss {loss:.4g} is more than {DIVERGENCE_FACTOR:g}x the initial {reference:.4g}"
               if math.isfinite(loss) else "the loss is not finite")
        super().__init__(f"training diverged: {why} at step {step}")
        self.step = step
        self.last_good = last_good


# ----------------------------------------------------------------------------- steps


# A run calls create_train_state once, so its compile time is all that counts: XLA's default
# (-O3) spends ~4 s of CPU on LLVM for the random draws of the lecture MLP, -O2 ~1.4 s, with
# the same numbers (tests/test_train.py checks them against the -O3 compile).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}
# The training chunk too: -O2 compiles gpt-speedrun's in ~0.9 s less than -O3 and its steps run
# as fast, with the same numbers (benchmarks/ABLATIONS.md, "Speedrun").
CHUNK_COMPILER_OPTIONS = INIT_COMPILER_OPTIONS


def init_train_state(model: Model, config, tc: TrainConfig, key: jax.Array) -> TrainState:
    """Initialise params and model state from `key`; the minibatch key is split from it.

    Called as `create_train_state`, jitted; as it is, under jax.eval_shape (a checkpoint's template).
    """
    init_key, data_key = jax.random.split(key)
    params, model_state = model.init(init_key, config)
    opt_state = make_optimizer(tc, model.param_labels).init(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=opt_state, key=data_key)


# Jitted (model, config and tc are static): one compilation instead of one per eager op.
create_train_state = jax.jit(init_train_state, static_argnums=(0, 1, 2), compiler_options=INIT_COMPILER_OPTIONS)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def train_state_from(model: Model, config, tc: TrainConfig, params: dict, key: jax.Array) -> TrainState:
    """A TrainState at step 0 that starts from `params` (shaped as model.init's for `config`): a fresh
    optimiser, the model state of init and the minibatch key split from `key`, as `create_train_state`.

    nanoGPT's init_from: fine-tuning a converted or trained model. The params init draws here
    are unused, so XLA drops them: no time is spent on a model's worth of random numbers.
    """
    fresh = init_train_state(model, config, tc, key)
    return fresh.replace(params=params, opt_state=make_optimizer(tc, model.param_labels).init(params))


def loss_fn(model: Model, config, params, model_state, x: jax.Array, y: jax.Array):
    """Training loss (cross-entropy plus the model's Penalty, if it has one) and the new model state."""
    logits, new_state = model.bind(config)(params, model_state, x, train=True)
    loss = cross_entropy(logits, y)
    penalty = model.ability(Penalty)
    if penalty:
        loss = loss + penalty.penalty(params, config)
    return loss, new_state


def make_train_step(model: Model, config, tx: optax.GradientTransformation, *, grad_accum: int = 1,
                    metrics_fn: Callable | None = None, metrics_every: int = 1) -> Callable:
    """Returns train_step(ts, (x, y)) -> (ts, {"loss": scalar}); pure, jit it or scan it.

    Args:
        grad_accum: the batch's rows [grad_accum x B, ...] are grad_accum micro-batches of B
            rows, whose gradients are accumulated (`accumulated`) before the one update.
        metrics_fn: optional (params_before, params_after, grads) -> {name: array}; its
            entries join the metrics at the steps s (0-based, before the update) with
            s % metrics_every == 0, and are NaN at the others (a lax.cond skips the work).
            Without it the step is exactly the plain one.
    """
    if metrics_every < 1:
        raise ValueError(f"metrics_every must be at least 1, got {metrics_every}")
    grad_fn = jax.value_and_grad(functools.partial(loss_fn, model, config), has_aux=True)
    if grad_accum > 1:
        grad_fn = accumulated(grad_fn, grad_accum)

    def train_step(ts: TrainState, batch: tuple[jax.Array, jax.Array]):
        (loss, model_state), grads = grad_fn(ts.params, ts.model_state, *batch)
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        metrics = {"loss": loss}
        if metrics_fn is not None:
            metrics.update(_every(metrics_every, ts.step, metrics_fn, ts.params, params, grads))
        ts = ts.replace(step=ts.step + 1, params=params, model_state=model_state, opt_state=opt_state)
        return ts, metrics

    return train_step


def accumulated(grad_fn: Callable, n: int) -> Callable:
    """grad_fn(params, state, x, y) -> ((loss, state), grads) over n micro-batches, one after another.

    x, y [n B, ...] are cut into n micro-batches of B rows (micro-batch i: rows i, n + i,
    2n + i, ..., so that rows split over devices split each micro-batch alike); a lax.scan
    runs grad_fn on each, carrying the model state through, and sums loss and gradients, each
    weighted by its share of the counted targets (those not IGNORE). The result is the mean
    over all n B rows, so it equals grad_fn on the whole batch up to float rounding wherever
    the loss is a mean over targets (BatchNorm's statistics are a micro-batch's own).
    Only one micro-batch's activations are alive at a time.
    """
    def value_and_grad(params, model_state, x, y):
        xs, ys = (a.reshape(a.shape[0] // n, n, *a.shape[1:]).swapaxes(0, 1) for a in (x, y))  # [n, B, ...]
        counts = jnp.sum(ys != IGNORE, axis=tuple(range(1, ys.ndim))).astype(jnp.float32)  # [n]
        weights = counts / jnp.maximum(counts.sum(), 1.0)

        def micro(carry, batch):
            state, loss_sum, grad_sum = carry
            x, y, weight = batch
            (loss, state), grads = grad_fn(params, state, x, y)
            grad_sum = jax.tree.map(lambda total, g: total + weight * g, grad_sum, grads)
            return (state, loss_sum + weight * loss, grad_sum), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (state, loss, grads), _ = jax.lax.scan(micro, (model_state, jnp.zeros((), jnp.float32), zeros),
                                               (xs, ys, weights))
        return (loss, state), grads

    return value_and_grad


def step_rows(tc: TrainConfig) -> int | None:
    """Rows one training step draws: batch_size x grad_accum micro-batch rows (None: the whole split)."""
    return None if tc.batch_size is None else tc.batch_size * tc.grad_accum


def _every(every: int, step: jax.Array, fn: Callable, *args) -> dict:
    """fn(*args) at the steps divisible by `every`; NaNs of the same shapes at the others."""
    if every == 1:
        return fn(*args)
    nans = lambda *a: jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), jax.eval_shape(fn, *a))
    return jax.lax.cond(step % every == 0, fn, nans, *args)


batch_indices = batch_rows  # minibatch rows per step, int32 [len(steps), batch_size] (kinds.batch_rows)


def make_train_chunk(train_step: Callable, n_steps: int, batch_size: int | None, *,
                     all_metrics: bool = False, batch: Callable = row_batch) -> Callable:
    """Jitted chunk(ts, *arrays) -> (ts, losses [n_steps]): n_steps train steps in one dispatch.

    The arrays ("context", "sequence": X [N, ...] and Y [N, ...]) stay on the device. The
    minibatches of all n_steps are drawn up front by the data kind's sampler,
    `batch(arrays, key, steps, batch_size) -> (x [n_steps, B, ...], y [n_steps, B, ...])`
    (kinds.row_batch: rows from fold_in(key, step), gathered once; kinds.text_batch, its
    block_size bound: windows at offsets from fold_in(key, step)), and the scan then only
    trains, which is faster than a gather inside every step (benchmarks/ABLATIONS.md). The
    scan is not unrolled, so every chunking of a run compiles the same step and gives
    bit-identical numbers. With `all_metrics` the chunk returns every metric of the step,
    stacked: (ts, {name: [n_steps, ...]}). batch_size None: the whole arrays every step.
    """
    pick = (lambda out: out) if all_metrics else _loss_only
    step = lambda ts, batch: pick(train_step(ts, batch))

    def chunk(ts: TrainState, *arrays: jax.Array):
        if batch_size is None:  # full batch: the same arrays every step
            return jax.lax.scan(lambda ts, _: step(ts, arrays), ts, length=n_steps)
        return jax.lax.scan(step, ts, batch(arrays, ts.key, ts.step + jnp.arange(n_steps), batch_size))

    return jax.jit(chunk)


def _loss_only(out):
    ts, metrics = out
    return ts, metrics["loss"]


# ----------------------------------------------------------------------------- host loop


def fit(model: Model, config, tc: TrainConfig, X: np.ndarray, Y: np.ndarray, ts: TrainState, *,
        callbacks: Sequence = (), mesh: jax.sharding.Mesh | None = None, shard: str = "none",
        metrics_fn: Callable | None = None, metrics_every: int = 1) -> tuple[TrainState, dict]:
    """Train from `ts` up to `tc.steps` steps: compiled chunks run by loop.run_chunks.

    Args:
        X, Y: the training split's arrays, e.g. int32 [N, block_size] and [N] (moved to the device once).
        ts: the state to continue from (fresh or loaded from a checkpoint).
        callbacks: loop.py callbacks, called after each good chunk: progress, a JSON log,
            checkpoints, a stop request (the run's life composes them; none by default).
        mesh: data parallel over this mesh (parallel.data_mesh): each batch's rows split
            over its devices, everything else replicated; the returned state is replicated.
        shard: with a mesh, "fsdp" splits the parameters and optimiser state over it instead
            (parallel.state_shardings); the returned state is split the same way.
        metrics_fn, metrics_every: extra metrics computed inside the fused loop at every
            `metrics_every`-th step (see make_train_step), e.g. diagnostics.update_ratios.
    Returns:
        (final state, summary {"steps", "seconds", "compile_seconds", "final_loss", "stopped"}), and
        with metrics_fn summary["metrics"] = {"step": int [K], name: [K, ...]} for the K collected steps.
    Raises:
        Diverged: a loss went NaN/inf or above DIVERGENCE_FACTOR x the first one; it carries
            the state before the chunk where that happened.
    """
    check_batch_size(tc.batch_size, len(X))
    check_grad_accum(tc, len(X))
    X, Y = jax.device_put(X), jax.device_put(Y)
    train_step = make_train_step(model, config, make_optimizer(tc, model.param_labels), grad_accum=tc.grad_accum,
                                 metrics_fn=metrics_fn, metrics_every=metrics_every)
    if mesh is not None:
        from .parallel import data_parallel_step, place, replicate, state_shardings
        shardings = state_shardings(ts, mesh, shard)
        train_step = data_parallel_step(train_step, mesh, shardings)
        X, Y, ts = *replicate((X, Y), mesh), place(ts, shardings)

    def compile_chunk(n: int):
        batch = functools.partial(model.kind.batch, block_size=config.block_size)
        compiled = make_train_chunk(train_step, n, step_rows(tc), all_metrics=metrics_fn is not None,
                                    batch=batch).lower(ts, X, Y).compile(CHUNK_COMPILER_OPTIONS)
        return lambda state: compiled(state, X, Y)

    start = int(ts.step)
    collected = Collected(metrics_every, start) if metrics_fn is not None else None

    def diverged(first, bad, before, losses):
        at = int(bad[0])
        raise Diverged(first + at, before, float(losses[0, at]), float(divergence.reference[0]))

    divergence = loop.Divergence(config.vocab_size)
    result = loop.run_chunks(compile_chunk, ts, start=start, total=tc.steps, chunk_size=tc.chunk_size,
                             divergence=divergence, on_diverged=diverged, callbacks=callbacks,
                             host=collected.host if collected else np.asarray)
    final = float(result.last_losses[-1]) if result.last_losses is not None else math.nan
    summary = {"steps": result.steps, "seconds": result.seconds, "compile_seconds": result.compile_seconds,
               "final_loss": final, "stopped": result.stopped}
    if collected is not None:
        summary["metrics"] = collected.arrays()
    return result.state, summary


def check_batch_size(batch_size: int | None, n: int, flag: str = "batch_size") -> None:
    """Refuse a minibatch larger than the training split of n examples (a SettingError on `flag`)."""
    if batch_size is not None and batch_size > n:
        raise SettingError(flag, f"{batch_size} is larger than the training split ({n:,} examples)")


def check_grad_accum(tc: TrainConfig, n: int) -> None:
    """Refuse a full batch of n rows that grad_accum micro-batches cannot share evenly (a UsageError)."""
    if tc.batch_size is None and n % tc.grad_accum:
        raise UsageError(f"{{accum}} does not divide the full batch ({{batch}}: {n:,} rows) into equal "
                         f"micro-batches", accum=("grad_accum", tc.grad_accum), batch=("batch_size", None))


class Collected:
    """The metrics of make_train_step's metrics_fn at the steps divisible by `every`, chunk by chunk."""

    def __init__(self, every: int, start: int):
        self.every, self.rows, self._next_first = every, {"step": []}, start

    def host(self, outputs) -> np.ndarray:
        """A chunk's outputs {"loss": [n], name: [n, ...]} -> its losses; the other rows kept."""
        metrics = jax.device_get(outputs)
        first = self._next_first
        steps = first + np.arange(len(metrics["loss"]))
        for i in np.flatnonzero(steps % self.every == 0):
            self.rows["step"].append(int(steps[i]))
            for name, values in metrics.items():
                if name != "loss":
                    self.rows.setdefault(name, []).append(values[i])
        self._next_first = first + len(metrics["loss"])
        return metrics["loss"]

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.rows.items()}


# ----------------------------------------------------------------------------- learning-rate finder


def lr_find(model: Model, config, X: np.ndarray, Y: np.ndarray, key: jax.Array, *, batch_size: int = 32,
            steps: int = 1000, lr_min: float = 1e-3, lr_max: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Lecture 2's sweep: step i uses lr = 10**linspace(log10 lr_min, log10 lr_max, steps)[i].

    Returns:
        (lrs [steps], minibatch losses [steps]) as numpy arrays.
    """
    lrs = jnp.logspace(math.log10(lr_min), math.log10(lr_max), steps)
    tx = optax.sgd(lambda count: lrs[jnp.minimum(count, steps - 1)])
    ts = create_train_state(model, config, TrainConfig(steps=steps), key)
    ts = ts.replace(opt_state=tx.init(ts.params))
    chunk = make_train_chunk(make_train_step(model, config, tx), steps, batch_size)
    _, losses = chunk(ts, jax.device_put(X), jax.device_put(Y))
    return np.asarray(lrs), np.asarray(losses)
