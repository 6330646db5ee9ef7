"""The quick switch the notebooks train with."""

import dataclasses

import pytest

from makemore_jax import models
from makemore_jax.quick import ENV, is_quick, quick_steps, quick_words, train_settings
from makemore_jax.train import TrainConfig


@pytest.mark.parametrize("value, quick", [("1", True), ("yes", True), ("", False), ("0", False), ("False", False)])
def test_the_variable_decides(monkeypatch, value, quick):
    monkeypatch.setenv(ENV, value)
    assert is_quick() is quick
    assert quick_steps(200_000, quick=2_000) == (2_000 if quick else 200_000)


def test_unset_means_full_runs(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert quick_steps(500, quick=50) == 500


@pytest.mark.parametrize("full, quick", [(100, 0), (100, 101)])
def test_quick_must_be_a_shorter_positive_run(full, quick):
    with pytest.raises(ValueError, match="quick"):
        quick_steps(full, quick)


def test_quick_words_are_the_first_ones_in_quick_mode(monkeypatch):
    words = ["emma", "olivia", "ava", "isabella"]
    monkeypatch.setenv(ENV, "1")
    assert quick_words(words, quick=2) == ["emma", "olivia"]
    assert quick_words(words, quick=10) == words
    monkeypatch.setenv(ENV, "0")
    assert quick_words(words, quick=2) == words
    with pytest.raises(ValueError, match="quick"):
        quick_words(words, quick=0)


def test_train_settings_are_the_defaults_in_full_mode(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert train_settings("mlp", quick=300) == {}


def test_train_settings_scale_the_schedule_into_the_quick_run(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    # mlp: 200,000 steps, lr decay at 100,000 -> 300 steps, decay at 150
    assert train_settings("mlp", quick=300) == {"steps": 300, "lr_decay_step": 150, "chunk_size": 30}
    # bigram-nn: 500 full-batch steps, no decay; a quick run never exceeds the full one
    assert train_settings("bigram-nn", quick=1_000) == {"steps": 500, "chunk_size": 50}
    settings = train_settings("mlp-bn", quick=300)
    TrainConfig(**settings)  # a valid configuration


def test_train_settings_keep_a_warmup_inside_the_run(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    model = dataclasses.replace(models.get("mlp"), name="warm", train_defaults={"steps": 30_000, "warmup_steps": 500})
    monkeypatch.setattr(models, "get", lambda name: model)
    settings = train_settings("warm", quick=300)
    assert settings == {"steps": 300, "warmup_steps": 5, "lr_decay_step": 1_000, "chunk_size": 30}  # 500 and 100,000 scaled by 1/100
    TrainConfig(**settings)
