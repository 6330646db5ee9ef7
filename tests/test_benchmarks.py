"""The benchmark suite, smoked in this process at toy sizes (BENCH_INLINE=1, BENCH_MODE=toy):
real structure and relations, no timing claims. The PyTorch references get their own small
tests, skipped without torch.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import harness, sides, suite, training
from benchmarks.references import REFERENCES
from makemore_jax import cli, commands, models


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture
def inline(monkeypatch, tmp_path):
    for name, value in {"BENCH_INLINE": "1", "BENCH_MODE": "toy", "BENCH_NO_TORCH": "1",
                        "BENCH_OUT": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def check_side(fig: dict) -> None:
    assert positive(fig["rate"]) and fig["min"] <= fig["rate"] <= fig["max"] and fig["repeats"] == len(fig["rates"])
    assert math.isfinite(fig["value"])


def test_suite_writes_every_benchmark_row(inline):
    names = ["micrograd", "sampling", "scaling", "sweep", "headline"]
    assert suite.main([*names, "--quick", "--no-torch", "--out", str(inline)]) == 0
    record = json.loads((inline / "results.json").read_text())
    md = (inline / "results.md").read_text()
    assert list(record["benchmarks"]) == names and record["torch"] is False and "PyTorch columns skipped" in md
    assert record["machine"]["cpu_model"] in md and record["machine"]["cores"] >= 1
    b = {name: v["result"] for name, v in record["benchmarks"].items()}
    assert b["micrograd"]["loss_jax"] == pytest.approx(b["micrograd"]["loss_micrograd"], rel=1e-4)
    check_side(b["sampling"]["sides"]["JAX sample_ids (batched, jitted)"])
    points = b["scaling"]["points"]
    assert {p["sweep"] for p in points} == {"batch", "width"} and (inline / "scaling.png").stat().st_size > 10_000
    big, small = max(points, key=lambda p: p["flops_per_step"]), min(points, key=lambda p: p["flops_per_step"])
    assert big["flops_per_step"] > 10 * small["flops_per_step"]
    for side in ("one after another", "swept at once"):
        check_side(b["sweep"]["sides"][side])
    assert positive(b["headline"]["rows"]["mlp"]["cli_s"]) and b["headline"]["steps"] == 50  # one CLI run
    for name in names:
        assert f"## {name}" in md
    assert "| micrograd, cycle collector paused |" in md and "| swept at once |" in md and "| 256 |" in md
    assert "| mlp --init unit |" in md and "| **total** |" in md


def test_training_rows_and_relations(inline):
    trained = [n for n, m in models.REGISTRY.items() if not m.ability(models.ClosedForm)]
    assert sides.trained_models() == [n for n in trained if not n.startswith("gpt2")] and "gpt" in trained
    assert "gpt2" in trained and not any(n.startswith("gpt2") for n in sides.trained_models("quick"))
    result = training.main(mode="toy", names=["bigram-nn", "mlp"])
    for name in ("bigram-nn", "mlp"):
        row = result["models"][name]
        check_side(row["sides"][training.FUSED])
        check_side(row["sides"][training.PER_STEP])
        assert row["gflops"] <= result["peak_gflops"]["best"] and 0 < row["peak_share"] < 1
        assert row["ratios"]["lecture eager"] is None and any("torch" in m for m in row["missing"])
    assert result["models"]["mlp"]["params"] == 11_897


@pytest.mark.parametrize("name", ["mlp-bn", "rnn"])
def test_fused_and_per_step_loops_take_the_same_steps(name):
    fused, _ = sides.jax_training(name, "fused", chunk=5, seed=3)
    per_step, info = sides.jax_training(name, "per-step", seed=3)
    assert fused(10) == (10, pytest.approx(per_step(10)[1], rel=1e-4))
    assert positive(info["flops_per_step"])


def test_evaluation_rows(inline):
    result = training.evaluation(mode="toy", names=["mlp", "rnn"])
    for name, row in result["models"].items():
        check_side(row["sides"][training.EVAL])
        assert row["sides"][training.EVAL]["value"] == pytest.approx(math.log(27), abs=0.6)  # fresh init


def test_worker_process_protocol():
    with harness.Pool() as pool:
        sides_ = {"a": harness.Side("jax", "benchmarks.sides:jax_training", {"model": "bigram-nn", "chunk": 10}),
                  "b": harness.Side("jax", "benchmarks.sides:jax_training", {"model": "bigram-nn", "loop": "per-step"})}
        figures = harness.compare(pool, sides_, repeats=2, seconds=0.01)
        assert positive(pool.peak_rss_mb()["jax"])
        with pytest.raises(harness.WorkerError, match="no-such"):
            pool["jax"].call(op="call", factory="benchmarks.sides:problem", args={"model_name": "no-such"})
    for fig in figures.values():
        check_side(fig)


# ----------------------------------------------------------------------------- the command


def test_unknown_benchmark_is_one_line_and_status_2(capsys):
    assert suite.main(["no-such-benchmark"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-benchmark" in err[0]


def test_bench_without_a_checkout_is_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.setattr(commands, "benchmarks_root", lambda: None)
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "benchmarks/" in err[0] and "source checkout" in err[0]


def test_bench_finds_this_checkout():
    from benchmarks.machine import ROOT
    assert commands.benchmarks_root() == ROOT


# ----------------------------------------------------------------------------- the PyTorch references


@pytest.mark.parametrize("name", sorted(n for n in REFERENCES if n in models.REGISTRY))
def test_reference_loops_train_the_same_sizes(name):
    pytest.importorskip("torch")
    model, config, X, Y, vocab = sides.problem(name)
    batch = sides.train_config(model).batch_size
    loops = sides.reference_module(name).loops(X[:5000], Y[:5000], config, batch_size=batch, seed=0)
    assert "lecture eager" in loops and len(loops) >= 2, sorted(loops)  # the lectures' code and a PyTorch user's
    for variant in [v for v in loops if v != "torch.compile"]:  # torch.compile: minutes of compiling
        first = loops[variant](1)
        later = loops[variant](20)
        assert math.isfinite(first) and later < first, (variant, first, later)
    if name == "mlp":  # the lecture-3 init (the model's default): the first loss is -ln(1/27)
        fresh = sides.reference_module(name).loops(X, Y, config, batch_size=32, seed=1)["lecture eager"](1)
        assert fresh == pytest.approx(np.log(vocab.size), abs=0.05)


def test_reference_samplers_make_names():
    torch = pytest.importorskip("torch")
    from benchmarks.references import torch_mlp
    g = torch.Generator().manual_seed(0)
    params = {"C": torch.randn(27, 10, generator=g), "W1": torch.randn(30, 64, generator=g) * 0.1,
              "b1": torch.zeros(64), "W2": torch.randn(64, 27, generator=g) * 0.1, "b2": torch.zeros(27)}
    one = torch_mlp.sample_lecture(params, 20, block_size=3, seed=0)
    assert len(one) == 20 and all(row[-1] == 0 and 0 not in row[:-1] for row in one)
    batched = torch_mlp.sample_batched(params, 50, block_size=3, max_len=40, seed=0)
    assert batched.shape[0] == 50 and batched.shape[1] <= 40
    for row in batched.tolist():  # zeros after the end token
        if 0 in row:
            assert not any(row[row.index(0):])
