"""The timed loops (harness factories) on one problem per model, built as the CLI builds it: JAX's
fused engine, a per-step `jax.jit` loop, the PyTorch references, the whole-split loss, the matmul peak."""

import functools
import importlib
import json
import math
import time
import timeit

import numpy as np

from makemore_jax import models
from makemore_jax.models import gpt2

from benchmarks.harness import WorkerError, pool, torch_threads

CHUNK = 1000  # steps per dispatch of the fused engine (the CLI's default chunk_size)


@functools.lru_cache(maxsize=None)
def prepared(model_name: str, overrides: str = "{}", path: str | None = None):
    """lifecycle.prepare of the model on `path` (default: its bundled file) with the JSON `overrides` (config or
    training fields), once per process."""
    from makemore_jax.lifecycle import prepare
    return prepare(model_name, data=path, overrides=json.loads(overrides))


def problem(model_name: str, overrides: dict | None = None, *, split: str = "train", path: str | None = None):
    """(model, config, X, Y, vocab): `prepared` with `overrides`, the arrays of one of the data kind's splits."""
    p = prepared(model_name, json.dumps(overrides or {}, sort_keys=True), path)
    return (p.model, p.config, *p.splits[split], p.vocab)


def train_config(model: models.Model, batch_size: int | None = 0):
    """The model's TrainConfig (its train_defaults, the schedule over >= 200k steps); batch_size 0: its own."""
    from makemore_jax.train import TrainConfig
    steps = max(model.train_defaults.get("steps", 0), 200_000)  # the schedule only; runs go on as long as asked
    return TrainConfig(**{**model.train_defaults, "steps": steps, "grad_accum": 1,  # a timed step: one micro-batch
                          **({} if batch_size == 0 else {"batch_size": batch_size})})


GPU_ONLY = tuple(gpt2.NAMES)  # 124M-1.5B parameters, a step of tens of seconds on a CPU: the gpu benchmark's


def trained_models(mode: str = "full") -> list[str]:
    """Registered models trained by gradient steps (a closed-form fit has nothing to time), GPU_ONLY's left to
    `python -m benchmarks gpu`; --quick: the first of each data kind."""
    from makemore_jax.lifecycle import fitting
    names = [name for name, m in models.REGISTRY.items() if fitting(m).trains and name not in GPU_ONLY]
    firsts = {models.get(n).kind.name: n for n in reversed(names)}.values()
    return sorted(firsts, key=names.index) if mode == "quick" else names


def reference_module(model_name: str):
    """The PyTorch reference module of a registered model (benchmarks/references)."""
    from benchmarks.references import REFERENCES
    return importlib.import_module(f"benchmarks.references.{REFERENCES[model_name]}")


# ----------------------------------------------------------------------------- JAX


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
    """The engine's fused chunk of `chunk` steps (default: CHUNK, fewer for slow steps) or a per-step
    `jax.jit` loop fed from the host, the same batches; "compile_s" counts this side's compiles."""
    import jax

    from makemore_jax.train import create_train_state, make_optimizer, make_train_chunk, make_train_step
    m, config, X, Y, _ = problem(model, overrides)
    tc = train_config(m, batch_size)
    ts, B = create_train_state(m, config, tc, jax.random.key(seed)), tc.batch_size
    train_step = make_train_step(m, config, make_optimizer(tc, m.param_labels))
    draw = functools.partial(m.kind.batch, block_size=config.block_size)
    batch = (X, Y) if B is None else tuple(a[0] for a in draw((X, Y), ts.key, jax.numpy.arange(1), B))
    t = time.perf_counter()
    step = jax.jit(train_step).lower(ts, batch).compile()
    cost = step.cost_analysis()
    info = {"flops_per_step": float((cost[0] if isinstance(cost, (list, tuple)) else cost or {}).get("flops", 0))
            or None, "batch_size": B, "params": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(ts.params))}
    if loop == "fused":
        info["chunk"] = chunk = chunk or _chunk_size(step, ts, batch)
        run = fused_run(make_train_chunk(train_step, chunk, B, batch=draw).lower(ts, X, Y).compile(), ts, X, Y, chunk)
    else:
        state = {"ts": ts}

        def run(n):
            ts = state["ts"]
            xs, ys = (None, None) if B is None else (
                np.asarray(a) for a in draw((X, Y), ts.key, jax.numpy.arange(n) + ts.step, B))
            for i in range(n):
                ts, metrics = step(ts, batch if B is None else (xs[i], ys[i]))
            state["ts"] = ts
            return n, float(metrics["loss"])
    return run, {**info, "compile_s": time.perf_counter() - t}


def _chunk_size(step, ts, batch, budget_s: float = 0.25) -> int:
    """Steps per fused chunk: CHUNK, or fewer where one jitted step takes longer than budget_s / CHUNK."""
    import jax
    median = sorted(timeit.repeat(lambda: jax.block_until_ready(step(ts, batch)), number=1, repeat=7))[3]
    return int(min(CHUNK, max(10, budget_s / median)))


def jax_split_loss(model: str, split: str = "train"):
    """`evaluate.kind_loss` of a freshly initialised model over a whole split: run(n) -> (n * examples, loss)."""
    import jax

    from makemore_jax.evaluate import kind_loss
    m, config, X, Y, _ = problem(model, split=split)
    params, state = m.init(jax.random.key(0), config)
    examples = len(m.kind.eval_arrays((X, Y), config.block_size)[0])
    return (lambda n: (n * examples, [kind_loss(m, config, params, state, (X, Y)) for _ in range(n)][-1])), \
        {"examples": examples}


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


def torch_split_loss(model: str, threads: int, split: str = "train"):
    """The reference's `split_loss` (one no-grad pass over the whole split) at `threads` threads."""
    import torch
    torch.set_num_threads(threads)
    _, config, X, Y, _ = problem(model, split=split)
    run = reference_module(model).split_loss(X, Y, config)
    return (lambda n: (n * len(X), [run() for _ in range(n)][-1])), {"threads": torch.get_num_threads()}


def matmul_gflops(framework: str, n: int = 2048, repeats: int = 10) -> dict:
    """GFLOP/s of an n x n float32 matmul, best of `repeats`, in this process's framework (a worker call)."""
    if framework == "jax":
        import jax
        a, f = jax.random.normal(jax.random.key(0), (n, n)), jax.jit(lambda a: a @ a)
        fn = lambda: f(a).block_until_ready()  # noqa: E731
    else:
        import torch
        a = torch.randn(n, n)
        fn = lambda: a @ a  # noqa: E731
    fn()
    return {"gflops": 2 * n**3 / min(timeit.repeat(fn, number=1, repeat=repeats)) / 1e9, "n": n}


@functools.lru_cache(maxsize=None)  # once per process: training and scaling both report it
def matmul_peak(torch: bool, mode: str = "full") -> dict:
    """{"jax": GFLOP/s with XLA's own threads, "torch": at the mode's most threads (or None), "best"}."""
    n, threads = 512 if mode == "toy" else 2048, max(torch_threads(mode))
    peak = {"torch": None, "torch_threads": threads}
    with pool() as p:
        call = lambda process, fw: p[process].call(op="call", factory="benchmarks.sides:matmul_gflops",  # noqa
                                                   args={"framework": fw, "n": n})["gflops"]
        peak["jax"] = call("jax-xla-threads", "jax")
        try:
            peak["torch"] = call(f"torch-{threads}t", "torch") if torch else None
        except WorkerError:
            pass
    return {**peak, "best": max(v for v in (peak["jax"], peak["torch"]) if v)}
