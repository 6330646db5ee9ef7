"""Pure layers: each is an `init` that makes its parameters and a function that applies them.

Parameters are plain dicts of arrays; layers with running statistics take and return a
`state` dict. Shapes: B batch, T time, C channels; a layer acts on the last axis.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

TANH_GAIN = 5.0 / 3.0  # Kaiming gain for tanh, as in torch.nn.init.calculate_gain("tanh")


# ----------------------------------------------------------------------------- linear / embedding


def linear_init(key: jax.Array, fan_in: int, fan_out: int, *, bias: bool = True, scale: float | None = None,
                bias_scale: float = 0.0) -> dict:
    """Weights N(0, 1) * scale, bias N(0, 1) * bias_scale (zero by default).

    `scale=None` is Kaiming for tanh: gain 5/3 over sqrt(fan_in).
    Returns {"W": [fan_in, fan_out]} plus {"b": [fan_out]} when bias.
    """
    if scale is None:
        scale = TANH_GAIN / math.sqrt(fan_in)
    key_w, key_b = jax.random.split(key)
    params = {"W": jax.random.normal(key_w, (fan_in, fan_out)) * scale}
    if bias:
        params["b"] = jax.random.normal(key_b, (fan_out,)) * bias_scale
    return params


def linear(params: dict, x: jax.Array) -> jax.Array:
    """x [..., fan_in] -> [..., fan_out]."""
    y = x @ params["W"]
    return y + params["b"] if "b" in params else y


def embedding_init(key: jax.Array, vocab_size: int, n_embd: int) -> jax.Array:
    """The lookup table C [vocab_size, n_embd], N(0, 1) as in the lectures."""
    return jax.random.normal(key, (vocab_size, n_embd))


def embedding(table: jax.Array, ids: jax.Array) -> jax.Array:
    """ids int [...] -> [..., n_embd]; the same as one_hot(ids) @ table."""
    return table[ids]


# ----------------------------------------------------------------------------- normalisation


def batchnorm_init(n: int, *, gamma: float = 1.0) -> tuple[dict, dict]:
    """Returns (params {"gamma", "beta"} [n], state {"mean", "var"} [n])."""
    params = {"gamma": jnp.full((n,), gamma), "beta": jnp.zeros((n,))}
    state = {"mean": jnp.zeros((n,)), "var": jnp.ones((n,))}
    return params, state


def batchnorm(params: dict, state: dict, x: jax.Array, *, train: bool, momentum: float = 0.1,
              eps: float = 1e-5, unbiased_running_var: bool = True) -> tuple[jax.Array, dict]:
    """Batch normalisation over every axis but the last, with explicit running statistics.

    Convention (PyTorch `BatchNorm1d`): in train mode x is normalised with the batch mean and
    the *biased* batch variance, and the running statistics move towards the batch's with
    `momentum` as the weight of the *new* batch:
        running = (1 - momentum) * running + momentum * batch,
    using the *unbiased* batch variance for `running var` (`unbiased_running_var=False` uses
    the biased one). The lectures' hand-written class differs: it uses the unbiased variance
    in both places. flax `nn.BatchNorm` / equinox differ too: their momentum 0.99 is the
    weight of the *old* statistics (flax momentum = 1 - ours) and their running variance is
    biased. In eval mode the running statistics normalise and the state comes back unchanged.
    The running update is outside the gradient: only x, gamma and beta receive gradients.

    Args:
        params: {"gamma", "beta"} [C].
        state: {"mean", "var"} [C].
        x: [..., C], e.g. [B, C] or [B, T, C].
    Returns:
        (y with x's shape, new state).
    """
    if not train:
        mean, var = state["mean"], state["var"]
        y = (x - mean) * jax.lax.rsqrt(var + eps)
        return params["gamma"] * y + params["beta"], state
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean), axis=axes)  # biased: normalises the batch
    y = params["gamma"] * ((x - mean) * jax.lax.rsqrt(var + eps)) + params["beta"]
    n = math.prod(x.shape[:-1])
    running_var = var * (n / (n - 1)) if unbiased_running_var and n > 1 else var
    new_state = jax.tree.map(
        lambda old, new: (1 - momentum) * old + momentum * jax.lax.stop_gradient(new),
        state, {"mean": mean, "var": running_var},
    )
    return y, new_state


def layernorm_init(n: int) -> dict:
    return {"gamma": jnp.ones((n,)), "beta": jnp.zeros((n,))}


def layernorm(params: dict, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Normalise each example over its last axis (biased variance, as torch.nn.LayerNorm)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return params["gamma"] * (x - mean) * jax.lax.rsqrt(var + eps) + params["beta"]


tanh = jnp.tanh
