"""Running text as data (the "text" kind): one stream of characters, as nanoGPT's shakespeare_char.

The whole file is one string, whitespace and newlines included; the vocabulary is its
sorted set of characters (`Vocab.from_text`, no boundary token). The split is by position:
the first 90% trains, the last 10% is "val". A split of n characters becomes two int32
streams of n - 1 positions, X = ids[:-1] and Y = ids[1:]: a training window at offset o is
x = X[o:o + T], y = Y[o:o + T] (the block_size + 1 characters ids[o:o + T + 1], shifted by
one), drawn on the device (kinds.text_batch). Evaluation cuts the split into
non-overlapping windows of T positions (`eval_windows`), so every position is predicted
exactly once from its in-window context.

Everything here runs on the host with numpy.
"""

from __future__ import annotations

import numpy as np

from .data import IGNORE, DataError, Vocab
from .settings import SettingError, UsageError

TRAIN_SHARE = 0.9  # nanoGPT's: the first 90% trains, the last 10% is val
BINARY_SHARE = 0.05  # more control characters than this share (tab, newline, CR, FF aside): a binary file
EVAL_TOKENS = 65_536  # positions per evaluation batch (rows = EVAL_TOKENS // block_size)


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
    control = sum((ch < " " and ch not in "\t\n\r\f") or ch == "\x7f" for ch in text)
    if control > BINARY_SHARE * len(text):
        raise DataError(f"{path}: {control:,} of its {len(text):,} characters are control characters: a binary "
                        f"file, expected text")
    return text


def split_text(text: str) -> tuple[str, str]:
    """(train, val): the first int(0.9 n) characters and the rest, as nanoGPT's prepare.py."""
    n = int(TRAIN_SHARE * len(text))
    return text[:n], text[n:]


def build_text(text: str, vocab: Vocab, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A split's two streams: X = ids[:-1], Y = ids[1:], int32 [len(text) - 1] (empty for under 2 characters)."""
    if block_size < 1:
        raise DataError(f"block_size must be at least 1, got {block_size}")
    ids = vocab.encode(text).astype(np.int32)
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


def eval_batch(block_size: int) -> int:
    """Rows of one evaluation batch: EVAL_TOKENS positions."""
    return max(1, EVAL_TOKENS // block_size)


def check_text(text: str, config, tc, where: str) -> None:
    """Refuse a text too short for one training window, or a full batch (windows are drawn at random).

    Raises:
        UsageError: the training split (the first 90%) holds fewer than block_size + 1 characters.
    """
    T = config.block_size
    if len(split_text(text)[0]) < T + 1:
        raise UsageError(f"{where}: {len(text):,} characters: too short for {{block:word}}, whose training windows "
                         f"need {T + 1:,} characters in the training split (the first 90%); give a longer text or "
                         f"a smaller {{block:name}}", block=("block_size", T))
    if tc.batch_size is None:
        raise SettingError("batch_size", "full does not apply to running text (windows are drawn at random "
                                         "offsets); give a number of windows")


def info(text: str) -> dict:
    return {"characters": len(text)}
