"""The lectures' hierarchical WaveNet-style model (lecture 5, "building makemore part 5").

    C[x] -> log2(block_size) x [flatten 2 consecutive -> linear -> norm -> tanh] -> linear -> logits

With block_size 8: [B, 8] -> [B, 8, n_embd] -> [B, 4, 2 n_embd] -> [B, 4, H] -> [B, 2, 2H]
-> [B, 2, H] -> [B, 1, 2H] -> [B, H] -> [B, vocab]. `norm` picks the normalisation
(models/norm.py; BatchNorm by default, as the lecture): BatchNorm's statistics are over
batch and time (every row of its [B, T, H] input), as the lecture's BatchNorm1d with
dim=(0, 1); LayerNorm and RMSNorm normalise over H per position, GroupNorm over channel
groups per position. The linear layers have a bias only before a norm without a shift
(rms, none), zero at first. Initialisation as the lecture: C ~ N(0, 1), linear weights N(0, 1) / sqrt(fan_in),
the output weights then x 0.1, its bias 0, BatchNorm gamma 1, beta 0.

The computation keeps every activation in a 2-D (B*T, C) layout: the rows of one example
are consecutive, so "flatten 2 consecutive positions" is a free reshape [B*T, C] ->
[B*T/2, 2C] and every linear layer is one 2-D matmul. The embedding is folded into the
first linear layer: with W1 = [W_even; W_odd] (rows for the even / the odd position of a
pair), emb_pair @ W1 = (C @ W_even)[x_even] + (C @ W_odd)[x_odd], two row gathers from
[vocab, H] tables instead of a gather and a [B*T/2, 2 n_embd] matmul. The BatchNorms use
nn.batchnorm's fused backward. Its speed against the plain layout: benchmarks/RESULTS.md.

    params = {"C": [vocab, n_embd],
              "layers": [{"W": [2 fan_in, n_hidden], "b"?: [n_hidden],
                          "bn"|"ln"|"gn"|"rms"?: {"gamma", "beta"?}}, ...],
              "out": {"W": [n_hidden, vocab], "b": [vocab]}}
    state  = {"layers": [{"mean", "var"} [n_hidden], ...]} with BatchNorm, else {}
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import nn
from ..settings import SettingError
from . import norm as norms


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 27
    block_size: int = 8  # characters of context; a power of 2, one layer per halving
    n_embd: int = 24  # embedding size per character
    n_hidden: int = 128  # width of every hidden layer
    norm: str = "batch"  # after each hidden linear layer: batch, layer, group, rms or none
    groups: int = 4  # channel groups of norm "group"; must divide n_hidden

    def __post_init__(self):
        for name in ("vocab_size", "n_embd", "n_hidden"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.block_size < 2 or self.block_size & (self.block_size - 1):
            raise SettingError("block_size", f"must be a power of 2 (at least 2) for wavenet, got {self.block_size}")
        norms.check(self.norm, self.groups, {"n_hidden": self.n_hidden})

    @property
    def n_layers(self) -> int:
        return self.block_size.bit_length() - 1


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, state) as in the module docstring."""
    key_c, key_out, *layer_keys = jax.random.split(key, config.n_layers + 2)
    params = {"C": nn.embedding_init(key_c, config.vocab_size, config.n_embd), "layers": []}
    bn_states = []
    fan_in = 2 * config.n_embd
    for layer_key in layer_keys:
        layer = nn.linear_init(layer_key, fan_in, config.n_hidden, bias=norms.has_bias(config.norm),
                               scale=1 / math.sqrt(fan_in))
        norm_params, bn_state = norms.init(config.norm, config.n_hidden, groups=config.groups)
        params["layers"].append({**layer, **norm_params})
        if bn_state is not None:
            bn_states.append(bn_state)
        fan_in = 2 * config.n_hidden
    state = {"layers": bn_states} if bn_states else {}
    params["out"] = nn.linear_init(key_out, config.n_hidden, config.vocab_size, scale=0.1 / math.sqrt(config.n_hidden))
    return params, state


def _first_preact(params: dict, x: jax.Array) -> jax.Array:
    """The first linear layer on the embedded pairs, embedding folded in: x [B, T] -> [B*T/2, H]."""
    C, W = params["C"], params["layers"][0]["W"]
    n_embd = C.shape[1]
    pairs = x.reshape(-1, 2)  # [B*T/2, 2]: (even, odd) position of each consecutive pair
    return (C @ W[:n_embd])[pairs[:, 0]] + (C @ W[n_embd:])[pairs[:, 1]]


def _hidden(params: dict, state: dict, x: jax.Array, *, train: bool, stop_at: int | None = None,
            **bn_options) -> tuple[jax.Array, list]:
    """The hidden layers: (tanh output [B, H] of the last, the new BatchNorm states, [] without).

    With stop_at=l it returns layer l's norm input [B*T_l, H] instead (and the states of
    the layers before it): what `calibrate` measures. `bn_options` go to every
    nn.batchnorm (benchmarks/wavenet_layout.py turns its fused backward off with them).
    """
    h, new_states = None, []
    bn_states = state.get("layers", [None] * len(params["layers"]))
    for i, (layer, bn_state) in enumerate(zip(params["layers"], bn_states)):
        # [B*T, C] -> [B*T/2, 2C]: the rows of an example are consecutive, so this flattens pairs of positions
        preact = _first_preact(params, x) if i == 0 else h.reshape(-1, 2 * h.shape[1]) @ layer["W"]
        if "b" in layer:
            preact = preact + layer["b"]
        if i == stop_at:
            return preact, new_states
        y, new_bn_state = norms.apply(layer, bn_state, preact, train=train, **bn_options)  # per row: per position
        if new_bn_state is not None:
            new_states.append(new_bn_state)
        h = nn.tanh(y)
    return h, new_states


def apply(params: dict, state: dict, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    """x int [B, block_size] -> (logits [B, vocab], new_state); train mode updates BatchNorm state."""
    h, new_states = _hidden(params, state, x, train=train)  # h: [B, n_hidden] after the last halving
    return nn.linear(params["out"], h), {"layers": new_states} if new_states else {}


# ----------------------------------------------------------------------------- calibration


def calibrate(params: dict, state: dict, X: jax.typing.ArrayLike, *, chunk: int = 16384) -> dict:
    """Every BatchNorm's running statistics recomputed over a whole split (lecture 3's calibration).

    Layer by layer, in order: layer l's statistics are those of its inputs over all of X
    with the layers before it normalising with their already calibrated statistics (as
    eval mode will), as mlp.calibrate explains. The split goes through in chunks, so the
    memory is one chunk's activations whatever the split's size; the chunks' means and
    centred sums of squares are merged exactly (Chan et al.'s pairwise update).

    Args:
        params: a trained model's parameters.
        state: its state (only the structure is used; {} comes back as it is).
        X: int [N, block_size], e.g. the whole training split, N >= 1.
        chunk: examples per chunk.
    Returns:
        the new state: per BatchNorm {"mean", "var" (unbiased)} over every row (batch and time).
    """
    if not state:  # no BatchNorm: the stateless norms have nothing to calibrate
        return state
    X = np.asarray(X)
    layers = list(state["layers"])
    for i in range(len(layers)):
        count, mean, m2 = 0, 0.0, 0.0
        for start in range(0, len(X), chunk):
            n, m, s = jax.device_get(_chunk_moments(params, {"layers": layers}, jnp.asarray(X[start:start + chunk]), i))
            delta = m - mean
            mean = mean + delta * n / (count + n)
            m2 = m2 + s + delta**2 * count * n / (count + n)
            count += n
        dtype = layers[i]["mean"].dtype
        layers[i] = {"mean": jnp.asarray(mean, dtype), "var": jnp.asarray(m2 / max(count - 1, 1), dtype)}
    return {"layers": layers}


@functools.partial(jax.jit, static_argnums=3)
def _chunk_moments(params: dict, state: dict, x: jax.Array, layer: int):
    """(rows, mean [H], centred sum of squares [H]) of layer `layer`'s BatchNorm input, eval mode before it."""
    preact = _hidden(params, state, x, train=False, stop_at=layer)[0]
    mean = jnp.mean(preact, axis=0)
    return preact.shape[0], mean, jnp.sum(jnp.square(preact - mean), axis=0)
