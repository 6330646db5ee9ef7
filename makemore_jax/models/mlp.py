"""The Bengio et al. (2003) MLP and its lecture variants: mlp, mlp-bn and mlp-deep.

    C[x] -> concat -> n_layers x [linear -> (norm) -> tanh] -> linear -> (out norm)

`norm` picks the normalisation (models/norm.py): BatchNorm as the lectures, or LayerNorm,
GroupNorm, RMSNorm, none. A linear layer carries a bias only when the norm after it has no
shift of its own (none, rms): BatchNorm's, LayerNorm's and GroupNorm's beta does that job.
Parameters and state are nested dicts, the norm's parameters under its key (bn, ln, gn, rms):

    params = {"C": [vocab, n_embd],
              "layers": [{"linear": {"W", "b"?}, "bn"|"ln"|"gn"|"rms"?: {"gamma", "beta"?}}, ...],
              "out": {"linear": {"W", "b"?}, "bn"|"ln"|"rms"?: {...}}}
    state  = {"layers": [{"mean", "var"}, ...], "out": {...}}   (only where a BatchNorm is; else {})

`calibrate` recomputes the BatchNorm statistics over a whole split after training.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .. import nn
from ..settings import SettingError
from . import norm as norms

INITS = ("unit", "scaled", "fan-in", "kaiming")


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 27
    block_size: int = 3  # characters of context
    n_embd: int = 10  # embedding size per character
    n_hidden: int = 200  # width of every hidden layer
    n_layers: int = 1  # hidden layers
    norm: str = "none"  # after each hidden linear layer: batch, layer, group, rms or none
    out_norm: bool = False  # the same norm after the output layer (lecture 3's deep net); group: one group
    groups: int = 4  # channel groups of norm "group"; must divide n_hidden
    # Initialisation, from the lectures:
    #   "unit":    every weight and bias N(0, 1) (lecture 2; initial loss ~27)
    #   "scaled":  hidden W x 0.2, hidden b x 0.01, output W x 0.01, output b = 0 (lecture 3)
    #   "fan-in":  hidden W / sqrt(fan_in) without the tanh gain, otherwise as "kaiming"
    #   "kaiming": hidden W x (5/3)/sqrt(fan_in), hidden b x 0.01, output W x 0.01, b = 0;
    #              with an output norm: output W kaiming too and its gamma x 0.1
    init: str = "kaiming"

    def __post_init__(self):
        if self.init not in INITS:
            raise SettingError("init", f"must be one of {', '.join(INITS)}, got {self.init!r}")
        for name in ("vocab_size", "block_size", "n_embd", "n_hidden", "n_layers"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        norms.check(self.norm, self.groups, {"n_hidden": self.n_hidden})

    @property
    def out_kind(self) -> str:
        """The output layer's norm: `norm` when out_norm, "none" otherwise.

        GroupNorm becomes LayerNorm (one group) there: the vocabulary has no channel groups,
        and its size (27) rarely divides by the hidden layers' group count.
        """
        if not self.out_norm:
            return "none"
        return "layer" if self.norm == "group" else self.norm

    @property
    def batchnorm(self) -> bool:
        """Whether the hidden layers' norm is BatchNorm (read by the PyTorch references)."""
        return self.norm == "batch"

    @property
    def out_batchnorm(self) -> bool:
        """Whether the output layer has a BatchNorm (read by the PyTorch references)."""
        return self.out_kind == "batch"


def upgrade_config(config: dict) -> dict:
    """An old checkpoint's mlp config dict ("batchnorm", "out_batchnorm" bools) in today's fields.

    batchnorm True -> norm "batch" (False -> "none"), out_batchnorm -> out_norm; a dict that
    has neither comes back equal.
    """
    config = dict(config)
    if "batchnorm" in config:
        config["norm"] = "batch" if config.pop("batchnorm") else "none"
    if "out_batchnorm" in config:
        config["out_norm"] = bool(config.pop("out_batchnorm"))
    return config


def _hidden_scales(config: Config, fan_in: int) -> tuple[float, float]:
    """(weight scale, bias scale) of a hidden linear layer."""
    return {
        "unit": (1.0, 1.0),
        "scaled": (0.2, 0.01),
        "fan-in": (1 / math.sqrt(fan_in), 0.01),
        "kaiming": (nn.TANH_GAIN / math.sqrt(fan_in), 0.01),
    }[config.init]


def init(key: jax.Array, config: Config) -> tuple[dict, dict]:
    """Returns (params, state) as in the module docstring."""
    key_c, key_out, *layer_keys = jax.random.split(key, config.n_layers + 2)
    params = {"C": nn.embedding_init(key_c, config.vocab_size, config.n_embd), "layers": []}
    state: dict = {}
    fan_in = config.block_size * config.n_embd
    for layer_key in layer_keys:
        w_scale, b_scale = _hidden_scales(config, fan_in)
        layer = {"linear": nn.linear_init(layer_key, fan_in, config.n_hidden, bias=norms.has_bias(config.norm),
                                          scale=w_scale, bias_scale=b_scale)}
        norm_params, bn_state = norms.init(config.norm, config.n_hidden, groups=config.groups)
        if bn_state is not None:
            state.setdefault("layers", []).append(bn_state)
        params["layers"].append({**layer, **norm_params})
        fan_in = config.n_hidden

    out_kind = config.out_kind
    if config.init == "unit":
        w_scale, b_scale, gamma = 1.0, 1.0, 1.0
    elif out_kind != "none":
        w_scale, b_scale, gamma = _hidden_scales(config, fan_in)[0], 0.0, 0.1
    else:
        w_scale, b_scale, gamma = 0.01, 0.0, 1.0
    params["out"] = {"linear": nn.linear_init(key_out, fan_in, config.vocab_size, bias=norms.has_bias(out_kind),
                                              scale=w_scale, bias_scale=b_scale)}
    norm_params, bn_state = norms.init(out_kind, config.vocab_size, gamma=gamma)
    params["out"].update(norm_params)
    if bn_state is not None:
        state["out"] = bn_state
    return params, state


def block(params: dict, state: dict | None, h: jax.Array, *, train: bool, **bn_options):
    """linear -> optional norm; returns (pre-activation, new batchnorm state or None)."""
    return norms.apply(params, state, nn.linear(params["linear"], h), train=train, **bn_options)


def embed(params: dict, x: jax.Array) -> jax.Array:
    """x int [B, block_size] -> the concatenated embeddings [B, block_size * n_embd]."""
    return nn.embedding(params["C"], x).reshape(x.shape[0], -1)


def forward(params: dict, state: dict, x: jax.Array, *, train: bool, **bn_options):
    """`apply` that also returns each hidden layer's pre-activation and tanh output.

    Args:
        params, state: as `init` makes them.
        x: int [B, block_size].
        train: BatchNorm on batch statistics, updating the state (True), or on the running ones;
            the other norms are the same in both modes.
        **bn_options: passed to every `nn.batchnorm` (momentum, eps, unbiased_running_var,
            fused_backward); their defaults otherwise.
    Returns:
        (logits [B, vocab], new_state, [(preact [B, n_hidden], act [B, n_hidden]), ...]).
    """
    return forward_embedded(params, state, embed(params, x), train=train, **bn_options)


def forward_embedded(params: dict, state: dict, h: jax.Array, *, train: bool, **bn_options):
    """`forward` from the concatenated embeddings h [B, block_size * n_embd] (see `embed`).

    A function of the embedded inputs, so that jax.jacobian can ask how one example's logits
    depend on another example's input (they do only through BatchNorm's batch statistics).
    """
    layer_states = state.get("layers", [None] * len(params["layers"]))
    new_state: dict = {}
    activations = []
    for layer, layer_state in zip(params["layers"], layer_states):
        preact, bn_state = block(layer, layer_state, h, train=train, **bn_options)
        if bn_state is not None:
            new_state.setdefault("layers", []).append(bn_state)
        h = nn.tanh(preact)
        activations.append((preact, h))
    logits, bn_state = block(params["out"], state.get("out"), h, train=train, **bn_options)
    if bn_state is not None:
        new_state["out"] = bn_state
    return logits, new_state, activations


def apply(params: dict, state: dict, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    """x int [B, block_size] -> (logits [B, vocab], new_state); train mode updates BatchNorm state."""
    logits, new_state, _ = forward(params, state, x, train=train)
    return logits, new_state


# ----------------------------------------------------------------------------- calibration


def calibrate(params: dict, state: dict, X: jax.typing.ArrayLike) -> dict:
    """Every BatchNorm's running statistics recomputed over a whole split (lecture 3's calibration).

    The statistics a layer needs in eval mode are those of its inputs *as eval mode makes
    them*: produced by the layers before it normalising with their calibrated statistics.
    So the layers are calibrated in order, each from the outputs of those already
    calibrated; measuring every layer at once behind the old running statistics would give
    it the statistics of inputs it will no longer see. One train-mode forward over all of X
    with momentum 1 is that sequential calibration in one pass: each layer normalises with
    the statistics of the whole split, which are exactly what it stores, so the next layer
    sees what it will see in eval mode (up to the stored variance being the unbiased one, a
    relative 1 / (2N) in the scale). For the single-BatchNorm `mlp-bn` this is the lecture's
    `bnmean = hpreact.mean(0); bnvar = hpreact.var(0)` over the training set.

    Memory: the pass works on all of X at once, an [N, n_hidden] array per layer at its
    peak (about 140 MB for mlp-bn on the names' training split in float32).

    Args:
        params: a trained model's parameters.
        state: its state (only the structure is used; {} for models without BatchNorm, which
            come back {} at once: the stateless norms have nothing to calibrate).
        X: int [N, block_size], e.g. the whole training split, N >= 2.
    Returns:
        the new state, same structure: per BatchNorm {"mean", "var" (unbiased)} of its input over X.
    """
    if not state:
        return state
    return _calibrated_state(params, state, jnp.asarray(X))


@jax.jit
def _calibrated_state(params: dict, state: dict, X: jax.Array) -> dict:
    return forward(params, state, X, train=True, momentum=1.0)[1]  # logits and activations: dropped by XLA
