"""The lectures' losses over several seeds, each run the command a user runs (`makemore-jax train`, a
fresh process: the lectures' split, seed 42, 80/10/10; the dev split is the val) on makemore's
names.txt when present (machine.shared_names), else the bundled list.

    python -m benchmarks reproduce [--quick]           (--quick: 20,000 steps, 2 seeds)
    python -m benchmarks.reproduce [--quick] [NAME]    (the recipes whose name contains NAME)
"""

import statistics
import sys
import tempfile

from makemore_jax import models
from makemore_jax.train import TrainConfig

from benchmarks.harness import command, train_command
from benchmarks.machine import shared_names

RECIPES = {  # name -> (model, its flags, check, bound on the val loss, seeds)
    "lecture 2 (mlp, unit init)": ("mlp", ("--init", "unit"), "mean", 2.180, 5),
    "lecture 3 (mlp, kaiming init)": ("mlp", ("--init", "kaiming"), "max", 2.110, 5),
    "lecture 3 (mlp-bn)": ("mlp-bn", (), "max", 2.110, 5),
    "lecture 5 (wavenet)": ("wavenet", (), "mean", 2.00, 3),
}


def run(model: str, flags, seed: int, steps: int, data: str | None) -> dict:
    """One `makemore-jax train` of the recipe (its lr decay step scaled to `steps`): its losses and "wall_s"."""
    t = TrainConfig(**models.get(model).train_defaults)
    decay = ("--lr-decay-step", str(t.lr_decay_step * steps // t.steps))
    with tempfile.TemporaryDirectory() as out:
        row = command(train_command(model, out, *flags, *decay, "--seed", str(seed), "--steps", str(steps),
                                    *(("--data", data) if data else ())), out=out)
    return {**row["results"], "wall_s": row["wall_s"]}


def main(mode: str = "full", only: str = "") -> dict:
    """Every recipe whose name contains `only`, over its seeds (2 in a short mode); print a markdown table."""
    quick = mode != "full"
    steps, data, results = 20_000 if quick else 200_000, shared_names(), {}
    print(f"\n{'makemore' if data else 'the bundled (makemore original not found at ../shared/data)'}'s "
          f"names.txt, the lectures' split, {steps:,} steps\n\n"
          "| recipe | train per seed | val per seed | val mean +- sd | target | met |\n|---|---|---|---:|---|:-:|")
    for recipe, (model, flags, check, bound, n_seeds) in RECIPES.items():
        if only not in recipe:
            continue
        runs = [run(model, flags, s, steps, data) for s in range(2 if quick else n_seeds)]
        train, val = [r["train_loss"] for r in runs], [r["dev_loss"] for r in runs]
        met = (statistics.mean(val) if check == "mean" else max(val)) <= bound
        print(f"| {recipe} | {' '.join(f'{v:.4f}' for v in train)} | {' '.join(f'{v:.4f}' for v in val)} | "
              f"{statistics.mean(val):.4f} +- {statistics.stdev(val) if len(val) > 1 else 0:.4f} | "
              f"{check} val <= {bound} | {'yes' if met else 'NO'} |", flush=True)
        results[recipe] = {"train": train, "val": val, "met": met, "seconds": sum(r["wall_s"] for r in runs)}
    return results


if __name__ == "__main__":
    main("quick" if "--quick" in sys.argv[1:] else "full", only=" ".join(a for a in sys.argv[1:] if a != "--quick"))
