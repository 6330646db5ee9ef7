"""PyTorch reference for bow: makemore.py's bag-of-words model, trained two ways.

The model as makemore.py defines it: token plus position embeddings, a causal bag of words
(a [T, T] score matrix of zeros, masked to -inf above the diagonal and softmaxed: each
position averages itself and the positions before it), added back to its input, then a
residual tanh MLP (c_fc n_embd -> n_embd2, c_proj back) and a linear head.

Training loops (`loops`, the benchmark interface), the models' recipe (AdamW lr 1e-2,
weight decay 0.01; warmup and cosine left out: they change no step's cost), batch 32 drawn
with torch.randint:
  - "lecture eager": the module above, eagerly.
  - "torch.compile": the same module through torch.compile (default mode).
`split_loss` is the evaluation benchmark's PyTorch column; `load_jax_params` copies a JAX
bow's parameters in, for the logits test.

torch is not a project dependency: it comes from the optional ``bench`` extra.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

from .torch_transformer import as_long_tensors, sequence_loop, sequence_loss  # makemore's loop, shared


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
    """{variant: run(n) -> last minibatch loss}: n AdamW steps each call.

    Args:
        X, Y: int [N, block_size] sequences and targets (-1 ignored), as build_sequence_dataset.
        config: the JAX bow.Config (vocab_size, block_size, n_embd, n_embd2).
    """
    Xt, Yt = as_long_tensors(X, Y)

    def make(compiled: bool) -> Callable[[int], float]:
        torch.manual_seed(seed)
        return sequence_loop(MakemoreBoW(config), Xt, Yt, batch_size=batch_size, seed=seed, compiled=compiled,
                             lr=1e-2, weight_decay=0.01)

    return {"lecture eager": make(False), "torch.compile": make(True)}


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over every target of the split (-1 ignored) in one call."""
    torch.manual_seed(0)
    model = MakemoreBoW(config).eval()
    X, Y = as_long_tensors(X, Y)
    return lambda: sequence_loss(model, X, Y, chunk=len(X))


def load_jax_params(model: MakemoreBoW, params: dict) -> MakemoreBoW:
    """Copy a JAX bow's parameters (makemore_jax.models.bow) into `model`."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
    with torch.no_grad():
        model.wte.weight.copy_(t(params["wte"]))
        model.wpe.weight.copy_(t(params["wpe"]))
        for name, linear in (("c_fc", model.c_fc), ("c_proj", model.c_proj)):
            linear.weight.copy_(t(params["mlp"][name]["W"]).T)
            linear.bias.copy_(t(params["mlp"][name]["b"]))
        model.lm_head.weight.copy_(t(params["lm_head"]["W"]).T)
        model.lm_head.bias.copy_(t(params["lm_head"]["b"]))
    return model.eval()
