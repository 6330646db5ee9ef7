"""The GPT benchmarks' pieces at toy sizes: the parity driver (both loops end in an exact
validation loss on the same windows), the scaling grid, the training rows of gpt and the GPU
check's dry run (both files and every row). No timing claims; skipped without torch."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import gpt, suite, training

pytest.importorskip("torch")


@pytest.fixture
def inline(monkeypatch, tmp_path):
    for name, value in {"BENCH_INLINE": "1", "BENCH_MODE": "toy", "BENCH_OUT": str(tmp_path), "XLA_FLAGS": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BENCH_NO_TORCH", raising=False)
    return tmp_path


@pytest.fixture
def small_text(tmp_path):
    with open(gpt.CORPUS, encoding="utf-8") as f:
        text = f.read(6_000)
    path = tmp_path / "small.txt"
    path.write_text(text, encoding="utf-8")
    return str(path), len(set(text))


def test_text_ids_are_the_sorted_character_set(small_text):
    ids, vocab = gpt.text_ids(small_text[0])
    text = open(small_text[0], encoding="utf-8").read()
    assert vocab == small_text[1] and len(ids) == len(text)
    assert "".join(sorted(set(text))[i] for i in ids[:200]) == text[:200]


def test_toy_parity_scores_both_loops_on_the_same_windows(small_text, tmp_path, capsys):
    corpus, vocab = small_text
    result = gpt.parity(seeds=(0,), steps=2, corpus=corpus, cache=str(tmp_path / "cache"), nice=0)
    row = result["rows"][0]
    for side in ("ours", "reference"):  # a N(0, 0.02) init starts at the uniform guess; two steps lower it
        assert math.log(vocab) - 0.8 < row[side]["val_loss"] < math.log(vocab) - 0.1, side
        assert abs(row[side]["train_loss"] - row[side]["val_loss"]) < 0.2, side
    # nanoGPT's warmup is lr (it + 1) / (warmup + 1), optax's lr * count / warmup (0 at the first step)
    assert 0 < result["difference"] < 0.3 and result["mean_ours"] == row["ours"]["val_loss"]
    out = capsys.readouterr().out
    assert "| 0 |" in out and f"| **mean** | **{row['ours']['val_loss']:.4f}** |" in out and "Means agree" in out
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ours-seed0.json", "reference-seed0.json"]
    again = gpt.parity(seeds=(0,), steps=2, corpus=corpus, cache=str(tmp_path / "cache"), nice=0)  # from the cache
    assert again["rows"] == result["rows"]


def test_scaling_grid_at_one_point(inline, capsys):
    (point,) = gpt.scaling("toy", torch=True)
    assert (point["n_embd"], point["block_size"]) == (32, 16)
    assert point["jax"] > 0 and point["torch"] > 0 and point["flops_per_step"] > 0
    assert point["torch_side"] in ("torch 1t", "torch 2t")
    assert "| 32 | 16 |" in capsys.readouterr().out


def test_gpt_joins_the_training_rows(inline):
    r = training.main(mode="toy", names=["gpt"])["models"]["gpt"]
    assert r["batch_size"] == 12 and r["flops_per_step"] > 0
    sides = r["sides"]
    eager = [s for s in sides if s.startswith(training.torch_side("lecture eager", 1).rsplit(",", 1)[0])]
    assert eager, sorted(sides)  # nanoGPT's eager loop, at each thread count the mode times
    for side in (training.FUSED, *eager):
        assert sides[side]["rate"] > 0 and math.isfinite(sides[side]["value"]), side


def test_gpu_check_dry_run_writes_both_files(inline):
    assert suite.main(["gpu", "--dry-run", "--out", str(inline)]) == 0
    record = json.loads((inline / "results.json").read_text())
    md = (inline / "results.md").read_text()
    result = record["benchmarks"]["gpu"]["result"]
    assert result["dry_run"] is True
    steps = {r["step"]: r for r in result["steps"]}
    assert list(steps) == ["device tests", "lecture MLP", "gpt, CPU recipe", "gpt, GPU recipe"]
    assert all(r["status"] == 0 for r in steps.values()), {k: r["tail"] for k, r in steps.items()}
    for name in ("gpt, CPU recipe", "gpt, GPU recipe"):
        assert math.isfinite(steps[name]["losses"]["val_loss"]) and f"| {name} | 0 |" in md
    command = steps["gpt, GPU recipe"]["command"]
    assert "--n-embd 32" in command and "--dropout 0.2" in command and "--batch-size 4" in command
    for dtype in ("float32", "bfloat16"):
        assert result["speed"][dtype]["JAX fused"]["rate"] > 0 and result["speed"][dtype]["PyTorch nanoGPT"]["rate"] > 0
        assert f"| {dtype} |" in md


def test_own_flags_only_with_their_benchmark(capsys):
    with pytest.raises(SystemExit) as e:
        suite.main(["training", "--parity"])
    assert e.value.code == 2 and "--parity" in capsys.readouterr().err
