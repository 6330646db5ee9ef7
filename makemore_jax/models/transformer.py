"""makemore's GPT-style Transformer: pre-LayerNorm blocks of causal self-attention and an MLP.

    x = wte[idx] + wpe[pos]
    n_layer x [x += proj(attention(qkv(ln_1(x)))); x += fc2(gelu(fc1(ln_2(x))))]
    logits = ln_f(x) @ lm_head          (no bias on the head)

The dense layers work on a 2-D (B*T, C) layout: one matmul per layer over every position,
which XLA's CPU backend runs faster than the same product on [B, T, C]
(benchmarks/RESULTS.md). Two initialisations (`Config.init`):
  - "gpt2" (default): GPT-2's, as makemore.py's first version: weights
    N(0, 0.02), biases 0, LayerNorm 1 and 0; the initial loss is within 0.01 of
    ln(vocab_size).
  - "pytorch": makemore.py's later version, which leaves every layer at PyTorch's default:
    embeddings N(0, 1), linear weights and biases U(+-1/sqrt(fan_in)), LayerNorm 1 and 0.
    ln_f's output has unit variance per channel and the head's weights variance 1/(3 C),
    so each logit starts with variance about 1/3 and the initial loss near
    ln(vocab_size) + 1/6. It trains faster at first (makemore's recipe reaches its best
    dev loss in about 11k steps instead of 24k) and ends at the same loss
    (benchmarks/RESULTS.md, "Transformer reproduction").
Parameters:

    params = {"wte": [vocab, C], "wpe": [block_size, C],
              "blocks": [{"ln_1", "attn": {"c_attn": {"W": [C, 3, H, D], "b": [3, H, D]}, "c_proj"},
                          "ln_2", "mlp": {"c_fc", "c_proj"}}, ...],   (linear: {"W": [in, out], "b": [out]})
              "ln_f": {"gamma", "beta"}, "lm_head": {"W": [C, vocab]}}
    state  = {} or, with dropout, {"dropout": {"key": uint32 [2]}}: the key of the next train
             step's masks, advanced by every train-mode call (so a checkpoint resumes
             exactly). The rate is config.dropout: `apply` takes the config as a keyword
             (models.Model.bind binds it).

Sampling uses a key/value cache (flax's decode=True): `init_cache` makes fixed-size
[n, block_size, H, D] buffers per layer, `decode_step` writes one position with
dynamic_update_slice and attends over the positions written so far.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from .. import nn

INITS = ("gpt2", "pytorch")
GPT2_STD = 0.02  # GPT-2's weight scale
# makemore's recipe: AdamW, lr 5e-4 held constant, weight decay 0.01, betas 0.9/0.99, batch 32.
# makemore trains until stopped and keeps its best state; 25k steps is where this init's dev
# loss bottoms out (2.00 on makemore's split; it overfits after). A better recipe (dropout,
# warmup + cosine, torch's init) is in benchmarks/RESULTS.md and the README.
TRAIN_DEFAULTS = {"optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.01, "b2": 0.99, "min_lr_ratio": 1.0,
                  "steps": 25_000}


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 27
    block_size: int = 16  # positions: longest word + 1 (start token) on makemore's names
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads; n_embd must divide by it
    n_embd: int = 64  # channels of the residual stream
    dropout: float = 0.0  # train mode: dropout on the embeddings and on each residual branch
    init: str = "gpt2"  # "gpt2" (N(0, 0.02)) or "pytorch" (torch's layer defaults, as makemore.py's later version)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, state) as in the module docstring."""
    C, H = config.n_embd, config.n_head
    if config.init == "gpt2":
        _linear_init, embedding_scale = functools.partial(nn.linear_init, scale=GPT2_STD), GPT2_STD
    else:
        _linear_init, embedding_scale = nn.torch_linear_init, 1.0
    key_wte, key_wpe, key_head, key_drop, *block_keys = jax.random.split(key, 4 + config.n_layer)
    blocks = []
    for block_key in block_keys:
        k1, k2, k3, k4 = jax.random.split(block_key, 4)
        c_attn = jax.tree.map(lambda a: a.reshape(*a.shape[:-1], 3, H, C // H), _linear_init(k1, C, 3 * C))
        blocks.append({"ln_1": nn.layernorm_init(C),
                       "attn": {"c_attn": c_attn, "c_proj": _linear_init(k2, C, C)},
                       "ln_2": nn.layernorm_init(C),
                       "mlp": {"c_fc": _linear_init(k3, C, 4 * C), "c_proj": _linear_init(k4, 4 * C, C)}})
    params = {"wte": nn.embedding_init(key_wte, config.vocab_size, C) * embedding_scale,
              "wpe": nn.embedding_init(key_wpe, config.block_size, C) * embedding_scale,
              "blocks": blocks,
              "ln_f": nn.layernorm_init(C),
              "lm_head": _linear_init(key_head, C, config.vocab_size, bias=False)}
    state = {}
    if config.dropout:
        state["dropout"] = {"key": jax.random.key_data(key_drop)}
    return params, state


# ----------------------------------------------------------------------------- forward


def _qkv(params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Residual x [N, C] -> q, k, v [N, H, D]: ln_1, then one combined qkv projection.

    The projection's weight is [C, 3, H, D] (bias [3, H, D]), flax's multi-head layout: the
    head count lives in the parameters' shape, so `apply` needs no config. It runs as one
    [N, C] x [C, 3C] matmul.
    """
    W, b = params["attn"]["c_attn"]["W"], params["attn"]["c_attn"]["b"]
    qkv = nn.layernorm(params["ln_1"], x) @ W.reshape(W.shape[0], -1) + b.reshape(-1)  # [N, 3C]
    qkv = qkv.reshape(x.shape[0], *W.shape[1:])  # [N, 3, H, D]
    return qkv[:, 0], qkv[:, 1], qkv[:, 2]


def _mlp(params: dict, x: jax.Array) -> jax.Array:
    """The MLP branch: x [N, C] -> [N, C] (ln_2, 4x wider linear, tanh-GELU, linear)."""
    h = nn.gelu(nn.linear(params["mlp"]["c_fc"], nn.layernorm(params["ln_2"], x)))
    return nn.linear(params["mlp"]["c_proj"], h)


def _head(params: dict, x: jax.Array) -> jax.Array:
    return nn.layernorm(params["ln_f"], x) @ params["lm_head"]["W"]


def apply(params: dict, state: dict, idx: jax.Array, *, train: bool,
          config: Config | None = None) -> tuple[jax.Array, dict]:
    """idx int [B, T] (T <= block_size) -> (logits [B, T, vocab], new_state).

    Position t's logits depend on idx[:, :t + 1] only. Train mode with dropout draws its
    masks from state["dropout"]["key"] at rate config.dropout and returns the state with
    the next key; eval mode (and a model without dropout) returns state as is and needs no
    config.
    """
    B, T = idx.shape
    use_dropout = train and "dropout" in state
    if use_dropout:
        if config is None:
            raise ValueError("transformer.apply in train mode with dropout needs config= (Model.bind binds it)")
        rate = jnp.float32(config.dropout)
        key, next_key = jax.random.split(state["dropout"]["key"])
        mask_keys = iter(jax.random.split(key, 1 + 2 * len(params["blocks"])))
        drop = lambda x: _dropout(next(mask_keys), rate, x)
        state = {"dropout": {**state["dropout"], "key": next_key}}
    else:
        drop = lambda x: x
    x = nn.embedding(params["wte"], idx) + params["wpe"][:T]  # [B, T, C]
    x = drop(x.reshape(B * T, -1))  # [B*T, C]: every dense layer is one 2-D matmul
    for block in params["blocks"]:
        q, k, v = (a.reshape(B, T, *a.shape[1:]) for a in _qkv(block, x))  # [B, T, H, D]
        y = nn.attention(q, k, v).reshape(B * T, -1)
        x = x + drop(nn.linear(block["attn"]["c_proj"], y))
        x = x + drop(_mlp(block, x))
    return _head(params, x).reshape(B, T, -1), state


def _dropout(key: jax.Array, rate: jax.Array, x: jax.Array) -> jax.Array:
    """Inverted dropout: zero each entry with probability rate, scale the rest by 1 / (1 - rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


# ----------------------------------------------------------------------------- cached decoding


def init_cache(params: dict, config: Config, n: int) -> list[dict]:
    """Empty key/value buffers: per layer {"k", "v"} float32 [n, block_size, n_head, head_size]."""
    shape = (n, config.block_size, config.n_head, config.n_embd // config.n_head)
    return [{"k": jnp.zeros(shape), "v": jnp.zeros(shape)} for _ in params["blocks"]]


def decode_step(params: dict, state: dict, cache: list[dict], token: jax.Array,
                pos: jax.Array) -> tuple[jax.Array, list[dict]]:
    """One position of eval-mode `apply` for n sequences, attending over the cached ones.

    Args:
        params, state: the model's (state is unused: no dropout in eval mode).
        cache: from `init_cache`, with positions < pos written by earlier calls.
        token: int32 [n], the tokens at position pos.
        pos: int32 scalar, 0 <= pos < block_size.
    Returns:
        (logits [n, vocab] for the token after pos, the cache with position pos written).
    """
    x = nn.embedding(params["wte"], token) + params["wpe"][pos]  # [n, C]
    new_cache = []
    for block, layer in zip(params["blocks"], cache):
        q, k, v = _qkv(block, x)  # [n, H, D]
        at = (0, pos, 0, 0)
        layer = {"k": jax.lax.dynamic_update_slice(layer["k"], k[:, None], at),
                 "v": jax.lax.dynamic_update_slice(layer["v"], v[:, None], at)}
        visible = (jnp.arange(layer["k"].shape[1]) <= pos)[None, :]  # [1, block_size]: keys written so far
        y = nn.attention(q[:, None], layer["k"], layer["v"], mask=visible)[:, 0]  # [n, H, D]
        x = x + nn.linear(block["attn"]["c_proj"], y.reshape(x.shape[0], -1))
        x = x + _mlp(block, x)
        new_cache.append(layer)
    return _head(params, x), new_cache
