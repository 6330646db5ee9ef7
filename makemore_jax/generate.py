"""Continuing running text: n streams at once from one prompt, nanoGPT's sliding window.

nanoGPT's `generate` feeds the model the last block_size characters (`idx[:, -block_size:]`)
and draws the next one from the logits at the last position. Here the logits of every new
token are exactly those (`apply` on the last block_size tokens, positions from 0), computed
in two phases:

  - while the context still fits (at most block_size tokens from its start), a model with a
    `Decoder` ability adds one position per token to its key/value cache (the prompt is
    written first, one position at a time), so no position is computed twice;
  - once it slides, every position of the window moves to a new position embedding, so the
    keys and values of all layers change and no cache entry stays valid: each token then
    costs one forward pass over the window, as in nanoGPT.

A model without a Decoder runs the first phase as `apply` on the window padded at its end
(a causal model's earlier positions never see the padding). Token k of the continuation is
drawn with `sample.draw_tokens` and the key split(key, length)[k].
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .models import Decoder, Model, bind_config
from .sample import draw_tokens


@functools.partial(jax.jit, static_argnames=("model", "n", "length", "top_k", "config", "with_logits"))
def generate_ids(model: Model, params, state, key: jax.Array, prompt: jax.Array, *, n: int, length: int,
                 temperature: float = 1.0, top_k: int | None = None, config=None, with_logits: bool = False):
    """Continue `prompt` by `length` tokens in n streams.

    Args:
        model, config: a registered model (apply is model.bind(config)) and its config.
        params, state: the trained model's; it runs in eval mode.
        key: PRNG key.
        prompt: int32 [P], P >= 1, shared by the n streams.
    Returns:
        int32 [n, length], the new tokens; with `with_logits` also their float32 logits
        [n, length, vocab] (each row the model's on the last block_size tokens before it).
    """
    T, P = config.block_size, prompt.shape[0]
    start = max(0, P - T)  # where the first context begins (a long prompt is cropped, as nanoGPT)
    fits = min(P + length, start + T + 1)  # tokens [P, fits) are predicted from contexts that start at `start`
    tokens = jnp.zeros((n, max(P + length, start + T)), jnp.int32).at[:, :P].set(prompt)
    logits0 = jnp.zeros((n, length, config.vocab_size) if with_logits else (), jnp.float32)
    keys = jax.random.split(key, length)
    apply = model.bind(config)

    def emit(j, logits, tokens, kept):  # token j from its logits [n, vocab]
        token = draw_tokens(keys[j - P], logits, temperature, top_k)
        kept = kept.at[:, j - P].set(logits.astype(jnp.float32)) if with_logits else kept
        return tokens.at[:, j].set(token), kept

    decoder = model.ability(Decoder)
    if decoder:
        tokens, kept = _cached(decoder, config, params, state, tokens, logits0, emit, start, P, fits, n)
    else:
        def padded(j, carry):  # the context tokens[start:start + T], later positions still 0 (unseen)
            tokens, kept = carry
            logits, _ = apply(params, state, jax.lax.dynamic_slice_in_dim(tokens, start, T, axis=1), train=False)
            return emit(j, jax.lax.dynamic_index_in_dim(logits, j - 1 - start, axis=1, keepdims=False), tokens, kept)
        tokens, kept = jax.lax.fori_loop(P, fits, padded, (tokens, logits0))

    def window(j, carry):  # the context slid: the last T tokens, tokens[j - T:j]
        tokens, kept = carry
        logits, _ = apply(params, state, jax.lax.dynamic_slice_in_dim(tokens, j - T, T, axis=1), train=False)
        return emit(j, logits[:, -1], tokens, kept)

    tokens, kept = jax.lax.fori_loop(fits, P + length, window, (tokens, kept))
    new = tokens[:, P:P + length]
    return (new, kept) if with_logits else new


def _cached(decoder: Decoder, config, params, state, tokens, kept, emit, start: int, P: int, fits: int, n: int):
    """The first phase with the key/value cache: cache position p holds token start + p."""
    decode_step = bind_config(decoder.decode_step, config)
    cache = decoder.init_cache(params, config, n)

    def feed(p, cache):  # the prompt's tokens but its last, written into the cache
        return decode_step(params, state, cache, tokens[:, start + p], p)[1]

    cache = jax.lax.fori_loop(0, P - 1 - start, feed, cache)

    def step(j, carry):  # token j - 1 at position j - 1 - start gives the logits of token j
        tokens, kept, cache = carry
        logits, cache = decode_step(params, state, cache, tokens[:, j - 1], j - 1 - start)
        return (*emit(j, logits, tokens, kept), cache)

    tokens, kept, _ = jax.lax.fori_loop(P, fits, step, (tokens, kept, cache))
    return tokens, kept
