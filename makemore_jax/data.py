"""Files in, integer arrays out: loading, the vocabulary, the words' split and datasets.

A model says which data kind it trains on (`Model.dataset`, a record in kinds.py); the
words kinds build their arrays here: "context" (X [N, block_size] -> Y [N], one example per
character) or "sequence" (X, Y [N, block_size], one per word, targets -1 where ignored);
running text ("text") has its own module, text.py. All on the host with numpy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
from collections.abc import Sequence

import numpy as np

BOUNDARY = "."  # start/end token, always index 0
IGNORE = -1  # target value the loss skips (padding in sequence datasets)
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
DEFAULT_DATA = os.path.join(DATA_DIR, "names.txt")  # the words models' default
DEFAULT_TEXT = os.path.join(DATA_DIR, "shakespeare.txt")  # the text models' default


class DataError(ValueError):
    """A problem with the user's data: the message names the file and line where it can."""


class NotWordsError(DataError):
    """A words file holding whitespace inside a line: running text, perhaps (lifecycle names the text model)."""


# ----------------------------------------------------------------------------- loading


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, read once (so a pipe or FIFO works); DataError if it cannot be read."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a text file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None


def parse_words(raw: bytes, path: str = "<data>") -> list[str]:
    """UTF-8 text (a leading byte order mark is dropped) to words, one per line.

    Surrounding whitespace is stripped and blank lines skipped.

    Raises:
        DataError: not UTF-8, no words, or a word that contains the boundary token "." or
            whitespace (the message gives `path` and the 1-based line).
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 text") from None

    words = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        word = line.strip()
        if not word:
            continue
        if BOUNDARY in word:
            raise DataError(f"{path}:{lineno}: word {word!r} contains the boundary token {BOUNDARY!r}")
        if any(ch.isspace() for ch in word):
            raise NotWordsError(f"{path}:{lineno}: word {word!r} contains whitespace; expected one word per line")
        words.append(word)
    if not words:
        raise DataError(f"{path}: contains no words")
    return words


def load_words(path: str | os.PathLike) -> list[str]:
    """Read one word per line: `parse_words(read_bytes(path))`.

    Raises:
        DataError: missing file, a directory, not UTF-8, no words, or a bad word (see parse_words).
    """
    return parse_words(read_bytes(path), os.fspath(path))


@dataclasses.dataclass(frozen=True)
class Data:
    items: list[str] | str  # the data kind's items: the words, or (kind "text") the whole text
    source: str | None  # absolute path of the file, or None for words given in Python
    sha256: str  # of the file's bytes (words given in Python: of their lines joined by "\n")


def read_file(path: str, parse=parse_words) -> Data:
    """The file at `path`, read once, parsed by `parse(raw, path)` and hashed from those bytes."""
    raw = read_bytes(path)
    return Data(parse(raw, path), os.path.abspath(path), hashlib.sha256(raw).hexdigest())


def read_data(data=None, kind=None) -> Data:
    """A file path (default: the kind's bundled data) read by `kind.read`, or a list of words.

    The file is read once and hashed from those bytes, so a pipe or FIFO works.
    """
    parse = parse_words if kind is None else kind.parse
    if data is None or isinstance(data, (str, os.PathLike)):
        default = DEFAULT_DATA if kind is None else kind.default_data
        path = os.fspath(default if data is None else data)
        return read_file(path) if kind is None else kind.read(path)
    if parse is not parse_words:
        raise DataError("running text is read from a file: pass its path")
    raw = "\n".join(data).encode("utf-8")
    words = parse_words(raw, "<words>")
    if len(words) != len(data):
        raise DataError("<words>: every word must be non-empty, one word without whitespace")
    return Data(words, None, hashlib.sha256(raw).hexdigest())


# ----------------------------------------------------------------------------- vocabulary


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Characters of the data set: the boundary token "." at index 0, the rest sorted.

    With `boundary=False` (running text, `from_text`) there is no boundary token: the
    characters are the text's sorted set, as nanoGPT's, and "." is a character like any.
    """

    chars: tuple[str, ...]
    boundary: bool = True

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Vocab:
        chars = set("".join(words))
        if BOUNDARY in chars:
            raise DataError(f"a word contains the boundary token {BOUNDARY!r}")
        return cls((BOUNDARY, *sorted(chars)))

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The text's sorted set of characters (whitespace and newlines included), no boundary token."""
        return cls(tuple(sorted(set(text))), boundary=False)

    def __post_init__(self):
        if not self.chars:
            raise DataError("vocabulary is empty")
        if self.boundary and self.chars[0] != BOUNDARY:
            raise DataError(f"vocabulary must start with the boundary token {BOUNDARY!r}")
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise DataError("vocabulary must be distinct single characters")
        # code point -> index, as two sorted arrays for vectorised lookups
        codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        order = np.argsort(codes)
        object.__setattr__(self, "_codes", codes[order])
        object.__setattr__(self, "_index", order.astype(np.int32))

    unit = "characters"  # what its ids stand for (a TokenVocab's: "tokens")

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def setting(self) -> str:
        """The text kind's tokenizer setting that gives this vocabulary again: "char" (tokens.py)."""
        return "char"

    def describe(self) -> str:
        return f"vocabulary {self.size}"

    def count(self, text: str) -> int:
        return len(text)

    @functools.cached_property
    def token_bytes(self) -> np.ndarray:
        """int64 [size]: the UTF-8 bytes of each character (bits per byte)."""
        return np.array([len(c.encode("utf-8")) for c in self.chars], dtype=np.int64)

    def to_meta(self) -> dict:
        """The checkpoint's record of it: {"vocab": [characters]}."""
        return {"vocab": list(self.chars)}

    def encode(self, text: str) -> np.ndarray:
        """Characters to int32 indices; raises DataError naming an unknown character."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        pos = np.searchsorted(self._codes, codes)
        pos = np.minimum(pos, len(self._codes) - 1)
        bad = self._codes[pos] != codes
        if bad.any():
            ch = chr(int(codes[np.argmax(bad)]))
            raise DataError(f"character {ch!r} (U+{ord(ch):04X}) is not in the vocabulary")
        return self._index[pos]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        extra = {} if self.boundary else {"boundary": False}
        return json.dumps({"chars": "".join(self.chars), **extra}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        record = json.loads(text)
        return cls(tuple(record["chars"]), boundary=record.get("boundary", True))


# ----------------------------------------------------------------------------- split


def split_words(
    words: Sequence[str], seed: int = 42, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> tuple[list[str], list[str], list[str]]:
    """Shuffle with `random.Random(seed)` and cut into train/dev/test.

    With seed 42 this is the lectures' recipe (`random.seed(42); random.shuffle(words)`,
    cuts at `int(0.8*n)` and `int(0.9*n)`).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise DataError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    n = len(shuffled)
    n1 = int(fractions[0] * n)
    n2 = int((fractions[0] + fractions[1]) * n)
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


def split_words_makemore(words: Sequence[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """makemore.py's split sizes: a held-out test set of min(1000, 10%) words, and a dev set as large.

    makemore holds out only a test set (and keeps the best model by its loss); here a dev
    set of the same size is cut from the rest, to select on it instead. Shuffled with
    `random.Random(seed)`; returns (train, dev, test).
    """
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    n = min(1000, int(len(shuffled) * 0.1))
    cut = len(shuffled) - 2 * n
    return shuffled[:cut], shuffled[cut:cut + n], shuffled[cut + n:]


# ----------------------------------------------------------------------------- datasets


def _encode_words(words: Sequence[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """All words encoded into one flat array, plus each word's length."""
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    return vocab.encode("".join(words)), lengths


def build_context_dataset(words: Sequence[str], vocab: Vocab, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (context, next character) pair of the words, contexts padded with ".".

    Returns:
        X: int32 [N, block_size], the previous block_size characters.
        Y: int32 [N], the next character; N = sum(len(w) + 1).
    """
    if block_size < 1:
        raise DataError(f"block_size must be at least 1, got {block_size}")
    if not words:  # e.g. the dev split of a tiny data file
        return np.zeros((0, block_size), np.int32), np.zeros((0,), np.int32)
    flat, lengths = _encode_words(words, vocab)
    # One stream: each word is preceded by block_size boundary tokens and followed by one.
    # Word i occupies stream[start_i : start_i + block_size + len_i + 1].
    span = lengths + block_size + 1
    starts = np.concatenate([[0], np.cumsum(span)[:-1]])
    stream = np.zeros(int(span.sum()), dtype=np.int32)
    char_starts = starts + block_size
    char_pos = np.repeat(char_starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(flat.size)
    stream[char_pos] = flat
    # targets: every position from the first character to the closing boundary
    n_targets = lengths + 1
    target_pos = np.repeat(char_starts - np.concatenate([[0], np.cumsum(n_targets)[:-1]]), n_targets) + np.arange(
        int(n_targets.sum())
    )
    X = stream[target_pos[:, None] - block_size + np.arange(block_size)]
    Y = stream[target_pos]
    return X.astype(np.int32), Y.astype(np.int32)


def build_sequence_dataset(words: Sequence[str], vocab: Vocab, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Whole words as padded sequences, for sequence models.

    Returns:
        X: int32 [N, max_len + 1]: start token 0, the characters, then 0 padding.
        Y: int32 [N, max_len + 1]: the characters, the end token 0, then -1 (ignored).
    """
    flat, lengths = _encode_words(words, vocab)
    longest = int(lengths.max()) if lengths.size else 0
    max_len = longest if max_len is None else max_len
    if longest > max_len:
        raise DataError(f"a word has {longest} characters, more than max_len={max_len}")
    n = len(words)
    row = np.repeat(np.arange(n), lengths)
    col = np.arange(flat.size) - np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    X = np.zeros((n, max_len + 1), dtype=np.int32)
    Y = np.full((n, max_len + 1), IGNORE, dtype=np.int32)
    X[row, col + 1] = flat
    Y[row, col] = flat
    Y[np.arange(n), lengths] = 0
    return X, Y


def sequence_block_size(words: Sequence[str]) -> int:
    """A sequence model's default block_size: the longest word + 1 (its start token), as makemore."""
    return max(map(len, words)) + 1
