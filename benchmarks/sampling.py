"""Sampling speed (names/s) of the lecture-2 MLP: the library's batched, jitted sampler
against the lectures' one-name-at-a-time loop and a batched PyTorch sampler.

All three draw from the same trained parameters (the lecture-2 MLP after a few thousand
steps, saved once by the JAX worker) and decode to strings; the table shows their mean
name length, so one can see they generate the same kind of names. JAX runs in its own
process; PyTorch in one process per thread count (1 and 2), the faster one counts.
Target: the JAX sampler >= 50x the lectures' loop.

    python -m benchmarks sampling [--quick]
"""

from __future__ import annotations

import math
import os
import sys
import tempfile

import numpy as np

from benchmarks import sides
from benchmarks.harness import Pool, Side, best, compare, rate_cell, ratio, ratio_cell, torch_available

TARGET = 50.0


def prepare(path: str, steps: int) -> dict:
    """Train the lecture-2 MLP for `steps` steps and save C, W1, b1, W2, b2 to `path` (worker call)."""
    import jax

    from makemore_jax.train import TrainConfig, create_train_state, fit
    model, config, X, Y, vocab = sides.problem("mlp")
    tc = TrainConfig(steps=steps)
    ts, summary = fit(model, config, tc, X, Y, create_train_state(model, config, tc, jax.random.key(0)), quiet=True)
    p = jax.device_get(ts.params)
    (hidden,), out = p["layers"], p["out"]
    np.savez(path, C=p["C"], W1=hidden["linear"]["W"], b1=hidden["linear"]["b"], W2=out["linear"]["W"],
             b2=out["linear"]["b"])
    words, _ = sides._words(sides.data.DEFAULT_DATA)
    return {"loss": summary["final_loss"], "block_size": config.block_size, "max_len": 2 * max(map(len, words))}


def _load(path: str) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _itos():
    _, vocab = sides._words(sides.data.DEFAULT_DATA)
    return vocab


def jax_sampler(path: str, batch: int, max_len: int):
    """The library's sampler: `sample.sample_ids` for `batch` names per call, then `decode`."""
    import jax

    from makemore_jax import models
    from makemore_jax.sample import decode, sample_ids
    p = _load(path)
    params = {"C": p["C"], "layers": [{"linear": {"W": p["W1"], "b": p["b1"]}}], "out": {"linear": {"W": p["W2"], "b": p["b2"]}}}
    params = jax.device_put(params)
    apply, block_size, vocab = models.get("mlp").apply, _block_size(p), _itos()
    calls = [0]

    def run(n):
        names = []
        for _ in range(math.ceil(n / batch)):
            calls[0] += 1
            ids = sample_ids(apply, params, {}, jax.random.key(calls[0]), n=batch, block_size=block_size, max_len=max_len)
            names += decode(jax.device_get(ids), vocab)
        return len(names), float(np.mean([len(s) for s in names]))
    return run, {"batch": batch}


def _block_size(p: dict) -> int:
    return p["W1"].shape[0] // p["C"].shape[1]


def torch_sampler(path: str, threads: int, batch: int | None, max_len: int):
    """The lectures' loop (batch None) or the batched PyTorch sampler, decoded to strings."""
    import torch

    from benchmarks.references import torch_mlp
    torch.set_num_threads(threads)
    p, vocab = _load(path), _itos()
    block_size = _block_size(p)
    seed = [0]

    def run(n):
        seed[0] += 1
        if batch is None:
            rows = torch_mlp.sample_lecture(p, n, block_size=block_size, seed=seed[0])
            names = [vocab.decode([i for i in row if i != 0]) for row in rows]
        else:
            names = []
            for _ in range(math.ceil(n / batch)):
                ids = torch_mlp.sample_batched(p, batch, block_size=block_size, max_len=max_len, seed=seed[0]).numpy()
                names += [vocab.decode(row[: (np.flatnonzero(row == 0)[:1].tolist() or [len(row)])[0]]) for row in ids]
        return len(names), float(np.mean([len(s) for s in names]))
    return run, {"threads": torch.get_num_threads(), "batch": batch}


JAX = "JAX sample_ids (batched, jitted)"


def main(quick: bool = False) -> dict:
    """Time the samplers; print a table; return {"sides", "ratios", "batch", "train_steps"}."""
    batch, steps, repeats, seconds = (1000, 2000, 5, 0.15) if quick else (1000, 20_000, 5, 0.5)
    torch = torch_available()
    with tempfile.TemporaryDirectory() as tmp, Pool() as pool:
        path = os.path.join(tmp, "mlp.npz")
        prep = pool["jax"].call(op="call", factory="benchmarks.sampling:prepare", args={"path": path, "steps": steps})
        common = {"path": path, "max_len": prep["max_len"]}
        sides_ = {JAX: Side("jax", "benchmarks.sampling:jax_sampler", {**common, "batch": batch}, first_n=batch)}
        lecture, batched = [], []
        if torch:
            for t in (1, 2):
                name = f"PyTorch, the lectures' loop (one name at a time), {t} thread{'s' * (t > 1)}"
                sides_[name] = Side(f"torch-{t}t", "benchmarks.sampling:torch_sampler",
                                    {**common, "threads": t, "batch": None}, first_n=20)
                lecture.append(name)
                name = f"PyTorch batched, {batch} names per call, {t} thread{'s' * (t > 1)}"
                sides_[name] = Side(f"torch-{t}t", "benchmarks.sampling:torch_sampler",
                                    {**common, "threads": t, "batch": batch}, first_n=batch)
                batched.append(name)
        figures = compare(pool, sides_, repeats=repeats, seconds=seconds)
        rss = pool.peak_rss_mb()
    ratios = {"lecture loop": ratio(figures[JAX], best(figures, lecture)[1]),
              "batched PyTorch": ratio(figures[JAX], best(figures, batched)[1])}
    print(f"lecture-2 MLP trained {steps:,} steps (last loss {prep['loss']:.3f}); names of at most "
          f"{prep['max_len']} characters, decoded to strings; {batch} names per batched call; median of "
          f"{repeats} alternating repeats\n")
    print("| sampler | names/s median (min-max) | JAX is | mean name length | process peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, fig in figures.items():
        if "error" in fig:
            print(f"| {name} | failed: {fig['error'][:100]} | | | |")
            continue
        print(f"| {name} | {rate_cell(fig)} | {ratio_cell(ratio(figures[JAX], fig))} | {fig['value']:.2f} "
              f"| {rss.get(sides_[name].process, 0):,.0f} |")
    if not torch:
        print("\n(PyTorch columns skipped: torch not installed or --no-torch)")
    elif ratios["lecture loop"] is not None:
        met = "met" if ratios["lecture loop"] >= TARGET else "NOT met"
        print(f"\nJAX against the lectures' loop (faster thread count): {ratios['lecture loop']:,.0f}x "
              f"(target >= {TARGET:.0f}x: {met}); against batched PyTorch: {ratio_cell(ratios['batched PyTorch'])}")
    return {"sides": figures, "ratios": ratios, "batch": batch, "train_steps": steps, "peak_rss_mb": rss,
            "torch": torch}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
