"""Evaluation speed: examples/s of the exact loss over a whole split (--quick: dev or val, the first model
of each data kind) by `evaluate.kind_loss` against the references' `split_loss`, fresh parameters.

    python -m benchmarks evaluation [--quick]
"""

from makemore_jax import models

from benchmarks import machine, sides
from benchmarks.harness import Side, best, compare, markdown, mode_of, pool, rate_cell, ratio, ratio_cell, \
    thread_sides
from benchmarks.references import REFERENCES

JAX = "JAX evaluate.kind_loss"
SIZES = {"full": (5, 0.5), "quick": (2, 0.05), "toy": (1, 0.0)}  # repeats, seconds per repeat


def main(quick: bool = False, mode: str | None = None, names: list[str] | None = None) -> dict:
    """Time every model's evaluation; print a table; return {"models": {model: {"sides", "ratio", "examples"}}}."""
    mode = mode_of(quick, mode)
    (repeats, seconds), torch, results = SIZES[mode], machine.torch_available(), {}
    one = None if mode == "full" else 1  # one pass per repeat, no calibration
    with pool() as workers:  # one process per framework for all models (start-up is most of a quick run)
        for name in names or sides.trained_models(mode):
            args = {"model": name, "split": "train" if mode == "full" else models.get(name).kind.splits[1]}
            side_set = {JAX: Side("jax", "benchmarks.sides:jax_split_loss", args, first_n=1, n=one)}
            side_set.update(thread_sides("PyTorch, {threads}", "benchmarks.sides:torch_split_loss", args, (
                (1,) if mode != "full" else (1, 2)) if torch and name in REFERENCES else (), first_n=1, n=one))
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
