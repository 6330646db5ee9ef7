"""Batched, jitted generation: many names at once, decoded on the host."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .data import Vocab
from .kinds import SampleStep, window_step
from .models import Decoder, Model, bind_config


@functools.partial(jax.jit, static_argnames=("model", "n", "block_size", "max_len", "top_k", "config"))
def sample_ids(model: Model | Callable, params, state, key: jax.Array, *, n: int, block_size: int, max_len: int,
               temperature: float = 1.0, top_k: int | None = None, config=None) -> jax.Array:
    """Generate n sequences of at most max_len tokens; after the end token 0 every token is 0.

    Step i draws token i from softmax(logits / temperature), restricted to the top_k most
    likely tokens when top_k is given, with the key split(key, max_len)[i] (`draw_tokens`).
    The loop stops as soon as every sequence has ended, so a batch costs as many steps as
    its longest name, not max_len. The logits come from one of three paths, the same
    numbers up to float rounding:
      - a `Model` with a `Decoder` (transformer: key/value cache; rnn, gru: hidden state):
        one new position per step, from the cache `init_cache(params, config, n)`;
      - else its data kind's `sample_step` (kinds.py): a sequence model's apply on the
        growing prefix (start token 0 at position 0, zeros after it), logits read at
        position i; a context model's (and a bare apply function's) on the last block_size
        tokens, the start padded with 0 (the lectures' loop).

    Args:
        model: a `Model` (with `config`, its config: apply is model.bind(config)), or an apply function.
        params, state: the trained model's; apply runs in eval mode.
        key: PRNG key.
        n: sequences, sampled in parallel.
        block_size: the model's context length (for a sequence model its number of positions).
        max_len: tokens per sequence (the longest word plus the end token); a sequence model
            draws at most block_size of them (with the keys split(key, block_size)), and the
            rest are 0.
    Returns:
        int32 [n, max_len].
    """
    decoder = model.ability(Decoder) if isinstance(model, Model) else None
    if decoder:
        sampler = cached_step(decoder, params, state, config, n, block_size)
    elif isinstance(model, Model):
        sampler = model.kind.sample_step(model.bind(config), params, state, n, block_size)
    else:
        sampler = window_step(model, params, state, n, block_size)
    step, start = sampler.step, sampler.carry0
    steps = max_len if sampler.positions is None else min(max_len, sampler.positions)  # the tokens drawn at most
    keys = jax.random.split(key, steps)

    def body(loop):
        i, carry, tokens, done = loop
        draw = lambda logits: jnp.where(done, 0, draw_tokens(keys[i], logits, temperature, top_k))
        carry, token = step(carry, i, tokens, draw)
        return i + 1, carry, tokens.at[i].set(token), done | (token == 0)

    def more(loop):
        i, _, _, done = loop
        return (i < steps) & ~done.all()

    loop = (jnp.int32(0), start, jnp.zeros((max_len, n), jnp.int32), jnp.zeros((n,), bool))
    _, _, tokens, _ = jax.lax.while_loop(more, body, loop)
    return tokens.T


def cached_step(decoder: Decoder, params, state, config, n: int, block_size: int) -> SampleStep:
    """One new position per token from the model's cache (a key/value cache, a hidden state)."""
    decode_step = bind_config(decoder.decode_step, config)

    def cached(carry, i, tokens, draw):
        cache, token = carry  # cache pytree, [n] token at position i
        logits, cache = decode_step(params, state, cache, token, i)
        token = draw(logits)
        return (cache, token), token
    return SampleStep(cached, (decoder.init_cache(params, config, n), jnp.zeros((n,), jnp.int32)), block_size)


def draw_tokens(key: jax.Array, logits: jax.Array, temperature: float = 1.0, top_k: int | None = None) -> jax.Array:
    """One token per row from softmax(logits / temperature), over the top_k likeliest if given.

    Inverse-CDF sampling: one uniform number per row, located in the row's cumulative
    probabilities, where `jax.random.categorical` would draw Gumbel noise for every entry
    (vocab_size numbers per row). A token of probability 0 (outside the top k) is never drawn.

    Args:
        key: PRNG key.
        logits: [n, vocab].
    Returns:
        int32 [n].
    """
    logits = logits / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)  # [n, vocab]
    u = jax.random.uniform(key, (logits.shape[0], 1)) * cdf[:, -1:]  # scaled by the total, which rounding moves off 1
    return jnp.minimum(jnp.sum(cdf <= u, axis=-1), logits.shape[-1] - 1).astype(jnp.int32)


def decode(ids: np.ndarray, vocab: Vocab) -> list[str]:
    """Each row up to its first end token 0, as a string.

    Vectorised: the characters go into a [n, max_len] array of 1-character strings with NUL
    from each row's end token on, viewed as n strings of max_len characters, from which numpy
    drops the trailing NULs (a vocabulary holding NUL itself takes the per-row loop).
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] == 0 or "\0" in vocab.chars[1:]:
        return [_decode_row(row, vocab) for row in ids]
    letters = np.array(("",) + vocab.chars[1:], dtype="<U1")  # the end token 0 -> NUL
    grid = np.where(np.cumsum(ids == 0, axis=1) > 0, "", letters[ids])
    return np.ascontiguousarray(grid).view(f"<U{ids.shape[1]}")[:, 0].tolist()


def _decode_row(row: np.ndarray, vocab: Vocab) -> str:
    end = np.flatnonzero(row == 0)
    return vocab.decode(row[: end[0]] if end.size else row)


def novelty(samples: Iterable[str], training_words: Iterable[str]) -> float:
    """Share of samples that are not in the training set."""
    samples = list(samples)
    seen = set(training_words)
    return sum(s not in seen for s in samples) / max(len(samples), 1)
