"""The GPT benchmarks' pieces at toy sizes: the parity driver (both loops end in an exact
validation loss on the same windows), the scaling grid, the training rows of gpt (every
PyTorch variant; nanoGPT's step through a torch.compile'd module, dynamo's "eager" backend, as
inductor's compile takes tens of seconds even at toy sizes) and the GPU check's dry run (both
files and every row, GPT-2's tokens/s too). No timing claims; skipped without torch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import gpt, suite, training

pytest.importorskip("torch")


@pytest.fixture
def inline(monkeypatch, tmp_path):
    for name, value in {"BENCH_INLINE": "1", "BENCH_MODE": "toy", "BENCH_OUT": str(tmp_path)}.items():
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
    result = gpt.parity(seeds=(0,), steps=2, corpus=corpus, cache=str(tmp_path / "cache"))
    row = result["rows"][0]
    for side in ("ours", "reference"):  # a N(0, 0.02) init starts at the uniform guess; two steps lower it
        assert math.log(vocab) - 0.8 < row[side]["val_loss"] < math.log(vocab) - 0.1, side
        assert abs(row[side]["train_loss"] - row[side]["val_loss"]) < 0.2, side
    # nanoGPT's warmup is lr (it + 1) / (warmup + 1), optax's lr * count / warmup (0 at the first step)
    assert 0 < result["difference"] < 0.3 and result["mean_ours"] == row["ours"]["val_loss"]
    out = capsys.readouterr().out
    assert "| 0 |" in out and f"| **mean** | **{row['ours']['val_loss']:.4f}** |" in out and "Means agree" in out
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ours-seed0.json", "reference-seed0.json"]
    again = gpt.parity(seeds=(0,), steps=2, corpus=corpus, cache=str(tmp_path / "cache"))  # from the cache
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
    for side in (training.FUSED, *eager, training.torch_side("torch.nn + torch.optim", 1)):
        assert sides[side]["rate"] > 0 and math.isfinite(sides[side]["value"]), side
    assert r["missing"] == ["torch.compile (skipped in --quick)"]  # toy mode skips compiling only


def _toy_gpt_config():
    import types
    return types.SimpleNamespace(**gpt.gpt_config(20, n_embd=16, n_head=2, n_layer=1, block_size=8))


def test_gpt_row_offers_every_pytorch_variant():
    from benchmarks.references import torch_gpt
    full = training.model_sides("gpt", torch=True, quick=False)
    assert full[training.torch_side("torch.compile", 1)].process == "torch-compile-1t"
    ids = np.arange(400) % 20  # a cycle: each next token is learnable
    loops = torch_gpt.loops(ids, None, _toy_gpt_config(), batch_size=4, seed=0, lr=1e-2)
    assert set(loops) == set(training.THREADS)  # so no column of the row is missing ("failed")
    first, fused_first = loops["lecture eager"](1), loops["torch.nn + torch.optim"](1)
    eager, fused = loops["lecture eager"](30), loops["torch.nn + torch.optim"](30)
    # the same init, batches and update; fused AdamW differs only in float rounding
    assert fused_first == pytest.approx(first, abs=1e-6) and fused == pytest.approx(eager, abs=1e-4)
    assert eager < first - 0.3, (first, eager)


def test_train_step_takes_a_compiled_forward():
    """A torch.compile'd module raises on bool()/len(); the step must call it, not test it. The
    "eager" backend traces through dynamo (the same wrapper) without inductor's minutes of compiling."""
    import torch

    from benchmarks.references import torch_gpt
    config, ids = _toy_gpt_config(), torch.randint(0, 20, (3, 9), generator=torch.Generator().manual_seed(0))
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()  # [3, 8] inputs and next-token targets
    losses, weights = [], []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = torch_gpt.GPT(config)
        opt = torch_gpt.configure_optimizers(model, 0.1, 1e-2, (0.9, 0.99))
        forward = torch.compile(model, backend="eager", fullgraph=True) if compiled else None
        losses.append([torch_gpt.train_step(model, opt, x, y, lr=1e-2, forward=forward)
                       for _ in range(3)])
        weights.append(model.lm_head.weight.detach().clone())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and losses[0][2] < losses[0][0]
    assert torch.allclose(weights[0], weights[1], atol=1e-6)


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
    assert list(result["speed"]) == ["float32"]  # bfloat16 (autocast, ours): GPT-2's row, next
    assert result["speed"]["float32"]["JAX fused"]["rate"] > 0 and result["speed"]["float32"]["PyTorch nanoGPT"]["rate"] > 0
    assert "| float32 |" in md
    tokens = result["gpt2"]["tokens"]  # GPT-2's row, 2 x 16 tokens a step; no MFU without a known peak (a CPU)
    for side in ("JAX fused", "PyTorch nanoGPT"):
        assert tokens[side]["tokens_per_s"] == pytest.approx(32 * result["gpt2"]["speed"][side]["rate"])
        assert tokens[side]["mfu"] is None and f"| {side} | {tokens[side]['tokens_per_s']:,.0f} | — |" in md
    assert "GPT-2 124M (gpt2; batch 2" in md and "torch.compile" in md


def test_own_flags_only_with_their_benchmark(capsys):
    with pytest.raises(SystemExit) as e:
        suite.main(["training", "--parity"])
    assert e.value.code == 2 and "--parity" in capsys.readouterr().err
