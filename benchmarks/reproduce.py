"""Reproduce the lectures' and makemore's losses, for context and sequence models, on either split.

    python -m benchmarks reproduce [--quick]                 (the lecture recipes below, every seed)
    python -m benchmarks.reproduce [--quick] [--recipe wavenet]
    python -m benchmarks.reproduce --model gru --set lr=5e-3 --set warmup_steps=500 --out out/gru
    python -m benchmarks.reproduce --model transformer --framework torch --steps 20000 --out out/tf-torch

Data: makemore's names.txt when present, else the bundled list (or --data); splits "lectures"
(seeded 80/10/10) or "makemore" (1,000 test and dev words). A run trains the model's recipe (lr
decay scaled to --steps), the dev loss every --eval-every steps, every split at the end and at the
best dev; `--framework torch`: makemore.py's own transformer and loop. One worker per run.
"""

import argparse
import json
import os
import statistics
import sys
import time

from makemore_jax import data, models

from benchmarks.harness import one_call
from benchmarks.machine import shared_names

SPLITS = {"lectures": data.split_words, "makemore": data.split_words_makemore}
RECIPES = {  # name -> (model, config overrides, check, bound on the val loss, seeds)
    "lecture 2 (mlp, unit init)": ("mlp", {"init": "unit"}, "mean", 2.180, 5),
    "lecture 3 (mlp, kaiming init)": ("mlp", {"init": "kaiming"}, "max", 2.110, 5),
    "lecture 3 (mlp-bn)": ("mlp-bn", {}, "max", 2.110, 5),
    "lecture 5 (wavenet)": ("wavenet", {}, "mean", 2.00, 3),
}


def splits(model, config, words: list[str], split: str, split_seed: int = 42) -> dict:
    vocab = data.Vocab.from_words(words)
    parts = dict(zip(("train", "dev", "test"), SPLITS[split](words, seed=split_seed)))
    return {k: model.kind.build(w, vocab, config.block_size) for k, w in parts.items()}


def run(model_name: str, words: list[str], *, split: str = "lectures", seed: int = 0, steps: int | None = None,
        overrides: dict | None = None, eval_every: int = 2500, split_seed: int = 42, out: str | None = None) -> dict:
    """Train one run; {"final": {split: loss}, "best": {split: loss at the best dev}, "best_step", "seconds", ...}."""
    from makemore_jax.evaluate import kind_loss
    from makemore_jax.train import TrainConfig

    from benchmarks.sides import fit_evaluated
    model, overrides = models.get(model_name), dict(overrides or {})
    config = model.make_config(vocab_size=data.Vocab.from_words(words).size, words=words,
                               **{k: v for k, v in overrides.items() if k in model.config_fields})
    recipe = TrainConfig(**model.train_defaults)
    steps = steps or recipe.steps
    decay = {"lr_decay_step": recipe.lr_decay_step * steps // recipe.steps} if recipe.lr_decay_step else {}
    tc = TrainConfig(**{**model.train_defaults, **decay, "steps": steps, "chunk_size": min(eval_every, steps),
                        **{k: v for k, v in overrides.items() if k not in model.config_fields}})
    arrays, t = splits(model, config, words, split, split_seed), time.perf_counter()
    ts, summary, curve, best = fit_evaluated(model, config, tc, arrays["train"], {"dev": arrays["dev"]}, seed, "dev")
    loss = lambda ts, s: kind_loss(model, config, ts.params, ts.model_state, arrays[s])  # noqa: E731
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "log.jsonl"), "w") as f:
            f.writelines(json.dumps({"step": c["step"], "loss": c["loss"], "time": c["time"]}) + "\n" for c in curve)
    return _write(out, {"model": model_name, "split": split, "seed": seed, "steps": steps, "config": vars(config),
                        "final": {s: loss(ts, s) for s in arrays}, "best": {s: loss(best["ts"], s) for s in arrays},
                        "best_step": best["step"], "curve": [{"step": c["step"], "dev": c["dev"]} for c in curve],
                        "seconds": time.perf_counter() - t, "steps_per_s": summary["steps"] / summary["seconds"]})


def torch_run(words: list[str], *, split: str, seed: int, steps: int, eval_every: int, init: str = "pytorch",
              split_seed: int = 42, out: str | None = None) -> dict:
    """makemore.py's PyTorch transformer and loop on the same split (torch at 1 thread)."""
    import torch

    from benchmarks.references.torch_transformer import train_makemore
    torch.set_num_threads(1)
    model = models.get("transformer")
    config = model.make_config(vocab_size=data.Vocab.from_words(words).size, words=words, init=init)
    t = time.perf_counter()
    r = train_makemore(splits(model, config, words, split, split_seed), config, steps=steps, eval_every=eval_every,
                       seed=seed, init=init)
    return _write(out, {"model": "transformer (makemore.py, PyTorch)", "split": split, "seed": seed, "steps": steps,
                        "best": r["losses_at_best_dev"], "final": r["curve"][-1][1], "best_step": r["best_step"],
                        "curve": [{"step": s, **losses} for s, losses in r["curve"]],
                        "seconds": time.perf_counter() - t, "steps_per_s": r["steps_per_s"]})


def _write(out: str | None, result: dict) -> dict:
    """dev.jsonl (the curve) and result.json (the rest) into `out`, if given; the result without its curve."""
    curve = result.pop("curve")
    if out:
        with open(os.path.join(out, "dev.jsonl"), "w") as f:
            f.writelines(json.dumps(point) + "\n" for point in curve)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result


def recipes(words: list[str], *, quick: bool, only: str = "", split: str = "lectures") -> dict:
    """Every lecture recipe whose name contains `only`, over its seeds (2 with quick); a markdown table."""
    steps, results = (20_000 if quick else 200_000), {}
    print(f"\n{len(words):,} words, {split} split, {steps:,} steps\n\n"
          "| recipe | train per seed | val per seed | val mean +- sd | target | met |\n|---|---|---|---:|---|:-:|")
    for recipe, (model, overrides, check, bound, n_seeds) in RECIPES.items():
        if only not in recipe:
            continue
        runs = [one_call("jax", "benchmarks.reproduce:run", {"model_name": model, "words": words, "split": split,
                                                              "seed": s, "steps": steps, "overrides": overrides,
                                                              "eval_every": steps}) for s in range(2 if quick else n_seeds)]
        train, val = [r["final"]["train"] for r in runs], [r["final"]["dev"] for r in runs]
        met = (statistics.mean(val) if check == "mean" else max(val)) <= bound
        print(f"| {recipe} | {' '.join(f'{v:.4f}' for v in train)} | {' '.join(f'{v:.4f}' for v in val)} | "
              f"{statistics.mean(val):.4f} +- {statistics.stdev(val) if len(val) > 1 else 0:.4f} | "
              f"{check} val <= {bound} | {'yes' if met else 'NO'} |", flush=True)
        results[recipe] = {"train": train, "val": val, "met": met, "seconds": sum(r["seconds"] for r in runs)}
    return results


def _value(text: str):
    """A --set value: int, float, none/true/false, else the string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def main(quick: bool = False, argv: list[str] | None = None) -> dict:
    """The suite's entry (the recipes table) and the command line above (argv)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="recipes: 20k steps, 2 seeds")
    parser.add_argument("--recipe", default="", help="only the recipes whose name contains this")
    parser.add_argument("--model", help="one run of this model instead of the recipes")
    parser.add_argument("--data", default=None, help="one word per line (default: makemore's list, else bundled)")
    parser.add_argument("--split", choices=SPLITS, default=None, help="default: lectures (recipes), makemore (--model)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--split-seed", type=int, default=42, help="seed of the word shuffle behind the split")
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config or TrainConfig field")
    parser.add_argument("--framework", choices=("jax", "torch"), default="jax")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv or [])
    path = args.data or shared_names() or data.DEFAULT_DATA
    if path == data.DEFAULT_DATA and not args.data:
        print("(makemore's original names.txt not found at ../shared/data: the bundled data)")
    words = data.load_words(path)
    if not args.model and args.framework == "jax":
        return recipes(words, quick=quick or args.quick, only=args.recipe, split=args.split or "lectures")
    common = {"split": args.split or "makemore", "seed": args.seed, "eval_every": args.eval_every,
              "split_seed": args.split_seed, "out": args.out}
    overrides = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    if args.framework == "torch":
        args_ = {"words": words, "steps": args.steps or 20_000, "init": overrides.get("init", "pytorch"), **common}
        result = one_call("torch-1t", "benchmarks.reproduce:torch_run", args_)
    else:
        args_ = {"model_name": args.model, "words": words, "steps": args.steps, "overrides": overrides, **common}
        result = one_call("jax", "benchmarks.reproduce:run", args_)
    print(f"{result['model']}: best dev at step {result['best_step']:,}: "
          + "  ".join(f"{k} {v:.4f}" for k, v in result["best"].items()) + f"  ({result['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main(argv=sys.argv[1:])
