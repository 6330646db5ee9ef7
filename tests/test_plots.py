"""The figures: what each one draws, read back from the matplotlib artists and checked
against the numbers it was given (no pixels compared)."""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

from makemore_jax import plots  # noqa: E402
from makemore_jax.data import DataError, Vocab  # noqa: E402

VOCAB = Vocab((".", "a", "b"))


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_bigram_figure_writes_each_pair_and_its_number():
    counts = np.array([[0, 5, 1], [3, 0, 12], [7, 2, 0]])
    fig = plots.bigram_figure(counts, VOCAB, title="counts")
    (ax,) = fig.axes
    texts = _texts(ax)
    assert texts[0::2] == [a + b for a in ".ab" for b in ".ab"]  # row by row: the pair, then its count
    assert texts[1::2] == [str(c) for c in counts.ravel()]
    assert np.array_equal(ax.images[0].get_array(), counts)
    assert ax.get_title() == "counts" and ax.get_xlabel() == "next character" and ax.get_ylabel() == "first character"
    assert list(ax.get_xticks()) == [0, 1, 2] and [t.get_text() for t in ax.get_xticklabels()][:3] == list(".ab")
    colors = [t.get_color() for t in ax.texts[1::2]]
    assert colors[5] == "white" and colors[3] == "dimgray"  # 12 is dark blue, 3 is light


def test_bigram_figure_formats_probabilities_and_checks_the_shape():
    P = np.full((3, 3), 1 / 3)
    assert _texts(plots.bigram_figure(P, VOCAB, title="p", fmt="{:.2f}").axes[0])[1] == "0.33"
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        plots.bigram_figure(np.zeros((4, 4)), VOCAB, title="p")


def test_embedding_figure_places_each_character_at_its_row():
    C = np.array([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]])
    (ax,) = plots.embedding_figure(C, VOCAB).axes
    assert np.allclose(ax.collections[0].get_offsets(), C)
    assert [(t.get_text(), t.get_position()) for t in ax.texts] == [(ch, tuple(row)) for ch, row in zip(".ab", C)]


def test_embedding_figure_projects_wider_tables_on_their_principal_components():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0]) / 5
    C = np.outer(rng.normal(size=3), direction) * 10 + rng.normal(scale=1e-3, size=(3, 3))
    (ax,) = plots.embedding_figure(C, VOCAB).axes
    points = np.asarray(ax.collections[0].get_offsets())
    centred_along = (C - C.mean(axis=0)) @ direction  # the first component, up to its sign
    assert np.allclose(np.abs(points[:, 0]), np.abs(centred_along), atol=1e-2)
    assert np.allclose(points[:, 1], 0, atol=1e-2)
    assert ax.get_xlabel() == "principal component 1"


def test_agreement_figure_draws_the_points_and_the_diagonal():
    a, b = np.array([[1.0, 2.0], [3.0, -4.0]]), np.array([1.1, 2.0, 2.9, -4.0])
    (ax,) = plots.agreement_figure(a, b, xlabel="jax", ylabel="micrograd", title="t").axes
    assert np.allclose(ax.collections[0].get_offsets(), np.stack([a.ravel(), b], axis=1))
    line = ax.lines[0]
    assert np.allclose(line.get_xdata(), [-4, 3]) and np.allclose(line.get_ydata(), [-4, 3])


def test_decision_boundary_figure_colours_by_the_sign_of_the_score():
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([-1, 1, 1])
    seen = []

    def predict(points):
        seen.append(points.shape)
        return points[:, 0]  # positive right of x0 = 0

    (ax,) = plots.decision_boundary_figure(predict, X, y).axes
    assert seen == [(200 * 200, 2)]  # one call for the whole grid
    red, blue = ax.collections[-2:]
    assert np.allclose(red.get_offsets(), X[y == -1]) and np.allclose(blue.get_offsets(), X[y == 1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["label -1", "label +1"]


def test_losses_bar_figure_writes_every_loss_on_its_bar():
    losses = {"bigram": {"train": 2.45, "dev": 2.46}, "mlp": {"train": 2.05, "dev": 2.11}}
    (ax,) = plots.losses_bar_figure(losses).axes
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2.45, 2.05, 2.46, 2.11]  # split by split, models in order
    assert sorted(_texts(ax)) == sorted(f"{v:.3f}" for v in heights)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bigram", "mlp"]
    assert ax.get_ylim()[0] == pytest.approx(2.05 * 0.9)


def test_training_curve_reads_the_metrics_log(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [{"step": 100, "loss": 3.0}, {"step": 200, "loss": 2.5},
                                                      {"step": 200, "eval": {"dev_loss": 2.6}}]) + "\n")
    (ax,) = plots.training_curve_figure(str(log)).axes
    assert np.allclose(ax.lines[0].get_xdata(), [100, 200])
    assert np.allclose(ax.lines[0].get_ydata(), np.log10([3.0, 2.5]))
    path = plots.plot_losses(str(log), str(tmp_path / "loss.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    log.write_text("{not json\n")
    with pytest.raises(DataError, match=r"metrics.jsonl:1: not a JSON line"):
        plots.read_loss_log(str(log))


def test_loss_curve_figure_log10():
    (ax,) = plots.loss_curve_figure([0, 1], [10.0, 1.0], log10=True, ylabel="loss").axes
    assert np.allclose(ax.lines[0].get_ydata(), [1.0, 0.0]) and ax.get_ylabel() == "log10 loss"


def test_figures_are_not_pyplot_figures():
    # a notebook shows a returned figure once; pyplot would show its own copy as well
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    fig = plots.lr_find_figure(np.array([1e-3, 1e-2]), np.array([3.0, 2.5]))
    assert isinstance(fig, Figure) and plt.get_fignums() == before
