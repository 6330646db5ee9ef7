"""Text models on tokens (tokens.py): the tokenizer setting, bpe:N on the training split only, the
checkpoint's tokenizer and old char checkpoints, resume, bits per byte against its closed form,
prompts through the tokenizer, nanoGPT's prepared .bin data, and the one-line refusals."""

import json
import math
import os

import numpy as np
import pytest

from makemore_jax import checkpoint, data, text, tokenizer, tokens
from makemore_jax.generate import generate_ids
from makemore_jax.lifecycle import prepare, train_model
from makemore_jax.run import load_run
from makemore_jax.settings import UsageError

from conftest import run_cli

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4, "warmup_steps": 1,
        "chunk_size": 2}
TINY_FLAGS = [arg for k, v in TINY.items() for arg in ("--" + k.replace("_", "-"), str(v))]


@pytest.fixture(scope="module")
def corpus():
    with open(data.DEFAULT_TEXT, encoding="utf-8") as f:
        return f.read(6000)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("text") / "play.txt"
    path.write_text(corpus, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def bpe_run(text_file):
    return train_model("gpt", data=text_file, tokenizer="bpe:300", steps=2, **TINY)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- the setting


def test_char_is_the_default_and_writes_the_char_checkpoint(tmp_path, text_file):
    default = train_model("gpt", data=text_file, steps=2, out=str(tmp_path / "a"), **TINY)
    char = train_model("gpt", data=text_file, steps=2, out=str(tmp_path / "b"), tokenizer="char", **TINY)
    a, b = (json.loads((tmp_path / name / checkpoint.META).read_text()) for name in "ab")
    assert a["state_sha256"] == b["state_sha256"] and a["results"] == b["results"]
    assert "tokenizer" not in a and a["vocab"] == list(data.Vocab.from_text(open(text_file).read()).chars)
    assert default.vocab == char.vocab and default.config.vocab_size == len(a["vocab"])


def test_bpe_is_trained_on_the_training_split_only(bpe_run, corpus):
    train_part, _ = text.split_text(corpus)
    expected = tokenizer.train(train_part, 300, pattern="gpt2")
    assert bpe_run.vocab.tokenizer.merges == expected.merges
    assert bpe_run.vocab.tokenizer.merges != tokenizer.train(corpus, 300, pattern="gpt2").merges  # val unseen
    assert bpe_run.config.vocab_size == bpe_run.vocab.size == 300
    ids = expected.encode(train_part)  # the training stream is that tokenizer's ids, shifted by one
    np.testing.assert_array_equal(bpe_run.splits["train"][0], ids[:-1])
    np.testing.assert_array_equal(bpe_run.splits["train"][1], ids[1:])


def test_token_vocab_round_trips_through_the_checkpoint_record(bpe_run):
    record = bpe_run.vocab.to_meta()
    assert set(record) == {"tokenizer"} and record["tokenizer"]["source"] == "bpe:300"
    again = tokens.vocab_from_meta(json.loads(json.dumps(record)), boundary=False)
    assert again == bpe_run.vocab and again.label == "bpe:300" and again.setting is again
    gpt2 = tokens.token_vocab("gpt2", None)
    assert gpt2.to_meta() == {"tokenizer": {"name": "gpt2"}} and gpt2.size == 50_257
    assert gpt2 != bpe_run.vocab and tokens.vocab_from_meta(gpt2.to_meta(), boundary=False) == gpt2
    assert gpt2.encode("hello world").tolist() == [31373, 995]
    assert gpt2.encode("a<|endoftext|>").tolist() == tokenizer.load("gpt2").encode_fast(
        "a<|endoftext|>", disallowed_special=())  # special text as ordinary text, as nanoGPT's prepare.py


def test_an_old_char_checkpoint_still_loads(tmp_path, text_file):
    run = train_model("gpt", data=text_file, steps=2, **TINY)
    meta = {"model": "gpt", "dataset": "text", "config": dict(vars(run.config)), "train": dict(vars(run.train_config)),
            "vocab": list(run.vocab.chars), "data": os.path.abspath(text_file), "seed": 42}  # written by hand
    checkpoint.save(str(tmp_path), run.state, meta)
    loaded = load_run(str(tmp_path))
    assert isinstance(loaded.vocab, data.Vocab) and loaded.vocab == run.vocab
    assert loaded.evaluate() == pytest.approx(run.evaluate(), abs=1e-6)
    assert loaded.generate("ROMEO", 20, seed=1) == run.generate("ROMEO", 20, seed=1)


# ----------------------------------------------------------------------------- bits per byte


def test_bits_per_byte_is_bits_per_char_on_ascii(tmp_path, text_file):
    run = train_model("gpt", data=text_file, steps=2, **TINY)
    losses = run.evaluate()
    assert run.bits_per_byte(losses) == pytest.approx({k: v / math.log(2) for k, v in losses.items()}, rel=1e-12)


def test_bits_per_byte_closed_form_on_multibyte_text():
    val = "naïve café: ∑ 日本"  # 1-, 2-, 3-byte characters
    vocab = data.Vocab.from_text(val)
    arrays = text.build_text(val, vocab, 4)
    predicted = val[1:]  # every character but the first is a target once
    assert text.target_bytes(arrays, vocab) == len(predicted.encode("utf-8")) == 23
    gpt2 = tokens.token_vocab("gpt2", None)
    ids = gpt2.encode(val)
    arrays = text.build_text(val, gpt2, 4)
    assert text.target_bytes(arrays, gpt2) == len(gpt2.tokenizer.decode_bytes(ids[1:]))
    from makemore_jax.evaluate import bits_per_byte
    assert bits_per_byte(2.0, 10, 40) == pytest.approx(20 / (40 * math.log(2)))


def test_run_bits_per_byte_is_total_nats_over_the_split_bytes(bpe_run, corpus):
    _, val = text.split_text(corpus)
    ids = bpe_run.vocab.tokenizer.encode(val)
    n_bytes = len(bpe_run.vocab.tokenizer.decode_bytes(ids[1:]))
    assert bpe_run.bits_per_byte({"val": 3.0}) == {"val": pytest.approx(3.0 * (len(ids) - 1) / (math.log(2) * n_bytes))}
    assert 1.2 < n_bytes / (len(ids) - 1) < 2  # 44 merges on 5,400 characters: a token is a byte or two


def test_a_words_model_counts_no_bytes(tmp_path):
    run = train_model("bigram", data=["emma", "ava", "olivia", "mia", "ella", "anna", "eve", "ada", "isla", "amy"])
    assert run.bits_per_byte(run.evaluate()) == {}


def test_eval_batches_hold_a_bounded_number_of_logits():
    assert text.eval_batch(64, 65) == text.EVAL_TOKENS // 64  # char vocabularies: as before
    rows = text.eval_batch(32, 50_257)
    assert rows * 32 * 50_257 <= text.EVAL_LOGITS and (rows + 1) * 32 * 50_257 > text.EVAL_LOGITS


# ----------------------------------------------------------------------------- the command line


def test_tokenizer_dir_train_resume_eval_and_sample(capsys, tmp_path, text_file):
    tok_dir = tmp_path / "tok"
    assert run_cli(capsys, "tokenizer", "train", "--data", text_file, "--vocab-size", "280", "--out", tok_dir)[0] == 0
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    code, out, _ = run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--tokenizer", tok_dir,
                           "--steps", "4", "--out", whole, "-n", "0", *TINY_FLAGS)
    assert code == 0 and "vocabulary 280 (" in out and "loss (nats/token, bits/byte): train " in out
    assert run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--tokenizer", tok_dir, "--steps", "2",
                   "--out", parts, "-n", "0", *TINY_FLAGS)[0] == 0
    assert run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--out", parts, "--steps", "4",
                   "--resume", "-n", "0")[0] == 0  # the checkpoint's tokenizer, not char
    a, b = (json.loads((p / checkpoint.META).read_text()) for p in (whole, parts))
    assert a["state_sha256"] == b["state_sha256"] and a["tokenizer"]["source"] == str(tok_dir)
    assert a["tokenizer"]["merges"] == [list(p) for p in tokenizer.load(str(tok_dir)).merges]

    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--out", parts, "--steps", "6",
                           "--resume", "--tokenizer", "char")
    assert code == 2 and "trained on vocabulary 280" in one_line(err) and "leave --tokenizer out" in err

    code, out, _ = run_cli(capsys, "eval", "--out", whole)
    run = load_run(str(whole))
    losses, per_byte = run.evaluate(), run.bits_per_byte(run.evaluate())
    assert code == 0 and out.startswith("train ") and "nats/token" in out and "bits/byte" in out
    assert float(out.split()[1]) == pytest.approx(losses["train"], abs=1e-4)
    assert float(out.split("\n")[1].split()[3]) == pytest.approx(per_byte["val"], abs=1e-4)

    code, out, _ = run_cli(capsys, "sample", "--out", whole, "--prompt", "ROMEO:", "--length", "7", "--seed", "3")
    expected = run.generate("ROMEO:", 7, seed=3)[0]
    prompt = np.asarray(run.vocab.tokenizer.encode("ROMEO:"), np.int32)  # the tokenizer's ids, 7 tokens on
    new = generate_ids(run.model, run.state.params, run.state.model_state, __import__("jax").random.key(3), prompt,
                       n=1, length=7, config=run.config)
    assert code == 0 and out == "ROMEO:" + expected + "\n" and expected == run.vocab.tokenizer.decode(np.asarray(new)[0])


def test_a_words_model_refuses_a_tokenizer(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--model", "mlp", "--tokenizer", "gpt2", "--out", tmp_path / "o")
    assert code == 2 and "--tokenizer gpt2 applies to running text (gpt" in one_line(err) and "--model mlp" in err
    with pytest.raises(UsageError, match="tokenizer gpt2 applies to running text"):
        train_model("rnn", tokenizer="gpt2")
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("setting, message", [
    ("bpe:100", "--tokenizer bpe:100: expected bpe:N with N a vocabulary size of at least 256"),
    ("bpe:x", "--tokenizer bpe:x: expected bpe:N"),
    ("no/such/dir", "--tokenizer no/such/dir: no such tokenizer"),
    ("README.md", "not a minbpe tokenizer model"),
])
def test_a_bad_tokenizer_setting_is_one_line(capsys, tmp_path, text_file, setting, message):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    setting = os.path.join(root, setting) if setting == "README.md" else setting
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--tokenizer", setting,
                           "--out", tmp_path / "o")
    assert code == 2 and message in one_line(err)


def test_a_prompt_outside_a_char_vocabulary_is_one_line_naming_the_character(capsys, tmp_path, text_file):
    train_model("gpt", data=text_file, steps=2, out=str(tmp_path / "c"), **TINY)
    code, _, err = run_cli(capsys, "sample", "--out", tmp_path / "c", "--prompt", "caf\u00e9")
    assert code == 2 and "--prompt" in one_line(err) and "'\u00e9' (U+00E9) is not in the vocabulary" in err


# ----------------------------------------------------------------------------- nanoGPT's prepared data


@pytest.fixture(scope="module")
def bins(tmp_path_factory, corpus):
    """train.bin / val.bin as nanoGPT's prepare.py writes them: GPT-2 ids of the text, np.uint16 .tofile."""
    folder = tmp_path_factory.mktemp("prepared")
    gpt2 = tokenizer.load("gpt2")
    n = int(0.9 * len(corpus))
    ids = {"train": gpt2.encode_fast(corpus[:n]), "val": gpt2.encode_fast(corpus[n:])}
    for name, split in ids.items():
        np.array(split, dtype=np.uint16).tofile(folder / f"{name}.bin")
    return str(folder), ids


def test_prepared_bins_are_the_two_splits_as_they_are(capsys, tmp_path, bins):
    folder, ids = bins
    p = prepare("gpt", data=folder, tokenizer="gpt2", overrides=TINY)
    assert p.vocab.size == p.config.vocab_size == 50_257
    for name in ("train", "val"):
        X, Y = p.splits[name]
        np.testing.assert_array_equal(X, ids[name][:-1])
        np.testing.assert_array_equal(Y, ids[name][1:])
        assert X.dtype == np.int32
    code, out, _ = run_cli(capsys, "train", "--model", "gpt", "--data", folder, "--tokenizer", "gpt2", "--steps", "2",
                           "--out", tmp_path / "o", "-n", "0", *TINY_FLAGS)
    n_tokens = len(ids["train"]) + len(ids["val"])
    assert code == 0 and f"{n_tokens:,} tokens from {folder}" in out and "(gpt2 tokens)" in out
    assert run_cli(capsys, "eval", "--out", tmp_path / "o")[0] == 0  # the folder read again


def test_prepared_bins_refusals_are_one_line(capsys, tmp_path, bins):
    folder, ids = bins
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", folder, "--out", tmp_path / "o")
    assert code == 2 and "holds token ids" in one_line(err) and "--tokenizer" in err
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", folder, "--tokenizer", "bpe:300",
                           "--out", tmp_path / "o")
    assert code == 2 and "bpe:300 trains on text" in one_line(err)

    big = tmp_path / "big"
    big.mkdir()
    np.array(ids["train"], np.uint16).tofile(big / "train.bin")
    np.array([1, 2, 60_000, 3], np.uint16).tofile(big / "val.bin")
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", big, "--tokenizer", "gpt2",
                           "--out", tmp_path / "o")
    assert code == 2 and f"{big / 'val.bin'}: token id 60,000 is outside the tokenizer's vocabulary of 50,257" \
        in one_line(err)

    os.remove(big / "val.bin")
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", big, "--tokenizer", "gpt2",
                           "--out", tmp_path / "o")
    assert code == 2 and "holds train.bin and val.bin; val.bin missing" in one_line(err)
    (big / "val.bin").write_bytes(b"\x01\x00\x02")
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", big, "--tokenizer", "gpt2",
                           "--out", tmp_path / "o")
    assert code == 2 and "3 bytes: expected uint16 token ids" in one_line(err)
    assert not os.path.exists(tmp_path / "o")
