"""Pure layers: each is an `init` that makes its parameters and a function that applies them.

Parameters are plain dicts of arrays; layers with running statistics take and return a
`state` dict. Shapes: B batch, T time, C channels; a layer acts on the last axis.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

TANH_GAIN = 5.0 / 3.0  # Kaiming gain for tanh, as in torch.nn.init.calculate_gain("tanh")


# ----------------------------------------------------------------------------- linear / embedding


def linear_init(key: jax.Array, fan_in: int, fan_out: int, *, bias: bool = True, scale: float | None = None,
                bias_scale: float = 0.0) -> dict:
    """Weights N(0, 1) * scale, bias N(0, 1) * bias_scale (zero by default).

    Args:
        key: PRNG key, split between weights and bias.
        fan_in, fan_out: input and output widths.
        bias: whether to make a bias (drop it when a BatchNorm follows: its beta does the job).
        scale: weight scale; None is Kaiming for tanh, gain 5/3 over sqrt(fan_in).
        bias_scale: bias scale.
    Returns:
        {"W": [fan_in, fan_out]} plus {"b": [fan_out]} when bias.
    """
    if scale is None:
        scale = TANH_GAIN / math.sqrt(fan_in)
    key_w, key_b = jax.random.split(key)
    params = {"W": jax.random.normal(key_w, (fan_in, fan_out)) * scale}
    if bias:
        params["b"] = jax.random.normal(key_b, (fan_out,)) * bias_scale
    return params


def torch_linear_init(key: jax.Array, fan_in: int, fan_out: int, *, bias: bool = True) -> dict:
    """torch.nn.Linear's default: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (Kaiming-uniform with a = sqrt(5), as torch writes it, has exactly that bound.)
    Returns {"W": [fan_in, fan_out]} plus {"b": [fan_out]} when bias.
    """
    bound = 1.0 / math.sqrt(fan_in)
    key_w, key_b = jax.random.split(key)
    params = {"W": jax.random.uniform(key_w, (fan_in, fan_out), minval=-bound, maxval=bound)}
    if bias:
        params["b"] = jax.random.uniform(key_b, (fan_out,), minval=-bound, maxval=bound)
    return params


def linear(params: dict, x: jax.Array) -> jax.Array:
    """x @ W (+ b): x [..., fan_in] -> [..., fan_out]."""
    y = x @ params["W"]
    return y + params["b"] if "b" in params else y


def embedding_init(key: jax.Array, vocab_size: int, n_embd: int) -> jax.Array:
    """The lookup table C [vocab_size, n_embd], N(0, 1) as in the lectures."""
    return jax.random.normal(key, (vocab_size, n_embd))


def embedding(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Row lookup: ids int [...] -> [..., n_embd]; the same as one_hot(ids) @ table."""
    return table[ids]


# ----------------------------------------------------------------------------- batchnorm


def batchnorm_init(n: int, *, gamma: float = 1.0) -> tuple[dict, dict]:
    """Returns (params {"gamma", "beta"} [n], state {"mean", "var"} [n]); running stats 0 and 1."""
    params = {"gamma": jnp.full((n,), gamma), "beta": jnp.zeros((n,))}
    state = {"mean": jnp.zeros((n,)), "var": jnp.ones((n,))}
    return params, state


def batchnorm(params: dict, state: dict, x: jax.Array, *, train: bool, momentum: float = 0.1,
              eps: float = 1e-5, unbiased_running_var: bool = True,
              fused_backward: bool = True) -> tuple[jax.Array, dict]:
    """Batch normalisation over every axis but the last, with explicit running statistics.

    Convention (PyTorch `BatchNorm1d`): in train mode x is normalised with the batch mean and
    the *biased* batch variance, and the running statistics move towards the batch's with
    `momentum` as the weight of the *new* batch:
        running = (1 - momentum) * running + momentum * batch,
    using the *unbiased* batch variance (n / (n - 1) times the biased one, n = the number of
    rows reduced) for the running variance; `unbiased_running_var=False` uses the biased one.
    The lectures' hand-written class differs: it uses the unbiased variance in both places.
    flax `nn.BatchNorm` and equinox differ too: their momentum (0.99) is the weight of the
    *old* statistics (flax momentum = 1 - ours) and their running variance is the biased one
    (ours with `unbiased_running_var=False`). In eval mode the running statistics normalise
    and the state comes back unchanged (the same objects).

    The new state is outside the gradient (stop_gradient): only x, gamma and beta receive
    gradients, and only through y. By default the train-mode output carries a fused
    derivative rule (see `_normalize`): two reductions per layer in the backward pass where
    autodiff's compiles to five, about 10% faster training of mlp-deep on CPU
    (benchmarks/batchnorm_vjp.py); `fused_backward=False` lets jax differentiate the plain
    formula.

    Args:
        params: {"gamma", "beta"} [C].
        state: {"mean", "var"} [C].
        x: [..., C], e.g. [B, C] or [B, T, C]; train mode needs at least two rows.
        train: batch statistics and a state update (True), or the running statistics (False).
        momentum: weight of the new batch in the running statistics (1.0: replace them).
        eps: added to the variance under the square root.
    Returns:
        (y with x's shape, new state {"mean", "var"} [C]).
    """
    if not train:
        y = (x - state["mean"]) * jax.lax.rsqrt(state["var"] + eps)
        return params["gamma"] * y + params["beta"], state
    n = math.prod(x.shape[:-1])
    if n < 2:
        raise ValueError(f"batchnorm in train mode needs at least 2 rows per channel, got input shape {x.shape}")
    normalize = _normalize if fused_backward else _normalize_plain
    y = normalize(x, params["gamma"], params["beta"], eps)
    mean, var = _moments(jax.lax.stop_gradient(x))  # the same reductions as y's: XLA computes them once
    batch = {"mean": mean, "var": var * (n / (n - 1)) if unbiased_running_var else var}
    new_state = jax.tree.map(lambda old, new: (1 - momentum) * old + momentum * new, state, batch)
    return y, jax.lax.stop_gradient(new_state)


def _moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and biased variance over every axis but the last: ([C], [C])."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    return mean, jnp.mean(jnp.square(x - mean), axis=axes)


def _standardize(x: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """(xhat [..., C], inv [C]): xhat = (x - mean) * inv, inv = 1 / sqrt(biased var + eps)."""
    mean, var = _moments(x)
    inv = jax.lax.rsqrt(var + eps)
    return (x - mean) * inv, inv


def _normalize_plain(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float) -> jax.Array:
    """Train-mode batchnorm output gamma * xhat + beta, differentiated by autodiff."""
    return gamma * _standardize(x, eps)[0] + beta


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _normalize(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float) -> jax.Array:
    """`_normalize_plain` with a hand-written derivative, written so its transpose is fused.

    With xhat = (x - mean) * inv and means over the n rows, the tangent is
        dy = gamma * inv * (dx - mean(dx) - xhat * mean(dx * xhat)) + dgamma * xhat + dbeta.
    Grouping the per-channel terms as s_beta = dbeta - gamma * inv * mean(dx) and s_gamma =
    dgamma - gamma * inv * mean(dx * xhat) makes jax's transpose (reverse mode) share them:
        dbeta = sum(g), dgamma = sum(g * xhat),
        dx = gamma * inv / n * (n * g - dbeta - xhat * dgamma)
    for the upstream gradient g: the lecture's one-line BatchNorm backward, two reductions.
    A custom_jvp rather than a custom_vjp keeps forward mode (jax.jvp, check_grads "fwd")
    and higher derivatives working.
    """
    return _normalize_plain(x, gamma, beta, eps)


@_normalize.defjvp
def _normalize_jvp(eps, primals, tangents):
    x, gamma, beta = primals
    dx, dgamma, dbeta = tangents
    axes = tuple(range(x.ndim - 1))
    xhat, inv = _standardize(x, eps)
    scale = gamma * inv  # [C]
    s_beta = dbeta - scale * jnp.mean(dx, axis=axes)
    s_gamma = dgamma - scale * jnp.mean(dx * xhat, axis=axes)
    return gamma * xhat + beta, scale * dx + xhat * s_gamma + s_beta


# ----------------------------------------------------------------------------- layernorm / tanh


def layernorm_init(n: int, *, bias: bool = True) -> dict:
    """{"gamma": ones [n], "beta": zeros [n]}; without bias no "beta" (nanoGPT's bias=False)."""
    return {"gamma": jnp.ones((n,)), "beta": jnp.zeros((n,))} if bias else {"gamma": jnp.ones((n,))}


def layernorm(params: dict, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Normalise each example over its last axis (biased variance, as torch.nn.LayerNorm).

    Args:
        params: {"gamma"} [C], and {"beta"} [C] unless made without bias.
        x: [..., C].
    Returns:
        gamma * (x - mean) / sqrt(var + eps) (+ beta), x's shape; statistics per row.
    """
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = params["gamma"] * (x - mean) * jax.lax.rsqrt(var + eps)
    return y + params["beta"] if "beta" in params else y


tanh = jnp.tanh  # the lectures' nonlinearity, named here so models read as a list of layers


# ----------------------------------------------------------------------------- attention


ATTENTIONS = ("auto", "einsum", "fused")  # a transformer's `attention` setting (attention_implementation)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, mask: jax.Array | None = None,
              dropout: Callable[[jax.Array], jax.Array] | None = None, implementation: str = "einsum") -> jax.Array:
    """Scaled dot-product attention over heads: softmax(q k^T / sqrt(D) + mask) v.

    nanoGPT's `CausalSelfAttention` core with the dims named in einsum: b batch, t query
    position, s key position, h head, d head size. The other implementations are
    `jax.nn.dot_product_attention` on the same layout (its [B, T, N, H] is this [B, T, H, D]):
    "xla" (XLA's lowering: on CPU the same einsum-softmax-einsum), "cudnn" (cuDNN's flash
    kernel on a GPU: float16 / bfloat16 only; it never materialises the [T, S] scores). Both
    equal the einsum to 1e-5 in float32 (tests/test_nn.py); neither takes `dropout`. cuDNN
    takes the causal mask alone, so an explicit `mask` (the cached decoding's) runs on XLA's.

    Args:
        q: [B, T, H, D] queries.
        k, v: [B, S, H, D] keys and values.
        mask: bool, broadcastable to [B, H, T, S]: True where query t may attend to key s.
            None is the causal mask of a sequence attending to itself: s <= t (T == S).
        dropout: applied to the attention weights [B, H, T, S] (nanoGPT's attn_dropout); None: none.
        implementation: "einsum", "xla" or "cudnn" (attention_implementation picks one).
    Returns:
        [B, T, H, D]: per head, the attention-weighted mean of the values. The softmax runs
        in float32 whatever the inputs' dtype (as torch's autocast does); the products in it.
    """
    if implementation != "einsum":
        if dropout is not None:
            raise ValueError(f"attention dropout needs the einsum implementation, not {implementation!r}")
        if mask is None:
            return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=implementation)
        mask = jnp.asarray(mask).reshape((1,) * (4 - jnp.ndim(mask)) + jnp.shape(mask))
        return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")
    T, S, D = q.shape[1], k.shape[1], q.shape[-1]
    if mask is None:
        mask = jnp.tril(jnp.ones((T, S), bool))
    att = jnp.einsum("bthd,bshd->bhts", q, k) * (1.0 / math.sqrt(D))
    att = jax.nn.softmax(jnp.where(mask, att, -jnp.inf).astype(jnp.promote_types(att.dtype, jnp.float32)),
                         axis=-1).astype(v.dtype)
    if dropout is not None:
        att = dropout(att)
    return jnp.einsum("bhts,bshd->bthd", att, v)


def attention_implementation(choice: str, dtype, head_size: int, *, attn_dropout: bool = False,
                             backend: str | None = None) -> str:
    """`attention`'s implementation for a transformer's setting (ATTENTIONS) on `backend` (default JAX's).

    "einsum": the einsum. "fused": jax.nn.dot_product_attention, cuDNN's kernel where it
    applies (a GPU, float16 / bfloat16, a head size that is a multiple of 8 up to 128), else
    XLA's. "auto": cuDNN's kernel where it applies, else the einsum: on CPU XLA lowers the
    fused call to the same products and it ran no faster in a training step
    (benchmarks/RESULTS.md), and on a GPU in float32 the same holds for XLA's. Attention
    dropout (train mode) always takes the einsum.
    """
    if choice not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {choice!r}")
    if attn_dropout or choice == "einsum":
        return "einsum"
    cudnn = ((backend or jax.default_backend()) == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
             and head_size % 8 == 0 and head_size <= 128)
    if cudnn:
        return "cudnn"
    return "xla" if choice == "fused" else "einsum"


gelu = functools.partial(jax.nn.gelu, approximate=True)  # GPT-2's tanh approximation (makemore's NewGELU)


# ----------------------------------------------------------------------------- groupnorm / rmsnorm


def groupnorm_init(n: int, groups: int) -> dict:
    """{"gamma": ones, "beta": zeros}, each [groups, n // groups]: the group count is in the shape.

    Keeping the groups as the leading axis lets a model's `apply` read the count from its
    parameters (as the transformer's head count), so it needs no config.
    """
    if groups < 1 or n % groups:
        raise ValueError(f"groupnorm: {n} channels do not split into {groups} groups")
    return {"gamma": jnp.ones((groups, n // groups)), "beta": jnp.zeros((groups, n // groups))}


def groupnorm(params: dict, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Normalise each example's channels in G groups, per position (torch.nn.GroupNorm on [.., C]).

    The last axis splits into G consecutive groups of C / G channels; each group is
    standardised with its own mean and biased variance, then scaled and shifted per channel.
    One group is LayerNorm; C groups (one channel each) on a [B, C] input is Instance Norm,
    which on a plain feature vector has nothing left to normalise (every output is beta).

    Args:
        params: {"gamma", "beta"} [G, C / G].
        x: [..., C]; statistics per row, over the C / G channels of each group.
    Returns:
        x's shape.
    """
    g = x.reshape(*x.shape[:-1], *params["gamma"].shape)  # [..., G, C/G]
    mean = jnp.mean(g, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(g - mean), axis=-1, keepdims=True)
    y = params["gamma"] * (g - mean) * jax.lax.rsqrt(var + eps) + params["beta"]
    return y.reshape(x.shape)


def rmsnorm_init(n: int) -> dict:
    """{"gamma": ones [n]}: a learned gain and no shift."""
    return {"gamma": jnp.ones((n,))}


def rmsnorm(params: dict, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Root-mean-square normalisation over the last axis (Zhang and Sennrich, 2019).

    LayerNorm without the centring and without beta: x / sqrt(mean(x^2) + eps) * gamma.

    Args:
        params: {"gamma"} [C].
        x: [..., C]; statistics per row.
    Returns:
        x's shape.
    """
    ms = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
    return params["gamma"] * x * jax.lax.rsqrt(ms + eps)
