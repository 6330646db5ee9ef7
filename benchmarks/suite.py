"""The benchmark suite: every benchmark (a function here, `main(mode="full") -> dict` of its module
unless named, that prints markdown tables), or those named; results.md and results.json, with the machine,
to --out.

    python -m benchmarks [--quick] [--no-torch] [--out DIR] [NAME ...]    (or: makemore-jax bench)
"""

import argparse
import contextlib
import importlib
import io
import json
import math
import os
import sys
import time

BENCHMARKS = {  # name -> (module[:function], what it measures)
    "micrograd": ("micrograd_vs_jax", "one forward+backward of the moons MLP: micrograd against jax.grad"),
    "training": ("training", "training steps/s of every registered model: JAX against PyTorch"),
    "sampling": ("sampling", "names/s: the batched jitted sampler against the lectures' loop"),
    "evaluation": ("training:evaluation", "the loss over a whole split"),
    "scaling": ("scaling", "the MLP's steps/s and GFLOP/s as batch size and width grow (+ PNG)"),
    "headline": ("headline", "the lecture path through the CLI, 200k steps per model, against PyTorch"),
    "sweep": ("sweep", "many runs at once (makemore_jax.sweep)"),
    "reproduce": ("reproduce", "the lectures' 200k-step losses over several seeds (long)"),
    "gpt": ("gpt", "GPT on Shakespeare: steps/s, whole runs, scaling; --parity: the losses (long)"),
    "speedrun": ("speedrun", "gpt-speedrun against nanoGPT's run to its loss; --budget: 300 s each; --ablations"),
    "tokenizer": ("tokenizer", "BPE training: ours against Hugging Face tokenizers and minbpe-style Python; encoding"),
    "gpu": ("gpu", "the prepared GPU check (needs JAX's CUDA build; --dry-run: toy sizes on the CPU)"),
}
# passed to that benchmark's main(argv=...)
OWN_FLAGS = {"gpt": ("--parity",), "gpu": ("--dry-run",), "speedrun": ("--budget", "--ablations")}
DEFAULT = ("micrograd", "training", "sampling", "evaluation", "scaling", "headline", "sweep")


class _Tee(io.StringIO):
    """Keeps what is written and passes it on to `stream`."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text):
        self.stream.write(text)
        return super().write(text)


def _plain(value):
    """JSON-ready: string keys, floats for numpy scalars, None for NaN."""
    if isinstance(value, dict):
        return {" / ".join(map(str, k)) if isinstance(k, tuple) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run the speed benchmarks; write results.md and results.json.",
        epilog="benchmarks:\n" + "\n".join(f"  {n:10s} {d}" for n, (_, d) in BENCHMARKS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"default: {' '.join(DEFAULT)}")
    parser.add_argument("--quick", action="store_true", help="few short repeats, fewer points and sizes (minutes)")
    parser.add_argument("--out", default=os.path.join("out", "bench"), help="folder for results.md and results.json "
                        "(default: out/bench)")
    parser.add_argument("--no-torch", action="store_true", help="skip every PyTorch column, as if torch were absent")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not (len(args.names) == 1 and set(extra) <= set(OWN_FLAGS.get(args.names[0], ()))):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if unknown := [n for n in args.names if n not in BENCHMARKS]:
        print(f"python -m benchmarks: error: unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    if args.no_torch:
        os.environ["BENCH_NO_TORCH"] = "1"  # read by the benchmarks (machine.torch_available)
    os.environ["BENCH_OUT"] = args.out  # where benchmarks put their figures (scaling.png)
    from benchmarks import machine
    os.environ.setdefault("XLA_FLAGS", machine.ONE_XLA_THREAD)  # as the makemore-jax command
    record = {"machine": machine.info(), "quick": args.quick, "torch": machine.torch_available(), "benchmarks": {}}
    header = machine.markdown(record["machine"])
    md = [f"# Benchmark results{' (--quick)' if args.quick else ''}\n", header + "\n"]
    if not record["torch"]:
        md.append("PyTorch columns skipped: torch is not installed (pip install torch==2.13.0) or --no-torch.\n")
    print(header, flush=True)
    start, mode = time.perf_counter(), os.environ.get("BENCH_MODE") or ("quick" if args.quick else "full")
    from benchmarks.harness import sharing
    with sharing() if args.quick else contextlib.nullcontext():  # --quick: one worker per process name
        for name in args.names or DEFAULT:
            entry, what = BENCHMARKS[name]
            print(f"\n## {name}: {what}\n", flush=True)
            t, tee = time.perf_counter(), _Tee(sys.stdout)
            with contextlib.redirect_stdout(tee):
                module, _, function = entry.partition(":")
                result = getattr(importlib.import_module(f"benchmarks.{module}"), function or "main")(
                    mode, **({"argv": extra} if extra else {}))
            seconds = time.perf_counter() - t
            print(f"\n({name}: {seconds:.0f} s)", flush=True)
            record["benchmarks"][name] = {"seconds": seconds, "result": _plain(result)}
            md.append(f"## {name}\n\n{what}; {seconds:.0f} s.\n\n{tee.getvalue().strip()}\n")
            _write(args.out, md, record)  # after each benchmark: a partial run still leaves its files
    record["seconds"] = time.perf_counter() - start
    _write(args.out, md, record)
    print(f"\nwrote {os.path.join(args.out, 'results.md')} and results.json ({record['seconds']:.0f} s)")
    return 0


def _write(out: str, md: list[str], record: dict) -> None:
    from makemore_jax.checkpoint import atomic_write
    atomic_write(os.path.join(out, "results.md"), "\n".join(md).encode())
    atomic_write(os.path.join(out, "results.json"), json.dumps(_plain(record), indent=1).encode())
