"""dctutor.manifold (UMAP + GMM, stability, BIC), data.from_array and IDEC's trainer path."""

import numpy as np
import pytest
import torch

from dctutor import data, dec, manifold, metrics


def blobs(n=300, k=3, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, size=(k, d))
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(0, 1, size=(n, d))).astype(np.float32), y


def test_umap_gmm_separates_blobs():
    X, y = blobs()
    labels, Z = manifold.umap_gmm(X, 3, n_neighbors=15, seed=0)
    assert Z.shape == (300, 3) and labels.shape == (300,)
    assert metrics.cluster_acc(y, labels) > 0.95


def test_gmm_and_kmeans_on_blobs():
    X, y = blobs()
    assert metrics.cluster_acc(y, manifold.gmm_cluster(X, 3, seed=0)) > 0.95
    assert metrics.cluster_acc(y, manifold.kmeans_cluster(X, 3, seed=0)) > 0.95


def test_stability_and_bic_prefer_true_k():
    X, _ = blobs(n=400, k=3, d=4, seed=1)
    bic = manifold.gmm_bic(X, [2, 3, 6])
    assert min(bic, key=bic.get) == 3
    same = [manifold.gmm_cluster(X, 3, seed=s) for s in range(3)]
    assert manifold.stability(same)[0] > 0.95
    with pytest.raises(ValueError, match="at least two"):
        manifold.stability(same[:1])


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5,)), "N × D"),
    (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
])
def test_manifold_rejects_bad_points(bad, match):
    with pytest.raises(ValueError, match=match):
        manifold.gmm_cluster(bad, 2)


def test_too_many_clusters():
    X, _ = blobs(n=20)
    with pytest.raises(ValueError, match="cannot make 30 clusters from 20 points"):
        manifold.umap_gmm(X, 30)
    with pytest.raises(ValueError, match="positive integer"):
        manifold.gmm_cluster(X, 0)


def test_from_array_scales_and_reshapes():
    X = np.arange(2 * 64, dtype=np.float64).reshape(2, 64) - 10
    ds = data.from_array(X, y=["b", "a"], image_shape=(8, 8))
    assert ds.images.shape == (2, 8, 8) and ds.images.dtype == torch.float32
    x = ds.inputs()
    assert x.shape == (2, 64) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert ds.inputs(flat=False).shape == (2, 1, 8, 8)
    assert ds.labels.tolist() == [1, 0] and ds.classes == ("a", "b") and ds.has_labels
    unlabeled = data.from_array(np.random.rand(10, 3))
    assert not unlabeled.has_labels and unlabeled.inputs().shape == (10, 3)
    u8 = data.from_array(np.full((3, 4, 4), 255, dtype=np.uint8))
    assert float(u8.inputs().max()) == 1.0


@pytest.mark.parametrize("X, kwargs, match", [
    (np.zeros((4, 2, 2, 2)), {}, "N × D"),
    (np.zeros(5), {}, "N × D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, "1 NaN or infinite"),
    (np.ones((4, 3)), {}, "constant"),
    (np.random.rand(1, 3), {}, "at least 2 points"),
    (np.random.rand(4, 10), {"image_shape": (3, 3)}, "9 pixels"),
    (np.random.rand(4, 3), {"y": [0, 1]}, "one label per point"),
    (np.array([["a", "b"], ["c", "d"]]), {}, "numbers"),
])
def test_from_array_rejects(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.from_array(X, **kwargs)


def test_idec_keeps_reconstruction_and_logs_it():
    from dctutor import autoencoders as ae

    X, y = blobs(n=256, k=3, d=16)
    X = torch.from_numpy((X - X.min()) / (X.max() - X.min()))
    torch.manual_seed(0)
    model_ae = ae.MLPAutoencoder((16, 32, 3), hidden="relu", output="sigmoid")
    ae.train_autoencoder(model_ae, X, num_epochs=20, batch_size=32, lr=3e-3, progress=False)
    model = dec.DEC(model_ae.encoder, 3, embedding_dim=3)
    hist = dec.train_dec(model, X, torch.from_numpy(y), decoder=model_ae.decoder, gamma=0.1,
                         optimizer="adam", lr=1e-3, batch_size=32, update_interval=8,
                         max_steps=40, kmeans_restarts=3, progress=False)
    assert "reconstruction" in hist and np.isfinite(hist["reconstruction"]).all()
    assert hist.last("acc") > 0.9
    with pytest.raises(ValueError, match="gamma"):
        dec.train_dec(model, X, decoder=model_ae.decoder, gamma=0, max_steps=1, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        dec.train_dec(model, X, optimizer="rmsprop", max_steps=1, progress=False)


def test_n2d_autoencoder_is_seeded_and_reads_its_schedule():
    """Chapter 6's two pages and the bench get the same autoencoder from the same seed."""
    X = torch.rand(200, 20)
    s = dict(ae_dims=(20, 16, 3), ae_num_epochs=2, ae_batch_size=64, ae_lr=1e-3)
    model, hist = manifold.n2d_autoencoder(X, s, seed=1, progress=False)
    again, _ = manifold.n2d_autoencoder(X, s, seed=1, progress=False)
    other, _ = manifold.n2d_autoencoder(X, s, seed=2, progress=False)
    assert len(hist["train_loss"]) == 2 and model.code_size == 3
    with torch.no_grad():
        out = model(X)
        assert out.min() >= 0 and out.max() <= 1                 # sigmoid output
        assert torch.equal(model.encode(X), again.encode(X))
        assert not torch.equal(model.encode(X), other.encode(X))


def test_bench_dec_ae_starts_from_the_shared_autoencoder_and_leaves_it(monkeypatch):
    """``dec-ae`` trains a copy of the autoencoder ``n2d`` and ``idec`` share, with DEC's SGD."""
    from dctutor import bench, config

    small = {"manifold": dict(ae_dims=(16, 32, 3), ae_batch_size=32, ae_lr=3e-3, ae_num_epochs=20,
                              idec_update_interval=8, idec_tol=0.0, idec_max_steps=40,
                              kmeans_restarts=3),
             "dec": dict(lr=0.01, momentum=0.9, batch_size=32)}
    monkeypatch.setattr(config, "schedule", lambda section, profile=None: small[section])
    X, y = blobs(n=256, k=3, d=16)
    X = torch.from_numpy((X - X.min()) / (X.max() - X.min()))
    p = bench.Prepared("blobs", X, y, "quick", torch.device("cpu"))
    monkeypatch.setattr(bench, "N_CLUSTERS", 3)
    cache: dict = {}
    base = bench._n2d_autoencoder(p, 0, cache)[0]
    before = {k: v.clone() for k, v in base.state_dict().items()}
    row = bench.run_dec_ae(p, 0, cache)
    again = bench.run_dec_ae(p, 0, cache)
    assert row["dec_steps"] == 40 and row["stop_reason"] == "max_steps"
    assert row["acc"] > 0.9 and again["acc"] == row["acc"]      # same start, same seed
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())
