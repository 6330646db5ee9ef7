"""The Tokenizer: merges, a split pattern and special tokens; train, encode, decode, save, load.

    tok = train(text, 512, pattern="gpt2", special=["<|endoftext|>"])
    ids = tok.encode("hello world")          # the hand-written encoder (bpe.encode_chunk per chunk)
    ids = tok.encode_fast("hello world")     # the same ids through tiktoken, where exact
    tok.decode(ids), tok.save("out/tok")     # out/tok.model (minbpe's format), out/tok.vocab
    gpt2 = load("gpt2")                      # GPT-2's own ranks, bundled in data/gpt2.tiktoken

Special tokens follow tiktoken's `allowed_special` / `disallowed_special`: by default a
special token's text inside the text to encode is refused (a DataError), `allowed_special=
"all"` (or a set) encodes it as its id, `disallowed_special=()` as ordinary text.

A Tokenizer is read-only once made (`load("gpt2")` hands out one shared instance).
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Collection, Iterable, Sequence
from typing import Literal

from ..data import DATA_DIR, DataError
from ..settings import SettingError, UsageError
from . import bpe, files, split
from .trainer import train_merges_fast

MAX_VOCAB = 2 ** 32  # ids are kept below 2^32 (the trainer packs a pair into one int)
GPT2_FILE = os.path.join(DATA_DIR, "gpt2.tiktoken")
GPT2_SPECIAL = {"<|endoftext|>": 50256}
MODEL_FILE = "tokenizer.model"  # a tokenizer folder's files (the command line's --out DIR)
VOCAB_FILE = "tokenizer.vocab"

Special = Literal["all"] | Collection[str]


class SpecialTokenError(DataError):
    """The text to encode holds a special token that is refused; `.token`, `.line` (1-based) say which and where."""

    def __init__(self, token: str, line: int):
        self.token, self.line = token, line
        super().__init__(f"line {line}: the text holds the special token {token!r}, which is refused here "
                         "(allow special tokens, or encode them as ordinary text)")


class Tokenizer:
    """Byte-level BPE: 256 byte tokens, the learned merges, special tokens.

    Attributes:
        merges: {(id_a, id_b): new_id}, in the order learned (minbpe's `merges`).
        vocab: {id: bytes} for every id, special tokens included.
        pattern: the split regex ("" for none: the basic tokenizer).
        special: {token text: id}.
        name: "gpt2" for the bundled GPT-2 tokenizer, else None.
    """

    def __init__(self, merges: dict[tuple[int, int], int], *, pattern: str = "", special: dict[str, int] | None = None,
                 byte_ids: Sequence[int] = range(256), name: str | None = None):
        self._merges = dict(merges)
        self._init(bpe.build_vocab(self._merges, byte_ids), byte_ids, pattern, special or {}, name)

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], *, pattern: str, special: dict[str, int] | None = None,
                   name: str | None = None) -> Tokenizer:
        """A tokenizer from tiktoken-style ranks (bytes -> id), such as GPT-2's; its merges are recovered when asked for."""
        singles = {token[0]: idx for token, idx in ranks.items() if len(token) == 1}
        if len(singles) != 256:
            raise DataError(f"ranks hold {len(singles)} of the 256 single bytes")
        tok = cls.__new__(cls)
        tok._merges = None
        tok._init({idx: token for token, idx in ranks.items()}, [singles[b] for b in range(256)], pattern,
                  special or {}, name)
        return tok

    def _init(self, vocab: dict[int, bytes], byte_ids: Sequence[int], pattern: str, special: dict[str, int],
              name: str | None) -> None:
        self.byte_ids = list(byte_ids)
        self.pattern, self.special, self.name = pattern, dict(special), name
        self._compiled = split.compile_pattern(pattern)
        for token, idx in self.special.items():
            if not token or any(ch.isspace() for ch in token) or idx in vocab or idx < 0:
                raise DataError(f"special token {token!r} with id {idx}: it must be non-empty, hold no whitespace, "
                                "and take an id no other token has")
        self.vocab = {**vocab, **{idx: token.encode("utf-8") for token, idx in self.special.items()}}

    @property
    def merges(self) -> dict[tuple[int, int], int]:
        if self._merges is None:  # ranks only (GPT-2): the pairs behind them, once
            ranks = {token: idx for idx, token in self.vocab.items() if idx not in self.special.values()}
            self._merges = bpe.recover_merges(ranks)
        return self._merges

    @property
    def vocab_size(self) -> int:
        """One more than the largest id: the rows of an embedding table for these tokens."""
        return max(self.vocab) + 1

    @property
    def pattern_name(self) -> str | None:
        """"gpt2", "gpt4" or "none" for a known split pattern, None for one of one's own."""
        return split.pattern_name(self.pattern)

    def __repr__(self) -> str:
        shown = self.name or f"pattern={self.pattern_name or self.pattern!r}"
        return f"Tokenizer({shown}, vocab_size={self.vocab_size}, special={list(self.special)})"

    # ------------------------------------------------------------------------- encode / decode

    def split(self, text: str) -> list[str]:
        """The text's chunks under the split pattern (merges never cross two chunks)."""
        return split.chunks(text, self._compiled)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens' text encoded as ordinary text (hand-written, the reference)."""
        done: dict[str, list[int]] = {}  # each distinct chunk is encoded once
        ids = []
        for chunk in self.split(text):
            if chunk not in done:
                done[chunk] = bpe.encode_chunk([self.byte_ids[b] for b in chunk.encode("utf-8")], self.merges)
            ids.extend(done[chunk])
        return ids

    def encode(self, text: str, *, allowed_special: Special = (), disallowed_special: Special = "all") -> list[int]:
        """Token ids of `text` (hand-written, the reference).

        Args:
            text: the text.
            allowed_special: special tokens encoded as their ids when met: "all" or a set.
            disallowed_special: special tokens refused when met: "all" (those not allowed)
                or a set; () encodes the rest as ordinary text.

        Raises:
            DataError: the text holds a disallowed special token.
        """
        allowed = self._allowed(text, allowed_special, disallowed_special)
        ids = []
        for part in split.split_special(text, allowed):
            ids.extend([self.special[part]] if part in allowed else self.encode_ordinary(part))
        return ids

    def encode_fast(self, text: str, *, allowed_special: Special = (), disallowed_special: Special = "all") -> list[int]:
        """The same ids as `encode`, through tiktoken when it gives exactly those (see fast.py), else `encode`."""
        encoding = self.encoding
        if encoding is None:
            return self.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        allowed = self._allowed(text, allowed_special, disallowed_special)
        return encoding.encode(text, allowed_special=allowed, disallowed_special=())

    def _allowed(self, text: str, allowed_special: Special, disallowed_special: Special) -> set[str]:
        allowed = set(self.special) if allowed_special == "all" else set(allowed_special) & set(self.special)
        refused = set(self.special) - allowed if disallowed_special == "all" else set(disallowed_special)
        for token in sorted(refused, key=len, reverse=True):
            at = text.find(token)
            if at >= 0:
                raise SpecialTokenError(token, text.count("\n", 0, at) + 1)
        return allowed

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of these ids joined; DataError for an id that is not in the vocabulary."""
        vocab = self.vocab
        try:
            return b"".join(vocab[int(i)] for i in ids)
        except KeyError as e:
            raise DataError(f"token id {e.args[0]} is not in the vocabulary (ids 0..{self.vocab_size - 1})") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of these ids; a cut multi-byte UTF-8 character decodes as U+FFFD, as minbpe does."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------------- tiktoken

    @property
    def ranks(self) -> dict[bytes, int]:
        """tiktoken's mergeable ranks: each non-special token's bytes -> its id (the lowest id where bytes repeat)."""
        specials = set(self.special.values())
        ranks: dict[bytes, int] = {}
        for idx in sorted(self.vocab):
            if idx not in specials:
                ranks.setdefault(self.vocab[idx], idx)
        return ranks

    @functools.cached_property
    def encoding(self):
        """A tiktoken.Encoding giving exactly `encode`'s ids, or None (no split pattern, or ranks it would misread)."""
        from .fast import build_encoding, exact_for_tiktoken
        if not self.pattern:
            return None
        if self._merges is not None and not exact_for_tiktoken(self.vocab_without_special(), self._merges):
            return None
        return build_encoding(self.ranks, self.pattern, self.special)

    def vocab_without_special(self) -> dict[int, bytes]:
        specials = set(self.special.values())
        return {idx: token for idx, token in self.vocab.items() if idx not in specials}

    # ------------------------------------------------------------------------- files and metadata

    def save(self, file_prefix: str) -> None:
        """Write `file_prefix`.model (minbpe's format: load reads it) and `file_prefix`.vocab (for people)."""
        if self.byte_ids != list(range(256)):
            raise UsageError("this tokenizer's byte ids are not 0..255, which minbpe's .model cannot hold; "
                             "save_tiktoken writes its ranks")
        files.write_model(file_prefix + ".model", self.pattern, self.special, self.merges)
        files.write_vocab(file_prefix + ".vocab", self.vocab, self.merges)

    def save_tiktoken(self, path: str) -> None:
        """Write tiktoken's .tiktoken ranks file (the pattern and special tokens are not part of that format)."""
        files.write_tiktoken(path, self.ranks)

    def to_json(self) -> dict:
        """A JSON-ready description, for a checkpoint's metadata: {"name": "gpt2"} or the pattern, specials and merges."""
        if self.name is not None:
            return {"name": self.name}
        return {"pattern": self.pattern, "special": self.special,
                "merges": [list(pair) for pair, _ in sorted(self.merges.items(), key=lambda item: item[1])]}

    @classmethod
    def from_json(cls, meta: dict) -> Tokenizer:
        """The tokenizer `to_json` described."""
        if "name" in meta:
            return load(meta["name"])
        try:
            merges = {(int(a), int(b)): 256 + k for k, (a, b) in enumerate(meta["merges"])}
            return cls(merges, pattern=meta["pattern"], special={str(t): int(i) for t, i in meta["special"].items()})
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a tokenizer description: {e}") from None


# ----------------------------------------------------------------------------- train and load


def train(text: str, vocab_size: int, pattern: str | None = "gpt2", special: Sequence[str] | dict[str, int] = (), *,
          progress: bool | None = None) -> Tokenizer:
    """Learn byte-pair merges from `text`: exactly minbpe's merges, in a fraction of its time.

    Args:
        text: the training text.
        vocab_size: 256 bytes + the merges + the special tokens; fewer merges are learned
            when the text runs out of pairs.
        pattern: "gpt2", "gpt4", a regex of one's own, or None / "none" (the basic
            tokenizer: one chunk).
        special: special tokens, given ids after the merges (a list), or {token: id}.
            Their text in `text` is cut out before training, so no merge learns it.
        progress: a progress bar (None: when stderr is a terminal).

    Raises:
        SettingError: vocab_size below 256 plus the special tokens, or above 2^32.
    """
    special_list = list(special)
    if not 256 + len(special_list) <= vocab_size <= MAX_VOCAB:
        least = f"{256 + len(special_list)} (256 bytes + {len(special_list)} special tokens)" if special_list else "256"
        raise SettingError("vocab_size", f"must be between {least} and 2^32, got {vocab_size}")
    regex_ = split.resolve_pattern(pattern)
    compiled = split.compile_pattern(regex_)
    words = collections.Counter()
    for part in split.split_special(text, set(special_list)):
        if part not in special_list:
            words.update(split.chunks(part, compiled))
    words = {word.encode("utf-8"): n for word, n in words.items()}
    merges = train_merges_fast(words, vocab_size - 256 - len(special_list), progress=progress)
    if not isinstance(special, dict):
        special = {token: 256 + len(merges) + k for k, token in enumerate(special_list)}
    return Tokenizer(merges, pattern=regex_, special=special)


def load(path: str, *, pattern: str | None = "gpt2", special: dict[str, int] | None = None) -> Tokenizer:
    """Read a tokenizer: "gpt2" (the bundled one), a folder holding tokenizer.model, a .model or a .tiktoken file.

    Args:
        path: as above.
        pattern, special: for a .tiktoken file only (the format holds neither).

    Raises:
        DataError: no such file, or one that is not a tokenizer (the message names the line).
    """
    path = os.fspath(path)
    if path == "gpt2":
        return _gpt2()
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    if path.endswith(".tiktoken"):
        return Tokenizer.from_ranks(files.read_tiktoken(path), pattern=split.resolve_pattern(pattern),
                                    special=special)
    regex_, special_tokens, merges = files.read_model(path)
    try:
        return Tokenizer(merges, pattern=regex_, special=special_tokens)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None


@functools.lru_cache(maxsize=1)
def _gpt2() -> Tokenizer:
    return Tokenizer.from_ranks(files.read_tiktoken(GPT2_FILE), pattern=split.GPT2_PATTERN, special=GPT2_SPECIAL,
                                name="gpt2")
