"""The command line's flags, derived from the config dataclasses and the model registry.

Every model Config field (but vocab_size) and every TrainConfig field is a flag of the same
name (`--n-hidden` for n_hidden). Its help is the field's meaning (FIELD_HELP for model
fields, `metadata["help"]` for TrainConfig's) and each model's own default, read from the
registry (Config defaults, `config_defaults`, `train_defaults`), never written by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from . import models
from .optim import DECAYS, OPTIMIZERS, SCHEDULES, TrainConfig
from .settings import none_word


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _int(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def batch_size_flag(text: str) -> int | None:
    return None if text == none_word("batch_size") else positive_int(text)


def optional(kind: type):
    """A flag type for `kind | None` fields: the word 'none' is None."""
    def parse(text: str):
        return None if text == "none" else kind(text)
    parse.__name__ = kind.__name__  # argparse names it in its error message
    return parse


def devices_flag(text: str) -> int | None:
    """--devices N|all: None means every visible device."""
    from .parallel import parse_devices
    try:
        return parse_devices(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def values_flag(kind: type):
    """A sweep flag's type: comma-separated values of `kind`, as a list."""
    def parse(text: str) -> list:
        return [kind(part) for part in text.split(",")]
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


FIELD_HELP = {  # model config field -> what it means (defaults and models are added from the registry)
    "block_size": "characters of context the model sees",
    "n_embd": "embedding size per character",
    "n_hidden": "width of every hidden layer",
    "n_layers": "number of hidden layers",
    "norm": "normalisation after each hidden linear layer: batch, layer, group, rms (RMSNorm with a gain) or none "
            "(transformer, gpt: layer, rms, or rms-nogain = RMSNorm without a gain, gpt-speedrun's)",
    "out_norm": "the same norm after the output layer (lecture 3's deep net; group becomes layer there)",
    "groups": "channel groups of --norm group; must divide n_hidden",
    "init": "weight initialisation: unit = every weight N(0, 1) (lecture 2, initial loss ~27); scaled = "
            "lecture 3's hand-picked factors (0.2, 0.01); fan-in = 1/sqrt(fan_in); kaiming = (5/3)/sqrt(fan_in); "
            "transformer: pytorch = torch's layer defaults, as makemore.py; gpt2 = N(0, 0.02)",
    "bias": "biases in the linear layers and LayerNorms (nanoGPT's gpt: none)",
    "tie_embeddings": "the output head is the token embedding transposed (nanoGPT)",
    "gelu": "tanh (GPT-2's approximation) or exact (erf, torch's nn.GELU)",
    "scaled_residual_init": "residual projections start at N(0, 0.02/sqrt(2 n_layer)) (GPT-2, nanoGPT)",
    "attn_dropout": "dropout on the attention weights too (nanoGPT)",
    "dtype": "float32, or bfloat16: matmuls and activations in bfloat16, parameters and optimiser in float32",
    "dropout": "dropout rate in train mode",
    "pos": "positions: learned (a wpe table) or rotary (RoPE on queries and keys)",
    "qk_norm": "RMS-normalise each head's queries and keys (no gain) before the attention scores",
    "activation": "the MLP's nonlinearity: gelu (flavour from --gelu) or relu2 (relu(x)^2)",
    "zero_init_proj": "the residual projections (attention's and the MLP's c_proj) start at zero",
    "softcap": "when > 0, logits = softcap * tanh(logits / softcap)",
    "attention": "einsum (nn.attention), fused (jax.nn.dot_product_attention: cuDNN's flash kernel on a GPU in "
                 "bfloat16 or float16, else XLA's), or auto: the kernel where it applies, else einsum",
    "smoothing": "count added to every character pair before normalising",
    "reg": "L2 penalty reg * mean(W**2) added to the training loss; the lecture uses 0.01",
}
TRAIN_TYPES = {"steps": positive_int, "chunk_size": positive_int, "grad_accum": positive_int,  # stricter than the hint
               "batch_size": batch_size_flag}


def all_inits() -> tuple[str, ...]:
    """--init's values: the MLP family's, then the transformer's."""
    from .models import mlp, transformer
    return mlp.INITS + transformer.INITS


def choices() -> dict[str, tuple]:
    from . import nn
    from .models import norm, transformer
    return {"optimizer": OPTIMIZERS, "decay": DECAYS, "schedule": SCHEDULES, "init": all_inits(),
            "norm": tuple(dict.fromkeys(norm.NORMS + transformer.NORMS)),
            "gelu": tuple(transformer.GELUS), "dtype": tuple(transformer.DTYPES), "pos": transformer.POSITIONS,
            "activation": transformer.ACTIVATIONS, "attention": nn.ATTENTIONS}


def _flag_type(hint) -> type:
    """The argparse type of a field's type hint (`int | None` -> optional(int))."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return optional(args[0])
    return hint


def _per_model(per_model: dict[str, object], name_models: bool, none: str = "none") -> str:
    """'default 32; bigram-nn: full' (the most common value first), or every model named."""
    _shown = lambda v: none if v is None else str(v)  # noqa: E731
    values: dict[object, list[str]] = {}
    for model_name, value in per_model.items():
        values.setdefault(value, []).append(model_name)
    groups = sorted(values.items(), key=lambda item: -len(item[1])) if not name_models else list(values.items())
    if name_models:
        return "default " + "; ".join(f"{', '.join(names)}: {_shown(v)}" for v, names in groups)
    (first, _), rest = groups[0], groups[1:]
    return f"default {_shown(first)}" + "".join(f"; {', '.join(names)}: {_shown(v)}" for v, names in rest)


def config_flags() -> dict[str, tuple[type, str]]:
    """Every model config field (but vocab_size) as a flag: name -> (type, help with models and defaults)."""
    defaults: dict[str, dict[str, object]] = {}  # field -> {model name: its default}
    kinds: dict[str, type] = {}
    for model in models.REGISTRY.values():
        hints = typing.get_type_hints(model.Config)
        shown = model.shown_defaults()
        for field in dataclasses.fields(model.Config):
            if field.name != "vocab_size":
                kinds.setdefault(field.name, _flag_type(hints[field.name]))
                defaults.setdefault(field.name, {})[model.name] = shown[field.name]
    return {name: (kinds[name], f"{FIELD_HELP.get(name, 'model setting')} ({_per_model(per, True)})")
            for name, per in defaults.items()}


def train_flags(trained: list[str] | None = None) -> dict[str, tuple[type, str]]:
    """Every TrainConfig field as a flag: name -> (type, help with each model's default).

    Args:
        trained: the models whose defaults to show (default: those trained by gradients).
    """
    if trained is None:
        from .lifecycle import fitting
        trained = [n for n, m in models.REGISTRY.items() if fitting(m).trains]
    hints = typing.get_type_hints(TrainConfig)
    flags = {}
    for field in dataclasses.fields(TrainConfig):
        per = {n: models.get(n).train_defaults.get(field.name, field.default) for n in trained}
        kind = TRAIN_TYPES.get(field.name) or _flag_type(hints[field.name])
        flags[field.name] = (kind, f"{field.metadata['help']} ({_per_model(per, False, none_word(field.name))})")
    return flags


def tokenizer_defaults() -> str:
    """--tokenizer's defaults by text model: "default char; gpt2, ...: gpt2" (each model's `tokenizer`)."""
    from .tokens import CHAR
    return _per_model({name: models.get(name).tokenizer or CHAR for name in models.text_models()}, False)


def add_flags(group, flags: dict[str, tuple[type, str]], *, sweepable=(), sweep_all: bool = False) -> None:
    """Add `flags` to an argparse group; bools as --x/--no-x; sweepable ones take comma-separated values."""
    allowed = choices()
    for name, (kind, help_text) in flags.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif sweep_all or name in sweepable:
            group.add_argument(flag, type=values_flag(kind), default=None,
                               help=f"sweepable{' (same shapes)' if sweep_all else ''}: {help_text}")
        else:
            group.add_argument(flag, type=kind, default=None, help=help_text, choices=allowed.get(name))
