"""The model registry: one entry per `--model` name.

Every model is a frozen, hashable `Config` dataclass (with `vocab_size` and `block_size`)
and two pure functions:

    init(key, config) -> (params, state)
    apply(params, state, x, *, train) -> (logits, new_state)

Adding a model to the CLI is adding one `Model` entry here. The entry says which dataset
the model trains on (`dataset`, see `data.build_dataset`), so the commands never ask which
model they run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..data import DATASETS, sequence_block_size
from . import bigram, bow, mlp, rnn, transformer, wavenet


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    name: str
    Config: type
    init: Callable
    apply: Callable
    description: str = ""
    config_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # overrides of Config's defaults
    train_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # overrides of TrainConfig's
    penalty: Callable | None = None  # (params, config) -> scalar added to the training loss
    fit: Callable | None = None  # closed-form fit (config, X, Y) -> params, instead of gradients
    calibrate: Callable | None = None  # (params, state, X) -> state: BatchNorm statistics over a split
    # What data.build_dataset makes for it: "context" (X [N, block_size] -> Y [N]) or
    # "sequence" (X, Y [N, block_size], Y = -1 where ignored; logits [B, block_size, vocab]).
    dataset: str = "context"
    # Cached sampling (sample.sample_ids): one new token per call instead of a rerun of the prefix.
    init_cache: Callable | None = None  # (params, config, n) -> cache pytree (KV buffers, hidden state)
    decode_step: Callable | None = None  # (params, state, cache, token int32 [n], pos) -> (logits [n, vocab], cache)

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"{self.name}: dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")

    def make_config(self, *, words: Sequence[str] | None = None, **overrides) -> Any:
        """The Config with the model's defaults, then `overrides`.

        Given the data's `words`, a "sequence" model's block_size defaults to the longest
        word + 1 (as makemore) unless `overrides` sets it.
        """
        if words is not None and self.dataset == "sequence" and "block_size" not in overrides:
            overrides["block_size"] = sequence_block_size(words)
        return self.Config(**{**self.config_defaults, **overrides})

    @property
    def config_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.Config))


def _registry(*models: Model) -> Mapping[str, Model]:
    return MappingProxyType({m.name: m for m in models})


REGISTRY = _registry(
    Model("bigram", bigram.CountConfig, bigram.init, bigram.apply, fit=bigram.fit,
          description="counting bigram: normalised counts with additive smoothing (closed form)"),
    Model("bigram-nn", bigram.NeuralConfig, bigram.neural_init, bigram.neural_apply, penalty=bigram.neural_penalty,
          description="neural bigram: a [vocab, vocab] logits table trained by full-batch gradient descent",
          train_defaults={"steps": 500, "batch_size": None, "lr": 50.0, "lr_decay_step": None}),
    Model("mlp", mlp.Config, mlp.init, mlp.apply, calibrate=mlp.calibrate,
          description="Bengio et al. 2003 MLP (lecture 2), with the lecture-3 initialisation by default"),
    Model("mlp-bn", mlp.Config, mlp.init, mlp.apply, calibrate=mlp.calibrate, config_defaults={"norm": "batch"},
          description="the MLP with BatchNorm after the hidden layer (lecture 3)"),
    Model("mlp-deep", mlp.Config, mlp.init, mlp.apply, calibrate=mlp.calibrate,
          config_defaults={"n_hidden": 100, "n_layers": 5, "norm": "batch", "out_norm": True},
          description="lecture 3's deep net: 5 x [linear -> batchnorm -> tanh] of width 100, then linear -> batchnorm"),
    Model("rnn", rnn.Config, rnn.init, rnn.apply, dataset="sequence", init_cache=rnn.init_cache,
          decode_step=rnn.decode_step, train_defaults=rnn.TRAIN_DEFAULTS,
          description="makemore's RNN: h = tanh(W [x, h]) from a learned start state, n_embd 64, n_embd2 64"),
    Model("gru", rnn.Config, rnn.init, rnn.apply, dataset="sequence", init_cache=rnn.init_cache,
          decode_step=rnn.decode_step, config_defaults={"cell": "gru"}, train_defaults=rnn.TRAIN_DEFAULTS,
          description="makemore's GRU: update/reset gates and a candidate state, n_embd 64, n_embd2 64"),
    Model("bow", bow.Config, bow.init, bow.apply, dataset="sequence", init_cache=bow.init_cache,
          decode_step=bow.decode_step, train_defaults=bow.TRAIN_DEFAULTS,
          description="makemore's bag of words: a causal mean of the context, then a residual MLP, n_embd 64"),
    Model("transformer", transformer.Config, transformer.init, transformer.apply, dataset="sequence",
          init_cache=transformer.init_cache, decode_step=transformer.decode_step,
          train_defaults=transformer.TRAIN_DEFAULTS,
          description="makemore's GPT: 4 pre-LayerNorm blocks, 4 heads, n_embd 64, sampled with a key/value cache"),
    Model("wavenet", wavenet.Config, wavenet.init, wavenet.apply, calibrate=wavenet.calibrate,
          description="lecture 5's hierarchical net: 3 x [pair up positions -> linear -> batchnorm -> tanh], block 8",
          train_defaults={"lr_decay_step": 150_000}),
)


def get(name: str) -> Model:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}") from None
