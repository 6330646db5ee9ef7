"""Loss curves as TensorBoard event files, written with tensorboardX (no TensorFlow needed).

    writer = open_writer("out/tb")
    writer.log_losses(step, loss, lr)        # once per logged chunk, host floats
    writer.log_splits(step, {"train": 2.1, "dev": 2.2})   # the exact split losses at the end
    writer.close()

A run trained with `train --tensorboard` (train_model(..., tensorboard=True)) logs through
`LossCallback`, a loop.py callback, into its --out folder; a sweep into one folder per run.
Then `tensorboard --logdir out/tb`. Tags: "train/loss" (the chunk's mean minibatch loss),
"train/lr" (the learning rate at its last step), "split/<name>" (a whole split's loss).
tensorboardX is the optional `tensorboard` extra: pip install "makemore-jax[tensorboard]".
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence

LOSS_TAG, LR_TAG, SPLIT_PREFIX = "train/loss", "train/lr", "split/"
EVENTS_PREFIX = "events.out.tfevents."  # how TensorBoard event files are named
MISSING = "TensorBoard logging needs the tensorboardX package: pip install tensorboardX " \
          "(or the extra: pip install \"makemore-jax[tensorboard]\")"


class Writer:
    """Scalars into one event file under a log folder; every value is a host float.

    A write that fails (a full disk) raises a checkpoint.WriteError naming the log folder.
    """

    def __init__(self, summary_writer, logdir: str):
        self._writer, self.logdir = summary_writer, logdir

    def log_losses(self, step: int, loss: float, lr: float) -> None:
        """One logged chunk: its mean training loss and learning rate at training step `step`."""
        with self._named():
            self._writer.add_scalar(LOSS_TAG, float(loss), int(step))
            self._writer.add_scalar(LR_TAG, float(lr), int(step))

    def log_splits(self, step: int, losses: Mapping[str, float]) -> None:
        """The exact loss of each split ({"train": .., "dev": ..}) at step `step`, written to disk now."""
        with self._named():
            for split, loss in losses.items():
                self._writer.add_scalar(SPLIT_PREFIX + split, float(loss), int(step))
            self._writer.flush()

    def flush(self) -> None:
        """Write what is buffered to disk."""
        with self._named():
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        with self._named():
            self._writer.close()

    @contextlib.contextmanager
    def _named(self):
        try:
            yield
        except OSError as e:
            from .checkpoint import write_error
            raise write_error(self.logdir, e) from None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def require() -> None:
    """Check that tensorboardX can be imported (before a run starts, so it fails at once).

    Raises:
        ImportError: it cannot; the message says what to install, `name` is "tensorboardX".
    """
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise ImportError(MISSING, name="tensorboardX") from None


def open_writer(logdir: str, *, purge_step: int | None = None) -> Writer:
    """A Writer appending a new event file under `logdir` (made if missing).

    Args:
        purge_step: hide the events logged earlier in `logdir` at this step or later (a
            resumed run continues from its checkpoint, before where it was interrupted).
    Raises:
        ImportError: tensorboardX is not installed; the message says what to install.
    """
    require()
    from tensorboardX import SummaryWriter
    # tensorboardX names a file by the second it opened and the host: a second writer in the
    # same second would overwrite the first. A sequence number keeps both, read in order.
    earlier = [n for n in os.listdir(logdir) if n.startswith(EVENTS_PREFIX)] if os.path.isdir(logdir) else []
    return Writer(SummaryWriter(logdir=logdir, purge_step=purge_step, filename_suffix=f".{len(earlier):04d}"),
                  logdir)


class LossCallback:
    """A loop.py callback: after each chunk, its mean training loss and the learning rate.

    The values are metrics.jsonl's "loss" (the chunk's mean minibatch loss) and "lr" (at the
    chunk's last step). One writer and schedule per run: `train` has one run (losses
    float [n]), a sweep R (losses [R, n], row r to writer r). Closing the callback (the loop
    does, however the run ends) flushes the writers; their owner closes them after log_splits.

    Args:
        schedules: per run, step -> learning rate.
    """

    def __init__(self, writers: Sequence[Writer], schedules: Sequence[Callable[[int], float]]):
        self.writers, self.schedules = list(writers), list(schedules)

    def on_chunk(self, state, step: int, losses, elapsed: float):
        rows = losses if losses.ndim == 2 else losses[None]
        for writer, schedule, row in zip(self.writers, self.schedules, rows):
            writer.log_losses(step, float(row.mean()), float(schedule(step - 1)))

    def close(self) -> None:
        for writer in self.writers:
            writer.flush()


class SweepBoards(LossCallback):
    """sweep --tensorboard: one TensorBoard folder per run, OUT/tensorboard/<run's dirname>.

    As a loop callback it logs each run's chunk losses and its own learning rate (the shared
    schedule, peaking at the run's lr, as the sweep trains it); `finish` adds the split
    losses and closes the writers. Event files of an earlier sweep in the same folders are
    removed first, as the report files are replaced.
    """

    def __init__(self, out: str, runs, tc):
        import dataclasses

        import jax

        from .optim import make_schedule
        self.root = os.path.join(out, "tensorboard")
        for run in runs:
            folder = os.path.join(self.root, run.dirname)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if name.startswith(EVENTS_PREFIX):
                    os.remove(os.path.join(folder, name))
        unit = jax.jit(make_schedule(dataclasses.replace(tc, lr=1.0)))
        super().__init__([open_writer(os.path.join(self.root, run.dirname)) for run in runs],
                         [lambda step, lr=run.train_config.lr: lr * float(unit(step)) for run in runs])

    def finish(self, step: int, losses) -> str:
        """Log each run's split losses (the finite ones: a diverged run has none) at `step`; close."""
        for writer, run_losses in zip(self.writers, losses):
            writer.log_splits(step, {k: v for k, v in run_losses.items() if math.isfinite(v)})
            writer.close()
        return f"TensorBoard logs under {self.root} (tensorboard --logdir {self.root})"
