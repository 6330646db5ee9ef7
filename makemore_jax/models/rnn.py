"""makemore's recurrent language models: a vanilla RNN cell and a GRU cell, scanned over time.

    h_0 = start (learned);  h_t = cell(wte[idx_t], h_{t-1});  logits_t = lm_head(h_t)

    rnn:  h_t = tanh(W_h [x_t, h_{t-1}] + b_h)
    gru:  r = sigmoid(W_r [x_t, h_{t-1}] + b_r)             reset gate
          hbar = tanh(W_hbar [x_t, r * h_{t-1}] + b_hbar)   candidate state
          z = sigmoid(W_z [x_t, h_{t-1}] + b_z)             update gate
          h_t = (1 - z) * h_{t-1} + z * hbar

Each cell weight is one [n_embd + n_embd2, n_embd2] matrix on the concatenation, as in
makemore; the code applies its input rows to every time step at once before the scan, so
the sequential part is only the [B, n_embd2] x [n_embd2, .] products. Initialisation:
embedding N(0, 1) and cell weights N(0, 1 / fan_in) (the variance of torch's defaults),
biases 0, and the head's weights x 0.01 (lecture 3), so the initial loss is ln(vocab_size).

    params = {"start": [n_embd2], "wte": [vocab, n_embd],
              "cell": {"xh_to_h"} (rnn) or {"xh_to_z", "xh_to_r", "xh_to_hbar"} (gru), each {"W", "b"},
              "lm_head": {"W": [n_embd2, vocab], "b": [vocab]}}
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .. import nn
from ..settings import SettingError

CELLS = ("rnn", "gru")
# The recipe picked from the loss curves in benchmarks/RESULTS.md ("Sequence models").
TRAIN_DEFAULTS = {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.01, "warmup_steps": 200,
                  "min_lr_ratio": 0.01, "steps": 2_000}


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 27
    block_size: int = 16  # positions: longest word + 1 (unused by the model, which runs any length)
    n_embd: int = 64  # token embedding size
    n_embd2: int = 64  # hidden state size
    cell: str = "rnn"  # "rnn" or "gru"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise SettingError("cell", f"must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("vocab_size", "block_size", "n_embd", "n_embd2"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, {}) as in the module docstring."""
    names = ("xh_to_h",) if config.cell == "rnn" else ("xh_to_z", "xh_to_r", "xh_to_hbar")
    key_wte, key_head, *cell_keys = jax.random.split(key, 2 + len(names))
    fan_in = config.n_embd + config.n_embd2
    cell = {name: nn.linear_init(k, fan_in, config.n_embd2, scale=1 / math.sqrt(fan_in))
            for name, k in zip(names, cell_keys)}
    params = {"start": jnp.zeros((config.n_embd2,)),
              "wte": nn.embedding_init(key_wte, config.vocab_size, config.n_embd),
              "cell": cell,
              "lm_head": nn.linear_init(key_head, config.n_embd2, config.vocab_size, scale=0.01)}
    return params, {}


# ----------------------------------------------------------------------------- cells


def _split(layer: dict, n_embd: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """W [n_embd + n_embd2, n_embd2] on cat(x, h) as (W_x, W_h, b)."""
    return layer["W"][:n_embd], layer["W"][n_embd:], layer["b"]


def _input_part(cell: dict, x: jax.Array) -> dict:
    """W_x x + b of every gate, for inputs x [..., n_embd]."""
    n_embd = x.shape[-1]
    return {name: x @ _split(layer, n_embd)[0] + layer["b"] for name, layer in cell.items()}


def _step(cell: dict, xw: dict, h: jax.Array) -> jax.Array:
    """One time step from the input parts xw (each [B, n_embd2]) and h [B, n_embd2]."""
    n_embd = cell[next(iter(cell))]["W"].shape[0] - h.shape[-1]
    W_h = lambda name: _split(cell[name], n_embd)[1]
    if "xh_to_h" in cell:  # rnn
        return jnp.tanh(xw["xh_to_h"] + h @ W_h("xh_to_h"))
    r = jax.nn.sigmoid(xw["xh_to_r"] + h @ W_h("xh_to_r"))
    hbar = jnp.tanh(xw["xh_to_hbar"] + (r * h) @ W_h("xh_to_hbar"))
    z = jax.nn.sigmoid(xw["xh_to_z"] + h @ W_h("xh_to_z"))
    return (1 - z) * h + z * hbar


# ----------------------------------------------------------------------------- model


def apply(params: dict, state: dict, idx: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    """idx int [B, T] -> (logits [B, T, vocab], state); train and eval mode are the same."""
    del train
    B, T = idx.shape
    xw = _input_part(params["cell"], nn.embedding(params["wte"], idx.T))  # each [T, B, n_embd2]
    h0 = jnp.broadcast_to(params["start"], (B, params["start"].shape[0]))

    def tick(h, xw_t):
        h = _step(params["cell"], xw_t, h)
        return h, h

    _, hs = jax.lax.scan(tick, h0, xw)  # [T, B, n_embd2]
    logits = nn.linear(params["lm_head"], hs.reshape(T * B, -1)).reshape(T, B, -1)
    return logits.transpose(1, 0, 2), state


def init_cache(params: dict, config: Config, n: int) -> jax.Array:
    """The carried hidden state of n sequences before any token: the learned start, [n, n_embd2]."""
    return jnp.broadcast_to(params["start"], (n, config.n_embd2))


def decode_step(params: dict, state: dict, h: jax.Array, token: jax.Array,
                pos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One time step: token int32 [n] at position pos (unused) -> (logits [n, vocab], h [n, n_embd2])."""
    del state, pos
    xw = _input_part(params["cell"], nn.embedding(params["wte"], token))
    h = _step(params["cell"], xw, h)
    return nn.linear(params["lm_head"], h), h
