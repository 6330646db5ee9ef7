"""The headline: the lectures' path end to end through the command line, against the time the
lectures' PyTorch code needs for the same training steps.

Each model of the lecture path (lecture 2's MLP with unit-normal init, mlp-bn, mlp-deep,
and WaveNet once it is registered) is trained for 200,000 steps by `makemore-jax train`
in a fresh process: start-up, data, compile, training, evaluation of three splits and the
checkpoint all count. The PyTorch side is the lecture's own training loop (the "lecture
eager" reference) timed over a shorter run in its own processes (1 and 2 threads, the
faster counts) and extrapolated to the same number of steps: its start-up, evaluation and
saving are left out, which favours PyTorch. The two sides alternate model by model.

Each `makemore-jax train` runs on one CPU thread, so the path is also timed as a user with
more cores would run it: the same commands started side by side, one per core (longest
first, the next starting when one ends), and the wall time of the whole path measured.

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

from benchmarks.harness import ROOT, Pool, Side, best, compare, torch_available
from benchmarks.references import REFERENCES

LECTURE_PATH = (("mlp", ("--init", "unit")), ("mlp-bn", ()), ("mlp-deep", ()), ("wavenet", ()))
TARGET_S = 120.0  # issue 8: the whole path in under 2 minutes on 2 cores


def cli_seconds(model: str, extra: tuple[str, ...], steps: int) -> float:
    """Wall time of one `makemore-jax train` run in a fresh process."""
    return path_wall_seconds([(model, extra)], steps, lanes=1)


def path_wall_seconds(path: list[tuple[str, tuple[str, ...]]], steps: int, lanes: int) -> float:
    """Wall time of `makemore-jax train` for each (model, flags) of `path`, in its order, up to `lanes` at once."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the command's own XLA setting
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    queue = list(path)
    running: list[tuple[subprocess.Popen, tempfile.TemporaryDirectory]] = []
    t = time.perf_counter()
    while queue or running:
        while queue and len(running) < lanes:
            model, extra = queue.pop(0)
            out = tempfile.TemporaryDirectory()
            running.append((subprocess.Popen(
                [sys.executable, "-m", "makemore_jax", "train", "--model", model, *extra, "--steps", str(steps),
                 "--out", out.name, "--quiet", "-n", "0"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL), out))
        time.sleep(0.05)
        for proc, out in [r for r in running if r[0].poll() is not None]:
            if proc.returncode:
                raise subprocess.CalledProcessError(proc.returncode, proc.args)
            out.cleanup()
            running.remove((proc, out))
    return time.perf_counter() - t


def main(quick: bool = False) -> dict:
    """Run the path; print a table; return {"rows": {model: {...}}, "total_jax_s", "total_torch_s"}."""
    steps, torch_seconds, first_repeats = (1_000, 0.3, 1) if quick else (200_000, 2.0, 3)
    torch = torch_available()
    rows = {}
    path = [(m, extra) for m, extra in LECTURE_PATH if m in models.REGISTRY][:1 if quick else None]
    for i, (name, extra) in enumerate(path):
        print(f"  headline: {name}", file=sys.stderr, flush=True)
        runs = [cli_seconds(name, extra, steps) for _ in range(first_repeats if i == 0 else 1)]
        row = {"cli_s": statistics.median(runs), "cli_runs": runs, "steps": steps, "torch_s": None}
        if torch and name in REFERENCES:
            overrides = {"init": "unit"} if "--init" in extra else {}
            side_set = {f"{t}t": Side(f"torch-{t}t", "benchmarks.sides:torch_training",
                                      {"model": name, "variant": "lecture eager", "threads": t, "overrides": overrides},
                                      first_n=20) for t in (1, 2)}
            with Pool() as pool:
                figures = compare(pool, side_set, repeats=3, seconds=torch_seconds)
            _, fig = best(figures, list(side_set))
            if fig is not None:
                row.update(torch_rate=fig["rate"], torch_threads=fig["threads"], torch_measured_steps=fig["n"],
                           torch_s=steps / fig["rate"])
        rows[name] = row
    total_jax = sum(r["cli_s"] for r in rows.values())
    lanes = min(os.cpu_count() or 1, len(path))
    longest_first = sorted(path, key=lambda item: -rows[item[0]]["cli_s"])
    wall = path_wall_seconds(longest_first, steps, lanes) if lanes > 1 and not quick else None
    with_torch = [r for r in rows.values() if r["torch_s"]]
    total_torch = sum(r["torch_s"] for r in with_torch) if with_torch else None
    print(f"{steps:,} steps per model through `makemore-jax train` (fresh process: start-up, compile, training, "
          f"evaluation, checkpoint); the first model's time is the median of {first_repeats} run(s), the others one "
          f"run each. PyTorch: the lecture's loop, training only, measured over a shorter run (3 alternating "
          f"repeats at 1 and 2 threads, the faster counts) and extrapolated to {steps:,} steps.\n")
    print("| model | JAX end to end s | PyTorch lecture code s (extrapolated) | measured over | JAX is |")
    print("|---|---:|---:|---|---:|")
    for name, r in rows.items():
        extra = " ".join(dict(path)[name])
        if r["torch_s"]:
            print(f"| {name} {extra} | {r['cli_s']:.1f} | {r['torch_s']:,.0f} | {r['torch_measured_steps']:,} steps x 3, "
                  f"{r['torch_threads']} thread(s), {r['torch_rate']:,.0f} steps/s | {r['torch_s'] / r['cli_s']:.1f}x |")
        else:
            why = "no reference" if torch else "torch not installed or --no-torch"
            print(f"| {name} {extra} | {r['cli_s']:.1f} | — ({why}) | | — |")
    if with_torch:
        jax_part = sum(r["cli_s"] for r in with_torch)
        print(f"| **total** | **{total_jax:.1f}** | **{total_torch:,.0f}** | | **{total_torch / jax_part:.1f}x** |")
    else:
        print(f"| **total** | **{total_jax:.1f}** | — | | — |")
    if wall is not None:
        print(f"\nThe same {len(path)} commands {lanes} at a time (one per core, longest first): the whole path in "
              f"{wall:.1f} s wall.")
    if not quick:
        best_wall = min(total_jax, wall or total_jax)
        print(f"\nTarget: the whole path under {TARGET_S:.0f} s on this machine: "
              f"{'met' if best_wall < TARGET_S else 'NOT met'} ({total_jax:.0f} s one after another"
              + (f", {wall:.0f} s {lanes} at a time" if wall is not None else "") + ").")
    missing = [m for m, _ in LECTURE_PATH if m not in models.REGISTRY]
    if quick:
        print("\n(--quick: the first model of the path only)")
    if missing:
        print(f"\n(not registered yet, so not in the path: {', '.join(missing)})")
    return {"rows": rows, "total_jax_s": total_jax, "total_torch_s": total_torch, "steps": steps, "torch": torch,
            "parallel_wall_s": wall, "lanes": lanes}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
