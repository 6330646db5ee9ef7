"""The speed of every registered model (closed-form fits excepted), JAX against the PyTorch references,
PyTorch at its faster thread count. --quick: the first model of each data kind, PyTorch at 1 thread.

`main`, training steps/s: the fused engine against a per-step `jax.jit` loop, the lectures' code,
torch.nn + torch.optim and torch.compile (not in --quick), GFLOP/s against the matmul peak, each process's
peak memory (one worker per process for every model: the peak so far). `evaluation`, examples/s of the exact
loss over a whole split (--quick: dev or val) by `evaluate.kind_loss` against the references' `split_loss`,
fresh parameters.

    python -m benchmarks training [--quick]
    python -m benchmarks evaluation [--quick]
"""

import sys

from makemore_jax import models

from benchmarks import machine, sides
from benchmarks.harness import Side, best, compare, markdown, pool, rate_cell, ratio, ratio_cell, \
    table, thread_sides, torch_threads
from benchmarks.references import REFERENCES

FUSED, PER_STEP, EVAL = "JAX fused engine (ours)", "JAX per-step jax.jit", "JAX evaluate.kind_loss"
THREADS = {"lecture eager": (1, 2), "torch.nn + torch.optim": (1, 2), "torch.compile": (1,)}
SIZES = {"full": (5, 0.5), "quick": (2, 0.05), "toy": (1, 0.0)}  # repeats, seconds per repeat


def torch_side(variant: str, threads: int) -> str:
    return f"PyTorch {variant}, {threads} thread{'s' * (threads > 1)}"


def model_sides(name: str, *, torch: bool, quick: bool, chunk: int | None = None) -> dict[str, Side]:
    jax = {"model": name, "chunk": chunk}
    out = {FUSED: Side("jax", "benchmarks.sides:jax_training", {**jax, "loop": "fused"}, first_n=10),
           PER_STEP: Side("jax", "benchmarks.sides:jax_training", {**jax, "loop": "per-step"}, first_n=20)}
    for variant, threads in THREADS.items() if torch and name in REFERENCES else ():
        compiled = variant == "torch.compile"
        out.update(thread_sides(f"PyTorch {variant}, {{threads}}", "benchmarks.sides:torch_training",
                                {"model": name, "variant": variant}, () if quick and compiled else threads[:1] if quick
                                else threads, process="torch-compile" if compiled else "torch"))
    return out


def main(mode: str = "full", names: list[str] | None = None) -> dict:
    """Time the models; print a summary table and one table per model; return {"models": {name: {"sides",
    "ratios", "gflops", "peak_share", "peak_rss_mb", "missing"}}, "peak_gflops", "repeats", ...}."""
    (repeats, seconds), small, torch = SIZES[mode], mode != "full", machine.torch_available()
    peak = sides.matmul_peak(torch, mode)
    results = {"models": {}, "peak_gflops": peak, "repeats": repeats, "seconds_per_repeat": seconds, "torch": torch}
    with pool() as workers:  # one per process name: its peak memory is the largest of the models so far
        for name in names or sides.trained_models(mode):
            print(f"  training: {name}", file=sys.stderr, flush=True)
            side_set = model_sides(name, torch=torch, quick=small, chunk=10 if mode == "toy" else None)
            figures = compare(workers, side_set, repeats=repeats, seconds=seconds)
            results["models"][name] = {**_summarise(name, figures, peak, torch=torch, quick=small),
                                       "peak_rss_mb": workers.peak_rss_mb(),
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
    torch_peak = f", PyTorch at {peak['torch_threads']} thread(s) {peak['torch']:.0f}" if peak.get("torch") else ""
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


def evaluation(mode: str = "full", names: list[str] | None = None) -> dict:
    """Time every model's evaluation; print a table; return {"models": {model: {"sides", "ratio", "examples"}}}."""
    (repeats, seconds), torch, results = SIZES[mode], machine.torch_available(), {}
    one = None if mode == "full" else 1  # one pass per repeat, no calibration
    with pool() as workers:  # one process per framework for all models (start-up is most of a quick run)
        for name in names or sides.trained_models(mode):
            args = {"model": name, "split": "train" if mode == "full" else models.get(name).kind.splits[1]}
            side_set = {EVAL: Side("jax", "benchmarks.sides:jax_split_loss", args, first_n=1, n=one),
                        **thread_sides("PyTorch, {threads}", "benchmarks.sides:torch_split_loss", args, torch_threads(
                            mode) if torch and name in REFERENCES else (), first_n=1, n=one)}
            figures = compare(workers, side_set, repeats=repeats, seconds=seconds)
            torch_name, torch_fig = best(figures, [s for s in side_set if s != EVAL])
            results[name] = {"sides": figures, "ratio": ratio(figures[EVAL], torch_fig), "torch_side": torch_name,
                             "examples": figures[EVAL].get("examples"), "split": args["split"]}
    print(f"Examples/s over a whole split, median of {repeats} alternating repeats (min-max); PyTorch at its "
          "faster thread count.\n")
    why = "no reference" if torch else "torch not installed or --no-torch"
    markdown("model | split | examples: | JAX examples/s: | PyTorch examples/s: | JAX is:", [
        [name, r["split"], f"{r['examples'] or 0:,}", rate_cell(r["sides"][EVAL]),
         rate_cell(r["sides"][r["torch_side"]]) if r["torch_side"] else f"— ({why})", ratio_cell(r["ratio"])]
        for name, r in results.items()])
    return {"models": results, "torch": torch}
