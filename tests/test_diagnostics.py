"""Diagnostics: the statistics against numpy, activation gradients against a hand-written
backward pass, update ratios from the fused loop against consecutive states, the lecture's
initialisation numbers, the figures and `makemore-jax diagnose`."""

import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import diagnostics, models
from makemore_jax.cli import main
from makemore_jax.data import Vocab, build_context_dataset, split_words
from makemore_jax.models import mlp
from makemore_jax.train import TrainConfig, batch_indices, create_train_state, fit, make_optimizer, make_train_step

NO_BN = {"norm": "none"}
N = 256  # snapshot batch: the tests share three compiled snapshots (mlp, mlp-deep with and without BN)


@pytest.fixture(scope="module")
def train_split(bundled_words):
    vocab = Vocab.from_words(bundled_words)
    X, Y = build_context_dataset(split_words(bundled_words)[0], vocab, 3)
    return jnp.asarray(X), jnp.asarray(Y)


def init_snapshot(name, train_split, n=N, **overrides):
    model = models.get(name)
    config = model.make_config(vocab_size=27, **overrides)
    params, state = model.init(jax.random.key(0), config)
    X, Y = train_split
    return params, diagnostics.snapshot(params, state, X[:n], Y[:n])


# ----------------------------------------------------------------------------- the lecture's numbers


def test_unit_init_starts_far_too_confident_and_kaiming_near_uniform(train_split):
    lecture2 = {"n_embd": 10, "n_hidden": 200, "block_size": 3}
    _, unit = init_snapshot("mlp", train_split, n=5000, init="unit", **lecture2)
    _, kaiming = init_snapshot("mlp", train_split, n=5000, init="kaiming", **lecture2)
    assert float(unit.loss) > 10  # the lecture's ~27
    assert abs(float(kaiming.loss) - math.log(27)) < 0.05


def test_kaiming_with_batchnorm_barely_saturates_while_unit_without_it_saturates(train_split):
    _, good = init_snapshot("mlp-deep", train_split, init="kaiming")
    _, bad = init_snapshot("mlp-deep", train_split, init="unit", **NO_BN)
    assert np.all(diagnostics.activation_stats(good.acts)["saturated"] < 0.05)
    assert np.all(diagnostics.activation_stats(bad.acts)["saturated"] > 0.5)


# ----------------------------------------------------------------------------- one forward/backward pass


def test_probed_forward_is_mlp_forward(train_split):
    model = models.get("mlp-deep")
    params, state = model.init(jax.random.key(1), model.make_config(vocab_size=27))
    x = train_split[0][:16]
    logits, _, layers = mlp.forward(params, state, x, train=True)
    probes = [jnp.zeros_like(act) for _, act in layers]
    got_logits, got_acts = diagnostics.probed_forward(params, state, x, probes)
    np.testing.assert_array_equal(got_logits, logits)
    for got, (_, want) in zip(got_acts, layers, strict=True):
        np.testing.assert_array_equal(got, want)


def test_activation_and_weight_gradients_match_a_hand_written_backward_pass(train_split):
    params, snap = init_snapshot("mlp-deep", train_split, init="fan-in", **NO_BN)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x, y = (np.asarray(a[:N]) for a in train_split)
    hs = [p["C"][x].reshape(len(x), -1)]  # layer inputs, then tanh outputs
    for layer in p["layers"]:
        hs.append(np.tanh(hs[-1] @ layer["linear"]["W"] + layer["linear"]["b"]))
    logits = hs[-1] @ p["out"]["linear"]["W"] + p["out"]["linear"]["b"]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    dlogits = (probs - np.eye(27)[y]) / len(y)
    dt = dlogits @ p["out"]["linear"]["W"].T
    for i in reversed(range(5)):
        scale = np.abs(dt).max()
        np.testing.assert_allclose(snap.act_grads[i], dt, rtol=1e-3, atol=1e-4 * scale)
        dz = dt * (1 - hs[i + 1] ** 2)
        dW = hs[i].T @ dz
        np.testing.assert_allclose(snap.grads["layers"][i]["linear"]["W"], dW, rtol=1e-3, atol=1e-4 * np.abs(dW).max())
        dt = dz @ p["layers"][i]["linear"]["W"].T


def test_statistics_match_numpy(train_split):
    params, snap = init_snapshot("mlp-deep", train_split, init="scaled", **NO_BN)
    acts = [np.asarray(a) for a in snap.acts]
    grads = [np.asarray(g) for g in snap.act_grads]
    stats, gstats = diagnostics.activation_stats(snap.acts), diagnostics.gradient_stats(snap.act_grads)
    np.testing.assert_allclose(stats["mean"], [a.mean() for a in acts], atol=1e-6)
    np.testing.assert_allclose(stats["std"], [a.std() for a in acts], rtol=1e-5)
    np.testing.assert_allclose(stats["saturated"], [np.mean(np.abs(a) > 0.97) for a in acts], rtol=1e-6)
    np.testing.assert_array_equal(stats["dead"], [np.sum(np.all(np.abs(a) > 0.99, axis=0)) for a in acts])
    np.testing.assert_allclose(gstats["mean"], [g.mean() for g in grads], atol=1e-5 * max(g.std() for g in grads))
    np.testing.assert_allclose(gstats["std"], [g.std() for g in grads], rtol=1e-5)
    ratios = diagnostics.grad_data_ratios(params, snap.grads)
    assert list(ratios) == ["C"] + [f"layers.{i}.linear.W" for i in range(5)] + ["out.linear.W"]
    grad, weight = (np.asarray(tree["layers"][2]["linear"]["W"]) for tree in (snap.grads, params))
    want = np.std(grad) / np.std(weight)
    np.testing.assert_allclose(ratios["layers.2.linear.W"], want, rtol=1e-5)


def test_saturation_and_dead_units_on_a_made_up_layer():
    a = np.zeros((4, 3), np.float32)
    a[:, 1] = -0.995  # saturated for every example: dead
    a[0, 2] = 0.98  # saturated (> 0.97) but not past 0.99
    stats = diagnostics.activation_stats([jnp.asarray(a)])
    assert stats["saturated"].tolist() == [pytest.approx(5 / 12)] and stats["dead"].tolist() == [1]


def test_table_has_one_row_per_weight_and_the_last_update_ratio(train_split):
    params, snap = init_snapshot("mlp-deep", train_split)
    updates = {"step": np.array([0, 10]), diagnostics.UPDATE_PREFIX + "out.linear.W": np.array([-2.0, -3.25])}
    rows = diagnostics.table_rows(params, snap, updates)
    assert [r["layer"] for r in rows] == ["C"] + [f"{i} (tanh)" for i in range(1, 6)] + ["out"]
    assert rows[-1]["log10 update"] == -3.25 and rows[0]["log10 update"] is None
    lines = diagnostics.format_table(rows).splitlines()
    assert len(lines) == 8 and "-3.25" in lines[-1] and "(100, 27)" in lines[-1]


# ----------------------------------------------------------------------------- over training


def test_update_ratios_from_the_fused_loop_equal_consecutive_states(train_split, tmp_path):
    X, Y = train_split
    model = models.get("mlp-deep")
    config = model.make_config(vocab_size=27, n_hidden=16, n_layers=1)
    tc = TrainConfig(steps=12, chunk_size=6, lr=0.1)  # two chunks of one compiled size
    ts0 = create_train_state(model, config, tc, jax.random.key(3))
    ts, summary = fit(model, config, tc, X, Y, ts0, metrics_fn=diagnostics.update_ratios, metrics_every=4)
    collected = summary["metrics"]
    assert collected["step"].tolist() == [0, 4, 8]

    step = jax.jit(make_train_step(model, config, make_optimizer(tc)))
    rows = batch_indices(ts0.key, jnp.arange(12), tc.batch_size, len(X))
    states = [ts0]
    for s in range(12):
        states.append(step(states[-1], (X[rows[s]], Y[rows[s]]))[0])
    np.testing.assert_allclose(ts.params["out"]["linear"]["W"], states[-1].params["out"]["linear"]["W"],
                               rtol=1e-5, atol=1e-7)  # the metrics leave training alone
    by_name = lambda p: {"C": p["C"], "layers.0.linear.W": p["layers"][0]["linear"]["W"],
                         "out.linear.W": p["out"]["linear"]["W"]}
    for k, s in enumerate(collected["step"]):
        before, after = by_name(states[s].params), by_name(states[s + 1].params)
        for name in before:
            old, new = np.asarray(before[name]), np.asarray(after[name])
            want = np.log10(np.std(new - old) / np.std(old))
            assert abs(collected[diagnostics.UPDATE_PREFIX + name][k] - want) < 1e-3, (name, s)


# ----------------------------------------------------------------------------- figures and the CLI


def test_plot_functions_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    from makemore_jax.plots import plot_diagnostics
    rng = np.random.default_rng(0)
    acts = [np.tanh(rng.normal(0, s, (32, 50))) for s in (0.5, 3.0)]
    grads = [rng.normal(0, 1e-3, (32, 50)) for _ in acts]
    updates = {"step": np.arange(0, 100, 10), diagnostics.UPDATE_PREFIX + "C": rng.normal(-3, 0.1, 10)}
    paths = plot_diagnostics(acts, grads, updates, str(tmp_path))
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == ["activations.png", "gradients.png", "saturation.png",
                                                          "update_ratios.png"]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_diagnose_end_to_end(tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", "--model", "mlp-deep", "--steps", "6", "--every", "2", "--batch-size", str(N),
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "saturated" in text and "grad:data" in text and "5 (tanh)" in text and "wrote" in text
    report = json.loads((out / "diagnostics.json").read_text())
    assert report["step"] == 6 and report["updates"]["step"] == [0, 2, 4] and len(report["rows"]) == 7
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "makemore-jax[plots]" in text
    else:
        for name in ("activations", "gradients", "saturation", "update_ratios"):
            assert (out / f"{name}.png").stat().st_size > 0 and f"{name}.png" in text


def test_diagnose_without_matplotlib_still_prints_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.delitem(sys.modules, "makemore_jax.plots", raising=False)
    assert main(["diagnose", "--model", "mlp-deep", "--no-bn", "--steps", "0", "--batch-size", str(N),
                 "--out", str(tmp_path), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "1 (tanh)" in text and 'pip install "makemore-jax[plots]"' in text
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("flags", [["--init", "gaussian"], ["--steps", "-1"], ["--model", "bigram"], ["--lr", "-1"],
                                   ["--every", "0"]])
def test_diagnose_bad_flags_exit_2(flags, tmp_path, capsys):
    try:
        code = main(["diagnose", "--steps", "0", "--out", str(tmp_path), *flags])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
