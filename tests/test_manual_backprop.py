"""Hand-written backward passes against `jax.grad`.

The reference for an intermediate's gradient comes from "probes": an independent copy of the
forward pass adds a zero-valued probe to every intermediate as it is computed, and the
gradient of the loss w.r.t. that probe, at zero, is dloss/d(intermediate), counting every
downstream use. Gradient checks run in float64 (enabled for this module only).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.data import DEFAULT_DATA, Vocab, build_context_dataset, load_words, split_words
from makemore_jax.manual_backprop import (
    INTERMEDIATES,
    backward,
    batchnorm_backward,
    cross_entropy_backward,
    forward,
    manual_grads,
)

EPS = 1e-5
RTOL_F64 = 1e-10

# (vocab_size, block_size, n_embd, n_hidden, batch): a tiny one and the lecture's
CONFIGS = {"tiny": (5, 2, 3, 4, 6), "lecture": (27, 3, 10, 64, 32)}


pytestmark = pytest.mark.usefixtures("x64_module")  # the whole module in float64 (conftest.py)


# ----------------------------------------------------------------------------- helpers


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def lecture_init(key, vocab_size, block_size, n_embd, n_hidden):
    """The lecture's init, float32: C ~ N(0, 1), W1 ~ N(0, 1) * (5/3) / sqrt(fan_in), gamma 1,
    beta 0, W2 ~ N(0, 1) * 0.01, b2 0."""
    kC, kW1, kW2 = jax.random.split(key, 3)
    fan_in = block_size * n_embd
    return {
        "C": jax.random.normal(kC, (vocab_size, n_embd), jnp.float32),
        "W1": jax.random.normal(kW1, (fan_in, n_hidden), jnp.float32) * (5 / 3) / math.sqrt(fan_in),
        "bn": {"gamma": jnp.ones(n_hidden, jnp.float32), "beta": jnp.zeros(n_hidden, jnp.float32)},
        "W2": jax.random.normal(kW2, (n_hidden, vocab_size), jnp.float32) * 0.01,
        "b2": jnp.zeros(vocab_size, jnp.float32),
    }


def make_case(name, seed=0):
    """float64 params and a batch. gamma, beta and b2 are random (not 1, 0, 0) so that a
    gradient that forgets them still shows up; numpy draws them (no per-op compiles)."""
    vocab_size, block_size, n_embd, n_hidden, batch = CONFIGS[name]
    rng = np.random.default_rng(seed)
    fan_in = block_size * n_embd
    params = {
        "C": rng.standard_normal((vocab_size, n_embd)),
        "W1": rng.standard_normal((fan_in, n_hidden)) / math.sqrt(fan_in),
        "bn": {"gamma": 1 + 0.3 * rng.standard_normal(n_hidden), "beta": 0.3 * rng.standard_normal(n_hidden)},
        "W2": 0.3 * rng.standard_normal((n_hidden, vocab_size)),
        "b2": 0.3 * rng.standard_normal(vocab_size),
    }
    X = rng.integers(0, vocab_size, (batch, block_size), dtype=np.int32)
    Y = rng.integers(0, vocab_size, batch, dtype=np.int32)
    return jax.tree.map(jnp.asarray, params), jnp.asarray(X), jnp.asarray(Y)


def rel_err(got, want, scale=None):
    """max |got - want| relative to the largest |want| (or to `scale`)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    return float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) if scale is None else scale))


def assert_trees_close(got, want, rtol):
    got_leaves, got_def = jax.tree.flatten_with_path(got)
    want_leaves, want_def = jax.tree.flatten_with_path(want)
    assert got_def == want_def
    errors = {jax.tree_util.keystr(p): rel_err(g, w) for (p, g), (_, w) in zip(got_leaves, want_leaves)}
    assert max(errors.values()) < rtol, errors


def reference_loss(params, X, Y):
    """The same model written compactly with library pieces (biased variance)."""
    h = params["C"][X].reshape(X.shape[0], -1) @ params["W1"]
    h = (h - h.mean(0)) / jnp.sqrt(h.var(0) + EPS)  # jnp.var is biased
    h = jnp.tanh(params["bn"]["gamma"] * h + params["bn"]["beta"])
    logits = h @ params["W2"] + params["b2"]
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], axis=1).mean()


def forward_with_probes(params, X, Y, probes):
    """The step-by-step forward again, with probes[name] added to each intermediate."""
    p = probes
    B = X.shape[0]
    emb = params["C"][X] + p["emb"]
    embcat = emb.reshape(B, -1) + p["embcat"]
    hprebn = embcat @ params["W1"] + p["hprebn"]
    bnmeani = hprebn.mean(0, keepdims=True) + p["bnmeani"]
    bndiff = hprebn - bnmeani + p["bndiff"]
    bndiff2 = bndiff**2 + p["bndiff2"]
    bnvar = bndiff2.mean(0, keepdims=True) + p["bnvar"]
    bnvar_inv = 1 / jnp.sqrt(bnvar + EPS) + p["bnvar_inv"]
    bnraw = bndiff * bnvar_inv + p["bnraw"]
    hpreact = params["bn"]["gamma"] * bnraw + params["bn"]["beta"] + p["hpreact"]
    h = jnp.tanh(hpreact) + p["h"]
    logits = h @ params["W2"] + params["b2"] + p["logits"]
    logit_maxes = logits.max(1, keepdims=True) + p["logit_maxes"]
    norm_logits = logits - logit_maxes + p["norm_logits"]
    counts = jnp.exp(norm_logits) + p["counts"]
    counts_sum = counts.sum(1, keepdims=True) + p["counts_sum"]
    counts_sum_inv = 1 / counts_sum + p["counts_sum_inv"]
    probs = counts * counts_sum_inv + p["probs"]
    logprobs = jnp.log(probs) + p["logprobs"]
    return -logprobs[jnp.arange(B), Y].mean()


def autodiff_grads(params, X, Y, cache):
    """dloss/d(params) and dloss/d(every intermediate), by jax.grad through the probes."""
    zero_probes = jax.tree.map(jnp.zeros_like, cache)
    param_grads, probe_grads = jax.grad(forward_with_probes, argnums=(0, 3))(params, X, Y, zero_probes)
    return {"params": param_grads, "intermediates": probe_grads}


@jax.jit
def everything(params, X, Y):
    """All the quantities the tests below compare, under one jit (one compile per shape)."""
    loss, cache = forward(params, X, Y)
    return {
        "loss": loss,
        "cache": cache,
        "by_hand": backward(params, X, Y, cache),
        "autodiff": autodiff_grads(params, X, Y, cache),
        "probe_loss": forward_with_probes(params, X, Y, jax.tree.map(jnp.zeros_like, cache)),
        "reference": jax.value_and_grad(reference_loss)(params, X, Y),
        "fused": manual_grads(params, X, Y),
    }


@pytest.fixture(scope="module", params=list(CONFIGS))
def case(request, x64_module):
    params, X, Y = make_case(request.param)
    return X, everything(params, X, Y)


# ----------------------------------------------------------------------------- step-by-step backward


def test_forward_matches_compact_reference(case):
    _, r = case
    assert set(r["cache"]) == set(INTERMEDIATES)
    assert abs(float(r["loss"]) - float(r["reference"][0])) < 1e-12
    assert abs(float(r["loss"]) - float(r["probe_loss"])) < 1e-12


def test_every_intermediate_grad_matches_autodiff(case):
    X, r = case
    got, want = r["by_hand"]["intermediates"], r["autodiff"]["intermediates"]
    assert set(got) == set(INTERMEDIATES)
    B = X.shape[0]
    # dlogit_maxes is zero in exact arithmetic (softmax ignores a shift of the row), so
    # measure it against the size of a dlogits entry, ~1/B, rather than against itself.
    errors = {name: rel_err(got[name], want[name], scale=1 / B if name == "logit_maxes" else None) for name in got}
    assert max(errors.values()) < RTOL_F64, errors
    assert np.max(np.abs(got["logit_maxes"])) < 1e-14


def test_param_grads_match_autodiff(case):
    X, r = case
    # repeated characters in X exercise the scatter-add into C
    assert len(np.unique(np.asarray(X))) < X.size
    want = r["autodiff"]["params"]
    assert_trees_close(r["by_hand"]["params"], want, RTOL_F64)
    assert_trees_close(r["reference"][1], want, RTOL_F64)  # the probes change nothing


def test_manual_grads_match_autodiff(case):
    _, r = case
    loss, grads = r["fused"]
    assert abs(float(loss) - float(r["reference"][0])) < 1e-12
    assert_trees_close(grads, r["autodiff"]["params"], RTOL_F64)


# ----------------------------------------------------------------------------- fused backward


def unfused_cross_entropy(logits, Y):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], axis=1).mean()


def unfused_batchnorm(x, gamma, beta):
    mean = x.sum(0) / x.shape[0]
    var = ((x - mean) ** 2).sum(0) / x.shape[0]  # biased
    return gamma * (x - mean) / jnp.sqrt(var + EPS) + beta


@jax.jit
def cross_entropy_grads(logits, Y):
    """The fused gradient, jax.grad of the unfused loss in the same dtype, and in float64."""
    reference = jax.grad(unfused_cross_entropy)
    return cross_entropy_backward(logits, Y), reference(logits, Y), reference(logits.astype(jnp.float64), Y)


@jax.jit
def batchnorm_grads(x, gamma, beta, dout):
    """The fused input gradient, the vjp of the unfused layer in the same dtype, and in float64."""
    bndiff = x - x.mean(0, keepdims=True)
    bnvar_inv = ((bndiff**2).mean(0, keepdims=True) + EPS) ** -0.5
    fused = batchnorm_backward(dout, bndiff * bnvar_inv, gamma, bnvar_inv)
    reference = jax.vjp(unfused_batchnorm, x, gamma, beta)[1](dout)[0]
    as64 = [a.astype(jnp.float64) for a in (x, gamma, beta, dout)]
    reference64 = jax.vjp(unfused_batchnorm, *as64[:3])[1](as64[3])[0]
    return fused, reference, reference64


@pytest.mark.parametrize("dtype, rtol", [(jnp.float64, RTOL_F64), (jnp.float32, 1e-4)])
def test_cross_entropy_backward_matches_autodiff(dtype, rtol):
    rng = np.random.default_rng(2)
    logits = jnp.asarray(3.0 * rng.standard_normal((32, 27)), dtype)
    Y = jnp.asarray(rng.integers(0, 27, 32, dtype=np.int32))
    fused, reference, reference64 = cross_entropy_grads(logits, Y)
    assert fused.dtype == dtype
    assert rel_err(fused, reference) < rtol
    assert rel_err(fused.astype(jnp.float64), reference64) < rtol


@pytest.mark.parametrize("dtype, rtol", [(jnp.float64, RTOL_F64), (jnp.float32, 1e-4)])
def test_batchnorm_backward_matches_autodiff(dtype, rtol):
    rng = np.random.default_rng(3)
    B, n = 32, 64
    x = jnp.asarray(1.0 + 3.0 * rng.standard_normal((B, n)), dtype)
    gamma = jnp.asarray(1.0 + 0.3 * rng.standard_normal(n), dtype)
    beta = jnp.asarray(rng.standard_normal(n), dtype)
    dout = jnp.asarray(rng.standard_normal((B, n)), dtype)
    fused, reference, reference64 = batchnorm_grads(x, gamma, beta, dout)
    assert fused.dtype == dtype
    assert rel_err(fused, reference) < rtol
    assert rel_err(fused.astype(jnp.float64), reference64) < rtol


# ----------------------------------------------------------------------------- training


def sgd_train(grad_fn, params, X, Y, key, *, steps, batch_size, lr):
    """`steps` SGD steps in one scan; batch i is drawn with fold_in(key, i). Returns the params."""

    def step(params, i):
        idx = jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, X.shape[0])
        loss, grads = grad_fn(params, X[idx], Y[idx])
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss

    params, _ = jax.lax.scan(step, params, jnp.arange(steps))
    return params


@functools.partial(jax.jit, static_argnames=("steps", "batch_size", "lr"))
def train_both_ways(params, Xtr, Ytr, Xdev, Ydev, key, *, steps, batch_size, lr):
    """Train from `params` with manual_grads and with jax.grad on the same batches.

    Returns:
        (dev loss at init, after training by hand, after training by autodiff),
        and the two trained parameter trees.
    """
    kw = dict(steps=steps, batch_size=batch_size, lr=lr)
    by_hand = sgd_train(manual_grads, params, Xtr, Ytr, key, **kw)
    by_autodiff = sgd_train(jax.value_and_grad(reference_loss), params, Xtr, Ytr, key, **kw)
    dev_losses = tuple(reference_loss(p, Xdev, Ydev) for p in (params, by_hand, by_autodiff))
    return dev_losses, by_hand, by_autodiff


def test_training_with_manual_grads_matches_autodiff():
    vocab_size, block_size, n_embd, n_hidden = 27, 3, 10, 64
    words = load_words(DEFAULT_DATA)
    vocab = Vocab.from_words(words)
    assert vocab.size == vocab_size
    train_words, dev_words, _ = split_words(words)
    Xtr, Ytr = build_context_dataset(train_words, vocab, block_size)
    Xdev, Ydev = build_context_dataset(dev_words, vocab, block_size)

    kinit, kdata = jax.random.split(jax.random.key(1337))
    params = lecture_init(kinit, vocab_size, block_size, n_embd, n_hidden)
    losses, by_hand, by_autodiff = train_both_ways(
        params, Xtr, Ytr, Xdev, Ydev, kdata, steps=10_000, batch_size=32, lr=0.1
    )
    assert all(loss.dtype == jnp.float32 for loss in losses)  # trained in float32, not float64
    initial, loss_by_hand, loss_by_autodiff = (float(loss) for loss in losses)

    assert abs(initial - math.log(vocab_size)) < 0.05  # W2 * 0.01 gives near-uniform predictions
    assert loss_by_autodiff < initial - 0.7, (initial, loss_by_autodiff)  # it learned something
    assert abs(loss_by_hand - loss_by_autodiff) < 0.01, (loss_by_hand, loss_by_autodiff)
    # The dev loss hardly depends on some parameters (a frozen gamma still passes the line
    # above), so compare the parameters too. On CPU they agree to ~2e-6 after 10k steps; 0.05
    # leaves room for other backends' rounding, and every leaf moves by more than 0.3.
    assert_trees_close(by_hand, by_autodiff, 0.05)


def test_forward_is_the_mlp_bn_model():
    """The step-by-step forward computes exactly the registered mlp-bn model's training loss."""
    from makemore_jax import models
    from makemore_jax.losses import cross_entropy
    from makemore_jax.manual_backprop import from_model_params

    model = models.get("mlp-bn")
    config = model.make_config(vocab_size=27, n_hidden=64)
    apply = model.bind(config)

    @jax.jit  # one compile, not one per operation
    def both_ways(key):
        params, state = model.init(key, config)
        params = jax.tree.map(lambda p: p + 0.1, params)  # gamma/beta/b2 away from 1/0/0
        X = jax.random.randint(jax.random.key(1), (32, 3), 0, 27)
        Y = jax.random.randint(jax.random.key(2), (32,), 0, 27)
        model_loss = lambda p: cross_entropy(apply(p, state, X, train=True)[0], Y)  # noqa: E731
        manual_loss, _ = forward(from_model_params(params), X, Y)
        _, grads = manual_grads(from_model_params(params), X, Y)
        return manual_loss, model_loss(params), grads, from_model_params(jax.grad(model_loss)(params))

    manual_loss, loss, grads, auto = both_ways(jax.random.key(0))
    np.testing.assert_allclose(manual_loss, loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6), grads, auto)
