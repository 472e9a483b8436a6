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
