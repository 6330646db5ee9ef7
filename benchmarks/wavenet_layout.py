"""WaveNet training speed: layouts of the JAX port against the lecture's PyTorch loops.

Every variant trains the lecture-5 WaveNet (76,579 parameters, batch 32, SGD) on the
bundled names' training split; each measurement runs in its own process, the variants
alternate round by round, and the table gives the median steps/s over the rounds.

JAX variants (all on the fused engine, `train.make_train_chunk`, 1000 steps per dispatch):
- plain port: the lecture's [B, T, C] layout, C[x] then a 3-D matmul per layer, autodiff
  through the BatchNorm formula;
- 2-D layout: activations as (B*T, C) rows, each flatten a reshape, each linear a 2-D matmul;
- + folded embedding: the first linear layer reads (C @ W_even)[x_even] + (C @ W_odd)[x_odd];
- ours (models/wavenet.py): + nn.batchnorm's fused backward.
PyTorch variants (benchmarks/references/torch_wavenet.py): the lecture's own classes in an
eager loop, and torch.nn + torch.optim, at 1 thread (see THREADS).

    python -m benchmarks wavenet [--quick]
    python -m benchmarks.wavenet_layout [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

JAX_VARIANTS = ("plain port", "2-D layout", "2-D + folded embedding", "ours (2-D + folded + fused BN)")
TORCH_VARIANTS = ("lecture eager", "torch.nn + torch.optim")
WARMUP_CHUNKS = 5  # chunks of 1000 steps run untimed after the compile
THREADS = (1,)  # torch's default here is 2; on these 2 shared cores 1 was faster (RESULTS.md, engine)


def _data():
    from makemore_jax.data import DEFAULT_DATA, Vocab, build_context_dataset, load_words, split_words
    words = load_words(DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    return build_context_dataset(split_words(words)[0], vocab, 8), vocab.size


# ----------------------------------------------------------------------------- JAX variants


def _apply_fns():
    import jax.numpy as jnp

    from makemore_jax import nn
    from makemore_jax.models import wavenet

    def plain(params, state, x, *, train):
        h = params["C"][x]  # [B, T, n_embd]
        new_states = []
        for layer, bn_state in zip(params["layers"], state["layers"]):
            B, T, C = h.shape
            h = h.reshape(B, T // 2, 2 * C) @ layer["W"]  # [B, T/2, H]
            y, new_bn_state = nn.batchnorm(layer["bn"], bn_state, h, train=train, fused_backward=False)
            new_states.append(new_bn_state)
            h = jnp.tanh(y)
        return nn.linear(params["out"], h[:, 0]), {"layers": new_states}

    def flat(params, state, x, *, train):
        h = params["C"][x].reshape(-1, 2 * params["C"].shape[1])  # [B*T/2, 2 n_embd]
        new_states = []
        for i, (layer, bn_state) in enumerate(zip(params["layers"], state["layers"])):
            h = (h if i == 0 else h.reshape(-1, 2 * h.shape[1])) @ layer["W"]
            y, new_bn_state = nn.batchnorm(layer["bn"], bn_state, h, train=train, fused_backward=False)
            new_states.append(new_bn_state)
            h = jnp.tanh(y)
        return nn.linear(params["out"], h), {"layers": new_states}

    def folded(params, state, x, *, train):
        h, new_states = wavenet._hidden(params, state, x, train=train, fused_backward=False)
        return nn.linear(params["out"], h), {"layers": new_states}

    return dict(zip(JAX_VARIANTS, (plain, flat, folded, wavenet.apply)))


def run_jax(variant: str, steps: int) -> dict:
    import jax

    from makemore_jax import models
    from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step

    (X, Y), vocab_size = _data()
    base = models.get("wavenet")
    model = models.Model(variant, base.Config, base.init, _apply_fns()[variant])
    config = model.make_config(vocab_size=vocab_size)
    tc = TrainConfig(lr_decay_step=150_000)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    chunk = make_train_chunk(make_train_step(model, config, make_optimizer(tc)), 1000, 32)
    X, Y = jax.device_put(X), jax.device_put(Y)
    ts, losses = chunk(ts, X, Y)  # compile
    first_loss = float(losses[0])
    for _ in range(WARMUP_CHUNKS):  # a fresh process runs its first chunks up to 2x slower (RESULTS.md)
        ts, losses = chunk(ts, X, Y)
    jax.block_until_ready(ts)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps // 1000):
        ts, losses = chunk(ts, X, Y)
    jax.block_until_ready(ts)
    done = (steps // 1000) * 1000
    return {"steps_per_s": done / (time.perf_counter() - t0), "steps_per_cpu_s": done / (time.process_time() - c0),
            "first_loss": first_loss, "last_loss": float(losses[-1])}


def run_torch(variant: str, steps: int, threads: int) -> dict:
    import torch

    from benchmarks.references import torch_wavenet
    from makemore_jax.models import wavenet
    torch.set_num_threads(threads)
    (X, Y), vocab_size = _data()
    run = torch_wavenet.loops(X, Y, wavenet.Config(vocab_size=vocab_size))[variant]
    run(50)  # warm up
    t0, c0 = time.perf_counter(), time.process_time()
    last = run(steps)
    return {"steps_per_s": steps / (time.perf_counter() - t0), "steps_per_cpu_s": steps / (time.process_time() - c0),
            "last_loss": last, "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------- driver


def _worker(spec: dict) -> dict:
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")}
    out = subprocess.run([sys.executable, "-m", "benchmarks.wavenet_layout", "--worker", json.dumps(spec)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(quick: bool = False, *, rounds: int | None = None, jax_variants: tuple[str, ...] = JAX_VARIANTS) -> dict:
    """Alternating rounds of every variant; ours (the last JAX variant) against each."""
    rounds = rounds or (2 if quick else 5)
    jax_steps, torch_steps = (3000, 300) if quick else (5000, 1000)
    try:
        import torch  # noqa: F401
        torch_specs = [{"torch": v, "threads": n, "steps": torch_steps} for v in TORCH_VARIANTS for n in THREADS]
    except ImportError:
        print("(torch not installed: JAX variants only)")
        torch_specs = []
    specs = [{"jax": v, "steps": jax_steps} for v in jax_variants] + torch_specs
    names = [s.get("jax") or f"torch: {s['torch']} ({s['threads']} thread{'s' * (s['threads'] > 1)})" for s in specs]
    rates: dict[str, list[float]] = {name: [] for name in names}
    first_losses = []
    for r in range(rounds):  # alternate: every variant once per round
        for name, spec in zip(names, specs):
            result = _worker(spec)
            rates[name].append(result["steps_per_s"])
            first_losses += [result["first_loss"]] if "first_loss" in result else []
        print(f"(round {r + 1}/{rounds}: " + ", ".join(f"{rates[n][-1]:.0f}" for n in names) + ")", flush=True)
    assert max(first_losses) - min(first_losses) < 1e-4, f"JAX variants disagree at step 0: {first_losses}"
    medians = {name: statistics.median(v) for name, v in rates.items()}
    ours = medians[jax_variants[-1]]
    paired = {name: statistics.median(a / b for a, b in zip(rates[jax_variants[-1]], v)) for name, v in rates.items()}
    print(f"\n{_cpu()}; median of {rounds} alternating rounds, each run in its own process\n")
    print("| variant | steps/s (median) | all rounds | ours / this (medians) | ours / this (median of rounds) |")
    print("|---|---:|---|---:|---:|")
    for name in names:
        print(f"| {name} | {medians[name]:,.0f} | {' '.join(f'{v:.0f}' for v in rates[name])} | "
              f"{ours / medians[name]:.2f}x | {paired[name]:.2f}x |")
    return {"medians": medians, "rates": rates, "paired": paired}


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        spec = json.loads(sys.argv[2])
        result = run_jax(spec["jax"], spec["steps"]) if "jax" in spec else run_torch(spec["torch"], spec["steps"],
                                                                                     spec["threads"])
        print(json.dumps(result))
    else:
        main(quick="--quick" in sys.argv)
