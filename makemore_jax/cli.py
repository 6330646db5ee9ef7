"""makemore-jax command line: one sub-command per verb, every model behind `--model`.

User mistakes (bad data file, bad flag value, missing or corrupt checkpoint) print one line
to stderr and exit with status 2. The commands themselves live in commands.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable

from . import models
from .checkpoint import WRITE_LOCK, CheckpointError
from .commands import DEFAULT_MODEL, EMPTY, PROG, TEXT_LENGTH, Stopped, commands
from .data import DataError
from .faults import closed_stdout, is_write_failure, write_failed
from .flags import (add_flags, config_flags, devices_flag, non_negative_int, positive_int, tokenizer_defaults, train_flags,
                    values_flag)
from .parallel import SHARDS, processes_asked, request_host_devices
from .settings import UsageError
from .tokenizer import command as tokenizer_command
from .xla import use_compilation_cache, use_one_cpu_thread


GRACEFUL = ("train",)  # commands that, on SIGTERM, finish the chunk in flight and save it (args.stop)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2 (argparse's default prints the usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _add_common(p: argparse.ArgumentParser, *, data: bool = True, seed: str = "random seed (default 42)") -> None:
    p.add_argument("--out", default="out", help="checkpoint folder (default: out)")
    if data:
        p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--seed", type=int, default=42, help=seed)
    p.add_argument("--quiet", action="store_true", help="no progress output")


TENSORBOARD_HELP = ("write TensorBoard event files (each logged step's training loss and learning rate, the "
                    "split losses at the end; needs the tensorboard extra; view with tensorboard --logdir)")
DATA_HELP = (f"UTF-8, one word per line, or running text for {', '.join(models.text_models())} (default: the "
             f"bundled data/names.txt; for running text data/shakespeare.txt), or for those a folder of nanoGPT's "
             f"prepared train.bin and val.bin (uint16 token ids; give --tokenizer)")
TOKENIZER_HELP = (f"the tokens of {', '.join(models.text_models())} ({tokenizer_defaults()}): char (the text's "
                  "characters), gpt2 (GPT-2's 50,257 tokens), DIR (a folder written by 'makemore-jax tokenizer train', or its "
                  ".model file), or bpe:N (a GPT-2-pattern BPE of N tokens, trained on the training split); "
                  "losses are then per token, and in bits per byte; --resume keeps the run's own")
EXAMPLES = f"""examples:
  {PROG} train --model mlp-bn --steps 20000 --out out/bn
  {PROG} sample --out out/bn -n 10

Run '{PROG} COMMAND --help' for the flags of a command."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Character-level language models in JAX.", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for add in (_train_parser, _sweep_parser, _sample_parser, _other_parsers, _diagnose_parser, _convert_parser,
                tokenizer_command.add_parser):
        add(sub)
    return parser


def _train_parser(sub) -> None:
    models_list = "\n".join(f"  {name:9s} {m.description}" for name, m in models.REGISTRY.items())
    p = sub.add_parser("train", help="train a model and save a checkpoint", epilog="models:\n" + models_list,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, choices=list(models.REGISTRY),
                   help=f"which model (default {DEFAULT_MODEL}, or --init-from's; list below)")
    _add_common(p, seed="seed of the initialisation, the minibatches and the printed samples (default 42); under "
                         "--resume the run keeps its own seed and this changes only the samples")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out (same model and settings)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already saved in --out")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="start from the parameters of the run saved in RUN (one train saved, or convert --from-hf "
                        "made), with a fresh optimiser at step 0: fine-tuning, nanoGPT's init_from; its model, "
                        "vocabulary and model settings (--dropout, --dtype and a smaller --block-size may change), "
                        "the training settings given here")
    p.add_argument("-n", "--num-samples", type=non_negative_int, default=10,
                   help="names to print at the end (default 10); a text model prints one text sample, none with 0")
    p.add_argument("--tensorboard", action="store_true", help=TENSORBOARD_HELP + " into --out")
    p.add_argument("--tokenizer", default=None, metavar="char|gpt2|DIR|bpe:N", help=TOKENIZER_HELP)
    add_flags(p.add_argument_group("training (each model's default shown; a closed-form model such as bigram "
                                   "ignores these)"), train_flags())
    add_flags(p.add_argument_group("model settings (each applies to the models named in its default)"), config_flags())
    p.add_argument("--devices", type=devices_flag, default=argparse.SUPPRESS,
                   help="data parallel over N devices, or 'all' (default 1, and all when started as several "
                        "processes; on a CPU, N host devices)")
    p.add_argument("--shard", default="none", choices=SHARDS,
                   help="none: parameters and optimiser state replicated on every device (default); fsdp: split "
                        "over the --devices (each parameter along an axis that divides by their count), the "
                        "batch's rows data parallel either way")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="several processes: process 0's address")
    p.add_argument("--num-processes", type=positive_int, default=None, help="several processes: how many")
    p.add_argument("--process-id", type=non_negative_int, default=None, help="several processes: this one's index")


def _sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train every combination of comma-separated values at once",
                       description="Flags marked 'sweepable' take comma-separated values (--lr 0.05,0.1 --seed 1,2,3); "
                                   "every combination is one run, and all runs train in one program.")
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY), help="default: mlp")
    p.add_argument("--out", default=os.path.join("out", "sweep"), help="report folder (default: out/sweep)")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--seed", type=values_flag(int), default=[42], help="sweepable: random seeds (default 42)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--devices", type=devices_flag, default=None,
                   help="shard the runs over N devices, or 'all' (the default; on a CPU, one host device per core)")
    p.add_argument("--keep", action="store_true", help="save every run's checkpoint under OUT/runs/")
    p.add_argument("--tensorboard", action="store_true", help=TENSORBOARD_HELP + ", one folder per run under "
                   "OUT/tensorboard/")
    add_flags(p, train_flags(), sweepable=("lr", "weight_decay"))
    add_flags(p, config_flags(), sweep_all=True)


def _sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate names (or continue text) from a checkpoint",
                       description="Generate names, one per line; a name the model ended at once is shown as "
                                   f"{EMPTY}. A text model continues --prompt by --length tokens (characters "
                                   "for a char model), encoding and decoding with the run's tokenizer.")
    _add_common(p, data=False, seed="seed of the draws (default 42)")
    p.add_argument("-n", "--num-samples", type=positive_int, default=None,
                   help="how many names (default 20), or text streams sampled at once (default 1)")
    p.add_argument("--prompt", default=None, help="text models: the text to continue (default a newline)")
    p.add_argument("--length", type=positive_int, default=None,
                   help=f"text models: tokens to add (characters for a char model; default {TEXT_LENGTH})")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by this: below 1 safer names, above 1 wilder (default 1)")
    p.add_argument("--top-k", type=positive_int, default=None, help="draw only from the k likeliest characters")
    p.add_argument("--max-len", type=positive_int, default=None,
                   help="longest name (default: twice the longest training word)")


def _other_parsers(sub) -> None:
    p = sub.add_parser("eval", help="exact loss of a checkpoint on every split")
    _add_common(p)
    p = sub.add_parser("lr-find", help="lecture 2's learning-rate sweep, 10^linspace(-3, 0)")
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY))
    _add_common(p)
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p = sub.add_parser("plot", help="draw the loss curve of --out (needs the plots extra)")
    p.add_argument("--out", default="out")
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


def _diagnose_parser(sub) -> None:
    from .diagnostics import supports
    from .models.mlp import INITS
    diagnosable = [name for name, model in models.REGISTRY.items() if supports(model)]
    p = sub.add_parser("diagnose", help="lecture 3's activation / gradient / update statistics and figures")
    p.add_argument("--model", default="mlp-deep", choices=diagnosable, help="default: mlp-deep")
    p.add_argument("--out", default=os.path.join("out", "diagnostics"), help="figure folder (default: out/diagnostics)")
    p.add_argument("--data", default=None, help="one word per line (default: the bundled data/names.txt)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--init", default=None, choices=INITS, help="initialisation (default: the model's)")
    p.add_argument("--no-bn", action="store_true", help="no normalisation layers (--norm none)")
    p.add_argument("--steps", type=non_negative_int, default=1000, help="training steps before the snapshot")
    p.add_argument("--every", type=positive_int, default=10, help="record update ratios every this many steps")
    p.add_argument("--batch-size", type=positive_int, default=32, help="minibatch of training and of the snapshot")
    p.add_argument("--lr", type=float, default=0.1, help="sgd learning rate (default 0.1)")


def _convert_parser(sub) -> None:
    p = sub.add_parser("convert", help="a Hugging Face GPT-2 folder into a run (--from-hf), or a run into one "
                                       "(--to-hf)",
                       description="Convert between a makemore-jax run and a transformers GPT-2 folder (config.json "
                                   "and model.safetensors). --from-hf makes a gpt2 run with GPT-2's tokenizer, for "
                                   "sample, eval and fine-tuning with train --init-from; --to-hf writes a folder "
                                   "transformers.GPT2LMHeadModel.from_pretrained loads (gpt2, gpt and transformer "
                                   "runs whose options GPT-2 has). Needs the hf extra (safetensors).")
    way = p.add_mutually_exclusive_group(required=True)
    way.add_argument("--from-hf", metavar="DIR", default=None,
                     help="read a transformers GPT-2 folder (config.json and model.safetensors, or pytorch_model.bin "
                          "through torch's weights-only loader) into the run --out")
    way.add_argument("--to-hf", metavar="DIR", default=None, help="write the run in --out as a transformers GPT-2 folder")
    p.add_argument("--out", default="out", help="the run: written by --from-hf, read by --to-hf (default: out)")
    p.add_argument("--overwrite", action="store_true", help="replace a run (--from-hf) or a model (--to-hf) there")


def command_line() -> int:
    """The makemore-jax command (and python -m makemore_jax): main's exit status, for sys.exit.

    Once main returns, nothing is left to write: before the interpreter shuts down,
    gc.freeze moves every object the run made (JAX's among them) out of the garbage
    collector's reach, which takes half a second off every command's exit (ABLATIONS.md,
    "Speedrun").
    """
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    use_one_cpu_thread()
    use_compilation_cache()
    args = build_parser().parse_args(argv)
    if args.command == "train" and not hasattr(args, "devices"):  # one process: 1 device; several: all of them
        args.devices = None if processes_asked(args.num_processes) > 1 else 1
    if getattr(args, "devices", 1) != 1:  # several devices wanted: on a CPU, split it (before JAX starts)
        request_host_devices(args.devices)
    args.stop = threading.Event() if args.command in GRACEFUL else None
    stop_watching = watch_interrupts(args.stop)
    try:
        return _run(args)
    finally:
        stop_watching()


def _run(args) -> int:
    try:
        commands()[args.command](args)
        sys.stdout.flush()  # a closed or full standard output fails here, not in the interpreter's exit
    except (DataError, CheckpointError, UsageError) as e:
        print(f"{PROG}: error: {e.as_flags() if isinstance(e, UsageError) else e}", file=sys.stderr)
        return 2
    except ImportError as e:
        if getattr(e, "name", None) in ("matplotlib", "graphviz"):
            print(f"{PROG}: error: {e.name} is not installed: pip install 'makemore-jax[plots]'", file=sys.stderr)
            return 2
        if getattr(e, "name", None) == "tensorboardX":  # tensorboard.require's message says what to install
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 2
        raise
    except Stopped as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.status
    except BrokenPipeError:  # `... | head`: the reader has all it wanted
        return closed_stdout()
    except OSError as e:  # a full disk: the file, why, the checkpoint still good; never a traceback
        if not is_write_failure(e):
            raise
        print(f"{PROG}: error: {write_failed(e)}", file=sys.stderr)
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


def watch_interrupts(stop: threading.Event | None = None) -> Callable[[], None]:
    """Make Ctrl-C leave at once with status 130, even while XLA compiles or waits; returns the undo.

    SIGTERM (a scheduler's preemption) sets `stop`, which ends training after the chunk in
    flight with its state saved; without `stop` it leaves at once like Ctrl-C, status 143.

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
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: None)

    def watch():
        while data := os.read(read_fd, 64):
            if signal.SIGINT in data or (signal.SIGTERM in data and stop is None):
                with WRITE_LOCK:  # a checkpoint being written is finished first, and no new one starts
                    interrupted(130 if signal.SIGINT in data else 128 + signal.SIGTERM)
            if signal.SIGTERM in data:
                stop.set()
        os.close(read_fd)

    threading.Thread(target=watch, name="makemore-jax-interrupts", daemon=True).start()

    def undo():
        signal.signal(signal.SIGINT, previous_handler)
        signal.signal(signal.SIGTERM, previous_term)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads end-of-file and returns
    return undo


def interrupted(status: int = 130) -> None:
    """Ctrl-C: the files are safe (writes are atomic, the log is flushed per line); leave with `status`.

    os._exit skips the interpreter's shutdown, which can crash or hang while XLA's threads
    still run (a SIGINT during compilation did, in about half the tries).
    """
    print(f"{PROG}: {'interrupted' if status == 130 else 'terminated'}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
