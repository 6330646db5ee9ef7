"""PyTorch references for the neural bigram (makemore part 1): full-batch gradient descent.

* "lecture eager": the lecture's loop as written: one-hot inputs times W [vocab, vocab],
  softmax by exp and normalise, the negative log-likelihood plus reg * mean(W**2),
  `W.grad = None`, `loss.backward()`, `W.data += -50 * W.grad`.
* "torch.nn + torch.optim": an nn.Embedding logits table, F.cross_entropy, optim.SGD(lr=50).
* "torch.compile": the same through `torch.compile` (default mode).

torch comes from the optional `bench` extra: `pip install torch==2.13.0` (the CPU build).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LR = 50.0


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int | None = None, seed: int = 0) -> dict:
    """{variant: run(n_steps) -> last loss} for the JAX bigram-nn config (vocab_size, reg).

    Args:
        X: int [N, 1] previous characters; Y: int [N] next ones.
        batch_size: rows per step; None (the lecture's and the model's default): all of them.
    """
    xs = torch.as_tensor(np.asarray(X)[:, -1], dtype=torch.long)
    ys = torch.as_tensor(np.asarray(Y), dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    V, reg = config.vocab_size, config.reg

    def rows():
        if batch_size is None:
            return xs, ys
        ix = torch.randint(0, len(xs), (batch_size,), generator=g)
        return xs[ix], ys[ix]

    W = torch.randn((V, V), generator=g, requires_grad=True)

    def lecture(n: int) -> float:
        for _ in range(n):
            xb, yb = rows()
            xenc = F.one_hot(xb, num_classes=V).float()  # forward pass
            logits = xenc @ W  # predict log-counts
            counts = logits.exp()  # counts, equivalent to N
            probs = counts / counts.sum(1, keepdims=True)  # probabilities for next character
            loss = -probs[torch.arange(len(xb)), yb].log().mean() + reg * (W**2).mean()
            W.grad = None  # backward pass
            loss.backward()
            W.data += -LR * W.grad  # update
        return loss.item()

    def optim_loop(compiled: bool):
        table = nn.Embedding(V, V)
        optimizer = torch.optim.SGD(table.parameters(), lr=LR)
        forward = torch.compile(table) if compiled else table

        def run(n: int) -> float:
            for _ in range(n):
                xb, yb = rows()
                loss = F.cross_entropy(forward(xb), yb) + reg * table.weight.square().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return loss.item()
        return run

    return {"lecture eager": lecture, "torch.nn + torch.optim": optim_loop(False), "torch.compile": optim_loop(True)}


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over the whole split in one no-grad pass, one-hot inputs as the lecture."""
    xs = torch.as_tensor(np.asarray(X)[:, -1], dtype=torch.long)
    ys = torch.as_tensor(np.asarray(Y), dtype=torch.long)
    W = torch.randn((config.vocab_size, config.vocab_size), generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def run() -> float:
        logits = F.one_hot(xs, num_classes=config.vocab_size).float() @ W
        return F.cross_entropy(logits, ys).item()
    return run
