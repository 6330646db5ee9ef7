"""PyTorch references for the neural bigram (makemore part 1): full-batch gradient descent.

* "lecture eager": the lecture's loop: one-hot inputs times W [vocab, vocab], softmax by exp
  and normalise, the negative log-likelihood plus reg * mean(W**2), `W.data += -50 * W.grad`.
* "torch.nn + torch.optim": an nn.Embedding logits table, F.cross_entropy, optim.SGD(lr=50).
* "torch.compile": the same through `torch.compile` (default mode).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import longs, loop

LR = 50.0


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int | None = None, seed: int = 0) -> dict:
    """{variant: run(n_steps) -> last loss} for the JAX bigram-nn config (vocab_size, reg).

    Args:
        X: int [N, 1] previous characters; Y: int [N] next ones.
        batch_size: rows per step; None (the lecture's and the model's default): all of them.
    """
    xs, ys = longs(np.asarray(X)[:, -1], Y)
    V, reg, common = config.vocab_size, config.reg, {"batch_size": batch_size, "seed": seed, "lr": LR}
    W = torch.randn((V, V), generator=torch.Generator().manual_seed(seed), requires_grad=True)

    def lecture_loss(logits, yb):
        counts = logits.exp()  # counts, equivalent to N
        probs = counts / counts.sum(1, keepdims=True)  # probabilities for next character
        return -probs[torch.arange(len(yb)), yb].log().mean() + reg * (W**2).mean()

    out = {"lecture eager": loop(lambda xb: F.one_hot(xb, num_classes=V).float() @ W, xs, ys, params=[W],
                                 loss=lecture_loss, **common)}
    for variant, compiled in (("torch.nn + torch.optim", False), ("torch.compile", True)):
        table = nn.Embedding(V, V)
        loss = lambda logits, yb, w=table.weight: F.cross_entropy(logits, yb) + reg * w.square().mean()
        out[variant] = loop(torch.compile(table) if compiled else table, xs, ys, loss=loss,
                            optimizer=torch.optim.SGD(table.parameters(), lr=LR), **common)
    return out


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over the whole split in one no-grad pass, one-hot inputs as the lecture."""
    xs, ys = longs(np.asarray(X)[:, -1], Y)
    W = torch.randn((config.vocab_size, config.vocab_size), generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def run() -> float:
        return F.cross_entropy(F.one_hot(xs, num_classes=config.vocab_size).float() @ W, ys).item()
    return run
