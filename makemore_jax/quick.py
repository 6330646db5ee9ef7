"""The quick switch: MAKEMORE_QUICK=1 shortens every training run of the notebooks.

CI executes the notebooks so (tests/test_notebooks.py); without the variable they train for
as long as the lectures do.
"""

from __future__ import annotations

import dataclasses
import os

ENV = "MAKEMORE_QUICK"


def is_quick() -> bool:
    """Whether MAKEMORE_QUICK is set to something other than "", "0", "false" or "no"."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def quick_steps(full: int, quick: int) -> int:
    """`quick` in quick mode, else `full`: `steps = quick_steps(200_000, quick=2_000)`."""
    if not 1 <= quick <= full:
        raise ValueError(f"expected 1 <= quick <= full, got quick={quick}, full={full}")
    return quick if is_quick() else full


def quick_words(words: list[str], *, quick: int) -> list[str]:
    """The first `quick` of `words` in quick mode, else all of them.

    A notebook trains and evaluates on these (`train_model(name, data=names)`): in quick mode
    evaluating every split and sampling then take a fraction of the time, and every model
    still sees the same names.
    """
    if quick < 1:
        raise ValueError(f"expected quick >= 1, got {quick}")
    return list(words[:quick]) if is_quick() else list(words)


def train_settings(model: str, *, quick: int) -> dict:
    """train_model overrides for a registered model's own run, or a `quick`-step one in quick mode.

    Full mode: {} (the model's defaults). Quick mode: steps=quick, with the model's warmup
    and learning-rate decay step scaled by the same factor, so that every schedule still fits
    the shorter run, and chunks of a tenth of it, so that its loss curve still has ten points:
    `train_model("rnn", **train_settings("rnn", quick=300))`.
    """
    if not is_quick():
        return {}
    from .models import get
    from .train import TrainConfig
    defaults = {**dataclasses.asdict(TrainConfig()), **get(model).train_defaults}
    full = defaults["steps"]
    settings = {"steps": quick_steps(full, quick=min(quick, full))}
    settings["chunk_size"] = max(1, min(defaults["chunk_size"], settings["steps"] // 10))
    for name in ("warmup_steps", "lr_decay_step"):
        if defaults[name]:
            settings[name] = defaults[name] * settings["steps"] // full
    return settings
