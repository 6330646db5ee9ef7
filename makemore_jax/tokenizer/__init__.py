"""Byte-pair encoding tokenizers: the lecture's algorithm by hand, a fast trainer, tiktoken for speed.

    from makemore_jax import tokenizer
    tok = tokenizer.train(text, 512, pattern="gpt2")    # minbpe's merges, exactly
    ids = tok.encode(text)                              # hand-written (the reference)
    ids = tok.encode_fast(text)                         # tiktoken, the same ids
    text = tok.decode(ids)
    tok.save("out/tok"); tok = tokenizer.load("out/tok.model")
    gpt2 = tokenizer.load("gpt2")                       # GPT-2's own 50,257 tokens
    meta = tok.to_json(); tok = tokenizer.Tokenizer.from_json(meta)   # inside a checkpoint

Modules: bpe (get_stats, merge, the slow training loop, encode_chunk: the readable
reference), split (the GPT-2 / GPT-4 split patterns, special tokens), trainer (the fast
trainer), tokenizer (the Tokenizer, train, load), files (minbpe's .model / .vocab,
tiktoken's .tiktoken), fast (the tiktoken bridge), command (`makemore-jax tokenizer`).
"""

from .bpe import get_stats, merge
from .split import GPT2_PATTERN, GPT4_PATTERN, PATTERNS
from .tokenizer import MODEL_FILE, SpecialTokenError, Tokenizer, load, train

__all__ = ["get_stats", "merge", "GPT2_PATTERN", "GPT4_PATTERN", "PATTERNS", "MODEL_FILE", "SpecialTokenError",
           "Tokenizer", "load", "train", "from_json"]


def from_json(meta: dict) -> Tokenizer:
    """The tokenizer a checkpoint's metadata describes (Tokenizer.to_json's output)."""
    return Tokenizer.from_json(meta)
