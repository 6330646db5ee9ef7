"""The transformer's speedrun options (rotary, RMSNorm without a gain, QK-norm, relu^2, zero-init
projections, logit soft-cap): each function against a closed form or flax, the whole model against
a float64 NumPy forward written out here, the cached decoder against apply, and the defaults
against numbers pinned before the options existed."""

import dataclasses
import functools
import math

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_trees_close, perturbed, random_tokens
from makemore_jax.losses import cross_entropy
from makemore_jax.models import gpt, speedrun_ops as ops, transformer

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
ALL_ON = dict(pos="rotary", norm="rms-nogain", qk_norm=True, activation="relu2", softcap=3.0)

apply = jax.jit(transformer.apply, static_argnames=("train", "config"))


def config_of(**overrides):
    return transformer.Config(**{**TINY, **overrides})


off_init = functools.partial(perturbed, scale=0.3)  # every leaf off its init, so each one matters
tokens = random_tokens


def leaf_paths(params):
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
            for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}


# ----------------------------------------------------------------------------- the functions


def test_rotary_turns_each_pair_by_position_times_its_frequency():
    # one 2-D pair (D = 2): theta_0 = 1, so position p turns (a, b) by p radians
    a, b = 0.3, -1.2
    for p in (0, 1, 5):
        cos, sin = ops.rotary_cos_sin(jnp.asarray(p), 2)
        y = ops.rotary(jnp.array([a, b]), cos, sin)
        np.testing.assert_allclose(y, [a * math.cos(p) - b * math.sin(p), a * math.sin(p) + b * math.cos(p)],
                                   rtol=1e-6, atol=1e-6)
    # D = 8: pair i is channels (i, i + 4), turned by p * 10000^(-2i / 8)
    x = np.random.default_rng(0).normal(size=8)
    p = 3
    cos, sin = ops.rotary_cos_sin(jnp.asarray(p), 8)
    y = np.asarray(ops.rotary(jnp.asarray(x, jnp.float32), cos, sin))
    for i in range(4):
        angle = p * 10000.0 ** (-2 * i / 8)
        c, s = math.cos(angle), math.sin(angle)
        np.testing.assert_allclose([y[i], y[i + 4]], [x[i] * c - x[i + 4] * s, x[i] * s + x[i + 4] * c], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(y), np.linalg.norm(x), rtol=1e-6)  # a rotation


def test_rotary_scores_depend_only_on_relative_position():
    H, D = 3, 16
    kq, kk = jax.random.split(jax.random.key(0))
    q, k = jax.random.normal(kq, (H, D)), jax.random.normal(kk, (H, D))

    def scores(t, s):  # [H]: q at position t against k at position s
        qt = ops.rotary(q, *ops.rotary_cos_sin(jnp.asarray(t), D))
        ks = ops.rotary(k, *ops.rotary_cos_sin(jnp.asarray(s), D))
        return jnp.sum(qt * ks, axis=-1)

    for t, s in [(3, 1), (5, 5), (2, 7)]:
        for offset in (1, 4, 11):
            np.testing.assert_allclose(scores(t + offset, s + offset), scores(t, s), rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(scores(3, 1) - scores(3, 2))).max() > 1e-2  # but they do depend on t - s
    # the table for many positions at once is the one for each position
    cos, sin = ops.rotary_cos_sin(jnp.arange(5), D)
    np.testing.assert_array_equal(cos[4], ops.rotary_cos_sin(jnp.asarray(4), D)[0])
    assert cos.shape == sin.shape == (5, D // 2)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_rms_norm_is_flaxs_without_scale(dtype):
    x = (jax.random.normal(jax.random.key(0), (4, 5, 16)) * 3 + 0.5).astype(dtype)
    ours = ops.rms_norm(x)
    theirs = flax.linen.RMSNorm(use_scale=False, epsilon=ops.RMS_EPS).apply({}, x)
    assert ours.dtype == theirs.dtype == dtype
    tol = 1e-6 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(np.asarray(ours, np.float32), np.asarray(theirs, np.float32), rtol=tol, atol=tol)


def test_qk_norm_gives_each_head_unit_rms():
    q = jax.random.normal(jax.random.key(1), (6, 3, 8)) * 0.7  # [N, H, D]
    ms = np.mean(np.square(np.asarray(q, np.float64)), axis=-1)
    normed = np.asarray(ops.rms_norm(q), np.float64)
    np.testing.assert_allclose(np.sqrt(np.mean(normed ** 2, axis=-1)), np.sqrt(ms / (ms + ops.RMS_EPS)), rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.mean(normed ** 2, axis=-1)), 1.0, rtol=1e-4)
    np.testing.assert_allclose(normed, np.asarray(q) / np.sqrt(ms + ops.RMS_EPS)[..., None], rtol=1e-5)


def test_relu2_is_squared_relu_with_its_derivative():
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    np.testing.assert_allclose(ops.relu2(jnp.asarray(x)), np.maximum(x, 0) ** 2, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(ops.relu2))(jnp.asarray(x)), 2 * np.maximum(x, 0), rtol=1e-6)


def test_softcap_is_cap_tanh_and_bounded():
    x = jnp.array([-1e6, -30.0, -1.0, 0.0, 0.5, 2.0, 1e6])
    cap = 15.0
    y = ops.softcap(x, cap)
    np.testing.assert_allclose(y, cap * np.tanh(np.asarray(x) / cap), rtol=1e-6)
    assert np.all(np.abs(np.asarray(y)) <= cap) and float(y[-1]) == pytest.approx(cap)
    np.testing.assert_allclose(ops.softcap(jnp.array([1e-3]), cap), [1e-3], rtol=1e-6)  # near identity


# ----------------------------------------------------------------------------- the whole model against NumPy


def numpy_logits(params, idx, config):
    """The transformer's forward in float64 NumPy, written from the definitions (rotation matrices)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    (B, T), H, C = idx.shape, config.n_head, config.n_embd
    D, eps = C // H, 1e-5
    rms = lambda v: v / np.sqrt(np.mean(v ** 2, -1, keepdims=True) + eps)  # noqa: E731

    def norm(lp, v):
        if config.norm == "rms-nogain":
            return rms(v)
        if config.norm == "rms":
            return rms(v) * lp["gamma"]
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + eps) * lp["gamma"] + lp.get("beta", 0.0)

    lin = lambda lp, v: v @ lp["W"] + lp.get("b", 0.0)  # noqa: E731
    R = np.zeros((T, D, D))  # rotation of position t: pair i = channels (i, i + D/2)
    for t in range(T):
        for i in range(D // 2):
            a = t * 10000.0 ** (-2 * i / D)
            R[t, i, i], R[t, i, i + D // 2], R[t, i + D // 2, i], R[t, i + D // 2, i + D // 2] = (
                math.cos(a), -math.sin(a), math.sin(a), math.cos(a))
    x = p["wte"][np.asarray(idx)] + (p["wpe"][:T] if config.pos == "learned" else 0.0)
    for blk in p["blocks"]:
        ca = blk["attn"]["c_attn"]
        q, k, v = np.einsum("btc,cjhd->jbthd", norm(blk.get("ln_1"), x), ca["W"]) + ca.get("b", np.zeros((3, H, D)))[:, None, None]
        if config.qk_norm:
            q, k = rms(q), rms(k)
        if config.pos == "rotary":
            q, k = np.einsum("tde,bthe->bthd", R, q), np.einsum("tde,bthe->bthd", R, k)
        att = np.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D) + np.where(np.tril(np.ones((T, T))), 0.0, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        y = np.einsum("bhts,bshd->bthd", att / att.sum(-1, keepdims=True), v).reshape(B, T, C)
        x = x + lin(blk["attn"]["c_proj"], y)
        h = lin(blk["mlp"]["c_fc"], norm(blk.get("ln_2"), x))
        if config.activation == "relu2":
            h = np.maximum(h, 0) ** 2
        elif config.gelu == "exact":
            h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
        else:
            h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        x = x + lin(blk["mlp"]["c_proj"], h)
    logits = norm(p.get("ln_f"), x) @ (p["wte"].T if config.tie_embeddings else p["lm_head"]["W"])
    return config.softcap * np.tanh(logits / config.softcap) if config.softcap else logits


@pytest.mark.parametrize("overrides", [
    ALL_ON,
    dict(pos="rotary"),
    dict(norm="rms-nogain", activation="relu2", bias=False, tie_embeddings=True, gelu="exact"),
    dict(qk_norm=True, softcap=2.0, bias=False),
    dict(ALL_ON, bias=False, tie_embeddings=True, n_head=4),
    dict(norm="rms", pos="rotary"),
], ids=["all", "rotary", "rms-nogain-relu2-tied", "qknorm-softcap", "all-tied-4heads", "rms-with-gain"])
def test_logits_equal_a_numpy_forward(overrides):
    config = config_of(**overrides)
    params = off_init(transformer.init(jax.random.key(0), config)[0])
    x = tokens(config, 3)
    logits = apply(params, {}, x, train=False, config=config)[0]
    np.testing.assert_allclose(logits, numpy_logits(params, x, config), rtol=1e-4, atol=2e-5)


def test_option_param_trees():
    shapes = lambda **kw: jax.eval_shape(lambda k: transformer.init(k, config_of(**kw))[0], jax.random.key(0))  # noqa: E731
    base = leaf_paths(shapes())
    assert {"wpe", "ln_f/gamma", "ln_f/beta", "blocks/0/ln_1/gamma", "blocks/1/ln_2/beta"} <= base
    assert leaf_paths(shapes(pos="rotary")) == base - {"wpe"}
    assert leaf_paths(shapes(norm="rms-nogain")) == {p for p in base if "ln_" not in p}
    assert leaf_paths(shapes(norm="rms")) == {p for p in base if not p.endswith("beta")}  # a gain, no shift
    params = shapes(norm="rms-nogain", pos="rotary")
    assert set(params) == {"wte", "blocks", "lm_head"} and all(set(b) == {"attn", "mlp"} for b in params["blocks"])
    for same in (dict(qk_norm=True), dict(activation="relu2"), dict(softcap=5.0), dict(zero_init_proj=True)):
        assert leaf_paths(shapes(**same)) == base


@pytest.mark.parametrize("overrides", [dict(), dict(init="pytorch"), dict(scaled_residual_init=True, bias=False),
                                       dict(pos="rotary", norm="rms-nogain", tie_embeddings=True)])
def test_zero_init_proj_zeroes_the_projections_so_blocks_start_as_identity(overrides):
    config = config_of(zero_init_proj=True, **overrides)
    params = transformer.init(jax.random.key(0), config)[0]
    plain = transformer.init(jax.random.key(0), dataclasses.replace(config, zero_init_proj=False))[0]
    for block, plain_block in zip(params["blocks"], plain["blocks"]):
        for branch in ("attn", "mlp"):
            for leaf in jax.tree.leaves(block[branch]["c_proj"]):
                np.testing.assert_array_equal(leaf, 0.0)
            block[branch]["c_proj"] = plain_block[branch]["c_proj"]  # the rest is the plain init's
    np.testing.assert_equal(jax.tree.map(np.asarray, params), jax.tree.map(np.asarray, plain))
    params = transformer.init(jax.random.key(0), config)[0]
    x = tokens(config, 2)
    emb = np.asarray(params["wte"], np.float64)[np.asarray(x)]
    if config.pos == "learned":
        emb = emb + np.asarray(params["wpe"], np.float64)[: config.block_size]
    if config.norm == "rms-nogain":
        normed = emb / np.sqrt(np.mean(emb ** 2, -1, keepdims=True) + 1e-5)
    else:
        ln = {k: np.asarray(v, np.float64) for k, v in params["ln_f"].items()}
        normed = (emb - emb.mean(-1, keepdims=True)) / np.sqrt(emb.var(-1, keepdims=True) + 1e-5) * ln["gamma"]
        normed = normed + ln.get("beta", 0.0)
    head = params["wte"].T if config.tie_embeddings else params["lm_head"]["W"]
    logits = apply(params, {}, x, train=False, config=config)[0]
    np.testing.assert_allclose(logits, normed @ np.asarray(head, np.float64), rtol=1e-4, atol=1e-6)


def test_softcapped_model_is_cap_tanh_of_the_uncapped_one():
    config = config_of(pos="rotary", softcap=0.5)
    params = off_init(transformer.init(jax.random.key(0), config)[0], scale=1.0)
    x = tokens(config, 2)
    capped = apply(params, {}, x, train=False, config=config)[0]
    uncapped = apply(params, {}, x, train=False, config=dataclasses.replace(config, softcap=0.0))[0]
    assert capped.dtype == jnp.float32 and np.abs(np.asarray(uncapped)).max() > 1.0  # the cap does something
    np.testing.assert_allclose(capped, 0.5 * np.tanh(np.asarray(uncapped) / 0.5), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(capped)).max() <= 0.5


# ----------------------------------------------------------------------------- train mode, bfloat16, gradients


def test_all_options_train_with_dropout_and_in_bfloat16():
    config = config_of(**ALL_ON, dropout=0.2, attn_dropout=True, n_layer=1)
    params, state = transformer.init(jax.random.key(0), config)
    params = off_init(params)
    x, y = tokens(config, 4), tokens(config, 4, key=3)
    train_logits, new_state = apply(params, state, x, train=True, config=config)
    assert not np.array_equal(new_state["dropout"]["key"], state["dropout"]["key"])
    eval_logits = apply(params, state, x, train=False, config=config)[0]
    assert np.abs(np.asarray(train_logits - eval_logits)).max() > 1e-3  # dropout acts in train mode only
    np.testing.assert_allclose(eval_logits, numpy_logits(params, x, config), rtol=1e-4, atol=2e-5)
    bf16 = dataclasses.replace(config, dtype="bfloat16")
    bf16_logits, bf16_state = apply(params, state, x, train=True, config=bf16)
    assert bf16_logits.dtype == jnp.float32 and np.all(np.isfinite(bf16_logits))
    np.testing.assert_array_equal(bf16_state["dropout"]["key"], new_state["dropout"]["key"])
    loss, grads = jax.jit(jax.value_and_grad(lambda p: cross_entropy(apply(p, {}, x, train=False, config=bf16)[0], y)))(params)
    assert float(loss) == pytest.approx(float(cross_entropy(eval_logits, y)), abs=0.02)  # bfloat16 rounding only
    jaxpr = jax.make_jaxpr(lambda p: transformer.apply(p, {}, x, train=False, config=bf16)[0])(params).jaxpr
    dots = [tuple(str(v.aval.dtype) for v in e.invars) for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 6 * config.n_layer + 1 and set(dots) == {("bfloat16", "bfloat16")}  # QK-norm, rotary kept them
    assert all(g.dtype == jnp.float32 and np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_gradient_matches_finite_differences_with_all_options(x64):
    config = config_of(**ALL_ON, n_layer=1)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), off_init(transformer.init(jax.random.key(0), config)[0]))
    x, y = tokens(config, 2), tokens(config, 2, key=3)
    loss = jax.jit(lambda p: cross_entropy(transformer.apply(p, {}, x, train=False, config=config)[0], y))
    leaves, tree = jax.tree.flatten(params)
    direction = jax.tree.unflatten(tree, [jax.random.normal(k, a.shape, jnp.float64)
                                          for a, k in zip(leaves, jax.random.split(jax.random.key(5), len(leaves)))])
    h = 1e-6
    shifted = lambda s: jax.tree.map(lambda p, d: p + s * h * d, params, direction)  # noqa: E731
    numeric = (loss(shifted(1)) - loss(shifted(-1))) / (2 * h)  # one compile: same shapes
    analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(jax.jit(jax.grad(loss))(params)), jax.tree.leaves(direction)))
    assert float(analytic) == pytest.approx(float(numeric), rel=1e-6)


# ----------------------------------------------------------------------------- cached decoding


@pytest.mark.parametrize("overrides, dtype, atol", [
    (dict(pos="rotary"), "float32", 1e-5),
    (dict(ALL_ON, zero_init_proj=True, bias=True), "float32", 1e-5),
    (dict(ALL_ON, zero_init_proj=True, bias=False, tie_embeddings=True, dropout=0.1), "float32", 1e-5),
    (dict(ALL_ON, zero_init_proj=True), "bfloat16", 0.05),
], ids=["rotary", "all", "all-tied-dropout", "all-bf16"])
def test_decode_step_equals_apply_position_by_position(overrides, dtype, atol):
    config = config_of(**overrides, dtype=dtype)
    params, state = transformer.init(jax.random.key(0), config)
    params = off_init(params)  # off the zero projections, so every block contributes
    x = tokens(config, 3)
    logits = apply(params, state, x, train=False, config=config)[0]
    cache = transformer.init_cache(params, config, 3)
    step = jax.jit(lambda p, c, tok, pos: transformer.decode_step(p, state, c, tok, pos, config=config))
    for pos in range(config.block_size):
        step_logits, cache = step(params, cache, x[:, pos], jnp.int32(pos))
        np.testing.assert_allclose(step_logits, logits[:, pos], rtol=1e-4, atol=atol)


# ----------------------------------------------------------------------------- validation and the defaults


@pytest.mark.parametrize("overrides, message", [
    (dict(pos="alibi"), "pos must be one of learned, rotary, got 'alibi'"),
    (dict(norm="batch"), "norm must be one of layer, rms, rms-nogain, got 'batch'"),
    (dict(activation="swiglu"), "activation must be one of gelu, relu2, got 'swiglu'"),
    (dict(softcap=-1.0), "softcap must be 0 .off. or a positive finite number, got -1.0"),
    (dict(softcap=math.inf), "softcap must be 0"),
    (dict(softcap=math.nan), "softcap must be 0"),
    (dict(pos="rotary", n_embd=6, n_head=2), r"n_embd \(6\) must be a multiple of n_head \(2\), and of 2 n_head"),
])
def test_config_rejects_bad_speedrun_options(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_of(**overrides)
    config_of(pos="rotary", n_embd=6, n_head=3)  # head size 2: fine


def test_defaults_keep_the_numbers_pinned_before_the_options():
    """Pinned with the code before the speedrun options existed (same seed, same sizes)."""
    configs = {
        "default": transformer.Config(n_layer=2, n_embd=16, n_head=2),
        "gpt": transformer.Config(**TINY, dropout=0.1, **{k: v for k, v in gpt.GPT_CONFIG.items()
                                                            if k not in TINY and k != "dropout"}),
    }
    pins = {("default", False): ([-0.0104954, -0.0435876, -0.03951304, -0.10902907], 50.31708908081055),
            ("default", True): ([-0.0104954, -0.0435876, -0.03951304, -0.10902907], 50.31708908081055),
            ("gpt", False): ([0.3742308, -0.00865408, -0.00425183, -0.10622552], 14.393104553222656),
            ("gpt", True): ([0.36179626, -0.01765026, -0.00655936, -0.1093687], 14.320191383361816)}
    param_sums = {"default": 197.04562377929688, "gpt": 163.4287109375}
    for name, config in configs.items():
        params, state = transformer.init(jax.random.key(3), config)
        assert float(sum(jnp.abs(leaf).sum() for leaf in jax.tree.leaves(params))) == pytest.approx(param_sums[name], rel=1e-6)
        x = jax.random.randint(jax.random.key(4), (2, config.block_size), 0, config.vocab_size)
        for train in (False, True):
            logits = apply(params, state, x, train=train, config=config)[0]
            row, total = pins[(name, train)]
            np.testing.assert_allclose(logits[1, -1, :4], row, rtol=1e-5, atol=1e-7)
            assert float(jnp.abs(logits).sum()) == pytest.approx(total, rel=1e-5)


def test_an_old_gainless_rms_checkpoint_loads_as_rms_nogain(tmp_path):
    """norm "rms" once meant RMSNorm without a gain (saved with no ln_* parameters); such a
    checkpoint, its metadata written by hand as the old code wrote it, loads as "rms-nogain"
    with its parameters, while a checkpoint of today's "rms" (with a gain) stays "rms"."""
    from makemore_jax import checkpoint, models, run
    from makemore_jax.optim import TrainConfig
    from makemore_jax.train import create_train_state
    model = models.get("gpt-speedrun")
    config = model.make_config(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=16)
    tc = TrainConfig(**{**model.train_defaults, "steps": 10})
    for saved_norm, loaded_norm in (("rms", "rms"), ("rms-nogain", "rms-nogain"), (None, "rms-nogain")):
        written = config if saved_norm is None else dataclasses.replace(config, norm=saved_norm)
        ts = create_train_state(model, written, tc, jax.random.key(0))
        meta = {"model": model.name, "dataset": model.dataset, "train": dataclasses.asdict(tc),
                "config": {**dataclasses.asdict(written), "norm": saved_norm or "rms"},  # None: the old name
                "vocab": ["\n", "a", "b", "c", "d"]}
        out = str(tmp_path / str(saved_norm))
        checkpoint.save(out, ts, meta)
        loaded = run.from_checkpoint(out)
        assert loaded.config == dataclasses.replace(config, norm=loaded_norm), saved_norm
        assert ("ln_f" in loaded.state.params) == (loaded_norm == "rms")
        assert_trees_close(loaded.state.params, ts.params, rtol=0)
        assert_trees_close(loaded.state.opt_state, ts.opt_state, rtol=0)


def test_the_norm_flag_offers_each_name_once_with_its_meaning():
    from makemore_jax.cli import build_parser
    train = next(a for a in build_parser()._subparsers._group_actions).choices["train"]
    help_text = " ".join(train.format_help().split())
    assert "--norm {batch,layer,group,rms,none,rms-nogain}" in help_text
    assert "rms (RMSNorm with a gain)" in help_text and "rms-nogain = RMSNorm without a gain" in help_text
    assert build_parser().parse_args(["train", "--model", "gpt", "--norm", "rms-nogain"]).norm == "rms-nogain"
