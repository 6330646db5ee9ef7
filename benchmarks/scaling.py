"""How training speed scales: steps/s and GFLOP/s of the MLP as the batch size (width 200) and
the hidden width (batch 32) grow, JAX against PyTorch, with a PNG of both sweeps
(`scaling.png` in the suite's --out). Small steps are overhead-bound (steps/s hardly moves
as the work grows); once the matmuls dominate, steps/s falls in proportion and GFLOP/s nears
the matmul peak. Sides: the fused engine as the CLI runs it (XLA on one thread), the same
with XLA's own threads, the lectures' PyTorch loop at 1 and 2 threads (--quick: the CLI's JAX
setting and PyTorch at 1 thread); FLOPs: XLA's count.

    python -m benchmarks scaling [--quick]
"""

from __future__ import annotations

import os
import sys

from benchmarks import machine, sides
from benchmarks.harness import Side, compare, markdown, pool

OURS = "JAX fused, XLA 1 thread (as the CLI)"
SIDES = {OURS: "jax", "JAX fused, XLA threads": "jax-xla-threads",  # name -> process
         "PyTorch lecture eager, 1 thread": "torch-1t", "PyTorch lecture eager, 2 threads": "torch-2t"}
SIZES = {"full": ({"batch": (1, 8, 64, 512, 4096), "width": (64, 256, 1024, 4096)}, 5, 0.4),
         "quick": ({"batch": (1, 1024), "width": (64, 2048)}, 2, 0.05),
         "toy": ({"batch": (1,), "width": (256,)}, 1, 0.0)}
SWEEPS = {"batch": "batch size (width 200)", "width": "hidden width (batch 32)"}


def point_sides(batch: int, width: int, torch: bool, small: bool, chunk: int | None = None) -> dict[str, Side]:
    args, out = {"model": "mlp", "batch_size": batch, "overrides": {"n_hidden": width}}, {}
    for name, process in SIDES.items():
        if small and process in ("jax-xla-threads", "torch-2t"):
            continue
        if process.startswith("jax"):
            out[name] = Side(process, "benchmarks.sides:jax_training", {**args, "chunk": chunk})
        elif torch:
            out[name] = Side(process, "benchmarks.sides:torch_training",
                             {**args, "variant": "lecture eager", "threads": int(process[-2])}, first_n=2)
    return out


def main(quick: bool = False, mode: str | None = None) -> dict:
    """Run both sweeps; print tables; draw the PNG; return {"points": [...], "peak_gflops", "png", "findings"}."""
    mode = mode or ("quick" if quick else "full")
    (grid, repeats, seconds), torch = SIZES[mode], machine.torch_available()
    peak = sides.matmul_peak(torch, n=512 if mode == "toy" else 2048, torch_threads=1 if mode != "full" else 2)
    results = []
    with pool() as workers:
        for sweep, value, batch, width in [("batch", b, b, 200) for b in grid["batch"]] + \
                [("width", w, 32, w) for w in grid["width"]]:
            print(f"  scaling: batch {batch}, width {width}", file=sys.stderr, flush=True)
            figures = compare(workers, point_sides(batch, width, torch, mode != "full", 10 if mode == "toy" else None),
                              repeats=repeats, seconds=seconds)
            flops = next((f["flops_per_step"] for f in figures.values() if f.get("flops_per_step")), None)
            results.append({"sweep": sweep, "value": value, "batch": batch, "width": width, "flops_per_step": flops,
                            "steps_per_s": {k: f.get("rate") for k, f in figures.items()},
                            "gflops": {k: f["rate"] * flops / 1e9 if flops and f.get("rate") else None
                                       for k, f in figures.items()}})
    names = [n for n in SIDES if any(r["steps_per_s"].get(n) for r in results)]
    print(f"steps/s (GFLOP/s) per side, median of {repeats} alternating repeats; matmul peak {peak['best']:.0f} "
          "GFLOP/s.\n")
    findings = []
    for sweep in SWEEPS:
        rows = [r for r in results if r["sweep"] == sweep]
        markdown(f"{SWEEPS[sweep]}: | MFLOP/step: | " + " | ".join(f"{n}:" for n in names), [
            [r["value"], f"{(r['flops_per_step'] or 0) / 1e6:,.2f}", *(
                f"{r['steps_per_s'][n]:,.0f} ({r['gflops'][n]:.1f})" if r["steps_per_s"].get(n) else "—"
                for n in names)] for r in rows])
        print()
        findings += _finding(sweep, [r for r in rows if r["steps_per_s"].get(OURS)])
    print("\n".join(f"- {line}" for line in findings))
    return {"points": results, "peak_gflops": peak, "png": _plot(results, peak), "torch": torch, "findings": findings}


def _finding(sweep: str, rows: list[dict]) -> list[str]:
    """Where steps/s of the CLI's JAX setting falls to half its smallest-size value, and its best GFLOP/s."""
    if len(rows) < 2:
        return []
    base, top = rows[0]["steps_per_s"][OURS], max(rows, key=lambda r: r["gflops"][OURS] or 0)
    knee = next((r["value"] for r in rows if r["steps_per_s"][OURS] < base / 2), None)
    return [f"{sweep}: JAX (as the CLI) runs {base:,.0f} steps/s at {sweep} {rows[0]['value']} and "
            + ("never falls below half of it" if knee is None else f"first falls below half of it at {sweep} {knee}")
            + f"; its highest GFLOP/s is {top['gflops'][OURS]:.1f} at {sweep} {top['value']}"]


def _plot(results: list[dict], peak: dict) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not installed: no PNG)")
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex="col")
    for col, (sweep, label) in enumerate(SWEEPS.items()):
        for name in SIDES:
            rows = [r for r in results if r["sweep"] == sweep and r["steps_per_s"].get(name)]
            for row, key in enumerate(("steps_per_s", "gflops") if rows else ()):
                axes[row, col].plot([r["value"] for r in rows], [r[key][name] for r in rows], "o-", label=name)
        axes[1, col].axhline(peak["best"], color="gray", ls="--", label="matmul peak")
        axes[1, col].set_xlabel(label)
        for ax in axes[:, col]:
            ax.set(xscale="log", yscale="log")
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("training steps/s")
    axes[1, 0].set_ylabel("GFLOP/s")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("MLP training: where it stops being overhead-bound")
    fig.tight_layout()
    out = os.environ.get("BENCH_OUT", os.path.join("out", "bench"))
    os.makedirs(out, exist_ok=True)
    fig.savefig(path := os.path.join(out, "scaling.png"), dpi=110)
    plt.close(fig)
    print(f"\nplot: {path}")
    return path
