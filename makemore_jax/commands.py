"""What each makemore-jax sub-command does; cli.py wires them to argparse.

A command takes the parsed arguments and prints its results. A user mistake raises
DataError, CheckpointError or UsageError (cli.main prints one line, exit status 2); a run
that stops without a result raises Stopped (exit status 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
import typing

from . import checkpoint, models
from .data import DEFAULT_DATA, Vocab, load_words, read_data
from .run import Stopped, UsageError, build_splits  # noqa: F401 (cli.main catches Stopped, UsageError)

PROG = "makemore-jax"


# ----------------------------------------------------------------------------- flags


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _int(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def batch_size_flag(text: str) -> int | None:
    return None if text == "full" else positive_int(text)


FIELD_HELP = {  # model config field -> what it means (defaults and models are added from the registry)
    "block_size": "characters of context the model sees",
    "n_embd": "embedding size per character",
    "n_hidden": "width of every hidden layer",
    "n_layers": "number of hidden layers",
    "batchnorm": "BatchNorm after each hidden linear layer",
    "out_batchnorm": "BatchNorm after the output layer (lecture 3's deep net)",
    "init": "weight initialisation: unit = every weight N(0, 1) (lecture 2, initial loss ~27); scaled = "
            "lecture 3's hand-picked factors (0.2, 0.01); fan-in = 1/sqrt(fan_in); kaiming = (5/3)/sqrt(fan_in); "
            "transformer: pytorch = torch's layer defaults, as makemore.py; gpt2 = N(0, 0.02)",
    "smoothing": "count added to every character pair before normalising",
    "reg": "L2 penalty reg * mean(W**2) added to the training loss; the lecture uses 0.01",
}


def devices_flag(text: str) -> int | None:
    """--devices N|all: None means every visible device."""
    from .parallel import parse_devices
    try:
        return parse_devices(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def values_flag(kind: type):
    """A sweep flag's type: comma-separated values of `kind`, as a list."""
    def parse(text: str) -> list:
        return [kind(part) for part in text.split(",")]
    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names it in its error message
    return parse


def config_flags() -> dict[str, tuple[type, str]]:
    """Every model config field (but vocab_size) as a flag: name -> (type, help with models and defaults)."""
    defaults: dict[str, dict[str, object]] = {}  # field -> {model name: its default}
    kinds: dict[str, type] = {}
    for model in models.REGISTRY.values():
        hints = typing.get_type_hints(model.Config)
        config = model.make_config()
        for field in dataclasses.fields(model.Config):
            if field.name != "vocab_size":
                kinds.setdefault(field.name, hints[field.name])
                defaults.setdefault(field.name, {})[model.name] = getattr(config, field.name)
    flags = {}
    for name, per_model in defaults.items():
        values: dict[object, list[str]] = {}
        for model_name, value in per_model.items():
            values.setdefault(value, []).append(model_name)
        shown = "; ".join(f"{', '.join(names)}: {value}" for value, names in values.items())
        flags[name] = (kinds[name], f"{FIELD_HELP.get(name, 'model setting')} (default {shown})")
    return flags


TRAIN_FLAGS = {  # flag -> (type, help); None values fall back to the model's / TrainConfig's defaults
    "steps": (positive_int, "training steps (default 200000; bigram-nn 500)"),
    "batch_size": (batch_size_flag, "minibatch size, or 'full' for every example every step (default 32; "
                                    "bigram-nn full)"),
    "optimizer": (str, "sgd (plain, as the lectures) or adamw (default sgd)"),
    "lr": (float, "(peak) learning rate (default 0.1; bigram-nn 50)"),
    "lr_decay_step": (int, "sgd: multiply the learning rate by --lr-decay from this step on (default 100000)"),
    "lr_decay": (float, "sgd: the factor applied at --lr-decay-step (default 0.1)"),
    "warmup_steps": (int, "adamw: linear warmup steps before the cosine decay (default 0)"),
    "min_lr_ratio": (float, "adamw: the cosine ends at lr x this at the last step; 1 holds lr constant (default 0.1; "
                            "transformer 1)"),
    "weight_decay": (float, "adamw: decoupled weight decay (default 0.01)"),
    "clip_norm": (float, "clip the global gradient norm to this (default: no clipping)"),
    "chunk_size": (positive_int, "steps per device dispatch and per log line (default 1000)"),
}
CHOICES = {"optimizer": ("sgd", "adamw")}  # flag -> allowed values (init's come from the models)

# ----------------------------------------------------------------------------- shared steps


def _say(args, *lines: str) -> None:
    if not getattr(args, "quiet", False):
        print(*lines, sep="\n", flush=True)


# ----------------------------------------------------------------------------- commands


def cmd_train(args) -> None:
    from . import parallel
    from .evaluate import bits
    from .run import train_model
    from .sample import novelty

    t0 = time.perf_counter()
    _join_processes(args)  # before JAX computes anything; only process 0 writes and prints
    model = models.get(args.model)
    given = {k: v for k, v in vars(args).items() if v is not None}
    config_over = {k: given[k] for k in config_flags() if k in given}
    foreign = sorted(set(config_over) - set(model.config_fields))
    if foreign:
        raise UsageError(f"--{foreign[0].replace('_', '-')} does not apply to --model {model.name}")
    train_over = {k: given[k] for k in TRAIN_FLAGS if k in given}
    if model.ability(models.ClosedForm) and train_over:
        print(f"{PROG}: note: --model {model.name} is fitted in closed form; it ignores "
              + ", ".join("--" + k.replace("_", "-") for k in train_over), file=sys.stderr)
    run = train_model(model.name, data=args.data, seed=args.seed, out=args.out, quiet=args.quiet,
                      resume=args.resume, overwrite=args.overwrite, devices=args.devices, **config_over, **train_over)
    if not parallel.is_writer():
        return
    losses = {k.removesuffix("_loss"): v for k, v in run.info["results"].items()}
    print("loss (nats, bits/char): " + "  ".join(f"{k} {v:.4f} ({bits(v):.3f})" for k, v in losses.items()))
    if args.num_samples > 0:
        names = run.sample(args.num_samples, seed=args.seed)
        print(f"samples ({novelty(names, run.train_words):.0%} not in the training set): "
              + ", ".join(map(shown, names)))
    if model.ability(models.ClosedForm):
        done = "fitted in closed form"
    else:
        s = run.summary
        steps_per_s = s["steps"] / s["seconds"] if s["seconds"] else 0.0
        done = (f"trained {s['steps']:,} steps{' (now at step %s)' % f'{int(run.state.step):,}' if args.resume else ''}"
                f" in {s['seconds']:.1f} s ({steps_per_s:,.0f} steps/s, compile {s['compile_seconds']:.1f} s)")
    print(f"{done}; total {time.perf_counter() - t0:.1f} s; wrote {os.path.join(args.out, checkpoint.CHECKPOINT)}")


def _join_processes(args) -> None:
    """--coordinator ...: start JAX's distributed runtime (a no-op for one process)."""
    from . import parallel
    try:
        parallel.initialize(args.coordinator, args.num_processes, args.process_id)
    except parallel.ParallelError as e:
        raise UsageError(str(e)) from None


def cmd_sweep(args) -> None:
    from . import sweep
    from .evaluate import split_loss
    from .train import TrainConfig

    t0 = time.perf_counter()
    model = models.get(args.model)
    if model.ability(models.ClosedForm):
        raise UsageError(f"--model {model.name} is fitted in closed form: it has no training to sweep")
    loaded = read_data(args.data)
    words, vocab = loaded.words, Vocab.from_words(loaded.words)
    given = {k: v for k, v in vars(args).items() if v is not None}
    foreign = sorted(k for k in config_flags() if k in given and k not in model.config_fields)
    if foreign:
        raise UsageError(f"--{foreign[0].replace('_', '-')} does not apply to --model {model.name}")
    swept = {k: v for k, v in given.items() if isinstance(v, list) and len(v) > 1 and k != "seed"}
    single = {k: v[0] if isinstance(v, list) else v for k, v in given.items() if k not in swept}
    try:
        config = model.make_config(words=words, vocab_size=vocab.size,
                                   **{k: single[k] for k in model.config_fields if k in single})
        tc = TrainConfig(**{**model.train_defaults, **{k: single[k] for k in TRAIN_FLAGS if k in single}})
        runs = sweep.grid(model, config, tc, swept, args.seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    splits = build_splits(model, config, words, vocab)
    if tc.batch_size is not None and tc.batch_size > len(splits["train"][0]):
        raise UsageError(f"--batch-size {tc.batch_size} is larger than the training split "
                         f"({len(splits['train'][0])} examples)")
    _say(args, f"sweep: {len(runs)} runs of {model.name} ({', '.join(f'{k} x{len(v)}' for k, v in swept.items())}"
               f"{', ' if swept else ''}seed x{len(args.seed)}), {tc.steps:,} steps each")
    result = sweep.train_sweep(model, runs, *splits["train"], devices=args.devices, quiet=args.quiet)

    os.makedirs(args.out, exist_ok=True)
    base_meta = {"model": model.name, "vocab": list(vocab.chars), "data": loaded.source,
                 "data_sha256": loaded.sha256, "max_word_len": max(map(len, words))}
    losses, kept = [], []
    for i, run in enumerate(runs):
        ts = sweep.unstack(result.states, i)
        run_losses = ({name: split_loss(model.bind(run.config), ts.params, ts.model_state, X, Y)
                       for name, (X, Y) in splits.items() if len(X)}
                      if result.diverged[i] is None else {"train": math.nan, "dev": math.nan})
        losses.append(run_losses)
        if args.keep and result.diverged[i] is None:
            meta = {**base_meta, "config": dataclasses.asdict(run.config), "train": dataclasses.asdict(run.train_config),
                    "seed": run.seed, "results": {f"{k}_loss": round(v, 6) for k, v in run_losses.items()}}
            kept.append(checkpoint.save(os.path.join(args.out, "runs", run.dirname), ts, meta))
    written = sweep.write_report(args.out, result, losses, title=f"sweep of {model.name}, {tc.steps:,} steps")
    print(sweep.markdown(*sweep.summarize(runs, losses)), end="")
    if kept:
        written.append(f"{len(kept)} checkpoints under {os.path.join(args.out, 'runs')} (use with eval/sample --out)")
    n_diverged = sum(d is not None for d in result.diverged)
    print(f"{len(runs)} runs x {tc.steps:,} steps on {result.devices} device(s) in {result.seconds:.1f} s "
          f"({len(runs) * tc.steps / result.seconds:,.0f} steps/s over all runs, compile {result.compile_seconds:.1f} s)"
          f"{f'; {n_diverged} diverged' if n_diverged else ''}; total {time.perf_counter() - t0:.1f} s; "
          f"wrote {', '.join(written)}")


EMPTY = "(empty name)"  # how a sample that ended at once is shown (a word cannot hold a space)


def shown(name: str) -> str:
    return name or EMPTY


def _empty_note(names: list[str]) -> str:
    empty = names.count("")
    return f"; {empty} empty, shown as {EMPTY}" if empty else ""


def cmd_eval(args) -> None:
    from .evaluate import bits
    from .run import load_run
    meta, _ = checkpoint.load(args.out)
    data = args.data or meta.get("data")
    if data is None:
        raise UsageError(f"{args.out}: the run was trained on words given from Python; pass --data FILE")
    run = load_run(args.out, data=data)
    if meta.get("data_sha256") not in (None, run.data_sha256):
        print(f"{PROG}: warning: {data} is not the data this run was trained on ({meta.get('data')}: its contents "
              f"differ); evaluating on it anyway", file=sys.stderr)
    losses = run.evaluate()
    for name, loss in losses.items():
        print(f"{name:5s} {loss:.4f} nats  {bits(loss):.4f} bits/char  ({len(run.splits[name][0]):,} examples)")
    model, ts = run.model, run.state
    calibration = model.ability(models.Calibration)
    if calibration and ts.model_state:  # lecture 3: BatchNorm statistics over the whole train split
        run.state = ts.replace(model_state=calibration.calibrate(ts.params, ts.model_state, run.splits["train"][0]))
        print("BatchNorm statistics recomputed over the whole training split (running -> calibrated): "
              + "  ".join(f"{k} {losses[k]:.4f} -> {v:.4f}" for k, v in run.evaluate().items()))


def cmd_sample(args) -> None:
    from .run import load_run
    from .sample import novelty
    run = load_run(args.out)
    names = run.sample(args.num_samples, seed=args.seed, temperature=args.temperature, top_k=args.top_k,
                       max_len=args.max_len)
    print("\n".join(map(shown, names)))
    known = f", {novelty(names, run.train_words):.0%} not in the training set" if run.words else ""
    _say(args, f"({len(names)} samples{known}{_empty_note(names)})")


def cmd_lr_find(args) -> None:
    import jax
    import numpy as np

    from .train import lr_find
    model = models.get(args.model)
    if model.ability(models.ClosedForm):
        raise UsageError(f"--model {model.name} is fitted in closed form: it has no learning rate")
    words = load_words(args.data or DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    config = model.make_config(words=words, vocab_size=vocab.size)
    splits = build_splits(model, config, words, vocab)
    _say(args, f"sweeping lr over 1e-3..1 in {args.steps} steps ({model.name}, batch {args.batch_size})")
    lrs, losses = lr_find(model, config, *splits["train"], jax.random.key(args.seed),
                          batch_size=args.batch_size, steps=args.steps)
    smooth = np.convolve(losses, np.ones(25) / 25, mode="same") if len(losses) > 50 else losses
    best = float(lrs[int(np.nanargmin(smooth))])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lr_find.json")
    checkpoint.atomic_write(path, checkpoint.dumps_json({"lr": lrs.tolist(), "loss": losses.tolist()}).encode())
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


def all_inits() -> tuple[str, ...]:
    """--init's values: the MLP family's, then the transformer's."""
    from .models import transformer
    return mlp_inits() + transformer.INITS


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
        config = model.make_config(words=words, vocab_size=vocab.size, **over)
        tc = TrainConfig(steps=max(args.steps, 1), batch_size=args.batch_size, lr=args.lr)
    except ValueError as e:
        raise UsageError(str(e)) from None
    splits = build_splits(model, config, words, vocab)
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
    checkpoint.atomic_write(written[0], checkpoint.dumps_json(report).encode())
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


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "eval": cmd_eval, "sample": cmd_sample, "lr-find": cmd_lr_find,
            "plot": cmd_plot, "diagnose": cmd_diagnose, "micrograd": cmd_micrograd, "bench": cmd_bench}
