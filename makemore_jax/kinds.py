"""Data kinds: what a model reads, as one record per kind.

A kind says how its file's text becomes items (`parse`), how the items are split into
train/dev/test (`split`), how a split becomes host arrays (`build`), how the training loop
draws a batch from those arrays on the device (`batch`), which arrays evaluation reads
(`eval_arrays`), how drawing a word feeds the model one position at a time (`sample_step`),
and whether sampling continues running text instead (`continues_text`). Nothing above this
module asks which kind it has: a model's registry entry names one (`Model.dataset`), and
the run, the training chunk, evaluation and sampling call the record's functions.

    kind      items              a split's arrays                          a batch
    context   words, 80/10/10    X [N, block_size] -> Y [N]                rows of X, Y
    sequence  words, 80/10/10    X, Y [N, block_size], Y -1 where ignored  rows of X, Y
    text      one string, 90/10  X = ids[:-1], Y = ids[1:] [n - 1]         windows X[o:o+T], Y[o:o+T]

The text kind alone takes a tokenizer setting (`tokenizes`; tokens.py): its ids are
characters by default, or BPE tokens, or nanoGPT's prepared .bin ids.

Batches are drawn from `fold_in(key, step)`, so chunking and resuming never change a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import text
from .data import (DEFAULT_DATA, DEFAULT_TEXT, DataError, Vocab, build_context_dataset, build_sequence_dataset,
                   parse_words, read_file, sequence_block_size, split_words)
from .settings import UsageError

EVAL_ROWS = 8192  # rows of one evaluation batch of the words kinds


class DataKind(NamedTuple):
    name: str
    parse: Callable  # (raw bytes, path) -> items (a list of words, or the text)
    split: Callable  # items -> a tuple of items, one per name in `splits`
    build: Callable  # (items, vocab, block_size) -> arrays, a tuple of numpy int32 arrays
    batch: Callable  # (arrays on device, key, steps int32 [S], batch_size, block_size) -> (x [S, B, ...], y [S, B, ...])
    eval_arrays: Callable  # (arrays, block_size) -> (X, Y): every target of the split once
    default_block_size: Callable  # items -> block_size the data needs, or None (the Config's own)
    sample_step: Callable | None  # (apply, params, state, n, block_size) -> SampleStep; None: text is continued
    splits: tuple[str, ...]  # the splits' names; the second is the one runs are chosen on
    vocab: Callable  # (items, tokenizer setting=None) -> Vocab (text: or a tokens.TokenVocab)
    boundary: bool  # whether the Vocab has the boundary token "." at index 0
    default_data: str  # the bundled file read when no data is given
    check: Callable  # (items, vocab, config, TrainConfig, where) -> None; raises UsageError on data too small
    unit: str  # what the items are counted in ("words", "characters")
    info: Callable  # items -> what a checkpoint records about them ({"max_word_len": ...})
    eval_batch: Callable  # (block_size, vocab_size) -> rows of one evaluation batch
    read: Callable  # path -> data.Data (the file read and parsed; text: also a folder of nanoGPT's .bin)
    tokenizes: bool  # whether a tokenizer setting applies (running text); words are read by character
    target_bytes: Callable  # (arrays, vocab) -> UTF-8 bytes of the split's targets, or None (not counted)
    amount: Callable  # items -> how much data, for people ("29,910 words")

    @property
    def continues_text(self) -> bool:
        """Sampling continues a prompt of running text (generate.py) instead of drawing items one by one."""
        return self.sample_step is None


class SampleStep(NamedTuple):
    """How a word is drawn position by position (sample.sample_ids): step(carry, i, tokens [max_len, n],
    draw) -> (carry, token [n]) from carry0; at most `positions` tokens (None: as many as asked)."""

    step: Callable
    carry0: object
    positions: int | None


def batch_rows(key: jax.Array, steps: jax.Array, batch_size: int, n: int) -> jax.Array:
    """Minibatch rows for each step: int32 [len(steps), batch_size], from fold_in(key, step)."""
    draw = lambda step: jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n)
    return jax.vmap(draw)(steps)


def row_batch(arrays, key: jax.Array, steps: jax.Array, batch_size: int, block_size: int | None = None):
    """Random rows of (X, Y), drawn per step (`batch_rows`), gathered at once: X[rows], Y[rows]."""
    X, Y = arrays
    rows = batch_rows(key, steps, batch_size, X.shape[0])
    return X[rows], Y[rows]


def text_batch(arrays, key: jax.Array, steps: jax.Array, batch_size: int, block_size: int):
    """Windows of the text's streams at random offsets: x, y int32 [S, batch_size, block_size].

    Step s's offsets are randint(fold_in(key, s), (batch_size,), 0, n - block_size) for a
    split of n characters (nanoGPT's get_batch); the window at offset o is the block_size + 1
    characters ids[o:o + block_size + 1], as x = X[o:o + T] = w[:-1] and y = Y[o:o + T] = w[1:].
    """
    X, Y = arrays  # int32 [n - 1] each
    offsets = batch_rows(key, steps, batch_size, X.shape[0] - block_size + 1)  # [S, B]
    at = offsets[..., None] + jnp.arange(block_size)  # [S, B, T]
    return X[at], Y[at]


def build_splits(kind: DataKind, items, vocab: Vocab, block_size: int) -> dict[str, tuple]:
    """The kind's split of the items (words: the lectures' 80/10/10, seed 42; text: 90/10 by
    position), each part as its numpy arrays, by the kind's split names."""
    return {name: kind.build(part, vocab, block_size) for name, part in zip(kind.splits, kind.split(items))}


def window_step(apply: Callable, params, state, n: int, block_size: int) -> SampleStep:
    """The lectures' loop: apply on the last block_size tokens, the start padded with 0 (a context model)."""
    def window(context, i, tokens, draw):  # context [n, block_size]: the last block_size tokens
        logits, _ = apply(params, state, context, train=False)
        token = draw(logits[:, -1] if logits.ndim == 3 else logits)
        return jnp.concatenate([context[:, 1:], token[:, None]], axis=1), token
    return SampleStep(window, jnp.zeros((n, block_size), jnp.int32), None)


def prefix_step(apply: Callable, params, state, n: int, block_size: int) -> SampleStep:
    """A sequence model: apply on the growing prefix (start token 0, the tokens so far, zeros after),
    the logits read at position i; it has block_size positions, so at most block_size tokens."""
    def prefix(carry, i, tokens, draw):
        start = jnp.zeros((1, n), jnp.int32)
        seq = jnp.concatenate([start, tokens[:block_size - 1]]).T  # [n, block_size]
        logits, _ = apply(params, state, seq, train=False)
        return carry, draw(jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False))
    return SampleStep(prefix, (), block_size)


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


def words_vocab(words: Sequence[str], tokenizer=None) -> Vocab:
    """`Vocab.from_words` (a tokenizer setting does not apply: lifecycle refuses one given)."""
    return Vocab.from_words(words)


def check_words(words: Sequence[str], vocab, config, tc, where: str) -> None:
    """Refuse words too few for a training split."""
    if len(split_words(words)[0]) == 0:
        raise UsageError(f"{where}: {len(words)} word is too few: the training split (80%) would be "
                         f"empty; give at least 2 words")


def words_info(words: Sequence[str]) -> dict:
    return {"max_word_len": max(map(len, words))}


WORDS = {"splits": ("train", "dev", "test"), "vocab": words_vocab, "boundary": True,
         "default_data": DEFAULT_DATA, "check": check_words, "unit": "words", "info": words_info,
         "eval_batch": lambda block_size, vocab_size=None: EVAL_ROWS, "read": read_file, "tokenizes": False,
         "target_bytes": lambda arrays, vocab: None, "amount": lambda words: f"{len(words):,} words"}
CONTEXT = DataKind("context", parse_words, split_words, build_context_dataset, row_batch, _whole,
                   lambda words: None, window_step, **WORDS)
SEQUENCE = DataKind("sequence", parse_words, split_words, build_sequence, row_batch, _whole,
                    sequence_block_size, prefix_step, **WORDS)
TEXT = DataKind("text", text.parse_text, text.split_text, text.build_text, text_batch, text.eval_windows,
                lambda text: None, None, splits=("train", "val"), vocab=text.vocabulary, boundary=False,
                default_data=DEFAULT_TEXT, check=text.check_text, unit="characters", info=text.info,
                eval_batch=text.eval_batch, read=text.read_text, tokenizes=True, target_bytes=text.target_bytes,
                amount=text.amount)

KINDS = MappingProxyType({k.name: k for k in (CONTEXT, SEQUENCE, TEXT)})


def get(name: str) -> DataKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"dataset kind must be one of {', '.join(KINDS)}, got {name!r}") from None
