"""The one loss every model trains and evaluates with."""

import jax
import jax.numpy as jnp
import optax

from .data import IGNORE


def cross_entropy_sum(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy over the targets that are not IGNORE (-1), and their count.

    Args:
        logits: float [..., vocab].
        targets: int [...]; entries equal to -1 contribute nothing.
    Returns:
        (sum of -log p(target), number of counted targets), both scalars.
    """
    valid = targets != IGNORE
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, targets, 0))
    return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy (nats) over the targets that are not -1.

    Args:
        logits: float [..., vocab].
        targets: int [...].
    Returns:
        scalar mean negative log-likelihood.
    """
    total, count = cross_entropy_sum(logits, targets)
    return total / jnp.maximum(count, 1)
