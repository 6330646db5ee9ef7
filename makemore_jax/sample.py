"""Batched, jitted generation: many names at once, decoded on the host."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .data import Vocab


@functools.partial(jax.jit, static_argnames=("apply", "n", "block_size", "max_len", "top_k"))
def sample_ids(apply: Callable, params, state, key: jax.Array, *, n: int, block_size: int, max_len: int,
               temperature: float = 1.0, top_k: int | None = None) -> jax.Array:
    """Generate n sequences of at most max_len tokens; after the end token 0 every token is 0.

    Each step feeds the last block_size tokens (the start padded with 0) to `apply` in eval
    mode and draws the next token from softmax(logits / temperature), restricted to the
    top_k most likely tokens when top_k is given.

    Returns:
        int32 [n, max_len].
    """
    def step(carry, step_key):
        context, done = carry  # [n, block_size], [n]
        logits, _ = apply(params, state, context, train=False)
        logits = logits[:, -1] if logits.ndim == 3 else logits  # sequence models: last position
        logits = logits / temperature
        if top_k is not None:
            kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        token = jnp.where(done, 0, jax.random.categorical(step_key, logits)).astype(jnp.int32)
        context = jnp.concatenate([context[:, 1:], token[:, None]], axis=1)
        return (context, done | (token == 0)), token

    start = (jnp.zeros((n, block_size), jnp.int32), jnp.zeros((n,), bool))
    _, tokens = jax.lax.scan(step, start, jax.random.split(key, max_len))
    return tokens.T


def decode(ids: np.ndarray, vocab: Vocab) -> list[str]:
    """Each row up to its first end token 0, as a string."""
    words = []
    for row in np.asarray(ids):
        end = np.flatnonzero(row == 0)
        words.append(vocab.decode(row[: end[0]] if end.size else row))
    return words


def novelty(samples: Iterable[str], training_words: Iterable[str]) -> float:
    """Share of samples that are not in the training set."""
    samples = list(samples)
    seen = set(training_words)
    return sum(s not in seen for s in samples) / max(len(samples), 1)
