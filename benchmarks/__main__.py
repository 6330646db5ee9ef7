"""Run benchmarks by name: python -m benchmarks [--quick] [NAME ...] (default: all but reproduce).

Each benchmark is a module here with `main(quick: bool = False) -> dict` that prints a
markdown table; figures from a full run go into benchmarks/RESULTS.md by hand.
"""

import argparse
import importlib
import time

BENCHMARKS = {
    "micrograd": "micrograd_vs_jax",  # one forward+backward of the moons MLP: micrograd vs jax
    "engine": "engine",  # lecture-2 MLP training: fused scan vs per-step jit vs PyTorch eager
    "batchnorm": "batchnorm_vjp",  # mlp-deep training: custom BatchNorm backward vs autodiff vs PyTorch
    "wavenet": "wavenet_layout",  # lecture-5 WaveNet training: JAX layouts vs the lecture's PyTorch loops
    "reproduce": "reproduce",  # the lectures' 200k-step losses over several seeds (minutes)
}
DEFAULT = ("micrograd", "engine", "batchnorm")


def main() -> None:
    from makemore_jax.cli import use_one_cpu_thread
    use_one_cpu_thread()  # as the makemore-jax command runs: every JAX loop here gets the same setting
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], metavar="NAME",
                        help=f"one or more of {', '.join(BENCHMARKS)} (default: {' '.join(DEFAULT)})")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args()
    for name in args.names or DEFAULT:
        print(f"\n## {name}")
        start = time.perf_counter()
        importlib.import_module(f"benchmarks.{BENCHMARKS[name]}").main(quick=args.quick)
        print(f"({name}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
