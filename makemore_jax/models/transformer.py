"""makemore's GPT-style Transformer and nanoGPT's GPT: pre-LayerNorm blocks of causal self-attention and an MLP.

    x = drop(wte[idx] + wpe[pos])
    n_layer x [x += drop(c_proj(attention(qkv(ln_1(x))))); x += drop(c_proj(gelu(c_fc(ln_2(x)))))]
    logits = ln_f(x) @ lm_head          (no bias on the head; lm_head = wte^T when tied)

The dense layers work on a 2-D (B*T, C) layout: one matmul per layer over every position,
which XLA's CPU backend runs faster than the same product on [B, T, C]. The defaults are
makemore's transformer; nanoGPT's GPT is the same code with these `Config` fields:
  - bias=False: no biases in the linear layers and LayerNorms (no "b", no "beta" leaves).
  - tie_embeddings=True: the head is the token embedding transposed (nanoGPT's
    wte.weight = lm_head.weight): no "lm_head" leaf, and wte gets both gradients.
  - gelu="exact": the erf GELU (torch's nn.GELU()) instead of GPT-2's tanh approximation.
  - scaled_residual_init=True: the two residual projections (attention's and the MLP's
    c_proj) start at N(0, 0.02 / sqrt(2 n_layer)), GPT-2's scaling, so the residual
    stream's variance does not grow with depth; needs init "gpt2".
  - attn_dropout=True: dropout also on the attention weights, nanoGPT's fourth place
    (the other three, on the embeddings and after each branch's c_proj, are on whenever
    dropout > 0).
  - dtype="bfloat16": the matmuls and the activations between them in bfloat16; the
    parameters (so the optimiser's state), the embeddings, the residual stream, LayerNorm,
    the attention softmax and the logits in float32, as torch's autocast on nanoGPT. The
    head's matmul takes bfloat16 inputs and accumulates into float32 logits.
The speedrun GPT's options (modded-nanogpt, nanochat; the functions in speedrun_ops.py):
pos="rotary" (rotary embeddings, base 10000, on q and k in every layer; no "wpe"), norm="rms"
(RMSNorm without a gain for ln_1, ln_2, ln_f: no "ln_*" entries), qk_norm=True (q, k
RMS-normalised per head over D, no gain), activation="relu2" (relu(x)^2 in the MLP), zero_init_proj
(both c_proj start at 0, overriding scaled_residual_init), softcap=c > 0 (c tanh(logits / c)).
Two initialisations (`Config.init`):
  - "gpt2" (default): GPT-2's: weights and embeddings N(0, 0.02), biases 0, LayerNorm 1
    and 0 (makemore.py's first version; nanoGPT's, which then rescales the residual
    projections); the initial loss is within 0.01 of ln(vocab_size).
  - "pytorch": makemore.py's later version, which leaves every layer at PyTorch's default:
    embeddings N(0, 1), linear weights and biases U(+-1/sqrt(fan_in)), LayerNorm 1 and 0.
    ln_f's output has unit variance per channel and the head's weights variance 1/(3 C),
    so each logit starts with variance about 1/3 and the initial loss near
    ln(vocab_size) + 1/6. It trains faster at first and ends at the same loss
    (benchmarks/RESULTS.md, "Transformer reproduction").
Parameters:

    params = {"wte": [vocab, C], "wpe": [block_size, C],
              "blocks": [{"ln_1", "attn": {"c_attn": {"W": [C, 3, H, D], "b": [3, H, D]}, "c_proj"},
                          "ln_2", "mlp": {"c_fc", "c_proj"}}, ...],   (linear: {"W": [in, out], "b": [out]})
              "ln_f": {"gamma", "beta"}, "lm_head": {"W": [C, vocab]}}   (no "b"/"beta" without bias,
                                                                          no "lm_head" when tied)
    state  = {} or, with dropout, {"dropout": {"key": uint32 [2]}}: the key of the next train
             step's masks, advanced by every train-mode call (so a checkpoint resumes exactly).
             The rate is config.dropout: `apply` takes the config as a keyword.

Sampling uses a key/value cache (flax's decode=True): `init_cache` makes fixed-size
[n, block_size, H, D] buffers per layer, `decode_step` writes one position with
dynamic_update_slice and attends over the positions written so far.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from .. import nn
from . import speedrun_ops as ops

INITS = ("gpt2", "pytorch")
GELUS = {"tanh": nn.gelu, "exact": functools.partial(jax.nn.gelu, approximate=False)}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
POSITIONS, NORMS, ACTIVATIONS = ("learned", "rotary"), ("layer", "rms"), ("gelu", "relu2")  # the speedrun options
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
    dropout: float = 0.0  # train mode: dropout on the embeddings and after each branch's c_proj
    attn_dropout: bool = False  # with dropout: also on the attention weights (nanoGPT's placement)
    init: str = "gpt2"  # "gpt2" (N(0, 0.02)) or "pytorch" (torch's layer defaults, as makemore.py's later version)
    bias: bool = True  # biases in the linear layers and LayerNorms (nanoGPT's bias=False drops them)
    tie_embeddings: bool = False  # the head is wte transposed (nanoGPT), instead of its own lm_head
    gelu: str = "tanh"  # "tanh" (GPT-2's approximation, makemore) or "exact" (erf, torch's nn.GELU())
    scaled_residual_init: bool = False  # residual projections N(0, 0.02 / sqrt(2 n_layer)), as GPT-2 / nanoGPT
    dtype: str = "float32"  # "bfloat16": matmuls and activations in bfloat16; params, stream, logits float32
    pos: str = "learned"  # "learned" (wpe) or "rotary" (RoPE on q and k, no wpe)
    norm: str = "layer"  # "layer" (LayerNorm) or "rms" (RMSNorm without a gain: no norm parameters)
    qk_norm: bool = False  # RMS-normalise each head's q and k (no gain) before the scores
    activation: str = "gelu"  # the MLP's: "gelu" (flavour from `gelu`) or "relu2" (relu(x)^2)
    zero_init_proj: bool = False  # the residual projections (attn and MLP c_proj) start at zero
    softcap: float = 0.0  # > 0: logits = softcap * tanh(logits / softcap)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % (self.n_head * (2 if self.pos == "rotary" else 1)):  # rotary turns pairs of a head's channels
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})"
                             + (", and of 2 n_head with pos 'rotary' (an even head size)" if self.pos == "rotary" else ""))
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, choices in (("init", INITS), ("gelu", GELUS), ("dtype", DTYPES), ("pos", POSITIONS),
                              ("norm", NORMS), ("activation", ACTIVATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not 0 <= self.softcap < math.inf:
            raise ValueError(f"softcap must be 0 (off) or a positive finite number, got {self.softcap}")
        if self.scaled_residual_init and self.init != "gpt2":
            raise ValueError(f"scaled_residual_init needs init 'gpt2', got {self.init!r}")


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, state) as in the module docstring."""
    C, H, bias = config.n_embd, config.n_head, config.bias
    if config.init == "gpt2":
        _linear_init, embedding_scale = functools.partial(nn.linear_init, scale=GPT2_STD), GPT2_STD
    else:
        _linear_init, embedding_scale = nn.torch_linear_init, 1.0
    proj_init = _linear_init
    if config.scaled_residual_init:
        proj_init = functools.partial(nn.linear_init, scale=GPT2_STD / (2 * config.n_layer) ** 0.5)
    if config.zero_init_proj:  # the same keys drawn, so every other leaf is as without it
        proj_init = lambda *a, _init=proj_init, **kw: jax.tree.map(jnp.zeros_like, _init(*a, **kw))  # noqa: E731
    unused = ("wpe",) * (config.pos == "rotary") + ("ln_1", "ln_2", "ln_f") * (config.norm == "rms")
    used_only = lambda tree: {k: v for k, v in tree.items() if k not in unused}  # noqa: E731
    key_wte, key_wpe, key_head, key_drop, *block_keys = jax.random.split(key, 4 + config.n_layer)
    blocks = []
    for block_key in block_keys:
        k1, k2, k3, k4 = jax.random.split(block_key, 4)
        c_attn = jax.tree.map(lambda a: a.reshape(*a.shape[:-1], 3, H, C // H), _linear_init(k1, C, 3 * C, bias=bias))
        blocks.append(used_only({"ln_1": nn.layernorm_init(C, bias=bias),
                                 "attn": {"c_attn": c_attn, "c_proj": proj_init(k2, C, C, bias=bias)},
                                 "ln_2": nn.layernorm_init(C, bias=bias),
                                 "mlp": {"c_fc": _linear_init(k3, C, 4 * C, bias=bias),
                                         "c_proj": proj_init(k4, 4 * C, C, bias=bias)}}))
    params = used_only({"wte": nn.embedding_init(key_wte, config.vocab_size, C) * embedding_scale,
                        "wpe": nn.embedding_init(key_wpe, config.block_size, C) * embedding_scale,
                        "blocks": blocks,
                        "ln_f": nn.layernorm_init(C, bias=bias)})
    if not config.tie_embeddings:
        params["lm_head"] = _linear_init(key_head, C, config.vocab_size, bias=False)
    state = {"dropout": {"key": jax.random.key_data(key_drop)}} if config.dropout else {}
    return params, state


# ----------------------------------------------------------------------------- forward


def _compute_dtype(like: jax.Array, config: Config):
    """bfloat16 under dtype="bfloat16", else `like`'s own dtype (the parameters'; float64 under x64)."""
    return jnp.bfloat16 if config.dtype == "bfloat16" else like.dtype


def _dense(params: dict, x: jax.Array, dtype) -> jax.Array:
    """x [N, in] @ W (+ b) with both cast to the compute dtype: [N, out] in that dtype."""
    y = x.astype(dtype) @ params["W"].astype(dtype)
    return y + params["b"].astype(dtype) if "b" in params else y


def _norm(params: dict, name: str, x: jax.Array, config: Config) -> jax.Array:
    """params[name]'s LayerNorm of x [N, C], or RMSNorm without a gain under norm="rms" (no params[name])."""
    return ops.rms_norm(x) if config.norm == "rms" else nn.layernorm(params[name], x)


def _rope(positions: jax.Array, config: Config, dtype, batch: int = 1) -> tuple | None:
    """None, or under pos="rotary" cos, sin [batch * T, 1, D/2] for positions [T] (or one scalar
    position: [1, 1, D/2]): computed once per call, repeated for the batch's rows b * T + t."""
    if config.pos != "rotary":
        return None
    tables = ops.rotary_cos_sin(positions, config.n_embd // config.n_head, dtype)  # [T, D/2] or [D/2]
    return tuple(jnp.tile(t, (batch, 1))[:, None] for t in tables)


def _qkv(params: dict, x: jax.Array, dtype, config: Config,
         rope: tuple[jax.Array, jax.Array] | None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Residual x [N, C] -> q, k, v [N, H, D]: ln_1, one combined qkv projection, QK-norm, rotary.

    The projection's weight is [C, 3, H, D] (bias [3, H, D]), flax's multi-head layout: the
    head count lives in the parameters' shape. It runs as one [N, C] x [C, 3C] matmul. rope:
    cos, sin broadcastable to [N, H, D/2] (each row's position), or None (no rotary).
    """
    c_attn = params["attn"]["c_attn"]
    flat = jax.tree.map(lambda a: a.reshape(*a.shape[:-3], -1), c_attn)  # W [C, 3C], b [3C]
    qkv = _dense(flat, _norm(params, "ln_1", x, config), dtype)  # [N, 3C]
    qkv = qkv.reshape(x.shape[0], *c_attn["W"].shape[1:])  # [N, 3, H, D]
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    if config.qk_norm:
        q, k = ops.rms_norm(q), ops.rms_norm(k)
    if rope is not None:  # after QK-norm; a rotation keeps each head's RMS, so the order is moot
        q, k = ops.rotary(q, *rope), ops.rotary(k, *rope)
    return q, k, v


def _mlp(params: dict, x: jax.Array, config: Config) -> jax.Array:
    """The MLP branch: x [N, C] -> [N, C] (ln_2, 4x wider linear, GELU or relu^2, linear), in the compute dtype."""
    dtype = _compute_dtype(x, config)
    act = ops.relu2 if config.activation == "relu2" else GELUS[config.gelu]
    h = act(_dense(params["mlp"]["c_fc"], _norm(params, "ln_2", x, config), dtype))
    return _dense(params["mlp"]["c_proj"], h, dtype)


def _head(params: dict, x: jax.Array, config: Config) -> jax.Array:
    """ln_f, then the head: x [N, C] -> float32 logits [N, vocab] (float32 accumulation), soft-capped."""
    W = params["wte"].T if config.tie_embeddings else params["lm_head"]["W"]  # [C, vocab]
    dtype = _compute_dtype(W, config)
    logits = jnp.matmul(_norm(params, "ln_f", x, config).astype(dtype), W.astype(dtype),
                        preferred_element_type=jnp.promote_types(dtype, jnp.float32))
    return ops.softcap(logits, config.softcap) if config.softcap > 0 else logits


def apply(params: dict, state: dict, idx: jax.Array, *, train: bool, config: Config) -> tuple[jax.Array, dict]:
    """idx int [B, T] (T <= block_size) -> (logits float32 [B, T, vocab], new_state).

    Position t's logits depend on idx[:, :t + 1] only. Train mode with dropout draws its
    masks (rate config.dropout) from state["dropout"]["key"] and returns the state with the
    next key; eval mode (and a model without dropout) returns state as is.
    """
    B, T = idx.shape
    dtype = _compute_dtype(params["wte"], config)
    drop, attn_drop, state = _dropouts(state, config, train, len(params["blocks"]))
    x = nn.embedding(params["wte"], idx) + (params["wpe"][:T] if config.pos == "learned" else 0)  # [B, T, C]
    x = drop(x.reshape(B * T, -1))  # [B*T, C]: every dense layer is one 2-D matmul
    rope = _rope(jnp.arange(T), config, dtype, batch=B)  # cos, sin [B*T, 1, D/2], for every layer
    for block in params["blocks"]:
        q, k, v = (a.reshape(B, T, *a.shape[1:]) for a in _qkv(block, x, dtype, config, rope))  # [B, T, H, D]
        y = nn.attention(q, k, v, dropout=attn_drop).reshape(B * T, -1)
        x = x + drop(_dense(block["attn"]["c_proj"], y, dtype))  # the stream stays float32
        x = x + drop(_mlp(block, x, config))
    return _head(params, x, config).reshape(B, T, -1), state


def _dropouts(state: dict, config: Config, train: bool, n_layer: int) -> tuple[Callable, Callable | None, dict]:
    """(drop for the stream, drop for the attention weights or None, new state) of one call.

    The masks' keys come, in order of use, from one split of the step's key: the
    embeddings', then per block the attention weights' (with attn_dropout), the attention
    branch's and the MLP branch's.
    """
    if not (train and "dropout" in state):
        return (lambda x: x), None, state
    key, next_key = jax.random.split(state["dropout"]["key"])
    mask_keys = iter(jax.random.split(key, 1 + (3 if config.attn_dropout else 2) * n_layer))
    drop = lambda x: _dropout(next(mask_keys), config.dropout, x)  # noqa: E731
    return drop, drop if config.attn_dropout else None, {"dropout": {"key": next_key}}


def _dropout(key: jax.Array, rate: float, x: jax.Array) -> jax.Array:
    """Inverted dropout: zero each entry with probability rate, scale the rest by 1 / (1 - rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


# ----------------------------------------------------------------------------- cached decoding


def init_cache(params: dict, config: Config, n: int) -> list[dict]:
    """Empty key/value buffers: per layer {"k", "v"} [n, block_size, n_head, head_size] in the compute dtype."""
    shape = (n, config.block_size, config.n_head, config.n_embd // config.n_head)
    dtype = _compute_dtype(params["wte"], config)
    return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in params["blocks"]]


def decode_step(params: dict, state: dict, cache: list[dict], token: jax.Array, pos: jax.Array, *,
                config: Config) -> tuple[jax.Array, list[dict]]:
    """One position of eval-mode `apply` for n sequences, attending over the cached ones.

    Args:
        params, state: the model's (state is unused: no dropout in eval mode).
        cache: from `init_cache`, with positions < pos written by earlier calls.
        token: int32 [n], the tokens at position pos.
        pos: int32 scalar, 0 <= pos < block_size.
        config: the model's Config (keyword, as for `apply`).
    Returns:
        (float32 logits [n, vocab] for the token after pos, the cache with position pos written).
    """
    dtype = _compute_dtype(params["wte"], config)
    x = nn.embedding(params["wte"], token) + (params["wpe"][pos] if config.pos == "learned" else 0)  # [n, C]
    rope = _rope(pos, config, dtype)  # cos, sin [D/2]: every sequence is at position pos
    new_cache = []
    for block, layer in zip(params["blocks"], cache):
        q, k, v = _qkv(block, x, dtype, config, rope)  # [n, H, D]
        at = (0, pos, 0, 0)
        layer = {"k": jax.lax.dynamic_update_slice(layer["k"], k[:, None], at),
                 "v": jax.lax.dynamic_update_slice(layer["v"], v[:, None], at)}
        visible = (jnp.arange(layer["k"].shape[1]) <= pos)[None, :]  # [1, block_size]: keys written so far
        y = nn.attention(q[:, None], layer["k"], layer["v"], mask=visible)[:, 0]  # [n, H, D]
        x = x + _dense(block["attn"]["c_proj"], y.reshape(x.shape[0], -1), dtype)
        x = x + _mlp(block, x, config)
        new_cache.append(layer)
    return _head(params, x, config), new_cache
