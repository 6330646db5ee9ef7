"""One training engine for every model: a pure train step, fused into chunks with lax.scan.

The device runs `chunk_size` steps per dispatch; minibatches are drawn on the device from
the device-resident training arrays with the key `fold_in(key, step)`, so a run's numbers
depend only on the seed and the step, not on how the steps were cut into chunks. The host
only advances chunks, checks the losses for NaN, logs and shows progress.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from .checkpoint import dumps_json
from .losses import cross_entropy
from .models import Model

OPTIMIZERS = ("sgd", "adamw")
DECAYS = ("all", "matrices")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 200_000
    batch_size: int | None = 32  # None: full batch, every example every step, in order
    optimizer: str = "sgd"  # "sgd" (plain, as the lectures) or "adamw"
    lr: float = 0.1  # peak learning rate
    lr_decay_step: int | None = 100_000  # sgd: lr x lr_decay from this step on (lectures: 0.1 -> 0.01 at 100k)
    lr_decay: float = 0.1
    warmup_steps: int = 0  # adamw: linear warmup, then cosine decay to lr x min_lr_ratio at `steps`
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01  # adamw only
    decay: str = "all"  # adamw: which leaves weight decay shrinks: "all", or "matrices" (ndim >= 2, as nanoGPT)
    b1: float = 0.9  # adamw: decay rates of the gradient's first and second moments
    b2: float = 0.999  # (makemore's transformer uses 0.99)
    clip_norm: float | None = None  # clip the global gradient norm to this
    chunk_size: int = 1000  # steps per device dispatch (and per log line)

    def __post_init__(self):
        checks = [
            (self.steps >= 1, f"steps must be at least 1, got {self.steps}"),
            (self.batch_size is None or self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}"),
            (self.lr_decay_step is None or self.lr_decay_step >= 0, f"lr_decay_step must be >= 0, got {self.lr_decay_step}"),
            (self.lr_decay > 0, f"lr_decay must be positive, got {self.lr_decay}"),
            (0 <= self.warmup_steps <= self.steps, f"warmup_steps must be in [0, steps], got {self.warmup_steps}"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.decay in DECAYS, f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}"),
            (0 <= self.b1 < 1 and 0 <= self.b2 < 1, f"b1 and b2 must be in [0, 1), got {self.b1}, {self.b2}"),
            (self.clip_norm is None or self.clip_norm > 0, f"clip_norm must be positive, got {self.clip_norm}"),
            (self.chunk_size >= 1, f"chunk_size must be at least 1, got {self.chunk_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class TrainState(struct.PyTreeNode):
    """Everything a run needs to continue exactly: a pytree, saved whole in checkpoints."""

    step: jax.Array  # int32 scalar: steps taken
    params: dict
    model_state: dict  # e.g. BatchNorm running statistics; {} for stateless models
    opt_state: optax.OptState
    key: jax.Array  # base key of the minibatch draws; step s uses fold_in(key, s)


# A run diverges when a step's loss is NaN or infinite, or more than this many times the
# reference: the first loss of the fit (or ln(vocab_size), a uniform guess, if larger).
# Lecture 2's unit init starts near 27 and never comes back from 10x that; a healthy run
# never gets there (its minibatch losses stay within a few nats of the mean).
DIVERGENCE_FACTOR = 10.0


class Diverged(RuntimeError):
    """The loss went NaN/inf or far up (DIVERGENCE_FACTOR) at `step`; `last_good` is the state before that chunk."""

    def __init__(self, step: int, last_good: TrainState, loss: float = math.nan, reference: float = math.nan):
        why = (f"the loss {loss:.4g} is more than {DIVERGENCE_FACTOR:g}x the initial {reference:.4g}"
               if math.isfinite(loss) else "the loss is not finite")
        super().__init__(f"training diverged: {why} at step {step}")
        self.step = step
        self.last_good = last_good


# ----------------------------------------------------------------------------- optimiser


def make_schedule(tc: TrainConfig) -> optax.Schedule:
    if tc.optimizer == "sgd":
        if tc.lr_decay_step is None:
            return optax.constant_schedule(tc.lr)
        return optax.piecewise_constant_schedule(tc.lr, {tc.lr_decay_step: tc.lr_decay})
    return optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, tc.warmup_steps, max(tc.steps, tc.warmup_steps + 1), end_value=tc.lr * tc.min_lr_ratio)


def make_optimizer(tc: TrainConfig, *, lr=None, weight_decay=None) -> optax.GradientTransformation:
    """tc's optimiser; `lr` / `weight_decay` replace tc's and may be traced (a sweep vmaps over them)."""
    schedule = make_schedule(tc)
    if lr is not None:  # tc's schedule, rescaled to peak at `lr`
        unit = make_schedule(dataclasses.replace(tc, lr=1.0))
        schedule = lambda count: lr * unit(count)  # noqa: E731
    if tc.optimizer == "sgd":
        tx = optax.sgd(schedule)
    else:
        tx = optax.adamw(schedule, b1=tc.b1, b2=tc.b2,
                         weight_decay=tc.weight_decay if weight_decay is None else weight_decay,
                         mask=decay_mask if tc.decay == "matrices" else None)
    if tc.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm), tx)
    return tx


def decay_mask(params):
    """True for the leaves weight decay shrinks under decay="matrices": weights and embeddings
    (ndim >= 2), not biases or norm gains (nanoGPT's two AdamW parameter groups). A leaf named
    "b" is a bias whatever its shape (the transformer's qkv bias is [3, H, D], torch's [3C])."""
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.ndim >= 2 and getattr(path[-1], "key", None) != "b", params)


# ----------------------------------------------------------------------------- steps


# A run calls create_train_state once, so its compile time is all that counts: XLA's default
# (-O3) spends ~4 s of CPU on LLVM for the random draws of the lecture MLP, -O2 ~1.4 s, with
# the same numbers (tests/test_train.py checks them against the -O3 compile).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}


@functools.partial(jax.jit, static_argnums=(0, 1, 2), compiler_options=INIT_COMPILER_OPTIONS)
def create_train_state(model: Model, config, tc: TrainConfig, key: jax.Array) -> TrainState:
    """Initialise params and model state from `key`; the minibatch key is split from it.

    Jitted (model, config and tc are static): one compilation instead of one per eager op.
    """
    init_key, data_key = jax.random.split(key)
    params, model_state = model.init(init_key, config)
    opt_state = make_optimizer(tc).init(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=opt_state, key=data_key)


def loss_fn(model: Model, config, params, model_state, x: jax.Array, y: jax.Array):
    """Training loss (cross-entropy plus the model's penalty) and the new model state."""
    logits, new_state = model.apply(params, model_state, x, train=True)
    loss = cross_entropy(logits, y)
    if model.penalty is not None:
        loss = loss + model.penalty(params, config)
    return loss, new_state


def make_train_step(model: Model, config, tx: optax.GradientTransformation, *,
                    metrics_fn: Callable | None = None, metrics_every: int = 1) -> Callable:
    """Returns train_step(ts, (x, y)) -> (ts, {"loss": scalar}); pure, jit it or scan it.

    Args:
        metrics_fn: optional (params_before, params_after, grads) -> {name: array}; its
            entries join the metrics at the steps s (0-based, before the update) with
            s % metrics_every == 0, and are NaN at the others (a lax.cond skips the work).
            Without it the step is exactly the plain one.
    """
    if metrics_every < 1:
        raise ValueError(f"metrics_every must be at least 1, got {metrics_every}")
    grad_fn = jax.value_and_grad(functools.partial(loss_fn, model, config), has_aux=True)

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


def _every(every: int, step: jax.Array, fn: Callable, *args) -> dict:
    """fn(*args) at the steps divisible by `every`; NaNs of the same shapes at the others."""
    if every == 1:
        return fn(*args)
    nans = lambda *a: jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), jax.eval_shape(fn, *a))
    return jax.lax.cond(step % every == 0, fn, nans, *args)


def batch_indices(key: jax.Array, steps: jax.Array, batch_size: int, n: int) -> jax.Array:
    """Minibatch rows for each step: int32 [len(steps), batch_size], from fold_in(key, step)."""
    draw = lambda step: jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n)
    return jax.vmap(draw)(steps)


def make_train_chunk(train_step: Callable, n_steps: int, batch_size: int | None, *,
                     all_metrics: bool = False) -> Callable:
    """Jitted chunk(ts, X, Y) -> (ts, losses [n_steps]): n_steps train steps in one dispatch.

    X [N, ...] and Y [N] stay on the device. The rows of all n_steps minibatches are drawn
    up front with one vectorised call (`batch_indices`), and the minibatches themselves,
    X[rows] [n_steps, B, ...] and Y[rows] [n_steps, B], gathered once before the scan, which
    then only trains: 1.2-1.5x faster on the lecture MLP than a gather inside every step
    (benchmarks/ABLATIONS.md). The scan is not unrolled (unrolling slowed this loop down),
    so every chunking of a run compiles the same step and gives bit-identical numbers.
    With `all_metrics` the chunk returns every metric of the step, stacked:
    (ts, {name: [n_steps, ...]}).
    """
    pick = (lambda out: out) if all_metrics else _loss_only
    step = lambda ts, batch: pick(train_step(ts, batch))

    def chunk(ts: TrainState, X: jax.Array, Y: jax.Array):
        if batch_size is None:  # full batch: the same arrays every step
            return jax.lax.scan(lambda ts, _: step(ts, (X, Y)), ts, length=n_steps)
        rows = batch_indices(ts.key, ts.step + jnp.arange(n_steps), batch_size, X.shape[0])
        return jax.lax.scan(step, ts, (X[rows], Y[rows]))

    return jax.jit(chunk)


def _loss_only(out):
    ts, metrics = out
    return ts, metrics["loss"]


# ----------------------------------------------------------------------------- host loop


def fit(model: Model, config, tc: TrainConfig, X: np.ndarray, Y: np.ndarray, ts: TrainState, *,
        on_chunk: Callable[[TrainState], None] | None = None, log_path: str | None = None,
        quiet: bool = False, metrics_fn: Callable | None = None, metrics_every: int = 1,
        mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, dict]:
    """Train from `ts` up to `tc.steps` steps.

    Args:
        X, Y: the training split, int32 [N, block_size] and [N] (moved to the device once).
        ts: the state to continue from (fresh or loaded from a checkpoint).
        on_chunk: called with each good state after a chunk (e.g. to checkpoint).
        log_path: append one JSON line per chunk: step, loss (chunk mean), last loss, lr, time.
        quiet: no progress output (a bar on a terminal, else a line every tenth of the run).
        metrics_fn, metrics_every: extra metrics computed inside the fused loop at every
            `metrics_every`-th step (see make_train_step), e.g. diagnostics.update_ratios;
            the latest values of each chunk are logged too.
        mesh: data parallel over this mesh (parallel.data_mesh): each batch's rows split
            over its devices, everything else replicated; the returned state is replicated.
    Returns:
        (final state, summary {"steps", "seconds", "compile_seconds", "final_loss"}), and with
        metrics_fn summary["metrics"] = {"step": int [K], name: [K, ...]} for the K collected steps.
    Raises:
        Diverged: a loss went NaN/inf or above DIVERGENCE_FACTOR x the first one; it carries
            the state before the chunk where that happened.
    """
    from tqdm import tqdm  # not tqdm.auto: it warns in a Jupyter kernel without ipywidgets, and the bar needs a terminal anyway

    if tc.batch_size is not None and tc.batch_size > len(X):
        raise ValueError(f"batch_size {tc.batch_size} is larger than the training split ({len(X)} examples)")
    X, Y = jax.device_put(X), jax.device_put(Y)
    train_step = make_train_step(model, config, make_optimizer(tc), metrics_fn=metrics_fn, metrics_every=metrics_every)
    if mesh is not None:
        from .parallel import data_parallel_step, replicate
        train_step = data_parallel_step(train_step, mesh)
        X, Y, ts = replicate((X, Y, ts), mesh)
    collected: dict[str, list] = {"step": []}
    schedule = jax.jit(make_schedule(tc))  # one small compile, not one per eager op of the schedule
    chunks: dict[int, Callable] = {}
    start = int(ts.step)
    bar = tqdm(total=tc.steps, initial=start, disable=quiet or not sys.stderr.isatty(), unit="step",
               dynamic_ncols=True)
    print_every = 0 if quiet or not bar.disable else max(tc.steps // 10, 1)  # plain lines off a terminal
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    t0 = time.perf_counter()
    compile_seconds = 0.0
    last_loss = float("nan")
    reference = None  # the loss divergence is measured against (DIVERGENCE_FACTOR)
    # Chunks run asynchronously: one is queued behind the running one while the host checks
    # and logs the one before, so the device never waits for the host.
    pending: collections.deque = collections.deque()  # (first step, n, state before, after, outputs)
    next_ts, next_step = ts, start
    try:
        while next_step < tc.steps or pending:
            if next_step < tc.steps and len(pending) < 2:
                n = min(tc.chunk_size, tc.steps - next_step)
                if n not in chunks:
                    tc0 = time.perf_counter()
                    chunks[n] = make_train_chunk(train_step, n, tc.batch_size,
                                                 all_metrics=metrics_fn is not None).lower(ts, X, Y).compile()
                    compile_seconds += time.perf_counter() - tc0
                after, outputs = chunks[n](next_ts, X, Y)  # returns at once
                pending.append((next_step, n, next_ts, after, outputs))
                next_ts, next_step = after, next_step + n
                continue
            step, n, before, after, outputs = pending.popleft()
            if metrics_fn is not None:
                outputs = _collect(jax.device_get(outputs), step, metrics_every, collected)
            losses = np.asarray(outputs)  # the host waits for this chunk here
            if reference is None:
                reference = max(float(losses[0]) if np.isfinite(losses[0]) else 0.0, math.log(config.vocab_size))
            bad = ~np.isfinite(losses) | (losses > DIVERGENCE_FACTOR * reference)
            if bad.any():
                at = int(np.argmax(bad))
                raise Diverged(step + at, before, float(losses[at]), reference)
            ts, last_loss = after, float(losses[-1])
            if on_chunk is not None:
                on_chunk(ts)
            bar.update(n)
            bar.set_postfix(loss=f"{losses.mean():.4f}")
            elapsed = time.perf_counter() - t0
            if print_every and ((step + n) // print_every > step // print_every or step + n == tc.steps):
                print(f"step {step + n:,}/{tc.steps:,}  loss {losses.mean():.4f}  "
                      f"{(step + n - start) / elapsed:,.0f} steps/s", file=sys.stderr, flush=True)
            if log is not None:
                record = {"step": step + n, "loss": float(losses.mean()), "last_loss": last_loss,
                          "lr": float(schedule(step + n - 1)), "time": round(elapsed, 4)}
                if collected["step"] and collected["step"][-1] >= step:  # this chunk's latest extras
                    record.update({k: np.asarray(v[-1]).tolist() for k, v in collected.items() if k != "step"})
                log.write(dumps_json(record) + "\n")
                log.flush()
    finally:
        bar.close()
        if log is not None:
            log.close()
    seconds = time.perf_counter() - t0
    summary = {"steps": int(ts.step) - start, "seconds": seconds, "compile_seconds": compile_seconds,
               "final_loss": last_loss}
    if metrics_fn is not None:
        summary["metrics"] = {k: np.asarray(v) for k, v in collected.items()}
    return ts, summary


def _collect(metrics: dict, first_step: int, every: int, into: dict[str, list]) -> np.ndarray:
    """Append a chunk's rows at the steps divisible by `every` to `into`; return its losses."""
    steps = first_step + np.arange(len(metrics["loss"]))
    for i in np.flatnonzero(steps % every == 0):
        into["step"].append(int(steps[i]))
        for name, values in metrics.items():
            if name != "loss":
                into.setdefault(name, []).append(values[i])
    return metrics["loss"]


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
