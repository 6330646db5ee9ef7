"""Sweeps: every swept run trains as it would alone, the tables, and the sweep command.

Here JAX has one device, so the runs are vmapped on it; tests/test_parallel.py checks a
sweep sharded over several host devices.
"""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from makemore_jax import data, loop, models, sweep
from makemore_jax.cli import main
from makemore_jax.train import Diverged, TrainConfig, create_train_state, fit

from conftest import assert_trees_close, json_log


@pytest.fixture(scope="module")
def arrays(bundled_words):
    words = bundled_words[:600]
    vocab = data.Vocab.from_words(words)
    return vocab, data.build_context_dataset(data.split_words(words)[0], vocab, 3)


@pytest.fixture()
def small_data(tmp_path, bundled_words):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(bundled_words[:600]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def _restore_xla_flags(monkeypatch):
    """The sweep command asks for host devices through XLA_FLAGS; keep that out of other tests."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


CASES = {  # (train config, swept values, seeds); lr and weight decay are traced even when one value is given
    # adamw with warmup: the init swept, a weight decay from the sweep, one seed
    "mlp": (dict(optimizer="adamw", lr=0.01, warmup_steps=10), {"init": ["unit", "kaiming"], "weight_decay": [1.0]}, [3]),
    # BatchNorm, sgd with its step decay: a learning rate from the sweep, two seeds (more lrs: test_parallel.py)
    "mlp-bn": (dict(lr_decay_step=30), {"lr": [0.2]}, [1, 2]),
}


@pytest.mark.parametrize("name", CASES)
def test_each_swept_run_trains_as_it_would_alone(arrays, tmp_path, name):
    vocab, (X, Y) = arrays
    train_over, values, seeds = CASES[name]
    model = models.get(name)
    config = model.make_config(vocab_size=vocab.size, n_hidden=16)
    tc = TrainConfig(steps=60, batch_size=32, chunk_size=20, **train_over)
    runs = sweep.grid(model, config, tc, values, seeds)
    result = sweep.train_sweep(model, runs, X, Y, quiet=True)
    assert result.curves.shape == (len(runs), 3) and result.steps.tolist() == [20, 40, 60]
    for i, run in enumerate(runs):
        log = tmp_path / f"{i}.jsonl"
        ts = create_train_state(model, run.config, run.train_config, jax.random.key(run.seed))
        ts, _ = fit(model, run.config, run.train_config, X, Y, ts, callbacks=[json_log(str(log), run.train_config)])
        alone = [json.loads(line)["loss"] for line in open(log)]
        np.testing.assert_allclose(result.curves[i], alone, rtol=1e-5, err_msg=run.label)
        swept = sweep.unstack(result.states, i)
        assert int(swept.step) == 60
        assert_trees_close(swept.params, ts.params, rtol=1e-4, atol=1e-6)
        assert_trees_close(swept.model_state, ts.model_state, rtol=1e-4, atol=1e-6)
    assert len({tuple(c) for c in result.curves}) == len(runs)  # the swept values do change the runs


def test_grid_order_labels_and_refusals():
    model = models.get("mlp")
    config = model.make_config(n_hidden=16)
    runs = sweep.grid(model, config, TrainConfig(), {"lr": [0.1, 0.2], "init": ["unit", "kaiming"]}, [1, 2])
    assert [r.label for r in runs[:3]] == ["lr=0.1 init=unit seed=1", "lr=0.1 init=unit seed=2",
                                           "lr=0.1 init=kaiming seed=1"]
    assert len(runs) == 8 and runs[-1].train_config.lr == 0.2 and runs[-1].config.init == "kaiming"
    assert runs[-1].config == dataclasses.replace(config, init="kaiming")
    with pytest.raises(ValueError, match="changes the parameter shapes"):
        sweep.grid(model, config, TrainConfig(), {"n_hidden": [16, 32]}, [1])
    with pytest.raises(ValueError, match="cannot sweep 'steps'"):
        sweep.grid(model, config, TrainConfig(), {"steps": [1, 2]}, [1])


def test_summary_mean_sd_and_best_first():
    model = models.get("mlp")
    runs = sweep.grid(model, model.make_config(), TrainConfig(), {"lr": [0.1, 0.2]}, [1, 2, 3])
    dev = [2.3, 2.5, 2.4, 2.1, 2.2, float("nan")]  # lr 0.2 seed 3 diverged
    losses = [{"train": d - 0.1, "dev": d} for d in dev]
    run_rows, config_rows = sweep.summarize(runs, losses)
    assert [r["label"] for r in run_rows[:2]] == ["lr=0.2 seed=1", "lr=0.2 seed=2"]
    assert np.isnan(run_rows[-1]["dev"])  # a diverged run sorts last
    by_label = {r["label"]: r for r in config_rows}
    assert by_label["lr=0.1"]["dev_mean"] == pytest.approx(2.4)
    assert by_label["lr=0.1"]["dev_sd"] == pytest.approx(np.std([2.3, 2.5, 2.4], ddof=1))
    assert by_label["lr=0.1"]["train_mean"] == pytest.approx(2.3) and by_label["lr=0.1"]["seeds"] == 3
    assert [r["label"] for r in config_rows] == ["lr=0.1", "lr=0.2"]  # lr=0.2 has a NaN mean: last
    table = sweep.markdown(run_rows, config_rows)
    assert "| lr=0.1 | 3 | 2.3000 ± 0.1000 | 2.4000 ± 0.1000 |" in table


def test_a_run_that_diverges_is_marked_and_the_others_go_on():
    curves = sweep.Curves(3)
    curves.diverged[2] = 7
    losses = np.array([[2.0, np.nan, np.nan], [2.0, 1.9, 1.8], [np.inf, 1.0, 1.0]])
    curves.mark(10, loop.Divergence(27).first_bad(losses), None, losses)
    curves.on_chunk(None, 13, losses, 0.0)
    assert curves.diverged == [11, None, 7] and curves.steps == [13]  # the first bad step; an earlier mark stays
    np.testing.assert_allclose(curves.means[0], [np.nan, 1.9, np.inf])


def test_a_swept_run_stops_for_the_same_reason_as_train(arrays):
    """A loss above 10x the first, finite, is divergence in both (loop.Divergence): train raises, the sweep marks."""
    vocab, (X, Y) = arrays
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, n_hidden=16)
    tc = TrainConfig(steps=20, chunk_size=1, lr=1e3, lr_decay_step=None)  # a far too large lr: the loss shoots up
    runs = sweep.grid(model, config, tc, {"lr": [1e3, 0.05]}, [1])
    result = sweep.train_sweep(model, runs, X, Y, quiet=True)
    with pytest.raises(Diverged, match=r"the loss \S+ is more than 10x the initial") as info:
        fit(model, config, tc, X, Y, create_train_state(model, config, tc, jax.random.key(1)))
    assert result.diverged == [info.value.step, None]


def test_sweep_command_tables_checkpoints_and_eval(capsys, tmp_path, small_data):
    out = str(tmp_path / "sweep")
    common = ["--data", small_data, "--n-hidden", "16", "--steps", "40", "--chunk-size", "20"]
    assert main(["sweep", *common, "--lr", "1e36,0.05,0.2", "--seed", "1,2", "--out", out, "--keep", "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "| configuration | seeds |" in stdout and "6 runs x 40 steps" in stdout
    report = json.load(open(os.path.join(out, "sweep.json")))
    assert [c["seeds"] for c in report["configs"]] == [2, 2, 2] and len(report["runs"]) == 6
    assert report["configs"][0]["dev_mean"] <= report["configs"][1]["dev_mean"]
    assert report["configs"][2]["label"] == "lr=1e+36" and report["configs"][2]["dev_mean"] is None  # inf/NaN: last
    assert [r["lr"] for r in report["runs"][-2:]] == [1e36, 1e36]
    assert os.path.isfile(os.path.join(out, "sweep.md"))
    assert os.path.getsize(os.path.join(out, "sweep.png")) > 1000  # matplotlib is in the dev extra

    # the kept checkpoint of run "lr=0.2 seed=2" is what `train --lr 0.2 --seed 2` makes
    alone = str(tmp_path / "alone")
    assert main(["train", *common, "--lr", "0.2", "--seed", "2", "--out", alone, "-n", "0", "--quiet"]) == 0
    capsys.readouterr()
    kept = os.path.join(out, "runs", "lr-0.2_seed-2")
    row = next(r for r in report["runs"] if r["label"] == "lr=0.2 seed=2")
    results = json.load(open(os.path.join(alone, "checkpoint.json")))["results"]
    assert row["dev"] == pytest.approx(results["dev_loss"], rel=1e-5)
    assert row["train"] == pytest.approx(results["train_loss"], rel=1e-5)
    assert main(["eval", "--out", kept]) == 0
    assert f"dev   {results['dev_loss']:.4f}" in capsys.readouterr().out
    assert main(["sample", "--out", kept, "-n", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--n-hidden", "8,16"], "changes the parameter shapes"),
    (["sweep", "--model", "bigram"], "fitted in closed form"),
    (["sweep", "--model", "bigram-nn", "--init", "unit"], "--init does not apply to --model bigram-nn"),
    (["sweep", "--lr", "0.1,fast"], "invalid float value"),
    (["sweep", "--lr", "0.1,-1"], "lr must be a positive number"),
    (["sweep", "--devices", "0"], "expected a positive integer or 'all'"),
    (["train", "--devices", "two"], "expected a positive integer or 'all'"),
    (["train", "--devices", "64"], "--devices 64: only"),
    (["train", "--coordinator", "127.0.0.1:1234"], "go together"),
])
def test_bad_sweep_and_device_flags_give_one_line_and_status_2(capsys, monkeypatch, tmp_path, small_data, argv,
                                                               message):
    # The CPU stays as it is (main would split it into --devices host devices were JAX not started yet).
    monkeypatch.setenv("XLA_FLAGS", f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count="
                                    f"{len(jax.devices())}")
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main([*argv, "--data", small_data, "--out", str(tmp_path), "--steps", "2"]))
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
