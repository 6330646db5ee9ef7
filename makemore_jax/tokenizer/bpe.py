"""Byte-pair encoding as the lecture writes it: count the pairs, merge the commonest, repeat.

This is the readable reference (minbpe's algorithm): `get_stats` and `merge` are a few
lines each, `train_merges` is the training loop over the text's chunks, `encode_chunk`
applies the learned merges in the order they were learned. The fast trainer (trainer.py)
and tiktoken (fast.py) must agree with these, and the tests check that they do.

Token ids 0..255 are the bytes; merge number i mints id 256 + i. A merge is the pair of ids
it joins; `merges` maps that pair to the new id, in the order they were learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Pair = tuple[int, int]


def get_stats(ids: Sequence[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """Count each pair of neighbours: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}.

    Overlapping pairs count each ([7, 7, 7] has (7, 7) twice). The dict's order is the order
    in which each pair first occurs, which is how ties between equal counts are broken.

    Args:
        ids: token ids.
        counts: a dict to add to (several chunks counted into one), or None for a new one.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, idx: int) -> list[int]:
    """Replace each occurrence of `pair` by `idx`, left to right: ([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4].

    A run such as [7, 7, 7] merged on (7, 7) gives [idx, 7]: an occurrence that overlaps the
    one just merged is gone.
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(chunks: Iterable[bytes], num_merges: int) -> dict[Pair, int]:
    """The training loop: count the pairs over every chunk, merge the commonest, `num_merges` times.

    Pairs never span two chunks. Among equal counts the pair that occurs first wins
    (`max` returns the first maximum in the dict's order). Training stops early when no
    pair is left. This is the slow, readable loop (a pass over the whole text per merge);
    trainer.train_merges_fast gives the same merges.

    Args:
        chunks: the text's pieces as UTF-8 bytes, in text order (the regex split's chunks,
            or the whole text for the basic tokenizer).
        num_merges: how many merges to learn.

    Returns:
        {(id_a, id_b): new_id} in the order learned, new ids 256, 257, ...
    """
    ids = [list(chunk) for chunk in chunks]
    merges: dict[Pair, int] = {}
    for i in range(num_merges):
        stats: dict[Pair, int] = {}
        for chunk_ids in ids:
            get_stats(chunk_ids, stats)
        if not stats:
            break
        pair = max(stats, key=stats.get)
        merges[pair] = 256 + i
        ids = [merge(chunk_ids, pair, 256 + i) for chunk_ids in ids]
    return merges


def encode_chunk(ids: list[int], merges: dict[Pair, int]) -> list[int]:
    """Apply the merges to one chunk's ids, the earliest-learned pair present first, until none applies."""
    while len(ids) >= 2:
        stats = get_stats(ids)
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def build_vocab(merges: dict[Pair, int], byte_ids: Sequence[int] = range(256)) -> dict[int, bytes]:
    """Each id's bytes: the single bytes (byte b has id byte_ids[b]), then each merge's two halves joined."""
    vocab = {idx: bytes([b]) for b, idx in enumerate(byte_ids)}
    for (a, b), idx in merges.items():
        vocab[idx] = vocab[a] + vocab[b]
    return vocab


def recover_merges(ranks: dict[bytes, int]) -> dict[Pair, int]:
    """The merges behind tiktoken-style ranks (bytes -> rank), such as GPT-2's.

    tiktoken keeps only each token's bytes and rank; the pair it was made from is the two
    pieces that byte-pair merging its bytes leaves when only lower ranks may be used.
    """
    merges = {}
    for token, rank in ranks.items():
        if len(token) == 1:
            continue
        pieces = _bpe_pieces(ranks, token, max_rank=rank)
        if len(pieces) != 2:
            raise ValueError(f"the token {token!r} of rank {rank} is not two lower-ranked tokens joined")
        merges[ranks[pieces[0]], ranks[pieces[1]]] = rank
    return dict(sorted(merges.items(), key=lambda item: item[1]))


def _bpe_pieces(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    pieces = [bytes([b]) for b in token]
    while True:
        best, best_rank = None, max_rank
        for i in range(len(pieces) - 1):
            rank = ranks.get(pieces[i] + pieces[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best is None:
            return pieces
        pieces[best:best + 2] = [pieces[best] + pieces[best + 1]]
