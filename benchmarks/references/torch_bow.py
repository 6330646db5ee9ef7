"""PyTorch reference for bow: makemore.py's bag-of-words model, eagerly and through torch.compile.

Token plus position embeddings, a causal bag of words (zero scores masked to -inf above the
diagonal and softmaxed: each position averages itself and those before it) added back, a
residual tanh MLP (n_embd -> n_embd2 -> n_embd) and a linear head; the models' AdamW recipe
(lr 1e-2, weight decay 0.01; warmup and cosine left out: they change no step's cost).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

from . import copy_params, longs, loop, split_loss_of


class MakemoreBoW(tnn.Module):
    """makemore.py's BoW: embeddings, CausalBoW + residual, MLP + residual, head."""

    def __init__(self, config):
        super().__init__()
        self.wte = tnn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = tnn.Embedding(config.block_size, config.n_embd)
        self.c_fc = tnn.Linear(config.n_embd, config.n_embd2)
        self.c_proj = tnn.Linear(config.n_embd2, config.n_embd)
        self.lm_head = tnn.Linear(config.n_embd, config.vocab_size)
        self.register_buffer("mask", torch.tril(torch.ones(config.block_size, config.block_size)))

    def forward(self, idx):
        b, t = idx.size()
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))[None]
        scores = torch.zeros((b, t, t), device=idx.device).masked_fill(self.mask[:t, :t] == 0, float("-inf"))
        x = x + F.softmax(scores, dim=-1) @ x  # the causal bag of words
        x = x + self.c_proj(torch.tanh(self.c_fc(x)))
        return self.lm_head(x)


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32, seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last loss}: n AdamW steps; X, Y int [N, block_size] sequences, targets (-1 ignored)."""
    X, Y = longs(X, Y)
    out = {}
    for variant, compiled in (("lecture eager", False), ("torch.compile", True)):
        torch.manual_seed(seed)
        model = MakemoreBoW(config)
        out[variant] = loop(torch.compile(model) if compiled else model, X, Y, batch_size=batch_size, seed=seed,
                            lr=1e-2, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01))
    return out


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over every target of the split (-1 ignored) in one call."""
    torch.manual_seed(0)
    return split_loss_of(MakemoreBoW(config), X, Y)


def load_jax_params(model: MakemoreBoW, params: dict) -> MakemoreBoW:
    """Copy a JAX bow's parameters (makemore_jax.models.bow) into `model`."""
    copy_params([(model.wte.weight, params["wte"]), (model.wpe.weight, params["wpe"]), (model.c_fc, params["mlp"]["c_fc"]),
                 (model.c_proj, params["mlp"]["c_proj"]), (model.lm_head, params["lm_head"])])
    return model.eval()
