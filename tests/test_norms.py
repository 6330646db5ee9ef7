"""LayerNorm, GroupNorm and RMSNorm against flax.linen, and the `norm` option of mlp and wavenet."""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import models, nn
from makemore_jax.models import mlp, norm, wavenet
from makemore_jax.train import TrainConfig, create_train_state, fit

from conftest import assert_trees_close

EPS = 1e-5
C, G = 12, 3


def normal(seed, shape, *, loc=0.0, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).normal(loc, scale, shape), jnp.float32)


def ours_and_flax(kind):
    """(our params, our fn, flax module, flax variables for the same params), random gamma and beta."""
    gamma, beta = normal(0, (C,), loc=1.0, scale=0.5), normal(1, (C,))
    if kind == "layer":
        return ({"gamma": gamma, "beta": beta}, nn.layernorm, linen.LayerNorm(epsilon=EPS),
                {"scale": gamma, "bias": beta})
    if kind == "group":  # reduction_axes=-1: per position, as ours (flax's default also averages over time)
        return ({"gamma": gamma.reshape(G, C // G), "beta": beta.reshape(G, C // G)}, nn.groupnorm,
                linen.GroupNorm(num_groups=G, epsilon=EPS, reduction_axes=-1), {"scale": gamma, "bias": beta})
    return {"gamma": gamma}, nn.rmsnorm, linen.RMSNorm(epsilon=EPS), {"scale": gamma}


def flat(tree):
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


@pytest.mark.parametrize("shape", [(16, C), (4, 5, C)])
@pytest.mark.parametrize("kind", ["layer", "group", "rms"])
def test_norm_and_its_gradients_match_flax(kind, shape):
    params, fn, module, variables = ours_and_flax(kind)
    x = normal(3, shape, loc=2.0, scale=3.0)
    weights = normal(4, shape)  # a random linear read-out, so every output's gradient counts
    # each side jitted: compiled once, not op by op
    np.testing.assert_allclose(jax.jit(fn)(params, x), jax.jit(module.apply)({"params": variables}, x), rtol=1e-5,
                               atol=1e-5)

    ours = jax.jit(jax.grad(lambda p, x: jnp.sum(weights * fn(p, x)), argnums=(0, 1)))(params, x)
    ref = jax.jit(jax.grad(lambda v, x: jnp.sum(weights * module.apply({"params": v}, x)), argnums=(0, 1)))(
        variables, x)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-5, atol=1e-5)  # d / dx
    ours_p = {"gamma": ours[0]["gamma"].ravel(), **({"beta": ours[0]["beta"].ravel()} if "beta" in ours[0] else {})}
    ref_p = {"gamma": ref[0]["scale"], **({"beta": ref[0]["bias"]} if "bias" in ref[0] else {})}
    np.testing.assert_allclose(flat(ours_p), flat(ref_p), rtol=1e-5, atol=1e-5)  # d / dgamma, d / dbeta


def test_groupnorm_with_one_group_is_layernorm_and_checks_the_split():
    x = normal(5, (6, C), scale=2.0)
    ln = {"gamma": normal(6, (C,)), "beta": normal(7, (C,))}
    gn = {k: v[None] for k, v in ln.items()}  # [1, C]: one group
    np.testing.assert_allclose(nn.groupnorm(gn, x), nn.layernorm(ln, x), rtol=1e-6, atol=1e-6)
    assert nn.groupnorm_init(C, G)["gamma"].shape == (G, C // G)
    with pytest.raises(ValueError, match="groups"):
        nn.groupnorm_init(C, 5)


# ----------------------------------------------------------------------------- the models' norm option

NORMS = ["batch", "layer", "group", "rms", "none"]
# toy sizes: vocab 27, n_embd 4, n_hidden 8, groups 2
MLP = dict(vocab_size=27, block_size=3, n_embd=4, n_hidden=8, n_layers=2, groups=2)
WAVENET = dict(vocab_size=27, block_size=8, n_embd=4, n_hidden=8, groups=2)
# C 27*4; mlp: W 12*8 + 8*8 + 8*27 (out, with an out norm); wavenet: W 8*8 + 16*8 + 16*8, out 8*27 + 27.
# Per normalised layer of width n: 2n parameters (gamma and beta; rms: gamma and the bias it keeps), none: n (bias)
MLP_COUNTS = {"batch": 570, "layer": 570, "group": 570, "rms": 570, "none": 527}
WAVENET_COUNTS = {"batch": 719, "layer": 719, "group": 719, "rms": 719, "none": 695}
assert MLP_COUNTS["batch"] == 27 * 4 + 12 * 8 + 8 * 8 + 8 * 27 + 2 * (2 * 8) + 2 * 27
assert MLP_COUNTS["none"] == 27 * 4 + 12 * 8 + 8 * 8 + 8 * 27 + 2 * 8 + 27
assert WAVENET_COUNTS["batch"] == 27 * 4 + 8 * 8 + 2 * 16 * 8 + 8 * 27 + 27 + 3 * (2 * 8)


def configs():
    for kind in NORMS:
        yield pytest.param("mlp-deep", mlp.Config(**MLP, norm=kind, out_norm=True), MLP_COUNTS[kind],
                           id=f"mlp-{kind}")
        yield pytest.param("wavenet", wavenet.Config(**WAVENET, norm=kind), WAVENET_COUNTS[kind], id=f"wavenet-{kind}")


def n_params(params):
    return sum(x.size for x in jax.tree.leaves(params))


@pytest.mark.parametrize("name, config, count", list(configs()))
def test_parameters_state_and_modes(name, config, count):
    model = models.get(name)
    params, state = model.init(jax.random.key(0), config)
    assert n_params(params) == count
    x = jax.random.randint(jax.random.key(1), (16, config.block_size), 0, 27)
    train_logits, train_state = model.bind(config)(params, state, x, train=True)
    eval_logits, _ = model.bind(config)(params, state, x, train=False)
    assert train_logits.shape == (16, 27)
    if config.norm == "batch":
        assert len(state["layers"]) == (3 if name == "wavenet" else 2)
        assert not np.allclose(train_logits, eval_logits)  # batch statistics against running ones
    else:
        assert state == {} and train_state == {} and model.ability(models.Calibration).calibrate(params, state, x) == {}
        np.testing.assert_array_equal(train_logits, eval_logits)
    hidden = params["layers"][0]
    assert ("b" in (hidden["linear"] if name == "mlp-deep" else hidden)) == (config.norm in ("rms", "none"))


def test_the_norm_layer_is_what_the_model_applies():
    """mlp with LayerNorm: the hidden pre-activation through nn.layernorm, by hand."""
    config = mlp.Config(**{**MLP, "n_layers": 1}, norm="layer")
    params, _ = mlp.init(jax.random.key(0), config)
    params = jax.tree.map(lambda p: p + 0.1 * normal(9, p.shape), params)  # move gamma and beta off 1 and 0
    x = jax.random.randint(jax.random.key(1), (8, 3), 0, 27)
    h = params["C"][x].reshape(8, -1) @ params["layers"][0]["linear"]["W"]
    ln = params["layers"][0]["ln"]
    mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    h = np.tanh(ln["gamma"] * (h - mean) / np.sqrt(var + EPS) + ln["beta"])
    expected = h @ params["out"]["linear"]["W"] + params["out"]["linear"]["b"]
    np.testing.assert_allclose(mlp.apply(params, {}, x, train=True)[0], expected, rtol=1e-5, atol=1e-5)


def test_group_out_norm_is_one_group_and_bad_groups_are_refused():
    config = mlp.Config(**MLP, norm="group", out_norm=True)
    params, _ = mlp.init(jax.random.key(0), config)
    assert params["layers"][0]["gn"]["gamma"].shape == (2, 4) and params["out"]["ln"]["gamma"].shape == (27,)
    np.testing.assert_allclose(params["out"]["ln"]["gamma"], 0.1)  # the lecture's small output gain
    with pytest.raises(ValueError, match="groups"):
        mlp.Config(**{**MLP, "groups": 3}, norm="group")
    with pytest.raises(ValueError, match="norm must be one of"):
        wavenet.Config(norm="instance")


def test_defaults_keep_batchnorm_and_old_configs_upgrade():
    assert models.get("mlp").make_config().norm == "none"
    assert models.get("mlp-bn").make_config().norm == "batch" and wavenet.Config().norm == "batch"
    deep = models.get("mlp-deep").make_config()
    assert deep.norm == "batch" and deep.out_norm and deep.batchnorm and deep.out_batchnorm
    old = {"vocab_size": 27, "block_size": 3, "n_embd": 10, "n_hidden": 100, "n_layers": 5, "batchnorm": True,
           "out_batchnorm": True, "init": "kaiming"}
    assert mlp.Config(**mlp.upgrade_config(old)) == deep
    assert mlp.upgrade_config({**old, "batchnorm": False, "out_batchnorm": False})["norm"] == "none"
    assert mlp.upgrade_config(mlp.upgrade_config(old)) == mlp.upgrade_config(old)
    assert norm.has_bias("rms") and not norm.has_bias("layer")


@pytest.mark.parametrize("name, config, count", list(configs()))
def test_a_few_training_steps_lower_the_loss(name, config, count):
    model = models.get(name)
    x = jax.random.randint(jax.random.key(2), (64, config.block_size), 0, 27)
    y = jax.random.randint(jax.random.key(3), (64,), 0, 27)
    tc = TrainConfig(steps=30, batch_size=64, lr=0.2, chunk_size=30)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    first = float(jax.jit(models_loss, static_argnums=(0, 1))(model, config, ts.params, ts.model_state, x, y))
    ts, summary = fit(model, config, tc, np.asarray(x), np.asarray(y), ts)
    assert np.isfinite(summary["final_loss"]) and summary["final_loss"] < first - 0.05
    if config.norm != "batch":
        assert_trees_close(ts.model_state, {})


def models_loss(model, config, params, state, x, y):
    logits, _ = model.bind(config)(params, state, x, train=True)
    return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], -1)[:, 0])
