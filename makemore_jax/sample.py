"""Batched, jitted generation: many names at once, decoded on the host."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .data import Vocab
from .models import Model


@functools.partial(jax.jit, static_argnames=("model", "n", "block_size", "max_len", "top_k", "config"))
def sample_ids(model: Model | Callable, params, state, key: jax.Array, *, n: int, block_size: int, max_len: int,
               temperature: float = 1.0, top_k: int | None = None, config=None) -> jax.Array:
    """Generate n sequences of at most max_len tokens; after the end token 0 every token is 0.

    Step i draws token i from softmax(logits / temperature), restricted to the top_k most
    likely tokens when top_k is given, with the key split(key, max_len)[i]. The logits come
    from one of three paths, the same numbers up to float rounding:
      - a `Model` with `decode_step` (transformer: key/value cache; rnn, gru: hidden state):
        one new position per step, from the cache `init_cache(params, config, n)`;
      - a "sequence" `Model` without one: `apply` on the growing prefix (start token 0 at
        position 0, no left padding, zeros after the prefix), logits read at position i;
      - a "context" `Model` or a bare `apply` function: `apply` on the last block_size
        tokens, the start padded with 0 (the lectures' loop).

    Args:
        model: a `Model` (config is then its config, needed by init_cache), or an apply function.
        params, state: the trained model's; apply runs in eval mode.
        key: PRNG key.
        n: sequences, sampled in parallel.
        block_size: the model's context length (for a sequence model its number of positions).
        max_len: tokens per sequence (the longest word plus the end token); a sequence model
            draws at most block_size of them, and the rest are 0.
    Returns:
        int32 [n, max_len].
    """
    apply = model.apply if isinstance(model, Model) else model
    kind = "context" if apply is model else ("cached" if model.decode_step is not None else model.dataset)
    steps = max_len if kind == "context" else min(max_len, block_size)  # a sequence model has block_size positions

    def draw(logits, step_key, done):
        logits = logits / temperature
        if top_k is not None:
            kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        return jnp.where(done, 0, jax.random.categorical(step_key, logits)).astype(jnp.int32)

    def cached(carry, xs):
        cache, token, done = carry  # cache pytree, [n] token at position i, [n]
        i, step_key = xs
        logits, cache = model.decode_step(params, state, cache, token, i)
        token = draw(logits, step_key, done)
        return (cache, token, done | (token == 0)), token

    def prefix(carry, xs):
        tokens, done = carry  # [n, block_size]: start token, then the tokens drawn so far, then 0
        i, step_key = xs
        logits, _ = apply(params, state, tokens, train=False)
        token = draw(jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False), step_key, done)
        tokens = jax.lax.dynamic_update_slice(tokens, token[:, None], (0, jnp.minimum(i + 1, block_size - 1)))
        return (tokens, done | (token == 0)), token

    def window(carry, xs):
        context, done = carry  # [n, block_size]
        logits, _ = apply(params, state, context, train=False)
        token = draw(logits[:, -1] if logits.ndim == 3 else logits, xs[1], done)
        context = jnp.concatenate([context[:, 1:], token[:, None]], axis=1)
        return (context, done | (token == 0)), token

    zeros, not_done = jnp.zeros((n, block_size), jnp.int32), jnp.zeros((n,), bool)
    step, start = {"cached": (cached, (model.init_cache(params, config, n) if kind == "cached" else None,
                                       zeros[:, 0], not_done)),
                   "sequence": (prefix, (zeros, not_done)),
                   "context": (window, (zeros, not_done))}[kind]
    xs = (jnp.arange(steps, dtype=jnp.int32), jax.random.split(key, max_len)[:steps])
    _, tokens = jax.lax.scan(step, start, xs)
    return jnp.pad(tokens.T, ((0, 0), (0, max_len - steps)))


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
