"""Tokenizer files (minbpe's .model / .vocab, tiktoken's .tiktoken), checkpoint JSON, and tiktoken's ids."""

import hashlib
import json

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext.openai_public import r50k_pat_str

from makemore_jax import tokenizer
from makemore_jax.data import DEFAULT_TEXT, DataError
from makemore_jax.tokenizer import Tokenizer
from makemore_jax.tokenizer.fast import exact_for_tiktoken
from makemore_jax.tokenizer.tokenizer import GPT2_FILE

GPT2_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


@pytest.fixture(scope="module")
def corpus():
    with open(DEFAULT_TEXT, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def trained(corpus):
    return tokenizer.train(corpus[:200_000], 400, pattern="gpt4", special=["<|endoftext|>"], progress=False)


# ----------------------------------------------------------------------------- minbpe's format


def test_model_file_is_minbpes_format_line_for_line(tmp_path):
    tok = tokenizer.train("aaabdaaabac", 260, pattern=None, special=["<|endoftext|>"], progress=False)
    tok.save(str(tmp_path / "tok"))
    # the lecture's example: aa -> 256, then (256, a) -> 257, then (257, b) -> 258
    assert (tmp_path / "tok.model").read_text() == "minbpe v1\n\n1\n<|endoftext|> 259\n97 97\n256 97\n257 98\n"
    vocab = (tmp_path / "tok.vocab").read_text().splitlines()
    assert vocab[97] == "[a] 97" and vocab[10] == "[\\u000a] 10"
    assert vocab[256:] == ["[a][a] -> [aa] 256", "[aa][a] -> [aaa] 257", "[aaa][b] -> [aaab] 258",
                           "[<|endoftext|>] 259"]


def test_save_and_load_round_trip(trained, tmp_path):
    trained.save(str(tmp_path / "tok"))
    back = tokenizer.load(str(tmp_path / "tok.model"))
    assert (back.merges, back.pattern, back.special) == (trained.merges, trained.pattern, trained.special)
    assert back.pattern_name == "gpt4" and back.vocab_size == 400


def test_a_minbpe_model_written_by_hand_loads(tmp_path):
    (tmp_path / "m.model").write_text("minbpe v1\n\n0\n104 105\n256 33\n")  # a basic tokenizer's
    tok = tokenizer.load(str(tmp_path / "m.model"))
    assert tok.encode("hi! hi") == [257, 32, 256] and tok.vocab[257] == b"hi!"
    (tmp_path / "m.model").write_text(f"minbpe v1\n{tokenizer.GPT2_PATTERN}\n0\n104 105\n256 33\n")
    assert tokenizer.load(str(tmp_path / "m.model")).encode("hi! hi") == [256, 33, 32, 256]  # "!" is a chunk apart


def test_a_folder_loads_its_tokenizer_model(trained, tmp_path):
    trained.save(str(tmp_path / "tokenizer"))
    assert tokenizer.load(str(tmp_path)).merges == trained.merges


@pytest.mark.parametrize("content, message", [
    ("hello\n", r"m.model:1: not a minbpe tokenizer model: expected 'minbpe v1', got 'hello'"),
    ("minbpe v1\n\nx\n", r"m.model:3: expected the number of special tokens, got 'x'"),
    ("minbpe v1\n\n1\n<eot>\n", r"m.model:4: expected a special token and its id, got '<eot>'"),
    ("minbpe v1\n\n0\n97 98\n97 x\n", r"m.model:5: expected a merge \(two token ids\), got '97 x'"),
    ("minbpe v1\n\n0\n97 98\n257 1\n", r"m.model:5: the merge \(257, 1\) names a token not made yet"),
    ("minbpe v1\n\n0\n97 98\n97 98\n", r"m.model:5: the merge \(97, 98\) appears twice"),
    ("minbpe v1\n", r"m.model:2: the file ends early"),
    (b"minbpe v1\n\xff\n", r"m.model:2: not a tokenizer file \(not UTF-8 text\)"),
    ("minbpe v1\n(\n0\n", r"m.model: the split pattern '\(' is not a regular expression"),
])
def test_a_file_that_is_not_a_tokenizer_is_refused_with_its_line(tmp_path, content, message):
    path = tmp_path / "m.model"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        tokenizer.load(str(path))


def test_tiktoken_export_round_trips(trained, tmp_path):
    trained.save_tiktoken(str(tmp_path / "t.tiktoken"))
    ranks = load_tiktoken_bpe(str(tmp_path / "t.tiktoken"))  # tiktoken's own reader
    assert ranks == {trained.vocab[i]: i for i in range(399)}  # the special token is not a rank
    back = tokenizer.load(str(tmp_path / "t.tiktoken"), pattern="gpt4", special=trained.special)
    assert back.merges == trained.merges and back.encode("To be, or not") == trained.encode("To be, or not")


# ----------------------------------------------------------------------------- checkpoint metadata


def test_json_round_trip_is_small_and_exact(trained):
    meta = json.loads(json.dumps(trained.to_json()))
    assert len(json.dumps(meta)) < 12 * len(trained.merges) + len(trained.pattern) + 100
    back = Tokenizer.from_json(meta)
    assert (back.merges, back.pattern, back.special) == (trained.merges, trained.pattern, trained.special)
    assert tokenizer.load("gpt2").to_json() == {"name": "gpt2"}
    assert tokenizer.from_json({"name": "gpt2"}) is tokenizer.load("gpt2")
    with pytest.raises(DataError, match="not a tokenizer description"):
        Tokenizer.from_json({"pattern": ""})


# ----------------------------------------------------------------------------- tiktoken, GPT-2


def test_tiktoken_gives_the_hand_written_ids_on_the_corpus(trained, corpus):
    assert trained.encoding is not None
    text = corpus[200_000:400_000]  # text it was not trained on
    assert trained.encode_fast(text) == trained.encode(text)
    assert trained.decode(trained.encode_fast(text)) == text


def test_ranks_tiktoken_would_misread_keep_the_hand_written_encoder():
    # "abc" made twice, as [ab][c] and [a][bc]: tiktoken's ranks cannot say which
    merges = {(97, 98): 256, (98, 99): 257, (256, 99): 258, (97, 257): 259}
    tok = Tokenizer(merges, pattern=tokenizer.GPT2_PATTERN)
    assert not exact_for_tiktoken(tok.vocab, merges) and tok.encoding is None
    assert tok.encode_fast("abc bc") == tok.encode("abc bc") == [258, 32, 257]


def test_the_bundled_gpt2_ranks_are_whispers():
    with open(GPT2_FILE, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == GPT2_SHA256


def test_gpt2_encodes_as_tiktoken_does_on_the_corpus(corpus):
    gpt2 = tokenizer.load("gpt2")
    assert gpt2.encode("hello world") == [31373, 995] and gpt2.vocab_size == 50257
    reference = tiktoken.Encoding(name="r50k_base", pat_str=r50k_pat_str, explicit_n_vocab=50257,
                                  mergeable_ranks=load_tiktoken_bpe(GPT2_FILE, expected_hash=GPT2_SHA256),
                                  special_tokens={"<|endoftext|>": 50256})
    expected = reference.encode(corpus)
    assert gpt2.encode_fast(corpus) == expected
    assert gpt2.encode(corpus[:100_000]) == reference.encode(corpus[:100_000])  # the hand-written one, merges recovered
    quirks = " 12345  spaces\t\tand ünïcödé 🦙"
    assert gpt2.encode(quirks) == gpt2.encode_fast(quirks) == reference.encode(quirks)
    assert gpt2.decode(expected) == corpus
