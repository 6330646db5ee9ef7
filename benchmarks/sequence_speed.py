"""Transformer speed: training steps/s against PyTorch, the matmul-peak share, and sampling names/s.

    python -m benchmarks.sequence_speed [--rounds 5] [--steps 200] [--names 10000]

Training (makemore's defaults, batch 32, names.txt): each side runs in its own process
(`--worker NAME`, started once and warmed up, compile excluded); the sides then run one
timed segment of --steps steps each in turn, --rounds times, and each figure is the median
over its segments. Sides: "jax" (the fused engine, XLA on one CPU thread as the CLI runs it),
PyTorch "lecture eager" and "torch.nn + torch.optim" (the SDPA + fused AdamW version;
torch.set_num_threads(TORCH_THREADS),
default 1: on a machine shared by many processes its OpenMP pool of 2 ran 20x slower). The FLOP/s
figure divides the step's matmul FLOPs (forward 2 x every product, backward twice that) by
the measured peak of a large XLA matmul on this CPU.

Sampling (--names names of at most 16 tokens, from a model trained 1,000 steps so names end
as they would): JAX with the key/value cache, JAX rerunning the prefix, PyTorch's batched
`generate` (reruns the prefix), and the lectures' one-name-at-a-time loop (on fewer names).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SIDES = ("jax", "lecture eager", "torch.nn + torch.optim")


def _setup():
    import jax

    from makemore_jax import data, models
    words = data.load_words(os.environ.get("NAMES", "/work/shared/data/names.txt"))
    vocab = data.Vocab.from_words(words)
    block_size = max(map(len, words)) + 1
    X, Y = data.build_sequence_dataset(data.split_words_makemore(words)[0], vocab, block_size - 1)
    model = models.get("transformer")
    return jax, model, model.make_config(vocab_size=vocab.size, block_size=block_size), X, Y


def step_flops(config, batch: int = 32) -> float:
    """Matmul FLOPs of one train step (attention's products over all T x T pairs)."""
    C, T, V = config.n_embd, config.block_size, config.vocab_size
    per_token = config.n_layer * (2 * C * (3 * C + C + 4 * C + 4 * C) + 4 * T * C) + 2 * C * V
    return 3 * batch * T * per_token


def _segment(run, steps: int) -> float:
    t = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - t)


def worker(side: str, steps: int) -> None:
    """Set up one side, warm it up, then time one segment of `steps` steps per line on stdin."""
    if side == "jax":
        jax, model, config, X, Y = _setup()
        from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step
        tc = TrainConfig(**{**model.train_defaults, "steps": 10**7})
        Xd, Yd = jax.device_put(X), jax.device_put(Y)
        chunk = make_train_chunk(make_train_step(model, config, make_optimizer(tc)), steps, 32)
        state = [create_train_state(model, config, tc, jax.random.key(0))]

        def run(n):
            state[0], losses = chunk(state[0], Xd, Yd)
            return float(losses[-1])
    else:
        import torch
        torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
        _, _, config, X, Y = _setup()
        from benchmarks.references import torch_transformer
        run = torch_transformer.loops(X, Y, config)[side]
    run(steps)  # warm-up: compiles, fills caches
    print("ready", flush=True)
    for _ in sys.stdin:
        print(json.dumps({"steps_per_s": _segment(run, steps)}), flush=True)


def training(rounds: int, steps: int) -> dict:
    """One process per side, started once; the sides run one segment each in turn, `rounds` times."""
    from benchmarks.machine import jax_matmul_peak
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")}
    procs = {side: subprocess.Popen([sys.executable, "-m", "benchmarks.sequence_speed", "--worker", side,
                                     "--steps", str(steps)], env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True) for side in SIDES}
    for proc in procs.values():
        assert proc.stdout.readline().strip() == "ready"
    rates = {side: [] for side in SIDES}
    for r in range(rounds):
        for side, proc in procs.items():
            proc.stdin.write("run\n")
            proc.stdin.flush()
            rates[side].append(json.loads(proc.stdout.readline())["steps_per_s"])
        print(f"round {r + 1}: " + ", ".join(f"{s} {v[-1]:.1f}" for s, v in rates.items()), flush=True)
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    _, _, config, _, _ = _setup()
    peak = jax_matmul_peak()["gflops"]  # this process: XLA on one thread, as the JAX side
    med = {side: statistics.median(v) for side, v in rates.items()}
    flops = step_flops(config)
    print("| side | steps/s (median) | all rounds |\n|---|---|---|")
    for side in SIDES:
        print(f"| {side} | {med[side]:.1f} | {', '.join(f'{v:.1f}' for v in rates[side])} |")
    print(f"JAX / lecture eager {med['jax'] / med['lecture eager']:.2f}x, "
          f"JAX / SDPA + fused AdamW {med['jax'] / med['torch.nn + torch.optim']:.2f}x; "
          f"{flops / 1e6:.0f} MFLOP/step -> {med['jax'] * flops / 1e9:.1f} GFLOP/s "
          f"= {med['jax'] * flops / 1e9 / peak:.0%} of the {peak:.0f} GFLOP/s matmul peak (one thread)")
    return {"rates": rates, "median": med, "peak_gflops": peak, "step_flops": flops}


def attention_choice(rounds: int, steps: int) -> dict:
    """nn.attention (einsum + mask) against jax.nn.dot_product_attention in the train step, alternating."""
    jax, model, config, X, Y = _setup()
    from makemore_jax import nn
    from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step
    tc = TrainConfig(**{**model.train_defaults, "steps": 10**7})
    Xd, Yd = jax.device_put(X), jax.device_put(Y)
    ts0 = create_train_state(model, config, tc, jax.random.key(0))
    variants = {"einsum (nn.attention)": nn.attention,
                "jax.nn.dot_product_attention": lambda q, k, v, mask=None: jax.nn.dot_product_attention(
                    q, k, v, is_causal=True)}
    chunks, own = {}, nn.attention
    for name, fn in variants.items():
        nn.attention = fn
        try:
            step = make_train_step(model, config, make_optimizer(tc))
            chunks[name] = make_train_chunk(step, steps, 32).lower(ts0, Xd, Yd).compile()
        finally:
            nn.attention = own
    rates = {name: [] for name in chunks}
    for name, chunk in chunks.items():
        jax.block_until_ready(chunk(ts0, Xd, Yd))  # warm-up
    for _ in range(rounds):
        for name, chunk in chunks.items():
            t = time.perf_counter()
            jax.block_until_ready(chunk(ts0, Xd, Yd))
            rates[name].append(steps / (time.perf_counter() - t))
    for name, v in rates.items():
        print(f"| {name} | {statistics.median(v):.1f} steps/s | {', '.join(f'{x:.1f}' for x in v)} |")
    return rates


def sampling(n: int, repeats: int = 3, one_by_one: int = 300) -> dict:
    import dataclasses

    import numpy as np
    import torch
    jax, model, config, X, Y = _setup()
    from benchmarks.references import torch_transformer
    from makemore_jax.sample import sample_ids
    from makemore_jax.train import TrainConfig, create_train_state, fit
    tc = TrainConfig(**{**model.train_defaults, "steps": 1000, "chunk_size": 1000})
    ts, _ = fit(model, config, tc, X, Y, create_train_state(model, config, tc, jax.random.key(0)), quiet=True)
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    tmodel = torch_transformer.load_jax_params(torch_transformer.make_model(config), ts.params)
    L = config.block_size
    uncached = dataclasses.replace(model, init_cache=None, decode_step=None)

    def jax_sampler(m):
        def run():
            return np.asarray(sample_ids(m, ts.params, ts.model_state, jax.random.key(1), n=n, block_size=L,
                                         max_len=L, config=config))
        return run

    def best(fn, count):
        fn()  # warm-up / compile
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return count / statistics.median(times)

    rates = {"JAX, key/value cache": best(jax_sampler(model), n),
             "JAX, prefix rerun": best(jax_sampler(uncached), n),
             "PyTorch batched generate (prefix rerun)": best(lambda: torch_transformer.sample_batched(tmodel, n, L), n),
             f"PyTorch one name at a time ({one_by_one} names)":
                 best(lambda: torch_transformer.sample_one_by_one(tmodel, one_by_one, L), one_by_one)}
    ref = rates["PyTorch batched generate (prefix rerun)"]
    print("| sampler | names/s | vs PyTorch batched |\n|---|---|---|")
    for k, v in rates.items():
        print(f"| {k} | {v:,.0f} | {v / ref:.2f}x |")
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=SIDES)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--only", choices=("training", "attention", "sampling"))
    args = parser.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # JAX as the CLI runs it
    if args.worker:
        worker(args.worker, args.steps)
        return
    print(subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")[1].splitlines()[0].strip())
    if args.only in (None, "training"):
        training(args.rounds, args.steps)
    if args.only in (None, "attention"):
        attention_choice(args.rounds, args.steps)
    if args.only in (None, "sampling"):
        sampling(args.names)


if __name__ == "__main__":
    main()
