"""Sweep throughput: 8 lecture-2 MLP runs (mlp --init unit, batch 32) trained at once by
`sweep` against the same 8 runs trained one after another by the fused engine (the chunk
that `train.fit` runs, compiled once per learning rate).

Each side runs in its own fresh process (the swept side splits the CPU into one XLA host
device per core before JAX starts, as `makemore-jax sweep` does; the other side runs as
`makemore-jax train` does, on one device), the sides alternate, and each figure is the
median over the repeats. Aggregate steps/s = 8 runs x steps / training seconds, compile
excluded; the end-to-end seconds of each process (start-up, data, compile, training) are
reported too.

    python -m benchmarks.sweep [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

LRS = (0.05, 0.1)
SEEDS = (1, 2, 3, 4)  # 2 x 4 = 8 runs
BATCH = 32
SIDES = ("one after another", "swept at once")


def _side(side: str, steps: int) -> dict:
    """One side, in this (fresh) process: the 8 runs' training and compile seconds."""
    from makemore_jax import parallel
    if side == SIDES[1]:
        parallel.request_host_devices()  # before JAX's first computation
    import jax

    from makemore_jax import models, sweep
    from makemore_jax.data import DEFAULT_DATA, Vocab, build_context_dataset, load_words, split_words
    from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step

    words = load_words(DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    X, Y = build_context_dataset(split_words(words)[0], vocab, 3)
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, init="unit")
    tc = TrainConfig(steps=steps, batch_size=BATCH, chunk_size=1000)
    runs = sweep.grid(model, config, tc, {"lr": list(LRS)}, list(SEEDS))
    if side == SIDES[1]:
        result = sweep.train_sweep(model, runs, X, Y, quiet=True)
        return {"train_seconds": result.seconds - result.compile_seconds, "compile_seconds": result.compile_seconds,
                "devices": result.devices}
    # the engine as train.fit runs it, one chunk compiled per learning rate and reused over the seeds
    Xd, Yd = jax.device_put(X), jax.device_put(Y)
    train_seconds, compile_seconds, chunks = 0.0, 0.0, {}
    for run in runs:
        tc_run = run.train_config
        ts = create_train_state(model, run.config, tc_run, jax.random.key(run.seed))
        if tc_run.lr not in chunks:
            start = time.perf_counter()
            step = make_train_step(model, run.config, make_optimizer(tc_run))
            chunks[tc_run.lr] = make_train_chunk(step, tc.chunk_size, BATCH).lower(ts, Xd, Yd).compile()
            compile_seconds += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps // tc.chunk_size):
            ts, losses = chunks[tc_run.lr](ts, Xd, Yd)
        losses.block_until_ready()
        train_seconds += time.perf_counter() - start
    return {"train_seconds": train_seconds, "compile_seconds": compile_seconds, "devices": len(jax.devices())}


def _run_side(side: str, steps: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}  # as the makemore-jax command
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.sweep", "--side", side, "--steps", str(steps)],
                          env=env, cwd=root, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def main(quick: bool = False) -> dict:
    steps = 1_000 if quick else 10_000
    repeats = 3 if quick else 5  # --quick: a smoke run of the comparison, not a figure to quote
    n_runs = len(LRS) * len(SEEDS)
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    for _ in range(repeats):
        for side in SIDES:  # alternating, each in its own process
            results[side].append(_run_side(side, steps))
    rate = {side: statistics.median(n_runs * steps / r["train_seconds"] for r in rs) for side, rs in results.items()}
    wall = {side: statistics.median(r["process_seconds"] for r in rs) for side, rs in results.items()}
    comp = {side: statistics.median(r["compile_seconds"] for r in rs) for side, rs in results.items()}
    ratio = rate[SIDES[1]] / rate[SIDES[0]]
    print(f"\n{n_runs} lecture-2 MLP runs (lr {'/'.join(map(str, LRS))} x seeds {len(SEEDS)}), batch {BATCH}, "
          f"{steps:,} steps each, {repeats} alternating repeats per side (median), {os.cpu_count()} CPUs\n")
    print("| side | devices | aggregate steps/s (training) | compile s | process s (all in) |")
    print("|---|---:|---:|---:|---:|")
    for side in SIDES:
        print(f"| {side} | {results[side][0]['devices']} | {rate[side]:,.0f} | {comp[side]:.1f} | {wall[side]:.1f} |")
    print(f"\nswept / one after another: {ratio:.2f}x aggregate training steps/s, "
          f"{wall[SIDES[0]] / wall[SIDES[1]]:.2f}x end to end")
    return {"steps_per_s": rate, "process_seconds": wall, "compile_seconds": comp, "ratio": ratio,
            "end_to_end_ratio": wall[SIDES[0]] / wall[SIDES[1]], "steps": steps, "repeats": repeats}


if __name__ == "__main__":
    if "--side" in sys.argv:
        side = sys.argv[sys.argv.index("--side") + 1]
        print(json.dumps(_side(side, int(sys.argv[sys.argv.index("--steps") + 1]))))
    else:
        main(quick="--quick" in sys.argv)
