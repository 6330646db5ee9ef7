"""The tokenizer's training and encoding against a plain copy of minbpe's algorithm (tests/bpe_reference.py)."""

import collections

import pytest
import regex
from bpe_reference import encode_reference, train_reference, train_reference_counted
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore_jax import tokenizer
from makemore_jax.data import DEFAULT_TEXT, DataError
from makemore_jax.settings import SettingError
from makemore_jax.tokenizer import bpe, split
from makemore_jax.tokenizer.trainer import train_merges_fast

CHARS = list("aab  \n'sT1é€日")  # ASCII, 2-, 3-byte UTF-8; a doubled "a" and space make runs likelier


@pytest.fixture(scope="module")
def corpus():
    with open(DEFAULT_TEXT, encoding="utf-8") as f:
        return f.read()


def runs():
    """Texts made of runs ("aaaa", "  ") where overlapping merges matter, and of mixed characters."""
    run = st.tuples(st.sampled_from(CHARS), st.integers(1, 7)).map(lambda r: r[0] * r[1])
    return st.one_of(st.lists(run, max_size=12).map("".join), st.text(alphabet=st.sampled_from(CHARS), max_size=60))


def pieces(text, pattern):
    return [c.encode("utf-8") for c in (regex.findall(pattern, text) if pattern else [text] if text else [])]


# ----------------------------------------------------------------------------- the helpers, by hand


def test_get_stats_and_merge_on_the_lectures_examples():
    assert bpe.get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert bpe.get_stats([7, 7, 7]) == {(7, 7): 2}  # overlapping pairs count each
    assert bpe.merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert bpe.merge([7, 7, 7], (7, 7), 9) == [9, 7]  # left to right; the overlapping one is gone
    assert bpe.merge([7, 7, 7, 7], (7, 7), 9) == [9, 9]


def test_ties_go_to_the_pair_that_occurs_first():
    # "ab" and "ba" both occur twice in "abab a": (a, b) comes first; in "baba b" (b, a) does
    assert list(tokenizer.train("abab", 257, pattern=None).merges) == [(97, 98)]
    assert list(tokenizer.train("baba", 257, pattern=None).merges) == [(98, 97)]
    # the count decides before the position: "cd" once, then "ab" three times
    assert list(tokenizer.train("cdababab", 257, pattern=None).merges) == [(97, 98)]


# ----------------------------------------------------------------------------- training equals minbpe's


@settings(max_examples=300, deadline=None)
@given(runs(), st.integers(0, 40), st.sampled_from([None, split.GPT2_PATTERN, split.GPT4_PATTERN]))
def test_fast_training_gives_minbpes_merges(text, num_merges, pattern):
    chunks = pieces(text, pattern)
    expected = train_reference(chunks, num_merges)
    assert train_reference_counted(chunks, num_merges) == expected  # the corpus test's oracle is the same loop
    assert bpe.train_merges(chunks, num_merges) == expected  # the package's readable loop
    assert train_merges_fast(collections.Counter(chunks), num_merges, progress=False) == expected
    assert tokenizer.train(text, 256 + num_merges, pattern=pattern, progress=False).merges == expected


@settings(max_examples=200, deadline=None)
@given(runs(), runs(), st.integers(0, 30), st.sampled_from(["gpt2", "gpt4", None]))
def test_encode_equals_minbpes_and_decode_inverts_it(train_text, text, num_merges, pattern):
    tok = tokenizer.train(train_text, 256 + num_merges, pattern=pattern, progress=False)
    ids = tok.encode(text)
    assert ids == encode_reference(pieces(text, split.resolve_pattern(pattern)), tok.merges)
    assert tok.decode(ids) == text
    assert tok.encode_fast(text) == ids  # tiktoken where exact, else the same hand-written path


def test_regex_training_on_the_corpus_gives_minbpes_merges(corpus):
    tok = tokenizer.train(corpus, 288, pattern="gpt2", progress=False)
    assert tok.merges == train_reference_counted(pieces(corpus, split.GPT2_PATTERN), 32)
    assert [tok.vocab[i] for i in (256, 257, 258)] == [b" t", b"he", b" a"]


def test_basic_training_on_a_corpus_slice_gives_minbpes_merges(corpus):
    text = corpus[:20_000]
    tok = tokenizer.train(text, 300, pattern=None, progress=False)
    assert tok.merges == train_reference([text.encode()], 44)
    assert tok.encode(text[:2000]) == encode_reference([text[:2000].encode()], tok.merges)


def test_training_stops_when_the_text_runs_out_of_pairs():
    tok = tokenizer.train("abab", 1000, pattern=None, progress=False)
    assert tok.merges == {(97, 98): 256, (256, 256): 257}
    assert tok.vocab_size == 258 and tok.encode("abab") == [257]


# ----------------------------------------------------------------------------- special tokens, decoding


def test_special_tokens_take_the_ids_after_the_merges_and_are_never_merged():
    text = "ab<|endoftext|>ab<|endoftext|>ab"
    tok = tokenizer.train(text, 259, pattern=None, special=["<|endoftext|>"], progress=False)
    assert tok.merges == {(97, 98): 256, (256, 256): 257} or tok.merges == {(97, 98): 256}
    assert tok.special == {"<|endoftext|>": 256 + len(tok.merges)}
    eot = tok.special["<|endoftext|>"]
    assert tok.encode(text, allowed_special="all") == [256, eot, 256, eot, 256]
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)
    with pytest.raises(tokenizer.SpecialTokenError, match="line 1: the text holds the special token"):
        tok.encode(text)
    assert tok.decode([256, eot]) == "ab<|endoftext|>"


def test_a_special_token_is_refused_on_its_line():
    tok = tokenizer.load("gpt2")
    with pytest.raises(tokenizer.SpecialTokenError) as e:
        tok.encode("one\ntwo\nthree <|endoftext|>")
    assert (e.value.token, e.value.line) == ("<|endoftext|>", 3)
    with pytest.raises(tokenizer.SpecialTokenError):
        tok.encode_fast("<|endoftext|>")
    assert tok.encode_fast("a<|endoftext|>", allowed_special={"<|endoftext|>"}) == [64, 50256]


def test_decoding_a_cut_character_replaces_it_as_minbpe_does():
    tok = tokenizer.train("", 256, progress=False)
    ids = list("é".encode())  # two bytes
    assert tok.decode(ids[:1]) == "\ufffd" and tok.decode(ids) == "é"
    with pytest.raises(DataError, match="token id 999 is not in the vocabulary"):
        tok.decode([999])


@pytest.mark.parametrize("vocab_size, special, message", [
    (255, (), "vocab_size must be between 256 and 2^32, got 255"),
    (257, ("<a>", "<b>"), r"vocab_size must be between 258 \(256 bytes \+ 2 special tokens\) and 2\^32, got 257"),
    (2 ** 32 + 1, (), "vocab_size must be between 256 and 2^32, got 4294967297"),
])
def test_a_vocab_size_out_of_range_is_refused(vocab_size, special, message):
    with pytest.raises(SettingError, match=message.replace("^", r"\^") if "(" not in message else message):
        tokenizer.train("abc", vocab_size, special=special)


def test_special_tokens_with_whitespace_are_refused():
    with pytest.raises(DataError, match="special token '<a b>'"):
        tokenizer.train("abc", 300, special=["<a b>"])
