"""The pure layers against independent references: numpy, flax.linen and (when present) torch."""

import functools

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from makemore_jax import nn
from makemore_jax.manual_backprop import batchnorm_backward

from conftest import assert_trees_close

EPS = 1e-5


def normal(seed, shape, *, loc=0.0, scale=1.0, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).normal(loc, scale, shape), dtype)


def bn_params(c, seed=0, dtype=jnp.float32):
    """Random gamma and beta (not the init's ones and zeros, so a swap would show)."""
    return {"gamma": normal(seed, (c,), loc=1.0, scale=0.5, dtype=dtype), "beta": normal(seed + 1, (c,), dtype=dtype)}


def bn_state(c, seed=2, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return {"mean": jnp.asarray(rng.normal(size=c), dtype), "var": jnp.asarray(rng.uniform(0.5, 2.0, c), dtype)}


# ----------------------------------------------------------------------------- linear / embedding


@pytest.mark.parametrize("bias", [True, False])
def test_linear_shapes_and_values(bias):
    params = nn.linear_init(jax.random.key(0), 6, 4, bias=bias, bias_scale=0.3)
    assert params["W"].shape == (6, 4) and ("b" in params) == bias
    x = normal(1, (2, 3, 6))  # [B, T, fan_in]
    y = nn.linear(params, x)
    assert y.shape == (2, 3, 4)
    expected = np.asarray(x) @ np.asarray(params["W"]) + (np.asarray(params["b"]) if bias else 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_linear_default_scale_is_kaiming_for_tanh():
    W = nn.linear_init(jax.random.key(0), 400, 300)["W"]
    assert abs(float(jnp.std(W)) - (5 / 3) / 20) < 0.002  # std 0.0833, 120k draws


def test_embedding_shape_and_one_hot_equivalence():
    table = nn.embedding_init(jax.random.key(0), 27, 5)
    ids = jax.random.randint(jax.random.key(1), (8, 3), 0, 27)
    emb = nn.embedding(table, ids)
    assert table.shape == (27, 5) and emb.shape == (8, 3, 5)
    np.testing.assert_allclose(emb, jax.nn.one_hot(ids, 27) @ table, rtol=1e-6)


# ----------------------------------------------------------------------------- layernorm


@pytest.mark.parametrize("shape", [(16, 12), (4, 5, 12)])
def test_layernorm_matches_flax(shape):
    params = bn_params(12)
    x = normal(3, shape, loc=2.0, scale=3.0)
    ours = nn.layernorm(params, x, eps=EPS)
    ref = linen.LayerNorm(epsilon=EPS).apply({"params": {"scale": params["gamma"], "bias": params["beta"]}}, x)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- batchnorm: the update rule


def torch_convention_step(params, state, x, momentum=0.1):
    """PyTorch's documented BatchNorm1d train step in float64 numpy, written out."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    mean = x.mean(0)
    var_biased = ((x - mean) ** 2).sum(0) / n
    var_unbiased = ((x - mean) ** 2).sum(0) / (n - 1)
    y = np.asarray(params["gamma"]) * (x - mean) / np.sqrt(var_biased + EPS) + np.asarray(params["beta"])
    new_state = {"mean": (1 - momentum) * np.asarray(state["mean"]) + momentum * mean,
                 "var": (1 - momentum) * np.asarray(state["var"]) + momentum * var_unbiased}
    return y, new_state


def test_batchnorm_two_train_steps_follow_pytorchs_documented_update():
    params, state = bn_params(5), bn_state(5)
    ref_state = state
    for step in range(2):
        x = normal(10 + step, (8, 5), loc=step - 0.5, scale=1.0 + step)
        y, state = nn.batchnorm(params, state, x, train=True)
        ref_y, ref_state = torch_convention_step(params, ref_state, x)
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        for k in ("mean", "var"):
            np.testing.assert_allclose(state[k], ref_state[k], rtol=1e-5, atol=1e-6)


def test_batchnorm_biased_running_var_option_and_momentum_one():
    params, state = bn_params(5), bn_state(5)
    x = normal(4, (6, 5), scale=2.0)
    _, biased = nn.batchnorm(params, state, x, train=True, unbiased_running_var=False)
    _, unbiased = nn.batchnorm(params, state, x, train=True)
    kept = 0.9 * state["var"]  # (1 - momentum) x old
    np.testing.assert_allclose(unbiased["var"] - kept, (biased["var"] - kept) * 6 / 5, rtol=1e-5)
    _, replaced = nn.batchnorm(params, state, x, train=True, momentum=1.0)
    np.testing.assert_allclose(replaced["mean"], np.asarray(x).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(replaced["var"], np.asarray(x).var(0, ddof=1), rtol=1e-5)


def test_batchnorm_eval_uses_running_stats_and_returns_the_state_unchanged():
    params, state = bn_params(5), bn_state(5)
    x = normal(5, (7, 5), loc=3.0)
    y, new_state = nn.batchnorm(params, state, x, train=False)
    assert new_state is state
    expected = (np.asarray(params["gamma"]) * (np.asarray(x) - np.asarray(state["mean"]))
                / np.sqrt(np.asarray(state["var"]) + EPS) + np.asarray(params["beta"]))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_3d_input_equals_2d_on_the_flattened_rows():
    params, state = bn_params(6), bn_state(6)
    x = normal(6, (4, 5, 6), loc=1.0, scale=2.0)  # [B, T, C]
    for train in (True, False):
        y3, state3 = nn.batchnorm(params, state, x, train=train)
        y2, state2 = nn.batchnorm(params, state, x.reshape(20, 6), train=train)
        np.testing.assert_allclose(y3.reshape(20, 6), y2, rtol=1e-6, atol=1e-6)
        assert_trees_close(state3, state2, rtol=1e-6)


def test_batchnorm_train_mode_needs_two_rows():
    params, state = bn_params(3), bn_state(3)
    with pytest.raises(ValueError, match="at least 2 rows"):
        nn.batchnorm(params, state, jnp.ones((1, 3)), train=True)


def test_batchnorm_matches_torch_batchnorm1d():
    torch = pytest.importorskip("torch")
    params, state = bn_params(5), bn_state(5)
    ref = torch.nn.BatchNorm1d(5, eps=EPS, momentum=0.1)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(np.asarray(params["gamma"])))
        ref.bias.copy_(torch.tensor(np.asarray(params["beta"])))
        ref.running_mean.copy_(torch.tensor(np.asarray(state["mean"])))
        ref.running_var.copy_(torch.tensor(np.asarray(state["var"])))
    batches = [normal(20 + i, (16, 5), loc=i, scale=1.0 + i) for i in range(3)]
    ref.train()
    for x in batches[:2]:
        y, state = nn.batchnorm(params, state, x, train=True)
        with torch.no_grad():
            ref_y = ref(torch.tensor(np.asarray(x))).numpy()
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state["mean"], ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["var"], ref.running_var.numpy(), rtol=1e-5, atol=1e-6)
    ref.eval()
    y, _ = nn.batchnorm(params, state, batches[2], train=False)
    with torch.no_grad():
        np.testing.assert_allclose(y, ref(torch.tensor(np.asarray(batches[2]))).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(32, 7), (4, 8, 7)])
def test_batchnorm_matches_flax_batchnorm_with_the_biased_running_var(shape):
    """flax's momentum is the weight of the old statistics: 1 - ours; its running var is biased."""
    params, state = bn_params(7), bn_state(7)
    flax_vars = {"params": {"scale": params["gamma"], "bias": params["beta"]},
                 "batch_stats": {"mean": state["mean"], "var": state["var"]}}
    layer = lambda train: linen.BatchNorm(use_running_average=not train, momentum=1 - 0.1, epsilon=EPS)
    for step in range(4):
        x = normal(30 + step, shape, loc=2.0 - step, scale=0.5 + step)
        y, state = nn.batchnorm(params, state, x, train=True, unbiased_running_var=False)
        ref_y, updates = layer(True).apply(flax_vars, x, mutable=["batch_stats"])
        flax_vars = {**flax_vars, **updates}
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        assert_trees_close(state, dict(flax_vars["batch_stats"]), rtol=1e-5, atol=1e-5)
    x = normal(40, shape, loc=1.0)
    np.testing.assert_allclose(nn.batchnorm(params, state, x, train=False)[0], layer(False).apply(flax_vars, x),
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- batchnorm: gradients


def reference_batchnorm(x, gamma, beta):
    """The train-mode output written plainly, for jax.grad to differentiate."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean((x - mean) ** 2, axis=axes)
    return gamma * (x - mean) / jnp.sqrt(var + EPS) + beta


def test_new_state_carries_no_gradient():
    params, state = bn_params(5), bn_state(5)
    x = normal(7, (8, 5))
    weights = normal(8, (8, 5))

    def loss(params, state, x):  # the loss reads the new state too: still no gradient through it
        y, new_state = nn.batchnorm(params, state, x, train=True)
        return jnp.sum(y * weights) + jnp.sum(new_state["mean"]) + jnp.sum(new_state["var"])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, state, x)
    assert_trees_close(grads[1], jax.tree.map(jnp.zeros_like, state), rtol=0)
    assert float(jnp.max(jnp.abs(grads[0]["gamma"]))) > 0 and float(jnp.max(jnp.abs(grads[2]))) > 0
    running_mean_grad = jax.jit(jax.grad(lambda x: jnp.sum(nn.batchnorm(params, state, x, train=True)[1]["mean"])))(x)
    np.testing.assert_array_equal(running_mean_grad, np.zeros((8, 5), np.float32))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 4)])
def test_batchnorm_gradients_match_finite_differences(fused, shape, x64):
    params, state = bn_params(4, dtype=jnp.float64), bn_state(4, dtype=jnp.float64)
    x = normal(9, shape, loc=0.5, scale=2.0, dtype=jnp.float64)
    weights = normal(10, shape, dtype=jnp.float64)

    @jax.jit
    def loss(x, gamma, beta):
        y, _ = nn.batchnorm({"gamma": gamma, "beta": beta}, state, x, train=True, fused_backward=fused)
        return jnp.sum(jnp.tanh(y) * weights)

    order = 2 if fused else 1  # the fused rule is made of differentiable ops: second order works too
    check_grads(loss, (x, params["gamma"], params["beta"]), order=order, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(32, 10), (4, 8, 10)])
def test_fused_backward_equals_autodiff(shape, x64):
    params = bn_params(10, dtype=jnp.float64)
    x = normal(11, shape, loc=-1.0, scale=3.0, dtype=jnp.float64)
    cotangent = normal(12, shape, dtype=jnp.float64)
    state = bn_state(10, dtype=jnp.float64)

    @jax.jit
    def outputs_and_grads(x, gamma, beta):
        fused = lambda x, g, b: nn.batchnorm({"gamma": g, "beta": b}, state, x, train=True)[0]
        y, fused_vjp = jax.vjp(fused, x, gamma, beta)
        ref_y, ref_vjp = jax.vjp(reference_batchnorm, x, gamma, beta)
        return y, ref_y, fused_vjp(cotangent), ref_vjp(cotangent)

    y, ref_y, fused_grads, ref_grads = outputs_and_grads(x, params["gamma"], params["beta"])
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    for name, got, want in zip(("x", "gamma", "beta"), fused_grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * float(jnp.max(jnp.abs(want))), err_msg=name)
    if len(shape) == 2:  # and the lecture's one-line formula, from manual_backprop
        inv = 1 / np.sqrt(np.var(np.asarray(x), axis=0) + EPS)
        xhat = (np.asarray(x) - np.asarray(x).mean(0)) * inv
        lecture_dx = batchnorm_backward(np.asarray(cotangent), xhat, np.asarray(params["gamma"]), inv)
        np.testing.assert_allclose(fused_grads[0], lecture_dx, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("T", [1, 5, 16])
def test_attention_equals_jax_dot_product_attention(T):
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(key, (3, T, 4, 8)) for key in (kq, kk, kv))
    expected = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(nn.attention(q, k, v), expected, rtol=1e-5, atol=1e-5)
    # an explicit mask: query t sees keys s <= t, the default's pattern, and the last query sees all
    mask = jnp.arange(T)[None, :] <= jnp.arange(T)[:, None]
    np.testing.assert_allclose(nn.attention(q, k, v, mask=mask), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nn.attention(q[:, -1:], k, v, mask=jnp.ones((1, T), bool)), expected[:, -1:],
                               rtol=1e-5, atol=1e-5)
    # jax.nn.dot_product_attention through nn.attention (XLA's on CPU): causal, masked, and the gradients
    cotangent = jax.random.normal(jax.random.key(1), q.shape)
    einsum, fused = (_attention_and_grads(q, k, v, cotangent, implementation=i) for i in ("einsum", "xla"))
    np.testing.assert_allclose(fused[0], expected, rtol=1e-5, atol=1e-5)
    assert_trees_close(fused, einsum, rtol=1e-5, atol=1e-5)


@functools.partial(jax.jit, static_argnames="implementation")
def _attention_and_grads(q, k, v, cotangent, *, implementation):
    """nn.attention's causal output, its last query's under an all-True mask, and the causal vjp of `cotangent`."""
    causal, vjp = jax.vjp(lambda *a: nn.attention(*a, implementation=implementation), q, k, v)
    last = nn.attention(q[:, -1:], k, v, mask=jnp.ones((1, k.shape[1]), bool), implementation=implementation)
    return causal, last, vjp(cotangent)
