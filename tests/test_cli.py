"""The command line end to end: training, eval, sample, resume, and every user error."""

import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli
from makemore_jax.cli import main


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, bundled_words):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(bundled_words[:2000]) + "\n", encoding="utf-8")
    return str(path)


def test_bigram_train_eval_sample(capsys, tmp_path, small_data):
    out = str(tmp_path / "bigram")
    code, stdout, _ = run_cli(capsys, "train", "--model", "bigram", "--data", small_data, "--out", out, "-n", "5")
    assert code == 0
    assert "train 2." in stdout and "samples" in stdout and "checkpoint.msgpack" in stdout
    meta = json.load(open(os.path.join(out, "checkpoint.json")))
    assert meta["model"] == "bigram" and meta["config"]["smoothing"] == 1.0 and len(meta["vocab"]) == 27
    code, stdout, _ = run_cli(capsys, "eval", "--out", out)
    assert code == 0 and f"{meta['results']['dev_loss']:.4f}" in stdout
    code, first, _ = run_cli(capsys, "sample", "--out", out, "-n", "8", "--seed", "3")
    code, second, _ = run_cli(capsys, "sample", "--out", out, "-n", "8", "--seed", "3")
    assert code == 0 and first == second and len(first.splitlines()) == 9


def test_mlp_train_resume_is_bit_identical(capsys, tmp_path, small_data):
    common = ["--model", "mlp-bn", "--data", small_data, "--n-hidden", "16", "--chunk-size", "100",
              "--lr-decay-step", "150", "-n", "0", "--quiet"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert run_cli(capsys, "train", *common, "--steps", "400", "--out", a)[0] == 0
    assert run_cli(capsys, "train", *common, "--steps", "200", "--out", b)[0] == 0
    assert run_cli(capsys, "train", *common, "--steps", "400", "--out", b, "--resume")[0] == 0
    assert open(os.path.join(a, "checkpoint.msgpack"), "rb").read() == open(os.path.join(b, "checkpoint.msgpack"), "rb").read()
    steps = [json.loads(line).get("step") for line in open(os.path.join(b, "metrics.jsonl"))]
    assert steps == [100, 200, 200, 300, 400, 400]  # chunks and the eval line, before and after the resume
    code, stdout, _ = run_cli(capsys, "eval", "--out", a)
    assert code == 0 and "running -> calibrated" in stdout
    dev_running, dev_calibrated = (float(v) for v in stdout.split("dev ")[-1].split()[:3:2])
    assert abs(dev_running - dev_calibrated) < 0.05


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "-3"], "expected a positive integer"),
    (["train", "--steps", "0"], "expected a positive integer"),
    (["train", "--lr", "0"], "lr must be a positive number"),
    (["train", "--lr", "-0.1"], "lr must be a positive number"),
    (["train", "--block-size", "0"], "--block-size must be at least 1"),
    (["train", "--init", "zeros"], "argument --init: invalid choice: 'zeros'"),
    (["train", "--init", "pytorch"], "--init must be one of unit, scaled, fan-in, kaiming, got 'pytorch'"),
    (["train", "--model", "transformer", "--init", "kaiming"], "--init must be one of gpt2, pytorch, got 'kaiming'"),
    (["train", "--min-lr-ratio", "2"], "--min-lr-ratio must be in [0, 1], got 2.0"),
    (["train", "--model", "bigram", "--n-hidden", "10"], "--n-hidden does not apply to --model bigram"),
    (["train", "--model", "nope"], "invalid choice"),
    (["train", "--batch-size", "999999"], "larger than the training split"),
    (["train", "--optimizer", "lion"], "argument --optimizer: invalid choice"),
    (["sample", "--top-k", "0"], "expected a positive integer"),
    (["train", "--lr-decay-step", "-1"], "--lr-decay-step must be >= 0"),
    (["train", "--steps", "x"], "argument --steps: expected a positive integer, got 'x'"),
    (["train", "--grad-accum", "0"], "argument --grad-accum: expected a positive integer, got 0"),
    (["train", "--model", "bigram-nn", "--grad-accum", "7"],  # its full batch: 11,078 rows
     "--grad-accum 7 does not divide the full batch (--batch-size full: 11,078 rows) into equal micro-batches"),
])
def test_bad_flags_give_one_line_and_status_2(capsys, tmp_path, small_data, argv, message):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main([*argv, "--data", small_data, "--out", str(tmp_path)] if argv[0] == "train"
                              else [*argv, "--out", str(tmp_path)]))
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_data_and_checkpoint_errors(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("emma\nmary ann\n")
    latin1, empty, dotted = tmp_path / "latin1.txt", tmp_path / "empty.txt", tmp_path / "dotted.txt"
    latin1.write_bytes("emma\nzoë\n".encode("latin-1"))
    empty.write_text("\n\n")
    dotted.write_text("a.b\n")
    for argv, message in [
        (["train", "--data", str(tmp_path / "missing.txt")], "missing.txt: no such file"),
        (["train", "--data", str(bad)], "bad.txt:2: word 'mary ann' contains whitespace"),
        (["train", "--data", str(tmp_path)], "is a directory"),
        (["train", "--data", str(latin1)], "latin1.txt:2: not valid UTF-8"),
        (["train", "--data", str(empty)], "empty.txt: contains no words"),
        (["train", "--data", str(dotted)], "dotted.txt:1: word 'a.b' contains the boundary token"),
        (["eval", "--out", str(tmp_path / "nothing")], "no checkpoint there"),
        (["sample", "--out", str(tmp_path / "nothing")], "no checkpoint there"),
    ]:
        code, _, err = run_cli(capsys, *argv, *(["--out", str(tmp_path / "o")] if argv[0] == "train" else []))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_corrupt_and_mismatched_checkpoints(capsys, tmp_path, small_data):
    out = str(tmp_path / "ckpt")
    assert run_cli(capsys, "train", "--model", "bigram", "--data", small_data, "--out", out, "-n", "0")[0] == 0
    good = open(os.path.join(out, "checkpoint.msgpack"), "rb").read()
    # resuming with another model or config is refused
    code, _, err = run_cli(capsys, "train", "--model", "bigram", "--smoothing", "0.5", "--data", small_data,
                           "--out", out, "--resume")
    assert code == 2 and "trained with --smoothing 1.0, not --smoothing 0.5" in err
    for damaged in (good[: len(good) // 2], b"not msgpack at all", good[:-1] + b"\x00" * 9):
        open(os.path.join(out, "checkpoint.msgpack"), "wb").write(damaged)
        code, _, err = run_cli(capsys, "sample", "--out", out)
        assert code == 2 and "checkpoint" in err and len(err.strip().splitlines()) == 1, err


def test_no_half_written_files_on_failure(capsys, tmp_path, small_data):
    out = tmp_path / "o"
    assert run_cli(capsys, "train", "--model", "bigram", "--data", small_data, "--out", str(out), "-n", "0")[0] == 0
    assert sorted(os.listdir(out)) == ["checkpoint.json", "checkpoint.msgpack"]  # no temp files left behind


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "makemore_jax", "eval", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "no checkpoint there" in proc.stderr


def test_lr_find_and_plot_write_their_files(capsys, tmp_path, small_data):
    pytest.importorskip("matplotlib")
    out = str(tmp_path / "lr")
    code, stdout, _ = run_cli(capsys, "lr-find", "--data", small_data, "--out", out, "--steps", "200", "--quiet")
    assert code == 0 and "lowest smoothed loss at lr" in stdout
    sweep = json.load(open(os.path.join(out, "lr_find.json")))
    assert len(sweep["lr"]) == len(sweep["loss"]) == 200 and sweep["lr"][0] == pytest.approx(1e-3)
    assert os.path.getsize(os.path.join(out, "lr_find.png")) > 1000
    code, _, err = run_cli(capsys, "plot", "--out", out)
    assert code == 2 and "metrics.jsonl: no metrics log" in err
    train = str(tmp_path / "t")
    assert run_cli(capsys, "train", "--data", small_data, "--out", train, "--steps", "300", "--chunk-size", "100",
                   "-n", "0", "--quiet")[0] == 0
    code, stdout, _ = run_cli(capsys, "plot", "--out", train)
    assert code == 0 and os.path.getsize(os.path.join(train, "loss.png")) > 1000


def test_the_compile_cache_goes_under_the_user_cache_unless_the_environment_says(monkeypatch, tmp_path):
    import jax

    from makemore_jax.cli import use_compilation_cache
    before = jax.config.jax_compilation_cache_dir
    min_seconds = jax.config.jax_persistent_cache_min_compile_time_secs
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")  # the user's choice (here: off) wins
        use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == before
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
        use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "makemore-jax" / "xla")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_seconds)


def test_train_help_shows_each_models_own_training_defaults():
    """Derived from the registry: a model whose train_defaults differ is named with its value."""
    from makemore_jax import models
    from makemore_jax.cli import build_parser
    parser = build_parser()
    train_parser = next(a for a in parser._subparsers._group_actions).choices["train"]
    text = " ".join(train_parser.format_help().split())
    steps = models.get("transformer").train_defaults["steps"]
    assert f"transformer: {steps}" in text and "bigram-nn: 500" in text
    by_optimizer = {}  # optimizer -> the trained models that default to it, in registry order
    for n, m in models.REGISTRY.items():
        if n != "bigram":  # the closed form trains no steps
            by_optimizer.setdefault(m.train_defaults.get("optimizer", "sgd"), []).append(n)
    (common, _), *others = sorted(by_optimizer.items(), key=lambda item: -len(item[1]))
    assert "rnn" in by_optimizer["adamw"] and f"(default {common};" in text  # the most common value first
    for optimizer, names in others:  # argparse may wrap a line after a name's hyphen
        assert f"{', '.join(names)}: {optimizer}" in text.replace("- ", "-")
    assert f"wavenet: {models.get('wavenet').train_defaults['lr_decay_step']}" in text
    assert "training steps (default 200000;" in text  # TrainConfig's own default, most models'


@pytest.mark.parametrize("argv, message", [
    (["train", "--batch-size", "100000"], "--batch-size 100000 is larger than the training split"),
    (["train", "--warmup-steps", "9", "--steps", "5"], "--warmup-steps must be in [0, steps], got 9"),
    (["train", "--model", "bigram-nn", "--n-hidden", "10"], "--n-hidden does not apply to --model bigram-nn"),
    (["sample", "--top-k", "99"], None),
])
def test_errors_name_the_flag_as_typed(capsys, tmp_path, small_data, argv, message):
    if argv[0] == "sample":  # a checkpoint to sample from first
        out = str(tmp_path / "b")
        assert main(["train", "--model", "bigram", "--data", small_data, "--out", out, "-n", "0", "--quiet"]) == 0
        capsys.readouterr()
        code = main([*argv, "--out", out])
        message = "--top-k 99 must be in 1.."
    else:
        code = main([*argv, "--data", small_data, "--out", str(tmp_path / "o"), "-n", "0", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_python_callers_see_settings_as_fields(small_data):
    from makemore_jax import train_model
    from makemore_jax.settings import SettingError
    with pytest.raises(SettingError, match="batch_size 100000 is larger than the training split") as info:
        train_model("mlp", data=small_data, batch_size=100_000)
    assert info.value.field == "batch_size"
    assert info.value.as_flags().startswith("--batch-size 100000 is larger")
