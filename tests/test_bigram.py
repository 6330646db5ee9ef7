import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import models
from makemore_jax.data import Vocab, build_context_dataset, split_words
from makemore_jax.evaluate import split_loss
from makemore_jax.models import bigram
from makemore_jax.sample import decode, sample_ids
from makemore_jax.train import TrainConfig, create_train_state, fit


def whole_file_nll(words, smoothing):
    vocab = Vocab.from_words(words)
    X, Y = build_context_dataset(words, vocab, 1)
    return bigram.nll(bigram.probabilities(bigram.count_matrix(X, Y, vocab.size), smoothing), words, vocab)


def test_counts_match_a_python_loop():
    words = ["emma", "ava", "anna"]
    vocab = Vocab.from_words(words)
    X, Y = build_context_dataset(words, vocab, 1)
    N = bigram.count_matrix(X, Y, vocab.size)
    expected = np.zeros_like(N)
    for w in words:
        chs = ["."] + list(w) + ["."]
        for a, b in zip(chs, chs[1:]):
            expected[vocab.chars.index(a), vocab.chars.index(b)] += 1
    np.testing.assert_array_equal(N, expected)
    P = bigram.probabilities(N, 1.0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[0], (expected[0] + 1) / (expected[0].sum() + vocab.size))


def test_nll_on_the_original_names_matches_the_lecture(original_words):
    assert whole_file_nll(original_words, 1.0) == pytest.approx(2.4546, abs=5e-5)
    assert whole_file_nll(original_words, 0.0) == pytest.approx(2.4540, abs=5e-5)


def test_nll_on_the_bundled_names(bundled_words):
    assert whole_file_nll(bundled_words, 1.0) == pytest.approx(2.4547, abs=5e-5)
    assert whole_file_nll(bundled_words, 0.0) == pytest.approx(2.4541, abs=5e-5)


def test_fit_and_apply_give_the_split_loss(bundled_words):
    vocab = Vocab.from_words(bundled_words)
    X, Y = build_context_dataset(bundled_words, vocab, 1)
    config = bigram.CountConfig(vocab_size=vocab.size, smoothing=1.0)
    params = bigram.fit(config, X, Y)
    # the exact evaluation over the split equals the closed-form NLL
    assert split_loss(bigram.apply, params, {}, X, Y) == pytest.approx(whole_file_nll(bundled_words, 1.0), abs=1e-5)


def test_sampler_is_deterministic_and_follows_the_model():
    vocab = Vocab.from_words(["ab", "ba"])
    # a deterministic chain: . -> a -> b -> .
    log_P = jnp.log(jnp.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], jnp.float32) + 1e-30)
    ids = sample_ids(bigram.apply, {"log_P": log_P}, {}, jax.random.key(0), n=4, block_size=1, max_len=6)
    assert decode(np.asarray(ids), vocab) == ["ab"] * 4
    assert np.asarray(ids)[0].tolist() == [1, 2, 0, 0, 0, 0]

    params = {"log_P": jnp.log(jnp.full((3, 3), 1 / 3))}
    a = sample_ids(bigram.apply, params, {}, jax.random.key(1), n=50, block_size=1, max_len=8)
    b = sample_ids(bigram.apply, params, {}, jax.random.key(1), n=50, block_size=1, max_len=8)
    c = sample_ids(bigram.apply, params, {}, jax.random.key(2), n=50, block_size=1, max_len=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_one_hot_times_W_is_row_indexing():
    config = bigram.NeuralConfig(vocab_size=27)
    params, _ = bigram.neural_init(jax.random.key(0), config)
    x = jnp.array([[0], [5], [26], [5]])
    logits, _ = bigram.neural_apply(params, {}, x, train=True)
    np.testing.assert_allclose(logits, jax.nn.one_hot(x[:, 0], 27) @ params["W"], rtol=1e-6)


def test_neural_bigram_converges_to_the_counting_model(bundled_words):
    words = split_words(bundled_words)[0][:1000]
    vocab = Vocab.from_words(bundled_words)
    X, Y = build_context_dataset(words, vocab, 1)
    model = models.get("bigram-nn")
    config = model.make_config(vocab_size=vocab.size)
    tc = TrainConfig(**{**model.train_defaults, "steps": 1000})
    ts, _ = fit(model, config, tc, X, Y, create_train_state(model, config, tc, jax.random.key(0)))
    count_nll = bigram.nll(bigram.probabilities(bigram.count_matrix(X, Y, vocab.size), 0.0), words, vocab)
    neural_nll = split_loss(model.bind(config), ts.params, {}, X, Y)
    assert count_nll <= neural_nll < count_nll + 0.005
    assert neural_nll < math.log(vocab.size)
