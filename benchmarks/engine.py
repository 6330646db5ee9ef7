"""Training speed of the lecture-2 MLP (batch 32): the fused engine against a per-step
`jax.jit` loop with host-side batches and against the lectures' PyTorch eager loop.

All loops run in this one process, interleaved (A, B, C, A, B, C, ...), and each figure is
the median over the repeats; compile time is reported separately. Also times the whole
200k-step lecture-2 run from the command line (JAX start-up, compile and evaluation
included) and the machine's matmul peak, for the FLOP/s figure.

    python -m benchmarks engine [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from makemore_jax import models
from makemore_jax.data import DEFAULT_DATA, Vocab, build_context_dataset, load_words, split_words
from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step

BATCH = 32


def step_flops(config, batch: int = BATCH) -> float:
    """Matmul FLOPs of one train step: forward 2*B*(fan_in*hidden + hidden*vocab), backward twice that."""
    fan_in = config.block_size * config.n_embd
    forward = 2 * batch * (fan_in * config.n_hidden + config.n_hidden * config.vocab_size)
    return 3 * forward


def matmul_peak(n: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of a large float32 matmul in XLA on this machine (what the CPU can do)."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def main(quick: bool = False, data: str = DEFAULT_DATA) -> dict:
    steps = 5_000 if quick else 20_000
    repeats = 3 if quick else 5
    words = load_words(data)
    vocab = Vocab.from_words(words)
    X, Y = build_context_dataset(split_words(words)[0], vocab, 3)
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, init="unit")  # the lecture-2 network
    tc = TrainConfig(steps=steps, batch_size=BATCH, chunk_size=1000)
    ts0 = create_train_state(model, config, tc, jax.random.key(0))
    train_step = make_train_step(model, config, make_optimizer(tc))
    Xd, Yd = jax.device_put(X), jax.device_put(Y)

    t = time.perf_counter()
    chunk = make_train_chunk(train_step, tc.chunk_size, BATCH).lower(ts0, Xd, Yd).compile()
    fused_compile = time.perf_counter() - t
    t = time.perf_counter()
    step = jax.jit(train_step).lower(ts0, (Xd[:BATCH], Yd[:BATCH])).compile()
    step_compile = time.perf_counter() - t

    def fused():
        ts = ts0
        for _ in range(steps // tc.chunk_size):
            ts, losses = chunk(ts, Xd, Yd)
        return float(losses[-1])

    def per_step():  # the usual JAX loop: numpy draws the batch, one dispatch per step
        rng = np.random.default_rng(0)
        ts = ts0
        for _ in range(steps):
            ix = rng.integers(0, len(X), BATCH)
            ts, metrics = step(ts, (X[ix], Y[ix]))
        return float(metrics["loss"])

    cli_seconds = None
    if not quick:  # the whole lecture-2 run from the command line, before torch leaves threads behind
        runs = []
        with tempfile.TemporaryDirectory() as out:
            for _ in range(3):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "makemore_jax", "train", "--init", "unit", "--data", data,
                                "--out", out, "--quiet", "-n", "0"], check=True, stdout=subprocess.DEVNULL)
                runs.append(time.perf_counter() - t)
        cli_seconds = statistics.median(runs)

    loops = {"fused scan (ours)": fused, "per-step jax.jit": per_step}
    try:
        import torch

        from benchmarks.references import torch_mlp
        default_threads = torch.get_num_threads()

        def torch_loop(threads):
            def run():
                torch.set_num_threads(threads)
                return torch_mlp.train(X, Y, vocab_size=vocab.size, steps=steps)["final_loss"]
            return run
        loops[f"PyTorch eager, {default_threads} threads"] = torch_loop(default_threads)
        if default_threads != 1:
            loops["PyTorch eager, 1 thread"] = torch_loop(1)
    except ImportError:
        print("(torch not installed: PyTorch column skipped; pip install torch==2.13.0)")

    seconds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            t = time.perf_counter()
            loss = loop()
            seconds[name].append(time.perf_counter() - t)
            assert np.isfinite(loss), name
    rates = {name: steps / statistics.median(s) for name, s in seconds.items()}

    fused_rate = rates["fused scan (ours)"]
    gflops = fused_rate * step_flops(config) / 1e9
    peak = matmul_peak()
    print(f"\nlecture-2 MLP, batch {BATCH}, {steps:,} steps x {repeats} repeats (median), "
          f"{os.cpu_count()} CPUs, jax {jax.__version__}\n")
    print("| loop | steps/s | fused is |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {fused_rate / rate:.2f}x |")
    print(f"\ncompile: fused chunk of {tc.chunk_size} steps {fused_compile:.2f} s, single step {step_compile:.2f} s")
    print(f"fused matmul throughput {gflops:.1f} GFLOP/s; XLA 1024^3 matmul peak here {peak:.1f} GFLOP/s "
          f"({gflops / peak:.0%})")
    if cli_seconds is not None:
        print(f"`makemore-jax train --init unit` (200k steps, start-up, compile and evaluation), median of 3: "
              f"{cli_seconds:.1f} s")
    torch_rates = [r for n, r in rates.items() if n.startswith("PyTorch")]
    return {"steps_per_s": rates, "fused_compile_s": fused_compile, "step_compile_s": step_compile,
            "gflops": gflops, "peak_gflops": peak, "cli_seconds": cli_seconds,
            "vs_torch": fused_rate / max(torch_rates) if torch_rates else None,
            "vs_per_step_jit": fused_rate / rates["per-step jax.jit"]}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
