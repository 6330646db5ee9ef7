"""The timed loops of the training comparisons, built inside worker processes.

Every factory returns (run, info): run(n) trains n more steps and returns (steps done, last
loss); info carries compile time and, for JAX, the FLOPs of one step from XLA's cost
analysis. Data and configs come from `problem`, the same for every framework: the model's
own dataset kind over the training split of the bundled names.
"""

from __future__ import annotations

import functools
import importlib
import math
import time

import numpy as np

from makemore_jax import data, models

CHUNK = 1000  # steps per dispatch of the fused engine (the CLI's default chunk_size)


@functools.lru_cache(maxsize=None)
def _words(path: str) -> tuple[list[str], data.Vocab]:
    words = data.load_words(path)
    return words, data.Vocab.from_words(words)


def dataset_kind(model: models.Model) -> str:
    return getattr(model, "dataset", "context")  # Model.dataset (interface 1); "context" before it lands


def problem(model_name: str, overrides: dict | None = None, *, split: str = "train", path: str = data.DEFAULT_DATA):
    """(model, config, X, Y, vocab) for a registered model, built as the CLI builds them.

    Args:
        overrides: model config fields (e.g. {"n_hidden": 1024}).
        split: "train", "dev" or "test" (80/10/10 of the shuffled words).
    """
    words, vocab = _words(path)
    model = models.get(model_name)
    overrides = dict(overrides or {})
    kind = dataset_kind(model)
    if kind == "sequence" and "block_size" not in overrides:
        overrides["block_size"] = max(map(len, words)) + 1  # as makemore and the CLI
    config = model.make_config(vocab_size=vocab.size, **overrides)
    part = dict(zip(("train", "dev", "test"), data.split_words(words)))[split]
    if hasattr(data, "build_dataset"):
        X, Y = data.build_dataset(kind, part, vocab, config.block_size)
    elif kind == "context":
        X, Y = data.build_context_dataset(part, vocab, config.block_size)
    else:
        X, Y = data.build_sequence_dataset(part, vocab, config.block_size - 1)
    return model, config, X, Y, vocab


def train_config(model: models.Model, batch_size: int | None = 0):
    """The model's TrainConfig (its train_defaults); batch_size 0 keeps the model's own."""
    from makemore_jax.train import TrainConfig
    defaults = dict(model.train_defaults)
    if batch_size != 0:
        defaults["batch_size"] = batch_size
    defaults.setdefault("steps", 200_000)
    defaults["steps"] = max(defaults["steps"], 200_000)  # the schedule only; runs go on as long as asked
    return TrainConfig(**defaults)


# ----------------------------------------------------------------------------- JAX


def jax_training(model: str, loop: str = "fused", batch_size: int | None = 0, overrides: dict | None = None,
                 seed: int = 0, chunk: int | None = None):
    """The engine's fused chunk ("fused") or a per-step `jax.jit` loop fed from the host ("per-step").

    The per-step loop is what a JAX user writes first: numpy draws the rows, one dispatch
    and one host round trip of the batch per step; the loss is read at the end. The fused
    chunk runs `chunk` steps per dispatch: by default the CLI's 1000, or fewer where a step
    is slow (about a quarter of a second per chunk at most, at least 10 steps), so repeats
    stay short.
    """
    import jax

    from makemore_jax.train import create_train_state, make_optimizer, make_train_chunk, make_train_step
    m, config, X, Y, _ = problem(model, overrides)
    tc = train_config(m, batch_size)
    ts = create_train_state(m, config, tc, jax.random.key(seed))
    train_step = make_train_step(m, config, make_optimizer(tc))
    Xd, Yd = jax.device_put(X), jax.device_put(Y)
    B = tc.batch_size
    batch = (Xd, Yd) if B is None else (Xd[:B], Yd[:B])
    t = time.perf_counter()
    step = jax.jit(train_step).lower(ts, batch).compile()
    info = {"flops_per_step": _flops(step), "batch_size": B,
            "params": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(ts.params))}
    state = {"ts": ts}
    if loop == "fused":
        info["chunk"] = chunk = chunk or _chunk_size(step, ts, batch)
        fused = make_train_chunk(train_step, chunk, B).lower(ts, Xd, Yd).compile()

        def run(n):
            ts = state["ts"]
            for _ in range(math.ceil(n / chunk)):
                ts, losses = fused(ts, Xd, Yd)
            state["ts"] = ts
            return math.ceil(n / chunk) * chunk, float(losses[-1])  # the host waits here
    elif loop == "per-step":
        rng = np.random.default_rng(seed)

        def run(n):
            ts = state["ts"]
            for _ in range(n):
                if B is None:
                    ts, metrics = step(ts, batch)
                else:
                    ix = rng.integers(0, len(X), B)
                    ts, metrics = step(ts, (X[ix], Y[ix]))
            state["ts"] = ts
            return n, float(metrics["loss"])
    else:
        raise ValueError(f"loop must be 'fused' or 'per-step', got {loop!r}")
    info["compile_s"] = time.perf_counter() - t
    return run, info


def _flops(compiled) -> float | None:
    """FLOPs of one call by XLA's cost analysis (None where the backend has none)."""
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # noqa: BLE001
        return None


def _chunk_size(step, ts, batch, budget_s: float = 0.25) -> int:
    """Steps per fused chunk: CHUNK, or fewer where one jitted step takes longer than budget_s / CHUNK."""
    import jax
    for _ in range(2):
        jax.block_until_ready(step(ts, batch))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        jax.block_until_ready(step(ts, batch))
        times.append(time.perf_counter() - t)
    return int(min(CHUNK, max(10, budget_s / sorted(times)[2])))


# ----------------------------------------------------------------------------- PyTorch


def reference_module(model_name: str):
    """The PyTorch reference module of a registered model, or None (benchmarks/references)."""
    from benchmarks.references import REFERENCES
    name = REFERENCES.get(model_name)
    return None if name is None else importlib.import_module(f"benchmarks.references.{name}")


def torch_training(model: str, variant: str, threads: int, batch_size: int | None = 0,
                   overrides: dict | None = None, seed: int = 0):
    """A reference loop (`loops(...)[variant]`) at `threads` intra-op threads."""
    import torch
    torch.set_num_threads(threads)
    m, config, X, Y, _ = problem(model, overrides)
    B = train_config(m, batch_size).batch_size
    loop = reference_module(model).loops(X, Y, config, batch_size=B, seed=seed)[variant]
    return (lambda n: (n, loop(n))), {"threads": torch.get_num_threads(), "batch_size": B}
