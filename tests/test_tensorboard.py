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


# ----------------------------------------------------------------------------- train / sweep --tensorboard

import json  # noqa: E402
import os  # noqa: E402

from makemore_jax import train_model  # noqa: E402
from makemore_jax.settings import UsageError  # noqa: E402
from makemore_jax.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, bundled_words):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(bundled_words[:800]) + "\n", encoding="utf-8")
    return str(path)


def tiny(small_data, *more):
    return ["--data", small_data, "--n-hidden", "16", "--n-embd", "4", "--chunk-size", "20", "--lr-decay-step", "30",
            "--quiet", *more]


def test_two_writers_in_the_same_second_keep_both_files(tmp_path, monkeypatch):
    import time
    monkeypatch.setattr(time, "time", lambda: 1796614670.25)  # tensorboardX names a file by its second
    for step in (1, 2):
        with tensorboard.open_writer(str(tmp_path)) as writer:
            writer.log_losses(step, 2.0 + step, 0.1)
    assert len(os.listdir(tmp_path)) == 2
    assert read(tmp_path)["train/loss"] == [(1, 3.0), (2, 4.0)]


def metrics(out):
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    return [r for r in lines if "loss" in r], lines[-1]["eval"]


def test_train_tensorboard_logs_what_metrics_jsonl_logs(capsys, tmp_path, small_data):
    out = str(tmp_path / "run")
    assert main(["train", *tiny(small_data, "--steps", "60", "-n", "0"), "--out", out, "--tensorboard"]) == 0
    chunks, results = metrics(out)
    scalars = read(out)
    assert [s for s, _ in scalars["train/loss"]] == [r["step"] for r in chunks] == [20, 40, 60]
    assert [v for _, v in scalars["train/loss"]] == [r["loss"] for r in chunks]  # both the float32 chunk mean
    assert [v for _, v in scalars["train/lr"]] == pytest.approx([0.1, 0.01, 0.01])  # decayed from step 30
    assert [v for _, v in scalars["train/lr"]] == [r["lr"] for r in chunks]
    for split in ("train", "dev", "test"):
        (step, value), = scalars[f"split/{split}"]
        assert step == 60 and value == pytest.approx(results[f"{split}_loss"], abs=2e-6)


def test_resumed_run_hides_the_events_logged_past_its_checkpoint(capsys, tmp_path, small_data):
    out = str(tmp_path / "run")
    assert main(["train", *tiny(small_data, "--steps", "40", "-n", "0"), "--out", out, "--tensorboard"]) == 0
    with tensorboard.open_writer(out) as writer:  # as if an interrupted run had logged step 60 after its checkpoint
        writer.log_losses(60, 99.0, 1.0)
    assert main(["train", *tiny(small_data, "--steps", "80", "-n", "0"), "--out", out, "--tensorboard",
                 "--resume"]) == 0
    chunks, _ = metrics(out)
    losses = read(out)["train/loss"]
    assert [s for s, _ in losses] == [20, 40, 60, 80]
    assert [v for _, v in losses] == [r["loss"] for r in chunks]  # 99.0 gone
    assert main(["train", *tiny(small_data, "--steps", "20", "-n", "0"), "--out", out, "--tensorboard",
                 "--overwrite"]) == 0
    assert [s for s, _ in read(out)["train/loss"]] == [20]  # --overwrite removed the old event files


def test_sweep_tensorboard_writes_one_folder_per_run(capsys, tmp_path, small_data):
    out = str(tmp_path / "sweep")
    assert main(["sweep", *tiny(small_data, "--steps", "40", "--lr", "0.05,0.2"), "--out", out, "--tensorboard"]) == 0
    report = json.load(open(os.path.join(out, "sweep.json")))
    assert sorted(os.listdir(os.path.join(out, "tensorboard"))) == ["lr-0.05_seed-42", "lr-0.2_seed-42"]
    for lr in (0.05, 0.2):
        scalars = read(os.path.join(out, "tensorboard", f"lr-{lr}_seed-42"))
        row = next(r for r in report["runs"] if r["lr"] == lr)
        assert [s for s, _ in scalars["train/loss"]] == report["steps"] == [20, 40]
        assert [v for _, v in scalars["train/loss"]] == pytest.approx(report["curves"][row["label"]], rel=1e-6)
        assert [v for _, v in scalars["train/lr"]] == pytest.approx([lr, lr * 0.1])  # its own lr, decayed at 30
        for split in ("train", "dev"):
            assert scalars[f"split/{split}"] == [(40, pytest.approx(row[split], rel=1e-6))]


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_without_tensorboardx_one_line_and_status_2_before_training(capsys, tmp_path, small_data, monkeypatch,
                                                                    command):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now raises ImportError
    out = str(tmp_path / "run")
    assert main([command, *tiny(small_data, "--steps", "20"), "--out", out, "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and 'pip install "makemore-jax[tensorboard]"' in err
    assert not os.path.exists(out)  # nothing trained, nothing written


def test_tensorboard_from_python_needs_a_folder(small_data):
    with pytest.raises(UsageError, match="tensorboard=True writes its event files into out FOLDER"):
        train_model("mlp", data=small_data, steps=20, tensorboard=True)
