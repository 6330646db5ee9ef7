"""What each makemore-jax sub-command does; cli.py wires them to argparse.

A command takes the parsed arguments and prints its results. A user mistake raises
DataError, CheckpointError or UsageError (cli.main prints one line, exit status 2); a run
that stops without a result raises Stopped (exit status 1).
"""

from __future__ import annotations

import math
import os
import sys
import time

from . import checkpoint, models
from .faults import FolderLock
from .flags import config_flags, train_flags
from .models import ClosedForm
from .settings import UsageError
from .tensorboard import LossCallback
from .run import Stopped  # noqa: F401 (cli.main catches it)

PROG = "makemore-jax"


def given_settings(args) -> dict:
    """The model and training settings the user gave on the command line (the flags not left at None)."""
    names = {*config_flags(), *train_flags()}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


# ----------------------------------------------------------------------------- shared steps


def say(args, *lines: str) -> None:
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
    given = given_settings(args)
    closed_form = model.ability(ClosedForm)
    ignored = [k for k in given if k in train_flags()]
    if closed_form and ignored:
        print(f"{PROG}: note: --model {model.name} is fitted in closed form; it ignores "
              + ", ".join("--" + k.replace("_", "-") for k in ignored), file=sys.stderr)
    run = train_model(model.name, data=args.data, seed=args.seed, out=args.out, quiet=args.quiet,
                      resume=args.resume, overwrite=args.overwrite, devices=args.devices,
                      stop=getattr(args, "stop", None), tensorboard=args.tensorboard, **given)
    if not parallel.is_writer():
        return
    losses = {k.removesuffix("_loss"): v for k, v in run.info["results"].items()}
    print("loss (nats, bits/char): " + "  ".join(f"{k} {v:.4f} ({bits(v):.3f})" for k, v in losses.items()))
    if args.num_samples > 0 and model.kind.sample == "text":
        print(f"sample ({SUMMARY_LENGTH} characters after a newline):\n{run.generate(length=SUMMARY_LENGTH, seed=args.seed)[0]}")
    elif args.num_samples > 0:
        names = run.sample(args.num_samples, seed=args.seed)
        print(f"samples ({novelty(names, run.train_words):.0%} not in the training set): "
              + ", ".join(map(shown, names)))
    s = run.summary
    steps_per_s = s["steps"] / s["seconds"] if s["seconds"] else 0.0
    now_at = f" (now at step {int(run.state.step):,})" if args.resume else ""
    done = "fitted in closed form" if closed_form else (
        f"trained {s['steps']:,} steps{now_at} in {s['seconds']:.1f} s ({steps_per_s:,.0f} steps/s, "
        f"compile {s['compile_seconds']:.1f} s)")
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
    from .runbuild import prepare

    t0 = time.perf_counter()
    model = models.get(args.model)
    if model.ability(ClosedForm):
        raise UsageError(f"--model {model.name} is fitted in closed form: it has no training to sweep")
    if args.tensorboard:
        from .tensorboard import require
        require()  # before any work: one line and status 2 without tensorboardX
    given = given_settings(args)
    swept = {k: v for k, v in given.items() if isinstance(v, list) and len(v) > 1}
    single = {k: v[0] if isinstance(v, list) else v for k, v in given.items() if k not in swept}
    p = prepare(model, data=args.data, overrides=single)
    try:
        runs = sweep.grid(model, p.config, p.train_config, swept, args.seed)
    except ValueError as e:
        raise e if isinstance(e, UsageError) else UsageError(str(e)) from None
    with FolderLock(args.out):  # one writer per folder
        _sweep_and_report(args, model, p, runs, swept, t0)


def _sweep_and_report(args, model, p, runs, swept: dict, t0: float) -> None:
    from . import sweep
    from .evaluate import kind_loss
    from .run import checkpoint_metadata
    from .runbuild import data_info
    tc = p.train_config
    say(args, f"sweep: {len(runs)} runs of {model.name} ({', '.join(f'{k} x{len(v)}' for k, v in swept.items())}"
               f"{', ' if swept else ''}seed x{len(args.seed)}), {tc.steps:,} steps each")
    boards = SweepBoards(args.out, runs, tc) if args.tensorboard else None
    result = sweep.train_sweep(model, runs, *p.splits["train"], devices=args.devices, quiet=args.quiet,
                               callbacks=[boards] if boards else [])
    os.makedirs(args.out, exist_ok=True)
    losses, kept = [], []
    select = model.kind.splits[1]  # the split runs are chosen on: dev (text: val)
    for i, run in enumerate(runs):
        ts = sweep.unstack(result.states, i)
        run_losses = ({name: kind_loss(model, run.config, ts.params, ts.model_state, a)
                       for name, a in p.splits.items() if len(a[0])}
                      if result.diverged[i] is None else {"train": math.nan, select: math.nan})
        losses.append(run_losses)
        if args.keep and result.diverged[i] is None:
            info = {**data_info(p.loaded, run.seed, model.kind), "results": {f"{k}_loss": round(v, 6) for k, v in run_losses.items()}}
            meta = checkpoint_metadata(model, run.config, run.train_config, p.vocab, info)
            kept.append(checkpoint.save(os.path.join(args.out, "runs", run.dirname), ts, meta))
    written = sweep.write_report(args.out, result, losses, title=f"sweep of {model.name}, {tc.steps:,} steps",
                                 select=select)
    if boards:
        written.append(boards.finish(tc.steps, losses))
    print(sweep.markdown(*sweep.summarize(runs, losses, select=select), select=select), end="")
    if kept:
        written.append(f"{len(kept)} checkpoints under {os.path.join(args.out, 'runs')} (use with eval/sample --out)")
    n_diverged = sum(d is not None for d in result.diverged)
    print(f"{len(runs)} runs x {tc.steps:,} steps on {result.devices} device(s) in {result.seconds:.1f} s "
          f"({len(runs) * tc.steps / result.seconds:,.0f} steps/s over all runs, compile {result.compile_seconds:.1f} s)"
          f"{f'; {n_diverged} diverged' if n_diverged else ''}; total {time.perf_counter() - t0:.1f} s; "
          f"wrote {', '.join(written)}")


class SweepBoards(LossCallback):
    """sweep --tensorboard: one TensorBoard folder per run, OUT/tensorboard/<run's dirname>.

    As a loop callback (tensorboard.LossCallback) it logs each run's chunk losses and its own
    learning rate (the shared schedule, peaking at the run's lr, as the sweep trains it);
    `finish` adds the split losses and closes the writers. Event files of an earlier
    sweep in the same folders are removed first, as the report files are replaced.
    """

    def __init__(self, out: str, runs, tc):
        import dataclasses

        import jax

        from .optim import make_schedule
        from .runbuild import EVENTS_PREFIX
        from .tensorboard import open_writer
        self.root = os.path.join(out, "tensorboard")
        for run in runs:
            folder = os.path.join(self.root, run.dirname)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if name.startswith(EVENTS_PREFIX):
                    os.remove(os.path.join(folder, name))
        unit = jax.jit(make_schedule(dataclasses.replace(tc, lr=1.0)))
        super().__init__([open_writer(os.path.join(self.root, run.dirname)) for run in runs],
                         [lambda step, lr=run.train_config.lr: lr * float(unit(step)) for run in runs])

    def finish(self, step: int, losses) -> str:
        """Log each run's split losses (the finite ones: a diverged run has none) at `step`; close."""
        for writer, run_losses in zip(self.writers, losses):
            writer.log_splits(step, {k: v for k, v in run_losses.items() if math.isfinite(v)})
            writer.close()
        return f"TensorBoard logs under {self.root} (tensorboard --logdir {self.root})"


EMPTY = "(empty name)"  # how a sample that ended at once is shown (a word cannot hold a space)


def shown(name: str) -> str:
    return name or EMPTY


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


TEXT_LENGTH = 500  # characters `sample` adds to a text model's prompt by default
SUMMARY_LENGTH = 200  # characters of the text sample at the end of `train`


def cmd_sample(args) -> None:
    """Stream the names batch by batch (Run.sample_batches), counting as it goes: memory stays bounded."""
    from tqdm import tqdm

    from .run import load_run
    run = load_run(args.out)
    if run.model.kind.sample == "text":
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
        raise UsageError(f"{{flag:name}} applies to names; continue text for {{length:name}} characters",
                         flag=("max_len", None), length=("length", None))
    prompt = "\n" if args.prompt is None else args.prompt
    texts = run.generate(prompt, args.length or TEXT_LENGTH, args.num_samples or 1, seed=args.seed,
                         temperature=args.temperature, top_k=args.top_k)
    print(f"\n{TEXT_RULE}\n".join(prompt + text for text in texts))


TEXT_RULE = "-" * 16


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


def commands() -> dict:
    """Sub-command name -> its function (args) -> None."""
    from .study import cmd_diagnose, cmd_lr_find, cmd_plot
    from .tokenizer.command import run as cmd_tokenizer
    return {"tokenizer": cmd_tokenizer,
            "train": cmd_train, "sweep": cmd_sweep, "eval": cmd_eval, "sample": cmd_sample, "lr-find": cmd_lr_find,
            "plot": cmd_plot, "diagnose": cmd_diagnose, "micrograd": cmd_micrograd, "bench": cmd_bench}
