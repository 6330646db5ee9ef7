"""A prepared GPU check for a CUDA build of JAX (under 8 minutes there; `--dry-run`: toy sizes on the CPU,
tests collected, not run):

    python -m benchmarks gpu [--dry-run] [--out DIR]     (writes DIR/results.md and results.json)

The device tests, `makemore-jax train --model mlp` (200k steps), `gpt`'s CPU recipe, nanoGPT's GPU
recipe (GPU_RECIPE, lr 1e-3 -> 1e-4) for 500 steps, and that recipe's steps/s against nanoGPT's loop
on the same device in float32 and bfloat16 (ours `--dtype bfloat16`, torch autocast); then GPT-2 124M
(`gpt2`, batch 16 x 1024 GPT-2 tokens, bfloat16) in tokens/s and MFU against nanoGPT's loop through
torch.compile (the dry run: dynamo's "eager" backend, as inductor takes minutes on a CPU).
"""

import os
import sys
import tempfile

from benchmarks import gpt, machine
from benchmarks.harness import Side, command, compare, markdown, pool, rate_cell, ratio, ratio_cell, train_command

GPU_RECIPE = {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2}
DRY_RECIPE = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16, "dropout": 0.2}
# recipe, batch, its steps, steps of the CPU recipe (None: its own), repeats, seconds per repeat
TESTS = ("tests/test_parallel.py", "tests/test_gpt.py", "tests/test_text.py")  # the tests that touch devices
DTYPES = ("float32", "bfloat16")
SIZES = {"full": (GPU_RECIPE, 64, 500, None, 3, 2.0), "dry": (DRY_RECIPE, 4, 5, 5, 1, 0.0)}
GPT2 = {"full": ({"dtype": "bfloat16"}, 16), "dry": ({**DRY_RECIPE, "dropout": 0.0, "dtype": "bfloat16"}, 2)}


def flags(config: dict) -> list[str]:
    return [a for k, v in config.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def _step(name: str, argv: list[str], out: str | None) -> dict:
    """One step of the check: a fresh process of `argv` (harness.command), its exit status, wall time, losses."""
    row = {"step": name, "command": " ".join(argv[1:]), **command(argv, out=out, check=False)}
    row["losses"] = row.pop("results", None)
    print(f"  gpu: {name}: exit {row['status']}, {row['wall_s']:.1f} s", file=sys.stderr, flush=True)
    return row


def torch_device_training(overrides: dict, batch_size: int, device: str, seed: int = 0, model: str = "gpt",
                          compile_backend: str | None = None):
    """nanoGPT's loop on `device` at the `gpt` recipe's optimiser (constant lr), no per-step host sync, on
    `model`'s training split (its tokens, its vocabulary padded as ours); through torch.compile given a backend."""
    import contextlib
    import types

    import torch

    from benchmarks import sides
    from benchmarks.references import torch_gpt
    from makemore_jax.models.transformer import padded_vocab
    _, ours, X, _, _ = sides.problem(model, overrides)
    config = types.SimpleNamespace(**{k: getattr(ours, k) for k in gpt.TORCH_FIELDS})
    config.vocab_size = padded_vocab(ours)
    torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # nanoGPT's train.py (JAX's default)
    model, train = torch_gpt.GPT(config).to(device), gpt.recipe()
    forward = torch.compile(model, backend=compile_backend) if compile_backend else None
    opt = torch_gpt.configure_optimizers(model, train["weight_decay"], train["lr"], train["betas"])
    data, g = torch.as_tensor(X).long().to(device), torch.Generator(device=device).manual_seed(seed)
    autocast = contextlib.nullcontext
    if config.dtype == "bfloat16":
        autocast = lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)  # noqa: E731

    def run(n):
        for _ in range(n):
            loss = torch_gpt.train_step(model, opt, *torch_gpt.get_batch(data, config.block_size, batch_size, g),
                                        lr=train["lr"], autocast=autocast, sync=False, forward=forward)
        return n, loss.item()  # the host waits here
    return run, {"device": str(next(model.parameters()).device)}


def speed_sides(workers, model: str, overrides: dict, batch: int, dry: bool, repeats: int, seconds: float) -> dict:
    """Steps/s of our fused engine and nanoGPT's loop (gpt2's through torch.compile) at `overrides`, each
    in its own process (`workers`, a harness pool), alternating."""
    args = {"model": model, "overrides": overrides, "batch_size": batch}
    sides = {"JAX fused": Side("jax", "benchmarks.sides:jax_training", {**args, "chunk": dry * 10 or None})}
    if machine.torch_available():
        backend = ("eager" if dry else "inductor") if model == "gpt2" else None
        sides["PyTorch nanoGPT"] = Side("torch-1t", "benchmarks.gpu:torch_device_training", {
            **args, "device": "cpu" if dry else "cuda", "compile_backend": backend}, first_n=2)
    return compare(workers, sides, repeats=repeats, seconds=seconds)


def gpt2_row(speed: dict, overrides: dict, batch: int, device_kind: str) -> dict:
    """tokens/s and MFU of each side's steps/s (nanoGPT's FLOPs per token, the device's bfloat16 peak)."""
    from makemore_jax import models, throughput
    from makemore_jax.models.transformer import flops_per_token
    config = models.get("gpt2").make_config(vocab_size=50_257, **overrides)
    speed_of = throughput.Throughput(batch * config.block_size, flops_per_token(config),
                                     throughput.peak_flops(device_kind, "bfloat16"))
    return {side: speed_of.figures(fig["rate"], 1.0) for side, fig in speed.items() if "rate" in fig}


def main(mode: str = "full", argv: list[str] | None = None) -> dict:
    """Run the check; print one table of steps and one of steps/s; return {"steps": rows, "speed": {...}}."""
    dry = "--dry-run" in (argv or ()) or mode == "toy"
    recipe, batch, steps, cpu_steps, repeats, seconds = SIZES["dry" if dry else "full"]
    py, tmp = sys.executable, tempfile.mkdtemp(prefix="gpu-check-")
    corpus = gpt.CORPUS
    if dry:  # a small text, so the exact evaluation takes seconds on the CPU
        with open(gpt.CORPUS, encoding="utf-8") as f, open(corpus := os.path.join(tmp, "small.txt"), "w") as g:
            g.write(f.read(20_000))
    tests = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", *TESTS, *["--collect-only"] * dry]
    mlp = train_command("mlp", os.path.join(tmp, "mlp"))
    gpu_run = [*flags(recipe), "--batch-size", str(batch), "--lr", "1e-3", "--min-lr-ratio", "0.1",
               "--steps", str(steps), "--warmup-steps", str(min(100, steps))]
    plan = {"device tests": tests, "lecture MLP": mlp + ["--steps", "50"] * dry,
            "gpt, CPU recipe": gpt.ours_command("gpt", 0, os.path.join(tmp, "gpt-cpu"), corpus=corpus, steps=cpu_steps),
            "gpt, GPU recipe": gpt.ours_command("gpt", 0, os.path.join(tmp, "gpt-gpu"), corpus=corpus, flags=gpu_run)}
    rows = [_step(name, argv_, argv_[argv_.index("--out") + 1] if "--out" in argv_ else None)
            for name, argv_ in plan.items()]
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")  # the JAX and torch workers share the GPU
    gpt2_over, gpt2_batch = GPT2["dry" if dry else "full"]
    with pool() as workers:  # one JAX and one torch process for every row
        speed = {dtype: speed_sides(workers, "gpt", {**recipe, "dtype": dtype}, batch, dry, repeats, seconds)
                 for dtype in DTYPES[:len(DTYPES) - dry]}  # the dry run's bfloat16: GPT-2's row
        gpt2 = speed_sides(workers, "gpt2", gpt2_over, gpt2_batch, dry, repeats, seconds)
    device = machine.info()["jax_device"]
    print(f"GPU check{' (--dry-run: toy sizes on the CPU)' * dry}; JAX device {device}.\n")
    markdown("step | exit: | wall s: | losses", [[r["step"], r["status"], f"{r['wall_s']:.1f}", ", ".join(
        f"{k} {v:.4f}" for k, v in (r.get("losses") or {}).items()) or " ".join(r["tail"])[:80]] for r in rows])
    print(f"\nsteps/s of the GPU recipe (batch {batch}), median of {repeats} alternating repeats:\n")
    markdown("dtype | JAX fused: | PyTorch nanoGPT: | JAX is:", [
        [dtype, rate_cell(fig["JAX fused"]), rate_cell(fig.get("PyTorch nanoGPT")),
         ratio_cell(ratio(fig["JAX fused"], fig.get("PyTorch nanoGPT")))] for dtype, fig in speed.items()])
    tokens = gpt2_row(gpt2, gpt2_over, gpt2_batch, device)
    print(f"\nGPT-2 124M (gpt2; batch {gpt2_batch} x its block of GPT-2 tokens, bfloat16) against nanoGPT's loop "
          "through torch.compile; MFU from nanoGPT's FLOPs per token and the device's dense bfloat16 peak:\n")
    markdown("side | tokens/s: | MFU: | steps/s:", [[side, f"{t['tokens_per_s']:,.0f}", "—" if t["mfu"] is None
                                                    else f"{t['mfu']:.1%}", rate_cell(gpt2[side])]
                                                   for side, t in tokens.items()])
    return {"dry_run": dry, "steps": rows, "speed": speed, "gpt2": {"speed": gpt2, "tokens": tokens}}
