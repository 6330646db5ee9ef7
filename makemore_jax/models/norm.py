"""The normalisation choice of the MLP family and WaveNet: a config's `norm` -> one layer.

    "batch": nn.batchnorm, statistics over the batch (and time), running statistics as state
    "layer": nn.layernorm, over each row's channels
    "group": nn.groupnorm, over each row's channel groups
    "rms":   nn.rmsnorm, each row's root mean square, a gain and no shift
    "none":  no normalisation

A model's layer dict holds the norm's parameters under the key that names it (KEYS), so
`apply` reads which norm a layer has from its parameters alone. Only BatchNorm has state;
the others are functions of one example, so train and eval mode give the same output.

Bias rule (the lectures' "no bias before BatchNorm", extended): a linear layer carries a
bias exactly when the norm after it has no shift of its own. BatchNorm removes a bias
exactly (the batch mean subtracts it); LayerNorm and GroupNorm remove its mean over the
row or group and add a learned beta after normalising, which is the shift the layer keeps
(as in GPT-style transformers); RMSNorm neither centres nor shifts, so the bias stays.
"""

from __future__ import annotations

import jax

from .. import nn
from ..settings import SettingError

NORMS = ("batch", "layer", "group", "rms", "none")
KEYS = {"batch": "bn", "layer": "ln", "group": "gn", "rms": "rms"}  # norm -> its params' key in a layer dict
SHIFTED = ("batch", "layer", "group")  # norms with a beta: the linear layer before them has no bias


def check(norm: str, groups: int, widths: dict[str, int]) -> None:
    """Raise ValueError unless `norm` is known and, for "group", `groups` divides every width."""
    if norm not in NORMS:
        raise SettingError("norm", f"must be one of {', '.join(NORMS)}, got {norm!r}")
    if groups < 1:
        raise SettingError("groups", f"must be at least 1, got {groups}")
    for name, width in widths.items():
        if norm == "group" and width % groups:
            raise SettingError("groups", f"({groups}) must divide {name} ({width}) for norm 'group'")


def has_bias(norm: str) -> bool:
    """Whether a linear layer followed by `norm` carries a bias (see the module docstring)."""
    return norm not in SHIFTED


def init(norm: str, n: int, *, groups: int = 1, gamma: float = 1.0) -> tuple[dict, dict | None]:
    """One norm layer of width n: ({KEYS[norm]: params} or {}, BatchNorm state or None).

    gamma scales the initial gain (BatchNorm's, LayerNorm's, GroupNorm's or RMSNorm's).
    """
    if norm == "none":
        return {}, None
    if norm == "batch":
        params, state = nn.batchnorm_init(n, gamma=gamma)
        return {KEYS[norm]: params}, state
    params = {"layer": lambda: nn.layernorm_init(n), "group": lambda: nn.groupnorm_init(n, groups),
              "rms": lambda: nn.rmsnorm_init(n)}[norm]()
    params = {**params, "gamma": params["gamma"] * gamma}
    return {KEYS[norm]: params}, None


def apply(layer: dict, state: dict | None, x: jax.Array, *, train: bool,
          **bn_options) -> tuple[jax.Array, dict | None]:
    """The norm `layer` holds applied to x [..., C]: (y with x's shape, new BatchNorm state or None).

    Args:
        layer: a model's layer dict; at most one of KEYS' values among its keys.
        state: the BatchNorm's {"mean", "var"}, or None for the stateless norms.
        x: [..., C]; BatchNorm reduces over every axis but the last, the others per row.
        train: BatchNorm's mode (the other norms ignore it).
        **bn_options: passed to nn.batchnorm.
    """
    if "bn" in layer:
        return nn.batchnorm(layer["bn"], state, x, train=train, **bn_options)
    if "ln" in layer:
        return nn.layernorm(layer["ln"], x), None
    if "gn" in layer:
        return nn.groupnorm(layer["gn"], x), None
    if "rms" in layer:
        return nn.rmsnorm(layer["rms"], x), None
    return x, None
