"""makemore-jax command line: one sub-command per verb, every model behind `--model`.

User mistakes (bad data file, bad flag value, missing or corrupt checkpoint) print one line
to stderr and exit with status 2. The commands themselves live in commands.py.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Callable

from . import models
from .checkpoint import WRITE_LOCK, CheckpointError
from .commands import (CHOICES, COMMANDS, EMPTY, PROG, TRAIN_FLAGS, Stopped, UsageError, all_inits, config_flags,
                       devices_flag, diagnosable, mlp_inits, non_negative_int, positive_int, values_flag)
from .data import DataError
from .parallel import request_host_devices


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2 (argparse's default prints the usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _add_common(p: argparse.ArgumentParser, *, data: bool = True, seed: str = "random seed (default 42)") -> None:
    p.add_argument("--out", default="out", help="checkpoint folder (default: out)")
    if data:
        p.add_argument("--data", default=None, help="one word per line, UTF-8 (default: the bundled data/names.txt)")
    p.add_argument("--seed", type=int, default=42, help=seed)
    p.add_argument("--quiet", action="store_true", help="no progress output")


EXAMPLES = f"""examples:
  {PROG} train --model mlp-bn --steps 20000 --out out/bn
  {PROG} sample --out out/bn -n 10

Run '{PROG} COMMAND --help' for the flags of a command."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Character-level language models in JAX.", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    models_list = "\n".join(f"  {name:9s} {m.description}" for name, m in models.REGISTRY.items())
    p = sub.add_parser("train", help="train a model and save a checkpoint", epilog="models:\n" + models_list,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY), help="which model (default mlp; list below)")
    _add_common(p, seed="seed of the initialisation, the minibatches and the printed samples (default 42); under "
                         "--resume the run keeps its own seed and this changes only the samples")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out (same model and settings)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already saved in --out")
    p.add_argument("-n", "--num-samples", type=non_negative_int, default=10, help="names to print at the end (default 10)")
    choices = {**CHOICES, "init": all_inits()}
    group = p.add_argument_group("training (a closed-form model such as bigram ignores these)")
    for name, (kind, help_text) in TRAIN_FLAGS.items():
        group.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=help_text,
                           choices=choices.get(name))
    group = p.add_argument_group("model settings (each applies to the models named in its default)")
    for name, (kind, help_text) in config_flags().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(flag, type=kind, default=None, help=help_text, choices=choices.get(name))

    p.add_argument("--devices", type=devices_flag, default=1,
                   help="data parallel over N devices, or 'all' (default 1; on a CPU, N host devices)")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="several processes: process 0's address")
    p.add_argument("--num-processes", type=positive_int, default=None, help="several processes: how many")
    p.add_argument("--process-id", type=non_negative_int, default=None, help="several processes: this one's index")

    p = sub.add_parser("sweep", help="train every combination of comma-separated values at once",
                       description="Flags marked 'sweepable' take comma-separated values (--lr 0.05,0.1 --seed 1,2,3); "
                                   "every combination is one run, and all runs train in one program.")
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY), help="default: mlp")
    p.add_argument("--out", default=os.path.join("out", "sweep"), help="report folder (default: out/sweep)")
    p.add_argument("--data", default=None, help="one word per line (default: the bundled data/names.txt)")
    p.add_argument("--seed", type=values_flag(int), default=[42], help="sweepable: random seeds (default 42)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--devices", type=devices_flag, default=None,
                   help="shard the runs over N devices, or 'all' (the default; on a CPU, one host device per core)")
    p.add_argument("--keep", action="store_true", help="save every run's checkpoint under OUT/runs/")
    for name, (kind, help_text) in TRAIN_FLAGS.items():
        sweepable = name in ("lr", "weight_decay")
        p.add_argument("--" + name.replace("_", "-"), type=values_flag(kind) if sweepable else kind, default=None,
                       help=f"sweepable: {help_text}" if sweepable else help_text)
    for name, (kind, help_text) in config_flags().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, type=values_flag(kind), default=None, help=f"sweepable (same shapes): {help_text}")

    p = sub.add_parser("sample", help="generate names from a checkpoint",
                       description="Generate names, one per line; a name the model ended at once is shown as "
                                   f"{EMPTY}.")
    _add_common(p, data=False, seed="seed of the draws (default 42)")
    p.add_argument("-n", "--num-samples", type=positive_int, default=20, help="how many names (default 20)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by this: below 1 safer names, above 1 wilder (default 1)")
    p.add_argument("--top-k", type=positive_int, default=None, help="draw only from the k likeliest characters")
    p.add_argument("--max-len", type=positive_int, default=None,
                   help="longest name (default: twice the longest training word)")

    p = sub.add_parser("eval", help="exact loss of a checkpoint on every split")
    _add_common(p)

    p = sub.add_parser("lr-find", help="lecture 2's learning-rate sweep, 10^linspace(-3, 0)")
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY))
    _add_common(p)
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--batch-size", type=positive_int, default=32)

    p = sub.add_parser("plot", help="draw the loss curve of --out (needs the plots extra)")
    p.add_argument("--out", default="out")

    p = sub.add_parser("diagnose", help="lecture 3's activation / gradient / update statistics and figures")
    p.add_argument("--model", default="mlp-deep", choices=diagnosable(), help="default: mlp-deep")
    p.add_argument("--out", default=os.path.join("out", "diagnostics"), help="figure folder (default: out/diagnostics)")
    p.add_argument("--data", default=None, help="one word per line (default: the bundled data/names.txt)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--init", default=None, choices=mlp_inits(), help="initialisation (default: the model's)")
    p.add_argument("--no-bn", action="store_true", help="no BatchNorm layers (batchnorm and out_batchnorm off)")
    p.add_argument("--steps", type=non_negative_int, default=1000, help="training steps before the snapshot")
    p.add_argument("--every", type=positive_int, default=10, help="record update ratios every this many steps")
    p.add_argument("--batch-size", type=positive_int, default=32, help="minibatch of training and of the snapshot")
    p.add_argument("--lr", type=float, default=0.1, help="sgd learning rate (default 0.1)")

    p = sub.add_parser("micrograd", help="train a micrograd demo network")
    p.add_argument("--demo", choices=["lecture", "moons"], default="moons")
    p.add_argument("--steps", type=positive_int, default=100)
    p.add_argument("--seed", type=int, default=None, help="default: the demo's own")

    p = sub.add_parser("bench", help="run the speed benchmarks (from a source checkout); write results.md and .json")
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: the suite; "
                   "python -m benchmarks --help lists them)")
    p.add_argument("--quick", action="store_true", help="short repeats and fewer points (a few minutes)")
    p.add_argument("--out", default=os.path.join("out", "bench"), help="results folder (default: out/bench)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    return parser


def use_one_cpu_thread() -> None:
    """Run XLA's CPU backend without Eigen's thread pool, unless XLA_FLAGS says otherwise.

    The lectures' models are latency-bound: their matmuls are too small to split across
    threads, and the hand-offs cost more than they save (benchmarks/engine.py). Takes effect
    only before JAX's first computation in the process.
    """
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")


def as_flags(message: str) -> str:
    """Settings named as in Python (`n_hidden=16`, or leading the message) shown as flags (`--n-hidden 16`)."""
    names = {*config_flags(), *TRAIN_FLAGS, "resume", "overwrite", "seed", "top_k", "temperature", "max_len"}

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name not in names:
            return match.group(0)
        dashed = "--" + name.replace("_", "-")
        if value in ("True", "False"):
            return dashed if value == "True" else "--no-" + dashed[2:]
        return f"{dashed} {'full' if name == 'batch_size' and value == 'None' else value.strip(chr(39))}"

    message = re.sub(r"\b([a-z][a-z0-9_]*)=('[^']*'|[^\s,;()]+)", flag, message)
    head = re.match(r"[a-z][a-z0-9_]*\b", message)
    if head and head.group(0) in names:
        message = "--" + head.group(0).replace("_", "-") + message[head.end():]
    return message


def use_compilation_cache() -> None:
    """Keep compiled programs in ~/.cache/makemore-jax/xla (JAX's persistent cache), unless
    JAX_COMPILATION_CACHE_DIR says otherwise ("" turns it off): a second run of the same
    command skips the ~5 s of XLA compiles of the lecture MLP's run (benchmarks/ABLATIONS.md).
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import jax
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    jax.config.update("jax_compilation_cache_dir", os.path.join(cache, "makemore-jax", "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def main(argv: list[str] | None = None) -> int:
    use_one_cpu_thread()
    use_compilation_cache()
    args = build_parser().parse_args(argv)
    if getattr(args, "devices", 1) != 1:  # several devices wanted: on a CPU, split it (before JAX starts)
        request_host_devices(args.devices)
    stop_watching = watch_interrupts()
    try:
        return _run(args)
    finally:
        stop_watching()


def _run(args) -> int:
    try:
        COMMANDS[args.command](args)
    except (DataError, CheckpointError, UsageError) as e:
        print(f"{PROG}: error: {as_flags(str(e))}", file=sys.stderr)
        return 2
    except ImportError as e:
        if getattr(e, "name", None) in ("matplotlib", "graphviz"):
            print(f"{PROG}: error: {e.name} is not installed: pip install 'makemore-jax[plots]'", file=sys.stderr)
            return 2
        raise
    except Stopped as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a caller's own SIGINT handling (main in a thread)
        interrupted()
    except Exception as e:  # XLA failing to allocate: one line, never a hang or a traceback
        if "RESOURCE_EXHAUSTED" not in str(e) and "Out of memory" not in str(e):
            raise
        print(f"{PROG}: error: out of memory: {str(e).strip().splitlines()[0][:300]}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)  # XLA's threads may still hold the failed computation: do not wait for them
    return 0


def watch_interrupts() -> Callable[[], None]:
    """Make Ctrl-C leave at once with status 130, even while XLA compiles or waits; returns the undo.

    Python's own handling runs in the main thread between two bytecodes, so it waits for an
    XLA compilation under way (or forever, for a computation that never finishes), its
    KeyboardInterrupt can surface inside a callback that swallows it (JAX's garbage-collection
    hook) so that training carries on, and the shutdown after it can crash (exit 139) while
    XLA's threads still run. Instead the signal's wakeup byte goes down a pipe to a thread
    that waits for a checkpoint being written (checkpoint.WRITE_LOCK) and leaves.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd)
    previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: None)  # the watcher acts

    def watch():
        while data := os.read(read_fd, 64):
            if signal.SIGINT in data:
                with WRITE_LOCK:  # a checkpoint being written is finished first, and no new one starts
                    interrupted()
        os.close(read_fd)

    threading.Thread(target=watch, name="makemore-jax-interrupts", daemon=True).start()

    def undo():
        signal.signal(signal.SIGINT, previous_handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads end-of-file and returns
    return undo


def interrupted() -> None:
    """Ctrl-C: the files are safe (writes are atomic, the log is flushed per line); leave with status 130.

    os._exit skips the interpreter's shutdown, which can crash or hang while XLA's threads
    still run (a SIGINT during compilation did, in about half the tries).
    """
    print(f"{PROG}: interrupted", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
