"""How training speed scales: the MLP's steps/s and GFLOP/s as the batch size (width 200) and the
hidden width (batch 32) grow, JAX (XLA on one thread as the CLI, and on its own threads) against the
lectures' PyTorch loop at 1 and 2 threads (--quick: the CLI's setting, 1 thread), with a PNG
(`scaling.png` in --out). `grid` times any set of points (gpt's n_embd x block grid too).

    python -m benchmarks scaling [--quick]
"""

import os
import sys

from benchmarks import machine, sides
from benchmarks.harness import Side, compare, markdown, out_dir, pool

SIDES = {"JAX fused, XLA 1 thread (as the CLI)": "jax", "JAX fused, XLA threads": "jax-xla-threads",
         "PyTorch lecture eager, 1 thread": "torch-1t", "PyTorch lecture eager, 2 threads": "torch-2t"}
SIZES = {"full": ({"batch": (1, 8, 64, 512, 4096), "width": (64, 256, 1024, 4096)}, 5, 0.4),
         "quick": ({"batch": (1, 512), "width": (64, 1024)}, 2, 0.05),
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


def grid(points: list[dict], sides_of, repeats: int, seconds: float, label: str) -> list[dict]:
    """`compare(sides_of(**point))` at each point: [{**point, "figures", "flops_per_step" (XLA's count)}]."""
    out = []
    with pool() as workers:
        for point in points:
            print(f"  {label}: {point}", file=sys.stderr, flush=True)
            figures = compare(workers, sides_of(**point), repeats=repeats, seconds=seconds)
            flops = next((f["flops_per_step"] for f in figures.values() if f.get("flops_per_step")), None)
            out.append({**point, "figures": figures, "flops_per_step": flops})
    return out


def main(mode: str = "full") -> dict:
    """Run both sweeps; print tables; draw the PNG; return {"points": [...], "peak_gflops", "png", "torch"}."""
    (sizes, repeats, seconds), torch = SIZES[mode], machine.torch_available()
    peak = sides.matmul_peak(torch, mode)
    points = [{"sweep": "batch", "value": b, "batch": b, "width": 200} for b in sizes["batch"]] + \
        [{"sweep": "width", "value": w, "batch": 32, "width": w} for w in sizes["width"]]
    results = grid(points, lambda sweep, value, batch, width: point_sides(
        batch, width, torch, mode != "full", 10 if mode == "toy" else None), repeats, seconds, "scaling")
    for r in results:
        figures, flops = r.pop("figures"), r["flops_per_step"]
        r.update(steps_per_s={k: f.get("rate") for k, f in figures.items()},
                 gflops={k: f["rate"] * flops / 1e9 if flops and f.get("rate") else None for k, f in figures.items()})
    names = [n for n in SIDES if any(r["steps_per_s"].get(n) for r in results)]
    print(f"steps/s (GFLOP/s) per side, median of {repeats} alternating repeats; matmul peak {peak['best']:.0f} "
          "GFLOP/s.\n")
    for sweep in SWEEPS:
        rows = [r for r in results if r["sweep"] == sweep]
        markdown(f"{SWEEPS[sweep]}: | MFLOP/step: | " + " | ".join(f"{n}:" for n in names), [
            [r["value"], f"{(r['flops_per_step'] or 0) / 1e6:,.2f}", *(
                f"{r['steps_per_s'][n]:,.0f} ({r['gflops'][n]:.1f})" if r["steps_per_s"].get(n) else "—"
                for n in names)] for r in rows])
        print()
    return {"points": results, "peak_gflops": peak, "png": _plot(results, peak), "torch": torch}


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
    fig.savefig(path := os.path.join(out_dir(), "scaling.png"), dpi=110)
    plt.close(fig)
    print(f"\nplot: {path}")
    return path
