"""gpt-speedrun: its registry entry, the end-of-run evaluation without the training split, the
evaluation's batching, and the speedrun benchmark's pieces at toy sizes (no timing claims)."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest

from makemore_jax import data, models, optim
from makemore_jax import train_model as train
from makemore_jax.evaluate import split_loss
from makemore_jax.models import speedrun, transformer


@pytest.fixture
def small_text(tmp_path):
    with open(data.DEFAULT_TEXT, encoding="utf-8") as f:
        text = f.read(8_000)
    path = tmp_path / "small.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


TOY = {"n_embd": 16, "n_head": 2, "block_size": 16, "batch_size": 4}


def test_the_entry_is_the_transformer_with_every_speedrun_option():
    model = models.get("gpt-speedrun")
    config = model.make_config(vocab_size=76)
    assert model.init is transformer.init and model.kind.name == "text"
    assert (config.pos, config.norm, config.qk_norm, config.activation, config.tie_embeddings, config.zero_init_proj,
            config.softcap) == ("rotary", "rms-nogain", True, "relu2", False, True, 0.0)
    tc = optim.TrainConfig(**model.train_defaults)
    assert (tc.optimizer, tc.schedule, tc.eval_train) == ("muon", "wsd", False)
    params, _ = transformer.init(jax.random.key(0), config)
    groups = optim.param_groups(params, model.param_labels)
    assert groups["blocks"][0]["attn"]["c_attn"]["W"] == "muon" and groups["lm_head"]["W"] == "adamw"
    assert "wpe" not in params and "ln_f" not in params


def test_without_the_training_split_the_val_loss_is_the_same(small_text):
    both = train("gpt-speedrun", data=small_text, steps=4, seed=3, eval_train=True, **TOY)
    val_only = train("gpt-speedrun", data=small_text, steps=4, seed=3, **TOY)
    assert set(both.info["results"]) == {"train_loss", "val_loss"}
    assert set(val_only.info["results"]) == {"val_loss"}
    assert val_only.info["results"]["val_loss"] == both.info["results"]["val_loss"]
    assert both.info["results"]["val_loss"] < np.log(both.vocab.size)  # it learned something in 4 Muon steps


@pytest.mark.parametrize("n, batch", [(10, 4), (1000, 300), (7, 7), (3, 8)])
def test_split_loss_is_the_mean_over_every_target_whatever_the_batching(n, batch):
    rng = np.random.default_rng(n)
    W = rng.normal(size=(5, 6)).astype(np.float32)
    apply = lambda params, state, x, *, train: (params[x], state)  # noqa: E731  logits [N, T, 6]
    X, Y = rng.integers(0, 5, (n, 3)), rng.integers(0, 6, (n, 3))
    Y[0, 0] = -1  # an ignored target
    expected = optax.softmax_cross_entropy_with_integer_labels(W[X], np.maximum(Y, 0))
    expected = float(np.sum(np.where(Y >= 0, expected, 0)) / np.sum(Y >= 0))
    assert split_loss(apply, W, {}, X, Y, batch_size=batch) == pytest.approx(expected, rel=1e-6)


def test_the_changes_are_settings_of_both_entries():
    """Every ablation names real fields, adds what gpt lacks and removes what the recipe has."""
    from benchmarks import speedrun as bench
    defaults = {**dataclasses.asdict(transformer.Config()), **dataclasses.asdict(optim.TrainConfig())}
    gpt_settings = {**defaults, **models.get("gpt").config_defaults, **models.get("gpt").train_defaults}
    recipe = {**speedrun.SPEEDRUN_CONFIG, **speedrun.SPEEDRUN_TRAIN}
    for name, (add, remove) in bench.CHANGES.items():
        assert set(add) <= set(defaults) and set(remove) <= set(defaults), name
        key = next(iter(add))
        assert add[key] == recipe[key] and remove[key] != recipe[key], name
        assert gpt_settings[key] != add[key], name
    names = [v["name"] for v in bench.variants({"gpt": 10, "gpt-speedrun": 5})]
    assert len(names) == 2 + 2 * len(bench.CHANGES) == len(set(names))


def test_ablation_speeds_are_shared_by_settings_that_cost_the_same():
    from benchmarks import speedrun as bench
    by_name = {v["name"]: v for v in bench.variants({"gpt": 10, "gpt-speedrun": 5})}
    key = lambda name: bench.speed_key(by_name[name])  # noqa: E731
    assert key("gpt-speedrun - zero-init projections") == key("gpt-speedrun (the recipe)")
    assert key("gpt-speedrun - WSD schedule") == key("gpt-speedrun (the recipe)")
    assert key("gpt-speedrun - Muon") != key("gpt-speedrun (the recipe)")
    assert key("gpt + rotary embeddings") != key("gpt (nanoGPT's recipe)")


def test_toy_race_scores_both_sides_and_the_held_out_play(monkeypatch, tmp_path, capsys):
    pytest.importorskip("torch")
    from benchmarks import speedrun as bench
    monkeypatch.setenv("BENCH_OUT", str(tmp_path))
    race = bench.main(mode="toy")["race"]
    (ours,), (ref,) = race["rows"]["ours"], race["rows"]["reference"]
    for row in (ours, ref):  # 6 steps from a near-uniform start: just under ln(76)
        assert 2.5 < row["val_loss"] < np.log(76) + 0.1 and 2.5 < row["heldout_loss"] < np.log(76) + 0.1
    assert race["target"] == ref["val_loss"] and ref["train_loss"] is None
    assert json.loads((tmp_path / "speedrun.json").read_text())["race"]["target"] == race["target"]
    assert "| ours | 0 |" in capsys.readouterr().out
