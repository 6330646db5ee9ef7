"""Data kinds: what a model reads, as one record per kind.

A kind says how its file's text becomes items (`parse`), how the items are split into
train/dev/test (`split`), how a split becomes host arrays (`build`), how the training loop
draws a batch from those arrays on the device (`batch`), which arrays evaluation reads
(`eval_arrays`) and how sampling feeds the model (`sample`). Nothing above this module asks
which kind it has: a model's registry entry names one (`Model.dataset`), and the run, the
training chunk, evaluation and sampling call the record's functions.

    kind      items              a split's arrays                          a batch
    context   words, 80/10/10    X [N, block_size] -> Y [N]                rows of X, Y
    sequence  words, 80/10/10    X, Y [N, block_size], Y -1 where ignored  rows of X, Y

Batches are drawn from `fold_in(key, step)`, so chunking and resuming never change a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import NamedTuple

import jax

from .data import (DataError, Vocab, build_context_dataset, build_sequence_dataset, parse_words,
                   sequence_block_size, split_words)


class DataKind(NamedTuple):
    name: str
    parse: Callable  # (raw bytes, path) -> items (a list of words)
    split: Callable  # items -> (train, dev, test) items
    build: Callable  # (items, vocab, block_size) -> arrays, a tuple of numpy int32 arrays
    batch: Callable  # (arrays on device, key, steps int32 [S], batch_size) -> (x [S, B, ...], y [S, B, ...])
    eval_arrays: Callable  # (arrays, block_size) -> (X, Y): every target of the split once
    default_block_size: Callable  # items -> block_size the data needs, or None (the Config's own)
    sample: str  # how sampling feeds the model: "window" (the last block_size tokens) or "prefix"


def batch_rows(key: jax.Array, steps: jax.Array, batch_size: int, n: int) -> jax.Array:
    """Minibatch rows for each step: int32 [len(steps), batch_size], from fold_in(key, step)."""
    draw = lambda step: jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n)
    return jax.vmap(draw)(steps)


def row_batch(arrays, key: jax.Array, steps: jax.Array, batch_size: int):
    """Random rows of (X, Y), drawn per step (`batch_rows`), gathered at once: X[rows], Y[rows]."""
    X, Y = arrays
    rows = batch_rows(key, steps, batch_size, X.shape[0])
    return X[rows], Y[rows]


def _whole(arrays, block_size: int):
    return arrays


def build_sequence(words: Sequence[str], vocab: Vocab, block_size: int):
    """`build_sequence_dataset(words, vocab, block_size - 1)`: X and Y [len(words), block_size]."""
    if block_size < 2:
        raise DataError(f"block_size must be at least 2 for a sequence model, got {block_size}")
    longest = max(map(len, words), default=0)
    if longest >= block_size:
        raise DataError(f"a word has {longest} characters; block_size {block_size} fits at most {block_size - 1}")
    return build_sequence_dataset(words, vocab, block_size - 1)


CONTEXT = DataKind("context", parse_words, split_words, build_context_dataset, row_batch, _whole,
                   lambda words: None, "window")
SEQUENCE = DataKind("sequence", parse_words, split_words, build_sequence, row_batch, _whole,
                    sequence_block_size, "prefix")

KINDS = MappingProxyType({k.name: k for k in (CONTEXT, SEQUENCE)})


def get(name: str) -> DataKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"dataset kind must be one of {', '.join(KINDS)}, got {name!r}") from None
