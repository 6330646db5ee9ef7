"""The two micrograd training demos: the lecture's 4-example regression and the two moons.

Everything here is plain Python and numpy; nothing touches JAX.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Sequence

import numpy as np

from makemore_jax.micrograd.engine import Value
from makemore_jax.micrograd.nn import MLP

DEMOS = ("lecture", "moons")

# The lecture's dataset: 4 examples of 3 inputs and their desired outputs.
LECTURE_XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
LECTURE_YS = [1.0, -1.0, -1.0, 1.0]

# ----------------------------------------------------------------------------- data and losses


def make_moons(n: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, as scikit-learn's make_moons, in shuffled order.

    Args:
        n: number of points; n // 2 on the upper moon, the rest on the lower one.
        noise: standard deviation of the Gaussian noise added to every coordinate.
        seed: seeds numpy's default_rng.

    Returns:
        X: (n, 2) float64 points. y: (n,) int64 labels, -1 for the upper moon, +1 the lower.
    """
    rng = np.random.default_rng(seed)
    n_upper = n // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n - n_upper)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)  # centre (0, 0)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)  # centre (1, 0.5)
    X = np.concatenate([upper, lower]) + rng.normal(scale=noise, size=(n, 2))
    y = np.concatenate([-np.ones(n_upper, np.int64), np.ones(n - n_upper, np.int64)])
    order = rng.permutation(n)
    return X[order], y[order]


def sse_loss(scores: Sequence[Value], ys: Sequence[float]) -> Value:
    """Summed squared error, the lecture demo's loss."""
    return sum((s - y) ** 2 for s, y in zip(scores, ys, strict=True))


def max_margin_loss(scores: Sequence[Value], ys: Sequence[float], params: Sequence[Value],
                    alpha: float = 1e-4) -> Value:
    """mean(relu(1 - y·score)) + alpha·Σp², the moons demo's SVM loss (y in {-1, +1})."""
    data_loss = sum((1 - y * s).relu() for s, y in zip(scores, ys, strict=True)) * (1.0 / len(ys))
    return data_loss + alpha * sum(p * p for p in params)


# ----------------------------------------------------------------------------- training


def run_demo(name: str, *, steps: int = 100, seed: int = 0, quiet: bool = False) -> dict:
    """Train one demo with full-batch gradient descent and report how it did.

    lecture: MLP(3, [4, 4, 1]), tanh everywhere, uniform(-1, 1) weights and biases, summed
    squared error on LECTURE_XS/YS, lr 0.1. moons: MLP(2, [16, 16, 1]), relu hidden layers
    and a linear output, max-margin loss + 1e-4 L2 on make_moons(100, 0.1, seed), lr decaying
    linearly from 1.0 to 0.1 over the run (1 - 0.9 k / steps, the original's schedule at 100).

    Args:
        name: "lecture" or "moons".
        steps: number of gradient steps, at least 1.
        seed: seeds the data (moons) and the weight initialisation.
        quiet: print nothing.

    Returns:
        {"losses": loss before each step, "final_loss": loss after the last step,
         "predictions": the trained model's outputs for every example (scores for moons),
         "accuracy": fraction of moons with sign(score) == label, None for lecture,
         "seconds": wall time of the training loop,
         "model": the trained MLP, "xs", "ys": the data it was trained on}.
    """
    if name not in DEMOS:
        raise ValueError(f"unknown micrograd demo {name!r}; choose one of: {', '.join(DEMOS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    say = (lambda *a: None) if quiet else print

    model, xs, ys = _setup(name, seed)

    def evaluate() -> tuple[Value, list[float], float | None]:
        scores = [model(x) for x in xs]
        if name == "lecture":
            return sse_loss(scores, ys), [s.data for s in scores], None
        accuracy = sum((s.data > 0) == (t > 0) for s, t in zip(scores, ys)) / len(ys)
        return max_margin_loss(scores, ys, model.parameters()), [s.data for s in scores], accuracy

    losses, start = [], time.perf_counter()
    with _cycle_collector_paused():
        for k in range(steps):
            loss, _, accuracy = evaluate()
            model.zero_grad()
            loss.backward()
            lr = 0.1 if name == "lecture" else 1.0 - 0.9 * k / steps
            for p in model.parameters():
                p.data -= lr * p.grad
            losses.append(loss.data)
            say(f"step {k:4d} loss {loss.data:.6f}" + ("" if accuracy is None else f" accuracy {accuracy:.0%}"))
        loss, predictions, accuracy = evaluate()
    seconds = time.perf_counter() - start

    if accuracy is not None:
        outcome = f"accuracy {accuracy:.1%}"
    else:
        outcome = f"predictions [{', '.join(f'{p:.4f}' for p in predictions)}] for targets {ys}"
    say(f"{name}: {steps} steps in {seconds:.2f}s, final loss {loss.data:.6f}, {outcome}")
    return {"losses": losses, "final_loss": loss.data, "predictions": predictions,
            "accuracy": accuracy, "seconds": seconds, "model": model, "xs": xs, "ys": ys}


def _setup(name: str, seed: int) -> tuple[MLP, list, list]:
    """The demo's network and data."""
    if name == "lecture":
        return MLP(3, [4, 4, 1], nonlin="tanh", linear_out=False, zero_bias=False, seed=seed), LECTURE_XS, LECTURE_YS
    X, y = make_moons(100, noise=0.1, seed=seed)
    return MLP(2, [16, 16, 1], nonlin="relu", linear_out=True, seed=seed), X.tolist(), y.tolist()


@contextlib.contextmanager
def _cycle_collector_paused():
    # Value graphs hold no reference cycles, so reference counting alone frees each step's
    # graph; left on, the cycle collector keeps rescanning the ~70,000 live nodes of a moons
    # step and makes it two to four times slower.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
