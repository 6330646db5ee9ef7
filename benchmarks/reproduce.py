"""Reproduce the lectures' losses: 200k steps, batch 32, SGD 0.1 -> 0.01 (at 100k; wavenet 150k).

On makemore's original names.txt (../shared/data/names.txt, when present) with the
lectures' split (seed 42, 80/10/10) and on the bundled data/names.txt:

| recipe | lecture (train / val) | target here |
|---|---|---|
| lecture 2: mlp, unit-normal init | 2.1260 / 2.1701 | mean val over 5 seeds <= 2.180 |
| lecture 3: mlp, init fixes | — / 2.1070 | val <= 2.110 for every seed |
| lecture 3: mlp-bn | 2.0668 / 2.1048 | val <= 2.110 for every seed |
| lecture 5: wavenet | 1.7690 / 1.9937 | mean val over 3 seeds <= 2.00 |

Seeds 0..4 (wavenet 0..2).

    python -m benchmarks reproduce [--quick]      (minutes: ~32 runs of 200k steps)
    python -m benchmarks.reproduce [--quick] [wavenet]    (only the recipes whose name has "wavenet")
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import jax

from makemore_jax import models
from makemore_jax.data import DEFAULT_DATA, Vocab, build_dataset, load_words, split_words
from makemore_jax.evaluate import split_loss
from makemore_jax.train import TrainConfig, create_train_state, fit

ORIGINAL = os.environ.get("MAKEMORE_ORIGINAL_NAMES",  # a git worktree elsewhere can point here
                          os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "names.txt"))
RECIPES = {  # name -> (model, config overrides, check, bound, seeds)
    "lecture 2 (mlp, unit init)": ("mlp", {"init": "unit"}, "mean", 2.180, 5),
    "lecture 3 (mlp, kaiming init)": ("mlp", {"init": "kaiming"}, "max", 2.110, 5),
    "lecture 3 (mlp-bn)": ("mlp-bn", {}, "max", 2.110, 5),
    "lecture 5 (wavenet)": ("wavenet", {}, "mean", 2.00, 3),
}


def run(model_name: str, overrides: dict, parts: dict, vocab: Vocab, seed: int, steps: int) -> tuple[float, float]:
    """(train loss, dev loss) after the model's own recipe (its train_defaults), scaled to `steps`."""
    model = models.get(model_name)
    config = model.make_config(vocab_size=vocab.size, **overrides)
    splits = {k: build_dataset(model.dataset, w, vocab, config.block_size) for k, w in parts.items()}
    recipe = TrainConfig(**model.train_defaults)
    tc = TrainConfig(**{**model.train_defaults, "steps": steps,
                        "lr_decay_step": recipe.lr_decay_step * steps // recipe.steps})
    ts = create_train_state(model, config, tc, jax.random.key(seed))
    ts, _ = fit(model, config, tc, *splits["train"], ts, quiet=True)
    return tuple(split_loss(model.apply, ts.params, ts.model_state, *splits[s]) for s in ("train", "dev"))


def main(quick: bool = False, only: str = "", data: tuple[str, ...] = ("original", "bundled")) -> dict:
    """Every recipe whose name contains `only` (all by default), on each of the `data` sets."""
    steps = 20_000 if quick else 200_000
    datasets = {"bundled": DEFAULT_DATA}
    if os.path.isfile(ORIGINAL):
        datasets = {"original": ORIGINAL, **datasets}
    else:
        print("(makemore's original names.txt not found at ../shared/data: bundled data only)")
    results = {}
    for data_name, path in datasets.items():
        if data_name not in data:
            continue
        words = load_words(path)
        vocab = Vocab.from_words(words)
        parts = dict(zip(("train", "dev"), split_words(words)))
        print(f"\n{data_name} data ({len(words):,} words), {steps:,} steps\n")
        print("| recipe | train per seed | val per seed | val mean +- sd | target | met |")
        print("|---|---|---|---:|---|:-:|")
        for recipe, (model_name, overrides, check, bound, n_seeds) in RECIPES.items():
            if only not in recipe:
                continue
            t = time.perf_counter()
            losses = []
            for seed in range(2 if quick else n_seeds):
                losses.append(run(model_name, overrides, parts, vocab, seed, steps))
                print(f"({recipe}, seed {seed}: train {losses[-1][0]:.4f}, val {losses[-1][1]:.4f}, "
                      f"{time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
            train = [tr for tr, _ in losses]
            val = [v for _, v in losses]
            value = statistics.mean(val) if check == "mean" else max(val)
            met = "yes" if value <= bound else "NO"
            print(f"| {recipe} | {' '.join(f'{v:.4f}' for v in train)} | {' '.join(f'{v:.4f}' for v in val)} | "
                  f"{statistics.mean(val):.4f} +- {statistics.stdev(val) if len(val) > 1 else 0:.4f} | "
                  f"{check} val <= {bound} | {met} |", flush=True)
            results[(data_name, recipe)] = {"train": train, "val": val, "met": met == "yes",
                                            "seconds": time.perf_counter() - t}
    return results


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, only=" ".join(a for a in sys.argv[1:] if a != "--quick"))
