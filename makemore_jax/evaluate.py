"""Exact loss over a whole split: every example once, in fixed-size jitted batches."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .data import IGNORE
from .losses import cross_entropy_sum


@functools.partial(jax.jit, static_argnames=("apply", "batch_size"))
def _summed_loss(apply: Callable, params, state, X: jax.Array, Y: jax.Array, batch_size: int):
    """X [n_batches * batch_size, ...] -> (summed nll, counted targets) in eval mode."""
    def body(totals, batch):
        logits, _ = apply(params, state, batch[0], train=False)
        total, count = cross_entropy_sum(logits, batch[1])
        return (totals[0] + total, totals[1] + count), None

    batches = (X.reshape(-1, batch_size, *X.shape[1:]), Y.reshape(-1, batch_size, *Y.shape[1:]))
    (total, count), _ = jax.lax.scan(body, (jnp.zeros(()), jnp.zeros((), jnp.int32)), batches)
    return total, count


def split_loss(apply: Callable, params, state, X: np.ndarray, Y: np.ndarray, *, batch_size: int = 8192) -> float:
    """Mean cross-entropy in nats over every target of the split (eval mode, state unchanged).

    Args:
        apply: the model's apply function.
        X: int [N, ...] inputs; Y: int [N] or [N, T] targets (-1 ignored).
    Returns:
        mean negative log-likelihood per counted target (nats).
    """
    n = len(X)
    batch_size = max(1, min(batch_size, n))
    pad = -n % batch_size  # padded rows get target -1, which the loss ignores
    X = np.concatenate([X, np.zeros((pad, *X.shape[1:]), X.dtype)])
    Y = np.concatenate([Y, np.full((pad, *Y.shape[1:]), IGNORE, Y.dtype)])
    total, count = _summed_loss(apply, params, state, X, Y, batch_size)
    return float(total) / max(int(count), 1)


def bits(nats: float) -> float:
    """Nats to bits per character."""
    return nats / math.log(2)
