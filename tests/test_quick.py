"""The quick switch the notebooks train with."""

import pytest

from makemore_jax.quick import ENV, is_quick, quick_steps


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
