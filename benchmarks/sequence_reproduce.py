"""Reproduction runs of the sequence models (rnn, gru, transformer) on makemore's names.

    python -m benchmarks.sequence_reproduce --model transformer --steps 40000 --out out/tf-base
    python -m benchmarks.sequence_reproduce --model gru --set lr=5e-3 --set warmup_steps=500 ...
    python -m benchmarks.sequence_reproduce --framework torch --steps 20000 --out out/tf-torch

`--framework torch` (transformer only; needs torch) runs makemore.py's own PyTorch model and
loop instead (`references.torch_transformer.train_makemore`: its AdamW recipe, no clipping;
`--set init=gpt2` for its first version's init) on the same split, with the same selection.

Trains on the chosen split (default makemore's: 1,000 test words, 1,000 dev words, the rest
for training), evaluates the dev loss every --eval-every steps, keeps the state with the
best dev loss (selection on dev), and reports train/dev/test of that state once, with the
wall time. Writes <out>/log.jsonl (the engine's per-chunk log), <out>/dev.jsonl (step, dev
loss) and <out>/result.json; prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

from makemore_jax import data, models
from makemore_jax.evaluate import split_loss
from makemore_jax.train import TrainConfig, create_train_state, fit

SHARED_NAMES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "names.txt")  # makemore's list
SPLITS = {"makemore": data.split_words_makemore, "lectures": data.split_words}


class _Deadline(Exception):
    """Raised from the chunk callback when --deadline has passed."""


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--data", default=os.environ.get("MAKEMORE_ORIGINAL_NAMES", SHARED_NAMES),
                        help="one word per line (default: makemore's names.txt beside the checkout)")
    parser.add_argument("--split", choices=SPLITS, default="makemore")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42, help="seed of the initialisation and the minibatches")
    parser.add_argument("--split-seed", type=int, default=42, help="seed of the word shuffle behind the split")
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--deadline", default=None, metavar="HH:MM",
                        help="stop training at the first evaluation after this local time (then report as usual)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a model config or TrainConfig field")
    parser.add_argument("--framework", choices=("jax", "torch"), default="jax",
                        help="torch: makemore.py's PyTorch model and loop (transformer only)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    model = models.get(args.model)
    words = data.load_words(args.data)
    vocab = data.Vocab.from_words(words)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: _value(v) for k, v in overrides.items()}
    model_over = {k: v for k, v in overrides.items() if k in model.config_fields}
    train_over = {k: v for k, v in overrides.items() if k not in model_over}
    if args.steps is not None:
        train_over["steps"] = args.steps
    block_size = max(map(len, words)) + 1
    config = model.make_config(vocab_size=vocab.size, block_size=block_size, **model_over)
    tc = TrainConfig(**{**model.train_defaults, "chunk_size": args.eval_every, **train_over})
    parts = dict(zip(("train", "dev", "test"), SPLITS[args.split](words, seed=args.split_seed)))
    arrays = {name: data.build_sequence_dataset(w, vocab, block_size - 1) for name, w in parts.items()}

    os.makedirs(args.out, exist_ok=True)
    if args.framework == "torch":
        return _torch(args, config, arrays, {k: len(v) for k, v in parts.items()}, overrides.get("init", "pytorch"),
                      argv)
    best = {"dev": float("inf")}
    dev_log = open(os.path.join(args.out, "dev.jsonl"), "w")

    deadline = None
    if args.deadline:
        hour, minute = map(int, args.deadline.split(":"))
        now = time.localtime()
        deadline = time.mktime((*now[:3], hour, minute, 0, 0, 0, now.tm_isdst))

    def on_chunk(ts):
        best["last"] = ts
        dev = split_loss(model.apply, ts.params, ts.model_state, *arrays["dev"])
        dev_log.write(json.dumps({"step": int(ts.step), "dev": dev}) + "\n")
        dev_log.flush()
        if dev < best["dev"]:
            best.update(dev=dev, step=int(ts.step), state=ts)
        if deadline is not None and time.time() > deadline:
            raise _Deadline

    ts = create_train_state(model, config, tc, jax.random.key(args.seed))
    t0 = time.perf_counter()
    try:
        ts, summary = fit(model, config, tc, *arrays["train"], ts, on_chunk=on_chunk,
                          log_path=os.path.join(args.out, "log.jsonl"))
        stopped = None
    except _Deadline:
        ts = best["last"]
        summary = {"steps": int(ts.step), "seconds": time.perf_counter() - t0}
        stopped = f"stopped by --deadline {args.deadline} at step {int(ts.step):,} of {tc.steps:,}"
        print(stopped, flush=True)
    seconds = time.perf_counter() - t0
    chosen = best["state"]
    losses = {name: split_loss(model.apply, chosen.params, chosen.model_state, X, Y)
              for name, (X, Y) in arrays.items()}
    final = {name: split_loss(model.apply, ts.params, ts.model_state, X, Y) for name, (X, Y) in arrays.items()
             if name != "test"}
    result = {"model": args.model, "config": vars(config), "train_config": vars(tc), "split": args.split,
              "seed": args.seed, "sizes": {k: len(v) for k, v in parts.items()},
              "params": sum(x.size for x in jax.tree.leaves(ts.params)),
              "best_step": best["step"], "losses_at_best_dev": losses, "final_train_dev": final,
              "seconds": seconds, "stopped": stopped, "steps_per_s": summary["steps"] / summary["seconds"],
              "command": "python -m benchmarks.sequence_reproduce " + " ".join(argv or __import__("sys").argv[1:])}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"{args.model}: best dev at step {best['step']:,}: " +
          "  ".join(f"{k} {v:.4f}" for k, v in losses.items()) + f"  ({seconds:.0f} s)")
    return result


def _torch(args, config, arrays, sizes, init, argv) -> dict:
    """makemore.py's PyTorch loop on the same split; the same files and summary line."""
    from benchmarks.references.torch_transformer import train_makemore
    if args.model != "transformer":
        raise SystemExit("--framework torch: only the transformer has makemore's PyTorch loop here")
    import torch
    torch.set_num_threads(1)
    with open(os.path.join(args.out, "dev.jsonl"), "w") as dev_log:
        def on_eval(step, losses):
            dev_log.write(json.dumps({"step": step, **losses}) + "\n")
            dev_log.flush()
            print(f"step {step:,}: " + "  ".join(f"{k} {v:.4f}" for k, v in losses.items()), flush=True)
        t0 = time.perf_counter()
        out = train_makemore(arrays, config, steps=args.steps or 20_000, eval_every=args.eval_every, seed=args.seed,
                             init=init, on_eval=on_eval)
    losses = out["losses_at_best_dev"]
    result = {"model": "transformer (makemore.py, PyTorch)", "init": init, "split": args.split, "seed": args.seed,
              "sizes": sizes, "best_step": out["best_step"], "losses_at_best_dev": losses,
              "min_test": min(l["test"] for _, l in out["curve"]), "seconds": time.perf_counter() - t0,
              "steps_per_s": out["steps_per_s"],
              "command": "python -m benchmarks.sequence_reproduce " + " ".join(argv or __import__("sys").argv[1:])}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"transformer (PyTorch, makemore.py's loop): best dev at step {out['best_step']:,}: "
          + "  ".join(f"{k} {v:.4f}" for k, v in losses.items()) + f"  (lowest test {result['min_test']:.4f})")
    return result


if __name__ == "__main__":
    main()
