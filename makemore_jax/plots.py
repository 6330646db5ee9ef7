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
