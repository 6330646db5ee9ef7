"""Pictures of models for the lecture notebooks (lectures 1-2); plots.py re-exports them.

Each function returns a matplotlib Figure (no pyplot: no backend to pick, no global figures).
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib  # noqa: F401  (first: a missing matplotlib raises ImportError(name="matplotlib"))
import numpy as np
from matplotlib.figure import Figure

from .data import Vocab


def bigram_figure(matrix: np.ndarray, vocab: Vocab, *, title: str, fmt: str = "{:.0f}") -> Figure:
    """Lecture 1's heatmap: cell (a, b) shows the pair "ab" and matrix[a, b] (counts or p(b | a)).

    Args:
        matrix: [vocab, vocab], rows the first character, columns the next one.
        fmt: how each cell's number is written ("{:.0f}" for counts, "{:.2f}" for probabilities).
    """
    n = vocab.size
    matrix = np.asarray(matrix)
    if matrix.shape != (n, n):
        raise ValueError(f"matrix must be [{n}, {n}] for this vocabulary, got {list(matrix.shape)}")
    fig = Figure(figsize=(16, 16))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    dark = matrix > 0.4 * matrix.max()  # white text on the dark cells, as many as needed
    for a in range(n):
        for b in range(n):
            color = "white" if dark[a, b] else "dimgray"
            ax.text(b, a, vocab.chars[a] + vocab.chars[b], ha="center", va="bottom", color=color, fontsize=10)
            ax.text(b, a, fmt.format(matrix[a, b]), ha="center", va="top", color=color, fontsize=8)
    ax.set_xticks(range(n), labels=vocab.chars)
    ax.set_yticks(range(n), labels=vocab.chars)
    ax.tick_params(top=True, labeltop=True)
    ax.set(xlabel="next character", ylabel="first character", title=title)
    return fig


def embedding_figure(C: np.ndarray, vocab: Vocab, *, title: str = "character embeddings") -> Figure:
    """Lecture 2's scatter of the embedding table, one labelled dot per character.

    Args:
        C: [vocab, n_embd]; with n_embd > 2 the points are the first two principal components.
    """
    C = np.asarray(C, np.float64)
    axes = ("dimension 0", "dimension 1")
    if C.shape[1] > 2:
        centred = C - C.mean(axis=0)
        C = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        axes = ("principal component 1", "principal component 2")
    fig = Figure(figsize=(7, 7))
    ax = fig.subplots()
    ax.scatter(C[:, 0], C[:, 1], s=300, color="tab:blue")
    for i, ch in enumerate(vocab.chars):
        ax.text(C[i, 0], C[i, 1], ch, ha="center", va="center", color="white", fontsize=11, fontweight="bold")
    ax.set(xlabel=axes[0], ylabel=axes[1], title=title)
    ax.grid(alpha=0.3)
    return fig


def agreement_figure(expected: np.ndarray, actual: np.ndarray, *, xlabel: str, ylabel: str, title: str) -> Figure:
    """Scatter of two arrays of the same numbers computed two ways, with the line y = x."""
    x, y = np.ravel(expected), np.ravel(actual)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="y = x")
    ax.scatter(x, y, s=12, alpha=0.7)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def decision_boundary_figure(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, *,
                             title: str = "decision boundary") -> Figure:
    """A 2-D classifier's regions (score > 0 or not) with the labelled points on top (micrograd's moons).

    Args:
        predict: [K, 2] points -> [K] scores.
        X: [N, 2] points; y: [N] labels (-1 or +1).
    """
    X, y = np.asarray(X), np.asarray(y)
    (x0, y0), (x1, y1) = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    scores = np.asarray(predict(np.stack([gx.ravel(), gy.ravel()], axis=1))).reshape(gx.shape)
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.contourf(gx, gy, scores > 0, levels=[-0.5, 0.5, 1.5], colors=["#f4c7c3", "#c6dbef"], alpha=0.8)
    for label, color in ((-1, "tab:red"), (1, "tab:blue")):
        ax.scatter(*X[y == label].T, s=25, color=color, edgecolor="k", lw=0.5, label=f"label {label:+d}")
    ax.set(xlabel="x0", ylabel="x1", title=title)
    ax.legend(fontsize=8)
    return fig
