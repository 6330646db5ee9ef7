"""Training steps/s of every registered model: the fused engine against a per-step `jax.jit`
loop, the lectures' PyTorch eager code, the torch.nn + torch.optim version and torch.compile.

Models come from `makemore_jax.models.REGISTRY` (a new model joins by registering; one
fitted in closed form gets no row) and their PyTorch code from `benchmarks/references`
(`REFERENCES`); a model without a reference gets its JAX rows and the table says so. Each
model is timed with its own worker processes: one for JAX (both JAX loops, XLA as the
makemore-jax command runs it), one per PyTorch thread count (1 and 2) for the eager
variants, one for torch.compile (1 thread: it compiles for tens of seconds per process).
The PyTorch figure in each ratio is the faster thread count. FLOPs per step come from XLA's
cost analysis of the compiled step. With --quick, one process per framework serves all
models (the peak memory is then that of the process so far) and torch.compile is skipped.

    python -m benchmarks training [--quick]
"""

from __future__ import annotations

import contextlib
import sys

from makemore_jax import models

from benchmarks import machine, sides
from benchmarks.harness import Pool, Side, best, compare, rate_cell, ratio, ratio_cell, torch_available

FUSED, PER_STEP = "JAX fused engine (ours)", "JAX per-step jax.jit"
VARIANTS = ("lecture eager", "torch.nn + torch.optim", "torch.compile")
THREADS = (1, 2)
COMPILE_THREADS = (1,)  # torch.compile compiles per process (tens of seconds): the eager loops' usual best


def torch_side(variant: str, threads: int) -> str:
    return f"PyTorch {variant}, {threads} thread{'s' if threads > 1 else ''}"


def trained_models() -> list[str]:
    """Registered models trained by gradient steps (closed-form ones have nothing to time)."""
    return [name for name, m in models.REGISTRY.items() if m.fit is None]


def model_sides(name: str, *, torch: bool, quick: bool) -> dict[str, Side]:
    jax_args = {"model": name}
    out = {FUSED: Side("jax", "benchmarks.sides:jax_training", {**jax_args, "loop": "fused"}, first_n=10),
           PER_STEP: Side("jax", "benchmarks.sides:jax_training", {**jax_args, "loop": "per-step"},
                          first_n=20)}
    if torch and name in _references():
        for variant in VARIANTS:
            if quick and variant == "torch.compile":
                continue
            for threads in COMPILE_THREADS if variant == "torch.compile" else THREADS:
                process = f"torch{'-compile' if variant == 'torch.compile' else ''}-{threads}t"
                out[torch_side(variant, threads)] = Side(process, "benchmarks.sides:torch_training",
                                                         {"model": name, "variant": variant, "threads": threads},
                                                         first_n=5)
    return out


def _references() -> dict[str, str]:
    from benchmarks.references import REFERENCES
    return REFERENCES


def main(quick: bool = False) -> dict:
    """Time every model; print a summary table and one table per model; return the figures.

    Returns:
        {"models": {name: {"sides": {side: figures}, "ratios": {...}, "gflops", "peak_rss_mb",
         "missing": [columns]}}, "peak_gflops": {...}, "repeats", "seconds_per_repeat"}.
    """
    repeats, seconds = (5, 0.15) if quick else (5, 0.5)
    torch = torch_available()
    peak = machine.matmul_peak(torch)
    results = {"models": {}, "peak_gflops": peak, "repeats": repeats, "seconds_per_repeat": seconds,
               "torch": torch, "quick": quick}
    shared = Pool() if quick else None  # --quick: one process per framework for all models (less start-up)
    try:
        for name in trained_models():
            print(f"  training: {name}", file=sys.stderr, flush=True)
            with contextlib.nullcontext(shared) if quick else Pool() as pool:
                figures = compare(pool, model_sides(name, torch=torch, quick=quick), repeats=repeats, seconds=seconds)
                rss = pool.peak_rss_mb()
            results["models"][name] = _summarise(name, figures, rss, peak, torch=torch, quick=quick)
    finally:
        if shared is not None:
            shared.__exit__(None, None, None)
    _print(results)
    return results


def _summarise(name: str, figures: dict, rss: dict, peak: dict, *, torch: bool, quick: bool) -> dict:
    fused = figures.get(FUSED, {})
    ratios = {"per-step jax.jit": ratio(fused, figures.get(PER_STEP))}
    best_threads, missing = {}, []
    for variant in VARIANTS:
        side, fig = best(figures, [torch_side(variant, t) for t in THREADS])
        ratios[variant] = ratio(fused, fig)
        best_threads[variant] = fig and fig.get("threads")
        if fig is None:
            why = ("torch not installed or --no-torch" if not torch else "no reference" if name not in _references()
                   else "skipped in --quick" if quick and variant == "torch.compile" else "failed")
            missing.append(f"{variant} ({why})")
    flops = fused.get("flops_per_step")
    gflops = fused["rate"] * flops / 1e9 if flops and "rate" in fused else None
    return {"sides": figures, "ratios": ratios, "best_threads": best_threads, "flops_per_step": flops,
            "gflops": gflops, "peak_share": gflops / peak["best"] if gflops else None, "peak_rss_mb": rss,
            "missing": missing, "batch_size": fused.get("batch_size")}


def _print(results: dict) -> None:
    peak = results["peak_gflops"]
    torch_peak = f", PyTorch 2 threads {peak['torch']:.0f}" if peak.get("torch") else ""
    print(f"Median steps/s over {results['repeats']} alternating repeats of ~{results['seconds_per_repeat']} s "
          f"(min-max in the per-model tables); each framework in its own process; the PyTorch figure in each "
          f"ratio is its faster thread count (1 or 2). Matmul peak of this machine: XLA {peak['jax']:.0f} "
          f"GFLOP/s{torch_peak}.\n")
    print("| model | params | batch | JAX fused steps/s | vs per-step jax.jit | vs lecture eager | vs torch.nn + optim "
          "| vs torch.compile | GFLOP/s (of peak) | missing columns |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results["models"].items():
        fused = r["sides"].get(FUSED, {})
        gf = f"{r['gflops']:.1f} ({r['peak_share']:.1%})" if r["gflops"] else "—"
        print(f"| {name} | {fused.get('params', 0):,} | {r['batch_size'] or 'full'} | {rate_cell(fused)} | "
              + " | ".join(ratio_cell(r["ratios"][k]) for k in ("per-step jax.jit", *VARIANTS))
              + f" | {gf} | {'; '.join(r['missing']) or 'none'} |")
    for name, r in results["models"].items():
        print(f"\n{name}: one step {r['flops_per_step'] or 0:,.0f} FLOPs (XLA cost analysis)\n")
        print("| loop | steps/s median (min-max) | fused is | set-up s (JAX: with compile) | first call s "
              "(torch.compile: compiles) | process peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|")
        fused = r["sides"].get(FUSED)
        for side, fig in r["sides"].items():
            if "error" in fig:
                print(f"| {side} | failed: {fig['error'][:120]} | | | | |")
                continue
            process = _process_of(side)
            print(f"| {side} | {rate_cell(fig)} | {ratio_cell(ratio(fused, fig))} | {fig['setup_s']:.2f} "
                  f"| {fig['first_call_s']:.2f} | {r['peak_rss_mb'].get(process, 0):,.0f} |")


def _process_of(side: str) -> str:
    if side.startswith("JAX"):
        return "jax"
    threads = side.rsplit(", ", 1)[1].split()[0]
    return f"torch{'-compile' if 'torch.compile' in side else ''}-{threads}t"


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
