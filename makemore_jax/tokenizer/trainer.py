"""The fast trainer: minbpe's merges, with each merge costing only the places it changes.

bpe.train_merges recounts every pair of the whole text for each merge. Here:

- each distinct chunk (a "word" of the regex split) is laid out once, weighted by how
  often it occurs, its tokens in a linked list (`nxt`, `prv`), so a merge edits in place;
- `counts` holds every pair's weighted count and `where` the positions where it starts,
  in ascending order; a merge visits only its own positions and adjusts the counts of the
  pairs beside each one (the left and right neighbours lose a pair and gain one with the
  new token);
- a heap picks the next merge: the largest count, and among equal counts the pair whose
  first occurrence is earliest, which is minbpe's rule (`max` over a dict filled in text
  order returns the first maximum). The words are laid out in the order of their first
  appearance, so "earliest position here" is "earliest in the text".

The heap is lazy. A pair that exists only loses occurrences (a new neighbourhood always
holds the new token, hence a new pair), so its count only falls and its first position
only moves right: a stored entry is never worse than the truth. The top entry is checked
against the truth; if stale it is pushed back corrected, else it is the answer.

Pairs are ints `a << 32 | b` (ids below 2^32), cheaper to hash than tuples.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Mapping

SHIFT = 32
LOW = (1 << SHIFT) - 1


class _Layout:
    """The distinct words end to end: token at each position (-1 once merged away), links, weights."""

    def __init__(self, words: Mapping[bytes, int]):
        tok, weight, nxt, prv = [], [], [], []
        for word, n in words.items():
            start, end = len(tok), len(tok) + len(word)
            tok.extend(word)
            weight.extend([n] * len(word))
            nxt.extend(range(start + 1, end))
            nxt.append(-1)
            prv.append(-1)
            prv.extend(range(start, end - 1))
        self.tok, self.weight, self.nxt, self.prv = tok, weight, nxt, prv

    def pair_positions(self) -> tuple[dict[int, int], dict[int, list[int]]]:
        """Every pair's weighted count and its start positions (ascending), inserted in order of first occurrence."""
        tok, weight, nxt = self.tok, self.weight, self.nxt
        counts: dict[int, int] = {}
        where: dict[int, list[int]] = {}
        for i, j in enumerate(nxt):
            if j < 0:
                continue
            pair = tok[i] << SHIFT | tok[j]
            if pair in counts:
                counts[pair] += weight[i]
                where[pair].append(i)
            else:
                counts[pair] = weight[i]
                where[pair] = [i]
        return counts, where


def train_merges_fast(words: Mapping[bytes, int], num_merges: int, *, progress: bool | None = None) -> dict:
    """minbpe's merges for a text given as its distinct chunks and their counts.

    Args:
        words: chunk bytes -> how many times it occurs, in the order of first appearance
            (a collections.Counter over the chunks in text order is that).
        num_merges: how many merges to learn; fewer when no pair is left.
        progress: show a progress bar (tqdm); None shows one when stderr is a terminal.

    Returns:
        {(id_a, id_b): new_id}, new ids 256, 257, ..., equal to bpe.train_merges on the
        chunks in text order.
    """
    layout = _Layout(words)
    counts, where = layout.pair_positions()
    first = dict.fromkeys(where, 0)  # index into where[pair] of its first live position
    heap = [(-n, where[pair][0], pair) for pair, n in counts.items()]
    heapq.heapify(heap)
    merges = {}
    bar = _progress_bar(num_merges, progress)
    for new_id in range(256, 256 + num_merges):
        pair = _pop_best(heap, counts, where, first, layout)
        if pair is None:
            break
        merges[pair >> SHIFT, pair & LOW] = new_id
        created = _apply_merge(layout, pair, new_id, counts, where)
        for new_pair in created:
            first[new_pair] = 0
            position = _first_live(new_pair, where, first, layout)
            if position is not None:
                heapq.heappush(heap, (-counts[new_pair], position, new_pair))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return merges


def _progress_bar(total: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="bpe merges", unit="merge", leave=False)


def _first_live(pair: int, where, first, layout: _Layout) -> int | None:
    """The first position where `pair` still starts (dead entries at the front are skipped for good)."""
    a, b = pair >> SHIFT, pair & LOW
    tok, nxt = layout.tok, layout.nxt
    positions, k = where[pair], first[pair]
    while k < len(positions):
        i = positions[k]
        if tok[i] == a and nxt[i] >= 0 and tok[nxt[i]] == b:
            first[pair] = k
            return i
        k += 1
    first[pair] = k
    return None


def _pop_best(heap, counts, where, first, layout: _Layout) -> int | None:
    """Take the pair with the largest count, the earliest first occurrence among equals; None if none is left."""
    while heap:
        neg_count, position, pair = heap[0]
        count = counts.get(pair, 0)
        live = _first_live(pair, where, first, layout) if count > 0 else None
        if live is None:
            heapq.heappop(heap)
            counts.pop(pair, None), where.pop(pair, None), first.pop(pair, None)
        elif count == -neg_count and live == position:
            heapq.heappop(heap)
            return pair
        else:
            heapq.heapreplace(heap, (-count, live, pair))
    return None


def _apply_merge(layout: _Layout, pair: int, new_id: int, counts, where) -> set[int]:
    """Merge every live occurrence of `pair`, left to right, and fix the neighbours' counts.

    Returns:
        The pairs made with `new_id` (all new: their counts are final once this returns).
    """
    a, b = pair >> SHIFT, pair & LOW
    tok, nxt, prv, weight = layout.tok, layout.nxt, layout.prv, layout.weight
    created = set()
    for i in where.pop(pair):
        j = nxt[i]
        if tok[i] != a or j < 0 or tok[j] != b:
            continue  # merged away, or overlapping the occurrence just merged
        w, left, right = weight[i], prv[i], nxt[j]
        if left >= 0:
            t = tok[left]
            counts[t << SHIFT | a] -= w
            made = t << SHIFT | new_id
            _add(counts, where, made, w, left)
            created.add(made)
        if right >= 0:
            t = tok[right]
            counts[b << SHIFT | t] -= w
            made = new_id << SHIFT | t
            _add(counts, where, made, w, i)
            created.add(made)
            prv[right] = i
        tok[i], tok[j], nxt[i] = new_id, -1, right
    counts.pop(pair, None)
    return created


def _add(counts, where, pair: int, w: int, position: int) -> None:
    if pair in counts:
        counts[pair] += w
        where[pair].append(position)
    else:
        counts[pair] = w
        where[pair] = [position]
