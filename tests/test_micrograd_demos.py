"""The moons data and the two training demos, with the issue's targets for the default seed:
moons >= 99% training accuracy, lecture loss < 0.01, both within 100 steps."""

import gc

import numpy as np
import pytest

from makemore_jax.micrograd.demos import LECTURE_YS, make_moons, run_demo

# --------------------------------------------------------------------------- make_moons


def test_make_moons_shapes_labels_and_seed():
    X, y = make_moons(101, noise=0.1, seed=3)
    assert X.shape == (101, 2) and X.dtype == np.float64 and y.shape == (101,)
    assert set(y.tolist()) == {-1, 1}
    assert (y == -1).sum() == 50 and (y == 1).sum() == 51
    X2, y2 = make_moons(101, noise=0.1, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(X, make_moons(101, noise=0.1, seed=4)[0])
    assert not np.array_equal(y[:20], np.sort(y[:20])) or not np.array_equal(y[-20:], np.sort(y[-20:]))


def test_make_moons_without_noise_lies_on_the_two_half_circles():
    X, y = make_moons(200, noise=0.0, seed=0)
    upper, lower = X[y == -1], X[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, rtol=1e-12)
    assert (upper[:, 1] >= -1e-12).all()
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0, rtol=1e-12)
    assert (lower[:, 1] <= 0.5 + 1e-12).all()


def test_make_moons_noise_has_the_requested_scale():
    # The noise is drawn before the shuffle, so one seed shuffles both sets alike.
    clean, _ = make_moons(4000, noise=0.0, seed=1)
    noisy, _ = make_moons(4000, noise=0.1, seed=1)
    assert np.std(noisy - clean) == pytest.approx(0.1, rel=0.05)


# --------------------------------------------------------------------------- the demos


@pytest.fixture(scope="module")
def moons_default():
    return run_demo("moons", quiet=True)  # the default: 100 steps, seed 0 (the slow test here)


def test_moons_default_seed_reaches_99_percent(moons_default):
    assert moons_default["accuracy"] >= 0.99
    assert len(moons_default["losses"]) == 100 and len(moons_default["predictions"]) == 100
    assert moons_default["final_loss"] < 0.5 * moons_default["losses"][0]
    _, y = make_moons(100, noise=0.1, seed=0)
    accuracy = np.mean(np.sign(moons_default["predictions"]) == y)
    assert accuracy == moons_default["accuracy"]
    model, xs = moons_default["model"], moons_default["xs"]  # the trained model, for figures
    assert [model(x).data for x in xs] == moons_default["predictions"] and moons_default["ys"] == y.tolist()


def test_lecture_default_seed_reaches_loss_below_0_01(capsys):
    result = run_demo("lecture")
    assert result["losses"][-1] < 0.01 and result["final_loss"] < 0.01
    assert len(result["losses"]) == 100 and result["accuracy"] is None
    assert np.sign(result["predictions"]).tolist() == LECTURE_YS
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 101
    assert lines[0].startswith("step    0 loss ") and "accuracy" not in lines[0]
    assert lines[-1].startswith("lecture: 100 steps in ") and "final loss" in lines[-1] and "predictions [" in lines[-1]


def test_moons_prints_loss_and_accuracy_per_step(capsys):
    run_demo("moons", steps=2, seed=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("step    1 loss ") and lines[1].endswith("%")
    assert lines[-1].startswith("moons: 2 steps in ") and "accuracy" in lines[-1]


def test_quiet_prints_nothing(capsys):
    run_demo("lecture", steps=3, quiet=True)
    assert capsys.readouterr().out == ""


def test_same_seed_same_run_other_seed_other_run():
    first, again = run_demo("lecture", steps=5, seed=4, quiet=True), run_demo("lecture", steps=5, seed=4, quiet=True)
    assert first["losses"] == again["losses"] and first["predictions"] == again["predictions"]
    assert run_demo("lecture", steps=5, seed=5, quiet=True)["losses"] != first["losses"]


def test_cycle_collector_state_is_restored():
    assert gc.isenabled()
    run_demo("lecture", steps=1, quiet=True)
    assert gc.isenabled()
    gc.disable()
    try:
        run_demo("lecture", steps=1, quiet=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("name, steps, match", [
    ("circles", 10, "unknown micrograd demo 'circles'; choose one of: lecture, moons"),
    ("moons", 0, "steps must be a positive integer"),
    ("lecture", -3, "steps must be a positive integer"),
    ("lecture", 2.5, "steps must be a positive integer"),
])
def test_bad_arguments_raise(name, steps, match):
    with pytest.raises(ValueError, match=match):
        run_demo(name, steps=steps)
