"""The training settings (TrainConfig) and the optimiser they make (optax).

Every TrainConfig field carries its help text (`metadata["help"]`); the command line's
training flags are derived from these fields, with each model's defaults from its registry
entry (flags.py).

Three optimisers: sgd (the lectures'), adamw, and muon: the modded-nanogpt speedrun's
split, Muon (momentum orthogonalised by Newton-Schulz) on the hidden weight matrices and
AdamW on every other leaf. Which leaves are matrices (and which weight decay shrinks under
decay="matrices", and how Muon reads each matrix) the model declares: a `ParamLabels`
(models/labels.py, `model.param_labels`) passed to `make_optimizer`; this module reads no
key names. adamw and muon share one schedule shape (`schedule`: warmup + cosine, or
warmup-stable-decay), each group scaled to its own peak (lr, matrix_lr).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import optax

from .models.labels import MATRIX
from .settings import SettingError

OPTIMIZERS = ("sgd", "adamw", "muon")
DECAYS = ("all", "matrices")
SCHEDULES = ("cosine", "wsd")
MUON, ADAMW = "muon", "adamw"  # param_groups' labels (the keys of muon's optax.partition state)


def _field(default, help: str):
    """A TrainConfig field with its help text (the command line's flags come from these)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = _field(200_000, "training steps")
    batch_size: int | None = _field(32, "minibatch size (rows of one micro-batch under --grad-accum), or 'full' "
                                        "for every example every step, in order")
    grad_accum: int = _field(1, "micro-batches per step: the gradients of grad_accum micro-batches of --batch-size "
                                "rows are averaged inside the compiled step, as one batch of batch_size x "
                                "grad_accum rows (the same numbers, a micro-batch's activations in memory); "
                                "with --batch-size full it must divide the training split")
    optimizer: str = _field("sgd", "sgd (plain, as the lectures), adamw, or muon (Muon on the transformer "
                                   "blocks' weight matrices at --matrix-lr, AdamW on the rest at --lr)")
    lr: float = _field(0.1, "(peak) learning rate; muon: its AdamW group's")
    lr_decay_step: int | None = _field(100_000, "sgd: multiply the learning rate by --lr-decay from this step on "
                                                "(the lectures: 0.1 -> 0.01 at 100k)")
    lr_decay: float = _field(0.1, "sgd: the factor applied at --lr-decay-step")
    schedule: str = _field("cosine", "adamw, muon: the learning rate's shape after the warmup: cosine (to lr x "
                                     "--min-lr-ratio at the last step) or wsd (warmup-stable-decay: constant, then "
                                     "linear to lr x --min-lr-ratio over the last --decay-fraction of the steps)")
    decay_fraction: float = _field(0.2, "wsd: the fraction of the steps, at the end, over which the learning rate "
                                        "decays, in (0, 1]")
    warmup_steps: int = _field(0, "adamw, muon: linear warmup steps from 0 to the peak, before the decay")
    min_lr_ratio: float = _field(0.1, "adamw, muon: the schedule ends at lr x this at the last step; 1 holds lr "
                                      "constant")
    weight_decay: float = _field(0.01, "adamw, muon (both groups): decoupled weight decay, times the learning rate")
    decay: str = _field("all", "adamw, muon: which leaves weight decay shrinks: all, or matrices (weights and "
                               "embeddings, not biases or norm gains, as nanoGPT)")
    b1: float = _field(0.9, "adamw: decay rate of the gradient's first moment (muon: its AdamW group's)")
    b2: float = _field(0.999, "adamw: decay rate of the gradient's second moment (muon: its AdamW group's)")
    matrix_lr: float = _field(0.02, "muon: peak learning rate of the Muon group (the transformer blocks' weight "
                                    "matrices); the same schedule shape as --lr's")
    muon_momentum: float = _field(0.95, "muon: the Muon group's Nesterov momentum")
    muon_ns_steps: int = _field(5, "muon: quintic Newton-Schulz iterations that orthogonalise each update")
    clip_norm: float | None = _field(None, "clip the global gradient norm to this")
    chunk_size: int = _field(1000, "steps per device dispatch and per log line")
    save_every_seconds: float = _field(60.0, "--out: checkpoint after the first chunk that ends this many seconds "
                                             "after the last checkpoint (besides every 10,000 steps)")
    eval_train: bool = _field(True, "at the end, the exact loss of the training split too (besides the held-out "
                                    "splits); on running text that pass costs about a tenth of the training time")

    def __post_init__(self):
        fraction_ok = 0 < self.decay_fraction <= 1
        room = self.steps - decay_steps(self) if fraction_ok else self.steps  # wsd's last step before its decay
        checks = [
            ("steps", self.steps >= 1, f"must be at least 1, got {self.steps}"),
            ("batch_size", self.batch_size is None or self.batch_size >= 1, f"must be at least 1, got {self.batch_size}"),
            ("grad_accum", self.grad_accum >= 1, f"must be at least 1, got {self.grad_accum}"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), f"must be a positive number, got {self.lr}"),
            ("lr_decay_step", self.lr_decay_step is None or self.lr_decay_step >= 0,
             f"must be >= 0, got {self.lr_decay_step}"),
            ("lr_decay", self.lr_decay > 0, f"must be positive, got {self.lr_decay}"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            ("decay_fraction", fraction_ok, f"must be in (0, 1], got {self.decay_fraction}"),
            ("warmup_steps", 0 <= self.warmup_steps <= self.steps, f"must be in [0, steps], got {self.warmup_steps}"),
            ("warmup_steps", self.optimizer == "sgd" or self.schedule != "wsd" or self.warmup_steps <= room,
             f"must end before wsd's decay (the last {self.steps - room} of {self.steps} steps): at most {room}, "
             f"got {self.warmup_steps}"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, f"must be in [0, 1], got {self.min_lr_ratio}"),
            ("weight_decay", self.weight_decay >= 0, f"must be >= 0, got {self.weight_decay}"),
            ("decay", self.decay in DECAYS, f"must be one of {', '.join(DECAYS)}, got {self.decay!r}"),
            ("b1", 0 <= self.b1 < 1 and 0 <= self.b2 < 1, f"and b2 must be in [0, 1), got {self.b1}, {self.b2}"),
            ("matrix_lr", self.matrix_lr > 0 and math.isfinite(self.matrix_lr),
             f"must be a positive number, got {self.matrix_lr}"),
            ("muon_momentum", 0 <= self.muon_momentum < 1, f"must be in [0, 1), got {self.muon_momentum}"),
            ("muon_ns_steps", self.muon_ns_steps >= 1, f"must be at least 1, got {self.muon_ns_steps}"),
            ("clip_norm", self.clip_norm is None or self.clip_norm > 0, f"must be positive, got {self.clip_norm}"),
            ("chunk_size", self.chunk_size >= 1, f"must be at least 1, got {self.chunk_size}"),
            ("save_every_seconds", self.save_every_seconds > 0, f"must be positive, got {self.save_every_seconds}"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise SettingError(name, message)


# ----------------------------------------------------------------------------- schedules


def decay_steps(tc: TrainConfig) -> int:
    """wsd: how many of the last steps the linear decay takes: decay_fraction x steps, rounded, at least 1."""
    return max(1, round(tc.decay_fraction * tc.steps))


def make_schedule(tc: TrainConfig) -> optax.Schedule:
    """step -> learning rate, peaking at tc.lr: sgd's step decay, or adamw's / muon's warmup + cosine or wsd."""
    if tc.optimizer == "sgd":
        if tc.lr_decay_step is None:
            return optax.constant_schedule(tc.lr)
        return optax.piecewise_constant_schedule(tc.lr, {tc.lr_decay_step: tc.lr_decay})
    if tc.schedule == "wsd":
        return wsd_schedule(tc.lr, tc.warmup_steps, tc.steps, decay_steps(tc), tc.lr * tc.min_lr_ratio)
    return optax.warmup_cosine_decay_schedule(
        0.0, tc.lr, tc.warmup_steps, max(tc.steps, tc.warmup_steps + 1), end_value=tc.lr * tc.min_lr_ratio)


def wsd_schedule(peak: float, warmup_steps: int, steps: int, decay_steps: int, end_value: float) -> optax.Schedule:
    """Warmup-stable-decay: count -> peak * count / warmup_steps while count < warmup_steps, then
    peak until count = steps - decay_steps, then linear to end_value at count = steps (the
    count after the last update, as the cosine's end), end_value after. Needs
    warmup_steps <= steps - decay_steps (TrainConfig checks it)."""
    decay_start = steps - decay_steps

    def schedule(count):
        count = jnp.asarray(count)
        warm = peak * (count / max(warmup_steps, 1))
        decayed = jnp.clip((count - decay_start) / decay_steps, 0.0, 1.0)
        return jnp.where(count < warmup_steps, warm, peak + (end_value - peak) * decayed)
    return schedule


# ----------------------------------------------------------------------------- optimisers


def make_optimizer(tc: TrainConfig, labels=None, *, lr=None, weight_decay=None) -> optax.GradientTransformation:
    """tc's optimiser; `lr` / `weight_decay` replace tc's and may be traced (a sweep vmaps over them).

    labels: the model's ParamLabels (`model.param_labels`); needed by muon and by
    decay="matrices" (ValueError without), unused otherwise. Under muon, `lr` is the AdamW
    group's peak (the Muon group keeps tc.matrix_lr) and `weight_decay` applies to both groups.
    """
    if labels is None and (tc.optimizer == "muon" or (tc.optimizer != "sgd" and tc.decay == "matrices")):
        raise ValueError(f"optimizer {tc.optimizer} with decay {tc.decay} needs the model's parameter labels: "
                         "make_optimizer(tc, model.param_labels)")
    schedule = make_schedule(tc)
    if lr is not None:  # tc's schedule, rescaled to peak at `lr`
        unit = make_schedule(dataclasses.replace(tc, lr=1.0))
        schedule = lambda count: lr * unit(count)  # noqa: E731
    weight_decay = tc.weight_decay if weight_decay is None else weight_decay
    if tc.optimizer == "sgd":
        tx = optax.sgd(schedule)
    else:
        tx = optax.adamw(schedule, b1=tc.b1, b2=tc.b2, weight_decay=weight_decay,
                         mask=labels.decayed if tc.decay == "matrices" else None)
    if tc.optimizer == "muon":
        tx = optax.partition({ADAMW: tx, MUON: muon_group(tc, weight_decay, labels)},
                             functools.partial(param_groups, labels=labels))
    if tc.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm), tx)
    return tx


# ----------------------------------------------------------------------------- muon's parameter groups


def param_groups(params, labels):
    """Each leaf's optimiser group under optimizer="muon": a tree of "muon" / "adamw" labels.

    "muon": the leaves `labels` (the model's ParamLabels) calls MATRIX, the hidden weight
    matrices (the transformer's: the blocks' c_attn, c_proj, c_fc and c_proj weights); their
    updates are orthogonalised as labels.dimensions reads them. "adamw": every other leaf
    (embeddings, the head, norms, biases; all of a model that declares no matrices).
    """
    return jax.tree.map(lambda label: MUON if label == MATRIX else ADAMW, labels.labels(params))


def muon_group(tc: TrainConfig, weight_decay, labels) -> optax.GradientTransformation:
    """The Muon group's update: Nesterov momentum (tc.muon_momentum), orthogonalised by 5
    quintic Newton-Schulz steps (optax's defaults) on each matrix as labels.dimensions reads
    it, times sqrt(max(1, fan_out / fan_in)) (Muon's width scaling: c_fc's updates x2), plus
    weight_decay x the parameter, times the schedule peaking at tc.matrix_lr.

    Every Muon leaf is a matrix that decay="matrices" decays too, so both decay rules
    decay the whole group.
    """
    return optax.chain(
        optax.contrib.scale_by_muon(ns_steps=tc.muon_ns_steps, beta=tc.muon_momentum,
                                    weight_dimension_numbers=labels.dimensions),
        scale_by_width(labels.dimensions),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(make_schedule(dataclasses.replace(tc, lr=tc.matrix_lr))))


def scale_by_width(dimensions) -> optax.GradientTransformation:
    """Multiply each matrix's update by sqrt(max(1, fan_out / fan_in)) (as `dimensions(updates)`
    reads it), so a wide output layer moves as far per input as a square one (Muon's reference scaling)."""
    def scale(update, dims):
        fan_out = math.prod(update.shape[a] for a in dims.output_axis)
        return update * math.sqrt(max(1.0, fan_out / update.shape[dims.reduction_axis]))

    def update_fn(updates, state, params=None):
        return jax.tree.map(scale, updates, dimensions(updates)), state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
