"""Running text as data (the "text" kind): one stream of characters, as nanoGPT's shakespeare_char.

The whole file is one string, whitespace and newlines included; the vocabulary is its
sorted set of characters (`Vocab.from_text`, no boundary token). The split is by position:
the first 90% trains, the last 10% is "val". A split of n characters becomes two int32
streams of n - 1 positions, X = ids[:-1] and Y = ids[1:]: a training window at offset o is
x = X[o:o + T], y = Y[o:o + T] (the block_size + 1 characters ids[o:o + T + 1], shifted by
one), drawn on the device (kinds.text_batch). Evaluation cuts the split into
non-overlapping windows of T positions (`eval_windows`), so every position is predicted
exactly once from its in-window context.

The ids come from the run's vocabulary (`vocabulary`, from the tokenizer setting): the
characters by default, or a BPE tokenizer's tokens (tokens.py). A folder of nanoGPT's
prepared data (train.bin, val.bin) gives the two splits' ids directly. Losses are read in
nats per token and in bits per byte (`target_bytes`): the split's total nats over ln 2 times
the UTF-8 bytes of its predicted tokens, which does not depend on the tokenizer.

Everything here runs on the host with numpy.
"""

from __future__ import annotations

import os

import numpy as np

from . import tokens
from .data import IGNORE, Data, DataError, Vocab, read_file
from .settings import SettingError, UsageError

TRAIN_SHARE = 0.9  # nanoGPT's: the first 90% trains, the last 10% is val
BINARY_SHARE = 0.05  # more control characters than this share (tab, newline, CR, FF aside): a binary file
EVAL_TOKENS = 4_096  # positions per evaluation batch (rows = EVAL_TOKENS // block_size; small ones stay in cache) ...
EVAL_LOGITS = 2 ** 26  # ... and at most this many logits (positions x vocabulary) in one batch


def parse_text(raw: bytes, path: str = "<data>") -> str:
    """UTF-8 running text (a leading byte order mark dropped), every character kept as it is.

    Raises:
        DataError: an empty file, a NUL byte or mostly control characters (a binary file),
            or not UTF-8 (the message gives `path` and the 1-based line).
    """
    if not raw.removeprefix(b"\xef\xbb\xbf"):
        raise DataError(f"{path}: is empty; expected running text")
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise DataError(f"{path}:{line}: a NUL byte: a binary file, expected UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 text") from None
    control = control_characters(raw)
    if control > BINARY_SHARE * len(text):
        raise DataError(f"{path}: {control:,} of its {len(text):,} characters are control characters: a binary "
                        f"file, expected text")
    return text


def control_characters(raw: bytes) -> int:
    """Control characters in UTF-8 bytes (tab, newline, CR and FF aside), counted on the bytes: each is one
    byte below 0x20 or 0x7f, and no byte of a multi-byte character is below 0x80."""
    b = np.frombuffer(raw, np.uint8)
    return int(np.count_nonzero(((b < 0x20) & ~np.isin(b, (0x09, 0x0A, 0x0C, 0x0D))) | (b == 0x7F)))


def read_text(path: str) -> Data:
    """A text file (`parse_text`), or a folder of nanoGPT's train.bin and val.bin (tokens.read_streams)."""
    if os.path.isdir(path):
        return tokens.read_streams(path)
    return read_file(path, parse_text)


def vocabulary(items, tokenizer=None):
    """The run's vocabulary under a tokenizer setting (tokens.py): None or "char" the text's sorted
    characters (`Vocab.from_text`), else a TokenVocab; "bpe:N" is trained on the training split only.

    Prepared data (TokenStreams) needs a tokenizer, and every id in it must be below its size.
    """
    if isinstance(items, tokens.TokenStreams):
        if tokenizer in (None, tokens.CHAR):
            tokens.refuse_char_streams(items)
        vocab = tokens.token_vocab(tokenizer, None)
        items.check_ids(vocab.size)
        return vocab
    if tokenizer in (None, tokens.CHAR):
        return Vocab.from_text(items)
    return tokens.token_vocab(tokenizer, split_text(items)[0])


def split_text(text) -> tuple:
    """(train, val): the first int(0.9 n) characters and the rest, as nanoGPT's prepare.py; prepared
    data (TokenStreams) is split already: its train and val ids."""
    if isinstance(text, tokens.TokenStreams):
        return text.train, text.val
    n = int(TRAIN_SHARE * len(text))
    return text[:n], text[n:]


def build_text(text, vocab, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A split's two streams: X = ids[:-1], Y = ids[1:], int32 [n - 1] for its n tokens (empty for under 2).

    `text` is the split's text, encoded by `vocab`, or its token ids (prepared data) as they are.
    """
    if block_size < 1:
        raise DataError(f"block_size must be at least 1, got {block_size}")
    ids = (text if isinstance(text, np.ndarray) else vocab.encode(text)).astype(np.int32)
    if ids.size < 2:
        return np.zeros((0,), np.int32), np.zeros((0,), np.int32)
    return ids[:-1], ids[1:]


def eval_windows(arrays, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The streams cut into non-overlapping windows: X, Y int32 [ceil(n / T), T].

    Window k holds positions k T .. k T + T - 1, so every position of the split is a target
    once, predicted from the positions before it in its window. The last window, when n is
    not a multiple of T, is shorter: it is padded at its end with input 0 and target -1
    (ignored), which a causal model's earlier positions never see, so its loss is exactly
    that of the shorter window alone.
    """
    X, Y = (np.asarray(a) for a in arrays)
    m = -(-len(X) // block_size)
    pad = m * block_size - len(X)
    X = np.concatenate([X, np.zeros(pad, np.int32)]).reshape(m, block_size)
    Y = np.concatenate([Y, np.full(pad, IGNORE, np.int32)]).reshape(m, block_size)
    return X, Y


def eval_batch(block_size: int, vocab_size: int = 1) -> int:
    """Rows of one evaluation batch: EVAL_TOKENS positions, fewer where their logits would pass EVAL_LOGITS."""
    return max(1, min(EVAL_TOKENS, EVAL_LOGITS // vocab_size) // block_size)


def target_bytes(arrays, vocab) -> int:
    """UTF-8 bytes of the split's predicted tokens (every target Y once): bits per byte's denominator."""
    return int(vocab.token_bytes[np.asarray(arrays[1])].sum())


def check_text(text, vocab, config, tc, where: str) -> None:
    """Refuse a text too short for one training window, or a full batch (windows are drawn at random).

    Raises:
        UsageError: the training split (the first 90%) holds fewer than block_size + 1 tokens.
    """
    T = config.block_size
    n_train = vocab.count(split_text(text)[0])
    if n_train < T + 1:
        unit = vocab.unit
        raise UsageError(f"{where}: {n_train:,} {unit} in the training split (the first 90%): too short for "
                         f"{{block:word}}, whose training windows need {T + 1:,} {unit}; give a longer text or "
                         f"a smaller {{block:name}}", block=("block_size", T))
    if tc.batch_size is None:
        raise SettingError("batch_size", "full does not apply to running text (windows are drawn at random "
                                         "offsets); give a number of windows")


def info(text) -> dict:
    return {"tokens": len(text)} if isinstance(text, tokens.TokenStreams) else {"characters": len(text)}


def amount(text) -> str:
    """How much data, in the describe line: "1,066,240 characters" (prepared data: tokens)."""
    return f"{len(text):,} {next(iter(info(text)))}"
