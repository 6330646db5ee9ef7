"""Figures (matplotlib, the optional `plots` extra).

Each `*_figure` function returns a matplotlib Figure: a notebook shows it as a cell's value
(after `%matplotlib inline`). Each `plot_*` function writes one such figure to a PNG and
returns its path (the CLI's). No pyplot here: no backend to pick, no global figures to close.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence

import matplotlib  # noqa: F401  (first: a missing matplotlib raises ImportError(name="matplotlib"))
import numpy as np
from matplotlib.figure import Figure

from .checkpoint import atomic_write
from .data import DataError
from .model_plots import agreement_figure, bigram_figure, decision_boundary_figure, embedding_figure  # noqa: F401


def save(fig: Figure, path: str) -> str:
    """Write fig to path as a PNG, atomically; returns path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------- training curves


def loss_curve_figure(steps: Sequence[float], losses: Sequence[float], *, title: str = "training loss",
                      ylabel: str = "loss", log10: bool = False) -> Figure:
    """Loss against step; log10 of the loss as in the lectures when `log10`."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(steps, np.log10(losses) if log10 else losses)
    ax.set(xlabel="step", ylabel=f"log10 {ylabel}" if log10 else ylabel, title=title)
    ax.grid(alpha=0.3)
    return fig


def read_loss_log(metrics_path: str) -> tuple[list[int], list[float]]:
    """(steps, chunk-mean training losses) from a run's metrics.jsonl."""
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
    return steps, losses


def training_curve_figure(metrics_path: str, *, title: str = "training loss") -> Figure:
    """A run's training loss per chunk (mean, log10 as in the lectures) from its metrics.jsonl."""
    steps, losses = read_loss_log(metrics_path)
    return loss_curve_figure(steps, losses, title=title, ylabel="training loss (chunk mean)", log10=True)


def plot_losses(metrics_path: str, path: str) -> str:
    return save(training_curve_figure(metrics_path), path)


def lr_find_figure(lrs: np.ndarray, losses: np.ndarray) -> Figure:
    """Lecture 2's plot: minibatch loss against log10 learning rate."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(np.log10(lrs), losses, lw=0.8)
    ax.set(xlabel="log10 learning rate", ylabel="minibatch loss", title="learning-rate sweep")
    ax.grid(alpha=0.3)
    return fig


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, path: str) -> str:
    return save(lr_find_figure(lrs, losses), path)


def losses_bar_figure(losses: Mapping[str, Mapping[str, float]], *, title: str = "loss by model") -> Figure:
    """Grouped bars: one group per model, one bar per split, the value written on each bar.

    Args:
        losses: {model name: {split name: loss in nats}}, e.g. {"mlp": {"train": 2.1, "dev": 2.2}}.
    """
    names = list(losses)
    splits = list(dict.fromkeys(s for per_model in losses.values() for s in per_model))
    width = 0.8 / max(len(splits), 1)
    fig = Figure(figsize=(max(6.0, 1.3 * len(names) * max(len(splits), 1) * 0.6 + 2), 4.5))
    ax = fig.subplots()
    for i, split in enumerate(splits):
        xs = np.arange(len(names)) + (i - (len(splits) - 1) / 2) * width
        values = [losses[n].get(split, np.nan) for n in names]
        bars = ax.bar(xs, values, width, label=split)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    finite = [v for per_model in losses.values() for v in per_model.values() if np.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, max(finite) * 1.04)  # the differences are small: start near the lowest
    ax.set_xticks(range(len(names)), labels=names)
    ax.set(xlabel="model", ylabel="loss (nats per character)", title=title)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    return fig


# ----------------------------------------------------------------------------- diagnostics (lecture 3)


def plot_sweep(steps: np.ndarray, curves: np.ndarray, labels: list[str], path: str) -> str:
    """Every run of a sweep: training loss (chunk means, log10) against step, one line per run.

    Args:
        steps: int [K]; curves: float [R, K]; labels: R run labels.
    """
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for curve, label in zip(curves, labels):
        ax.plot(steps, np.log10(curve), lw=1, label=label)
    ax.set(xlabel="step", ylabel="log10 training loss (chunk mean)", title=f"sweep: {len(labels)} runs")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 + len(labels) // 25)
    ax.grid(alpha=0.3)
    return save(fig, path)


def _histogram_lines(ax, arrays, labels) -> None:
    for values, label in zip(arrays, labels):
        density, edges = np.histogram(np.asarray(values).ravel(), bins=100, density=True)
        ax.plot(edges[:-1], density, label=label)  # as the lecture: torch.histogram, density=True
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def activation_histograms_figure(acts: list, *, title: str = "activation distribution") -> Figure:
    """Lecture 3's histograms of each hidden layer's tanh outputs, one line per layer.

    Args:
        acts: one [B, n_hidden] array of tanh outputs per layer.
    """
    from .diagnostics import SATURATED
    labels = [f"layer {i + 1} (tanh): mean {np.mean(a):+.2f}, std {np.std(a):.2f}, "
              f"saturated {np.mean(np.abs(a) > SATURATED):.1%}" for i, a in enumerate(map(np.asarray, acts))]
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    _histogram_lines(ax, acts, labels)
    ax.set(xlabel="tanh output", ylabel="density", title=title)
    return fig


def gradient_histograms_figure(act_grads: list, *, title: str = "gradient distribution") -> Figure:
    """Histograms of d loss / d tanh output per hidden layer (the lecture's `layer.out.grad`).

    Args:
        act_grads: one [B, n_hidden] array per layer.
    """
    labels = [f"layer {i + 1} (tanh): mean {np.mean(g):+.1e}, std {np.std(g):.1e}"
              for i, g in enumerate(map(np.asarray, act_grads))]
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    _histogram_lines(ax, act_grads, labels)
    ax.set(xlabel="d loss / d tanh output", ylabel="density", title=title)
    return fig


def update_ratios_figure(steps: np.ndarray, ratios: dict, *, guide: float = -3.0) -> Figure:
    """log10 update:data ratio per weight over training, with the lecture's guide line at -3.

    Args:
        steps: int [K], the steps the ratios were taken at.
        ratios: {weight name: [K] log10 std(update) / std(weight)}.
    """
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    for name, values in ratios.items():
        ax.plot(steps, values, lw=0.8, label=name)
    ax.axhline(guide, color="k", ls="--", lw=1, label=f"guide ({guide:g})")
    ax.set(xlabel="step", ylabel="log10 update:data", title="update:data ratio")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    return fig


def saturation_maps_figure(acts: list, *, threshold: float = 0.99) -> Figure:
    """Lecture 3's dead-neuron map: |tanh| > threshold (white) per example (row) and unit (column).

    A column white from top to bottom is a unit saturated for every example: no gradient
    reaches its weights from this batch.

    Args:
        acts: one [B, n_hidden] array of tanh outputs per layer.
    """
    acts = [np.abs(np.asarray(a)) > threshold for a in acts]
    fig = Figure(figsize=(10, 1.2 + 1.6 * len(acts)), layout="tight")
    axes = fig.subplots(len(acts), 1, squeeze=False)
    for i, (ax, white) in enumerate(zip(axes[:, 0], acts)):
        ax.imshow(white, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_title(f"layer {i + 1}: {white.mean():.1%} of |tanh| > {threshold}, "
                     f"{int(white.all(axis=0).sum())} units saturated on every example", fontsize=9)
        ax.set_ylabel("example")
    axes[-1, 0].set_xlabel("unit")
    return fig


def update_ratio_curves(updates: dict) -> dict[str, np.ndarray]:
    """{weight name: [K] log10 update:data} from fit's summary["metrics"] with diagnostics.update_ratios."""
    from .diagnostics import UPDATE_PREFIX
    return {k[len(UPDATE_PREFIX):]: v for k, v in updates.items() if k.startswith(UPDATE_PREFIX)}


def plot_diagnostics(acts: list, act_grads: list, updates: dict | None, out_dir: str) -> list[str]:
    """All of lecture 3's figures into out_dir: activations, gradients, saturation, update_ratios.png.

    Args:
        acts, act_grads: per hidden layer [B, n_hidden] (a diagnostics.Snapshot's).
        updates: fit's summary["metrics"] with diagnostics.update_ratios, or None (no curve).
    Returns:
        the paths written.
    """
    from .diagnostics import UPDATE_GUIDE
    paths = [save(activation_histograms_figure(acts), os.path.join(out_dir, "activations.png")),
             save(gradient_histograms_figure(act_grads), os.path.join(out_dir, "gradients.png")),
             save(saturation_maps_figure(acts), os.path.join(out_dir, "saturation.png"))]
    if updates is not None and len(updates["step"]):
        paths.append(save(update_ratios_figure(updates["step"], update_ratio_curves(updates), guide=UPDATE_GUIDE),
                          os.path.join(out_dir, "update_ratios.png")))
    return paths
