import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dctutor import plots


def test_shared_figures_draw():
    plots.set_style()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    ax = plots.scatter_embedding(torch.randn(200, 2), labels, centers=np.zeros((10, 2)), title="t")
    assert len(ax.collections) == 2
    fig = plots.image_grid([torch.rand(5, 784), torch.rand(3, 28, 28)], row_labels=["a", "b"])
    assert len(fig.axes) == 10
    ax = plots.confusion_matrix(labels, (labels + 1) % 10)
    assert ax.get_xlabel().startswith("cluster")
    ax = plots.training_curves({"train": [3, 2, 1], "held-out": [3, 2.5, 2]}, logy=True)
    assert len(ax.lines) == 2
    plt.close("all")


def test_scatter_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="N × 2"):
        plots.scatter_embedding(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="labels"):
        plots.scatter_embedding(np.zeros((5, 2)), np.zeros(4))


def test_house_style_keeps_text_legible_on_the_page():
    """Every text of the shared figures shows at MIN_FONT_PT or more in the page's text column."""
    plots.set_style()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    figures = {
        "default": plt.subplots()[0],
        "scatter": plots.scatter_embedding(torch.randn(200, 2), labels, title="t").figure,
        "grid": plots.image_grid([torch.rand(10, 784)] * 5, cell=0.9, row_labels=[
            "original", "PCA, k=2", "autoencoder, 2-D", "PCA, k=10", "autoencoder, 10-D"]),
        "confusion": plots.confusion_matrix(labels, (labels + 1) % 10).figure,
        "curves": plots.training_curves({"a": [3, 2, 1], "b": [3, 2.5, 2]}).figure,
    }
    figures["default"].axes[0].plot([0, 1], label="line")
    figures["default"].axes[0].legend()
    for name, fig in figures.items():
        sizes = plots.displayed_font_sizes(fig)
        assert sizes and sizes[0][0] >= plots.MIN_FONT_PT, (name, sizes[:3])
        assert fig.get_size_inches()[0] <= plots.PAGE_WIDTH + 1e-9, name
    # a figure wider than the column is scaled down, and its text with it
    wide, ax = plt.subplots(figsize=(2 * plots.PAGE_WIDTH, 3))
    ax.plot([0, 1])
    ax.set_title("title")
    assert plots.displayed_font_sizes(wide)[-1][0] < plots.MIN_FONT_PT
    plt.close("all")


def test_rounded_prints_no_negative_zero_and_counts_as_integers():
    import pandas as pd

    table = pd.DataFrame({"I": [-1e-17, 0.5], "loss": [-2.30259, -0.0], "used": [9.0, 10.0],
                          "share": [1.0, 0.0], "name": ["a", "b"]})
    text = plots.rounded(table, 3).to_string()
    assert "-0.0" not in text and "-2.303" in text
    assert plots.rounded(table, 3)["used"].tolist() == [9, 10] and " 9" in text and "9.0" not in text
    assert plots.rounded(table, 3)["share"].dtype.kind == "f"   # 0 and 1 are not counts


def test_mix_colors_gives_each_sure_point_its_cluster_colour():
    q = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    rgb = plots.mix_colors(q)
    assert rgb.shape == (3, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb[0], plots.DIGIT_COLORS[0])
    np.testing.assert_allclose(rgb[1], plots.DIGIT_COLORS[2])
    np.testing.assert_allclose(rgb[2], (np.array(plots.DIGIT_COLORS[0])
                                        + np.array(plots.DIGIT_COLORS[1])) / 2)
    np.testing.assert_allclose(plots.mix_colors(np.eye(2), colors=[(1, 0, 0), (0, 0, 1)]),
                               [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="colours"):
        plots.mix_colors(np.eye(3), colors=[(1, 0, 0)])


def test_soft_assignments_draws_points_rings_and_centres():
    z = torch.randn(20, 2, dtype=torch.float64)
    q = torch.softmax(torch.randn(20, 3), dim=1)
    ring = torch.zeros(20, dtype=torch.bool)
    ring[:4] = True
    ax = plots.soft_assignments(z, q, torch.zeros(3, 2), title="t", ring=ring)
    points, rings, centres = ax.collections
    assert len(points.get_offsets()) == 20 and len(rings.get_offsets()) == 4
    assert len(centres.get_offsets()) == 3 and ax.get_title() == "t"
    with pytest.raises(ValueError, match="N × 2"):
        plots.soft_assignments(torch.zeros(5, 3), q[:5], torch.zeros(3, 2))
    plt.close("all")


def test_print_table_prints_counts_as_integers(capsys):
    plots.print_table(["a", "b"], {"share": [0.25, np.float32(0.5)],
                                   "count": torch.tensor([3, 40])}, width=6)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["      " + "        a        b",
                     "share     0.250    0.500",
                     "count         3       40"]
