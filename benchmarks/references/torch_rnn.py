"""PyTorch references for rnn and gru: makemore.py's recurrent models, trained three ways.

Training loops (`loops`, the benchmark interface), each with the models' recipe (AdamW
lr 1e-2, weight decay 0.01, betas 0.9/0.999; the schedule's warmup and cosine are left
out: they change no step's cost), batch 32 drawn with torch.randint:
  - "lecture eager": makemore.py's RNN as written there: a learned start state, the cell
    (RNNCell, or GRUCell with its reset gate applied before the candidate's matmul) called
    once per time step from a Python loop over the [B, T] sequences, nn.Linear head.
  - "torch.nn + torch.optim": what a PyTorch user would write: nn.RNN(tanh) / nn.GRU over the
    whole sequence at once (one fused library kernel per layer). nn.RNN computes makemore's
    recurrence exactly; nn.GRU applies its reset gate after the hidden state's matmul
    (r * (W_hn h + b_hn)), a variant of the same cost.
  - "torch.compile": makemore's eager model through torch.compile (default mode).
`split_loss` is the evaluation benchmark's PyTorch column.

torch is not a project dependency: it comes from the optional ``bench`` extra (install the CPU
build: ``pip install torch==2.13.0``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as tnn

from .torch_transformer import as_long_tensors, sequence_loop, sequence_loss  # makemore's loop, shared


class _RNNCell(tnn.Module):
    def __init__(self, n_embd: int, n_embd2: int):
        super().__init__()
        self.xh_to_h = tnn.Linear(n_embd + n_embd2, n_embd2)

    def forward(self, xt, hprev):
        return torch.tanh(self.xh_to_h(torch.cat([xt, hprev], dim=1)))


class _GRUCell(tnn.Module):
    def __init__(self, n_embd: int, n_embd2: int):
        super().__init__()
        self.xh_to_z = tnn.Linear(n_embd + n_embd2, n_embd2)
        self.xh_to_r = tnn.Linear(n_embd + n_embd2, n_embd2)
        self.xh_to_hbar = tnn.Linear(n_embd + n_embd2, n_embd2)

    def forward(self, xt, hprev):
        xh = torch.cat([xt, hprev], dim=1)
        r = torch.sigmoid(self.xh_to_r(xh))
        hbar = torch.tanh(self.xh_to_hbar(torch.cat([xt, r * hprev], dim=1)))
        z = torch.sigmoid(self.xh_to_z(xh))
        return (1 - z) * hprev + z * hbar


class MakemoreRNN(tnn.Module):
    """makemore.py's RNN: the cell stepped from Python over time."""

    def __init__(self, config):
        super().__init__()
        self.start = tnn.Parameter(torch.zeros(1, config.n_embd2))
        self.wte = tnn.Embedding(config.vocab_size, config.n_embd)
        cell = _RNNCell if config.cell == "rnn" else _GRUCell
        self.cell = cell(config.n_embd, config.n_embd2)
        self.lm_head = tnn.Linear(config.n_embd2, config.vocab_size)

    def forward(self, idx):
        b, t = idx.size()
        emb = self.wte(idx)
        h = self.start.expand((b, -1))
        hiddens = []
        for i in range(t):
            h = self.cell(emb[:, i, :], h)
            hiddens.append(h)
        return self.lm_head(torch.stack(hiddens, 1))


class LibraryRNN(tnn.Module):
    """The same model on torch's fused recurrent layers (nn.RNN / nn.GRU, batch first)."""

    def __init__(self, config):
        super().__init__()
        self.start = tnn.Parameter(torch.zeros(1, 1, config.n_embd2))
        self.wte = tnn.Embedding(config.vocab_size, config.n_embd)
        layer = (lambda i, h: tnn.RNN(i, h, nonlinearity="tanh", batch_first=True)) if config.cell == "rnn" else \
            (lambda i, h: tnn.GRU(i, h, batch_first=True))
        self.rnn = layer(config.n_embd, config.n_embd2)
        self.lm_head = tnn.Linear(config.n_embd2, config.vocab_size)

    def forward(self, idx):
        hs, _ = self.rnn(self.wte(idx), self.start.expand(1, idx.size(0), -1).contiguous())
        return self.lm_head(hs)


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32, seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last minibatch loss}: n AdamW steps each call.

    Args:
        X, Y: int [N, block_size] sequences and targets (-1 ignored), as build_sequence_dataset.
        config: the JAX rnn.Config (vocab_size, n_embd, n_embd2, cell).
    """
    Xt, Yt = as_long_tensors(X, Y)

    def make(module: type, compiled: bool = False) -> Callable[[int], float]:
        torch.manual_seed(seed)
        return sequence_loop(module(config), Xt, Yt, batch_size=batch_size, seed=seed, compiled=compiled,
                             lr=1e-2, weight_decay=0.01)

    return {"lecture eager": make(MakemoreRNN), "torch.nn + torch.optim": make(LibraryRNN),
            "torch.compile": make(MakemoreRNN, compiled=True)}


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over every target of the split (-1 ignored) in one call."""
    torch.manual_seed(0)
    model = LibraryRNN(config).eval()
    X, Y = as_long_tensors(X, Y)
    return lambda: sequence_loss(model, X, Y, chunk=len(X))


def load_jax_params(model: MakemoreRNN, params: dict) -> MakemoreRNN:
    """Copy a JAX rnn/gru's parameters (makemore_jax.models.rnn) into makemore's `model`."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
    with torch.no_grad():
        model.start.copy_(t(params["start"])[None])
        model.wte.weight.copy_(t(params["wte"]))
        for name, layer in params["cell"].items():
            linear = getattr(model.cell, name)
            linear.weight.copy_(t(layer["W"]).T)
            linear.bias.copy_(t(layer["b"]))
        model.lm_head.weight.copy_(t(params["lm_head"]["W"]).T)
        model.lm_head.bias.copy_(t(params["lm_head"]["b"]))
    return model.eval()
