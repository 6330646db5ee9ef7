"""The model registry: one entry per `--model` name.

Every model is a frozen, hashable `Config` dataclass (with `vocab_size` and `block_size`)
and two pure functions:

    init(key, config) -> (params, state)
    apply(params, state, x, *, train) -> (logits, new_state)

`Model` holds that core plus the data kind it trains on (`dataset`, a name in
`data.KINDS`) and, for a text model, its default tokenizer (`tokenizer`; tokens.py). A
registry default may depend on the backend (`PerBackend`, gpt2's dtype): `make_config`
resolves it. What only some models can do is an ability record of its own (`ClosedForm`,
`Decoder`, `Calibration`, `Penalty`, `ParamLabels`, `ConfigUpgrade`), held in
`Model.abilities` and looked up with `model.ability(Decoder)`; `Flops` says what a token costs.

The one way to get a model's apply is `model.bind(config)`, for every model alike: the
module's own function (`Model.forward`) may take its config as a keyword (the transformer:
its dropout rate and options), and bind fixes it there, so no hyperparameter lives in the
state. The bound function is equal and hashed by value, so jit caches see one per config.

    model = models.get("transformer"); config = model.make_config(vocab_size=27)
    params, state = model.init(jax.random.key(0), config)
    logits, state = model.bind(config)(params, state, x, train=False)   # = model.apply(..., config=config)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from ..kinds import KINDS
from . import bigram, bow, gpt, gpt2, mlp, rnn, speedrun, transformer, wavenet
from .backend import PerBackend
from .labels import GENERIC, MATRIX, OTHER, ParamLabels  # noqa: F401 (the optimiser's vocabulary)

# ----------------------------------------------------------------------------- abilities


class ClosedForm(NamedTuple):
    """Fitted in closed form instead of by gradients: fit(config, X, Y) -> params."""

    fit: Callable


class Decoder(NamedTuple):
    """Cached sampling, one new token per call instead of a rerun of the prefix.

    init_cache(params, config, n) -> cache pytree (key/value buffers, a hidden state);
    decode_step(params, state, cache, token int32 [n], pos) -> (logits [n, vocab], cache).
    """

    init_cache: Callable
    decode_step: Callable


class Calibration(NamedTuple):
    """BatchNorm statistics recomputed over a split: calibrate(params, state, X) -> state."""

    calibrate: Callable


class Penalty(NamedTuple):
    """A term added to the training loss: penalty(params, config) -> scalar."""

    penalty: Callable


class ConfigUpgrade(NamedTuple):
    """An old checkpoint's config in today's fields: upgrade(config dict, saved params state dict) -> config dict."""

    upgrade: Callable


class Flops(NamedTuple):
    """Rows of block_size tokens, each costing per_token(config) FLOPs to train (forward and backward) in
    matmuls of dtype(config) ("float32", "bfloat16"): tokens/s and MFU on the progress line (throughput.py)."""

    per_token: Callable
    dtype: Callable


# ParamLabels (labels.py): which parameters are weight matrices, for the optimiser; GENERIC without one.

Ability = TypeVar("Ability")


class Bound(functools.partial):
    """A model's forward with its config bound; equal (and hashed) by value: jit caches see one per config."""

    def __eq__(self, other):
        return (isinstance(other, Bound) and self.func is other.func and self.args == other.args
                and self.keywords == other.keywords)

    def __hash__(self):
        return hash((self.func, self.args, tuple(sorted(self.keywords.items()))))


def bind_config(fn: Callable, config) -> Callable:
    """fn with its keyword `config` bound (a `Bound`), or fn itself when it takes none."""
    if "config" in inspect.signature(fn).parameters:
        return Bound(fn, config=config)
    return fn


# ----------------------------------------------------------------------------- the record


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    name: str
    Config: type
    init: Callable
    forward: Callable  # the module's function: apply(params, state, x, *, train), maybe with a keyword `config`
    dataset: str = "context"  # the data kind it trains on (data.KINDS)
    description: str = ""
    config_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # overrides of Config's defaults
    train_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # overrides of TrainConfig's
    abilities: tuple = ()  # ability records (ClosedForm, Decoder, Calibration, Penalty, ParamLabels, ConfigUpgrade)
    tokenizer: str | None = None  # a text model's default tokenizer setting (tokens.py); None: the kind's (char)

    def __post_init__(self):
        if self.dataset not in KINDS:
            raise ValueError(f"{self.name}: dataset must be one of {', '.join(KINDS)}, got {self.dataset!r}")
        if self.tokenizer is not None and not KINDS[self.dataset].tokenizes:
            raise ValueError(f"{self.name}: a default tokenizer needs running text; {self.dataset} is read by "
                             "character")

    def ability(self, kind: type[Ability]) -> Ability | None:
        """The model's record of this ability type, or None."""
        return next((a for a in self.abilities if isinstance(a, kind)), None)

    def with_ability(self, record) -> Model:
        """This model with `record` replacing its ability of the same type."""
        kept = tuple(a for a in self.abilities if not isinstance(a, type(record)))
        return dataclasses.replace(self, abilities=(*kept, record))

    def bind(self, config) -> Callable:
        """The protocol's apply(params, state, x, *, train) -> (logits, state) for this config."""
        return bind_config(self.forward, config)

    def apply(self, params, state, x, *, train: bool, config) -> tuple[Any, Any]:
        """(logits, new_state) of x under `config`: self.bind(config)(params, state, x, train=train)."""
        return self.bind(config)(params, state, x, train=train)

    @property
    def param_labels(self) -> ParamLabels:
        """The optimiser's view of the parameters (labels.py): the model's own, or GENERIC."""
        return self.ability(ParamLabels) or GENERIC

    def upgrade_config(self, config: dict, params: dict) -> dict:
        """A saved config dict in today's fields (its ConfigUpgrade), given the saved params state dict."""
        upgrade = self.ability(ConfigUpgrade)
        return upgrade.upgrade(config, params) if upgrade else dict(config)

    @property
    def kind(self):
        """The data kind record (data.KINDS[self.dataset])."""
        return KINDS[self.dataset]

    def make_config(self, *, words: Sequence[str] | None = None, **overrides) -> Any:
        """The Config with the model's defaults, then `overrides`.

        Given the data's `words`, the data kind may set a default block_size (a "sequence"
        model's is the longest word + 1, as makemore) unless `overrides` sets it.
        """
        if words is not None and "block_size" not in overrides:
            block_size = self.kind.default_block_size(words)
            if block_size is not None:
                overrides["block_size"] = block_size
        defaults = {k: v.resolve() if isinstance(v, PerBackend) else v  # only those not overridden: no backend
                    for k, v in self.config_defaults.items() if k not in overrides}  # started for the help
        return self.Config(**{**defaults, **overrides})

    def shown_defaults(self) -> dict[str, Any]:
        """Each Config field's default as the help shows it: a PerBackend one as it is (no backend started)."""
        per_backend = {k: v for k, v in self.config_defaults.items() if isinstance(v, PerBackend)}
        config = self.make_config(**{k: v.cpu for k, v in per_backend.items()})
        return {**{name: getattr(config, name) for name in self.config_fields}, **per_backend}

    @property
    def config_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.Config))


def _registry(*models: Model) -> Mapping[str, Model]:
    return MappingProxyType({m.name: m for m in models})


def _mlp_upgrade(config: dict, params: dict) -> dict:
    return mlp.upgrade_config(config)  # renamed fields only: the params are today's


_RNN_DECODER = Decoder(rnn.init_cache, rnn.decode_step)
_MLP_ABILITIES = (Calibration(mlp.calibrate), ConfigUpgrade(_mlp_upgrade))
_TRANSFORMER_ABILITIES = (Decoder(transformer.init_cache, transformer.decode_step), transformer.PARAM_LABELS,
                          ConfigUpgrade(transformer.upgrade_config),
                          Flops(transformer.flops_per_token, lambda config: config.dtype))
REGISTRY = _registry(
    Model("bigram", bigram.CountConfig, bigram.init, bigram.apply, abilities=(ClosedForm(bigram.fit),),
          description="counting bigram: normalised counts with additive smoothing (closed form)"),
    Model("bigram-nn", bigram.NeuralConfig, bigram.neural_init, bigram.neural_apply,
          abilities=(Penalty(bigram.neural_penalty),),
          description="neural bigram: a [vocab, vocab] logits table trained by full-batch gradient descent",
          train_defaults={"steps": 500, "batch_size": None, "lr": 50.0, "lr_decay_step": None}),
    Model("mlp", mlp.Config, mlp.init, mlp.apply, abilities=_MLP_ABILITIES,
          description="Bengio et al. 2003 MLP (lecture 2), with the lecture-3 initialisation by default"),
    Model("mlp-bn", mlp.Config, mlp.init, mlp.apply, abilities=_MLP_ABILITIES,
          config_defaults={"norm": "batch"},
          description="the MLP with BatchNorm after the hidden layer (lecture 3)"),
    Model("mlp-deep", mlp.Config, mlp.init, mlp.apply, abilities=_MLP_ABILITIES,
          config_defaults={"n_hidden": 100, "n_layers": 5, "norm": "batch", "out_norm": True},
          description="lecture 3's deep net: 5 x [linear -> batchnorm -> tanh] of width 100, then linear -> batchnorm"),
    Model("rnn", rnn.Config, rnn.init, rnn.apply, dataset="sequence", abilities=(_RNN_DECODER,),
          train_defaults=rnn.TRAIN_DEFAULTS,
          description="makemore's RNN: h = tanh(W [x, h]) from a learned start state, n_embd 64, n_embd2 64"),
    Model("gru", rnn.Config, rnn.init, rnn.apply, dataset="sequence", abilities=(_RNN_DECODER,),
          config_defaults={"cell": "gru"}, train_defaults=rnn.TRAIN_DEFAULTS,
          description="makemore's GRU: update/reset gates and a candidate state, n_embd 64, n_embd2 64"),
    Model("bow", bow.Config, bow.init, bow.apply, dataset="sequence",
          abilities=(Decoder(bow.init_cache, bow.decode_step),), train_defaults=bow.TRAIN_DEFAULTS,
          description="makemore's bag of words: a causal mean of the context, then a residual MLP, n_embd 64"),
    Model("transformer", transformer.Config, transformer.init, transformer.apply, dataset="sequence",
          abilities=_TRANSFORMER_ABILITIES,
          train_defaults=transformer.TRAIN_DEFAULTS,
          description="makemore's GPT: 4 pre-LayerNorm blocks, 4 heads, n_embd 64, sampled with a key/value cache"),
    Model("gpt", transformer.Config, transformer.init, transformer.apply, dataset="text",
          abilities=_TRANSFORMER_ABILITIES,
          config_defaults=gpt.GPT_CONFIG, train_defaults=gpt.GPT_TRAIN,
          description="nanoGPT's character-level GPT on running text (default: data/shakespeare.txt): 4 blocks, "
                      "4 heads, n_embd 128, block 64"),
    *(Model(name, transformer.Config, transformer.init, transformer.apply, dataset="text",
            abilities=_TRANSFORMER_ABILITIES, tokenizer=gpt2.TOKENIZER,
            config_defaults=gpt2.config_defaults(size), train_defaults=gpt2.GPT2_TRAIN,
            description=f"GPT-2 {size} as OpenAI and nanoGPT define it: {gpt2.SIZES[size]['n_layer']} blocks, "
                        f"{gpt2.SIZES[size]['n_head']} heads, n_embd {gpt2.SIZES[size]['n_embd']}, block 1024, "
                        f"GPT-2's tokens, build-nanogpt's recipe") for name, size in gpt2.NAMES.items()),
    Model("gpt-speedrun", transformer.Config, transformer.init, transformer.apply, dataset="text",
          abilities=_TRANSFORMER_ABILITIES,
          config_defaults=speedrun.SPEEDRUN_CONFIG, train_defaults=speedrun.SPEEDRUN_TRAIN,
          description="gpt with the speedrun's changes (rotary, RMSNorm, QK-norm, ReLU², untied head, soft-cap) "
                      "trained with Muon: nanoGPT's CPU loss in a fraction of its time"),
    Model("wavenet", wavenet.Config, wavenet.init, wavenet.apply, abilities=(Calibration(wavenet.calibrate),),
          description="lecture 5's hierarchical net: 3 x [pair up positions -> linear -> batchnorm -> tanh], block 8",
          train_defaults={"lr_decay_step": 150_000}),
)


def text_models() -> tuple[str, ...]:
    """The models that read running text (data kind "text"), by name."""
    return tuple(name for name, m in REGISTRY.items() if m.dataset == "text")


def get(name: str) -> Model:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}") from None
