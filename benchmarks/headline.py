"""The headline: the lectures' path end to end through the command line (`makemore-jax train` in a
fresh process per model: start-up, data, compile, training, evaluation, checkpoint), against the
lectures' PyTorch loop timed over a shorter run at its faster thread count and extrapolated (its
start-up, evaluation and saving left out, which favours PyTorch); then the whole path one command
per core, longest first.

    python -m benchmarks headline [--quick]      (--quick: the first model only, 1,000 steps)
"""

import concurrent.futures
import os
import statistics
import sys
import tempfile
import time

from makemore_jax import models

from benchmarks import machine
from benchmarks.harness import best, command, compare, markdown, pool, thread_sides, torch_threads, \
    train_command
from benchmarks.references import REFERENCES

LECTURE_PATH = (("mlp", ("--init", "unit")), ("mlp-bn", ()), ("mlp-deep", ()), ("wavenet", ()))
TARGET_S = 120.0  # the whole path in under 2 minutes on 2 cores
SIZES = {"full": (200_000, 2.0, 3, None), "quick": (1_000, 0.2, 1, 1), "toy": (50, 0.0, 1, 1)}


def path_wall_seconds(path: list[tuple[str, tuple[str, ...]]], steps: int, lanes: int) -> float:
    """Wall time of `makemore-jax train` for each (model, flags) of `path`, in its order, up to `lanes` at once."""
    with tempfile.TemporaryDirectory() as out, concurrent.futures.ThreadPoolExecutor(lanes) as lane:
        t = time.perf_counter()
        list(lane.map(lambda i: command(train_command(path[i][0], os.path.join(out, str(i)), *path[i][1],
                                                      "--steps", str(steps))), range(len(path))))
        return time.perf_counter() - t


def main(mode: str = "full") -> dict:
    """Run the path; print a table; return {"rows": {model: {...}}, "total_jax_s", "total_torch_s", ...}."""
    (steps, torch_seconds, first_repeats, n_models), torch, rows = SIZES[mode], machine.torch_available(), {}
    path = [(m, extra) for m, extra in LECTURE_PATH if m in models.REGISTRY][:n_models]
    for i, (name, extra) in enumerate(path):
        print(f"  headline: {name}", file=sys.stderr, flush=True)
        runs = [path_wall_seconds([(name, extra)], steps, 1) for _ in range(first_repeats if i == 0 else 1)]
        rows[name] = row = {"cli_s": statistics.median(runs), "cli_runs": runs, "steps": steps, "torch_s": None}
        if torch and name in REFERENCES:
            side_set = thread_sides("{t}t", "benchmarks.sides:torch_training", {
                "model": name, "variant": "lecture eager", "overrides": {"init": "unit"} if extra else {}},
                torch_threads(mode), first_n=20)
            with pool() as workers:
                _, fig = best(compare(workers, side_set, repeats=3, seconds=torch_seconds), side_set)
            if fig is not None:
                row.update(torch_rate=fig["rate"], torch_threads=fig["threads"], torch_measured_steps=fig["n"],
                           torch_s=steps / fig["rate"])
    total_jax, lanes = sum(r["cli_s"] for r in rows.values()), min(os.cpu_count() or 1, len(path))
    longest_first = sorted(path, key=lambda item: -rows[item[0]]["cli_s"])
    wall = path_wall_seconds(longest_first, steps, lanes) if lanes > 1 else None
    with_torch = [r for r in rows.values() if r["torch_s"]]
    total_torch = sum(r["torch_s"] for r in with_torch) if with_torch else None
    print(f"{steps:,} steps per model through `makemore-jax train` (fresh process: start-up, compile, training, "
          f"evaluation, checkpoint); the first model the median of {first_repeats} run(s). PyTorch: the lecture's "
          f"loop, training only, 3 alternating repeats at its faster thread count, extrapolated.\n")

    def row(label: str, r: dict) -> list:
        if not r["torch_s"]:
            return [label, f"{r['cli_s']:.1f}", f"— ({'no reference' if torch else 'no torch'})", "", "—"]
        return [label, f"{r['cli_s']:.1f}", f"{r['torch_s']:,.0f}", f"{r['torch_measured_steps']:,} steps x 3, "
                f"{r['torch_threads']} thread(s), {r['torch_rate']:,.0f} steps/s", f"{r['torch_s'] / r['cli_s']:.1f}x"]
    speedup = f"**{total_torch / sum(r['cli_s'] for r in with_torch):.1f}x**" if with_torch else "—"
    markdown("model | JAX end to end s: | PyTorch lecture code s (extrapolated): | measured over | JAX is:",
             [row(f"{name} {' '.join(extra)}", r) for (name, extra), r in zip(path, rows.values())]
             + [["**total**", f"**{total_jax:.1f}**", f"**{total_torch:,.0f}**" if with_torch else "—", "", speedup]])
    if wall is not None:
        print(f"\nThe same {len(path)} commands {lanes} at a time (one per core, longest first): {wall:.1f} s wall.")
    if mode == "full":
        met = min(total_jax, wall or total_jax) < TARGET_S
        print(f"\nTarget: the whole path under {TARGET_S:.0f} s: {'met' if met else 'NOT met'}.")
    if n_models:
        print("\n(--quick: the first model of the path only)")
    return {"rows": rows, "total_jax_s": total_jax, "total_torch_s": total_torch, "steps": steps, "torch": torch,
            "parallel_wall_s": wall, "lanes": lanes}
