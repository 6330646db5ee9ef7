"""GPT on Shakespeare: reproduction of nanoGPT's character-level CPU run, and its speed.

    python -m benchmarks gpt --parity    # exact val loss of both loops, 3 seeds each (long)
    python -m benchmarks gpt [--quick]   # steps/s, whole runs, the n_embd x block_size grid

Parity runs our real command (`makemore-jax train --model gpt --seed S`) and nanoGPT's loop
(benchmarks/references/torch_gpt.train) on the same characters (the sorted character set of
the corpus, the first 90% training, the last 10% validating), each its own process, and
compares the mean exact validation loss over the seeds. A reference process
(`python -m benchmarks.gpt reference --spec JSON`) imports no JAX: its sizes and recipe come
from the `gpt` registry entry, read here and passed in.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import machine
from benchmarks.harness import Pool, Side, best, compare, process_env, ratio_cell

CORPUS = os.path.join(machine.ROOT, "data", "shakespeare.txt")  # data.DEFAULT_TEXT, without importing JAX
TORCH_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias",
                "tie_embeddings", "gelu", "dtype")
GRID = {"full": ((128, 256, 512), (64, 128, 256), 3, 0.5), "quick": ((128, 512), (64, 256), 3, 0.1),
        "toy": ((32,), (16,), 1, 0.0)}  # scaling: n_embd values, block sizes, repeats, seconds per repeat
SIZES = {"full": (3, None), "quick": (1, 200), "toy": (1, 5)}  # whole runs: repeats, steps (None: the recipe's)
TOLERANCE = 0.02  # |mean val ours - mean val nanoGPT| the reproduction must stay within


def text_ids(path: str = CORPUS) -> tuple[list[int], int]:
    """The corpus as ids into its sorted character set (nanoGPT's prepare.py): (ids, vocab_size)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    index = {c: i for i, c in enumerate(sorted(set(text)))}
    return [index[c] for c in text], len(index)


def gpt_config(vocab_size: int, **overrides) -> dict:
    """The `gpt` registry entry's model config as a plain dict of what the torch reference reads."""
    from makemore_jax.models.gpt import GPT_CONFIG
    from makemore_jax.models.transformer import Config
    config = Config(**{**GPT_CONFIG, "vocab_size": vocab_size, **overrides})
    return {k: getattr(config, k) for k in TORCH_FIELDS}


def recipe() -> dict:
    """nanoGPT's train() keywords from the `gpt` recipe (GPT_TRAIN), so both loops read one source."""
    from makemore_jax.models.gpt import GPT_TRAIN as t
    return {"steps": t["steps"], "batch_size": t["batch_size"], "lr": t["lr"], "warmup": t["warmup_steps"],
            "min_lr": t["lr"] * t["min_lr_ratio"], "weight_decay": t["weight_decay"], "betas": (t["b1"], t["b2"]),
            "grad_clip": t["clip_norm"]}


def recipe_for(steps: int | None) -> dict:
    r = recipe()
    return {**r, "steps": steps, "warmup": min(steps, r["warmup"])} if steps else r


def reference_command(config: dict, train: dict, seed: int, corpus: str = CORPUS, threads: int = 1,
                      heldout: str | None = None) -> list[str]:
    """The command line of one fresh nanoGPT run (torch_gpt.train on `corpus`), which prints its figures as JSON;
    with `heldout` (a text in the corpus's characters) also its exact loss there ("heldout_loss")."""
    spec = json.dumps({"config": config, "train": train, "seed": seed, "corpus": corpus, "threads": threads,
                       "heldout": heldout})
    return [sys.executable, "-m", "benchmarks.gpt", "reference", "--spec", spec]


def _reference_main(spec: str) -> None:
    import types

    import torch

    from benchmarks.references import torch_gpt
    s = json.loads(spec)
    torch.set_num_threads(s.get("threads", 1))
    train, ids = {**s["train"], "betas": tuple(s["train"]["betas"])}, text_ids(s.get("corpus", CORPUS))[0]
    config = types.SimpleNamespace(**s["config"])
    out = torch_gpt.train(ids, config, seed=s["seed"], **train)
    if s.get("heldout"):  # after the run: its time ("heldout_s") is no part of the run's
        t = time.perf_counter()
        with open(s.get("corpus", CORPUS), encoding="utf-8") as f:
            index = {c: i for i, c in enumerate(sorted(set(f.read())))}
        with open(s["heldout"], encoding="utf-8") as f:
            heldout = torch.tensor([index[c] for c in f.read()])
        out["heldout_loss"] = torch_gpt.window_loss(out.pop("model"), heldout, config.block_size)
        out["heldout_s"] = time.perf_counter() - t
    out.pop("model", None)
    print(json.dumps({**out, "seed": s["seed"]}))


def ours_command(seed: int, out: str, *, corpus: str = CORPUS, steps: int | None = None, extra=()) -> list[str]:
    """`makemore-jax train --model gpt` as a user runs it (the recipe's steps unless `steps`)."""
    short = ["--steps", str(steps), "--warmup-steps", str(min(steps, recipe()["warmup"]))] if steps else []
    return [sys.executable, "-m", "makemore_jax", "train", "--model", "gpt", "--seed", str(seed), "--data", corpus,
            "--out", out, "--overwrite", "--quiet", "-n", "0", *short, *extra]


def _ours_run(seed: int, corpus: str, steps: int | None, nice: int) -> dict:
    """One fresh `makemore-jax train --model gpt` process: its exact losses (checkpoint.json) and wall time."""
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run(["nice", "-n", str(nice), *ours_command(seed, out, corpus=corpus, steps=steps)], check=True,
                       cwd=machine.ROOT, env=process_env("jax-xla-threads"), stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        with open(os.path.join(out, "checkpoint.json")) as f:
            results = json.load(f)["results"]
    return {"val_loss": results["val_loss"], "train_loss": results["train_loss"], "wall_s": wall, "seed": seed}


def reference_process(spec: list[str], threads: int, nice: int) -> dict:
    t = time.perf_counter()
    out = subprocess.run(["nice", "-n", str(nice), *spec], check=True, cwd=machine.ROOT, capture_output=True,
                         text=True, env=process_env(f"torch-{threads}t"))
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - t}


def parity(seeds=(0, 1, 2), *, steps: int | None = None, corpus: str = CORPUS, cache: str | None = None,
           nice: int = 10, torch: bool = True) -> dict:
    """Our command and nanoGPT's loop over `seeds`, fresh processes, one after another; print the table.

    A finished run is kept as cache/{side}-seed{S}.json (a rerun picks up where one stopped).
    Returns:
        {"rows": {seed: {"ours": {...}, "reference": {...}}}, "mean_ours", "mean_reference",
         "difference", "agree" (|difference| <= TOLERANCE), "commands"}.
    """
    _, vocab = text_ids(corpus)
    config, train = gpt_config(vocab), recipe_for(steps)
    runs = {"ours": lambda s: _ours_run(s, corpus, steps, nice)}
    if torch:
        runs["reference"] = lambda s: reference_process(reference_command(config, train, s, corpus=corpus), 1, nice)
    rows = {s: {side: _cached(cache, f"{side}-seed{s}", lambda: run(s)) for side, run in runs.items()} for s in seeds}
    mean = {side: statistics.mean(r[side]["val_loss"] for r in rows.values()) for side in runs}
    difference = mean["ours"] - mean["reference"] if torch else None
    print(f"Exact validation loss (nats/char) after {train['steps']:,} steps of the `gpt` recipe on "
          f"{os.path.basename(corpus)} (90/10 split), seeds {', '.join(map(str, seeds))}; {machine.cpu_model()}.\n")
    print("| seed | ours val | nanoGPT val | ours - nanoGPT | ours train | nanoGPT train |\n" + "|---:" * 6 + "|")
    cell = lambda r, side, k: f"{r[side][k]:.4f}" if side in r else "—"  # noqa: E731
    for s, r in rows.items():
        d = f"{r['ours']['val_loss'] - r['reference']['val_loss']:+.4f}" if torch else "—"
        print(f"| {s} | {cell(r, 'ours', 'val_loss')} | {cell(r, 'reference', 'val_loss')} | {d} | "
              f"{cell(r, 'ours', 'train_loss')} | {cell(r, 'reference', 'train_loss')} |")
    ref = f"{mean['reference']:.4f}" if torch else "—"
    print(f"| **mean** | **{mean['ours']:.4f}** | **{ref}** | "
          + (f"**{difference:+.4f}** | | |" if torch else "— | | |"))
    agree = torch and abs(difference) <= TOLERANCE
    print(f"\nMeans agree within {TOLERANCE}: {'yes' if agree else 'NO' if torch else '— (no torch)'}.")
    ours = ours_command(seeds[0], "OUT", corpus=os.path.relpath(corpus, machine.ROOT), steps=steps)
    commands = {"ours": "makemore-jax " + " ".join(ours[3:]),
                "reference": "python -m benchmarks.gpt reference --spec '{...}' (torch_gpt.train, 1 thread)"}
    return {"rows": rows, "mean_ours": mean["ours"], "mean_reference": mean.get("reference"),
            "difference": difference, "agree": agree, "commands": commands}


def _cached(cache: str | None, name: str, run) -> dict:
    path = cache and os.path.join(cache, f"{name}.json")
    if path and os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    result = run()
    if path:
        from makemore_jax.checkpoint import atomic_write
        atomic_write(path, json.dumps(result).encode())
    return result


# ----------------------------------------------------------------------------- speed


def whole_runs(*, repeats: int, steps: int | None, threads: int, corpus: str = CORPUS) -> dict:
    """Wall seconds of whole runs in fresh processes, alternating: our command against nanoGPT's run."""
    _, vocab = text_ids(corpus)
    spec = reference_command(gpt_config(vocab), recipe_for(steps), 0, corpus=corpus, threads=threads)
    sides = {"makemore-jax train --model gpt": lambda: _ours_run(0, corpus, steps, 0)["wall_s"],
             f"nanoGPT's run (torch_gpt.train), {threads} thread(s)":
                 lambda: reference_process(spec, threads, 0)["wall_s"]}
    walls = {name: [] for name in sides}
    for r in range(repeats):
        for name in list(sides)[r % 2:] + list(sides)[:r % 2]:
            walls[name].append(sides[name]())
    return {name: {"median_s": statistics.median(w), "runs": w} for name, w in walls.items()}


def scaling(mode: str, torch: bool) -> list[dict]:
    """steps/s of our fused engine and nanoGPT's eager loop (1 and 2 threads) over an n_embd x block_size grid.

    The engine runs 5 steps per dispatch: the grid's large steps take tens of milliseconds
    to seconds, so the dispatch is no part of the figure and repeats stay short."""
    widths, blocks, repeats, seconds = GRID[mode]
    points = []
    with Pool() as pool:
        for n_embd in widths:
            for block in blocks:
                args = {"model": "gpt", "overrides": {"n_embd": n_embd, "block_size": block}}
                sides = {"JAX": Side("jax", "benchmarks.sides:jax_training", {**args, "chunk": 5}, first_n=5)}
                for t in (1, 2) if torch else ():
                    sides[f"torch {t}t"] = Side(f"torch-{t}t", "benchmarks.sides:torch_training",
                                                {**args, "variant": "lecture eager", "threads": t}, first_n=2)
                fig = compare(pool, sides, repeats=repeats, seconds=seconds)
                name, theirs = best(fig, [s for s in sides if s != "JAX"])
                points.append({"n_embd": n_embd, "block_size": block, "jax": fig["JAX"].get("rate"),
                               "torch": theirs and theirs["rate"], "torch_side": name,
                               "flops_per_step": fig["JAX"].get("flops_per_step")})
    print("| n_embd | block | GFLOP/step | JAX fused steps/s | PyTorch eager steps/s (threads) | JAX is | faster |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for p in points:
        x = p["jax"] / p["torch"] if p["jax"] and p["torch"] else None
        print(f"| {p['n_embd']} | {p['block_size']} | {(p['flops_per_step'] or 0) / 1e9:.3f} | {p['jax'] or 0:,.1f} | "
              + (f"{p['torch']:,.1f} ({p['torch_side'].split()[-1]})" if p["torch"] else "—")
              + f" | {ratio_cell(x)} | {'—' if x is None else 'JAX' if x > 1 else 'PyTorch'} |")
    return points


def main(quick: bool = False, mode: str | None = None, argv: list[str] | None = None) -> dict:
    """`--parity`: the reproduction (3 seeds, the recipe's steps); else the speed figures.

    Speed: the `training` benchmark's rows for gpt (fused engine against nanoGPT's eager loop
    and the same with fused AdamW at 1 and 2 threads, and torch.compile, GFLOP/s against the
    matmul peak), whole runs in fresh processes (median of alternating repeats), and the
    scaling grid.
    """
    mode, torch = mode or ("quick" if quick else "full"), machine.torch_available()
    out = os.environ.get("BENCH_OUT", os.path.join("out", "bench"))
    if "--parity" in (argv or ()):
        return parity(cache=os.path.join(out, "gpt-parity"), torch=torch)
    from benchmarks import training
    print("### Training steps/s (the `training` benchmark's gpt rows)\n")
    steps = training.main(quick=quick, mode=mode, names=["gpt"])
    faster = best(steps["models"]["gpt"]["sides"], [training.torch_side("lecture eager", t) for t in (1, 2)])[1]
    repeats, run_steps = SIZES[mode]
    print(f"\n### Whole runs: {run_steps or recipe()['steps']:,} steps, fresh processes, median of {repeats}\n")
    walls = whole_runs(repeats=repeats, steps=run_steps, threads=faster["threads"] if faster else 1) if torch else {}
    if walls:
        print("| command | median wall s | runs |\n|---|---:|---|")
        for name, w in walls.items():
            print(f"| {name} | {w['median_s']:.1f} | {', '.join(f'{x:.1f}' for x in w['runs'])} |")
    print("\n### Scaling: steps/s over n_embd x block_size (4 layers, 4 heads, batch 12)\n")
    return {"training": steps["models"]["gpt"], "peak_gflops": steps["peak_gflops"], "whole_runs": walls,
            "scaling": scaling(mode, torch)}


if __name__ == "__main__":
    if sys.argv[1:3] == ["reference", "--spec"]:
        _reference_main(sys.argv[3])
