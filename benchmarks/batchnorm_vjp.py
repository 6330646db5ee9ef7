"""Training speed of lecture 3's deep net (mlp-deep, batch 32): BatchNorm's fused derivative
rule (`nn.batchnorm`'s default) against plain autodiff (against PyTorch: `training`).

Both JAX variants train the same network from the same state on the same minibatches with
the fused engine (`make_train_chunk`, 1000 steps per dispatch); they differ only in
`fused_backward`. Both run in this one process (one framework), interleaved, each figure
the median over the rounds; their ratio is also given as the median of the per-round
ratios, which cancels slow drifts in the machine's load. Compile time is reported apart.

    python -m benchmarks batchnorm [--quick]
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time

import jax
import numpy as np

from makemore_jax import models
from makemore_jax.data import DEFAULT_DATA, Vocab, build_context_dataset, load_words, split_words
from makemore_jax.models import mlp
from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step

BATCH = 32
CHUNK = 1000  # steps per dispatch


def autodiff_model() -> models.Model:
    """mlp-deep with every BatchNorm differentiated by plain autodiff (`fused_backward=False`)."""
    def apply(params, state, x, *, train):
        logits, new_state, _ = mlp.forward(params, state, x, train=train, fused_backward=False)
        return logits, new_state

    return dataclasses.replace(models.get("mlp-deep"), apply=apply)


def main(quick: bool = False, data: str = DEFAULT_DATA) -> dict:
    """Time the loops, print a markdown table and return the figures.

    Args:
        quick: 2,000 steps x 5 rounds instead of 5,000 x 15.
        data: the words file.
    Returns:
        {"steps_per_s": {loop: median steps/s}, "compile_s": {"fused", "autodiff"},
         "fused_vs_autodiff" (median of per-round ratios), "fused_vs_autodiff_medians"
         (ratio of the medians),
         "final_loss": {loop: last minibatch loss}, "max_loss_diff_first_chunk" (fused vs
         autodiff), "steps", "rounds"}.
    """
    steps, rounds = (2_000, 5) if quick else (5_000, 15)
    words = load_words(data)
    vocab = Vocab.from_words(words)
    X, Y = build_context_dataset(split_words(words)[0], vocab, 3)
    Xd, Yd = jax.device_put(X), jax.device_put(Y)
    fused_model = models.get("mlp-deep")
    config = fused_model.make_config(vocab_size=vocab.size)
    tc = TrainConfig(steps=steps, batch_size=BATCH, chunk_size=CHUNK)
    ts0 = create_train_state(fused_model, config, tc, jax.random.key(0))

    chunks, compile_s = {}, {}
    for name, model in (("fused", fused_model), ("autodiff", autodiff_model())):
        t = time.perf_counter()
        train_step = make_train_step(model, config, make_optimizer(tc))
        chunks[name] = make_train_chunk(train_step, CHUNK, BATCH).lower(ts0, Xd, Yd).compile()
        compile_s[name] = time.perf_counter() - t
    first = {name: np.asarray(chunk(ts0, Xd, Yd)[1]) for name, chunk in chunks.items()}  # warm-up
    max_loss_diff = float(np.max(np.abs(first["fused"] - first["autodiff"])))

    def jax_loop(chunk):
        def run():
            ts = ts0
            for _ in range(steps // CHUNK):
                ts, losses = chunk(ts, Xd, Yd)
            return float(losses[-1]), steps  # the host sync
        return run

    OURS, AUTODIFF = "JAX fused scan, fused BatchNorm backward (ours)", "JAX fused scan, autodiff BatchNorm backward"
    loops = {OURS: jax_loop(chunks["fused"]), AUTODIFF: jax_loop(chunks["autodiff"])}

    rates: dict[str, list[float]] = {name: [] for name in loops}
    final_loss = {}
    for _ in range(rounds):
        for name, loop in loops.items():
            t = time.perf_counter()
            final_loss[name], n = loop()
            rates[name].append(n / (time.perf_counter() - t))
            assert np.isfinite(final_loss[name]), name
    median = {name: statistics.median(r) for name, r in rates.items()}
    ours = median[OURS]
    paired = statistics.median(a / b for a, b in zip(rates[OURS], rates[AUTODIFF]))

    print(f"\nmlp-deep (47,024 params), batch {BATCH}; {steps:,} steps x {rounds} rounds, "
          f"interleaved; {os.cpu_count()} CPUs, jax {jax.__version__} "
          f"on {jax.devices()[0].platform}\n")
    print("| loop | steps/s (median) | range | ours is |")
    print("|---|---:|---|---:|")
    for name in loops:
        print(f"| {name} | {median[name]:,.0f} | {min(rates[name]):,.0f} - {max(rates[name]):,.0f} "
              f"| {ours / median[name]:.2f}x |")
    print(f"\nfused / autodiff, median of the per-round ratios: {paired:.3f}x")
    print(f"compile (a {CHUNK}-step chunk): fused backward {compile_s['fused']:.2f} s, "
          f"autodiff {compile_s['autodiff']:.2f} s; first-chunk losses differ by at most {max_loss_diff:.2e}")
    return {"steps_per_s": median, "compile_s": compile_s, "fused_vs_autodiff": paired,
            "fused_vs_autodiff_medians": ours / median[AUTODIFF],
            "final_loss": final_loss, "max_loss_diff_first_chunk": max_loss_diff, "steps": steps, "rounds": rounds}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
