"""The headline: the lectures' path end to end through the command line, against the time the
lectures' PyTorch code needs for the same training steps.

Each model of the lecture path (lecture 2's MLP with unit-normal init, mlp-bn, mlp-deep,
wavenet) is trained by `makemore-jax train` in a fresh process: start-up, data, compile,
training, evaluation of three splits and the checkpoint all count. The PyTorch side is the
lecture's own loop ("lecture eager") timed over a shorter run (1 and 2 threads, the faster
counts) and extrapolated to the same steps: its start-up, evaluation and saving are left out,
which favours PyTorch. The path is also timed as a user with more cores would run it: the
commands side by side, one per core (longest first), and the wall time of the whole path.

    python -m benchmarks headline [--quick]      (--quick: the first model only, 1,000 steps)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from makemore_jax import models

from benchmarks import machine
from benchmarks.harness import Pool, Side, best, compare
from benchmarks.references import REFERENCES

LECTURE_PATH = (("mlp", ("--init", "unit")), ("mlp-bn", ()), ("mlp-deep", ()), ("wavenet", ()))
TARGET_S = 120.0  # the whole path in under 2 minutes on 2 cores
SIZES = {"full": (200_000, 2.0, 3, None), "quick": (1_000, 0.3, 1, 1), "toy": (50, 0.0, 1, 1)}


def path_wall_seconds(path: list[tuple[str, tuple[str, ...]]], steps: int, lanes: int) -> float:
    """Wall time of `makemore-jax train` for each (model, flags) of `path`, in its order, up to `lanes` at once."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the command's own XLA setting
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [machine.ROOT, os.environ.get("PYTHONPATH")]))
    queue, running, t = list(path), [], time.perf_counter()
    while queue or running:
        while queue and len(running) < lanes:
            model, extra = queue.pop(0)
            out = tempfile.TemporaryDirectory()
            running.append((subprocess.Popen(
                [sys.executable, "-m", "makemore_jax", "train", "--model", model, *extra, "--steps", str(steps),
                 "--out", out.name, "--quiet", "-n", "0"], cwd=machine.ROOT, env=env, stdout=subprocess.DEVNULL), out))
        time.sleep(0.05)
        for proc, out in [r for r in running if r[0].poll() is not None]:
            if proc.returncode:
                raise subprocess.CalledProcessError(proc.returncode, proc.args)
            out.cleanup()
            running.remove((proc, out))
    return time.perf_counter() - t


def main(quick: bool = False, mode: str | None = None) -> dict:
    """Run the path; print a table; return {"rows": {model: {...}}, "total_jax_s", "total_torch_s", ...}."""
    mode = mode or ("quick" if quick else "full")
    steps, torch_seconds, first_repeats, n_models = SIZES[mode]
    torch, rows = machine.torch_available(), {}
    path = [(m, extra) for m, extra in LECTURE_PATH if m in models.REGISTRY][:n_models]
    for i, (name, extra) in enumerate(path):
        print(f"  headline: {name}", file=sys.stderr, flush=True)
        runs = [path_wall_seconds([(name, extra)], steps, 1) for _ in range(first_repeats if i == 0 else 1)]
        rows[name] = row = {"cli_s": statistics.median(runs), "cli_runs": runs, "steps": steps, "torch_s": None}
        if torch and name in REFERENCES:
            args = {"model": name, "variant": "lecture eager", "overrides": {"init": "unit"} if extra else {}}
            side_set = {f"{t}t": Side(f"torch-{t}t", "benchmarks.sides:torch_training", {**args, "threads": t},
                                      first_n=20) for t in (1, 2)}
            with Pool() as pool:
                _, fig = best(compare(pool, side_set, repeats=3, seconds=torch_seconds), side_set)
            if fig is not None:
                row.update(torch_rate=fig["rate"], torch_threads=fig["threads"], torch_measured_steps=fig["n"],
                           torch_s=steps / fig["rate"])
    total_jax = sum(r["cli_s"] for r in rows.values())
    lanes = min(os.cpu_count() or 1, len(path))
    longest_first = sorted(path, key=lambda item: -rows[item[0]]["cli_s"])
    wall = path_wall_seconds(longest_first, steps, lanes) if lanes > 1 else None
    with_torch = [r for r in rows.values() if r["torch_s"]]
    total_torch = sum(r["torch_s"] for r in with_torch) if with_torch else None
    print(f"{steps:,} steps per model through `makemore-jax train` (fresh process: start-up, compile, training, "
          f"evaluation, checkpoint); the first model the median of {first_repeats} run(s). PyTorch: the lecture's "
          f"loop, training only, 3 alternating repeats at 1 and 2 threads (the faster counts), extrapolated.\n")
    print("| model | JAX end to end s | PyTorch lecture code s (extrapolated) | measured over | JAX is |")
    print("|---|---:|---:|---|---:|")
    for (name, extra), r in zip(path, rows.values()):
        if r["torch_s"]:
            print(f"| {name} {' '.join(extra)} | {r['cli_s']:.1f} | {r['torch_s']:,.0f} | {r['torch_measured_steps']:,} "
                  f"steps x 3, {r['torch_threads']} thread(s), {r['torch_rate']:,.0f} steps/s | "
                  f"{r['torch_s'] / r['cli_s']:.1f}x |")
        else:
            print(f"| {name} {' '.join(extra)} | {r['cli_s']:.1f} | — ({'no reference' if torch else 'no torch'}) | | — |")
    speedup = f"**{total_torch / sum(r['cli_s'] for r in with_torch):.1f}x**" if with_torch else "—"
    print(f"| **total** | **{total_jax:.1f}** | {f'**{total_torch:,.0f}**' if with_torch else '—'} | | {speedup} |")
    if wall is not None:
        print(f"\nThe same {len(path)} commands {lanes} at a time (one per core, longest first): {wall:.1f} s wall.")
    if mode == "full":
        best_wall = min(total_jax, wall or total_jax)
        print(f"\nTarget: the whole path under {TARGET_S:.0f} s: {'met' if best_wall < TARGET_S else 'NOT met'}.")
    missing = [m for m, _ in LECTURE_PATH if m not in models.REGISTRY]
    print("\n(--quick: the first model of the path only)" if n_models else "",
          f"\n(not registered, so not in the path: {', '.join(missing)})" if missing else "")
    return {"rows": rows, "total_jax_s": total_jax, "total_torch_s": total_torch, "steps": steps, "torch": torch,
            "parallel_wall_s": wall, "lanes": lanes}
