"""mlp-bn and mlp-deep: their BatchNorm state, a flax.linen twin, and post-training calibration."""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np

from makemore_jax import models
from makemore_jax.data import Vocab, build_context_dataset, split_words
from makemore_jax.evaluate import split_loss
from makemore_jax.losses import cross_entropy
from makemore_jax.models import mlp
from makemore_jax.train import TrainConfig, create_train_state, fit

from conftest import assert_trees_close

EPS = 1e-5


def n_params(params):
    return sum(x.size for x in jax.tree.leaves(params))


def random_batch(key, config, batch_size=32):
    kx, ky = jax.random.split(key)
    return (jax.random.randint(kx, (batch_size, config.block_size), 0, config.vocab_size),
            jax.random.randint(ky, (batch_size,), 0, config.vocab_size))


# ----------------------------------------------------------------------------- structure


def test_deep_net_with_and_without_batchnorm():
    """Lecture 3: 47,024 parameters with BatchNorm; 46,497 without (biases back, gammas/betas gone)."""
    model = models.get("mlp-deep")  # (eager init compiles each op once: a few seconds on a busy machine)
    with_bn, state = model.init(jax.random.key(0), model.make_config(vocab_size=27))
    assert n_params(with_bn) == 47_024 and len(state["layers"]) == 5 and "out" in state
    assert all("b" not in layer["linear"] for layer in with_bn["layers"]) and "b" not in with_bn["out"]["linear"]
    np.testing.assert_allclose(with_bn["out"]["bn"]["gamma"], 0.1)

    config = model.make_config(vocab_size=27, norm="none")
    without_bn, state = model.init(jax.random.key(0), config)
    assert n_params(without_bn) == 46_497 and state == {}
    apply = jax.jit(model.bind(config), static_argnames="train")
    logits, new_state = apply(without_bn, state, random_batch(jax.random.key(1), config)[0], train=True)
    assert logits.shape == (32, 27) and new_state == {}


# ----------------------------------------------------------------------------- the state update


def test_one_train_step_updates_the_state_as_the_batch_statistics_say():
    model = models.get("mlp-bn")
    config = model.make_config(vocab_size=27)
    params, state = model.init(jax.random.key(0), config)
    state = {"layers": [{"mean": jnp.full((200,), 0.3), "var": jnp.full((200,), 2.0)}]}
    x, _ = random_batch(jax.random.key(1), config)
    _, new_state = jax.jit(model.bind(config), static_argnames="train")(params, state, x, train=True)

    hpre = np.asarray(params["C"])[np.asarray(x)].reshape(32, -1) @ np.asarray(params["layers"][0]["linear"]["W"])
    expected_mean = 0.9 * 0.3 + 0.1 * hpre.mean(0)
    expected_var = 0.9 * 2.0 + 0.1 * hpre.var(0, ddof=1)  # unbiased, PyTorch's running_var
    np.testing.assert_allclose(new_state["layers"][0]["mean"], expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["layers"][0]["var"], expected_var, rtol=1e-5)

    logits, eval_state = model.bind(config)(params, new_state, x, train=False)
    assert_trees_close(eval_state, new_state, rtol=0)
    bn = params["layers"][0]["bn"]
    h = np.tanh(np.asarray(bn["gamma"]) * (hpre - np.asarray(new_state["layers"][0]["mean"]))
                / np.sqrt(np.asarray(new_state["layers"][0]["var"]) + EPS) + np.asarray(bn["beta"]))
    out = params["out"]["linear"]
    np.testing.assert_allclose(logits, h @ np.asarray(out["W"]) + np.asarray(out["b"]), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- flax twin


class FlaxMLPBN(linen.Module):
    """mlp-bn in flax.linen: Embed -> Dense(no bias) -> BatchNorm -> tanh -> Dense."""

    config: mlp.Config

    @linen.compact
    def __call__(self, x, *, train: bool):
        c = self.config
        h = linen.Embed(c.vocab_size, c.n_embd)(x).reshape(x.shape[0], -1)
        h = linen.Dense(c.n_hidden, use_bias=False)(h)
        # flax's momentum weighs the old statistics: 1 - ours
        h = linen.BatchNorm(use_running_average=not train, momentum=1 - 0.1, epsilon=EPS)(h)
        return linen.Dense(c.vocab_size)(jnp.tanh(h))


def to_flax(params, state):
    layer = params["layers"][0]
    return {"params": {"Embed_0": {"embedding": params["C"]},
                       "Dense_0": {"kernel": layer["linear"]["W"]},
                       "BatchNorm_0": {"scale": layer["bn"]["gamma"], "bias": layer["bn"]["beta"]},
                       "Dense_1": {"kernel": params["out"]["linear"]["W"], "bias": params["out"]["linear"]["b"]}},
            "batch_stats": {"BatchNorm_0": dict(state["layers"][0])}}


def test_mlp_bn_matches_a_flax_linen_twin_with_the_biased_running_var():
    model = models.get("mlp-bn")
    config = model.make_config(vocab_size=27)
    params, state = model.init(jax.random.key(0), config)
    params["out"]["linear"]["b"] = jax.random.normal(jax.random.key(9), (27,)) * 0.1  # exercise the bias
    twin = FlaxMLPBN(config)
    ours = jax.jit(lambda p, s, x: mlp.forward(p, s, x, train=True, unbiased_running_var=False)[:2])

    def grads(params, state, x, y):  # ours through the fused BatchNorm rule, flax's by autodiff
        flax_vars = to_flax(params, state)
        ours_loss = lambda p: cross_entropy(mlp.forward(p, state, x, train=True)[0], y)
        flax_loss = lambda p: cross_entropy(
            twin.apply({**flax_vars, "params": p}, x, train=True, mutable=["batch_stats"])[0], y)
        return jax.grad(ours_loss)(params), jax.grad(flax_loss)(flax_vars["params"])

    for step in range(4):
        x, y = random_batch(jax.random.key(10 + step), config, 64)
        flax_vars = to_flax(params, state)
        logits, state = ours(params, state, x)
        flax_logits, updates = twin.apply(flax_vars, x, train=True, mutable=["batch_stats"])
        np.testing.assert_allclose(logits, flax_logits, rtol=1e-5, atol=1e-5)
        assert_trees_close(state["layers"][0], dict(updates["batch_stats"]["BatchNorm_0"]), rtol=1e-5, atol=1e-5)
        if step == 0:
            ours_grads, flax_grads = jax.jit(grads)(params, state, x, y)
            assert_trees_close(to_flax(ours_grads, state)["params"], flax_grads, rtol=1e-4, atol=1e-6)
    x, _ = random_batch(jax.random.key(20), config, 64)
    np.testing.assert_allclose(model.bind(config)(params, state, x, train=False)[0],
                               twin.apply(to_flax(params, state), x, train=False), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- calibration


def test_calibrate_is_the_sequential_layer_by_layer_calibration(bundled_words):
    """Layer k's statistics come from eval-mode inputs behind layers < k already calibrated.

    Computed here in float64 numpy, one layer at a time. `calibrate`'s single pass differs
    by a relative 1 / (2N) in each normalised scale (see its docstring): N ~ 30k rows here.
    """
    vocab = Vocab.from_words(bundled_words)
    model = models.get("mlp-deep")
    config = model.make_config(vocab_size=vocab.size)
    X, _ = build_context_dataset(bundled_words[:4000], vocab, config.block_size)
    params, state = model.init(jax.random.key(0), config)
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), params)
    calibrated = mlp.calibrate(params, state, X)

    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = p64["C"][X].reshape(len(X), -1)
    layer_stats = []
    for layer in p64["layers"] + [p64["out"]]:
        pre = h @ layer["linear"]["W"]
        layer_stats.append({"mean": pre.mean(0), "var": pre.var(0, ddof=1)})
        bn, stats = layer["bn"], layer_stats[-1]
        h = np.tanh(bn["gamma"] * (pre - stats["mean"]) / np.sqrt(stats["var"] + EPS) + bn["beta"])
    expected = {"layers": layer_stats[:-1], "out": layer_stats[-1]}
    assert_trees_close(jax.tree.map(lambda a: np.asarray(a, np.float64), calibrated), expected, rtol=1e-4, atol=1e-5)


def test_running_and_calibrated_statistics_give_the_same_dev_loss(bundled_words):
    vocab = Vocab.from_words(bundled_words)
    train_words, dev_words, _ = split_words(bundled_words)
    model = models.get("mlp-bn")
    config = model.make_config(vocab_size=vocab.size)
    Xtr, Ytr = build_context_dataset(train_words, vocab, config.block_size)
    Xdev, Ydev = build_context_dataset(dev_words, vocab, config.block_size)
    tc = TrainConfig(steps=4000, chunk_size=4000)
    ts, _ = fit(model, config, tc, Xtr, Ytr, create_train_state(model, config, tc, jax.random.key(0)))

    calibrated = mlp.calibrate(ts.params, ts.model_state, Xtr)
    running_loss = split_loss(model.bind(config), ts.params, ts.model_state, Xdev, Ydev)
    calibrated_loss = split_loss(model.bind(config), ts.params, calibrated, Xdev, Ydev)
    assert calibrated_loss < 2.45  # trained: the uniform guess is ln 27 = 3.30
    assert abs(running_loss - calibrated_loss) < 0.01
    # the two are different estimates of the same statistics, not the same numbers
    running_mean, calibrated_mean = ts.model_state["layers"][0]["mean"], calibrated["layers"][0]["mean"]
    assert 0 < float(jnp.max(jnp.abs(running_mean - calibrated_mean))) < 0.5 * float(jnp.std(calibrated_mean))
