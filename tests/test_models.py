"""Every registered model against the protocol, and the MLP's lecture numbers."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from makemore_jax import models
from makemore_jax.models import bigram, bow, mlp, rnn, transformer, wavenet
from makemore_jax.losses import cross_entropy
from makemore_jax.train import TrainConfig, create_train_state, loss_fn, make_optimizer, make_train_step

from conftest import assert_trees_close

CONTEXT_MODELS = [name for name, m in models.REGISTRY.items() if m.dataset == "context"]  # sequence models:
GRADIENT_MODELS = [name for name in CONTEXT_MODELS if not models.get(name).ability(models.ClosedForm)]  # test_sequence_models.py


def n_params(params):
    return sum(x.size for x in jax.tree.leaves(params))


def random_batch(key, config, batch_size=32):
    kx, ky = jax.random.split(key)
    x = jax.random.randint(kx, (batch_size, config.block_size), 0, config.vocab_size)
    y = jax.random.randint(ky, (batch_size,), 0, config.vocab_size)
    return x, y


@pytest.mark.parametrize("name, overrides, expected", [
    ("mlp", {"init": "unit"}, 11_897),  # lecture 2: n_embd 10, n_hidden 200, block 3
    ("mlp", {}, 11_897),
    ("mlp-bn", {}, 12_097),  # lecture 3: hidden bias dropped, gamma and beta added
    ("mlp-deep", {}, 47_024),  # lecture 3's deep net
    ("bigram-nn", {}, 729),
    ("bigram", {}, 729),
])
def test_parameter_counts(name, overrides, expected):
    model = models.get(name)
    params, _ = model.init(jax.random.key(0), model.make_config(vocab_size=27, **overrides))
    assert n_params(params) == expected


# Each entry's module function, called as its own module defines it (the transformer's takes
# its config as a keyword): what Model.bind must reproduce. A new entry must be added here.
MODULE_FUNCTIONS = {
    "bigram": lambda config: bigram.apply, "bigram-nn": lambda config: bigram.neural_apply,
    **dict.fromkeys(("mlp", "mlp-bn", "mlp-deep"), lambda config: mlp.apply),
    **dict.fromkeys(("rnn", "gru"), lambda config: rnn.apply), "bow": lambda config: bow.apply,
    **dict.fromkeys(("transformer", "gpt", "gpt-speedrun", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"),
                    lambda config: functools.partial(transformer.apply, config=config)),
    "wavenet": lambda config: wavenet.apply,
}
SMALL = {"n_embd": 8, "n_embd2": 8, "n_hidden": 16, "n_layer": 1, "n_head": 2, "dropout": 0.1}  # where a Config has them


def small_config(model):
    overrides = {k: v for k, v in SMALL.items() if k in model.config_fields}
    if model.dataset != "context":  # a sequence or text model: 8 positions instead of 16 or 64
        overrides["block_size"] = 8
    return model.make_config(vocab_size=11, **overrides)


def test_every_registered_model_has_its_module_function_listed():
    assert set(MODULE_FUNCTIONS) == set(models.REGISTRY)


def distinct_small_models() -> list[str]:
    """The registry less the entries whose small config is an earlier one's (gpt2's sizes differ by size only)."""
    seen, names = set(), []
    for name, model in models.REGISTRY.items():
        if (model.forward, small_config(model)) not in seen:
            seen.add((model.forward, small_config(model)))
            names.append(name)
    return names


@pytest.mark.parametrize("name", distinct_small_models())
def test_the_protocol_holds_for_every_registered_model(name):
    """bind(config) is apply(params, state, x, *, train) -> (logits, state) for every model:
    equal to Model.apply(..., config=config) and to the module's function, in both modes;
    eval mode leaves the state as it was (train mode may advance it: dropout's key, BatchNorm's)."""
    model = models.get(name)
    config = small_config(model)
    params, state = model.init(jax.random.key(0), config)
    x = jax.random.randint(jax.random.key(1), (4, config.block_size), 0, config.vocab_size)
    logits_shape = (4, 11) if model.dataset == "context" else (4, config.block_size, 11)  # one prediction or T
    bound, direct = model.bind(config), MODULE_FUNCTIONS[name](config)
    for train in (True, False):
        logits, new_state = bound(params, state, x, train=train)
        assert logits.shape == logits_shape and logits.dtype == jnp.float32
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        for other in (model.apply(params, state, x, train=train, config=config), direct(params, state, x, train=train)):
            np.testing.assert_array_equal(other[0], logits)
            assert_trees_close(other[1], new_state, rtol=0)
        if not train:
            assert_trees_close(new_state, state, rtol=0)


@pytest.mark.parametrize("name", ["mlp", "mlp-bn", "mlp-deep", "wavenet"])
def test_initial_loss_is_near_uniform_with_the_fixed_inits(name, bundled_words):
    from makemore_jax.data import Vocab, build_context_dataset
    vocab = Vocab.from_words(bundled_words)
    model = models.get(name)
    config = model.make_config(vocab_size=vocab.size)
    X, Y = build_context_dataset(bundled_words[:2000], vocab, config.block_size)
    params, state = model.init(jax.random.key(0), config)
    apply = jax.jit(model.bind(config), static_argnames="train")  # one compile, not one per operation
    loss = cross_entropy(apply(params, state, jnp.asarray(X), train=True)[0], jnp.asarray(Y))
    assert abs(float(loss) - math.log(vocab.size)) < 0.05


def test_unit_init_starts_far_too_confident():
    model = models.get("mlp")
    config = model.make_config(vocab_size=27, init="unit")
    params, state = model.init(jax.random.key(0), config)
    x, y = random_batch(jax.random.key(1), config, 1000)
    assert float(cross_entropy(model.apply(params, state, x, train=True, config=config)[0], y)) > 10


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_loss_gradients_match_finite_differences(name, x64):
    model = models.get(name)
    config = model.make_config(vocab_size=7, **({"block_size": 2, "n_embd": 3, "n_hidden": 5}
                                                 if "block_size" in model.config_fields else {}),
                               **({"reg": 0.1} if name == "bigram-nn" else {}))
    params, state = model.init(jax.random.key(0), config)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    state = jax.tree.map(lambda p: p.astype(jnp.float64), state)
    x, y = random_batch(jax.random.key(1), config, 8)
    loss = jax.jit(lambda p: loss_fn(model, config, p, state, x, y)[0])  # compiled once, not op by op
    check_grads(loss, (params,), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_jitted_step_equals_unjitted_step(name):
    model = models.get(name)
    config = model.make_config(vocab_size=27)
    tc = TrainConfig()
    ts = create_train_state(model, config, tc, jax.random.key(0))
    step = make_train_step(model, config, make_optimizer(tc))
    batch = random_batch(jax.random.key(1), config)
    with jax.disable_jit():
        eager, eager_metrics = step(ts, batch)
    jitted, jitted_metrics = jax.jit(step)(ts, batch)
    assert_trees_close(eager, jitted, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eager_metrics["loss"], jitted_metrics["loss"], rtol=1e-6)


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_overfits_one_batch(name):
    model = models.get(name)
    config = model.make_config(vocab_size=27)
    tc = TrainConfig(optimizer="adamw", lr=3e-2, weight_decay=0.0, warmup_steps=0, steps=300, min_lr_ratio=1.0)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    batch = random_batch(jax.random.key(1), config, 16)
    if name == "bigram-nn":  # one character of context: make the batch learnable
        batch = (batch[0], batch[0][:, -1] * 3 % 27)
    step = make_train_step(model, config, make_optimizer(tc))
    ts, metrics = jax.jit(lambda ts: jax.lax.scan(lambda ts, _: step(ts, batch), ts, length=300))(ts)
    assert float(metrics["loss"][-1]) < 0.05
