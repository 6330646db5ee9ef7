"""Ablations of the fused training engine: what each change to the step buys, one at a time.

Every variant trains the same model (batch 32) for the same steps; each repeat of each
variant runs in its own fresh process (`--worker`), and the variants alternate
(A, B, C, A, B, C, ...) so all see the same load on a shared machine. A worker compiles
and warms up, then times `--steps` steps; the figure is the median steps/s over the
repeats, with the min-max range and the ratio to the first variant. PyTorch references
run the same way, in their own processes (the faster thread setting is what to beat).

    python -m benchmarks.ablations [--model mlp] [--repeats 5] [--steps 20000] [VARIANT ...]
    python -m benchmarks.ablations --list

Variants are named by what they change against "engine" (the shipped `train.py`); the
results and what they mean are in benchmarks/ABLATIONS.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

BATCH = 32
CHUNK = 1000
WARMUP_CHUNKS = 5  # untimed chunks after the compile
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"  # what the makemore-jax command sets (cli.use_one_cpu_thread)

# name -> (what it changes, XLA_FLAGS or None for the CLI's default)
VARIANTS = {
    "engine": ("the shipped engine (train.make_train_chunk), as the CLI runs it", ONE_THREAD),
    "engine, eigen threads": ("the same with XLA's default Eigen thread pool", ""),
    "per-step gather, unroll 2": ("the previous engine: X[ix], Y[ix] inside every step, 2-step unroll", ONE_THREAD),
    "unroll 2": ("chunk gather with a 2-step scan unroll", ONE_THREAD),
    "optax CE": ("optax.softmax_cross_entropy_with_integer_labels (gather/scatter) as the loss", ONE_THREAD),
    "one-hot CE": ("the loss as -sum(one_hot(y) * log_softmax(logits)): no gather/scatter", ONE_THREAD),
    "one-hot embedding": ("C[x] as one_hot(x) @ C: the table's gradient is a matmul, not a scatter-add", ONE_THREAD),
    "one-hot CE and embedding": ("both of the above", ONE_THREAD),
    "donate": ("the chunk donates the state's buffers (donate_argnums=0)", ONE_THREAD),
    "vector width 512": ("XLA's CPU code generated for 512-bit vectors (AVX-512; its default is 256)",
                         ONE_THREAD + " --xla_cpu_prefer_vector_width=512"),
    "torch eager, 1 thread": ("the lectures' PyTorch loop (benchmarks/references), 1 thread", None),
    "torch eager, 2 threads": ("the same, 2 threads", None),
    "torch.nn + torch.optim": ("torch.nn modules and torch.optim.SGD, 1 thread (mlp-deep, mlp-bn)", None),
}
DEFAULT_VARIANTS = ("engine", "per-step gather, unroll 2", "unroll 2", "torch eager, 1 thread", "torch eager, 2 threads")


# ----------------------------------------------------------------------------- JAX worker


def _data(model_name: str):
    from makemore_jax import models
    from makemore_jax.data import DEFAULT_DATA, Vocab, build_context_dataset, load_words, split_words
    words = load_words(DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    X, Y = build_context_dataset(split_words(words)[0], vocab, 3)
    model = models.get(model_name)
    overrides = {"init": "unit"} if model_name == "mlp" else {}  # lecture 2's network
    return model, model.make_config(vocab_size=vocab.size, **overrides), X, Y


def _patch(variant: str) -> None:
    """Swap one piece of the library for this process (each variant runs in its own)."""
    import jax
    import jax.numpy as jnp
    import optax

    from makemore_jax import losses, nn, train
    if variant == "optax CE":
        def optax_ce(logits, targets):
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))
        train.cross_entropy = optax_ce
    if variant in ("one-hot CE", "one-hot CE and embedding"):
        def one_hot_ce(logits, targets):
            logp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.sum(logp * jax.nn.one_hot(targets, logits.shape[-1], dtype=logp.dtype), -1))
        train.cross_entropy = one_hot_ce
    if variant in ("one-hot embedding", "one-hot CE and embedding"):
        nn.embedding = lambda table, ids: jax.nn.one_hot(ids, table.shape[0], dtype=table.dtype) @ table
    del losses


def _chunk(variant: str, train_step, batch_size: int):
    """The jitted chunk for `variant` (the library's own unless the variant rebuilds it)."""
    import jax
    import jax.numpy as jnp

    from makemore_jax import train
    if variant in ("per-step gather, unroll 2", "unroll 2"):
        def chunk(ts, X, Y):
            rows = train.batch_indices(ts.key, ts.step + jnp.arange(CHUNK), batch_size, X.shape[0])
            loss_only = lambda ts, b: (lambda out: (out[0], out[1]["loss"]))(train_step(ts, b))
            if variant == "unroll 2":
                return jax.lax.scan(loss_only, ts, (X[rows], Y[rows]), unroll=2)
            return jax.lax.scan(lambda ts, ix: loss_only(ts, (X[ix], Y[ix])), ts, rows, unroll=2)
        return jax.jit(chunk)
    chunk = train.make_train_chunk(train_step, CHUNK, batch_size)
    if variant == "donate":
        return jax.jit(chunk.__wrapped__, donate_argnums=0)
    return chunk


def jax_worker(variant: str, model_name: str, steps: int) -> dict:
    import jax

    from makemore_jax import train
    _patch(variant)
    model, config, X, Y = _data(model_name)
    tc = train.TrainConfig(steps=steps, batch_size=BATCH, chunk_size=CHUNK)
    ts = train.create_train_state(model, config, tc, jax.random.key(0))
    train_step = train.make_train_step(model, config, train.make_optimizer(tc))
    Xd, Yd = jax.device_put(X), jax.device_put(Y)
    t = time.perf_counter()
    chunk = _chunk(variant, train_step, BATCH)
    ts, losses = chunk(ts, Xd, Yd)  # compile and one warm-up chunk
    losses.block_until_ready()
    compile_s = time.perf_counter() - t
    for _ in range(WARMUP_CHUNKS):  # a fresh process runs its first chunks slower (RESULTS.md, WaveNet)
        ts, losses = chunk(ts, Xd, Yd)
    losses.block_until_ready()
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps // CHUNK):
        ts, losses = chunk(ts, Xd, Yd)
    last = float(losses[-1])
    n = steps // CHUNK * CHUNK
    return {"steps_per_s": n / (time.perf_counter() - t), "steps_per_cpu_s": n / (time.process_time() - cpu),
            "compile_s": compile_s, "last_loss": last}


# ----------------------------------------------------------------------------- torch worker


def torch_worker(variant: str, model_name: str, steps: int) -> dict:
    import torch
    torch.set_num_threads(2 if variant.endswith("2 threads") else 1)
    model, config, X, Y = _data(model_name)
    warmup = 200
    from benchmarks.references import REFERENCES
    if model_name not in REFERENCES:
        raise SystemExit(f"no PyTorch reference for {model_name} (benchmarks/references REFERENCES)")
    module = importlib.import_module(f"benchmarks.references.{REFERENCES[model_name]}")
    loops = module.loops(X, Y, config, batch_size=32, seed=0)  # {variant: run(n_steps) -> last loss}
    run = loops["torch.nn + torch.optim" if variant == "torch.nn + torch.optim" else "lecture eager"]
    run(warmup)
    wall, cpu = time.perf_counter(), time.process_time()
    last = run(steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"steps_per_s": steps / wall, "steps_per_cpu_s": steps / cpu, "compile_s": 0.0, "last_loss": last}


# ----------------------------------------------------------------------------- driver


def _run_one(variant: str, model_name: str, steps: int) -> dict:
    env = dict(os.environ)
    flags = f"{ONE_THREAD} {variant[4:]}" if variant.startswith("xla:") else VARIANTS[variant][1]
    if flags is not None:
        env["XLA_FLAGS"] = flags
    cmd = [sys.executable, "-m", "benchmarks.ablations", "--worker", variant, "--model", model_name,
           "--steps", str(steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(variants: list[str], model_name: str, repeats: int, steps: int) -> dict:
    cpu = _cpu_model()
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    errors: dict[str, str] = {}
    for r in range(repeats):
        for v in variants:
            if v in errors:
                continue
            result = _run_one(v, model_name, steps)
            if "error" in result:
                errors[v] = result["error"]
                continue
            runs[v].append(result)
            print(f"  repeat {r + 1}/{repeats} {v}: {result['steps_per_s']:,.0f} steps/s, "
                  f"{result['steps_per_cpu_s']:,.0f} per CPU-s", file=sys.stderr, flush=True)
    median = lambda v, k: statistics.median(run[k] for run in runs[v])
    base = variants[0]
    print(f"\n{model_name}, batch {BATCH}, {steps:,} timed steps per process, median of {repeats} alternating "
          f"processes; {cpu}, {os.cpu_count()} CPUs\n")
    print(f"| variant | steps/s | min-max | vs {base} | steps per CPU-second | vs {base} | compile s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v in variants:
        if v in errors or not runs[v]:
            print(f"| {v} | failed: {errors.get(v)} | | | | | |")
            continue
        rates = [run["steps_per_s"] for run in runs[v]]
        print(f"| {v} | {median(v, 'steps_per_s'):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
              f"{median(v, 'steps_per_s') / median(base, 'steps_per_s'):.2f}x | {median(v, 'steps_per_cpu_s'):,.0f} | "
              f"{median(v, 'steps_per_cpu_s') / median(base, 'steps_per_cpu_s'):.2f}x | {median(v, 'compile_s'):.2f} |")
    return {"cpu": cpu, "runs": runs, "errors": errors}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablations")
    parser.add_argument("variants", nargs="*", metavar="VARIANT",
                        help="default: " + ", ".join(DEFAULT_VARIANTS) + "; 'xla:FLAGS' is the engine with extra XLA_FLAGS")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--list", action="store_true", help="list the variants")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        for name, (what, _) in VARIANTS.items():
            print(f"{name:28s} {what}")
    elif args.worker:
        worker = torch_worker if args.worker.startswith("torch") else jax_worker
        print(json.dumps(worker(args.worker, args.model, args.steps)))
    else:
        unknown = [v for v in args.variants if v not in VARIANTS and not v.startswith("xla:")]
        if unknown:
            parser.error(f"unknown variant {unknown[0]!r}; see --list")
        main(args.variants or list(DEFAULT_VARIANTS), args.model, args.repeats, args.steps)
