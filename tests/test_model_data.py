"""The model says what data it needs: Model.dataset, its kind's build (kinds.py) and the CLI's use of them.

A stand-in "sequence" model (a per-position bigram, [B, T] -> [B, T, vocab]) joins the
registry for the CLI tests, so the plumbing is tested without any real sequence model.
"""

import dataclasses
import json
import math
import os
from types import MappingProxyType

import jax
import numpy as np
import pytest

from makemore_jax import kinds, models
from makemore_jax.cli import main
from makemore_jax.data import (DataError, Vocab, build_context_dataset, build_sequence_dataset, sequence_block_size,
                               split_words)

WORDS = ["emma", "olivia", "ava", "x", "sophia"]


def build_dataset(kind: str, words, vocab, block_size):
    return kinds.get(kind).build(words, vocab, block_size)


# ----------------------------------------------------------------------------- each kind's build


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_context_kind_is_the_context_dataset(block_size):
    vocab = Vocab.from_words(WORDS)
    expected = build_context_dataset(WORDS, vocab, block_size)
    for a, b in zip(build_dataset("context", WORDS, vocab, block_size), expected):
        np.testing.assert_array_equal(a, b)


def test_sequence_kind_is_the_sequence_dataset_with_block_size_columns():
    vocab = Vocab.from_words(WORDS)
    X, Y = build_dataset("sequence", WORDS, vocab, 7)
    Xs, Ys = build_sequence_dataset(WORDS, vocab, 6)
    assert X.shape == Y.shape == (len(WORDS), 7)
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(Y, Ys)
    assert X[1].tolist()[:2] == [0, vocab.chars.index("o")] and Y[1].tolist()[-1] == 0  # "olivia" fills the row


def test_build_dataset_errors():
    vocab = Vocab.from_words(WORDS)
    with pytest.raises(DataError, match="a word has 6 characters; block_size 6 fits at most 5"):
        build_dataset("sequence", WORDS, vocab, 6)
    with pytest.raises(DataError, match="at least 2"):
        build_dataset("sequence", WORDS, vocab, 1)
    with pytest.raises(ValueError, match="dataset kind must be one of context, sequence"):
        build_dataset("window", WORDS, vocab, 3)


# ----------------------------------------------------------------------------- Model.dataset


@dataclasses.dataclass(frozen=True)
class SeqConfig:
    vocab_size: int = 27
    block_size: int = 4


def seq_init(key, config):
    return {"W": 0.01 * jax.random.normal(key, (config.vocab_size, config.vocab_size))}, {}


def seq_apply(params, state, x, *, train):
    return params["W"][x], state  # [B, T] -> [B, T, vocab]: each position's logits from its own token


SEQ = models.Model("seq-bigram", SeqConfig, seq_init, seq_apply, dataset="sequence",
                   train_defaults={"lr": 5.0, "steps": 200, "chunk_size": 100})


def test_model_defaults_to_context_and_checks_its_kind():
    assert models.get("mlp").dataset == "context"
    assert {m.dataset for m in models.REGISTRY.values()} <= {"context", "sequence", "text"}
    with pytest.raises(ValueError, match="dataset must be one of"):
        models.Model("x", SeqConfig, seq_init, seq_apply, dataset="tokens")


def test_sequence_block_size_defaults_to_the_longest_word_plus_one():
    assert sequence_block_size(WORDS) == 7
    assert SEQ.make_config(words=WORDS, vocab_size=10).block_size == 7
    assert SEQ.make_config(words=WORDS, vocab_size=10, block_size=12).block_size == 12  # given: kept
    assert SEQ.make_config(vocab_size=10).block_size == 4  # no words: the Config's default
    assert models.get("mlp").make_config(words=WORDS, vocab_size=10).block_size == 3  # context models: untouched


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture()
def with_seq_model(monkeypatch):
    monkeypatch.setattr(models, "REGISTRY", MappingProxyType({**models.REGISTRY, SEQ.name: SEQ}))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, bundled_words):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(bundled_words[:1500]) + "\n", encoding="utf-8")
    return str(path)


def exact_mean_loss(W, X, Y):
    """Mean -log softmax(W[x])[y] over the counted targets, in numpy float64."""
    logits = np.asarray(W, np.float64)[X]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    keep = Y >= 0
    return -np.take_along_axis(logp, np.where(keep, Y, 0)[..., None], -1)[..., 0][keep].mean()


def test_cli_trains_evaluates_resumes_a_sequence_model(with_seq_model, capsys, tmp_path, small_data):
    from makemore_jax.run import load_run

    out = str(tmp_path / "seq")
    assert main(["train", "--model", SEQ.name, "--data", small_data, "--out", out, "-n", "3", "--quiet"]) == 0
    words = [w for w in open(small_data, encoding="utf-8").read().split()]
    meta = json.load(open(os.path.join(out, "checkpoint.json")))
    assert meta["config"]["block_size"] == max(map(len, words)) + 1  # not given: longest word + 1

    # eval: the exact mean over every target of each split, against numpy
    vocab = Vocab(tuple(meta["vocab"]))
    run = load_run(out)
    config, ts = run.config, run.state
    capsys.readouterr()
    assert main(["eval", "--out", out]) == 0
    printed = {line.split()[0]: float(line.split()[1]) for line in capsys.readouterr().out.splitlines()}
    for name, part in zip(("train", "dev", "test"), split_words(words)):
        X, Y = build_dataset("sequence", part, vocab, config.block_size)
        assert X.shape[1] == config.block_size
        assert printed[name] == pytest.approx(exact_mean_loss(ts.params["W"], X, Y), abs=1e-4)
    assert printed["train"] < math.log(vocab.size) - 0.5  # it learned

    # resume: 100 + 100 steps == 200 steps, bit for bit
    half = str(tmp_path / "half")
    common = ["train", "--model", SEQ.name, "--data", small_data, "-n", "0", "--quiet"]
    assert main([*common, "--out", half, "--steps", "100"]) == 0
    assert main([*common, "--out", half, "--steps", "200", "--resume"]) == 0
    assert (open(os.path.join(out, "checkpoint.msgpack"), "rb").read()
            == open(os.path.join(half, "checkpoint.msgpack"), "rb").read())

    # sample and lr-find run on the sequence dataset too
    capsys.readouterr()
    assert main(["sample", "--out", out, "-n", "4", "--quiet"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["lr-find", "--model", SEQ.name, "--data", small_data, "--out", str(tmp_path / "lr"),
                 "--steps", "60", "--quiet"]) == 0


def test_eval_on_data_with_a_longer_word_is_one_line(with_seq_model, capsys, tmp_path, small_data):
    out = str(tmp_path / "seq")
    assert main(["train", "--model", SEQ.name, "--data", small_data, "--out", out, "--steps", "1",
                 "--chunk-size", "1", "-n", "0", "--quiet"]) == 0
    longer = tmp_path / "longer.txt"
    words = open(small_data, encoding="utf-8").read().split()
    longer.write_text("\n".join(words[:-1] + [words[-1] + "a" * 40]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", "--out", out, "--data", str(longer)]) == 2
    err = capsys.readouterr().err
    assert "block_size" in err and len(err.strip().splitlines()) == 1
