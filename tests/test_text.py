"""Running text (the "text" kind) and the gpt model on it: the vocabulary, the split by position,
the windows against their closed form, exact evaluation against a brute-force loop, the CLI's
errors, a train/eval/sample round trip with a bit-identical resume, and sampling past block_size
against `apply` on the cropped context."""

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import data, kinds, models, text
from makemore_jax.evaluate import kind_loss
from makemore_jax.generate import generate_ids
from makemore_jax.run import load_run
from makemore_jax.train import TrainConfig, create_train_state, fit

from conftest import assert_trees_close, run_cli

GPT = models.get("gpt")
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8}
TINY_FLAGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
              "--warmup-steps", "1", "--chunk-size", "2"]


@pytest.fixture(scope="module")
def corpus():
    with open(data.DEFAULT_TEXT, encoding="utf-8") as f:
        return f.read(2000)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("text") / "play.txt"
    path.write_text(corpus, encoding="utf-8")
    return str(path)


def tiny(vocab_size, **over):
    return GPT.make_config(vocab_size=vocab_size, **{**TINY, **over})


# ----------------------------------------------------------------------------- the kind


def test_vocab_is_the_sorted_characters_without_boundary():
    vocab = data.Vocab.from_text("to be.\nor not")
    assert vocab.chars == ("\n", " ", ".", "b", "e", "n", "o", "r", "t") and not vocab.boundary
    assert vocab.decode(vocab.encode("not to be.")) == "not to be."
    assert data.Vocab.from_json(vocab.to_json()) == vocab
    words = data.Vocab.from_words(["emma", "ava"])  # the words vocabulary is unchanged
    assert words.chars == (".", "a", "e", "m", "v") and words.boundary and words.to_json() == '{"chars": ".aemv"}'
    assert GPT.dataset == "text" and GPT.kind.vocab("ba") == data.Vocab.from_text("ab")


def test_split_is_by_position_and_the_streams_shift_by_one(corpus):
    train, val = text.split_text(corpus)
    assert train == corpus[:1800] and val == corpus[1800:]  # int(0.9 * 2000)
    assert kinds.TEXT.splits == ("train", "val")
    vocab = data.Vocab.from_text(corpus)
    X, Y = text.build_text(val, vocab, 8)
    ids = vocab.encode(val)
    np.testing.assert_array_equal(X, ids[:-1])
    np.testing.assert_array_equal(Y, ids[1:])


def test_batches_are_windows_at_the_fold_in_offsets(corpus):
    vocab = data.Vocab.from_text(corpus)
    ids = vocab.encode(corpus)
    arrays = text.build_text(corpus, vocab, 8)
    key, steps, B, T = jax.random.key(3), jnp.array([0, 5, 6]), 4, 8
    x, y = kinds.text_batch(arrays, key, steps, B, T)
    assert x.shape == y.shape == (3, B, T)
    for i, step in enumerate(np.asarray(steps)):
        offsets = np.asarray(jax.random.randint(jax.random.fold_in(key, step), (B,), 0, len(ids) - T))
        for b, o in enumerate(offsets):  # nanoGPT's get_batch: w = ids[o:o + T + 1], x = w[:-1], y = w[1:]
            window = ids[o:o + T + 1]
            np.testing.assert_array_equal(x[i, b], window[:-1])
            np.testing.assert_array_equal(y[i, b], window[1:])


def test_training_numbers_do_not_depend_on_the_chunking(corpus):
    vocab = data.Vocab.from_text(corpus)
    config = tiny(vocab.size)
    X, Y = text.build_text(text.split_text(corpus)[0], vocab, config.block_size)
    states = []
    for chunk in (4, 2):
        tc = TrainConfig(**{**GPT.train_defaults, "steps": 4, "warmup_steps": 2, "batch_size": 4, "chunk_size": chunk})
        ts = create_train_state(GPT, config, tc, jax.random.key(0))
        states.append(fit(GPT, config, tc, X, Y, ts)[0])
    assert_trees_close(states[0], states[1], rtol=0, atol=0)


def test_exact_eval_is_the_mean_over_non_overlapping_windows(corpus, n=17):  # two windows of 8, one of 1
    vocab = data.Vocab.from_text(corpus)
    config = tiny(vocab.size)
    params, state = GPT.init(jax.random.key(1), config)
    ids = vocab.encode(corpus[:n + 1])
    arrays = (ids[:-1], ids[1:])
    total, count = 0.0, 0
    apply = GPT.bind(config)

    @jax.jit  # one compile per window length, not one per operation
    def window_nats(x, y):
        logits = apply(params, state, x[None], train=False)[0][0]
        return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    for start in range(0, n, config.block_size):  # brute force: each window alone, the last one shorter
        x, y = ids[start:start + config.block_size], ids[start + 1:start + config.block_size + 1]
        total += float(window_nats(jnp.asarray(x[:len(y)]), jnp.asarray(y)))
        count += len(y)
    assert count == n
    assert kind_loss(GPT, config, params, state, arrays) == pytest.approx(total / count, rel=1e-6)


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("prompt_len", [3, 11])  # shorter than block_size 8 (cache, then slide), and past it
def test_sampling_past_block_size_is_apply_on_the_cropped_context(prompt_len):
    config = tiny(9)
    params, state = GPT.init(jax.random.key(4), config)
    prompt = jax.random.randint(jax.random.key(5), (prompt_len,), 0, 9)
    length, n = 10, 3
    new, logits = generate_ids(GPT, params, state, jax.random.key(6), prompt, n=n, length=length, config=config,
                               with_logits=True)
    seq = np.concatenate([np.broadcast_to(np.asarray(prompt), (n, prompt_len)), np.asarray(new)], axis=1)
    apply = jax.jit(GPT.bind(config), static_argnames="train")
    for k in range(length):
        context = seq[:, :prompt_len + k][:, -config.block_size:]  # nanoGPT: idx[:, -block_size:]
        expected = apply(params, state, jnp.asarray(context), train=False)[0][:, -1]
        np.testing.assert_allclose(logits[:, k], expected, rtol=1e-5, atol=1e-5)
    assert len({tuple(row) for row in np.asarray(new)}) > 1  # the streams draw their own tokens
    if prompt_len < config.block_size:  # a model without the Decoder ability: apply on the padded window
        bare = dataclasses.replace(GPT, abilities=())
        new_bare, logits_bare = generate_ids(bare, params, state, jax.random.key(6), prompt, n=n, length=length,
                                             config=config, with_logits=True)
        np.testing.assert_array_equal(new_bare, new)
        np.testing.assert_allclose(logits_bare, logits, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"to be\0or not", "NUL byte"),
    (b"to be \xff\xfe", "not valid UTF-8"),
    (bytes(range(1, 32)) * 20 + b"ab", "control characters"),
    (b"too short", "too short for --block-size 64"),
])
def test_bad_text_gives_one_line_and_status_2(capsys, tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "train", "--model", "gpt", "--data", path, "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not os.path.exists(tmp_path / "o")


def test_a_words_model_given_text_names_the_text_model(capsys, tmp_path, text_file):
    code, _, err = run_cli(capsys, "train", "--model", "mlp", "--data", text_file, "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "contains whitespace; expected one word per line (for running text use --model gpt)" in err


def test_gpt_train_eval_sample_and_bit_identical_resume(capsys, tmp_path, text_file):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    code, out, _ = run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--out", whole, "--steps", "4",
                           *TINY_FLAGS)
    assert code == 0 and "train " in out and " val " in out and "sample (200 characters" in out
    assert run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--out", parts, "--steps", "2",
                   *TINY_FLAGS, "-n", "0")[0] == 0
    assert run_cli(capsys, "train", "--model", "gpt", "--data", text_file, "--out", parts, "--steps", "4",
                   "--resume", "-n", "0")[0] == 0
    with open(whole / "checkpoint.json") as f, open(parts / "checkpoint.json") as g:
        a, b = json.load(f), json.load(g)
    assert a["state_sha256"] == b["state_sha256"] and a["dataset"] == "text" and a["step"] == 4

    code, out, _ = run_cli(capsys, "eval", "--out", whole)
    assert code == 0 and out.startswith("train ") and "\nval " in out and "bits/byte" in out
    train_nats = float(out.split()[1])
    assert train_nats == pytest.approx(a["results"]["train_loss"], abs=1e-4)
    assert math.log(2) < train_nats < math.log(70)  # near uniform after 4 steps

    code, out, _ = run_cli(capsys, "sample", "--out", whole, "--prompt", "ALL", "--length", "30", "-n", "2")
    assert code == 0
    streams = out.rstrip("\n").split("\n----------------\n")
    assert len(streams) == 2 and all(s.startswith("ALL") and len(s) == 33 for s in streams)

    code, _, err = run_cli(capsys, "sample", "--out", whole, "--prompt", "Zebra ~")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--prompt" in err and "not in the vocabulary" in err

    run = load_run(str(whole))  # the same from Python (the sample command's seed 42, 2 streams of 30)
    assert [s[3:] for s in streams] == run.generate(prompt="ALL", length=30, n=2, seed=42)
    with pytest.raises(ValueError, match="prompt"):
        run.generate(prompt="\u00e9")
    config = dataclasses.asdict(run.config)
    assert {k: config[k] for k in TINY} == TINY and config["tie_embeddings"] and not config["bias"]


def test_control_characters_are_counted_on_the_bytes_as_on_the_characters():
    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in (0, 1, 9, 10, 12, 13, 27, 31, 32, 65, 127, 128, 0x85, 0xE9, 0x2028, 0x1F600)]
    for _ in range(200):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(1, 30))))
        by_character = sum((ch < " " and ch not in "\t\n\r\f") or ch == "\x7f" for ch in s)
        assert text.control_characters(("\ufeff" + s).encode()) == by_character, repr(s)
