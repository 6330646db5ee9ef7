"""A small reference copy of minbpe's algorithm, written plainly, the oracle of the tokenizer tests.

`train_reference` is minbpe's RegexTokenizer.train loop on a list of chunks (BasicTokenizer's
when the list is the whole text): recount every pair each round, `max` over the dict,
merge every chunk. `train_reference_counted` is the same loop over the distinct chunks
weighted by their counts (in order of first appearance), fast enough for the corpus; the
property tests check that the two agree.
"""

from collections import Counter


def pair_counts(ids, counts, weight=1):
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight


def merge_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_reference(chunks, num_merges):
    """minbpe's loop: chunks (bytes) in text order -> {(a, b): new_id}; stops when no pair is left."""
    ids = [list(c) for c in chunks]
    merges = {}
    for k in range(num_merges):
        counts = {}
        for chunk in ids:
            pair_counts(chunk, counts)
        if not counts:
            break
        best = max(counts, key=counts.get)
        merges[best] = 256 + k
        ids = [merge_pair(chunk, best, 256 + k) for chunk in ids]
    return merges


def train_reference_counted(chunks, num_merges):
    """The same merges, each distinct chunk kept once with its count."""
    words = Counter(chunks)  # insertion order: first appearance
    ids = [list(w) for w in words]
    weights = list(words.values())
    merges = {}
    for k in range(num_merges):
        counts = {}
        for chunk, weight in zip(ids, weights):
            pair_counts(chunk, counts, weight)
        if not counts:
            break
        best = max(counts, key=counts.get)
        merges[best] = 256 + k
        ids = [merge_pair(chunk, best, 256 + k) for chunk in ids]
    return merges


def encode_reference(chunks, merges):
    """minbpe's encode: per chunk, merge the lowest-ranked pair present until none is a merge."""
    out = []
    for chunk in chunks:
        ids = list(chunk)
        while len(ids) >= 2:
            counts = {}
            pair_counts(ids, counts)
            best = min(counts, key=lambda p: merges.get(p, float("inf")))
            if best not in merges:
                break
            ids = merge_pair(ids, best, merges[best])
        out.extend(ids)
    return out
