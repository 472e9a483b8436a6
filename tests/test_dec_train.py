"""The DEC model and trainer (chapter 4): initialisation, the loop, the stopping rule, the guard."""

import inspect
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from dctutor import autoencoders, config, dec
from dctutor.training import TrainingDiverged


class Linear(nn.Module):
    """A tiny encoder with the ``out_features`` attribute chapter 2's encoder has."""

    def __init__(self, n_in=2, n_out=2, identity=False):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)
        self.out_features = n_out
        if identity:
            with torch.no_grad():
                self.lin.weight.copy_(torch.eye(n_out, n_in))
                self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(x)


def blobs(n_per=60, k=3, spread=0.4, seed=0):
    """K well-separated Gaussian blobs in 2-D with their labels."""
    g = torch.Generator().manual_seed(seed)
    means = 4.0 * torch.tensor([[math.cos(2 * math.pi * j / k), math.sin(2 * math.pi * j / k)]
                                for j in range(k)])
    X = torch.cat([means[j] + spread * torch.randn(n_per, 2, generator=g) for j in range(k)])
    y = torch.arange(k).repeat_interleave(n_per)
    return X, y


FAST = dict(batch_size=32, update_interval=5, max_steps=200, kmeans_restarts=3, progress=False)


# --- helpers -----------------------------------------------------------------------------------

def test_size_entropy_is_one_for_equal_sizes_and_zero_for_one_cluster():
    assert dec.size_entropy(torch.tensor([5, 5, 5, 5])).item() == pytest.approx(1.0)
    assert dec.size_entropy(torch.tensor([20, 0, 0, 0])).item() == pytest.approx(0.0)
    mid = dec.size_entropy(torch.tensor([17, 1, 1, 1])).item()
    assert 0 < mid < 0.5
    assert dec.size_entropy(torch.tensor([7])).item() == 0.0
    with pytest.raises(ValueError, match="1-D"):
        dec.size_entropy(torch.ones(2, 2))


def test_cluster_sizes_counts_empty_clusters_too():
    sizes = dec.cluster_sizes(torch.tensor([0, 0, 2, 2, 2]), 4)
    assert sizes.tolist() == [2, 0, 3, 0]


@pytest.mark.parametrize("case", ["random", "perfect", "one cluster", "fewer classes", "empty"])
def test_contingency_scores_match_the_metrics_module(case):
    from dctutor import metrics

    g = np.random.default_rng(0)
    y = g.integers(0, 10, 500)
    pred = {"random": g.integers(0, 10, 500), "perfect": (y + 3) % 10,
            "one cluster": np.zeros(500, dtype=int),
            "fewer classes": np.where(y < 5, y, 9 - y) * 2,
            "empty": np.minimum(y, 7)}[case]
    C = np.zeros((10, 10))
    np.add.at(C, (y, pred), 1)
    got = dec.contingency_scores(C)
    want = metrics.evaluate(y, pred)
    for key in ("acc", "nmi", "ari"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key


def test_contingency_scores_reject_bad_tables():
    with pytest.raises(ValueError, match="non-negative 2-D"):
        dec.contingency_scores(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-negative 2-D"):
        dec.contingency_scores(np.ones(4))


def test_history_scores_match_the_metrics_module():
    from dctutor import metrics

    X, y = blobs(spread=2.0)
    model = dec.DEC(Linear(identity=True), n_clusters=4)      # 4 clusters, 3 classes
    h = dec.train_dec(model, X, y + 7, **{**FAST, "max_steps": 10})
    want = metrics.evaluate(y, h.labels)
    for key in ("acc", "nmi", "ari"):
        assert h[key][-1] == pytest.approx(want[key], abs=1e-9), key


# --- the model ---------------------------------------------------------------------------------

def test_model_shapes_and_predict_is_the_nearest_centre():
    torch.manual_seed(0)
    model = dec.DEC(Linear(5, 3), n_clusters=4)
    assert isinstance(model.centers, nn.Parameter) and model.centers.shape == (4, 3)
    model.set_centers(torch.randn(4, 3))
    X = torch.randn(50, 5)
    q = model(X)
    assert q.shape == (50, 4) and q.requires_grad
    torch.testing.assert_close(q.sum(dim=1), torch.ones(50))
    torch.testing.assert_close(model.soft_assign(X), q.detach())
    nearest = torch.cdist(model.embed_all(X), model.centers.detach()).argmin(dim=1)
    assert torch.equal(model.predict(X), nearest)


def test_model_copies_the_encoder():
    enc = Linear(2, 2)
    before = enc.lin.weight.detach().clone()
    model = dec.DEC(enc, n_clusters=3)
    X, _ = blobs()
    dec.train_dec(model, X, **FAST)
    assert torch.equal(enc.lin.weight, before)
    assert not torch.equal(model.encoder.lin.weight, before)


def test_model_on_chapter_2_encoder():
    stack = autoencoders.StackedDenoisingAutoencoder((784, 32, 8), dropout=0.2)
    model = dec.DEC(stack.encoder, n_clusters=10)
    assert model.embedding_dim == 8
    assert model.predict(torch.rand(20, 784)).shape == (20,)


def test_encoder_output_size_must_match_the_centres():
    with pytest.raises(ValueError, match="outputs 3 features"):
        dec.DEC(Linear(5, 3), n_clusters=4, embedding_dim=2)
    bare = nn.Sequential(nn.Linear(5, 3))        # no out_features attribute
    with pytest.raises(ValueError, match="embedding_dim"):
        dec.DEC(bare, n_clusters=4)
    model = dec.DEC(bare, n_clusters=4, embedding_dim=2)
    with pytest.raises(ValueError, match="centres have 2 features"):
        model.predict(torch.randn(6, 5))
    with pytest.raises(ValueError, match="centers must be K × d"):
        dec.DEC(Linear(5, 3), n_clusters=4).set_centers(torch.zeros(4, 2))


def test_bad_cluster_counts_raise():
    with pytest.raises(ValueError, match="n_clusters"):
        dec.DEC(Linear(), n_clusters=0)
    with pytest.raises(ValueError, match="cannot make 10 clusters of 6 points"):
        dec.train_dec(dec.DEC(Linear(), n_clusters=10), torch.randn(6, 2), **FAST)


# --- the trainer -------------------------------------------------------------------------------

def test_kmeans_init_sets_the_centres_and_returns_the_labels():
    X, y = blobs()
    model = dec.DEC(Linear(identity=True), n_clusters=3)
    labels = dec.kmeans_init(model, X, n_init=3)
    assert labels.shape == (len(X),)
    assert torch.equal(model.predict(X), labels)
    # identity encoder: the centres are the blob means, up to order
    means = torch.stack([X[y == j].mean(0) for j in range(3)])
    assert torch.cdist(means, model.centers.detach()).min(dim=1).values.max() < 0.2


def test_training_converges_on_separated_blobs_and_records_why():
    X, y = blobs()
    model = dec.DEC(Linear(identity=True), n_clusters=3)
    h = dec.train_dec(model, X, y, **FAST)
    assert h.stop_reason == "converged" and h.converged and not h.collapsed
    assert h["label_change"][-1] < 0.001
    assert h["acc"][-1] == 1.0 and h["nmi"][-1] == pytest.approx(1.0)
    n = len(h["step"])
    for key in ("loss", "kl", "label_change", "sizes", "size_entropy", "largest", "nonempty",
                "alive", "collapsed", "acc", "nmi", "seconds"):
        assert len(h[key]) == n, key
    assert all(sum(s) == len(X) for s in h["sizes"])
    assert torch.equal(h.labels, model.predict(X))
    assert h["step"][0] == 0 and h["step"] == sorted(h["step"])


def test_target_refresh_every_update_interval_steps_until_max_steps():
    X, _ = blobs(spread=3.0)               # overlapping blobs: labels keep moving
    model = dec.DEC(Linear(), n_clusters=3)
    h = dec.train_dec(model, X, **{**FAST, "update_interval": 7, "max_steps": 30, "tol": 0.0})
    assert h["step"] == [0, 7, 14, 21, 28, 30]
    assert h.stop_reason == "max_steps" and h.steps == 30
    assert "acc" not in h                    # no labels given: nothing scored


def test_labels_do_not_influence_training():
    X, y = blobs(spread=1.5)
    runs = []
    for labels in (None, y, torch.flip(y, [0])):
        torch.manual_seed(0)
        model = dec.DEC(Linear(), n_clusters=3)
        dec.train_dec(model, X, labels, **{**FAST, "tol": 0.0, "max_steps": 40})
        runs.append(model.centers.detach().clone())
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    torch.testing.assert_close(runs[0], runs[2], rtol=0, atol=0)


def test_hand_gradient_trains_like_autograd():
    X, _ = blobs(spread=1.5)
    centres = []
    for hand in (False, True):
        torch.manual_seed(0)
        model = dec.DEC(Linear(), n_clusters=3)
        dec.train_dec(model, X, hand_gradient=hand, **{**FAST, "tol": 0.0, "max_steps": 20})
        centres.append(model.centers.detach())
    torch.testing.assert_close(centres[0], centres[1], rtol=1e-4, atol=1e-5)


def test_same_seed_same_run():
    X, _ = blobs(spread=1.5)
    out = []
    for _ in range(2):
        torch.manual_seed(0)
        model = dec.DEC(Linear(), n_clusters=3)
        h = dec.train_dec(model, X, seed=4, **{**FAST, "tol": 0.0, "max_steps": 25})
        out.append((h["loss"], model.centers.detach().clone()))
    assert out[0][0] == out[1][0]
    assert torch.equal(out[0][1], out[1][1])


# --- the collapse guard --------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        self.out_features = 2

    def forward(self, x):
        return self.net(x)


def collapsing_run(**kwargs):
    """Four blobs, a small ReLU encoder, a far too large learning rate, a target refreshed every
    other step: clusters die and the labels freeze."""
    X, y = blobs(n_per=100, k=4, spread=1.0)
    torch.manual_seed(0)
    model = dec.DEC(MLP(), n_clusters=4)
    return dec.train_dec(model, X, y, **{**FAST, "lr": 5.0, "update_interval": 2, **kwargs})


def test_collapse_is_flagged_and_never_reported_as_convergence():
    with pytest.warns(dec.ClusterCollapseWarning, match="collapsed"):
        h = collapsing_run()
    assert h.collapsed and h["collapsed"][-1]
    assert h.stop_reason == "collapsed" and not h.converged
    assert h["alive"][-1] < 4
    assert h["size_entropy"][-1] < h["size_entropy"][0]
    # a naive rule (labels stopped changing) would have called this a success
    assert h["label_change"][-1] < 0.001


def test_one_cluster_holding_everything_is_a_collapse():
    X, _ = blobs(n_per=50, k=2)
    model = dec.DEC(Linear(identity=True), n_clusters=2)
    model.set_centers(torch.tensor([[0.0, 0.0], [100.0, 100.0]]))
    with pytest.warns(dec.ClusterCollapseWarning, match="largest cluster holds 100.0%"):
        h = dec.train_dec(model, X, init=False, **{**FAST, "lr": 1e-6, "max_steps": 10})
    assert h["largest"] == [1.0, 1.0] and h["size_entropy"][0] == 0.0
    assert h.stop_reason == "collapsed" and h.steps == 5


def test_collapse_warning_is_issued_once_and_can_be_an_error():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collapsing_run(tol=0.0, max_steps=40)
    assert sum(issubclass(w.category, dec.ClusterCollapseWarning) for w in caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", dec.ClusterCollapseWarning)
        with pytest.raises(dec.ClusterCollapseWarning):
            collapsing_run()


def test_empty_or_nearly_empty_clusters_are_dead():
    X, _ = blobs(n_per=50, k=2)
    model = dec.DEC(Linear(identity=True), n_clusters=3)
    far = [[4.0, 0.0], [-2.0, 3.5], [100.0, 100.0]]
    model.set_centers(torch.tensor(far))
    with pytest.warns(dec.ClusterCollapseWarning, match="2 of 3 clusters are non-empty"):
        h = dec.train_dec(model, X, init=False, **{**FAST, "lr": 1e-6, "max_steps": 10})
    assert h["nonempty"][0] == 2 and h["alive"][0] == 2 and h.stop_reason == "collapsed"
    # one point alone in a cluster: non-empty, but not alive (fewer than 10 % of N/K = 4 points)
    X1 = torch.cat([X, torch.tensor([[100.0, 100.0]])])
    model.set_centers(torch.tensor(far))
    with pytest.warns(dec.ClusterCollapseWarning, match="2 of 3 hold at least 4 points"):
        h = dec.train_dec(model, X1, init=False, **{**FAST, "lr": 1e-6, "max_steps": 10})
    assert h["nonempty"][0] == 3 and h["alive"][0] == 2 and h.stop_reason == "collapsed"


def test_healthy_run_gives_no_warning():
    X, y = blobs()
    model = dec.DEC(Linear(identity=True), n_clusters=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dec.ClusterCollapseWarning)
        h = dec.train_dec(model, X, y, **FAST)
    assert not any(h["collapsed"])


# --- bad input ---------------------------------------------------------------------------------

def test_non_finite_inputs_raise():
    X, _ = blobs()
    X[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        dec.train_dec(dec.DEC(Linear(), n_clusters=3), X, **FAST)


def test_non_finite_loss_raises_training_diverged():
    X, _ = blobs()
    model = dec.DEC(Linear(identity=True), n_clusters=3)
    dec.kmeans_init(model, X, n_init=2)
    with torch.no_grad():
        model.encoder.lin.weight.fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match="DEC loss"):
        dec.train_dec(model, X, init=False, **FAST)


def test_non_finite_embeddings_are_caught_before_kmeans():
    X, _ = blobs()
    model = dec.DEC(Linear(identity=True), n_clusters=3)
    with torch.no_grad():
        model.encoder.lin.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite|NaN or infinite embeddings"):
        dec.train_dec(model, X, **FAST)


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(update_interval=0), dict(tol=1.5),
                                 dict(batch_size=0), dict(collapse_fraction=0.0),
                                 dict(max_steps=-1), dict(kmeans_restarts=0),
                                 dict(dead_fraction=1.0)])
def test_bad_schedule_raises(bad):
    X, _ = blobs()
    with pytest.raises(ValueError):
        dec.train_dec(dec.DEC(Linear(), n_clusters=3), X, **{**FAST, **bad})


def test_labels_of_the_wrong_length_raise():
    X, y = blobs()
    with pytest.raises(ValueError, match="one label per point"):
        dec.train_dec(dec.DEC(Linear(), n_clusters=3), X, y[:-1], **FAST)


def test_wrong_input_width_is_a_clear_error():
    model = dec.DEC(Linear(2, 2), n_clusters=3)
    with pytest.raises((ValueError, RuntimeError)):
        dec.train_dec(model, torch.randn(30, 5), **FAST)


# --- the schedule table ------------------------------------------------------------------------

def test_trainer_defaults_are_the_reference_implementations():
    defaults = {k: v.default for k, v in inspect.signature(dec.train_dec).parameters.items()}
    assert defaults["lr"] == 0.01 and defaults["momentum"] == 0.9
    assert defaults["update_interval"] == 140 and defaults["tol"] == 0.001
    assert defaults["max_steps"] == 20000 and defaults["kmeans_restarts"] == 20
    assert defaults["batch_size"] == 256


@pytest.mark.parametrize("profile", config.PROFILES)
def test_dec_schedule_has_what_the_chapter_reads(profile):
    s = config.schedule("dec", profile)
    for key in ("dataset", "batch_size", "lr", "momentum", "update_interval", "tol", "max_steps",
                "kmeans_restarts", "seeds", "collapse_fraction", "dead_fraction", "tsne_points",
                "fashion_subset", "fashion_layer_num_epochs", "fashion_finetune_num_epochs",
                "collapse_pretrain_epochs", "collapse_pretrain_lr", "collapse_max_steps",
                "fixed_pretrain_optimizer", "fixed_pretrain_lr", "fixed_pretrain_epochs"):
        assert key in s, key
    assert s["momentum"] == 0.9 and s["tol"] == 0.001 and s["kmeans_restarts"] == 20
    # sources.md section 4, reproduced as reported
    assert s["collapse_lr"] == 1.0 and s["collapse_update_interval"] == 10
    assert s["collapse_pretrain_lr"] == 1.0 and s["collapse_pretrain_epochs"] == 10
    assert tuple(s["collapse_dims"]) == (784, 32, 32, 256, 10)
    # the fixes are real changes: smaller steps, rarer refreshes, longer pretraining
    assert s["lr"] < s["collapse_lr"] and s["update_interval"] > s["collapse_update_interval"]
    assert s["fixed_pretrain_epochs"] > s["collapse_pretrain_epochs"]


def test_full_profile_runs_the_reference_dec_stage():
    s = config.schedule("dec", "full")
    assert (s["lr"], s["update_interval"], s["max_steps"], s["batch_size"]) == (0.01, 140, 20000, 256)
    assert s["dataset"] == "mnist" and s["fashion_subset"] is None and s["seeds"] >= 5


def test_on_refresh_sees_every_refresh():
    """The hook chapter 4 uses to film the clusters: called once per logged refresh, in order."""
    torch.manual_seed(0)
    X = torch.rand(300, 20)
    model = dec.DEC(torch.nn.Linear(20, 5), 3, embedding_dim=5)
    seen = []
    h = dec.train_dec(model, X, update_interval=5, max_steps=20, tol=0.0, kmeans_restarts=1,
                      progress=False, on_refresh=lambda step, m: seen.append((step, m is model)))
    assert [step for step, _ in seen] == list(h["step"]) and all(same for _, same in seen)
