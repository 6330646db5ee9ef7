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
pos="rotary" (rotary embeddings, base 10000, on q and k in every layer; no "wpe"),
norm="rms-nogain" (RMSNorm without a gain for ln_1, ln_2, ln_f: no "ln_*" entries; norm="rms"
is RMSNorm with a gain, nn.rmsnorm, as the MLPs' "rms"), qk_norm=True (q, k RMS-normalised per
head over D, no gain), activation="relu2" (relu(x)^2 in the MLP), zero_init_proj (both c_proj
start at 0, overriding scaled_residual_init), softcap=c > 0 (c tanh(logits / c)).
attention="einsum" | "fused" | "auto" (default): nn.attention's einsum, or
jax.nn.dot_product_attention (cuDNN's flash kernel on a GPU in bfloat16); auto takes the kernel
where it applies and the einsum elsewhere (nn.attention_implementation).
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
Parameters (init makes only the leaves the config has):

    params = {"wte": [vocab (padded), C], "wpe": [block_size, C] (pos "learned" only),
              "blocks": [{"ln_1", "attn": {"c_attn": {"W": [C, 3, H, D], "b": [3, H, D]}, "c_proj"},
                          "ln_2", "mlp": {"c_fc", "c_proj"}}, ...],   (linear: {"W": [in, out], "b": [out]})
              "ln_f", "lm_head": {"W": [C, vocab (padded)]}}   (vocab padded: padded_vocab(config))   (no "b" without bias, no "lm_head" when tied)
    a norm (ln_1, ln_2, ln_f): {"gamma": [C], "beta": [C]} (norm "layer"; no "beta" without bias),
             {"gamma": [C]} (norm "rms"), or no entry at all (norm "rms-nogain")
    state  = {} or, with dropout, {"dropout": {"key": uint32 [2]}}: the key of the next train
             step's masks, advanced by every train-mode call (so a checkpoint resumes exactly).
             The rate is config.dropout: `apply` takes the config as a keyword (models.Model.bind).

One `block` function is the body of every layer, for `apply` (all positions, causal
attention) and `decode_step` (one position against the cache) alike. The optimiser's
groups come from this module's `PARAM_LABELS` (labels.py): the blocks' weight matrices,
and c_attn's read as three matrices, q's, k's and v's, for Muon.

Sampling uses a key/value cache (flax's decode=True): `init_cache` makes fixed-size
[n, block_size, H, D] buffers per layer, `decode_step` writes one position with
dynamic_update_slice and attends over the positions written so far.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from .. import nn
from ..settings import SettingError
from . import speedrun_ops as ops
from .labels import MATRIX, OTHER, ParamLabels

INITS = ("gpt2", "pytorch")
GELUS = {"tanh": nn.gelu, "exact": functools.partial(jax.nn.gelu, approximate=False)}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
POSITIONS, ACTIVATIONS = ("learned", "rotary"), ("gelu", "relu2")  # the speedrun options
RMS_NOGAIN = "rms-nogain"  # the speedrun's norm: RMSNorm with no learned gain (no norm parameters)
NORMS = ("layer", "rms", RMS_NOGAIN)  # LayerNorm; RMSNorm with a gain (nn.rmsnorm, the MLPs' "rms"); without one
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
    norm: str = "layer"  # "layer" (LayerNorm), "rms" (RMSNorm with a gain) or "rms-nogain" (no norm parameters)
    qk_norm: bool = False  # RMS-normalise each head's q and k (no gain) before the scores
    activation: str = "gelu"  # the MLP's: "gelu" (flavour from `gelu`) or "relu2" (relu(x)^2)
    zero_init_proj: bool = False  # the residual projections (attn and MLP c_proj) start at zero
    softcap: float = 0.0  # > 0: logits = softcap * tanh(logits / softcap)
    pad_vocab_to: int = 1  # wte's rows (and the head's columns) rounded up to a multiple of this (GPT-2: 64)
    attention: str = "auto"  # "einsum", "fused" (jax.nn.dot_product_attention) or "auto" (nn.attention_implementation)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "pad_vocab_to"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.n_embd % (self.n_head * (2 if self.pos == "rotary" else 1)):  # rotary turns pairs of a head's channels
            raise SettingError("n_embd", f"({self.n_embd}) must be a multiple of n_head ({self.n_head})"
                               + (", and of 2 n_head with pos 'rotary' (an even head size)" if self.pos == "rotary" else ""))
        if not 0 <= self.dropout < 1:
            raise SettingError("dropout", f"must be in [0, 1), got {self.dropout}")
        for name, choices in (("init", INITS), ("gelu", GELUS), ("dtype", DTYPES), ("pos", POSITIONS),
                              ("norm", NORMS), ("activation", ACTIVATIONS), ("attention", nn.ATTENTIONS)):
            if getattr(self, name) not in choices:
                raise SettingError(name, f"must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not 0 <= self.softcap < math.inf:
            raise SettingError("softcap", f"must be 0 (off) or a positive finite number, got {self.softcap}")
        if self.attention == "fused" and self.attn_dropout and self.dropout:
            raise SettingError("attention", "'fused' has no dropout on the attention weights: use 'einsum' or "
                                            "'auto' with attn_dropout, or no attn_dropout")
        if self.scaled_residual_init and self.init != "gpt2":
            raise SettingError("scaled_residual_init", f"needs init 'gpt2', got {self.init!r}")


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, state) as in the module docstring: only the leaves the config has.

    The key is split by role (wte, wpe, the head, dropout, one per block) whatever the
    options, so an option that drops a leaf (rotary: no wpe) leaves the others as they were.
    """
    C = config.n_embd
    dense, proj, embedding_scale = _initialisers(config)
    key_wte, key_wpe, key_head, key_drop, *block_keys = jax.random.split(key, 4 + config.n_layer)
    params = {"wte": nn.embedding_init(key_wte, padded_vocab(config), C) * embedding_scale,
              "blocks": [_block_init(block_key, config, dense, proj) for block_key in block_keys],
              **_norm_init("ln_f", config)}
    if config.pos == "learned":
        params["wpe"] = nn.embedding_init(key_wpe, config.block_size, C) * embedding_scale
    if not config.tie_embeddings:
        params["lm_head"] = dense(key_head, C, padded_vocab(config), bias=False)
    state = {"dropout": {"key": jax.random.key_data(key_drop)}} if config.dropout else {}
    return params, state


def flops_per_token(config: Config) -> float:
    """Training FLOPs per token, as nanoGPT's estimate_mfu counts them: 6 N + 12 L H Q T.

    N: the parameters a token's matmuls use, all but wpe (and wte, where the head is an
    lm_head of its own: a lookup costs nothing); 2 FLOPs per multiply-add forward and twice
    that backward make the 6. 12 L H Q T: each layer's attention scores and weighted sum
    over T = block_size positions (H heads of Q channels), forward and backward, counted in
    full although causal attention needs half. Norms, activations and the softmax are left out.
    """
    params, _ = jax.eval_shape(lambda key: init(key, config), jax.random.key(0))
    used = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    used -= math.prod(params["wpe"].shape) if "wpe" in params else 0
    used -= 0 if config.tie_embeddings else math.prod(params["wte"].shape)
    L, H, Q, T = config.n_layer, config.n_head, config.n_embd // config.n_head, config.block_size
    return 6.0 * used + 12.0 * L * H * Q * T


def padded_vocab(config: Config) -> int:
    """wte's rows: vocab_size rounded up to a multiple of pad_vocab_to (GPT-2: 50,257 -> 50,304).

    The padded rows make the head's matmul a friendlier shape (nanoGPT's vocab_size=50304);
    no token has them, and the logits are sliced back to vocab_size, so they are never
    sampled and no loss sees them. Under tie_embeddings their only gradient is weight decay.
    """
    return -(-config.vocab_size // config.pad_vocab_to) * config.pad_vocab_to


def _initialisers(config: Config) -> tuple[Callable, Callable, float]:
    """(dense, proj, embedding scale): dense(key, n_in, n_out, *, bias) -> {"W", "b"?} for c_attn,
    c_fc and the head; proj the same for the residual projections (attention's and the MLP's c_proj)."""
    if config.init == "gpt2":
        dense, embedding_scale = functools.partial(nn.linear_init, scale=GPT2_STD), GPT2_STD
    else:
        dense, embedding_scale = nn.torch_linear_init, 1.0
    proj = dense
    if config.zero_init_proj:
        proj = _zero_linear
    elif config.scaled_residual_init:
        proj = functools.partial(nn.linear_init, scale=GPT2_STD / (2 * config.n_layer) ** 0.5)
    return dense, proj, embedding_scale


def _zero_linear(key: jax.Array, n_in: int, n_out: int, *, bias: bool) -> dict:
    """A linear layer at zero (zero_init_proj): {"W": [n_in, n_out]} (+ {"b": [n_out]}); nothing drawn."""
    del key  # a block's keys are split the same with or without it
    return {"W": jnp.zeros((n_in, n_out)), **({"b": jnp.zeros((n_out,))} if bias else {})}


def _block_init(key: jax.Array, config: Config, dense: Callable, proj: Callable) -> dict:
    """One block's parameters (module docstring); c_attn's [C, 3C] draw is viewed as [C, 3, H, D]."""
    C, H, bias = config.n_embd, config.n_head, config.bias
    key_attn, key_attn_proj, key_fc, key_mlp_proj = jax.random.split(key, 4)
    c_attn = jax.tree.map(lambda a: a.reshape(*a.shape[:-1], 3, H, C // H), dense(key_attn, C, 3 * C, bias=bias))
    return {**_norm_init("ln_1", config),
            "attn": {"c_attn": c_attn, "c_proj": proj(key_attn_proj, C, C, bias=bias)},
            **_norm_init("ln_2", config),
            "mlp": {"c_fc": dense(key_fc, C, 4 * C, bias=bias), "c_proj": proj(key_mlp_proj, 4 * C, C, bias=bias)}}


def _norm_init(name: str, config: Config) -> dict:
    """{name: the norm's parameters} (NORMS), or {} for norm "rms-nogain", which has none."""
    if config.norm == "layer":
        return {name: nn.layernorm_init(config.n_embd, bias=config.bias)}
    if config.norm == "rms":
        return {name: nn.rmsnorm_init(config.n_embd)}
    return {}


# ----------------------------------------------------------------------------- forward


def _compute_dtype(like: jax.Array, config: Config):
    """bfloat16 under dtype="bfloat16", else `like`'s own dtype (the parameters'; float64 under x64)."""
    return jnp.bfloat16 if config.dtype == "bfloat16" else like.dtype


def _dense(params: dict, x: jax.Array, dtype) -> jax.Array:
    """x [N, in] @ W (+ b) with both cast to the compute dtype: [N, out] in that dtype."""
    y = x.astype(dtype) @ params["W"].astype(dtype)
    return y + params["b"].astype(dtype) if "b" in params else y


def _norm(params: dict, name: str, x: jax.Array, config: Config) -> jax.Array:
    """The norm `name` (ln_1, ln_2, ln_f) of x [N, C] under config.norm (NORMS)."""
    if config.norm == "layer":
        return nn.layernorm(params[name], x)
    if config.norm == "rms":
        return nn.rmsnorm(params[name], x)
    return ops.rms_norm(x)  # "rms-nogain": no params[name]


def _embed(params: dict, idx: jax.Array, positions: jax.Array, config: Config) -> jax.Array:
    """Token plus learned position embeddings: idx int [...] at positions (broadcastable) -> [..., C].
    Under pos="rotary" the tokens' alone: positions enter in the attention."""
    x = nn.embedding(params["wte"], idx)
    return x + params["wpe"][positions] if config.pos == "learned" else x


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
    """ln_f, then the head: x [N, C] -> float32 logits [N, vocab_size] (float32 accumulation), soft-capped;
    the padded vocabulary's columns (pad_vocab_to) are cut off."""
    W = params["wte"].T if config.tie_embeddings else params["lm_head"]["W"]  # [C, vocab]
    dtype = _compute_dtype(W, config)
    logits = jnp.matmul(_norm(params, "ln_f", x, config).astype(dtype), W.astype(dtype),
                        preferred_element_type=jnp.promote_types(dtype, jnp.float32))[:, :config.vocab_size]
    return ops.softcap(logits, config.softcap) if config.softcap > 0 else logits


def block(params: dict, x: jax.Array, attend: Callable, *, config: Config, dtype,
          rope: tuple[jax.Array, jax.Array] | None = None, drop: Callable = lambda x: x) -> tuple[jax.Array, Any]:
    """One pre-norm block on the residual stream: x + attention branch, then + MLP branch.

    `apply` (every position) and `decode_step` (one position, with the key/value cache)
    both run this; only `attend` differs between them.

    Args:
        params: one entry of params["blocks"].
        x: [N, C], the stream's rows (apply: B*T positions; decode_step: n sequences at one position).
        attend: (q, k, v [N, H, D]) -> (y [N, H, D], aux): each row's query over its keys
            (its causal window, or the cache with this position written, the new cache as aux).
        config: the model's Config; dtype: the compute dtype of the dense layers.
        rope: cos, sin broadcastable to [N, H, D/2] (pos="rotary"), or None.
        drop: dropout on each branch's output (train mode with dropout), else the identity.
    Returns:
        (x [N, C] in the stream's dtype, attend's aux).
    """
    q, k, v = _qkv(params, x, dtype, config, rope)
    y, aux = attend(q, k, v)
    x = x + drop(_dense(params["attn"]["c_proj"], y.reshape(x.shape[0], -1), dtype))  # the stream stays float32
    return x + drop(_mlp(params, x, config)), aux


def apply(params: dict, state: dict, idx: jax.Array, *, train: bool, config: Config) -> tuple[jax.Array, dict]:
    """idx int [B, T] (T <= block_size) -> (logits float32 [B, T, vocab], new_state).

    Position t's logits depend on idx[:, :t + 1] only. Train mode with dropout draws its
    masks (rate config.dropout) from state["dropout"]["key"] and returns the state with the
    next key; eval mode (and a model without dropout) returns state as is.
    """
    B, T = idx.shape
    dtype = _compute_dtype(params["wte"], config)
    drop, attn_drop, state = _dropouts(state, config, train, len(params["blocks"]))
    x = drop(_embed(params, idx, jnp.arange(T), config).reshape(B * T, -1))  # [B*T, C]: 2-D matmuls
    rope = _rope(jnp.arange(T), config, dtype, batch=B)  # cos, sin [B*T, 1, D/2], for every layer
    how = _attention_implementation(config, dtype, attn_dropout=attn_drop is not None)

    def causal(q, k, v):  # [B*T, H, D] each: every position over its sequence's positions <= t
        y = nn.attention(*(a.reshape(B, T, *a.shape[1:]) for a in (q, k, v)), dropout=attn_drop, implementation=how)
        return y.reshape(q.shape), None

    for block_params in params["blocks"]:
        x, _ = block(block_params, x, causal, config=config, dtype=dtype, rope=rope, drop=drop)
    return _head(params, x, config).reshape(B, T, -1), state


def _attention_implementation(config: Config, dtype, *, attn_dropout: bool = False) -> str:
    """nn.attention's implementation under config.attention for q, k, v in `dtype` (nn.attention_implementation)."""
    return nn.attention_implementation(config.attention, dtype, config.n_embd // config.n_head,
                                       attn_dropout=attn_dropout)


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
    x = _embed(params, token, pos, config)  # [n, C]
    rope = _rope(pos, config, dtype)  # cos, sin [1, 1, D/2]: every sequence is at position pos
    how, new_cache = _attention_implementation(config, dtype), []
    for block_params, layer in zip(params["blocks"], cache):
        x, layer = block(block_params, x, _cached_attention(layer, pos, how), config=config, dtype=dtype, rope=rope)
        new_cache.append(layer)
    return _head(params, x, config), new_cache


def _cached_attention(layer: dict, pos: jax.Array, implementation: str = "einsum") -> Callable:
    """`block`'s attend at one position: write k, v [n, H, D] at pos into the layer's
    {"k", "v"} [n, block_size, H, D], then attend over the positions written (<= pos) with
    nn.attention's `implementation`."""
    def attend(q, k, v):
        at = (0, pos, 0, 0)
        written = {"k": jax.lax.dynamic_update_slice(layer["k"], k[:, None], at),
                   "v": jax.lax.dynamic_update_slice(layer["v"], v[:, None], at)}
        visible = (jnp.arange(written["k"].shape[1]) <= pos)[None, :]  # [1, block_size]
        return nn.attention(q[:, None], written["k"], written["v"], mask=visible,
                            implementation=implementation)[:, 0], written
    return attend


# ----------------------------------------------------------------------------- the optimiser's view


def _key(path, i: int):
    """The dict key at path[i], or None (a list index, or a path too short)."""
    return getattr(path[i], "key", None) if -len(path) <= i < len(path) else None


def param_labels(params: dict) -> dict:
    """MATRIX for the blocks' weights (c_attn W [C, 3, H, D], attention's c_proj W [C, C], the
    MLP's c_fc W [C, 4C] and c_proj W [4C, C]); OTHER for the rest: wte and wpe (row lookups,
    not matmuls; a tied wte is also the head), lm_head W (Muon's recipe keeps the input and
    output layers on AdamW), the norms' gains and shifts, and every bias (labels.py)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: MATRIX if _key(path, 0) == "blocks" and _key(path, -1) == "W" else OTHER, params)


def decayed(params: dict) -> dict:
    """True for the weights ("W") and the embeddings (wte, wpe); False for the biases (c_attn's
    b [3, H, D] too, 3-D as it is) and the norms' parameters (labels.py)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: _key(path, -1) in ("W", "wte", "wpe"), params)


def muon_dimensions(tree: dict) -> dict:
    """c_attn's W [C, 3, H, D] as three [C, C] matrices, q's, k's and v's, orthogonalised apart
    (axis 1 a batch axis); any other leaf one [in, out...] matrix (labels.py)."""
    def dimensions(path, leaf):
        if _key(path, -2) == "c_attn" and _key(path, -1) == "W":
            return optax.contrib.MuonDimensionNumbers(reduction_axis=0, output_axis=(2, 3))
        return optax.contrib.MuonDimensionNumbers(reduction_axis=0, output_axis=tuple(range(1, leaf.ndim)))
    return jax.tree_util.tree_map_with_path(dimensions, tree)


PARAM_LABELS = ParamLabels(param_labels, decayed, muon_dimensions)


def upgrade_config(config: dict, params: dict) -> dict:
    """An old checkpoint's config dict in today's names, given its saved params (a state dict).

    norm "rms" once meant RMSNorm without a gain, saved with no ln_1 / ln_2 / ln_f; that is
    "rms-nogain" now ("rms" has a gain, and an ln_f). A dict of today comes back equal.
    """
    if config.get("norm") == "rms" and "ln_f" not in params:
        return {**config, "norm": RMS_NOGAIN}
    return dict(config)
