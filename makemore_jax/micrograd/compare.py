"""The micrograd MLP as a pure JAX function, and its gradients checked against jax.grad.

Enable float64 (jax.config.update("jax_enable_x64", True)) before calling these for a
comparison at micrograd's own precision; in float32 the differences are ~1e-6 relative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from makemore_jax.micrograd.demos import max_margin_loss, sse_loss
from makemore_jax.micrograd.engine import Value
from makemore_jax.micrograd.nn import MLP

LOSSES = ("sse", "max_margin")
_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}

# ----------------------------------------------------------------------------- the bridge


def mlp_params(mlp: MLP) -> list[dict[str, jax.Array]]:
    """The MLP's weights as a pytree.

    Args:
        mlp: a micrograd MLP.

    Returns:
        One {"W": (nout, nin), "b": (nout,)} dict per layer, in the default float dtype.
    """
    return _layer_tree(mlp, lambda v: v.data, jnp.asarray)


def mlp_grads(mlp: MLP) -> list[dict[str, np.ndarray]]:
    """The .grad of every MLP weight as float64 numpy arrays, laid out as mlp_params."""
    return _layer_tree(mlp, lambda v: v.grad, lambda a: np.asarray(a, np.float64))


def _layer_tree(mlp, get, asarray):
    return [{"W": asarray([[get(w) for w in n.w] for n in layer.neurons]),
             "b": asarray([get(n.b) for n in layer.neurons])} for layer in mlp.layers]


def mlp_apply(params: list[dict[str, jax.Array]], x: ArrayLike, *, nonlin: str = "relu",
              linear_out: bool = True) -> jax.Array:
    """The micrograd MLP as a pure function (defaults: the moons MLP's activations).

    Args:
        params: the pytree from mlp_params.
        x: (..., nin) inputs, one example or a batch.
        nonlin: the MLP's activation, "relu", "tanh" or "sigmoid".
        linear_out: whether the last layer skips the activation.

    Returns:
        (..., nout) outputs, or (...) when the last layer has one output, as micrograd
        returns a single Value then.
    """
    h = jnp.asarray(x)
    for i, layer in enumerate(params):
        h = h @ layer["W"].T + layer["b"]  # (..., nout)
        if not (linear_out and i == len(params) - 1):
            h = _ACTIVATIONS[nonlin](h)
    return h[..., 0] if h.shape[-1] == 1 else h


# ----------------------------------------------------------------------------- the losses, both ways


def loss_micrograd(mlp: MLP, xs: Sequence[Sequence[float]], ys: Sequence[float], *, loss: str = "sse",
                   alpha: float = 1e-4) -> Value:
    """The loss of the micrograd MLP on (xs, ys): "sse" (lecture) or "max_margin" (moons)."""
    _check_loss(loss)
    scores = [mlp([float(v) for v in x]) for x in xs]
    ys = [float(y) for y in ys]
    return sse_loss(scores, ys) if loss == "sse" else max_margin_loss(scores, ys, mlp.parameters(), alpha)


def loss_jax(params: list[dict[str, jax.Array]], xs: ArrayLike, ys: ArrayLike, *, loss: str = "sse",
             nonlin: str = "relu", linear_out: bool = True, alpha: float = 1e-4) -> jax.Array:
    """The same loss as loss_micrograd, a pure function of params (xs: (B, nin), ys: (B,))."""
    _check_loss(loss)
    scores = mlp_apply(params, xs, nonlin=nonlin, linear_out=linear_out)  # (B,)
    ys = jnp.asarray(ys, scores.dtype)
    if loss == "sse":
        return jnp.sum((scores - ys) ** 2)
    l2 = sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
    return jnp.mean(jax.nn.relu(1.0 - ys * scores)) + alpha * l2


# One compilation per shape instead of one per primitive op, as eager jax.grad would do.
_loss_and_grads_jax = jax.jit(jax.value_and_grad(loss_jax), static_argnames=("loss", "nonlin", "linear_out"))


def _check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")


# ----------------------------------------------------------------------------- the comparison


class GradientComparison(NamedTuple):
    """The result of compare_gradients; the dicts are keyed "layers[i].W" / "layers[i].b"."""

    loss_micrograd: float
    loss_jax: float
    max_abs_diff: dict[str, float]  # max |g_micrograd - g_jax| over the tensor
    max_rel_diff: dict[str, float]  # max_abs_diff / max |g_jax| over the same tensor


def compare_gradients(mlp: MLP, xs: Sequence[Sequence[float]], ys: Sequence[float], *, loss: str = "sse",
                      alpha: float = 1e-4) -> GradientComparison:
    """Compute the loss and its parameter gradients in micrograd and with jax.grad.

    The relative difference is taken against the tensor's largest gradient entry, not
    elementwise, so that entries that are (nearly) zero don't divide by zero.

    Args:
        mlp: a micrograd MLP; its .grad fields are overwritten.
        xs: (B, nin) inputs. ys: (B,) targets (labels in {-1, +1} for "max_margin").
        loss: "sse" or "max_margin". alpha: the L2 weight of "max_margin".

    Returns:
        A GradientComparison with both loss values and the differences per tensor.
    """
    value = loss_micrograd(mlp, xs, ys, loss=loss, alpha=alpha)
    mlp.zero_grad()
    value.backward()
    value_jax, grads_jax = _loss_and_grads_jax(mlp_params(mlp), jnp.asarray(xs), jnp.asarray(ys), loss=loss,
                                               nonlin=mlp.nonlin, linear_out=mlp.linear_out, alpha=alpha)
    abs_diff, rel_diff = {}, {}
    for i, (mine, theirs) in enumerate(zip(mlp_grads(mlp), grads_jax)):
        for name in ("W", "b"):
            a, b = mine[name], np.asarray(theirs[name], np.float64)
            key = f"layers[{i}].{name}"
            abs_diff[key] = float(np.max(np.abs(a - b)))
            rel_diff[key] = abs_diff[key] / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
    return GradientComparison(value.data, float(value_jax), abs_diff, rel_diff)
