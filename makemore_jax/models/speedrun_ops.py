"""Pure functions behind the transformer's "speedrun" options (modded-nanogpt's and nanochat's GPT).

None of them has parameters: rotary position embeddings, RMSNorm without a gain (on the
residual stream and, as QK-norm, on each head's queries and keys), the squared ReLU and
the soft cap on the logits. Shapes: T positions, H heads, D head size, C channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ROTARY_BASE = 10_000.0  # RoFormer's base: pair i turns by pos * base^(-2i / D)
RMS_EPS = 1e-5  # nn.rmsnorm's


def _float(dtype) -> jnp.dtype:
    """At least float32 (float64 stays float64): the precision the statistics are computed in."""
    return jnp.promote_types(dtype, jnp.float32)


def rotary_cos_sin(positions: jax.Array, head_size: int, dtype=jnp.float32, *,
                   base: float = ROTARY_BASE) -> tuple[jax.Array, jax.Array]:
    """The rotation table of rotary embeddings: cos and sin of pos * theta_i.

    theta_i = base^(-2i / D) for the D / 2 pairs i = 0 .. D/2 - 1 (RoFormer, Su et al. 2021).
    The angles are computed in at least float32 and the tables cast to `dtype` (the
    compute dtype the queries and keys are in), so a model computes them once per call
    and every layer reuses them.

    Args:
        positions: int [...] (e.g. arange(T) [T], or one scalar position when decoding).
        head_size: D, even.
        dtype: the tables' dtype.
    Returns:
        (cos, sin), each [..., D / 2] in `dtype`.
    """
    precision = _float(dtype)
    theta = base ** (-jnp.arange(0, head_size, 2, dtype=precision) / head_size)  # [D/2]
    angle = jnp.asarray(positions, precision)[..., None] * theta  # [..., D/2]
    return jnp.cos(angle).astype(dtype), jnp.sin(angle).astype(dtype)


def rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate each pair (x[i], x[i + D/2]) of the last axis by its angle (rotary embedding).

    Channel i and channel i + D/2 form pair i (the half-split pairing of GPT-NeoX and
    nanochat: two contiguous slices, no strided gather), turned by +angle:
        y[i] = x[i] cos - x[i + D/2] sin,   y[i + D/2] = x[i] sin + x[i + D/2] cos.
    Applied to queries at position t and keys at position s, q_t . k_s then depends on
    the positions only through t - s.

    Args:
        x: [..., D] (queries or keys, e.g. [B, T, H, D]).
        cos, sin: from `rotary_cos_sin`, broadcastable to [..., D / 2] (e.g. [T, 1, D/2]).
    Returns:
        x's shape and dtype.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.astype(x.dtype), sin.astype(x.dtype)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def rms_norm(x: jax.Array, *, eps: float = RMS_EPS) -> jax.Array:
    """RMSNorm with no learned gain: x / sqrt(mean(x^2) + eps) over the last axis.

    Used on the residual stream (norm="rms-nogain") and, per head over D, on queries and keys
    (QK-norm). The statistics are computed in at least float32 whatever x's dtype.

    Args:
        x: [..., C].
    Returns:
        x's shape and dtype; each row's root mean square is sqrt(ms / (ms + eps)) ~ 1.
    """
    f = x.astype(_float(x.dtype))
    return (f * jax.lax.rsqrt(jnp.mean(jnp.square(f), axis=-1, keepdims=True) + eps)).astype(x.dtype)


def relu2(x: jax.Array) -> jax.Array:
    """The squared ReLU, max(x, 0)^2 (So et al., Primer): modded-nanogpt's MLP nonlinearity. x's shape."""
    return jnp.square(jax.nn.relu(x))


def softcap(logits: jax.Array, cap: float) -> jax.Array:
    """cap * tanh(logits / cap): bounds every logit to (-cap, cap), near identity for |logit| << cap.

    Args:
        logits: [..., vocab] (float32).
        cap: > 0.
    Returns:
        logits' shape and dtype.
    """
    return cap * jnp.tanh(logits / cap)
