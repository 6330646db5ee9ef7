"""Fit a Run in place: the host loop with checkpoints on the way, divergence and SIGTERM as Stopped.

`fit_run` is what `train_model` runs between building the run (runbuild.py) and evaluating it:
a closed-form fit, or train.fit with the periodic checkpoints (by steps and by time), the
metrics.jsonl log cut back to the checkpoint on resume, and a stop (SIGTERM) or a divergence
turned into `Terminated` / `Stopped` with the last good state saved.
"""

from __future__ import annotations

import json
import os
import time

from . import checkpoint, models
from .run import METRICS, SAVE_EVERY, Run, Stopped, Terminated


def fit_run(run: Run, out: str | None, *, quiet: bool, resume: bool, mesh=None, stop=None, callbacks=()) -> None:
    """Train run.state in place (or fit in closed form), checkpointing into `out`; data parallel over `mesh`.

    Checkpoints every SAVE_EVERY steps, and after the first chunk that ends
    `save_every_seconds` after the last one (so a slow model loses little to a crash).
    Once `stop` (a threading.Event) is set the chunk being read is the last: its state is
    saved and Terminated raised. `callbacks`: more loop.py callbacks for train.fit (e.g.
    tensorboard.LossCallback).
    """
    from .parallel import local_copy
    from .train import Diverged, fit
    X, Y = run.splits["train"]
    closed_form = run.model.ability(models.ClosedForm)
    if closed_form:
        run.state = run.state.replace(params=closed_form.fit(run.config, X, Y))
        run.summary = {"steps": 0, "seconds": 0.0, "compile_seconds": 0.0, "final_loss": float("nan")}
        return
    log_path = None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        log_path = os.path.join(out, METRICS)
        cut_log(log_path, int(run.state.step) if resume else 0)
    save_every, saved_at = max(run.train_config.chunk_size, SAVE_EVERY), [time.monotonic()]

    def on_chunk(good):  # keep the last good state on disk for resume and after divergence
        due = time.monotonic() - saved_at[0] >= run.train_config.save_every_seconds
        step = int(good.step)
        if out is not None and (step % save_every == 0 or (due and step < run.train_config.steps)):
            checkpoint.save(out, local_copy(good), run.metadata())
            saved_at[0] = time.monotonic()

    try:
        run.state, run.summary = fit(run.model, run.config, run.train_config, X, Y, run.state, on_chunk=on_chunk,
                                     log_path=log_path, quiet=quiet, mesh=mesh, stop=stop, callbacks=callbacks)
        run.state = local_copy(run.state)
        if int(run.state.step) < run.train_config.steps:  # stopped early: save where it stands
            where = (f"the state is saved in {checkpoint.save(out, run.state, run.metadata())}; continue with "
                     f"--resume" if out is not None else "nothing saved (no --out)")
            raise Terminated(f"terminated at step {int(run.state.step):,} of {run.train_config.steps:,} (SIGTERM); "
                             f"{where}", run)
    except Diverged as e:
        run.state = local_copy(e.last_good)
        where = ""
        if out is not None:
            where = f" in {checkpoint.save(out, run.state, run.metadata())}"
        raise Stopped(f"{e}; kept the last good state (step {int(run.state.step):,}){where}", run) from None


def cut_log(path: str, step: int) -> None:
    """Keep only the metrics.jsonl lines up to `step` (an interrupted run may have logged past its checkpoint)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except (ValueError, AttributeError):
            break  # a torn last line: drop it and what follows
    if kept != lines:
        checkpoint.atomic_write(path, "".join(kept).encode("utf-8"))
