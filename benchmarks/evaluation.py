"""Evaluation speed: the exact loss over a whole split (the training split, the largest),
`evaluate.split_loss` against the lectures' `split_loss` (one no-grad forward pass of the
torch.nn model over the whole split) for every registered model with a PyTorch reference.

Speed does not depend on the parameter values, so both sides evaluate freshly initialised
models of the same sizes. Figures are examples/s, median of alternating repeats, each
framework in its own process (PyTorch at 1 and 2 threads, the faster counts).

    python -m benchmarks evaluation [--quick]
"""

from __future__ import annotations

import sys

from benchmarks import sides
from benchmarks.harness import Pool, Side, best, compare, rate_cell, ratio, ratio_cell, torch_available
from benchmarks.training import trained_models

JAX = "JAX evaluate.split_loss"


def jax_split_loss(model: str, split: str = "train"):
    import jax

    from makemore_jax.evaluate import split_loss
    m, config, X, Y, _ = sides.problem(model, split=split)
    params, state = jax.jit(m.init, static_argnums=1)(jax.random.key(0), config)
    return (lambda n: (n * len(X), [split_loss(m.apply, params, state, X, Y) for _ in range(n)][-1])), {"examples": len(X)}


def torch_split_loss(model: str, threads: int, split: str = "train"):
    import torch
    torch.set_num_threads(threads)
    _, config, X, Y, _ = sides.problem(model, split=split)
    run = sides.reference_module(model).split_loss(X, Y, config)
    return (lambda n: (n * len(X), [run() for _ in range(n)][-1])), {"threads": torch.get_num_threads(), "examples": len(X)}


def main(quick: bool = False) -> dict:
    """Time every model's evaluation; print a table; return {model: {"sides", "ratio", "examples"}}."""
    repeats, seconds = (5, 0.15) if quick else (5, 0.5)
    torch = torch_available()
    results = {}
    with Pool() as pool:  # one process per framework for all models (start-up is most of a quick run)
        for name in trained_models():
            results[name] = _time_model(pool, name, torch, repeats, seconds)
    _print(results, torch, repeats)
    return {"models": results, "torch": torch}


def _time_model(pool: Pool, name: str, torch: bool, repeats: int, seconds: float) -> dict:
    side_set = {JAX: Side("jax", "benchmarks.evaluation:jax_split_loss", {"model": name}, first_n=1)}
    torch_names = []
    if torch and name in _references():  # the reference's split_loss, in the PyTorch workers
        for t in (1, 2):
            torch_names.append(f"PyTorch, {t} thread{'s' * (t > 1)}")
            side_set[torch_names[-1]] = Side(f"torch-{t}t", "benchmarks.evaluation:torch_split_loss",
                                             {"model": name, "threads": t}, first_n=1)
    figures = compare(pool, side_set, repeats=repeats, seconds=seconds)
    torch_name, torch_fig = best(figures, torch_names)
    return {"sides": figures, "ratio": ratio(figures[JAX], torch_fig), "torch_side": torch_name,
            "examples": figures[JAX].get("examples")}


def _print(results: dict, torch: bool, repeats: int) -> None:
    print(f"Examples/s over the whole training split, median of {repeats} alternating repeats (min-max); "
          "PyTorch at its faster thread count.\n")
    print("| model | examples | JAX examples/s | PyTorch examples/s | JAX is |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        fig = r["sides"].get(r["torch_side"]) if r["torch_side"] else None
        missing = "—" if torch and name in _references() else "— (no PyTorch: " + \
            ("no reference)" if torch else "torch not installed or --no-torch)")
        print(f"| {name} | {r['examples'] or 0:,} | {rate_cell(r['sides'][JAX])} | "
              f"{rate_cell(fig) if fig else missing} | {ratio_cell(r['ratio'])} |")


def _references() -> dict[str, str]:
    from benchmarks.references import REFERENCES
    return REFERENCES


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
