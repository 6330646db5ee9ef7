"""Figures (matplotlib, the optional `plots` extra). Each function writes one PNG and returns its path."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .checkpoint import atomic_write  # noqa: E402
from .data import DataError  # noqa: E402


def _save(fig, path: str) -> str:
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def plot_losses(metrics_path: str, path: str) -> str:
    """Training loss per chunk (mean, log10 as in the lectures) from metrics.jsonl."""
    if not os.path.isfile(metrics_path):
        raise DataError(f"{metrics_path}: no metrics log; train with: makemore-jax train --out {os.path.dirname(metrics_path)}")
    steps, losses = [], []
    with open(metrics_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{metrics_path}:{lineno}: not a JSON line") from None
            if "loss" in record:
                steps.append(record["step"])
                losses.append(record["loss"])
    if not steps:
        raise DataError(f"{metrics_path}: no training losses logged")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, np.log10(losses))
    ax.set(xlabel="step", ylabel="log10 training loss (chunk mean)", title="training loss")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, path: str) -> str:
    """Lecture 2's plot: minibatch loss against log10 learning rate."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.log10(lrs), losses, lw=0.8)
    ax.set(xlabel="log10 learning rate", ylabel="minibatch loss", title="learning-rate sweep")
    ax.grid(alpha=0.3)
    return _save(fig, path)


# ----------------------------------------------------------------------------- diagnostics (lecture 3)


def plot_sweep(steps: np.ndarray, curves: np.ndarray, labels: list[str], path: str) -> str:
    """Every run of a sweep: training loss (chunk means, log10) against step, one line per run.

    Args:
        steps: int [K]; curves: float [R, K]; labels: R run labels.
    """
    fig, ax = plt.subplots(figsize=(9, 5))
    for curve, label in zip(curves, labels):
        ax.plot(steps, np.log10(curve), lw=1, label=label)
    ax.set(xlabel="step", ylabel="log10 training loss (chunk mean)", title=f"sweep: {len(labels)} runs")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 + len(labels) // 25)
    ax.grid(alpha=0.3)
    return _save(fig, path)

def _histogram_lines(ax, arrays, labels) -> None:
    for values, label in zip(arrays, labels):
        density, edges = np.histogram(np.asarray(values).ravel(), bins=100, density=True)
        ax.plot(edges[:-1], density, label=label)  # as the lecture: torch.histogram, density=True
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_activation_histograms(acts: list, path: str, *, title: str = "activation distribution") -> str:
    """Lecture 3's histograms of each hidden layer's tanh outputs, one line per layer.

    Args:
        acts: one [B, n_hidden] array of tanh outputs per layer.
    """
    from .diagnostics import SATURATED
    labels = [f"layer {i + 1} (tanh): mean {np.mean(a):+.2f}, std {np.std(a):.2f}, "
              f"saturated {np.mean(np.abs(a) > SATURATED):.1%}" for i, a in enumerate(map(np.asarray, acts))]
    fig, ax = plt.subplots(figsize=(10, 4))
    _histogram_lines(ax, acts, labels)
    ax.set(xlabel="tanh output", ylabel="density", title=title)
    return _save(fig, path)


def plot_gradient_histograms(act_grads: list, path: str, *, title: str = "gradient distribution") -> str:
    """Histograms of d loss / d tanh output per hidden layer (the lecture's `layer.out.grad`).

    Args:
        act_grads: one [B, n_hidden] array per layer.
    """
    labels = [f"layer {i + 1} (tanh): mean {np.mean(g):+.1e}, std {np.std(g):.1e}"
              for i, g in enumerate(map(np.asarray, act_grads))]
    fig, ax = plt.subplots(figsize=(10, 4))
    _histogram_lines(ax, act_grads, labels)
    ax.set(xlabel="d loss / d tanh output", ylabel="density", title=title)
    return _save(fig, path)


def plot_update_ratios(steps: np.ndarray, ratios: dict, path: str, *, guide: float = -3.0) -> str:
    """log10 update:data ratio per weight over training, with the lecture's guide line at -3.

    Args:
        steps: int [K], the steps the ratios were taken at.
        ratios: {weight name: [K] log10 std(update) / std(weight)}.
    """
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, values in ratios.items():
        ax.plot(steps, values, lw=0.8, label=name)
    ax.axhline(guide, color="k", ls="--", lw=1, label=f"guide ({guide:g})")
    ax.set(xlabel="step", ylabel="log10 update:data", title="update:data ratio")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_saturation_maps(acts: list, path: str, *, threshold: float = 0.99) -> str:
    """Lecture 3's dead-neuron map: |tanh| > threshold (white) per example (row) and unit (column).

    A column white from top to bottom is a unit saturated for every example: no gradient
    reaches its weights from this batch.

    Args:
        acts: one [B, n_hidden] array of tanh outputs per layer.
    """
    acts = [np.abs(np.asarray(a)) > threshold for a in acts]
    fig, axes = plt.subplots(len(acts), 1, figsize=(10, 1.2 + 1.6 * len(acts)), squeeze=False)
    for i, (ax, white) in enumerate(zip(axes[:, 0], acts)):
        ax.imshow(white, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_title(f"layer {i + 1}: {white.mean():.1%} of |tanh| > {threshold}, "
                     f"{int(white.all(axis=0).sum())} units saturated on every example", fontsize=9)
        ax.set_ylabel("example")
    axes[-1, 0].set_xlabel("unit")
    fig.tight_layout()
    return _save(fig, path)


def plot_diagnostics(acts: list, act_grads: list, updates: dict | None, out_dir: str) -> list[str]:
    """All of lecture 3's figures into out_dir: activations, gradients, saturation, update_ratios.png.

    Args:
        acts, act_grads: per hidden layer [B, n_hidden] (a diagnostics.Snapshot's).
        updates: fit's summary["metrics"] with diagnostics.update_ratios, or None (no curve).
    Returns:
        the paths written.
    """
    from .diagnostics import UPDATE_GUIDE, UPDATE_PREFIX
    paths = [plot_activation_histograms(acts, os.path.join(out_dir, "activations.png")),
             plot_gradient_histograms(act_grads, os.path.join(out_dir, "gradients.png")),
             plot_saturation_maps(acts, os.path.join(out_dir, "saturation.png"))]
    if updates is not None and len(updates["step"]):
        ratios = {k[len(UPDATE_PREFIX):]: v for k, v in updates.items() if k.startswith(UPDATE_PREFIX)}
        paths.append(plot_update_ratios(updates["step"], ratios, os.path.join(out_dir, "update_ratios.png"),
                                        guide=UPDATE_GUIDE))
    return paths
