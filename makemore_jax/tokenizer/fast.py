"""The tiktoken bridge: the same ranks, encoded by tiktoken's Rust core.

tiktoken keeps a token's bytes and rank only (`mergeable_ranks`: bytes -> id) and, inside
each chunk of the split pattern, joins the two neighbours whose joined bytes have the
lowest rank. minbpe joins the neighbouring *pair* learned first. The two agree when tiktoken's rule,
run on each token's own bytes, rebuilds it from the pair it was learned from. Merges
trained here have always passed in the tests, but a .model file of one's own can break it
(two ids with the same bytes, [ab][c] and [a][bc]), so `exact_for_tiktoken` checks, and a
tokenizer that fails the check keeps the hand-written encoder. GPT-2's merges are recovered from its ranks by
tiktoken's own rule (bpe.recover_merges), so they agree by construction.

The basic tokenizer (no split pattern) has no fast path: tiktoken merges within a chunk in
time quadratic in its length, and the whole text is one chunk.
"""

from __future__ import annotations

import hashlib

import tiktoken

from .bpe import recover_merges


def exact_for_tiktoken(vocab: dict[int, bytes], merges: dict[tuple[int, int], int]) -> bool:
    """Whether tiktoken, given these tokens' bytes as ranks, makes each token from the pair `merges` made it from.

    True when no two ids share their bytes and tiktoken's rule, run on each token's own
    bytes with only lower ranks allowed, ends at that token's merge pair: then the merges
    are the ones tiktoken's ranks imply (bpe.recover_merges), as GPT-2's are.
    """
    ranks = {}
    for idx, token in vocab.items():
        if ranks.setdefault(token, idx) != idx:
            return False
    try:
        return recover_merges(ranks) == merges
    except ValueError:
        return False


def build_encoding(ranks: dict[bytes, int], pattern: str, special: dict[str, int]) -> tiktoken.Encoding:
    """A tiktoken Encoding of these ranks (bytes -> id), split pattern and special tokens.

    Its name is derived from its contents, so two equal tokenizers build equal names.
    """
    digest = hashlib.sha256(repr((sorted(ranks.items(), key=lambda item: item[1]), pattern,
                                  sorted(special.items()))).encode()).hexdigest()[:12]
    return tiktoken.Encoding(name=f"makemore-bpe-{digest}", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens=special)
