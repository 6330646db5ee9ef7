"""The training settings (TrainConfig) and the optimiser they make (optax).

Every TrainConfig field carries its help text (`metadata["help"]`); the command line's
training flags are derived from these fields, with each model's defaults from its registry
entry (flags.py).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import optax

from .settings import SettingError

OPTIMIZERS = ("sgd", "adamw")
DECAYS = ("all", "matrices")


def _field(default, help: str):
    """A TrainConfig field with its help text (the command line's flags come from these)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = _field(200_000, "training steps")
    batch_size: int | None = _field(32, "minibatch size, or 'full' for every example every step, in order")
    optimizer: str = _field("sgd", "sgd (plain, as the lectures) or adamw")
    lr: float = _field(0.1, "(peak) learning rate")
    lr_decay_step: int | None = _field(100_000, "sgd: multiply the learning rate by --lr-decay from this step on "
                                                "(the lectures: 0.1 -> 0.01 at 100k)")
    lr_decay: float = _field(0.1, "sgd: the factor applied at --lr-decay-step")
    warmup_steps: int = _field(0, "adamw: linear warmup steps before the cosine decay")
    min_lr_ratio: float = _field(0.1, "adamw: the cosine ends at lr x this at the last step; 1 holds lr constant")
    weight_decay: float = _field(0.01, "adamw: decoupled weight decay")
    decay: str = _field("all", "adamw: which leaves weight decay shrinks: all, or matrices (weights and "
                               "embeddings, not biases or norm gains, as nanoGPT)")
    b1: float = _field(0.9, "adamw: decay rate of the gradient's first moment")
    b2: float = _field(0.999, "adamw: decay rate of the gradient's second moment")
    clip_norm: float | None = _field(None, "clip the global gradient norm to this")
    chunk_size: int = _field(1000, "steps per device dispatch and per log line")
    save_every_seconds: float = _field(60.0, "--out: checkpoint after the first chunk that ends this many seconds "
                                             "after the last checkpoint (besides every 10,000 steps)")

    def __post_init__(self):
        checks = [
            ("steps", self.steps >= 1, f"must be at least 1, got {self.steps}"),
            ("batch_size", self.batch_size is None or self.batch_size >= 1, f"must be at least 1, got {self.batch_size}"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), f"must be a positive number, got {self.lr}"),
            ("lr_decay_step", self.lr_decay_step is None or self.lr_decay_step >= 0,
             f"must be >= 0, got {self.lr_decay_step}"),
            ("lr_decay", self.lr_decay > 0, f"must be positive, got {self.lr_decay}"),
            ("warmup_steps", 0 <= self.warmup_steps <= self.steps, f"must be in [0, steps], got {self.warmup_steps}"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, f"must be in [0, 1], got {self.min_lr_ratio}"),
            ("weight_decay", self.weight_decay >= 0, f"must be >= 0, got {self.weight_decay}"),
            ("decay", self.decay in DECAYS, f"must be one of {', '.join(DECAYS)}, got {self.decay!r}"),
            ("b1", 0 <= self.b1 < 1 and 0 <= self.b2 < 1, f"and b2 must be in [0, 1), got {self.b1}, {self.b2}"),
            ("clip_norm", self.clip_norm is None or self.clip_norm > 0, f"must be positive, got {self.clip_norm}"),
            ("chunk_size", self.chunk_size >= 1, f"must be at least 1, got {self.chunk_size}"),
            ("save_every_seconds", self.save_every_seconds > 0, f"must be positive, got {self.save_every_seconds}"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise SettingError(name, message)


# ----------------------------------------------------------------------------- optimiser


def make_schedule(tc: TrainConfig) -> optax.Schedule:
    if tc.optimizer == "sgd":
        if tc.lr_decay_step is None:
            return optax.constant_schedule(tc.lr)
        return optax.piecewise_constant_schedule(tc.lr, {tc.lr_decay_step: tc.lr_decay})
    return optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, tc.warmup_steps, max(tc.steps, tc.warmup_steps + 1), end_value=tc.lr * tc.min_lr_ratio)


def make_optimizer(tc: TrainConfig, *, lr=None, weight_decay=None) -> optax.GradientTransformation:
    """tc's optimiser; `lr` / `weight_decay` replace tc's and may be traced (a sweep vmaps over them)."""
    schedule = make_schedule(tc)
    if lr is not None:  # tc's schedule, rescaled to peak at `lr`
        unit = make_schedule(dataclasses.replace(tc, lr=1.0))
        schedule = lambda count: lr * unit(count)  # noqa: E731
    if tc.optimizer == "sgd":
        tx = optax.sgd(schedule)
    else:
        tx = optax.adamw(schedule, b1=tc.b1, b2=tc.b2,
                         weight_decay=tc.weight_decay if weight_decay is None else weight_decay,
                         mask=decay_mask if tc.decay == "matrices" else None)
    if tc.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm), tx)
    return tx


def decay_mask(params):
    """True for the leaves weight decay shrinks under decay="matrices": weights and embeddings
    (ndim >= 2), not biases or norm gains (nanoGPT's two AdamW parameter groups). A leaf named
    "b" is a bias whatever its shape (the transformer's qkv bias is [3, H, D], torch's [3C])."""
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.ndim >= 2 and getattr(path[-1], "key", None) != "b", params)
