"""Loss curves as TensorBoard event files, written with tensorboardX (no TensorFlow needed).

    writer = open_writer("out/tb")
    writer.log_losses(step, loss, lr)        # once per logged chunk, host floats
    writer.log_splits(step, {"train": 2.1, "dev": 2.2})   # the exact split losses at the end
    writer.close()

Then `tensorboard --logdir out/tb`. Tags: "train/loss" (the chunk's mean minibatch loss),
"train/lr" (the learning rate at its last step), "split/<name>" (a whole split's loss).
tensorboardX is the optional `tensorboard` extra: pip install "makemore-jax[tensorboard]".
"""

from __future__ import annotations

from collections.abc import Mapping

LOSS_TAG, LR_TAG, SPLIT_PREFIX = "train/loss", "train/lr", "split/"
MISSING = "TensorBoard logging needs the tensorboardX package: pip install tensorboardX " \
          "(or the extra: pip install \"makemore-jax[tensorboard]\")"


class Writer:
    """Scalars into one event file under a log folder; every value is a host float."""

    def __init__(self, summary_writer):
        self._writer = summary_writer

    def log_losses(self, step: int, loss: float, lr: float) -> None:
        """One logged chunk: its mean training loss and learning rate at training step `step`."""
        self._writer.add_scalar(LOSS_TAG, float(loss), int(step))
        self._writer.add_scalar(LR_TAG, float(lr), int(step))

    def log_splits(self, step: int, losses: Mapping[str, float]) -> None:
        """The exact loss of each split ({"train": .., "dev": ..}) at step `step`, written to disk now."""
        for split, loss in losses.items():
            self._writer.add_scalar(SPLIT_PREFIX + split, float(loss), int(step))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_writer(logdir: str) -> Writer:
    """A Writer appending a new event file under `logdir` (made if missing).

    Raises:
        ImportError: tensorboardX is not installed; the message says what to install.
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError(MISSING) from None
    return Writer(SummaryWriter(logdir=logdir))
