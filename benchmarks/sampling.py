"""Sampling speed (names/s) of the lecture-2 MLP: the library's batched, jitted sampler against the
lectures' one-name-at-a-time loop and a batched PyTorch sampler (PyTorch's faster thread count), all
from the same parameters (a short training run, saved once), decoded to strings; each side's mean
name length shows they make the same kind of names. Target: >= 50x the lectures' loop.

    python -m benchmarks sampling [--quick]
"""

import os
import tempfile

import numpy as np

from benchmarks import machine, sides
from benchmarks.harness import Side, best, compare, pool, ratio, ratio_cell, table, thread_sides, \
    torch_threads

TARGET = 50.0
JAX = "JAX sample_ids (batched, jitted)"
SIZES = {"full": (1000, 20_000, 5, 0.5), "quick": (1000, 500, 2, 0.05), "toy": (50, 20, 1, 0.0)}


def prepare(path: str, steps: int) -> dict:
    """Train the lecture-2 MLP for `steps` steps and save C, W1, b1, W2, b2 to `path` (worker call)."""
    import jax

    from makemore_jax.train import TrainConfig, create_train_state, fit
    model, config, X, Y, _ = sides.problem("mlp")
    tc = TrainConfig(steps=steps, chunk_size=min(steps, 1000))
    ts, summary = fit(model, config, tc, X, Y, create_train_state(model, config, tc, jax.random.key(0)))
    p = jax.device_get(ts.params)
    (hidden,), out = p["layers"], p["out"]["linear"]
    np.savez(path, C=p["C"], W1=hidden["linear"]["W"], b1=hidden["linear"]["b"], W2=out["W"], b2=out["b"])
    return {"loss": summary["final_loss"], "max_len": 2 * max(map(len, sides.prepared("mlp").loaded.items))}


def _load(path: str) -> tuple[dict, int, object]:
    """(parameters, block_size, vocab) saved by `prepare`."""
    with np.load(path) as f:
        p = {k: f[k] for k in f.files}
    return p, p["W1"].shape[0] // p["C"].shape[1], sides.prepared("mlp").vocab


def _run(sample):
    """run(n) -> (names, their mean length) over sample(call, still to draw) -> names (strings)."""
    calls = [0]

    def run(n):
        names = []
        while len(names) < n:
            calls[0] += 1
            names += sample(calls[0], n - len(names))
        return len(names), float(np.mean([len(s) for s in names]))
    return run


def jax_sampler(path: str, batch: int, max_len: int):
    """The library's sampler: `sample.sample_ids` for `batch` names per call, then `decode`."""
    import jax

    from makemore_jax import models
    from makemore_jax.sample import decode, sample_ids
    p, block_size, vocab = _load(path)
    params = jax.device_put({"C": p["C"], "layers": [{"linear": {"W": p["W1"], "b": p["b1"]}}],
                             "out": {"linear": {"W": p["W2"], "b": p["b2"]}}})
    mlp = models.get("mlp")
    apply = mlp.bind(mlp.make_config(vocab_size=vocab.size, block_size=block_size, n_embd=p["C"].shape[1],
                                     n_hidden=p["W1"].shape[1]))
    return _run(lambda call, _: decode(jax.device_get(sample_ids(apply, params, {}, jax.random.key(
        call), n=batch, block_size=block_size, max_len=max_len)), vocab)), {"batch": batch}


def torch_sampler(path: str, threads: int, batch: int | None, max_len: int):
    """The lectures' loop (batch None: one name at a time) or the batched PyTorch sampler, decoded to strings."""
    import torch

    from benchmarks.references import torch_mlp
    torch.set_num_threads(threads)
    p, block_size, vocab = _load(path)
    p = {k: torch.as_tensor(v) for k, v in p.items()}

    def sample(call, n):
        if batch is None:
            return [vocab.decode(row[:-1]) for row in torch_mlp.sample_lecture(p, n, block_size=block_size, seed=call)]
        ids = torch_mlp.sample_batched(p, batch, block_size=block_size, max_len=max_len, seed=call).tolist()
        return [vocab.decode(row[:row.index(0)] if 0 in row else row) for row in ids]
    return _run(sample), {"threads": torch.get_num_threads(), "batch": batch}


def main(mode: str = "full") -> dict:
    """Time the samplers; print a table; return {"sides", "ratios", "batch", "train_steps"}."""
    (batch, steps, repeats, seconds), torch = SIZES[mode], machine.torch_available()
    with tempfile.TemporaryDirectory() as tmp, pool() as workers:
        path = os.path.join(tmp, "mlp.npz")
        prep = workers["jax"].call(op="call", factory="benchmarks.sampling:prepare", args={"path": path, "steps": steps})
        common = {"path": path, "max_len": prep["max_len"]}
        side_set = {JAX: Side("jax", "benchmarks.sampling:jax_sampler", {**common, "batch": batch}, first_n=batch)}
        for label, b in (("PyTorch, the lectures' loop (one name at a time), {threads}", None),
                         (f"PyTorch batched, {batch} names per call, {{threads}}", batch)):
            side_set.update(thread_sides(label, "benchmarks.sampling:torch_sampler", {**common, "batch": b},
                                         torch_threads(mode) if torch else (), first_n=b or 20))
        figures, rss = compare(workers, side_set, repeats=repeats, seconds=seconds), workers.peak_rss_mb()
    ratios = {kind: ratio(figures[JAX], best(figures, [s for s in side_set if key in s])[1])
              for kind, key in (("lecture loop", "lectures' loop"), ("batched PyTorch", "batched"))}
    print(f"lecture-2 MLP trained {steps:,} steps (last loss {prep['loss']:.3f}); names of at most "
          f"{prep['max_len']} characters, decoded to strings; {batch} names per batched call; median of "
          f"{repeats} alternating repeats; value = mean name length\n")
    table(figures, JAX, "names/s", rss, {name: s.process for name, s in side_set.items()})
    for name, fig in figures.items():
        print(f"- {name}: mean name length {fig.get('value', float('nan')):.2f}")
    if ratios["lecture loop"] is not None:
        print(f"\nJAX against the lectures' loop (faster thread count): {ratios['lecture loop']:,.0f}x (target >= "
              f"{TARGET:.0f}x: {'met' if ratios['lecture loop'] >= TARGET else 'NOT met'}); against batched PyTorch: "
              f"{ratio_cell(ratios['batched PyTorch'])}")
    return {"sides": figures, "ratios": ratios, "batch": batch, "train_steps": steps, "peak_rss_mb": rss,
            "torch": torch}
