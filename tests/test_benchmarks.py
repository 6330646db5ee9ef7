"""The benchmark suite: the quick run writes real figures; `makemore-jax bench`; the references.

The quick suite runs once, in a subprocess, without PyTorch (as in CI); the PyTorch
references get their own small tests, skipped without torch. No timing is asserted, only
that every figure is a real, positive number and every registered model has its rows.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from makemore_jax import cli, commands, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import suite  # noqa: E402
from benchmarks.references import REFERENCES  # noqa: E402


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--no-torch", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "results.json") as f:
        record = json.load(f)
    return out, record, (out / "results.md").read_text()


def test_quick_suite_records_the_machine(quick_run):
    _, record, md = quick_run
    m = record["machine"]
    assert m["cpu_model"] and m["cpu_model"] in md
    assert m["cores"] >= 1 and m["memory_gib"] > 0.1
    assert m["jax_device"].startswith("cpu") and m["packages"]["jax"] and m["date"][:2] == "20"
    assert m["git_commit"]
    assert record["quick"] is True and record["torch"] is False
    assert "PyTorch columns skipped" in md
    assert set(record["benchmarks"]) == {n for n in suite.DEFAULT if n in suite.available()}


def test_quick_suite_has_a_training_row_per_trained_model(quick_run):
    _, record, md = quick_run
    result = record["benchmarks"]["training"]["result"]
    trained = [name for name, m in models.REGISTRY.items() if m.fit is None]
    assert list(result["models"]) == trained  # every registered model, none fitted in closed form
    assert positive(result["peak_gflops"]["jax"])
    for name in trained:
        row = result["models"][name]
        fused, per_step = row["sides"]["JAX fused engine (ours)"], row["sides"]["JAX per-step jax.jit"]
        for side in (fused, per_step):
            assert positive(side["rate"]) and side["min"] <= side["rate"] <= side["max"]
            assert len(side["rates"]) == side["repeats"] >= 5
            assert math.isfinite(side["value"])  # the last training loss
        assert positive(row["ratios"]["per-step jax.jit"])
        assert positive(fused["flops_per_step"]) and 0 < row["peak_share"] < 1
        assert row["ratios"]["lecture eager"] is None and any("torch" in m for m in row["missing"])
        assert positive(row["peak_rss_mb"]["jax"])
        assert f"| {name} |" in md


def test_quick_suite_other_benchmarks(quick_run):
    out, record, _ = quick_run
    b = {name: v["result"] for name, v in record["benchmarks"].items()}
    assert positive(b["micrograd"]["ratio"]) and b["micrograd"]["loss_jax"] == pytest.approx(b["micrograd"]["loss_micrograd"], rel=1e-4)
    jax_sampler = b["sampling"]["sides"]["JAX sample_ids (batched, jitted)"]
    assert positive(jax_sampler["rate"]) and 1 < jax_sampler["value"] < 30  # mean name length of a trained MLP
    for name, row in b["evaluation"]["models"].items():
        assert positive(row["sides"]["JAX evaluate.split_loss"]["rate"]) and row["examples"] > 1000, name
    points = b["scaling"]["points"]
    assert {p["sweep"] for p in points} == {"batch", "width"}
    for p in points:
        assert positive(p["steps_per_s"]["JAX fused, XLA 1 thread (as the CLI)"]) and positive(p["flops_per_step"])
    big, small = max(points, key=lambda p: p["flops_per_step"]), min(points, key=lambda p: p["flops_per_step"])
    assert big["flops_per_step"] > 100 * small["flops_per_step"]
    assert os.path.getsize(b["scaling"]["png"]) > 10_000 and os.path.dirname(b["scaling"]["png"]) == str(out)
    assert all(positive(r["cli_s"]) for r in b["headline"]["rows"].values()) and "mlp" in b["headline"]["rows"]


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
    assert commands.benchmarks_root() == ROOT


# ----------------------------------------------------------------------------- the PyTorch references


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_loops_train_the_same_sizes(name):
    pytest.importorskip("torch")
    from benchmarks import sides
    model, config, X, Y, vocab = sides.problem(name)
    batch = sides.train_config(model).batch_size
    loops = sides.reference_module(name).loops(X[:5000], Y[:5000], config, batch_size=batch, seed=0)
    assert "lecture eager" in loops and len(loops) >= 2, sorted(loops)  # the lectures' code and a PyTorch user's
    for variant in [v for v in loops if v != "torch.compile"]:  # torch.compile: minutes of compiling
        first = loops[variant](1)
        later = loops[variant](150)
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
