"""Lecture 3's health checks: activation, gradient and update statistics of the MLP family.

From one jitted forward/backward pass (`snapshot`), per hidden layer: the tanh outputs'
mean, std and saturated share (|t| > 0.97), the units saturated (|t| > 0.99) for every
example of the batch ("dead"), and the mean and std of d loss / d t (the lecture's
`layer.out.grad`); per weight matrix std(grad) / std(weight). Over training,
`update_ratios` is a `metrics_fn` for `train.fit`: inside the fused loop it records
log10 std(new - old) / std(old) per weight matrix, which the lecture wants near -3.

Every std here is the population one (ddof 0); the lecture's torch `.std()` is unbiased,
a relative difference of 1/(2n): under 0.2% for every tensor of these models.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import nn
from .losses import cross_entropy
from .models import Model, mlp

SATURATED = 0.97  # |tanh| above this counts as saturated (the lecture's histogram legend)
DEAD = 0.99  # the lecture's white pixels: plt.imshow(h.abs() > 0.99, cmap="gray")
UPDATE_GUIDE = -3.0  # the lecture's rule of thumb for log10 update:data
UPDATE_PREFIX = "log10_update/"  # metric names from update_ratios: prefix + weight name


def supports(model: Model) -> bool:
    """Whether `snapshot` can read the model's layers (the MLP family: mlp, mlp-bn, mlp-deep)."""
    return model.forward is mlp.apply


# ----------------------------------------------------------------------------- weights


def weights(params) -> dict[str, jax.Array]:
    """Every weight matrix (the lecture's `p.ndim == 2`) by path: "C", "layers.0.linear.W", ...

    A GroupNorm's gain and shift are 2-D too ([groups, C / groups]) but are a norm's
    parameters, as BatchNorm's 1-D ones: they are left out.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {_path_name(path): leaf for path, leaf in flat
            if leaf.ndim == 2 and getattr(path[-1], "key", None) not in ("gamma", "beta")}


def _path_name(path) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def grad_data_ratios(params, grads) -> dict[str, jax.Array]:
    """std(grad) / std(weight) per weight matrix: {name: scalar}."""
    g = weights(grads)
    return {name: jnp.std(g[name]) / jnp.std(w) for name, w in weights(params).items()}


def update_ratios(params_before, params_after, grads) -> dict[str, jax.Array]:
    """log10 std(after - before) / std(before) per weight matrix; a `metrics_fn` for train.fit.

    Args:
        params_before, params_after: the parameters around one optimiser step.
        grads: unused (the `metrics_fn` signature); the update is what the optimiser did.
    Returns:
        {UPDATE_PREFIX + weight name: scalar}.
    """
    after = weights(params_after)
    return {UPDATE_PREFIX + name: jnp.log10(jnp.std(after[name] - w) / jnp.std(w))
            for name, w in weights(params_before).items()}


# ----------------------------------------------------------------------------- one forward/backward pass


class Snapshot(NamedTuple):
    loss: jax.Array  # scalar cross-entropy of the batch
    acts: list  # per hidden layer: tanh output [B, n_hidden]
    act_grads: list  # per hidden layer: d loss / d tanh output [B, n_hidden]
    grads: dict  # d loss / d params, the params' tree


def probed_forward(params: dict, state: dict, x: jax.Array, probes: list, *, train: bool = True):
    """mlp.forward with probes[i] added to hidden layer i's tanh output.

    The probes are zeros, so the numbers are mlp.forward's (a test holds the two together);
    the loss's gradient w.r.t. probes[i] is its gradient w.r.t. that tanh output.

    Args:
        x: int [B, block_size]; probes: one [B, n_hidden] array per hidden layer.
    Returns:
        (logits [B, vocab], [tanh output [B, n_hidden] per hidden layer]).
    """
    h = nn.embedding(params["C"], x).reshape(x.shape[0], -1)  # [B, block_size * n_embd]
    layer_states = state.get("layers", [None] * len(params["layers"]))
    acts = []
    for layer, layer_state, probe in zip(params["layers"], layer_states, probes, strict=True):
        h = nn.tanh(mlp.block(layer, layer_state, h, train=train)[0])
        acts.append(h)
        h = h + probe
    logits, _ = mlp.block(params["out"], state.get("out"), h, train=train)
    return logits, acts


@jax.jit
def snapshot(params: dict, state: dict, x: jax.Array, y: jax.Array) -> Snapshot:
    """One forward/backward pass in train mode (batch statistics), as the lecture's plots.

    Args:
        params, state: an MLP-family model's (see `supports`).
        x: int [B, block_size]; y: int [B].
    Returns:
        Snapshot of the loss, each layer's tanh outputs and their gradients, the param gradients.
    """
    probes = [jnp.zeros((x.shape[0], layer["linear"]["W"].shape[1])) for layer in params["layers"]]

    def loss_of(params, probes):
        logits, acts = probed_forward(params, state, x, probes)
        return cross_entropy(logits, y), acts

    (loss, acts), (grads, act_grads) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(params, probes)
    return Snapshot(loss, acts, act_grads, grads)


# ----------------------------------------------------------------------------- statistics


def activation_stats(acts: list) -> dict[str, np.ndarray]:
    """Per layer: mean, std, saturated share (|t| > SATURATED) and dead units (|t| > DEAD on every row).

    Args:
        acts: one tanh output [B, n_hidden] per layer.
    Returns:
        {"mean", "std", "saturated", "dead"}, each [n_layers] (dead: a count of units).
    """
    rows = [(jnp.mean(a), jnp.std(a), jnp.mean(jnp.abs(a) > SATURATED), jnp.sum(jnp.all(jnp.abs(a) > DEAD, axis=0)))
            for a in acts]
    return {k: np.asarray(v) for k, v in zip(("mean", "std", "saturated", "dead"), zip(*rows))}


def gradient_stats(act_grads: list) -> dict[str, np.ndarray]:
    """Per layer: {"mean", "std"} [n_layers] of d loss / d tanh output."""
    rows = [(jnp.mean(g), jnp.std(g)) for g in act_grads]
    return {k: np.asarray(v) for k, v in zip(("mean", "std"), zip(*rows))}


def table_rows(params: dict, snap: Snapshot, updates: dict[str, np.ndarray] | None = None) -> list[dict]:
    """The report as rows: one per weight matrix, the hidden layers' with their activation stats.

    Args:
        updates: fit's summary["metrics"] with update_ratios (its last value per weight is
            the "log10 update" column), or None.
    Returns:
        [{"layer", "weight", "shape", "grad:data", "log10 update", and for hidden layers
          "act mean", "act std", "saturated", "dead", "grad mean", "grad std"}] (floats or None).
    """
    acts, grads = activation_stats(snap.acts), gradient_stats(snap.act_grads)
    ratios = grad_data_ratios(params, snap.grads)
    rows = []
    for name, w in weights(params).items():
        parts = name.split(".")
        layer = int(parts[1]) if parts[0] == "layers" else None
        last = (updates or {}).get(UPDATE_PREFIX + name)
        row = {"layer": f"{layer + 1} (tanh)" if layer is not None else parts[0], "weight": name,
               "shape": list(w.shape), "grad:data": float(ratios[name]),
               "log10 update": float(last[-1]) if last is not None and len(last) else None}
        if layer is not None:
            row.update({"act mean": float(acts["mean"][layer]), "act std": float(acts["std"][layer]),
                        "saturated": float(acts["saturated"][layer]), "dead": int(acts["dead"][layer]),
                        "grad mean": float(grads["mean"][layer]), "grad std": float(grads["std"][layer])})
        rows.append(row)
    return rows


_COLUMNS = [  # header, key, format
    ("layer", "layer", "{}"), ("act mean", "act mean", "{:+.3f}"), ("act std", "act std", "{:.3f}"),
    ("saturated", "saturated", "{:.2%}"), ("dead", "dead", "{}"), ("grad mean", "grad mean", "{:+.2e}"),
    ("grad std", "grad std", "{:.2e}"), ("weight", "shape", "{}"), ("grad:data", "grad:data", "{:.2e}"),
    ("log10 update", "log10 update", "{:+.2f}"),
]


def format_table(rows: list[dict]) -> str:
    """The rows of `table_rows` as aligned text, one line per weight matrix."""
    cells = [[h for h, _, _ in _COLUMNS]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else
                      (fmt.format(tuple(row[k])) if k == "shape" else fmt.format(row[k])) for _, k, fmt in _COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in cells)
