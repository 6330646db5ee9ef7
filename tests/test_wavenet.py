"""The lecture-5 WaveNet: its numbers, a float64 numpy twin of the lecture's layers, and the CLI round trip."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from makemore_jax import models
from makemore_jax.cli import main
from makemore_jax.models import wavenet
from makemore_jax.sample import sample_ids
from makemore_jax.train import TrainConfig, create_train_state, loss_fn, make_optimizer, make_train_step

from conftest import assert_trees_close

MODEL = models.get("wavenet")
TINY = wavenet.Config(vocab_size=7, block_size=8, n_embd=3, n_hidden=4)


def tokens(key, config, batch_size):
    return jax.random.randint(key, (batch_size, config.block_size), 0, config.vocab_size)


def reference_forward(params, state, x, *, train, momentum=0.1, eps=1e-5):
    """The lecture's Embedding / FlattenConsecutive / Linear / BatchNorm1d / Tanh stack in float64 numpy.

    `train` is one mode for every BatchNorm or a list with one per layer.

    BatchNorm1d reduces over dims (0, 1) of a [B, T, C] input (batch and time), over dim 0
    of a [B, C] one; it normalises with the biased variance and keeps the unbiased one in
    the running estimate (torch's convention, which nn.batchnorm follows).
    """
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    s = jax.tree.map(lambda a: np.asarray(a, np.float64), state)
    h = p["C"][np.asarray(x)]  # [B, T, n_embd]
    new_states = []
    modes = [train] * len(p["layers"]) if isinstance(train, bool) else train
    for layer, bn_state, train in zip(p["layers"], s["layers"], modes):
        B, T, C = h.shape
        h = h.reshape(B, T // 2, 2 * C)  # FlattenConsecutive(2)
        if h.shape[1] == 1:
            h = h[:, 0]  # ... which squeezes a time axis of 1
        h = h @ layer["W"]
        dims = (0, 1) if h.ndim == 3 else (0,)
        if train:
            mean, var = h.mean(dims), h.var(dims)
            n = h.size // h.shape[-1]
            new_states.append({"mean": (1 - momentum) * bn_state["mean"] + momentum * mean,
                               "var": (1 - momentum) * bn_state["var"] + momentum * var * n / (n - 1)})
        else:
            mean, var = bn_state["mean"], bn_state["var"]
            new_states.append(bn_state)
        h = np.tanh(layer["bn"]["gamma"] * (h - mean) / np.sqrt(var + eps) + layer["bn"]["beta"])
        if h.ndim == 2:
            h = h[:, None]
    return h[:, 0] @ p["out"]["W"] + p["out"]["b"], {"layers": new_states}


def trained_like(key, config):
    """Parameters and running statistics away from their initial values (so every path matters)."""
    params, state = MODEL.init(key, config)
    leaves, tree = jax.tree.flatten((params, state))
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    noisy = [leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    params, state = jax.tree.unflatten(tree, noisy)
    for bn in state["layers"]:
        bn["var"] = jnp.abs(bn["var"]) + 0.5
    return params, state


# ----------------------------------------------------------------------------- the lecture's numbers


def test_parameter_count_is_the_lectures():
    config = MODEL.make_config(vocab_size=27)
    params, state = jax.eval_shape(lambda key: MODEL.init(key, config), jax.random.key(0))  # shapes only
    assert sum(x.size for x in jax.tree.leaves(params)) == 76_579
    assert [p["W"].shape for p in params["layers"]] == [(48, 128), (256, 128), (256, 128)]
    assert len(state["layers"]) == 3


def test_train_defaults_are_the_lecture_recipe():
    tc = TrainConfig(**MODEL.train_defaults)
    assert (tc.steps, tc.batch_size, tc.optimizer, tc.lr, tc.lr_decay_step, tc.lr_decay) == (
        200_000, 32, "sgd", 0.1, 150_000, 0.1)
    assert MODEL.dataset == "context" and MODEL.make_config().block_size == 8


def test_bad_block_size_is_refused():
    with pytest.raises(ValueError, match="power of 2"):
        wavenet.Config(block_size=6)


# ----------------------------------------------------------------------------- against the lecture's layers


@pytest.mark.parametrize("block_size", [2, 8])
def test_forward_and_batchnorm_state_match_the_lecture_layers(block_size, x64):
    """Statistics over batch AND time, the folded embedding and the 2-D layout, against numpy."""
    config = wavenet.Config(vocab_size=7, block_size=block_size, n_embd=3, n_hidden=4)
    params, state = trained_like(jax.random.key(0), config)
    x = tokens(jax.random.key(1), config, 5)
    apply = jax.jit(MODEL.bind(config), static_argnames="train")  # one compile per mode, not one per eager op
    for train in (True, False):
        logits, new_state = apply(params, state, x, train=train)
        ref_logits, ref_state = reference_forward(params, state, x, train=train)
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-10, atol=1e-12)
        assert_trees_close(new_state, ref_state, rtol=1e-10, atol=1e-12)


def test_first_batchnorm_statistics_by_hand():
    """One train step's state of layer 1: 0.9 * old + 0.1 * (mean, unbiased var) over the B*4 rows."""
    params, state = MODEL.init(jax.random.key(0), TINY)
    x = tokens(jax.random.key(1), TINY, 6)
    _, new_state = jax.jit(MODEL.bind(TINY), static_argnames="train")(params, state, x, train=True)
    pairs = np.asarray(params["C"])[np.asarray(x)].reshape(6 * 4, 2 * 3)  # [B*T, 2 n_embd]
    rows = pairs @ np.asarray(params["layers"][0]["W"])  # [B*T, H]
    np.testing.assert_allclose(new_state["layers"][0]["mean"], 0.1 * rows.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new_state["layers"][0]["var"], 0.9 + 0.1 * rows.var(0, ddof=1), rtol=1e-5)


def test_loss_gradients(x64):
    params, state = trained_like(jax.random.key(0), TINY)
    x = tokens(jax.random.key(1), TINY, 6)
    y = jax.random.randint(jax.random.key(2), (6,), 0, TINY.vocab_size)
    loss = jax.jit(lambda p: loss_fn(MODEL, TINY, p, state, x, y)[0])
    check_grads(loss, (params,), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- what a prediction depends on


def test_prediction_depends_on_all_eight_positions_and_nothing_else():
    config = MODEL.make_config(vocab_size=27, n_embd=4, n_hidden=16)  # the default block of 8, narrow layers
    params, state = trained_like(jax.random.key(0), config)
    x = tokens(jax.random.key(1), config, 4)
    logits, same_state = MODEL.bind(config)(params, state, x, train=False)
    assert same_state["layers"][0] is state["layers"][0]  # eval mode changes no state
    predict = jax.jit(lambda x: MODEL.bind(config)(params, state, x, train=False)[0])
    logits = predict(x)
    for t in range(8):
        changed = x.at[0, t].set((x[0, t] + 1) % 27)
        new_logits = predict(changed)
        assert float(jnp.max(jnp.abs(new_logits[0] - logits[0]))) > 1e-4, f"position {t} is ignored"
        np.testing.assert_array_equal(new_logits[1:], logits[1:])  # the other examples: untouched
    # in eval mode a prediction does not depend on the rest of the batch
    alone = predict(x[2:3])
    np.testing.assert_allclose(alone[0], logits[2], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- training, calibration, sampling


def test_overfits_a_tiny_batch():
    config = MODEL.make_config(vocab_size=27, n_hidden=32)
    tc = TrainConfig(optimizer="adamw", lr=3e-2, weight_decay=0.0, steps=300, min_lr_ratio=1.0)
    ts = create_train_state(MODEL, config, tc, jax.random.key(0))
    batch = (tokens(jax.random.key(1), config, 16), jax.random.randint(jax.random.key(2), (16,), 0, 27))
    step = make_train_step(MODEL, config, make_optimizer(tc))
    ts, metrics = jax.jit(lambda ts: jax.lax.scan(lambda ts, _: step(ts, batch), ts, length=300))(ts)
    assert float(metrics["loss"][-1]) < 0.05


def test_calibrate_is_the_sequential_calibration_in_any_chunking(x64):
    """Layer k's statistics over all rows of its input, layers < k in eval mode on their calibrated statistics."""
    params, state = trained_like(jax.random.key(0), TINY)
    X = tokens(jax.random.key(1), TINY, 23)
    expected = list(state["layers"])
    for k in range(3):  # layer k in train mode with momentum 1 stores exactly its input's statistics
        modes = [False] * k + [True] + [False] * (2 - k)
        expected[k] = reference_forward(params, {"layers": expected}, X, train=modes, momentum=1.0)[1]["layers"][k]
    for chunk in (23, 5):
        calibrated = wavenet.calibrate(params, state, X, chunk=chunk)
        assert_trees_close(calibrated, {"layers": expected}, rtol=1e-9, atol=1e-12)
    # not the same as one train-mode pass (each layer behind batch statistics): the variances differ by n/(n-1)
    one_pass = reference_forward(params, state, X, train=True, momentum=1.0)[1]["layers"][2]
    assert not np.allclose(one_pass["mean"], expected[2]["mean"], rtol=1e-6, atol=0)


def test_sampling_is_deterministic_per_key():
    params, state = MODEL.init(jax.random.key(0), TINY)
    draw = lambda seed: np.asarray(sample_ids(MODEL.bind(TINY), params, state, jax.random.key(seed), n=16,
                                              block_size=TINY.block_size, max_len=12))
    first, again, other = draw(3), draw(3), draw(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (16, 12) and first.min() >= 0 and first.max() < TINY.vocab_size


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, bundled_words):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(bundled_words[:800]) + "\n", encoding="utf-8")
    return str(path)


def test_cli_checkpoint_round_trip_and_exact_resume(capsys, tmp_path, small_data):
    common = ["--model", "wavenet", "--data", small_data, "--n-hidden", "16", "--n-embd", "8",
              "--chunk-size", "20", "--lr-decay-step", "30", "-n", "0", "--quiet"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["train", *common, "--steps", "60", "--out", a]) == 0
    assert main(["train", *common, "--steps", "40", "--out", b]) == 0
    assert main(["train", *common, "--steps", "60", "--out", b, "--resume"]) == 0
    read = lambda out: open(os.path.join(out, "checkpoint.msgpack"), "rb").read()
    assert read(a) == read(b)
    meta = json.load(open(os.path.join(a, "checkpoint.json")))
    assert meta["config"] == {"vocab_size": 27, "block_size": 8, "n_embd": 8, "n_hidden": 16, "norm": "batch",
                              "groups": 4}
    capsys.readouterr()
    assert main(["eval", "--out", a]) == 0  # the restored checkpoint gives the losses it was saved with
    out = capsys.readouterr().out
    assert f"dev   {meta['results']['dev_loss']:.4f}" in out and "running -> calibrated" in out
