"""nanoGPT's GPT as options of the transformer: each option against a closed form, the whole
model and five AdamW steps against our PyTorch nanoGPT (skipped without torch)."""

import dataclasses
import functools
import math

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from makemore_jax.losses import cross_entropy
from makemore_jax.models import gpt, transformer
from makemore_jax import models
from makemore_jax.train import TrainConfig, make_optimizer, make_schedule

from conftest import assert_trees_close, perturbed, random_tokens

LABELS = models.get("gpt").param_labels  # the transformer family's: optim reads no key names
GPT = transformer.Config(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16,
                         **{k: v for k, v in gpt.GPT_CONFIG.items() if k not in ("block_size", "n_layer", "n_head", "n_embd")})


@pytest.fixture(scope="module")
def torch_gpt():
    pytest.importorskip("torch")
    from benchmarks.references import torch_gpt
    return torch_gpt


off_init = functools.partial(perturbed, scale=0.1)  # every leaf off its init, so each one matters
tokens = random_tokens


apply = jax.jit(transformer.apply, static_argnames=("train", "config"))  # one compile instead of many eager ops


def logits_of(params, config, x, state=None, train=False):
    return apply(params, {} if state is None else state, x, train=train, config=config)[0]


def leaf_names(params):
    return {getattr(path[-1], "key", None) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}


# ----------------------------------------------------------------------------- against nanoGPT in torch


@pytest.mark.parametrize("bias, tie", [(False, True), (True, True), (True, False)])
def test_logits_equal_nanogpts_for_the_same_parameters(torch_gpt, bias, tie):
    import torch
    config = dataclasses.replace(GPT, bias=bias, tie_embeddings=tie)
    params = off_init(transformer.init(jax.random.key(0), config)[0])
    x = tokens(config, 4)
    reference = torch_gpt.from_jax_params(params, config).eval()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(np.array(x)).long())[0].numpy()
    np.testing.assert_allclose(logits_of(params, config, x), theirs, rtol=1e-4, atol=1e-4)


def test_five_adamw_steps_follow_nanogpts(torch_gpt):
    """Same parameters, batches and learning rates: nanoGPT's param groups (here with biases,
    whose qkv bias is [3, H, D] in ours and a vector in torch) and clipping give the same losses."""
    import torch
    config = dataclasses.replace(GPT, bias=True)
    tc = TrainConfig(**{**gpt.GPT_TRAIN, "steps": 5, "warmup_steps": 2, "lr": 1e-2, "clip_norm": 0.1})
    params = transformer.init(jax.random.key(0), config)[0]
    text = np.asarray(jax.random.randint(jax.random.key(5), (400,), 0, config.vocab_size))
    starts = np.random.default_rng(0).integers(0, len(text) - config.block_size, (tc.steps, 3))
    batches = [(np.stack([text[i:i + config.block_size] for i in row]),
                np.stack([text[i + 1:i + 1 + config.block_size] for i in row])) for row in starts]

    tx = make_optimizer(tc, LABELS)
    loss_fn = lambda p, x, y: cross_entropy(logits_of(p, config, x, train=True), y)  # noqa: E731

    @jax.jit
    def step(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    ours, p, opt_state = [], params, tx.init(params)
    for x, y in batches:
        p, opt_state, loss = step(p, opt_state, x, y)
        ours.append(float(loss))

    model = torch_gpt.from_jax_params(params, config)
    opt = torch_gpt.configure_optimizers(model, tc.weight_decay, tc.lr, (tc.b1, tc.b2))
    schedule = make_schedule(tc)
    theirs = [torch_gpt.train_step(model, opt, torch.from_numpy(x).long(), torch.from_numpy(y).long(),
                                   lr=float(schedule(i)), grad_clip=tc.clip_norm) for i, (x, y) in enumerate(batches)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ours[-1] < ours[0] - 0.01  # the steps did move the loss
    after = torch_gpt.from_jax_params(p, config)  # and the parameters agree after the steps
    for (name, a), b in zip(after.named_parameters(), model.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5, err_msg=name)


def test_nanogpt_cpu_recipe_parameter_count(torch_gpt):
    """nanoGPT prints 0.80M for its CPU recipe on tiny shakespeare (vocab 65): wpe excluded."""
    config = transformer.Config(vocab_size=65, **gpt.GPT_CONFIG)
    assert torch_gpt.GPT(config).num_params() == 795_904
    assert torch_gpt.GPT(config).num_params(non_embedding=False) == 804_096


# ----------------------------------------------------------------------------- sizes and options, closed forms


def test_cpu_recipe_parameter_count_by_hand():
    """Per block: 2 LayerNorm gains 2C + qkv 3C^2 + proj C^2 + MLP 8C^2; wte (tied head) V C,
    ln_f C, wpe T C. C 128, 4 blocks, V 65, T 64: 795,904 as nanoGPT counts (no wpe), 804,096 with it."""
    config = transformer.Config(vocab_size=65, **gpt.GPT_CONFIG)
    params = transformer.init(jax.random.key(0), config)[0]
    C, V, T = 128, 65, 64
    by_hand = 4 * (2 * C + 12 * C * C) + V * C + C
    assert by_hand == 795_904
    assert sum(p.size for p in jax.tree.leaves(params)) == by_hand + T * C == 804_096


def test_no_bias_has_no_bias_or_beta_leaves():
    with_bias = transformer.init(jax.random.key(0), dataclasses.replace(GPT, bias=True))[0]
    without = transformer.init(jax.random.key(0), GPT)[0]
    assert {"b", "beta"} <= leaf_names(with_bias) and not {"b", "beta"} & leaf_names(without)
    C, n_layer = GPT.n_embd, GPT.n_layer
    biases = n_layer * (2 * C + 3 * C + C + 4 * C + C) + C  # ln_1, qkv, proj, ln_2, fc, proj per block; ln_f
    assert sum(p.size for p in jax.tree.leaves(with_bias)) - sum(p.size for p in jax.tree.leaves(without)) == biases


def test_tied_head_is_wte_transposed_and_gets_both_gradients():
    tied = off_init(transformer.init(jax.random.key(0), GPT)[0])
    assert "lm_head" not in tied
    untied_config = dataclasses.replace(GPT, tie_embeddings=False)
    untied = {**tied, "lm_head": {"W": tied["wte"].T}}
    x, y = tokens(GPT, 3), tokens(GPT, 3, key=3)
    np.testing.assert_allclose(logits_of(tied, GPT, x), logits_of(untied, untied_config, x), rtol=1e-6, atol=1e-6)
    g_tied = jax.grad(lambda p: cross_entropy(logits_of(p, GPT, x), y))(tied)["wte"]
    g = jax.grad(lambda p: cross_entropy(logits_of(p, untied_config, x), y))(untied)
    np.testing.assert_allclose(g_tied, g["wte"] + g["lm_head"]["W"].T, rtol=1e-5, atol=1e-7)
    assert np.abs(g["lm_head"]["W"]).max() > 1e-3  # the head's share is not negligible


def test_gelu_exact_is_erf_and_tanh_is_gpt2s_formula():
    x = np.linspace(-5, 5, 101, dtype=np.float32).astype(np.float64)  # formulas in float64, ours in float32
    erf = np.vectorize(math.erf)(x / math.sqrt(2.0))
    np.testing.assert_allclose(transformer.GELUS["exact"](x.astype(np.float32)), 0.5 * x * (1 + erf), rtol=1e-6, atol=2e-6)
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(transformer.GELUS["tanh"](x.astype(np.float32)), tanh, rtol=1e-6, atol=2e-6)
    assert np.abs(erf - np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))).max() > 1e-4
    params = off_init(transformer.init(jax.random.key(0), GPT)[0], scale=1.0)
    x = tokens(GPT, 2)
    assert np.abs(logits_of(params, GPT, x) - logits_of(params, dataclasses.replace(GPT, gelu="tanh"), x)).max() > 1e-5


def test_scaled_residual_init_std():
    """c_proj ~ N(0, 0.02 / sqrt(2 n_layer)); every other weight and both embeddings N(0, 0.02); gains 1."""
    config = transformer.Config(vocab_size=65, block_size=64, n_layer=8, n_embd=64, bias=False, scaled_residual_init=True)
    params = transformer.init(jax.random.key(0), config)[0]
    std = lambda leaves: float(np.std(np.concatenate([np.ravel(a) for a in leaves])))  # noqa: E731
    blocks = params["blocks"]
    assert std([b["attn"]["c_proj"]["W"] for b in blocks]) == pytest.approx(0.005, rel=0.03)  # 32,768 draws
    assert std([b["mlp"]["c_proj"]["W"] for b in blocks]) == pytest.approx(0.005, rel=0.03)
    assert std([b["mlp"]["c_fc"]["W"] for b in blocks] + [b["attn"]["c_attn"]["W"] for b in blocks]) == pytest.approx(0.02, rel=0.03)
    assert std([params["wte"], params["wpe"]]) == pytest.approx(0.02, rel=0.03)
    assert all(np.all(b["ln_1"]["gamma"] == 1) for b in blocks)
    plain = transformer.init(jax.random.key(0), dataclasses.replace(config, scaled_residual_init=False))[0]
    assert std([b["mlp"]["c_proj"]["W"] for b in plain["blocks"]]) == pytest.approx(0.02, rel=0.03)


def test_config_rejects_bad_options():
    with pytest.raises(ValueError, match="scaled_residual_init needs init 'gpt2'"):
        transformer.Config(init="pytorch", scaled_residual_init=True)
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, got 'float16'"):
        transformer.Config(dtype="float16")
    with pytest.raises(ValueError, match="gelu must be one of tanh, exact"):
        transformer.Config(gelu="relu")
    with pytest.raises(ValueError, match="decay must be one of all, matrices"):
        TrainConfig(decay="vectors")


def test_attention_dropout_and_state_holds_only_the_key():
    config = dataclasses.replace(GPT, dropout=0.3)
    params, state = transformer.init(jax.random.key(0), config)
    assert jax.tree.structure(state) == jax.tree.structure({"dropout": {"key": 0}})
    x = tokens(config, 2)
    with_attn, s1 = apply(params, state, x, train=True, config=config)
    without, s2 = apply(params, state, x, train=True, config=dataclasses.replace(config, attn_dropout=False))
    assert np.abs(with_attn - without).max() > 1e-4
    np.testing.assert_array_equal(s1["dropout"]["key"], s2["dropout"]["key"])
    assert not np.array_equal(s1["dropout"]["key"], state["dropout"]["key"])
    eval_logits, eval_state = transformer.apply(params, state, x, train=False, config=config)
    assert eval_state is state
    np.testing.assert_allclose(eval_logits, logits_of(params, dataclasses.replace(config, dropout=0.0), x),
                               rtol=1e-6, atol=1e-7)  # eager against jitted: rounding only


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("bfloat16", 0.0)])
def test_decode_step_reproduces_apply_with_gpts_options(dtype, tol):
    config = dataclasses.replace(GPT, dtype=dtype)
    params = off_init(transformer.init(jax.random.key(0), config)[0])
    x = tokens(config, 3)
    logits = logits_of(params, config, x)
    cache = transformer.init_cache(params, config, 3)
    step = jax.jit(functools_partial_decode(config))
    for pos in range(config.block_size):
        step_logits, cache = step(params, cache, x[:, pos], jnp.int32(pos))
        np.testing.assert_allclose(step_logits, logits[:, pos], rtol=1e-4, atol=max(tol, 1e-5 if dtype == "float32" else 0.05))


def functools_partial_decode(config):
    return lambda p, cache, token, pos: transformer.decode_step(p, {}, cache, token, pos, config=config)


def test_fused_attention_equals_the_einsum():
    """jax.nn.dot_product_attention (XLA's on CPU) in apply and in cached decoding, against nn.attention."""
    einsum, fused = (dataclasses.replace(GPT, n_layer=1, attention=a) for a in ("einsum", "fused"))
    params = off_init(transformer.init(jax.random.key(0), einsum)[0])
    x = tokens(einsum, 3)
    np.testing.assert_allclose(logits_of(params, fused, x), logits_of(params, einsum, x), rtol=1e-5, atol=1e-5)
    steps = [jax.jit(functools_partial_decode(c)) for c in (einsum, fused)]
    caches = [transformer.init_cache(params, einsum, 3)] * 2
    for pos in range(einsum.block_size):  # the masked case: each query over the cache's positions <= pos
        (a, caches[0]), (b, caches[1]) = (step(params, cache, x[:, pos], jnp.int32(pos))
                                          for step, cache in zip(steps, caches))
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_attention_implementation_is_chosen_by_device_dtype_and_dropout():
    from makemore_jax.nn import attention_implementation as pick
    assert [pick(a, jnp.float32, 64) for a in ("auto", "einsum", "fused")] == ["einsum", "einsum", "xla"]  # CPU
    assert pick("auto", jnp.bfloat16, 64, backend="gpu") == "cudnn" == pick("fused", jnp.float16, 128, backend="gpu")
    assert pick("auto", jnp.float32, 64, backend="gpu") == "einsum"  # float32: no cuDNN kernel
    assert pick("fused", jnp.float32, 64, backend="gpu") == "xla"
    assert pick("auto", jnp.bfloat16, 12, backend="gpu") == "einsum"  # cuDNN's head sizes: multiples of 8 up to 128
    assert pick("auto", jnp.bfloat16, 64, backend="gpu", attn_dropout=True) == "einsum"
    with pytest.raises(ValueError, match="attention 'fused' has no dropout on the attention weights"):
        dataclasses.replace(GPT, attention="fused", dropout=0.1)
    with pytest.raises(ValueError, match="attention must be one of auto, einsum, fused, got 'flash'"):
        dataclasses.replace(GPT, attention="flash")


# ----------------------------------------------------------------------------- bfloat16


def dot_operand_dtypes(jaxpr) -> list:
    """The operand dtypes of every dot_general in a jaxpr, sub-jaxprs (pjit, custom_jvp) included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(tuple(str(v.aval.dtype) for v in eqn.invars))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found.extend(dot_operand_dtypes(sub))
    return found


def test_bfloat16_matmuls_float32_params_and_a_close_loss():
    config = dataclasses.replace(GPT, dtype="bfloat16")
    params, _ = transformer.init(jax.random.key(0), config)
    params = off_init(params, scale=0.05)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    x, y = tokens(config, 4), tokens(config, 4, key=3)
    loss = lambda p, c: cross_entropy(logits_of(p, c, x), y)  # noqa: E731
    logits = logits_of(params, config, x)
    assert logits.dtype == jnp.float32
    assert float(loss(params, config)) == pytest.approx(float(loss(params, GPT)), abs=2e-2)
    grads = jax.grad(loss)(params, config)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    dots = dot_operand_dtypes(jax.make_jaxpr(lambda p: logits_of(p, config, x))(params).jaxpr)
    # per block qkv, q k^T, att v, proj, fc, proj; then the head: all with bfloat16 operands
    assert len(dots) == 6 * config.n_layer + 1 and set(dots) == {("bfloat16", "bfloat16")}
    f32_dots = dot_operand_dtypes(jax.make_jaxpr(lambda p: logits_of(p, GPT, x))(params).jaxpr)
    assert set(f32_dots) == {("float32", "float32")}


# ----------------------------------------------------------------------------- the decay mask


def test_decay_mask_spares_gains_and_biases():
    """With zero gradients AdamW's step is -lr * wd * p on decayed leaves and exactly 0 elsewhere."""
    config = dataclasses.replace(GPT, bias=True)
    params = off_init(transformer.init(jax.random.key(0), config)[0])
    tc = TrainConfig(optimizer="adamw", steps=10, lr=1e-2, weight_decay=0.1, min_lr_ratio=1.0, decay="matrices")
    tx = make_optimizer(tc, LABELS)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    mask = LABELS.decayed(params)
    decayed = {".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
               for path, m in jax.tree_util.tree_flatten_with_path(mask)[0] if m}
    assert "wte" in decayed and "blocks.0.attn.c_attn.W" in decayed and "blocks.0.attn.c_attn.b" not in decayed
    assert not any(name.endswith(("gamma", "beta", ".b")) for name in decayed)
    expected = jax.tree.map(lambda p, m: -tc.lr * tc.weight_decay * p * m, params, mask)
    assert_trees_close(updates, expected, rtol=1e-6, atol=1e-12)
    # and on a real gradient, the same step as optax.adamw given that mask by hand
    grads = jax.grad(lambda p: cross_entropy(logits_of(p, config, tokens(config, 2)), tokens(config, 2, key=4)))(params)
    by_hand = optax.adamw(1e-2, b1=0.9, b2=0.999, weight_decay=0.1, mask=mask)
    assert_trees_close(tx.update(grads, tx.init(params), params)[0],
                       by_hand.update(grads, by_hand.init(params), params)[0], rtol=1e-6, atol=1e-9)
    every = make_optimizer(dataclasses.replace(tc, decay="all"), LABELS)
    b_update = every.update(zeros, every.init(params), params)[0]["blocks"][0]["ln_1"]["beta"]
    np.testing.assert_allclose(b_update, -tc.lr * tc.weight_decay * params["blocks"][0]["ln_1"]["beta"], rtol=1e-6)
