"""Backprop by hand through the `mlp-bn` model: Karpathy's "backprop ninja" (makemore part 4).

The forward pass is broken into the lecture's small steps; `backward` walks them in reverse
with one local chain rule per step, producing the gradient of the loss with respect to every
intermediate and every parameter. The fused versions (`cross_entropy_backward`,
`batchnorm_backward`) collapse whole stretches of that chain into one formula each, and
`manual_grads` strings them together into what a training loop would call.

One deliberate difference from the lecture: BatchNorm here normalises with the *biased*
batch variance (divide by B), the PyTorch `BatchNorm1d` training-mode convention that our
`batchnorm` layer uses. The lecture uses the unbiased 1/(B-1) variance, which puts a factor
B/(B-1) into its fused BatchNorm backward; ours has none.

Parameters (the lecture's flat names; `from_model_params` converts the `mlp-bn` model's):
    C:  [vocab, n_embd]                   embedding table
    W1: [block_size * n_embd, n_hidden]   hidden linear, no bias (BatchNorm follows)
    bn: {"gamma": [n_hidden], "beta": [n_hidden]}
    W2: [n_hidden, vocab], b2: [vocab]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Params = dict  # the pytree described in the module docstring
Cache = dict[str, jax.Array]  # intermediate name -> value, see INTERMEDIATES

# Every intermediate of `forward`, in the order it is computed.
INTERMEDIATES = (
    "emb", "embcat", "hprebn",
    "bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw", "hpreact",
    "h", "logits",
    "logit_maxes", "norm_logits", "counts", "counts_sum", "counts_sum_inv", "probs", "logprobs",
)  # fmt: skip


def from_model_params(params: dict) -> Params:
    """The `mlp-bn` model's nested parameters (models/mlp.py) under the lecture's names."""
    (hidden,) = params["layers"]
    return {"C": params["C"], "W1": hidden["linear"]["W"], "bn": hidden["bn"],
            "W2": params["out"]["linear"]["W"], "b2": params["out"]["linear"]["b"]}


# ----------------------------------------------------------------------------- forward


def forward(params: Params, X: jax.Array, Y: jax.Array, eps: float = 1e-5) -> tuple[jax.Array, Cache]:
    """The training-mode forward pass in the lecture's small steps.

    Args:
        params: the `mlp-bn` parameters (see the module docstring).
        X: int32 [B, block_size], context characters.
        Y: int32 [B], next characters.
        eps: added to the batch variance before the inverse square root.

    Returns:
        loss: scalar, mean negative log-likelihood of Y.
        cache: every intermediate named in INTERMEDIATES; per-column batch statistics keep
            their batch axis, shape [1, n_hidden], and per-row softmax sums keep their vocab
            axis, shape [B, 1].
    """
    B = X.shape[0]
    # embedding and hidden linear
    emb = params["C"][X]  # [B, block_size, n_embd]
    embcat = emb.reshape(B, -1)  # [B, block_size * n_embd]
    hprebn = embcat @ params["W1"]  # [B, n_hidden]
    # BatchNorm, biased batch variance
    bnmeani = hprebn.sum(0, keepdims=True) / B  # [1, n_hidden]
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = bndiff2.sum(0, keepdims=True) / B  # [1, n_hidden]
    bnvar_inv = (bnvar + eps) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = params["bn"]["gamma"] * bnraw + params["bn"]["beta"]
    # nonlinearity and output linear
    h = jnp.tanh(hpreact)
    logits = h @ params["W2"] + params["b2"]  # [B, vocab]
    # log-softmax, written out; subtracting the row max only keeps exp from overflowing
    logit_maxes = logits.max(1, keepdims=True)  # [B, 1]
    norm_logits = logits - logit_maxes
    counts = jnp.exp(norm_logits)
    counts_sum = counts.sum(1, keepdims=True)  # [B, 1]
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = jnp.log(probs)
    loss = -logprobs[jnp.arange(B), Y].mean()

    cache = dict(
        emb=emb, embcat=embcat, hprebn=hprebn,
        bnmeani=bnmeani, bndiff=bndiff, bndiff2=bndiff2, bnvar=bnvar, bnvar_inv=bnvar_inv,
        bnraw=bnraw, hpreact=hpreact, h=h, logits=logits,
        logit_maxes=logit_maxes, norm_logits=norm_logits, counts=counts, counts_sum=counts_sum,
        counts_sum_inv=counts_sum_inv, probs=probs, logprobs=logprobs,
    )  # fmt: skip
    return loss, cache


# ----------------------------------------------------------------------------- backward, step by step


def backward(params: Params, X: jax.Array, Y: jax.Array, cache: Cache) -> dict[str, dict]:
    """Gradient of the loss w.r.t. every intermediate and parameter, one step at a time.

    Each line is the local derivative of one forward step times the upstream gradient. An
    intermediate used twice (bndiff, counts, logits, hprebn) collects one term per use.

    Args:
        params: the parameters `forward` was called with.
        X: int32 [B, block_size], Y: int32 [B], the batch `forward` was called with.
        cache: the intermediates `forward` returned.

    Returns:
        {"params": gradients in the same layout as params,
         "intermediates": dloss/d(name) for every name in INTERMEDIATES, same shapes as cache}.
    """
    c = cache
    B, vocab_size = c["logits"].shape
    gamma = params["bn"]["gamma"]

    # loss = -mean(logprobs[range(B), Y]): only the picked entries matter, each with weight 1/B
    dlogprobs = jnp.zeros_like(c["logprobs"]).at[jnp.arange(B), Y].set(-1.0 / B)
    # logprobs = log(probs)
    dprobs = dlogprobs / c["probs"]
    # probs = counts * counts_sum_inv, the [B, 1] factor broadcast across the row
    dcounts_sum_inv = (c["counts"] * dprobs).sum(1, keepdims=True)
    dcounts = c["counts_sum_inv"] * dprobs
    # counts_sum_inv = counts_sum ** -1
    dcounts_sum = -c["counts_sum"] ** -2 * dcounts_sum_inv
    # counts_sum = counts.sum(1): every entry of the row receives the row's gradient
    dcounts = dcounts + dcounts_sum
    # counts = exp(norm_logits)
    dnorm_logits = c["counts"] * dcounts
    # norm_logits = logits - logit_maxes (broadcast over the row)
    dlogits = dnorm_logits
    dlogit_maxes = -dnorm_logits.sum(1, keepdims=True)  # zero in exact arithmetic: softmax is shift-invariant
    # logit_maxes = logits.max(1): the gradient flows to the argmax of each row
    dlogits = dlogits + jax.nn.one_hot(c["logits"].argmax(1), vocab_size, dtype=dlogits.dtype) * dlogit_maxes
    # logits = h @ W2 + b2
    dh = dlogits @ params["W2"].T
    dW2 = c["h"].T @ dlogits
    db2 = dlogits.sum(0)
    # h = tanh(hpreact)
    dhpreact = (1.0 - c["h"] ** 2) * dh
    # hpreact = gamma * bnraw + beta
    dgamma = (c["bnraw"] * dhpreact).sum(0)
    dbnraw = gamma * dhpreact
    dbeta = dhpreact.sum(0)
    # bnraw = bndiff * bnvar_inv
    dbnvar_inv = (c["bndiff"] * dbnraw).sum(0, keepdims=True)
    dbndiff = c["bnvar_inv"] * dbnraw
    # bnvar_inv = (bnvar + eps) ** -0.5, so its derivative is -0.5 * bnvar_inv ** 3
    dbnvar = -0.5 * c["bnvar_inv"] ** 3 * dbnvar_inv
    # bnvar = bndiff2.sum(0) / B (biased)
    dbndiff2 = jnp.ones_like(c["bndiff2"]) / B * dbnvar
    # bndiff2 = bndiff ** 2
    dbndiff = dbndiff + 2.0 * c["bndiff"] * dbndiff2
    # bndiff = hprebn - bnmeani
    dhprebn = dbndiff
    dbnmeani = -dbndiff.sum(0, keepdims=True)
    # bnmeani = hprebn.sum(0) / B
    dhprebn = dhprebn + jnp.ones_like(c["hprebn"]) / B * dbnmeani
    # hprebn = embcat @ W1
    dembcat = dhprebn @ params["W1"].T
    dW1 = c["embcat"].T @ dhprebn
    # embcat = emb.reshape(B, -1)
    demb = dembcat.reshape(c["emb"].shape)
    # emb = C[X]: every row of C collects the gradient of each position that looked it up
    dC = jnp.zeros_like(params["C"]).at[X].add(demb)

    intermediates = dict(
        emb=demb, embcat=dembcat, hprebn=dhprebn,
        bnmeani=dbnmeani, bndiff=dbndiff, bndiff2=dbndiff2, bnvar=dbnvar, bnvar_inv=dbnvar_inv,
        bnraw=dbnraw, hpreact=dhpreact, h=dh, logits=dlogits,
        logit_maxes=dlogit_maxes, norm_logits=dnorm_logits, counts=dcounts, counts_sum=dcounts_sum,
        counts_sum_inv=dcounts_sum_inv, probs=dprobs, logprobs=dlogprobs,
    )  # fmt: skip
    param_grads = {"C": dC, "W1": dW1, "bn": {"gamma": dgamma, "beta": dbeta}, "W2": dW2, "b2": db2}
    return {"params": param_grads, "intermediates": intermediates}


# ----------------------------------------------------------------------------- fused backward


def cross_entropy_backward(logits: jax.Array, Y: jax.Array) -> jax.Array:
    """Gradient of the mean cross-entropy w.r.t. the logits, in one formula.

    Args:
        logits: float [B, vocab].
        Y: int32 [B], targets.

    Returns:
        dlogits: [B, vocab], (softmax(logits) - one_hot(Y)) / B.
    """
    B, vocab_size = logits.shape
    return (jax.nn.softmax(logits, axis=1) - jax.nn.one_hot(Y, vocab_size, dtype=logits.dtype)) / B


def batchnorm_backward(dout: jax.Array, bnraw: jax.Array, gamma: jax.Array, bnvar_inv: jax.Array) -> jax.Array:
    """Gradient of a biased-variance, training-mode BatchNorm w.r.t. its input, in one formula.

    Args:
        dout: [B, n] upstream gradient, dloss/d(gamma * bnraw + beta).
        bnraw: [B, n] the normalised input, (x - mean) * bnvar_inv.
        gamma: [n] the scale.
        bnvar_inv: [1, n] or [n], (biased batch variance + eps) ** -0.5.

    Returns:
        dx: [B, n], gamma * bnvar_inv / B * (B * dout - sum_b dout - bnraw * sum_b(dout * bnraw)).
    """
    B = dout.shape[0]
    return (
        gamma
        * bnvar_inv
        / B
        * (B * dout - dout.sum(0, keepdims=True) - bnraw * (dout * bnraw).sum(0, keepdims=True))
    )


def manual_grads(params: Params, X: jax.Array, Y: jax.Array, eps: float = 1e-5) -> tuple[jax.Array, Params]:
    """Loss and parameter gradients with the fused backward passes; no autodiff anywhere.

    Args:
        params: the `mlp-bn` parameters.
        X: int32 [B, block_size], Y: int32 [B].
        eps: BatchNorm epsilon.

    Returns:
        loss: scalar mean negative log-likelihood.
        grads: same layout as params.
    """
    B = X.shape[0]
    gamma, beta = params["bn"]["gamma"], params["bn"]["beta"]
    # forward, only what the backward needs
    emb = params["C"][X]  # [B, block_size, n_embd]
    embcat = emb.reshape(B, -1)
    hprebn = embcat @ params["W1"]  # [B, n_hidden]
    bndiff = hprebn - hprebn.mean(0, keepdims=True)
    bnvar_inv = ((bndiff**2).mean(0, keepdims=True) + eps) ** -0.5  # biased variance
    bnraw = bndiff * bnvar_inv
    h = jnp.tanh(gamma * bnraw + beta)
    logits = h @ params["W2"] + params["b2"]  # [B, vocab]
    loss = -jax.nn.log_softmax(logits, axis=1)[jnp.arange(B), Y].mean()
    # backward
    dlogits = cross_entropy_backward(logits, Y)
    dh = dlogits @ params["W2"].T
    dhpreact = (1.0 - h**2) * dh
    dhprebn = batchnorm_backward(dhpreact, bnraw, gamma, bnvar_inv)
    demb = (dhprebn @ params["W1"].T).reshape(emb.shape)
    grads = {
        "C": jnp.zeros_like(params["C"]).at[X].add(demb),
        "W1": embcat.T @ dhprebn,
        "bn": {"gamma": (bnraw * dhpreact).sum(0), "beta": dhpreact.sum(0)},
        "W2": h.T @ dlogits,
        "b2": dlogits.sum(0),
    }
    return loss, grads
