"""makemore's bag-of-words model (`--type bow`): a causal average of the context, then an MLP.

    x_t = wte[idx_t] + wpe[t]                                   [B, T, n_embd]
    x_t = x_t + mean(x_1 .. x_t)                                causal bag of words
    x_t = x_t + c_proj(tanh(c_fc(x_t)))                         MLP, n_embd -> n_embd2 -> n_embd
    logits_t = lm_head(x_t)                                     [B, T, vocab]

The causal average is attention with every score equal: position t weighs positions
1..t by 1/t, written as a [T, T] lower-triangular matrix of those weights applied with one
einsum (makemore softmaxes a zero matrix masked with -inf, which gives the same weights).
Initialisation as models/rnn.py: embeddings N(0, 1), weights N(0, 1 / fan_in) (the variance
of torch's defaults), biases 0, the head's weights x 0.01 so the initial loss is ln(vocab).

    params = {"wte": [vocab, n_embd], "wpe": [block_size, n_embd],
              "mlp": {"c_fc": {"W": [n_embd, n_embd2], "b"}, "c_proj": {"W": [n_embd2, n_embd], "b"}},
              "lm_head": {"W": [n_embd, vocab], "b": [vocab]}}
    state  = {}

Sampling carries the running sum of the inputs (`init_cache`, `decode_step`): the causal
mean at position t is that sum over t + 1, one position per call.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .. import nn
from ..settings import SettingError
from . import rnn

TRAIN_DEFAULTS = rnn.TRAIN_DEFAULTS  # the recurrent models' AdamW recipe, the same data and batch


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 27
    block_size: int = 16  # positions: longest word + 1; the position table's rows
    n_embd: int = 64  # token and position embedding size
    n_embd2: int = 64  # the MLP's hidden width

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_embd", "n_embd2"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, {}) as in the module docstring."""
    k_wte, k_wpe, k_fc, k_proj, k_head = jax.random.split(key, 5)
    E, H = config.n_embd, config.n_embd2
    params = {"wte": nn.embedding_init(k_wte, config.vocab_size, E),
              "wpe": nn.embedding_init(k_wpe, config.block_size, E),
              "mlp": {"c_fc": nn.linear_init(k_fc, E, H, scale=1 / math.sqrt(E)),
                      "c_proj": nn.linear_init(k_proj, H, E, scale=1 / math.sqrt(H))},
              "lm_head": nn.linear_init(k_head, E, config.vocab_size, scale=0.01)}
    return params, {}


def causal_mean(x: jax.Array) -> jax.Array:
    """x [B, T, C] -> [B, T, C]: position t holds the mean of x over positions 1..t."""
    T = x.shape[1]
    weights = jnp.tril(jnp.ones((T, T))) / jnp.arange(1, T + 1)[:, None]  # [T, T], rows sum to 1
    return jnp.einsum("ts,bsc->btc", weights, x)


def apply(params: dict, state: dict, idx: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    """idx int [B, T] (T <= block_size) -> (logits [B, T, vocab], state); train and eval mode agree."""
    del train
    T = idx.shape[1]
    x = nn.embedding(params["wte"], idx) + params["wpe"][:T]  # [B, T, n_embd]
    return _head(params, x + causal_mean(x)), state


def _head(params: dict, x: jax.Array) -> jax.Array:
    """The residual MLP and the head: x [..., n_embd] -> logits [..., vocab]."""
    mlp = params["mlp"]
    x = x + nn.linear(mlp["c_proj"], nn.tanh(nn.linear(mlp["c_fc"], x)))
    return nn.linear(params["lm_head"], x)


def init_cache(params: dict, config: Config, n: int) -> jax.Array:
    """The running sum of the inputs seen so far, zeros [n, n_embd]: the causal mean's only memory."""
    del params
    return jnp.zeros((n, config.n_embd))


def decode_step(params: dict, state: dict, total: jax.Array, token: jax.Array,
                pos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One position: token int32 [n] at pos -> (logits [n, vocab], running sum [n, n_embd]).

    The mean over positions 0..pos is the running sum over pos + 1, so each new token costs
    the same whatever its position.
    """
    del state
    x = nn.embedding(params["wte"], token) + params["wpe"][pos]  # [n, n_embd]
    total = total + x
    return _head(params, x + total / (pos + 1)), total
