"""makemore-jax command line: one sub-command per verb, every model behind `--model`.

User mistakes (bad data file, bad flag value, missing or corrupt checkpoint) print one line
to stderr and exit with status 2. The commands themselves live in commands.py.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import models
from .checkpoint import CheckpointError
from .commands import (COMMANDS, PROG, TRAIN_FLAGS, Stopped, UsageError, config_flags, diagnosable, mlp_inits,
                       non_negative_int, positive_int)
from .data import DataError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2 (argparse's default prints the usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _add_common(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    p.add_argument("--out", default="out", help="checkpoint folder (default: out)")
    if data:
        p.add_argument("--data", default=None, help="one word per line (default: the bundled data/names.txt)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Character-level language models in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    models_list = "\n".join(f"  {name:9s} {m.description}" for name, m in models.REGISTRY.items())
    p = sub.add_parser("train", help="train a model and save a checkpoint", epilog="models:\n" + models_list,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY), help="default: mlp")
    _add_common(p)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("-n", "--num-samples", type=int, default=10, help="names to print at the end")
    for name, (kind, help_text) in TRAIN_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=help_text)
    for name, (kind, help_text) in config_flags().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            p.add_argument(flag, type=kind, default=None, help=help_text)

    p = sub.add_parser("sample", help="generate names from a checkpoint")
    _add_common(p, data=False)
    p.add_argument("-n", "--num-samples", type=positive_int, default=20)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--max-len", type=positive_int, default=None, help="default: twice the longest training word")

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
    return parser

def use_one_cpu_thread() -> None:
    """Run XLA's CPU backend without Eigen's thread pool, unless XLA_FLAGS says otherwise.

    The lectures' models are latency-bound: their matmuls are too small to split across
    threads, and the hand-offs cost more than they save (benchmarks/engine.py). Takes effect
    only before JAX's first computation in the process.
    """
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")


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
    try:
        COMMANDS[args.command](args)
    except (DataError, CheckpointError, UsageError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        if getattr(e, "name", None) in ("matplotlib", "graphviz"):
            print(f"{PROG}: error: {e.name} is not installed: pip install 'makemore-jax[plots]'", file=sys.stderr)
            return 2
        raise
    except Stopped as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
