"""PyTorch references for rnn and gru: makemore.py's recurrent models, trained three ways.

The models' AdamW recipe (lr 1e-2, weight decay 0.01; warmup and cosine change no step's
cost, so they are left out), batch 32. "lecture eager": makemore.py's RNN, a learned start
state and the cell (RNNCell, or GRUCell with the reset gate before the candidate's matmul)
stepped from a Python loop; "torch.nn + torch.optim": nn.RNN(tanh) / nn.GRU over the whole
sequence (nn.GRU applies its reset gate after the hidden matmul: a variant of the same
cost); "torch.compile": makemore's eager model compiled.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as tnn

from . import copy_params, longs, loop, split_loss_of


class _Cell(tnn.Module):
    """makemore's RNNCell (xh_to_h) or GRUCell (xh_to_z, xh_to_r, xh_to_hbar)."""

    def __init__(self, n_embd: int, n_embd2: int, cell: str):
        super().__init__()
        self.gru = cell == "gru"
        for name in ("xh_to_z", "xh_to_r", "xh_to_hbar") if self.gru else ("xh_to_h",):
            setattr(self, name, tnn.Linear(n_embd + n_embd2, n_embd2))

    def forward(self, xt, hprev):
        xh = torch.cat([xt, hprev], dim=1)
        if not self.gru:
            return torch.tanh(self.xh_to_h(xh))
        r = torch.sigmoid(self.xh_to_r(xh))
        hbar = torch.tanh(self.xh_to_hbar(torch.cat([xt, r * hprev], dim=1)))
        z = torch.sigmoid(self.xh_to_z(xh))
        return (1 - z) * hprev + z * hbar


class MakemoreRNN(tnn.Module):
    """makemore.py's RNN: the cell stepped from Python over time; `library` uses nn.RNN / nn.GRU."""

    def __init__(self, config, library: bool = False):
        super().__init__()
        self.library = library
        self.start = tnn.Parameter(torch.zeros(1, config.n_embd2))
        self.wte = tnn.Embedding(config.vocab_size, config.n_embd)
        if library:
            kind = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
            self.rnn = (tnn.RNN if config.cell == "rnn" else tnn.GRU)(config.n_embd, config.n_embd2, batch_first=True,
                                                                      **kind)
        else:
            self.cell = _Cell(config.n_embd, config.n_embd2, config.cell)
        self.lm_head = tnn.Linear(config.n_embd2, config.vocab_size)

    def forward(self, idx):
        emb, h = self.wte(idx), self.start.expand((idx.size(0), -1))
        if self.library:
            return self.lm_head(self.rnn(emb, h[None].contiguous())[0])
        hiddens = []
        for i in range(idx.size(1)):
            h = self.cell(emb[:, i, :], h)
            hiddens.append(h)
        return self.lm_head(torch.stack(hiddens, 1))


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32, seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last loss}: n AdamW steps; X, Y int [N, block_size] sequences, targets (-1 ignored)."""
    X, Y = longs(X, Y)
    out = {}
    for variant, library, compiled in (("lecture eager", False, False), ("torch.nn + torch.optim", True, False),
                                       ("torch.compile", False, True)):
        torch.manual_seed(seed)
        model = MakemoreRNN(config, library)
        out[variant] = loop(torch.compile(model) if compiled else model, X, Y, batch_size=batch_size, seed=seed,
                            lr=1e-2, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01))
    return out


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over every target of the split (-1 ignored) in one call."""
    torch.manual_seed(0)
    return split_loss_of(MakemoreRNN(config, library=True), X, Y)


def load_jax_params(model: MakemoreRNN, params: dict) -> MakemoreRNN:
    """Copy a JAX rnn/gru's parameters (makemore_jax.models.rnn) into makemore's `model`."""
    copy_params([(model.start, params["start"]), (model.wte.weight, params["wte"]), (model.lm_head, params["lm_head"]),
                 *((getattr(model.cell, name), p) for name, p in params["cell"].items())])
    return model.eval()
