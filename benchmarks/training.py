"""Training steps/s of every registered model: the fused engine against a per-step `jax.jit`
loop, the lectures' PyTorch eager code, torch.nn + torch.optim and torch.compile, with
GFLOP/s against the machine's matmul peak and each process's peak memory.

Models come from `models.REGISTRY` (one fitted in closed form gets no row), their PyTorch
code from `benchmarks.references` (a model without one gets JAX rows, and the table says
so). Each model has its own worker processes; with --quick one per framework serves every
model, PyTorch runs at 1 thread only (its matmul peak too) and torch.compile (tens of seconds
of compiling per process) is skipped. The PyTorch figure in each ratio is its faster thread count.

    python -m benchmarks training [--quick]
"""

from __future__ import annotations

import contextlib
import sys

from benchmarks import machine, sides
from benchmarks.harness import Pool, Side, best, compare, markdown, pool, rate_cell, ratio, ratio_cell, table, \
    threads_label
from benchmarks.references import REFERENCES

FUSED, PER_STEP = "JAX fused engine (ours)", "JAX per-step jax.jit"
THREADS = {"lecture eager": (1, 2), "torch.nn + torch.optim": (1, 2), "torch.compile": (1,)}
SIZES = {"full": (5, 0.5), "quick": (2, 0.05), "toy": (1, 0.0)}  # repeats, seconds per repeat


def torch_side(variant: str, threads: int) -> str:
    return f"PyTorch {variant}, {threads_label(threads)}"


def model_sides(name: str, *, torch: bool, quick: bool, chunk: int | None = None) -> dict[str, Side]:
    jax = {"model": name, "chunk": chunk}
    out = {FUSED: Side("jax", "benchmarks.sides:jax_training", {**jax, "loop": "fused"}, first_n=10),
           PER_STEP: Side("jax", "benchmarks.sides:jax_training", {**jax, "loop": "per-step"}, first_n=20)}
    for variant, threads in THREADS.items() if torch and name in REFERENCES else ():
        for t in () if quick and variant == "torch.compile" else threads[:1] if quick else threads:
            out[torch_side(variant, t)] = Side(f"torch{'-compile' * (variant == 'torch.compile')}-{t}t",
                                               "benchmarks.sides:torch_training",
                                               {"model": name, "variant": variant, "threads": t}, first_n=5)
    return out


def main(quick: bool = False, mode: str | None = None, names: list[str] | None = None) -> dict:
    """Time every model; print a summary table and one table per model; return the figures.

    Returns:
        {"models": {name: {"sides": {side: figures}, "ratios", "gflops", "peak_share",
         "peak_rss_mb", "missing": [columns]}}, "peak_gflops", "repeats", "seconds_per_repeat"}.
    """
    mode = mode or ("quick" if quick else "full")
    (repeats, seconds), small, torch = SIZES[mode], mode != "full", machine.torch_available()
    peak = sides.matmul_peak(torch, n=512 if mode == "toy" else 2048, torch_threads=1 if small else 2)
    results = {"models": {}, "peak_gflops": peak, "repeats": repeats, "seconds_per_repeat": seconds, "torch": torch}
    with pool() as shared:
        for name in names or sides.trained_models():
            print(f"  training: {name}", file=sys.stderr, flush=True)
            side_set = model_sides(name, torch=torch, quick=small, chunk=10 if mode == "toy" else None)
            with contextlib.nullcontext(shared) if small else Pool() as p:
                figures = compare(p, side_set, repeats=repeats, seconds=seconds)
                row = _summarise(name, figures, peak, torch=torch, quick=small)
                results["models"][name] = {**row, "peak_rss_mb": p.peak_rss_mb(),
                                           "process": {side: s.process for side, s in side_set.items()}}
    _print(results)
    return results


def _summarise(name: str, figures: dict, peak: dict, *, torch: bool, quick: bool) -> dict:
    fused, ratios, missing = figures.get(FUSED, {}), {"per-step jax.jit": ratio(figures[FUSED], figures[PER_STEP])}, []
    for variant, threads in THREADS.items():
        ratios[variant] = ratio(fused, best(figures, [torch_side(variant, t) for t in threads])[1])
        why = ("torch not installed or --no-torch" if not torch else "no reference" if name not in REFERENCES
               else "skipped in --quick" if quick and variant == "torch.compile" else "failed")
        missing += [] if ratios[variant] else [f"{variant} ({why})"]
    flops = fused.get("flops_per_step")
    gflops = fused["rate"] * flops / 1e9 if flops and "rate" in fused else None
    return {"sides": figures, "ratios": ratios, "flops_per_step": flops, "gflops": gflops, "missing": missing,
            "peak_share": gflops / peak["best"] if gflops else None, "batch_size": fused.get("batch_size"),
            "params": fused.get("params")}


def _print(results: dict) -> None:
    peak = results["peak_gflops"]
    torch_peak = f", PyTorch {threads_label(peak['torch_threads'])} {peak['torch']:.0f}" if peak.get("torch") else ""
    print(f"Median steps/s over {results['repeats']} alternating repeats of ~{results['seconds_per_repeat']} s; each "
          f"framework in its own process; PyTorch at its faster thread count. Matmul peak: XLA {peak['jax']:.0f} "
          f"GFLOP/s{torch_peak}.\n")
    markdown("model | params: | batch: | JAX fused steps/s: | vs per-step jax.jit: | vs lecture eager: | "
             "vs torch.nn + optim: | vs torch.compile: | GFLOP/s (of peak): | missing columns",
             [[name, f"{r['params'] or 0:,}", r["batch_size"] or "full", rate_cell(r["sides"].get(FUSED)),
               *map(ratio_cell, r["ratios"].values()),
               f"{r['gflops']:.1f} ({r['peak_share']:.1%})" if r["gflops"] else "—", "; ".join(r["missing"]) or "none"]
              for name, r in results["models"].items()])
    for name, r in results["models"].items():
        print(f"\n{name}: one step {r['flops_per_step'] or 0:,.0f} FLOPs (XLA cost analysis)\n")
        table(r["sides"], FUSED, "steps/s", r["peak_rss_mb"], r["process"])
