"""Evaluation speed: the exact loss over a whole split (the training split; --quick: the
split runs are chosen on, dev or val) by `evaluate.kind_loss` against the references'
`split_loss` (one no-grad forward pass of the torch.nn model), every registered model freshly
initialised (speed does not depend on the values). Examples/s, median of alternating
repeats, PyTorch at its faster thread count (--quick: 1 thread).

    python -m benchmarks evaluation [--quick]
"""

from __future__ import annotations

from makemore_jax import models

from benchmarks import machine, sides
from benchmarks.harness import Side, best, compare, markdown, pool, rate_cell, ratio, ratio_cell, threads_label
from benchmarks.references import REFERENCES

JAX = "JAX evaluate.kind_loss"
SIZES = {"full": (5, 0.5), "quick": (2, 0.05), "toy": (1, 0.0)}  # repeats, seconds per repeat


def main(quick: bool = False, mode: str | None = None, names: list[str] | None = None) -> dict:
    """Time every model's evaluation; print a table; return {"models": {model: {"sides", "ratio", "examples"}}}."""
    mode = mode or ("quick" if quick else "full")
    (repeats, seconds), torch, results = SIZES[mode], machine.torch_available(), {}
    with pool() as workers:  # one process per framework for all models (start-up is most of a quick run)
        for name in names or sides.trained_models():
            args = {"model": name, "split": "train" if mode == "full" else models.get(name).kind.splits[1]}
            side_set = {JAX: Side("jax", "benchmarks.sides:jax_split_loss", args, first_n=1)}
            for t in ((1,) if mode != "full" else (1, 2)) if torch and name in REFERENCES else ():
                side_set[f"PyTorch, {threads_label(t)}"] = Side(f"torch-{t}t", "benchmarks.sides:torch_split_loss",
                                                                {**args, "threads": t}, first_n=1)
            figures = compare(workers, side_set, repeats=repeats, seconds=seconds)
            torch_name, torch_fig = best(figures, [s for s in side_set if s != JAX])
            results[name] = {"sides": figures, "ratio": ratio(figures[JAX], torch_fig), "torch_side": torch_name,
                             "examples": figures[JAX].get("examples"), "split": args["split"]}
    print(f"Examples/s over a whole split, median of {repeats} alternating repeats (min-max); PyTorch at its "
          "faster thread count.\n")
    why = "no reference" if torch else "torch not installed or --no-torch"
    markdown("model | split | examples: | JAX examples/s: | PyTorch examples/s: | JAX is:", [
        [name, r["split"], f"{r['examples'] or 0:,}", rate_cell(r["sides"][JAX]),
         rate_cell(r["sides"][r["torch_side"]]) if r["torch_side"] else f"— ({why})", ratio_cell(r["ratio"])]
        for name, r in results.items()])
    return {"models": results, "torch": torch}
