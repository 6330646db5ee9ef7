"""What each makemore-jax sub-command does; cli.py wires them to argparse.

A command takes the parsed arguments and prints its results. A user mistake raises
DataError, CheckpointError or UsageError (cli.main prints one line, exit status 2); a run
that stops without a result raises Stopped (exit status 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
import typing

from . import checkpoint, models
from .checkpoint import CheckpointError
from .data import DEFAULT_DATA, DataError, Vocab, build_context_dataset, load_words, split_words

PROG = "makemore-jax"


class UsageError(ValueError):
    """A bad command-line value."""


class Stopped(RuntimeError):
    """Training stopped without a result (exit status 1): not a usage error."""

# ----------------------------------------------------------------------------- flags


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def batch_size_flag(text: str) -> int | None:
    return None if text == "full" else positive_int(text)


def config_flags() -> dict[str, tuple[type, str]]:
    """Every model config field (but vocab_size) as a flag: name -> (type, help)."""
    flags: dict[str, tuple[type, str]] = {}
    for model in models.REGISTRY.values():
        hints = typing.get_type_hints(model.Config)
        for field in dataclasses.fields(model.Config):
            if field.name != "vocab_size":
                flags.setdefault(field.name, (hints[field.name], f"model config ({model.Config.__module__.split('.')[-1]})"))
    return flags


TRAIN_FLAGS = {  # flag -> (type, help); None values fall back to the model's / TrainConfig's defaults
    "steps": (positive_int, "training steps (default 200000; bigram-nn 500)"),
    "batch_size": (batch_size_flag, "minibatch size, or 'full' (default 32)"),
    "optimizer": (str, "sgd or adamw (default sgd)"),
    "lr": (float, "(peak) learning rate (default 0.1)"),
    "lr_decay_step": (int, "sgd: multiply lr by --lr-decay from this step (default 100000)"),
    "lr_decay": (float, "sgd: factor at --lr-decay-step (default 0.1)"),
    "warmup_steps": (int, "adamw: linear warmup steps before the cosine decay"),
    "weight_decay": (float, "adamw: decoupled weight decay (default 0.01)"),
    "clip_norm": (float, "clip the global gradient norm"),
    "chunk_size": (positive_int, "steps per device dispatch (default 1000)"),
}

# ----------------------------------------------------------------------------- shared steps


def _say(args, *lines: str) -> None:
    if not getattr(args, "quiet", False):
        print(*lines, sep="\n", flush=True)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _splits(words: list[str], vocab: Vocab, block_size: int):
    """{"train": (X, Y), "dev": ..., "test": ...} and the training words."""
    parts = dict(zip(("train", "dev", "test"), split_words(words)))
    return {name: build_context_dataset(w, vocab, block_size) for name, w in parts.items()}, parts["train"]


def _evaluate(model, ts, splits) -> dict[str, float]:
    from .evaluate import split_loss
    return {name: split_loss(model.apply, ts.params, ts.model_state, X, Y) for name, (X, Y) in splits.items() if len(X)}


def _samples(model, ts, vocab: Vocab, config, *, n: int, seed: int, max_len: int, temperature=1.0, top_k=None):
    import jax

    from .sample import decode, sample_ids
    if top_k is not None and top_k > vocab.size:
        raise UsageError(f"--top-k {top_k} is larger than the vocabulary ({vocab.size})")
    if not temperature > 0:
        raise UsageError(f"--temperature must be positive, got {temperature}")
    ids = sample_ids(model.apply, ts.params, ts.model_state, jax.random.key(seed), n=n,
                     block_size=config.block_size, max_len=max_len, temperature=temperature, top_k=top_k)
    return decode(jax.device_get(ids), vocab)


def _load(out_dir: str):
    """Checkpoint -> (model, config, train config, vocab, TrainState, meta)."""
    import jax

    from .train import TrainConfig, create_train_state
    meta, raw = checkpoint.load(out_dir)
    path = os.path.join(out_dir, checkpoint.CHECKPOINT)
    try:
        model = models.get(meta["model"])
        config = model.Config(**meta["config"])
        tc = TrainConfig(**meta["train"])
        vocab = Vocab(tuple(meta["vocab"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: metadata is not usable ({e})") from None
    template = create_train_state(model, config, tc, jax.random.key(0))
    return model, config, tc, vocab, checkpoint.restore(template, raw, path), meta


# ----------------------------------------------------------------------------- commands


def cmd_train(args) -> None:
    import jax

    from .evaluate import bits
    from .sample import novelty
    from .train import Diverged, TrainConfig, create_train_state, fit

    t0 = time.perf_counter()
    model = models.get(args.model)
    data = args.data or DEFAULT_DATA
    words = load_words(data)
    vocab = Vocab.from_words(words)
    given = {k: v for k, v in vars(args).items() if v is not None}
    config_over = {k: given[k] for k in config_flags() if k in given}
    foreign = sorted(set(config_over) - set(model.config_fields))
    if foreign:
        raise UsageError(f"--{foreign[0].replace('_', '-')} does not apply to --model {model.name}")
    train_over = {k: given[k] for k in TRAIN_FLAGS if k in given}
    try:
        config = model.make_config(vocab_size=vocab.size, **config_over)
        tc = TrainConfig(**{**model.train_defaults, **train_over})
    except ValueError as e:
        raise UsageError(str(e)) from None

    if args.resume:
        _, old_config, old_tc, old_vocab, ts, meta = _load(args.out)
        if meta["model"] != model.name or old_config != config or old_vocab != vocab:
            raise CheckpointError(f"{args.out}: the checkpoint is a {meta['model']} with {dataclasses.asdict(old_config)}"
                                  f" on another vocabulary or config than this command's {model.name} with"
                                  f" {dataclasses.asdict(config)}")
        tc = dataclasses.replace(old_tc, **train_over)
    else:
        ts = create_train_state(model, config, tc, jax.random.key(args.seed))
    splits, train_words = _splits(words, vocab, config.block_size)
    Xtr, Ytr = splits["train"]
    if tc.batch_size is not None and tc.batch_size > len(Xtr):
        raise UsageError(f"--batch-size {tc.batch_size} is larger than the training split ({len(Xtr)} examples)")
    meta = {"model": model.name, "config": dataclasses.asdict(config), "train": dataclasses.asdict(tc),
            "vocab": list(vocab.chars), "data": os.path.abspath(data), "data_sha256": _sha256(data),
            "seed": args.seed, "max_word_len": max(map(len, words))}
    _say(args, f"{model.name}: {sum(x.size for x in jax.tree.leaves(ts.params)):,} parameters, "
               f"{len(words):,} words from {data}, vocabulary {vocab.size}, "
               f"train/dev/test {len(Xtr):,}/{len(splits['dev'][0]):,}/{len(splits['test'][0]):,} examples")

    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "metrics.jsonl")
    summary = {"steps": 0, "seconds": 0.0, "compile_seconds": 0.0}
    if model.fit is not None:
        ts = ts.replace(params=model.fit(config, Xtr, Ytr))
    else:
        if not args.resume and os.path.exists(log_path):
            os.remove(log_path)
        save_every = max(tc.chunk_size, 10_000)
        def on_chunk(good_ts):  # keep the last good state on disk for --resume and after divergence
            if int(good_ts.step) % save_every == 0:
                checkpoint.save(args.out, good_ts, meta)
        try:
            ts, summary = fit(model, config, tc, Xtr, Ytr, ts, on_chunk=on_chunk, log_path=log_path, quiet=args.quiet)
        except Diverged as e:
            path = checkpoint.save(args.out, e.last_good, meta)
            raise Stopped(f"{e}; kept the last good state (step {int(e.last_good.step)}) in {path}") from None

    losses = _evaluate(model, ts, splits)
    meta["results"] = {f"{k}_loss": round(v, 6) for k, v in losses.items()}
    path = checkpoint.save(args.out, ts, meta)
    if model.fit is None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": int(ts.step), "eval": meta["results"]}) + "\n")
    names = _samples(model, ts, vocab, config, n=args.num_samples, seed=args.seed,
                     max_len=2 * meta["max_word_len"]) if args.num_samples > 0 else []
    print("loss (nats, bits/char): " + "  ".join(f"{k} {v:.4f} ({bits(v):.3f})" for k, v in losses.items()))
    if names:
        print(f"samples ({novelty(names, train_words):.0%} not in the training set): " + ", ".join(names))
    if model.fit is not None:
        done = "fitted in closed form"
    else:
        steps_per_s = summary["steps"] / summary["seconds"] if summary["seconds"] else 0.0
        done = (f"trained {int(ts.step):,} steps in {summary['seconds']:.1f} s ({steps_per_s:,.0f} steps/s, "
                f"compile {summary['compile_seconds']:.1f} s)")
    print(f"{done}; total {time.perf_counter() - t0:.1f} s; wrote {path}")


def cmd_eval(args) -> None:
    from .evaluate import bits
    model, config, _, vocab, ts, meta = _load(args.out)
    data = args.data or meta["data"]
    words = load_words(data)
    if Vocab.from_words(words) != vocab:
        raise DataError(f"{data}: its characters differ from the checkpoint's vocabulary")
    splits, _ = _splits(words, vocab, config.block_size)
    losses = _evaluate(model, ts, splits)
    for name, loss in losses.items():
        print(f"{name:5s} {loss:.4f} nats  {bits(loss):.4f} bits/char  ({len(splits[name][0]):,} examples)")
    if model.calibrate is not None and ts.model_state:  # lecture 3: BatchNorm statistics over the whole train split
        calibrated = _evaluate(model, ts.replace(model_state=model.calibrate(ts.params, ts.model_state,
                                                                             splits["train"][0])), splits)
        print("BatchNorm statistics recomputed over the whole training split (running -> calibrated): "
              + "  ".join(f"{k} {losses[k]:.4f} -> {v:.4f}" for k, v in calibrated.items()))


def cmd_sample(args) -> None:
    from .sample import novelty
    model, config, _, vocab, ts, meta = _load(args.out)
    names = _samples(model, ts, vocab, config, n=args.num_samples, seed=args.seed, temperature=args.temperature,
                     top_k=args.top_k, max_len=args.max_len or 2 * meta["max_word_len"])
    print("\n".join(names))
    try:
        train_words = split_words(load_words(meta["data"]))[0]
        _say(args, f"({novelty(names, train_words):.0%} of {len(names)} not in the training set)")
    except DataError:
        pass  # the training data moved: novelty is unknown, the samples stand


def cmd_lr_find(args) -> None:
    import jax
    import numpy as np

    from .train import lr_find
    model = models.get(args.model)
    if model.fit is not None:
        raise UsageError(f"--model {model.name} is fitted in closed form: it has no learning rate")
    words = load_words(args.data or DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    config = model.make_config(vocab_size=vocab.size)
    splits, _ = _splits(words, vocab, config.block_size)
    _say(args, f"sweeping lr over 1e-3..1 in {args.steps} steps ({model.name}, batch {args.batch_size})")
    lrs, losses = lr_find(model, config, *splits["train"], jax.random.key(args.seed),
                          batch_size=args.batch_size, steps=args.steps)
    smooth = np.convolve(losses, np.ones(25) / 25, mode="same") if len(losses) > 50 else losses
    best = float(lrs[int(np.nanargmin(smooth))])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lr_find.json")
    checkpoint.atomic_write(path, json.dumps({"lr": lrs.tolist(), "loss": losses.tolist()}).encode())
    written = [path]
    try:
        from .plots import plot_lr_find
        written.append(plot_lr_find(lrs, losses, os.path.join(args.out, "lr_find.png")))
    except ImportError:
        pass
    print(f"lowest smoothed loss at lr {best:.3g}; wrote {', '.join(written)}")


def cmd_plot(args) -> None:
    from .plots import plot_losses
    print(f"wrote {plot_losses(os.path.join(args.out, 'metrics.jsonl'), os.path.join(args.out, 'loss.png'))}")


def diagnosable() -> list[str]:
    from .diagnostics import supports
    return [name for name, model in models.REGISTRY.items() if supports(model)]


def mlp_inits() -> tuple[str, ...]:
    from .models.mlp import INITS
    return INITS


def cmd_diagnose(args) -> None:
    import jax

    from . import diagnostics
    from .train import Diverged, TrainConfig, batch_indices, create_train_state, fit

    model = models.get(args.model)
    words = load_words(args.data or DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    over = {"init": args.init} if args.init else {}
    if args.no_bn:
        over.update(batchnorm=False, out_batchnorm=False)
    try:
        config = model.make_config(vocab_size=vocab.size, **over)
        tc = TrainConfig(steps=max(args.steps, 1), batch_size=args.batch_size, lr=args.lr)
    except ValueError as e:
        raise UsageError(str(e)) from None
    splits, _ = _splits(words, vocab, config.block_size)
    Xtr, Ytr = splits["train"]
    if args.batch_size > len(Xtr):
        raise UsageError(f"--batch-size {args.batch_size} is larger than the training split ({len(Xtr)} examples)")
    ts = create_train_state(model, config, tc, jax.random.key(args.seed))
    updates = None
    if args.steps:
        _say(args, f"training {model.name} ({config.init} init{', no BatchNorm' if args.no_bn else ''}) for "
                   f"{args.steps} steps, update ratios every {args.every}")
        try:
            ts, summary = fit(model, config, tc, Xtr, Ytr, ts, quiet=args.quiet,
                              metrics_fn=diagnostics.update_ratios, metrics_every=args.every)
            updates = summary["metrics"]
        except Diverged as e:
            print(f"{PROG}: {e}; diagnosing the last good state (step {int(e.last_good.step)})", file=sys.stderr)
            ts = e.last_good
    rows = jax.device_get(batch_indices(ts.key, ts.step[None], args.batch_size, len(Xtr))[0])  # the next step's batch
    snap = diagnostics.snapshot(ts.params, ts.model_state, Xtr[rows], Ytr[rows])
    table = diagnostics.table_rows(ts.params, snap, updates)
    print(f"{model.name}, {config.init} init, step {int(ts.step)}, minibatch loss {float(snap.loss):.4f}")
    print(diagnostics.format_table(table))

    os.makedirs(args.out, exist_ok=True)
    report = {"model": model.name, "config": dataclasses.asdict(config), "step": int(ts.step),
              "loss": float(snap.loss), "rows": table,
              "updates": {k: v.tolist() for k, v in (updates or {}).items()}}
    written = [os.path.join(args.out, "diagnostics.json")]
    checkpoint.atomic_write(written[0], json.dumps(report).encode())
    try:
        from .plots import plot_diagnostics
    except ImportError as e:
        if getattr(e, "name", None) != "matplotlib":
            raise
        print('figures need matplotlib: pip install "makemore-jax[plots]"')
    else:
        written += plot_diagnostics(jax.device_get(snap.acts), jax.device_get(snap.act_grads), updates, args.out)
    print(f"wrote {', '.join(written)}")


def cmd_micrograd(args) -> None:
    from .micrograd.demos import run_demo
    kwargs = {} if args.seed is None else {"seed": args.seed}
    try:
        run_demo(args.demo, steps=args.steps, **kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None


def benchmarks_root() -> str | None:
    """The source checkout holding benchmarks/ next to this package, or None (an installed wheel)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.isfile(os.path.join(root, "benchmarks", "suite.py")) else None


def cmd_bench(args) -> None:
    """Run the checkout's benchmark suite (benchmarks/suite.py) with the same flags."""
    root = benchmarks_root()
    if root is None:
        raise UsageError("the benchmarks/ folder is not next to the installed package: `bench` runs from a "
                         "source checkout (git clone, then pip install -e '.[bench]')")
    sys.path.insert(0, root)
    from benchmarks.suite import main as suite_main
    argv = [*args.names, "--out", args.out] + ["--quick"] * args.quick + ["--no-torch"] * args.no_torch
    status = suite_main(argv)
    if status:
        raise SystemExit(status)


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "lr-find": cmd_lr_find,
            "plot": cmd_plot, "diagnose": cmd_diagnose, "micrograd": cmd_micrograd, "bench": cmd_bench}
