"""Training speed of lecture 3's deep net (mlp-deep, batch 32): BatchNorm's fused derivative
rule (`nn.batchnorm`'s default) against plain autodiff, and both against the lectures'
PyTorch eager loops.

Both JAX variants train the same network from the same state on the same minibatches with
the fused engine (`make_train_chunk`, 1000 steps per dispatch); they differ only in
`fused_backward`. All loops run in this one process, interleaved (fused, autodiff, torch
lecture-style, torch.nn, fused, ...), each figure the median over the repeats, because
other work on the machine makes single timings noisy; the two JAX loops get more (and
shorter) rounds than the slow torch ones, and their ratio is also given as the median of
the per-round ratios, which cancels slow drifts in the machine's load. Compile time is
reported on its own.
PyTorch runs with `torch.set_num_threads(1)` (steadier on a shared machine, and these
32 x 100 matmuls gain nothing from more threads); JAX runs with XLA's defaults.

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
        quick: JAX 2,000 steps x 5 rounds, torch 1,000 steps x 3, instead of 5,000 x 15 and 3,000 x 5.
        data: the words file.
    Returns:
        {"steps_per_s": {loop: median steps/s}, "compile_s": {"fused", "autodiff"},
         "fused_vs_autodiff" (median of per-round ratios), "fused_vs_autodiff_medians"
         (ratio of the medians), "vs_torch_lecture", "vs_torch_nn" (None without torch),
         "final_loss": {loop: last minibatch loss}, "max_loss_diff_first_chunk" (fused vs
         autodiff), "steps", "torch_steps", "rounds", "torch_rounds"}.
    """
    steps, rounds, torch_steps, torch_rounds = (2_000, 5, 1_000, 3) if quick else (5_000, 15, 3_000, 5)
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
    TORCH_LECTURE, TORCH_NN = "PyTorch eager, lecture classes, 1 thread", "PyTorch eager, torch.nn, 1 thread"
    loops = {OURS: jax_loop(chunks["fused"]), AUTODIFF: jax_loop(chunks["autodiff"])}
    try:
        import torch

        from benchmarks.references import torch_mlp_deep
        torch_threads = torch.get_num_threads()  # restored at the end, for the benchmarks that follow
        torch.set_num_threads(1)

        def torch_loop(style):
            def run():
                result = torch_mlp_deep.train(X, Y, vocab_size=vocab.size, steps=torch_steps, style=style)
                return result["final_loss"], torch_steps
            return run
        loops[TORCH_LECTURE] = torch_loop("lecture")
        loops[TORCH_NN] = torch_loop("nn")
    except ImportError:
        torch = None
        print("(torch not installed: PyTorch columns skipped; pip install torch==2.13.0)")

    rates: dict[str, list[float]] = {name: [] for name in loops}
    final_loss = {}
    try:
        for i in range(rounds):
            for name, loop in loops.items():
                if name in (TORCH_LECTURE, TORCH_NN) and i >= torch_rounds:
                    continue
                t = time.perf_counter()
                final_loss[name], n = loop()
                rates[name].append(n / (time.perf_counter() - t))
                assert np.isfinite(final_loss[name]), name
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
    median = {name: statistics.median(r) for name, r in rates.items()}
    ours = median[OURS]
    paired = statistics.median(a / b for a, b in zip(rates[OURS], rates[AUTODIFF]))

    print(f"\nmlp-deep (47,024 params), batch {BATCH}; JAX {steps:,} steps x {rounds} rounds, torch "
          f"{torch_steps:,} steps x {torch_rounds}, interleaved; {os.cpu_count()} CPUs, jax {jax.__version__} "
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
            "vs_torch_lecture": ours / median[TORCH_LECTURE] if TORCH_LECTURE in median else None,
            "vs_torch_nn": ours / median[TORCH_NN] if TORCH_NN in median else None, "final_loss": final_loss,
            "max_loss_diff_first_chunk": max_loss_diff, "steps": steps, "rounds": rounds,
            "torch_steps": torch_steps, "torch_rounds": torch_rounds}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
