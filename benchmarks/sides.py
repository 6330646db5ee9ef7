"""The timed training loops, built inside worker processes: JAX's fused engine, a per-step
`jax.jit` loop, and the PyTorch references' loops, all on the same problem.

Every factory returns (run, info): run(n) trains n more steps and returns (steps done, last
loss); info carries compile time and, for JAX, the FLOPs of one step (XLA's cost analysis).
`problem` builds data and config as the CLI does: the model's own dataset kind over the
training split of its bundled data (80/10/10 of the names; the first 90% of running text).
"""

from __future__ import annotations

import functools
import importlib
import math
import time

import numpy as np

from makemore_jax import data, kinds, models

CHUNK = 1000  # steps per dispatch of the fused engine (the CLI's default chunk_size)


@functools.lru_cache(maxsize=None)
def words(path: str = data.DEFAULT_DATA) -> tuple[list[str], data.Vocab]:
    """The words of `path` and their vocabulary (read once per process)."""
    ws = data.load_words(path)
    return ws, data.Vocab.from_words(ws)


@functools.lru_cache(maxsize=None)
def corpus(kind: str, path: str | None = None) -> tuple:
    """The items of `path` (default: the kind's bundled file) as data `kind` reads them, and their vocabulary."""
    k = kinds.get(kind)
    items = data.read_data(path, k).items
    return items, k.vocab(items)


def problem(model_name: str, overrides: dict | None = None, *, split: str = "train", path: str | None = None):
    """(model, config, X, Y, vocab) for a registered model, built as the CLI builds them.

    Args:
        overrides: model config fields (e.g. {"n_hidden": 1024}).
        split: a name of the model's data kind's splits ("train", "dev", "test" of the words; "train", "val").
        path: the data file (default: the kind's bundled one).
    """
    model = models.get(model_name)
    items, vocab = corpus(model.dataset, path)
    config = model.make_config(vocab_size=vocab.size, words=items, **dict(overrides or {}))
    part = dict(zip(model.kind.splits, model.kind.split(items)))[split]
    return (model, config, *model.kind.build(part, vocab, config.block_size), vocab)


def train_config(model: models.Model, batch_size: int | None = 0):
    """The model's TrainConfig (its train_defaults); batch_size 0 keeps the model's own."""
    from makemore_jax.train import TrainConfig
    defaults = {"steps": 200_000, **model.train_defaults}
    defaults["steps"] = max(defaults["steps"], 200_000)  # the schedule only; runs go on as long as asked
    return TrainConfig(**{**defaults, **({} if batch_size == 0 else {"batch_size": batch_size})})


def trained_models() -> list[str]:
    """Registered models trained by gradient steps (a closed-form fit has nothing to time)."""
    return [name for name, m in models.REGISTRY.items() if not m.ability(models.ClosedForm)]


def reference_module(model_name: str):
    """The PyTorch reference module of a registered model, or None (benchmarks/references)."""
    from benchmarks.references import REFERENCES
    name = REFERENCES.get(model_name)
    return None if name is None else importlib.import_module(f"benchmarks.references.{name}")


# ----------------------------------------------------------------------------- JAX


def jax_setup(model: str, batch_size: int | None = 0, overrides: dict | None = None, seed: int = 0):
    """(model, config, tc, ts, train_step, X, Y) for a JAX side: the library's step, not compiled."""
    import jax

    from makemore_jax.train import create_train_state, make_optimizer, make_train_step
    m, config, X, Y, _ = problem(model, overrides)
    tc = train_config(m, batch_size)
    ts = create_train_state(m, config, tc, jax.random.key(seed))
    return m, config, tc, ts, make_train_step(m, config, make_optimizer(tc)), X, Y


def fused_run(chunk_fn, ts, X, Y, chunk: int):
    """run(n) over a jitted chunk(ts, X, Y) -> (ts, losses) of `chunk` steps: ceil(n / chunk) dispatches."""
    import jax
    state, Xd, Yd = {"ts": ts}, jax.device_put(X), jax.device_put(Y)

    def run(n):
        for _ in range(math.ceil(n / chunk)):
            state["ts"], losses = chunk_fn(state["ts"], Xd, Yd)
        return math.ceil(n / chunk) * chunk, float(losses[-1])  # the host waits here
    return run


def jax_training(model: str, loop: str = "fused", batch_size: int | None = 0, overrides: dict | None = None,
                 seed: int = 0, chunk: int | None = None):
    """The engine's fused chunk ("fused") or a per-step `jax.jit` loop fed from the host ("per-step").

    The per-step loop is what a JAX user writes first: one dispatch and one host round trip
    of the batch per step, the batches drawn as the engine draws them (the data kind's
    `batch`, so both loops take the same steps); the loss is read at the end. The fused chunk runs
    `chunk` steps per dispatch: the CLI's 1000, or fewer where a step is slow (about a
    quarter of a second per chunk, at least 10 steps), so repeats stay short.
    """
    import jax

    from makemore_jax.train import make_train_chunk
    m, config, tc, ts, train_step, X, Y = jax_setup(model, batch_size, overrides, seed)
    B, draw = tc.batch_size, functools.partial(m.kind.batch, block_size=config.block_size)
    steps = lambda first, n: jax.numpy.arange(n) + first  # noqa: E731
    batch = (X, Y) if B is None else tuple(a[0] for a in draw((X, Y), ts.key, steps(0, 1), B))
    t = time.perf_counter()
    step = jax.jit(train_step).lower(ts, batch).compile()
    info = {"flops_per_step": _flops(step), "batch_size": B,
            "params": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(ts.params))}
    if loop == "fused":
        info["chunk"] = chunk = chunk or _chunk_size(step, ts, batch)
        run = fused_run(make_train_chunk(train_step, chunk, B, batch=draw).lower(ts, X, Y).compile(), ts, X, Y, chunk)
    elif loop == "per-step":
        state = {"ts": ts}

        def run(n):
            ts = state["ts"]
            xs, ys = (None, None) if B is None else (np.asarray(a) for a in draw((X, Y), ts.key, steps(ts.step, n), B))
            for i in range(n):
                ts, metrics = step(ts, batch if B is None else (xs[i], ys[i]))
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
        return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])
    except Exception:  # noqa: BLE001
        return None


def _chunk_size(step, ts, batch, budget_s: float = 0.25) -> int:
    """Steps per fused chunk: CHUNK, or fewer where one jitted step takes longer than budget_s / CHUNK."""
    import jax
    times = []
    for _ in range(7):
        t = time.perf_counter()
        jax.block_until_ready(step(ts, batch))
        times.append(time.perf_counter() - t)
    return int(min(CHUNK, max(10, budget_s / sorted(times)[3])))


# ----------------------------------------------------------------------------- PyTorch


def torch_training(model: str, variant: str, threads: int, batch_size: int | None = 0,
                   overrides: dict | None = None, seed: int = 0):
    """A reference loop (`loops(...)[variant]`) at `threads` intra-op threads."""
    import torch
    torch.set_num_threads(threads)
    m, config, X, Y, _ = problem(model, overrides)
    B = train_config(m, batch_size).batch_size
    loop = reference_module(model).loops(X, Y, config, batch_size=B, seed=seed)[variant]
    return (lambda n: (n, loop(n))), {"threads": torch.get_num_threads(), "batch_size": B}
