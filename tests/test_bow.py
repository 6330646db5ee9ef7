"""makemore's bag-of-words model: its logits against a PyTorch twin, causality, the initial loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import models
from makemore_jax.data import Vocab, build_sequence_dataset
from makemore_jax.evaluate import split_loss
from makemore_jax.models import bow


def off_init(params):
    return jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(1), p.shape), params)


def test_registry_entry_parameter_count_and_causal_mean():
    model = models.get("bow")
    assert model.dataset == "sequence" and model.train_defaults["optimizer"] == "adamw"
    config = model.make_config(words=["emma", "ava"], vocab_size=27)
    assert config.block_size == 5 and (config.n_embd, config.n_embd2) == (64, 64)  # longest word + 1, makemore's
    params, state = model.init(jax.random.key(0), model.make_config(vocab_size=27, block_size=16))
    # wte 27*64 + wpe 16*64 + c_fc 64*64+64 + c_proj 64*64+64 + lm_head 64*27+27
    assert sum(p.size for p in jax.tree.leaves(params)) == 12_827 and state == {}
    x = jax.random.normal(jax.random.key(3), (2, 5, 3))
    expected = jnp.cumsum(x, axis=1) / jnp.arange(1, 6)[None, :, None]
    np.testing.assert_allclose(bow.causal_mean(x), expected, rtol=1e-6, atol=1e-6)


def test_a_position_sees_only_the_past():
    config = bow.Config(block_size=8)
    params = off_init(bow.init(jax.random.key(0), config)[0])
    idx = jax.random.randint(jax.random.key(2), (3, 8), 0, 27)
    changed = idx.at[:, 5:].set((idx[:, 5:] + 1) % 27)
    a, b = bow.apply(params, {}, idx, train=True)[0], bow.apply(params, {}, changed, train=False)[0]
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert not np.allclose(a[:, 5:], b[:, 5:])


def test_initial_loss_is_log_vocab(bundled_words):
    vocab = Vocab.from_words(bundled_words)
    model = models.get("bow")
    config = model.make_config(words=bundled_words, vocab_size=vocab.size)
    X, Y = build_sequence_dataset(bundled_words[:500], vocab, config.block_size - 1)  # [N, block_size]
    params, state = model.init(jax.random.key(0), config)
    assert abs(float(split_loss(model.bind(config), params, state, X, Y)) - math.log(vocab.size)) < 0.05  # head x 0.01: logits near 0


def test_logits_match_the_pytorch_reference():
    torch = pytest.importorskip("torch")
    from benchmarks.references import torch_bow
    config = bow.Config(block_size=16)
    params = off_init(bow.init(jax.random.key(0), config)[0])
    x = np.array(jax.random.randint(jax.random.key(2), (8, 11), 0, 27))  # T < block_size: the [:T] slices
    ours = np.asarray(bow.apply(params, {}, jnp.asarray(x), train=False)[0])
    reference = torch_bow.load_jax_params(torch_bow.MakemoreBoW(config), params)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x).long()).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    X, Y = x[:, :-1].copy(), x[:, 1:].copy()
    losses = torch_bow.loops(X, Y, config, batch_size=4)  # the benchmark interface runs
    assert set(losses) == {"lecture eager", "torch.compile"} and np.isfinite(losses["lecture eager"](2))
