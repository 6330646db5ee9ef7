"""How text is cut before byte-pair merging: the split patterns, and special tokens kept whole.

A regex tokenizer merges only inside the chunks its pattern finds, so " dog", " dog." and
" dog!" share the token for " dog" instead of learning three. GPT-2's pattern splits off
English contractions, runs of letters or digits with one leading space, runs of other
symbols, and whitespace; GPT-4's (cl100k) also matches contractions in any case, keeps
digits in groups of at most three and newlines apart. The basic tokenizer has no pattern
(the empty string, as minbpe writes it): the whole text is one chunk.

Patterns use `\\p{L}` (any letter) and `\\p{N}` (any digit), which the `regex` package
reads and the standard `re` does not.
"""

from __future__ import annotations

import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|"""
                r"""\s*[\r\n]|\s+(?!\S)|\s+""")
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "none": ""}


def resolve_pattern(pattern: str | None) -> str:
    """A pattern name ("gpt2", "gpt4", "none") or None (no split) or a regex of one's own -> the regex ("" for none)."""
    if pattern is None:
        return ""
    return PATTERNS.get(pattern, pattern)


def pattern_name(pattern: str) -> str | None:
    """The name of a known pattern's regex, None for one of one's own."""
    return next((name for name, regex_ in PATTERNS.items() if regex_ == pattern), None)


def compile_pattern(pattern: str) -> regex.Pattern | None:
    """The compiled split pattern (None for no split); ValueError naming the pattern if it is not a regex."""
    if not pattern:
        return None
    try:
        return regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"the split pattern {pattern!r} is not a regular expression: {e}") from None


def chunks(text: str, compiled: regex.Pattern | None) -> list[str]:
    """The text's chunks in order (the whole text when there is no pattern)."""
    if compiled is None:
        return [text] if text else []
    return compiled.findall(text)


def split_special(text: str, special: dict[str, int] | set[str] | frozenset[str]) -> list[str]:
    """The text cut around each special token, the tokens kept as parts of their own (longest first)."""
    if not special:
        return [text]
    alternatives = "|".join(regex.escape(s) for s in sorted(special, key=len, reverse=True))
    return [part for part in regex.split(f"({alternatives})", text) if part]
