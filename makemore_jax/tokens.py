"""Text models on tokens: a BPE tokenizer in the Vocab's place, and nanoGPT's prepared .bin data.

The text kind reads its vocabulary from a tokenizer setting (`train_model(..., tokenizer=...)`,
`--tokenizer`): "char" (the default: the text's own characters, a data.Vocab), "gpt2"
(GPT-2's 50,257 tokens), a folder written by `makemore-jax tokenizer train` (or its .model
or a .tiktoken file), "bpe:N" (a GPT-2-pattern tokenizer of vocabulary N trained on the
training split only, the first 90%), or a `tokenizer.Tokenizer` made in Python. A tokenizer
becomes a `TokenVocab`, which answers what the run asks of a Vocab:

    vocab.size                 rows of the embedding table (the tokenizer's vocab_size, unpadded)
    vocab.encode(text)         int32 ids, through tiktoken where it is exact (special tokens' text
                               as ordinary text, as nanoGPT's prepare.py encode_ordinary)
    vocab.decode(ids)          the text; a cut multi-byte character decodes as U+FFFD
    vocab.token_bytes          int [size]: UTF-8 bytes of each token (bits per byte)
    vocab.to_meta()            {"tokenizer": tokenizer.to_json(), ...}, a checkpoint's record
    vocab.setting              the setting that gives this vocabulary again (itself: no retraining)

A char checkpoint keeps its "vocab": [characters] record; `vocab_from_meta` reads either.

nanoGPT's prepared data (`--data DIR` holding train.bin and val.bin, uint16 token ids as its
prepare.py writes them with `np.uint16(ids).tofile`) is read as `TokenStreams`: the two splits'
ids as they are, never re-tokenised; `check_ids` refuses ids the tokenizer does not have.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os

import numpy as np

from . import tokenizer as tokenizers
from .data import Data, DataError, Vocab, read_bytes
from .settings import SettingError, UsageError
from .tokenizer.tokenizer import MAX_VOCAB

CHAR = "char"  # the default setting: the text's characters
BPE_PREFIX = "bpe:"  # bpe:N, trained on the training split
BIN_SPLITS = ("train.bin", "val.bin")  # nanoGPT's prepared data, one file per split
BIN_DTYPE = np.uint16  # nanoGPT's prepare.py: np.array(ids, dtype=np.uint16).tofile(path)


# ----------------------------------------------------------------------------- the vocabulary


@dataclasses.dataclass(frozen=True, eq=False)
class TokenVocab:
    """A tokenizer in the Vocab's place; `label` says where it came from ("gpt2", "bpe:512", a path).

    Two are equal when their tokenizers are (the same merges, pattern and special tokens, or
    the same bundled name), wherever they came from.
    """

    tokenizer: tokenizers.Tokenizer
    label: str

    unit = "tokens"

    @property
    def size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def setting(self) -> TokenVocab:
        return self

    def describe(self) -> str:
        return f"vocabulary {self.size:,} ({self.label} tokens)"

    def encode(self, text: str) -> np.ndarray:
        """int32 [n] token ids; special tokens' text is encoded as ordinary text."""
        return np.asarray(self.tokenizer.encode_fast(text, disallowed_special=()), dtype=np.int32)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(int(i) for i in ids)

    def count(self, part) -> int:
        """Tokens of a split: its text encoded, or its ids (prepared data) as they are."""
        return len(part) if isinstance(part, np.ndarray) else len(self.encode(part))

    @functools.cached_property
    def token_bytes(self) -> np.ndarray:
        """int64 [size]: the UTF-8 bytes each token stands for (0 for an id the tokenizer lacks)."""
        vocab = self.tokenizer.vocab
        return np.array([len(vocab.get(i, b"")) for i in range(self.size)], dtype=np.int64)

    @functools.cached_property
    def _description(self) -> dict:
        return self.tokenizer.to_json()

    def __eq__(self, other) -> bool:
        return isinstance(other, TokenVocab) and self._description == other._description

    __hash__ = None

    def to_meta(self) -> dict:
        """The checkpoint's record: {"tokenizer": to_json, plus "source" where it is not the name}."""
        source = {} if self.label == self.tokenizer.name else {"source": self.label}
        return {"tokenizer": {**self._description, **source}}

    @classmethod
    def from_meta(cls, record: dict) -> TokenVocab:
        tok = tokenizers.Tokenizer.from_json(record)
        return cls(tok, record.get("source", tok.name or "saved"))


def vocab_from_meta(meta: dict, *, boundary: bool) -> Vocab | TokenVocab:
    """A checkpoint's vocabulary: its "tokenizer" record, else its "vocab" characters (every char checkpoint)."""
    if "tokenizer" in meta:
        return TokenVocab.from_meta(meta["tokenizer"])
    return Vocab(tuple(meta["vocab"]), boundary=boundary)


def token_vocab(setting, train_text: str | None) -> TokenVocab:
    """The TokenVocab a setting names: "gpt2", "bpe:N" (trained on `train_text`), a path, a Tokenizer,
    or a TokenVocab (itself).

    Raises:
        SettingError: a bad bpe:N, or bpe:N without text to train on (prepared .bin data).
        DataError: a path that is not a tokenizer.
    """
    if isinstance(setting, TokenVocab):
        return setting
    if isinstance(setting, tokenizers.Tokenizer):
        return TokenVocab(setting, setting.name or "a Tokenizer from Python")
    if not isinstance(setting, str):
        raise SettingError("tokenizer", f"{setting!r}: expected char, gpt2, bpe:N, a tokenizer folder or a Tokenizer")
    if setting.startswith(BPE_PREFIX):
        return TokenVocab(trained_bpe(setting, train_text), setting)
    if setting != "gpt2" and not os.path.exists(setting):
        raise SettingError("tokenizer", f"{setting}: no such tokenizer; expected char, gpt2, bpe:N, or a folder "
                                        f"written by `makemore-jax tokenizer train` (or its .model file)")
    try:
        return TokenVocab(tokenizers.load(setting), setting)
    except DataError as e:
        raise DataError(f"--tokenizer {e}") from None


def trained_bpe(setting: str, train_text: str | None) -> tokenizers.Tokenizer:
    """bpe:N: GPT-2's split pattern, N tokens (256 bytes and N - 256 merges), learned from `train_text`."""
    size = setting.removeprefix(BPE_PREFIX)
    if not size.isdigit() or not 256 <= int(size) <= MAX_VOCAB:
        raise SettingError("tokenizer", f"{setting}: expected bpe:N with N a vocabulary size of at least 256 "
                                        f"(the bytes), e.g. bpe:512")
    if train_text is None:
        raise SettingError("tokenizer", f"{setting} trains on text, and the data holds token ids already; give the "
                                        f"tokenizer they were made with (gpt2 or its folder)")
    return tokenizers.train(train_text, int(size), pattern="gpt2")


# ----------------------------------------------------------------------------- nanoGPT's prepared data


@dataclasses.dataclass(frozen=True, eq=False)
class TokenStreams:
    """nanoGPT's prepared data: the train and val splits' token ids (uint16 [n] each), from `folder`."""

    train: np.ndarray
    val: np.ndarray
    folder: str

    def __len__(self) -> int:
        return len(self.train) + len(self.val)

    def check_ids(self, vocab_size: int) -> None:
        """Refuse an id at or above the vocabulary's size, naming the file and the id."""
        for name, ids in zip(BIN_SPLITS, (self.train, self.val)):
            if ids.size and int(ids.max()) >= vocab_size:
                raise DataError(f"{os.path.join(self.folder, name)}: token id {int(ids.max()):,} is outside the "
                                f"tokenizer's vocabulary of {vocab_size:,}; give the tokenizer it was made with")


def read_streams(folder: str) -> Data:
    """A folder holding nanoGPT's train.bin and val.bin, read as TokenStreams (hashed over both files' bytes).

    Raises:
        DataError: a file missing, empty, or not a whole number of uint16 ids.
    """
    missing = [name for name in BIN_SPLITS if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise DataError(f"{folder}: a folder of nanoGPT's prepared data holds train.bin and val.bin; "
                        f"{' and '.join(missing)} missing")
    digest, splits = hashlib.sha256(), []
    for name in BIN_SPLITS:
        path = os.path.join(folder, name)
        raw = read_bytes(path)
        if not raw or len(raw) % np.dtype(BIN_DTYPE).itemsize:
            raise DataError(f"{path}: {len(raw):,} bytes: expected uint16 token ids (nanoGPT's prepare.py), "
                            f"two bytes each")
        digest.update(raw)
        splits.append(np.frombuffer(raw, dtype=BIN_DTYPE))
    return Data(TokenStreams(*splits, os.path.abspath(folder)), os.path.abspath(folder), digest.hexdigest())


def refuse_char_streams(streams: TokenStreams):
    raise UsageError(f"{streams.folder}: holds token ids (nanoGPT's train.bin / val.bin), not text; give "
                     "{tokenizer:name} gpt2 or the tokenizer folder they were made with", tokenizer=("tokenizer", None))
