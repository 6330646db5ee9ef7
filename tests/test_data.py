import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore_jax.data import (DataError, Vocab, build_context_dataset, build_sequence_dataset, load_words,
                               split_words)

WORDS = ["emma", "olivia", "ava", "x", "zoë", "李娜"]


# ----------------------------------------------------------------------------- load_words


def test_load_words_strips_and_skips_blank_lines(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("  emma \n\n\tava\n   \nzoë\n", encoding="utf-8")
    assert load_words(path) == ["emma", "ava", "zoë"]


@pytest.mark.parametrize("content, message", [
    (b"emma\nav\xffa\n", r"w\.txt:2: not valid UTF-8"),
    (b"\n  \n", r"w\.txt: contains no words"),
    (b"emma\nj.r\n", r"w\.txt:2: word 'j\.r' contains the boundary token"),
    (b"emma\nava\nmary ann\n", r"w\.txt:3: word 'mary ann' contains whitespace"),
])
def test_load_words_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "w.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_words(path)


def test_load_words_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        load_words(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        load_words(tmp_path)


# ----------------------------------------------------------------------------- vocab


def test_vocab_layout_and_errors():
    vocab = Vocab.from_words(["cab", "ba"])
    assert vocab.chars == (".", "a", "b", "c") and vocab.size == 4
    assert vocab.encode("cab").tolist() == [3, 1, 2]
    with pytest.raises(DataError, match="'z'"):
        vocab.encode("zab")
    assert Vocab.from_json(vocab.to_json()) == vocab


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters=".", blacklist_categories=("Cs",)), min_size=1),
                min_size=1, max_size=8))
def test_vocab_round_trip_any_unicode(words):
    vocab = Vocab.from_words(words)
    assert vocab.chars[0] == "." and list(vocab.chars[1:]) == sorted(set("".join(words)))
    for word in words:
        ids = vocab.encode(word)
        assert ids.dtype == np.int32 and (ids >= 1).all()
        assert vocab.decode(ids) == word
    assert Vocab.from_json(vocab.to_json()) == vocab


# ----------------------------------------------------------------------------- split


def test_split_is_deterministic_and_lecture_shaped(bundled_words):
    a = split_words(bundled_words)
    assert a == split_words(bundled_words)
    n = len(bundled_words)
    assert [len(p) for p in a] == [int(0.8 * n), int(0.9 * n) - int(0.8 * n), n - int(0.9 * n)]
    assert sorted(sum(a, [])) == sorted(bundled_words)
    assert split_words(bundled_words, seed=1) != a


def test_split_matches_the_lecture_recipe(bundled_words):
    import random
    words = list(bundled_words)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    assert split_words(bundled_words) == (words[:n1], words[n1:n2], words[n2:])


def test_split_reproduces_lecture_example_counts(original_words):
    vocab = Vocab.from_words(original_words)
    counts = [len(build_context_dataset(part, vocab, 3)[0]) for part in split_words(original_words)]
    assert counts == [182_625, 22_655, 22_866]


def test_split_rejects_bad_fractions():
    with pytest.raises(DataError, match="sum"):
        split_words(WORDS, fractions=(0.5, 0.1, 0.1))


# ----------------------------------------------------------------------------- datasets


def reference_context_dataset(words, vocab, block_size):
    """The lectures' loop, character by character."""
    X, Y = [], []
    for word in words:
        context = [0] * block_size
        for ch in word + ".":
            ix = vocab.chars.index(ch)
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return np.array(X, dtype=np.int32).reshape(-1, block_size), np.array(Y, dtype=np.int32)


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_context_dataset_matches_reference_loop(block_size):
    vocab = Vocab.from_words(WORDS)
    X, Y = build_context_dataset(WORDS, vocab, block_size)
    Xr, Yr = reference_context_dataset(WORDS, vocab, block_size)
    assert X.dtype == Y.dtype == np.int32
    assert X.shape == (sum(len(w) + 1 for w in WORDS), block_size)
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(Y, Yr)


def test_context_dataset_rejects_bad_block_size():
    with pytest.raises(DataError, match="block_size"):
        build_context_dataset(WORDS, Vocab.from_words(WORDS), 0)


def test_sequence_dataset_matches_reference():
    vocab = Vocab.from_words(WORDS)
    X, Y = build_sequence_dataset(WORDS, vocab, max_len=7)
    assert X.shape == Y.shape == (len(WORDS), 8) and X.dtype == Y.dtype == np.int32
    for word, x, y in zip(WORDS, X, Y):
        ids = [vocab.chars.index(c) for c in word]
        pad = 7 - len(word)
        assert x.tolist() == [0] + ids + [0] * pad
        assert y.tolist() == ids + [0] + [-1] * pad
    assert build_sequence_dataset(WORDS, vocab)[0].shape == (len(WORDS), 7)
    with pytest.raises(DataError, match="max_len=3"):
        build_sequence_dataset(WORDS, vocab, max_len=3)


def test_a_byte_order_mark_is_no_character(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffemma\nava\n".encode("utf-8"))
    words = load_words(path)
    assert words == ["emma", "ava"] and Vocab.from_words(words).chars == (".", "a", "e", "m", "v")


def test_no_words_give_empty_context_arrays():  # the dev split of a five-word file
    X, Y = build_context_dataset([], Vocab.from_words(["ab"]), 3)
    assert X.shape == (0, 3) and Y.shape == (0,) and X.dtype == Y.dtype == np.int32
