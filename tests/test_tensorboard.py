"""TensorBoard logging: what the writer logs, read back with TensorBoard's own event reader."""

import sys

import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from makemore_jax import tensorboard  # noqa: E402


def read(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_logged_losses_come_back_at_their_steps(tmp_path):
    chunks = [(1000, 2.71, 0.1), (2000, 2.43, 0.1), (3000, 2.30, 0.01)]
    with tensorboard.open_writer(str(tmp_path)) as writer:
        for step, loss, lr in chunks:
            writer.log_losses(step, loss, lr)
        writer.log_splits(3000, {"train": 2.25, "dev": 2.31})
    scalars = read(tmp_path)
    assert set(scalars) == {"train/loss", "train/lr", "split/train", "split/dev"}
    for tag, column in (("train/loss", 1), ("train/lr", 2)):
        assert [s for s, _ in scalars[tag]] == [1000, 2000, 3000]
        assert [v for _, v in scalars[tag]] == pytest.approx([c[column] for c in chunks])  # float32 in the file
    assert scalars["split/dev"][0][0] == 3000 and scalars["split/dev"][0][1] == pytest.approx(2.31)
    assert scalars["split/train"][0][1] == pytest.approx(2.25)


def test_missing_package_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now raises ImportError
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        tensorboard.open_writer(str(tmp_path))
