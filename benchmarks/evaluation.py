"""Evaluation speed: the exact loss over a whole split (the training split; --quick: dev),
`evaluate.split_loss` against the references' `split_loss` (one no-grad forward pass of the
torch.nn model over the whole split) for every registered model.

Speed does not depend on the parameter values, so both sides evaluate freshly initialised
models of the same sizes. Figures are examples/s, median of alternating repeats, each
framework in its own process (PyTorch at 1 and 2 threads, the faster counts).

    python -m benchmarks evaluation [--quick]
"""

from __future__ import annotations

from benchmarks import machine, sides
from benchmarks.harness import Pool, Side, best, compare, rate_cell, ratio, ratio_cell, threads_label
from benchmarks.references import REFERENCES

JAX = "JAX evaluate.split_loss"
SIZES = {"full": (5, 0.5, "train"), "quick": (3, 0.05, "dev"), "toy": (1, 0.0, "dev")}  # repeats, s, split


def jax_split_loss(model: str, split: str = "train"):
    import jax

    from makemore_jax.evaluate import split_loss
    m, config, X, Y, _ = sides.problem(model, split=split)
    params, state = m.init(jax.random.key(0), config)
    return (lambda n: (n * len(X), [split_loss(m.apply, params, state, X, Y) for _ in range(n)][-1])), \
        {"examples": len(X)}


def torch_split_loss(model: str, threads: int, split: str = "train"):
    import torch
    torch.set_num_threads(threads)
    _, config, X, Y, _ = sides.problem(model, split=split)
    run = sides.reference_module(model).split_loss(X, Y, config)
    return (lambda n: (n * len(X), [run() for _ in range(n)][-1])), {"threads": torch.get_num_threads()}


def main(quick: bool = False, mode: str | None = None, names: list[str] | None = None) -> dict:
    """Time every model's evaluation; print a table; return {"models": {model: {"sides", "ratio", "examples"}}}."""
    repeats, seconds, split = SIZES[mode or ("quick" if quick else "full")]
    torch, results = machine.torch_available(), {}
    with Pool() as pool:  # one process per framework for all models (start-up is most of a quick run)
        for name in names or sides.trained_models():
            side_set = {JAX: Side("jax", "benchmarks.evaluation:jax_split_loss", {"model": name, "split": split},
                                  first_n=1)}
            for t in (1, 2) if torch and name in REFERENCES else ():
                side_set[f"PyTorch, {threads_label(t)}"] = Side(f"torch-{t}t", "benchmarks.evaluation:torch_split_loss",
                                                                {"model": name, "threads": t, "split": split}, first_n=1)
            figures = compare(pool, side_set, repeats=repeats, seconds=seconds)
            torch_name, torch_fig = best(figures, [s for s in side_set if s != JAX])
            results[name] = {"sides": figures, "ratio": ratio(figures[JAX], torch_fig), "torch_side": torch_name,
                             "examples": figures[JAX].get("examples")}
    print(f"Examples/s over the whole {split} split, median of {repeats} alternating repeats (min-max); "
          "PyTorch at its faster thread count.\n")
    print("| model | examples | JAX examples/s | PyTorch examples/s | JAX is |\n|---|---:|---:|---:|---:|")
    for name, r in results.items():
        why = "no reference" if torch else "torch not installed or --no-torch"
        fig = r["sides"].get(r["torch_side"]) if r["torch_side"] else None
        print(f"| {name} | {r['examples'] or 0:,} | {rate_cell(r['sides'][JAX])} | "
              f"{rate_cell(fig) if fig else f'— ({why})'} | {ratio_cell(r['ratio'])} |")
    return {"models": results, "torch": torch}
