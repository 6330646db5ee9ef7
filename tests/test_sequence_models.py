"""The sequence models (rnn, gru, transformer): sizes, gradients, training, resume, causality, sampling."""

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from makemore_jax import checkpoint, loop, models
from makemore_jax.cli import main
from makemore_jax.data import Vocab, build_sequence_dataset, split_words
from makemore_jax.losses import cross_entropy
from makemore_jax.sample import decode, sample_ids
from makemore_jax.train import TrainConfig, create_train_state, fit, init_train_state, loss_fn, make_optimizer, make_train_step

from conftest import assert_trees_close

SEQUENCE_MODELS = [name for name, m in models.REGISTRY.items() if m.dataset == "sequence" and name != "wavenet"]
TINY = {"rnn": {"n_embd": 4, "n_embd2": 5}, "gru": {"n_embd": 4, "n_embd2": 5},
        "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 8}, "bow": {"n_embd": 4, "n_embd2": 5}}


def n_params(params):
    return sum(x.size for x in jax.tree.leaves(params))


def tiny(name, vocab_size=7, block_size=6, **overrides):
    model = models.get(name)
    return model, model.make_config(vocab_size=vocab_size, block_size=block_size, **{**TINY[name], **overrides})


def random_sequences(key, config, batch_size):
    """Random inputs and targets [B, block_size], the last two targets of each row ignored."""
    kx, ky = jax.random.split(key)
    x = jax.random.randint(kx, (batch_size, config.block_size), 0, config.vocab_size)
    y = jax.random.randint(ky, (batch_size, config.block_size), 0, config.vocab_size)
    return x, y.at[:, -2:].set(-1)


@pytest.fixture(scope="module")
def names(bundled_words):
    vocab = Vocab.from_words(bundled_words)
    train, dev, _ = split_words(bundled_words)
    block_size = max(map(len, bundled_words)) + 1
    return vocab, block_size, build_sequence_dataset(train[:2000], vocab, block_size - 1)


@pytest.mark.parametrize("name, expected", [
    ("rnn", 11_803),  # start 64 + wte 27x64 + cell 128x64+64 + head 64x27+27
    ("gru", 28_315),  # three gates of 128x64+64
    ("transformer", 204_544),  # makemore's number on its names.txt (block_size 16)
])
def test_parameter_counts_on_makemore_names(name, expected, original_words):
    vocab = Vocab.from_words(original_words)
    model = models.get(name)
    config = model.make_config(vocab_size=vocab.size, block_size=max(map(len, original_words)) + 1)
    assert (vocab.size, config.block_size) == (27, 16)
    assert n_params(model.init(jax.random.key(0), config)[0]) == expected


def initial_loss(name, names, **overrides):
    vocab, block_size, (X, Y) = names
    model = models.get(name)
    config = model.make_config(vocab_size=vocab.size, block_size=block_size, **overrides)
    params, state = model.init(jax.random.key(0), config)
    logits, new_state = jax.jit(lambda p, s, x: model.bind(config)(p, s, x, train=True))(params, state, jnp.asarray(X))
    assert logits.shape == (*X.shape, vocab.size)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    return float(cross_entropy(logits, jnp.asarray(Y))) - math.log(vocab.size)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_initial_loss_is_ln_vocab_size(name, names):
    assert abs(initial_loss(name, names)) < 0.05


def test_transformer_pytorch_init_is_torch_layer_defaults(names):
    """makemore.py's init: torch's nn.Linear / nn.Embedding defaults, and the initial loss they imply."""
    model = models.get("transformer")
    params, _ = model.init(jax.random.key(0), model.make_config(vocab_size=27, block_size=16, init="pytorch"))
    linears = [params["lm_head"]] + [layer for block in params["blocks"]
                                     for layer in (block["attn"]["c_attn"], block["attn"]["c_proj"],
                                                   block["mlp"]["c_fc"], block["mlp"]["c_proj"])]
    for layer in linears:
        fan_in = layer["W"].shape[0]
        for a in layer.values():  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)): std 1/sqrt(3 fan_in)
            assert float(jnp.abs(a).max()) <= 1 / math.sqrt(fan_in)
        W = layer["W"]
        assert abs(float(W.std()) * math.sqrt(3 * fan_in) - 1) < 0.05
    for table in (params["wte"], params["wpe"]):  # N(0, 1)
        assert abs(float(table.std()) - 1) < 0.1 and abs(float(table.mean())) < 0.1
    # each logit starts with variance ~1/3: the loss sits ~1/6 nats above ln(vocab_size)
    assert 0.1 < initial_loss("transformer", names, init="pytorch") < 0.25


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_loss_gradients_match_finite_differences(name, x64):
    model, config = tiny(name, **({"n_layer": 1} if name == "transformer" else {}))
    params, state = model.init(jax.random.key(0), config)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    x, y = random_sequences(jax.random.key(1), config, 3)
    loss = jax.jit(lambda p: loss_fn(model, config, p, state, x, y)[0])
    # eps 1e-6: the transformer's weights are N(0, 0.02), and LayerNorm over such small
    # activations bends too fast for the default step of 1e-4
    check_grads(loss, (params,), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5, eps=1e-6)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_overfits_a_tiny_batch(name):
    model, config = tiny(name, vocab_size=27, block_size=8, **({"n_embd": 32, "n_embd2": 32} if name != "transformer" else {}))
    tc = TrainConfig(optimizer="adamw", lr=3e-2, weight_decay=0.0, steps=300, min_lr_ratio=1.0)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    batch = random_sequences(jax.random.key(1), config, 4)
    step = make_train_step(model, config, make_optimizer(tc))
    ts, metrics = jax.jit(lambda ts: jax.lax.scan(lambda ts, _: step(ts, batch), ts, length=300))(ts)
    assert float(metrics["loss"][-1]) < 0.05


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_causality_later_tokens_leave_earlier_logits_alone(name):
    model, config = tiny(name, block_size=8)
    params, state = model.init(jax.random.key(0), config)
    x, _ = random_sequences(jax.random.key(1), config, 4)
    apply = jax.jit(lambda x: model.bind(config)(params, state, x, train=False)[0])
    logits = apply(x)
    for t in (0, 3, 7):
        new_logits = apply(x.at[:, t].set((x[:, t] + 1) % config.vocab_size))
        np.testing.assert_array_equal(new_logits[:, :t], logits[:, :t])
        assert np.abs(new_logits[:, t] - logits[:, t]).max() > 1e-4  # position t itself does see it


@pytest.mark.parametrize("name, overrides", [("rnn", {}), ("gru", {}), ("transformer", {"dropout": 0.1})])
def test_checkpoint_round_trip_and_exact_resume(name, overrides, names, tmp_path):
    vocab, block_size, (X, Y) = names
    model, config = tiny(name, vocab_size=vocab.size, block_size=block_size, **overrides)
    tc = TrainConfig(**{**model.train_defaults, "steps": 60, "chunk_size": 20, "warmup_steps": 10})
    fresh = create_train_state(model, config, tc, jax.random.key(3))
    saved = {}

    def save_at_20(ts):
        if int(ts.step) == 20:
            checkpoint.save(str(tmp_path), ts, {"model": name})
            saved["ts"] = ts

    straight, _ = fit(model, config, tc, X, Y, fresh, callbacks=[loop.Call(save_at_20)])
    _, raw = checkpoint.load(str(tmp_path))
    template = checkpoint.template_of(lambda: init_train_state(model, config, tc, jax.random.key(0)))
    restored = checkpoint.restore(template, raw)
    assert_trees_close(restored, saved["ts"], rtol=0)
    resumed, _ = fit(model, config, tc, X, Y, restored)
    assert_trees_close(resumed, straight, rtol=0)
    if overrides:  # the dropout key moved on every step, and was saved with the rest
        assert not np.array_equal(straight.model_state["dropout"]["key"], fresh.model_state["dropout"]["key"])


@pytest.fixture(scope="module")
def trained(names):
    """Each model after 300 steps on the names, so sampling has something to say."""
    vocab, block_size, (X, Y) = names
    out = {}
    for name in SEQUENCE_MODELS:
        model, config = tiny(name, vocab_size=vocab.size, block_size=block_size, **{"n_embd": 16})
        tc = TrainConfig(optimizer="adamw", lr=1e-2, steps=300, chunk_size=300)
        ts, _ = fit(model, config, tc, X, Y, create_train_state(model, config, tc, jax.random.key(0)))
        out[name] = (model, config, ts)
    return out


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_cached_sampler_gives_the_uncached_tokens_and_is_deterministic(name, trained, names):
    vocab, block_size, _ = names
    model, config, ts = trained[name]
    kwargs = dict(n=200, block_size=block_size, max_len=block_size, config=config)
    cached = sample_ids(model, ts.params, ts.model_state, jax.random.key(5), **kwargs)
    again = sample_ids(model, ts.params, ts.model_state, jax.random.key(5), **kwargs)
    other = sample_ids(model, ts.params, ts.model_state, jax.random.key(6), **kwargs)
    uncached_model = dataclasses.replace(model, abilities=())
    uncached = sample_ids(uncached_model, ts.params, ts.model_state, jax.random.key(5), **kwargs)
    np.testing.assert_array_equal(cached, again)
    np.testing.assert_array_equal(cached, uncached)
    assert not np.array_equal(cached, other)
    words = decode(np.asarray(cached), vocab)
    assert np.mean([0 < len(w) < block_size for w in words]) > 0.9  # mostly ended words, not noise


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_decode_step_reproduces_every_position_of_apply(name, trained):
    model, config, ts = trained[name]
    x, _ = random_sequences(jax.random.key(2), config, 5)
    logits, _ = jax.jit(lambda x: model.bind(config)(ts.params, ts.model_state, x, train=False))(x)
    decoder = model.ability(models.Decoder)
    cache = decoder.init_cache(ts.params, config, 5)
    decode_step = jax.jit(models.bind_config(decoder.decode_step, config))
    for pos in range(config.block_size):
        step_logits, cache = decode_step(ts.params, ts.model_state, cache, x[:, pos], jnp.int32(pos))
        np.testing.assert_allclose(step_logits, logits[:, pos], rtol=1e-4, atol=1e-5)


def test_dropout_is_train_mode_only_and_moves_its_key():
    model, config = tiny("transformer", dropout=0.5)
    params, state = model.init(jax.random.key(0), config)
    x, _ = random_sequences(jax.random.key(1), config, 4)
    apply = model.bind(config)
    assert apply == model.bind(config) and hash(apply) == hash(model.bind(config))  # one jit cache entry per config
    eval_logits, eval_state = apply(params, state, x, train=False)
    assert eval_state is state
    assert set(state["dropout"]) == {"key"}  # the rate comes from the config, not the state
    train_apply = jax.jit(lambda s: apply(params, s, x, train=True))
    a, state_a = train_apply(state)
    b, _ = train_apply(state_a)
    assert not np.allclose(a, eval_logits) and not np.allclose(a, b)
    no_dropout = dataclasses.replace(config, dropout=0.0)
    assert model.init(jax.random.key(0), no_dropout)[1] == {}


def test_cli_train_resume_eval_sample(capsys, tmp_path, bundled_words):
    """Through the CLI, with makemore's constant-lr recipe (a cosine schedule depends on --steps)."""
    name, flags = "transformer", ["--n-layer", "1", "--n-embd", "8", "--dropout", "0.1"]
    data_path = tmp_path / "names.txt"
    data_path.write_text("\n".join(bundled_words[:600]) + "\n", encoding="utf-8")
    common = ["--model", name, "--data", str(data_path), *flags, "--chunk-size", "20", "-n", "0", "--quiet"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["train", *common, "--steps", "60", "--out", a]) == 0
    assert main(["train", *common, "--steps", "20", "--out", b]) == 0
    assert main(["train", *common, "--steps", "60", "--out", b, "--resume"]) == 0
    assert open(os.path.join(a, "checkpoint.msgpack"), "rb").read() == open(os.path.join(b, "checkpoint.msgpack"), "rb").read()
    meta = json.load(open(os.path.join(a, "checkpoint.json")))
    assert meta["config"]["block_size"] == max(map(len, bundled_words[:600])) + 1
    capsys.readouterr()
    assert main(["eval", "--out", a]) == 0
    assert f"{meta['results']['dev_loss']:.4f}" in capsys.readouterr().out
    samples = []
    for _ in range(2):
        assert main(["sample", "--out", a, "-n", "6", "--seed", "4"]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0] == samples[1] and len(samples[0].splitlines()) >= 6
