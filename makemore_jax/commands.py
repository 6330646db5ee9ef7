"""What each makemore-jax sub-command does; cli.py wires them to argparse.

A command takes the parsed arguments, calls the run's life (lifecycle.py) or the run record
(run.py), and prints. A user mistake raises DataError, CheckpointError or UsageError
(cli.main prints one line, exit status 2); a run that stops without a result raises
Stopped (exit status 1).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

from . import checkpoint, models
from .flags import config_flags, train_flags
from .run import Stopped  # noqa: F401 (cli.main catches it)
from .settings import UsageError

PROG = "makemore-jax"
DEFAULT_MODEL = "mlp"  # train's --model when neither it nor --init-from names one
EMPTY = "(empty name)"  # how a sample that ended at once is shown (a word cannot hold a space)
TEXT_LENGTH = 500  # tokens (characters for a char model) `sample` adds to a text model's prompt by default
SUMMARY_LENGTH = 200  # tokens of the text sample at the end of `train`
TEXT_RULE = "-" * 16


def given_settings(args) -> dict:
    """The model and training settings the user gave on the command line (the flags not left at None)."""
    names = {*config_flags(), *train_flags()}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def say(args, *lines: str) -> None:
    if not getattr(args, "quiet", False):
        print(*lines, sep="\n", flush=True)


def shown(name: str) -> str:
    return name or EMPTY


# ----------------------------------------------------------------------------- train and sweep


def cmd_train(args) -> None:
    from . import parallel
    from .evaluate import bits
    from .lifecycle import fitting, saved_model, train_model

    t0 = time.perf_counter()
    _join_processes(args)  # before JAX computes anything; only process 0 writes and prints
    model = models.get(args.model or (args.init_from and saved_model(args.init_from)) or DEFAULT_MODEL)
    given = given_settings(args)
    fitter = fitting(model)
    ignored = [k for k in given if k in train_flags()]
    if not fitter.trains and ignored:
        print(f"{PROG}: note: --model {model.name} is fitted in closed form; it ignores "
              + ", ".join("--" + k.replace("_", "-") for k in ignored), file=sys.stderr)
    run = train_model(model.name, data=args.data, seed=args.seed, out=args.out, quiet=args.quiet,
                      resume=args.resume, overwrite=args.overwrite, devices=args.devices, shard=args.shard,
                      stop=getattr(args, "stop", None), tensorboard=args.tensorboard, tokenizer=args.tokenizer,
                      init_from=args.init_from, **given)
    if not parallel.is_writer():
        return
    losses = {k.removesuffix("_loss"): v for k, v in run.info["results"].items()}
    per_byte = run.bits_per_byte({k: v for k, v in losses.items() if v is not None})
    if per_byte:  # running text: per token, and per byte whatever the tokenizer
        print("loss (nats/token, bits/byte): " + "  ".join(f"{k} {v:.4f} ({per_byte.get(k, math.nan):.3f})" for k, v in losses.items()))
    else:
        print("loss (nats, bits/char): " + "  ".join(f"{k} {v:.4f} ({bits(v):.3f})" for k, v in losses.items()))
    if args.num_samples > 0:
        print_samples(run, args.num_samples, seed=args.seed)
    now_at = f" (now at step {int(run.state.step):,})" if args.resume else ""
    print(f"{fitter.done(run.summary, now_at)}; total {time.perf_counter() - t0:.1f} s; "
          f"wrote {os.path.join(args.out, checkpoint.CHECKPOINT)}")


def print_samples(run, n: int, *, seed: int) -> None:
    """train's closing sample: a text model's continuation of a newline, or n names with their novelty."""
    from .sample import novelty
    if run.continues_text:
        print(f"sample ({SUMMARY_LENGTH} {run.vocab.unit} after a newline):\n"
              f"{run.generate(length=SUMMARY_LENGTH, seed=seed)[0]}")
        return
    names = run.sample(n, seed=seed)
    print(f"samples ({novelty(names, run.train_words):.0%} not in the training set): " + ", ".join(map(shown, names)))


def _join_processes(args) -> None:
    """--coordinator ...: start JAX's distributed runtime (a no-op for one process)."""
    from . import parallel
    try:
        parallel.initialize(args.coordinator, args.num_processes, args.process_id)
    except parallel.ParallelError as e:
        raise UsageError(str(e)) from None


def cmd_sweep(args) -> None:
    from . import sweep
    from .lifecycle import sweep_model

    t0 = time.perf_counter()
    done = sweep_model(args.model, data=args.data, seeds=args.seed, out=args.out, devices=args.devices,
                       quiet=args.quiet, keep=args.keep, tensorboard=args.tensorboard, **given_settings(args))
    result, tc = done.result, done.prepared.train_config
    print(sweep.markdown(*sweep.summarize(done.runs, done.losses, select=done.select), select=done.select), end="")
    written = list(done.written)
    if done.kept:
        written.append(f"{done.kept} checkpoints under {os.path.join(args.out, 'runs')} (use with eval/sample --out)")
    n_diverged = sum(d is not None for d in result.diverged)
    print(f"{len(done.runs)} runs x {tc.steps:,} steps on {result.devices} device(s) in {result.seconds:.1f} s "
          f"({len(done.runs) * tc.steps / result.seconds:,.0f} steps/s over all runs, compile "
          f"{result.compile_seconds:.1f} s){f'; {n_diverged} diverged' if n_diverged else ''}; total "
          f"{time.perf_counter() - t0:.1f} s; wrote {', '.join(written)}")


# ----------------------------------------------------------------------------- a saved run


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
    per_byte = run.bits_per_byte(losses)
    for name, loss in losses.items():
        if per_byte:  # running text: per token, and per byte whatever the tokenizer
            print(f"{name:5s} {loss:.4f} nats/token  {per_byte[name]:.4f} bits/byte  ({len(run.splits[name][1]):,} "
                  f"{run.vocab.unit} predicted)")
        else:
            print(f"{name:5s} {loss:.4f} nats  {bits(loss):.4f} bits/char  ({len(run.splits[name][0]):,} examples)")
    calibrated = run.calibrated()
    if calibrated is not None:  # lecture 3: BatchNorm statistics over the whole train split
        print("BatchNorm statistics recomputed over the whole training split (running -> calibrated): "
              + "  ".join(f"{k} {losses[k]:.4f} -> {v:.4f}" for k, v in calibrated.evaluate().items()))


def cmd_sample(args) -> None:
    """Stream the names batch by batch (Run.sample_batches), counting as it goes: memory stays bounded."""
    from tqdm import tqdm

    from .run import load_run
    run = load_run(args.out)
    if run.continues_text:
        return _sample_text(args, run)
    for name in ("prompt", "length"):
        if getattr(args, name) is not None:
            raise UsageError(f"{{flag:name}} applies to text models; --model {run.model.name} generates names",
                             flag=(name, None))
    n = args.num_samples or 20
    seen = set(run.train_words)  # the one structure that grows with the data, not with -n
    total = new = empty = 0
    batches = run.sample_batches(n, seed=args.seed, temperature=args.temperature, top_k=args.top_k,
                                 max_len=args.max_len)
    with tqdm(total=n, unit="name", disable=args.quiet or not sys.stderr.isatty()) as bar:
        for names in batches:
            print("\n".join(map(shown, names)))
            total, empty = total + len(names), empty + names.count("")
            new += sum(name not in seen for name in names)
            bar.update(len(names))
    known = f", {new / max(total, 1):.0%} not in the training set" if run.words else ""
    say(args, f"({total} samples{known}{f'; {empty} empty, shown as {EMPTY}' if empty else ''})")


def _sample_text(args, run) -> None:
    """K continuations of --prompt, each printed with its prompt, separated by a rule line (nanoGPT's sample.py)."""
    if args.max_len is not None:
        raise UsageError("{flag:name} applies to names; continue text for {length:name} tokens",
                         flag=("max_len", None), length=("length", None))
    prompt = "\n" if args.prompt is None else args.prompt
    texts = run.generate(prompt, args.length or TEXT_LENGTH, args.num_samples or 1, seed=args.seed,
                         temperature=args.temperature, top_k=args.top_k)
    print(f"\n{TEXT_RULE}\n".join(prompt + text for text in texts))


def cmd_convert(args) -> None:
    """A transformers GPT-2 folder into the run --out (--from-hf), or that run into one (--to-hf)."""
    from . import hf
    from .run import from_checkpoint
    if args.from_hf is not None:
        run = hf.from_hf(args.from_hf, args.out, overwrite=args.overwrite)
        print(f"{hf.describe(run)}; wrote {os.path.join(args.out, checkpoint.CHECKPOINT)} (use with sample, eval, "
              f"or train --init-from {args.out})")
        return
    run = from_checkpoint(args.out)
    written = hf.to_hf(run, args.to_hf, overwrite=args.overwrite, where=args.out)
    print(f"{hf.describe(run)}; wrote {', '.join(written)} (transformers: "
          f"GPT2LMHeadModel.from_pretrained({args.to_hf!r}))")


# ----------------------------------------------------------------------------- studies


def cmd_lr_find(args) -> None:
    from .lifecycle import find_lr
    say(args, f"sweeping lr over 1e-3..1 in {args.steps} steps ({args.model}, batch {args.batch_size})")
    _, _, best, written = find_lr(args.model, data=args.data, steps=args.steps, batch_size=args.batch_size,
                                  seed=args.seed, out=args.out)
    print(f"lowest smoothed loss at lr {best:.3g}; wrote {', '.join(written)}")


def cmd_diagnose(args) -> None:
    from . import diagnostics
    from .lifecycle import diagnose_model
    over = {"init": args.init} if args.init else {}
    if args.no_bn:
        over.update(norm="none", out_norm=False)
    found = diagnose_model(args.model, data=args.data, steps=args.steps, every=args.every, batch_size=args.batch_size,
                           lr=args.lr, seed=args.seed, out=args.out, quiet=args.quiet,
                           describe=", no BatchNorm" if args.no_bn else "", **over)
    if found.diverged:
        print(f"{PROG}: {found.diverged}", file=sys.stderr)
    config = found.prepared.config
    print(f"{found.prepared.model.name}, {config.init} init, step {found.step}, minibatch loss {found.loss:.4f}")
    print(diagnostics.format_table(found.table))
    if not found.figures:
        print('figures need matplotlib: pip install "makemore-jax[plots]"')
    print(f"wrote {', '.join(found.written)}")


def cmd_plot(args) -> None:
    from .plots import plot_losses
    print(f"wrote {plot_losses(os.path.join(args.out, 'metrics.jsonl'), os.path.join(args.out, 'loss.png'))}")


def cmd_micrograd(args) -> None:
    from .micrograd.demos import run_demo
    kwargs = {} if args.seed is None else {"seed": args.seed}
    try:
        run_demo(args.demo, steps=args.steps, **kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None


# ----------------------------------------------------------------------------- benchmarks


def benchmarks_root() -> str | None:
    """The source checkout holding benchmarks/ next to this package, or None (an installed wheel)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.isfile(os.path.join(root, "benchmarks", "suite.py")) else None


def cmd_bench(args) -> None:
    """Run the checkout's benchmark suite (`python -m benchmarks`) with the same flags, in its own process."""
    root = benchmarks_root()
    if root is None:
        raise UsageError("the benchmarks/ folder is not next to the installed package: `bench` runs from a "
                         "source checkout (git clone, then pip install -e '.[bench]')")
    argv = [*args.names, "--out", os.path.abspath(args.out)] + ["--quick"] * args.quick + ["--no-torch"] * args.no_torch
    status = subprocess.call([sys.executable, "-m", "benchmarks", *argv], cwd=root)
    if status:
        raise SystemExit(status)


def commands() -> dict:
    """Sub-command name -> its function (args) -> None."""
    from .tokenizer.command import run as cmd_tokenizer
    return {"train": cmd_train, "sweep": cmd_sweep, "eval": cmd_eval, "sample": cmd_sample, "lr-find": cmd_lr_find,
            "plot": cmd_plot, "diagnose": cmd_diagnose, "micrograd": cmd_micrograd, "bench": cmd_bench,
            "convert": cmd_convert, "tokenizer": cmd_tokenizer}
