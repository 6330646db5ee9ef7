"""GPT on Shakespeare: reproduction of nanoGPT's character-level CPU run, and its speed.

    nice python -m benchmarks gpt --parity   # exact val and wall s of both whole runs, 3 seeds each (long)
    python -m benchmarks gpt [--quick]       # the `training` rows of gpt, the n_embd x block_size grid

Parity (`whole_runs`): our command against nanoGPT's loop (torch_gpt.train in a fresh torch worker that
imports no JAX: sizes and recipe come from the `gpt` entry) on the same characters (the sorted character
set, 90/10), taking turns; the mean exact val over the seeds.
"""

import json
import os
import statistics
import tempfile
import time

from benchmarks import machine
from benchmarks.harness import Side, alternate, best, command, markdown, one_call, out_dir, ratio_cell, \
    thread_sides, train_command

CORPUS = os.path.join(machine.ROOT, "data", "shakespeare.txt")  # data.DEFAULT_TEXT, without importing JAX
TORCH_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias",
                "tie_embeddings", "gelu", "dtype")
GRID = {"full": ((128, 256, 512), (64, 128, 256), 3, 0.5), "quick": ((128, 512), (64, 256), 3, 0.1),
        "toy": ((32,), (16,), 1, 0.0)}  # n_embd values, block sizes, repeats, seconds per repeat
TOLERANCE = 0.02  # |mean val ours - mean val nanoGPT| the reproduction must stay within


def text_ids(path: str = CORPUS, vocab_of: str | None = None) -> tuple[list[int], int]:
    """A text as ids into the sorted character set of `vocab_of` (default: itself; nanoGPT's prepare.py):
    (ids, vocab_size)."""
    with open(path, encoding="utf-8") as f, open(vocab_of or path, encoding="utf-8") as g:
        text, index = f.read(), {c: i for i, c in enumerate(sorted(set(g.read())))}
    return [index[c] for c in text], len(index)


def gpt_config(vocab_size: int, **overrides) -> dict:
    """The `gpt` registry entry's model config as a plain dict of what the torch reference reads."""
    from makemore_jax import models
    config = models.get("gpt").make_config(vocab_size=vocab_size, **overrides)
    return {k: getattr(config, k) for k in TORCH_FIELDS}


def recipe(steps: int | None = None) -> dict:
    """nanoGPT's train() keywords from the `gpt` recipe (its train_defaults: both loops read one source);
    `steps` replaces its steps (its warmup cut to them)."""
    from makemore_jax import models
    t = models.get("gpt").train_defaults
    steps = steps or t["steps"]
    return {"steps": steps, "batch_size": t["batch_size"], "lr": t["lr"], "warmup": min(steps, t["warmup_steps"]),
            "min_lr": t["lr"] * t["min_lr_ratio"], "weight_decay": t["weight_decay"], "betas": (t["b1"], t["b2"]),
            "grad_clip": t["clip_norm"]}


def reference(config: dict, train: dict, seed: int, corpus: str = CORPUS, threads: int = 1,
              heldout: str | None = None) -> dict:
    """Worker call: one nanoGPT run on `corpus`, its figures (with `heldout`: "heldout_loss", "heldout_s")."""
    import types

    import torch

    from benchmarks.references import torch_gpt
    torch.set_num_threads(threads)
    out = torch_gpt.train(text_ids(corpus)[0], types.SimpleNamespace(**config), seed=seed,
                          **{**train, "betas": tuple(train["betas"])})
    model = out.pop("model")
    if heldout:  # after the run: its time is no part of the run's
        t = time.perf_counter()
        ids = torch.tensor(text_ids(heldout, vocab_of=corpus)[0])
        out.update(heldout_loss=torch_gpt.window_loss(model, ids, config["block_size"]),
                   heldout_s=time.perf_counter() - t)
    return {**out, "seed": seed}


def ours_command(model: str, seed: int, out: str, *, corpus: str = CORPUS, steps: int | None = None,
                 flags=()) -> list[str]:
    """`makemore-jax train --model MODEL` on `corpus` as a user runs it (the recipe's steps unless `steps`: the
    command cuts the warmup to them)."""
    short = ["--steps", str(steps)] if steps else []
    return train_command(model, out, "--seed", str(seed), "--data", corpus, *short, *flags)


def whole_runs(seeds, *, model: str = "gpt", steps: int | None = None, reference_steps: int | None = None,
               corpus: str = CORPUS, threads: int = 1, heldout: str | None = None, flags=(), env: dict | None = None,
               torch: bool = True, cache: str | None = None) -> dict[str, list[dict]]:
    """Our `makemore-jax train --model MODEL` (`flags`, `env`) and nanoGPT's run (`reference` at `threads`; with
    --no-eval-train in `flags`, no train loss; torch False: left out) over `seeds`, each run a fresh process,
    the sides taking turns: {side: [{"seed", "val_loss", "train_loss", "wall_s", with `heldout` "heldout_loss"
    (scored after the run, outside its wall_s)}, ...]}; with `cache`, each run kept in cache/{side}-seed{S}.json."""
    def ours(seed):
        with tempfile.TemporaryDirectory() as out:
            row = command(ours_command(model, seed, out, corpus=corpus, steps=steps, flags=flags), out=out, env=env)
            scored = {"heldout_loss": _saved_run_loss(out, corpus, heldout)} if heldout else {}
        return {"seed": seed, "val_loss": row["results"]["val_loss"], "train_loss": row["results"].get("train_loss"),
                "wall_s": row["wall_s"], **scored}

    def reference(seed):
        train = {**recipe(reference_steps or steps), "train_loss": "--no-eval-train" not in flags}
        out = one_call(f"torch-{threads}t", "benchmarks.gpt:reference", {
            "config": gpt_config(text_ids(corpus)[1]), "train": train, "seed": seed, "corpus": corpus,
            "threads": threads, "heldout": heldout})
        return {**out, "wall_s": out["wall_s"] - out.pop("heldout_s", 0.0)}
    runs = {"ours": ours, **({"reference": reference} if torch else {})}
    return alternate({side: lambda s, side=side: _cached(cache, f"{side}-seed{s}", lambda: runs[side](s))
                      for side in runs}, seeds)


def _saved_run_loss(out: str, corpus: str, path: str) -> float:
    """The exact loss of the run saved in `out` over the whole text at `path`."""
    from makemore_jax import load_run
    from makemore_jax.evaluate import kind_loss
    run = load_run(out, data=corpus)
    with open(path, encoding="utf-8") as f:
        arrays = run.model.kind.build(f.read(), run.vocab, run.config.block_size)
    return kind_loss(run.model, run.config, run.state.params, run.state.model_state, arrays)


def parity(seeds=(0, 1, 2), *, steps: int | None = None, corpus: str = CORPUS, cache: str | None = None,
           torch: bool = True) -> dict:
    """Our command and nanoGPT's loop (1 thread) over `seeds` (whole_runs); print the table;
    {"rows": {seed: {side: run}}, "mean_ours", "mean_reference", "difference", "agree" (|difference| <=
    TOLERANCE)}."""
    by_side = whole_runs(seeds, steps=steps, corpus=corpus, torch=torch, cache=cache)
    rows = {s: {side: by_side[side][i] for side in by_side} for i, s in enumerate(seeds)}
    mean = {side: statistics.mean(r["val_loss"] for r in rs) for side, rs in by_side.items()}
    difference = mean["ours"] - mean["reference"] if torch else None
    print(f"Exact validation loss (nats/char) after {recipe(steps)['steps']:,} steps of the `gpt` recipe on "
          f"{os.path.basename(corpus)} (90/10 split), seeds {', '.join(map(str, seeds))}; {machine.cpu_model()}.\n")
    cell = lambda r, side, k, f=".4f": format(r[side][k], f) if side in r else "—"  # noqa: E731
    markdown("seed: | ours val: | nanoGPT val: | ours - nanoGPT: | ours train: | nanoGPT train: | ours wall s: | "
             "nanoGPT wall s:", [
                 [s, cell(r, "ours", "val_loss"), cell(r, "reference", "val_loss"),
                  f"{r['ours']['val_loss'] - r['reference']['val_loss']:+.4f}" if torch else "—",
                  cell(r, "ours", "train_loss"), cell(r, "reference", "train_loss"), cell(r, "ours", "wall_s", ".1f"),
                  cell(r, "reference", "wall_s", ".1f")] for s, r in rows.items()]
             + [["**mean**", f"**{mean['ours']:.4f}**", f"**{mean['reference']:.4f}**" if torch else "—",
                 f"**{difference:+.4f}**" if torch else "—", "", "", "", ""]])
    agree = torch and abs(difference) <= TOLERANCE
    print(f"\nMeans agree within {TOLERANCE}: {'yes' if agree else 'NO' if torch else '— (no torch)'}.")
    return {"rows": rows, "mean_ours": mean["ours"], "mean_reference": mean.get("reference"),
            "difference": difference, "agree": agree}


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


def scaling(mode: str, torch: bool) -> list[dict]:
    """steps/s of our fused engine (5 steps per dispatch) and nanoGPT's eager loop (the faster of 1 and 2
    threads) over an n_embd x block_size grid; print the table."""
    from benchmarks.scaling import grid
    widths, blocks, repeats, seconds = GRID[mode]

    def sides_of(n_embd, block_size):
        args = {"model": "gpt", "overrides": {"n_embd": n_embd, "block_size": block_size}}
        return {"JAX": Side("jax", "benchmarks.sides:jax_training", {**args, "chunk": 5}, first_n=5),
                **thread_sides("torch {t}t", "benchmarks.sides:torch_training", {**args, "variant": "lecture eager"},
                               (1, 2) if torch else (), first_n=2)}
    points = grid([{"n_embd": w, "block_size": b} for w in widths for b in blocks], sides_of, repeats, seconds, "gpt")
    for p in points:
        fig = p.pop("figures")
        name, theirs = best(fig, [s for s in fig if s != "JAX"])
        p.update(jax=fig["JAX"].get("rate"), torch=theirs and theirs["rate"], torch_side=name)
    ratios = [p["jax"] / p["torch"] if p["jax"] and p["torch"] else None for p in points]
    markdown("n_embd: | block: | GFLOP/step: | JAX fused steps/s: | PyTorch eager steps/s (threads): | JAX is: | faster",
             [[p["n_embd"], p["block_size"], f"{(p['flops_per_step'] or 0) / 1e9:.3f}", f"{p['jax'] or 0:,.1f}",
               f"{p['torch']:,.1f} ({p['torch_side'].split()[-1]})" if p["torch"] else "—", ratio_cell(x),
               "—" if x is None else "JAX" if x > 1 else "PyTorch"] for p, x in zip(points, ratios)])
    return points


def main(mode: str = "full", argv: list[str] | None = None) -> dict:
    """`--parity`: the reproduction (3 seeds, the recipe's steps, whole runs' wall s); else the speed figures:
    the `training` benchmark's gpt rows, the scaling grid."""
    torch = machine.torch_available()
    if "--parity" in (argv or ()):
        return parity(cache=os.path.join(out_dir(), "gpt-parity"), torch=torch)
    from benchmarks import training
    print("### Training steps/s (the `training` benchmark's gpt rows)\n")
    steps = training.main(mode, names=["gpt"])
    print("\n### Scaling: steps/s over n_embd x block_size (4 layers, 4 heads, batch 12)\n")
    return {"training": steps["models"]["gpt"], "peak_gflops": steps["peak_gflops"], "scaling": scaling(mode, torch)}
