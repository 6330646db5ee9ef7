"""Tokenizer files: minbpe's `.model` and `.vocab`, and tiktoken's `.tiktoken` ranks.

minbpe's `.model` (what `load` reads back):

    minbpe v1
    <split pattern, empty for the basic tokenizer>
    <number of special tokens>
    <special token> <id>          one line each
    <id a> <id b>                 one line per merge; merge k (from 0) makes id 256 + k

`.vocab` is for people only: `[bytes]` for the 256 bytes and special tokens,
`[a][b] -> [ab] id` for each merge, control characters escaped, cut UTF-8 shown as U+FFFD.

`.tiktoken` (tiktoken's `load_tiktoken_bpe`): one line per token, `base64(bytes) rank`.

Writes are atomic (a temporary file renamed over the target). A file that is not what it
should be raises DataError naming the file and line.
"""

from __future__ import annotations

import base64
import binascii
import os
import unicodedata

from ..data import DataError, read_bytes

VERSION = "minbpe v1"

# ----------------------------------------------------------------------------- minbpe .model / .vocab


def write_model(path: str, pattern: str, special: dict[str, int], merges: dict[tuple[int, int], int]) -> None:
    """Write minbpe's .model file (merges in id order)."""
    lines = [VERSION, pattern, str(len(special))]
    lines += [f"{token} {idx}" for token, idx in special.items()]
    lines += [f"{a} {b}" for (a, b), _ in sorted(merges.items(), key=lambda item: item[1])]
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))


def read_model(path: str) -> tuple[str, dict[str, int], dict[tuple[int, int], int]]:
    """Read minbpe's .model file.

    Returns:
        (pattern, special tokens {token: id}, merges {(a, b): id}).

    Raises:
        DataError: no such file, or a line that is not what the format puts there
            ("PATH:LINE: ..."): not a minbpe model, a bad count, special token or merge.
    """
    lines = _text_lines(path)

    def line(n: int) -> str:
        if n > len(lines):
            raise DataError(f"{path}:{n}: the file ends early; expected {_expected(n)}")
        return lines[n - 1].strip()

    if line(1) != VERSION:
        raise DataError(f"{path}:1: not a minbpe tokenizer model: expected {VERSION!r}, got {line(1)[:60]!r}")
    pattern = line(2)
    try:
        num_special = int(line(3))
        if num_special < 0:
            raise ValueError
    except ValueError:
        raise DataError(f"{path}:3: expected the number of special tokens, got {line(3)[:60]!r}") from None
    special = {}
    for n in range(4, 4 + num_special):
        parts = line(n).split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(f"{path}:{n}: expected a special token and its id, got {line(n)[:60]!r}")
        special[parts[0]] = int(parts[1])
    merges = {}
    for n in range(4 + num_special, len(lines) + 1):
        merges[_merge_line(path, n, line(n), merges)] = 256 + len(merges)
    return pattern, special, merges


def _expected(n: int) -> str:
    return {1: repr(VERSION), 2: "the split pattern", 3: "the number of special tokens"}.get(n, "a special token")


def _merge_line(path: str, n: int, text: str, merges: dict) -> tuple[int, int]:
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise DataError(f"{path}:{n}: expected a merge (two token ids), got {text[:60]!r}")
    pair = int(parts[0]), int(parts[1])
    known = 256 + len(merges)
    if max(pair) >= known:
        raise DataError(f"{path}:{n}: the merge {pair} names a token not made yet (ids below {known} exist)")
    if pair in merges:
        raise DataError(f"{path}:{n}: the merge {pair} appears twice")
    return pair


def write_vocab(path: str, vocab: dict[int, bytes], merges: dict[tuple[int, int], int]) -> None:
    """Write minbpe's readable .vocab file (for people; load never reads it)."""
    children = {idx: pair for pair, idx in merges.items()}
    lines = []
    for idx in sorted(vocab):
        shown = render_token(vocab[idx])
        if idx in children:
            a, b = children[idx]
            lines.append(f"[{render_token(vocab[a])}][{render_token(vocab[b])}] -> [{shown}] {idx}")
        else:
            lines.append(f"[{shown}] {idx}")
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))


def render_token(token: bytes) -> str:
    """A token's bytes as text a terminal shows safely: cut UTF-8 as U+FFFD, control characters as \\uXXXX."""
    text = token.decode("utf-8", errors="replace")
    return "".join(ch if unicodedata.category(ch)[0] != "C" else f"\\u{ord(ch):04x}" for ch in text)


# ----------------------------------------------------------------------------- tiktoken .tiktoken


def write_tiktoken(path: str, ranks: dict[bytes, int]) -> None:
    """Write tiktoken's ranks file, `base64(bytes) rank` per line in rank order."""
    lines = [f"{base64.b64encode(token).decode('ascii')} {rank}" for token, rank in
             sorted(ranks.items(), key=lambda item: item[1])]
    write_atomic(path, ("\n".join(lines) + "\n").encode("ascii"))


def read_tiktoken(path: str) -> dict[bytes, int]:
    """Read tiktoken's ranks file: {token bytes: rank}; DataError naming the line that is not `base64 rank`."""
    ranks = {}
    for n, text in enumerate(_text_lines(path), start=1):
        if not text.strip():
            continue
        parts = text.split()
        try:
            if len(parts) != 2:
                raise ValueError
            ranks[base64.b64decode(parts[0], validate=True)] = int(parts[1])
        except (ValueError, binascii.Error):
            raise DataError(f"{path}:{n}: expected a tiktoken rank (base64 bytes and a number), "
                            f"got {text[:60]!r}") from None
    if not ranks:
        raise DataError(f"{path}: holds no tiktoken ranks")
    return ranks


# ----------------------------------------------------------------------------- helpers


def _text_lines(path: str) -> list[str]:
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not a tokenizer file (not UTF-8 text)") from None
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, renamed over it."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
