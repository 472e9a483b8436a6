"""Manifold baselines: UMAP, then a Gaussian mixture (chapter 6, "Does it need to be deep?").

Two pure steps and their composition:

* :func:`umap_embed` — UMAP (McInnes et al. 2018, the ``umap-learn`` package) from N × D points
  to N × ``n_components``; it keeps each point's ``n_neighbors`` nearest neighbours close and
  lets the rest of the geometry go.
* :func:`gmm_cluster` — a Gaussian mixture with full covariances (scikit-learn), which fits the
  elongated, unequal clusters UMAP produces better than k-means' equal spheres.
* :func:`umap_gmm` — the two in a row. On raw pixels that is the ``umap-gmm`` method; on an
  autoencoder's codes it is N2D (McConville et al. 2020), the ``n2d`` method of
  :mod:`dctutor.bench`.

Also :func:`stability` (the agreement of partitions across seeds, used to choose K without
labels), :func:`gmm_bic` (the Gaussian mixture's Bayesian information criterion over K) and
:func:`n2d_autoencoder` (N2D's autoencoder, trained the one way chapter 6's pages and the bench
train it).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch


def _as_points(X, what: str = "X") -> np.ndarray:
    """X as a finite float32 N × D NumPy array, or a ValueError that says what is wrong."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be N × D (one row per point), got shape {X.shape}")
    if len(X) < 2 or X.shape[1] < 1:
        raise ValueError(f"{what} needs at least 2 points of at least 1 feature, got shape {X.shape}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"{what} holds {int((~np.isfinite(X)).sum())} NaN or infinite values")
    return X


def umap_embed(X, n_components: int = 10, *, n_neighbors: int = 20, min_dist: float = 0.0,
               metric: str = "euclidean", seed: int | None = 0, n_jobs: int | None = None,
               verbose: bool = False) -> np.ndarray:
    """UMAP of ``X`` (N × D, array or tensor on any device) into N × ``n_components`` floats.

    ``min_dist = 0`` packs neighbours tightly, which is what a clustering wants (UMAP's default
    0.1 is for pictures); ``n_neighbors`` is the size of the neighbourhood UMAP keeps (N2D uses
    20). With ``seed`` set, umap-learn runs on one thread and is reproducible; ``seed=None``
    uses every core (``n_jobs``, default all) and differs from run to run.
    """
    import umap

    X = _as_points(X)
    if not 1 <= n_components < len(X) - 1:
        raise ValueError(f"n_components must be in 1..{len(X) - 2}, got {n_components}")
    if not 2 <= n_neighbors < len(X):
        raise ValueError(f"n_neighbors must be in 2..{len(X) - 1}, got {n_neighbors}")
    with warnings.catch_warnings():   # umap-learn warns that a seed disables parallelism
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors,
                            min_dist=min_dist, metric=metric, random_state=seed,
                            n_jobs=n_jobs if n_jobs else (os.cpu_count() or 1),
                            verbose=verbose)
        return reducer.fit_transform(X).astype(np.float32)


def gmm_cluster(Z, k: int, *, seed: int = 0, covariance: str = "full", n_init: int = 1,
                return_model: bool = False):
    """Hard labels (N,) from a ``k``-component Gaussian mixture fitted to ``Z`` (N × d).

    ``covariance="full"`` lets every cluster have its own shape and size; ``"spherical"`` with
    equal weights is close to k-means. With ``return_model`` also the fitted
    ``sklearn.mixture.GaussianMixture``.
    """
    from sklearn.mixture import GaussianMixture

    Z = _as_points(Z, "Z").astype(np.float64)
    _check_k(k, len(Z))
    gmm = GaussianMixture(k, covariance_type=covariance, n_init=n_init, random_state=seed,
                          reg_covar=1e-5)
    labels = gmm.fit_predict(Z)
    return (labels, gmm) if return_model else labels


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"the number of clusters must be a positive integer, got {k!r}")
    if k > n:
        raise ValueError(f"cannot make {k} clusters from {n} points: the number of clusters "
                         "must not exceed the number of points")


def umap_gmm(X, k: int, *, n_components: int | None = None, n_neighbors: int = 20,
             min_dist: float = 0.0, seed: int = 0, gmm_n_init: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """UMAP of ``X`` into ``n_components`` (default ``k``) dimensions, then a ``k``-component GMM.

    Returns ``(labels, embedding)``: N labels and the N × n_components UMAP embedding.
    """
    X = _as_points(X)
    _check_k(k, len(X))
    Z = umap_embed(X, n_components or k, n_neighbors=min(n_neighbors, len(X) - 1),
                   min_dist=min_dist, seed=seed)
    return gmm_cluster(Z, k, seed=seed, n_init=gmm_n_init), Z


def kmeans_cluster(Z, k: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """k-means labels (N,) on ``Z`` (N × d), in float64, for comparing with :func:`gmm_cluster`."""
    from .studies import kmeans_labels

    Z = _as_points(Z, "Z")
    _check_k(k, len(Z))
    return kmeans_labels(Z, n_init, seed, n_clusters=k)


def stability(partitions: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and std of the ARI between every pair of ``partitions`` (label arrays of one data set).

    A K that the data supports gives nearly the same partition whatever the seed (ARI near 1);
    a K that cuts through a cluster cuts it differently each time.
    """
    from sklearn.metrics import adjusted_rand_score

    if len(partitions) < 2:
        raise ValueError("stability needs at least two partitions")
    scores = [adjusted_rand_score(a, b) for a, b in itertools.combinations(partitions, 2)]
    return float(np.mean(scores)), float(np.std(scores))


def gmm_bic(Z, ks: Sequence[int], *, seed: int = 0, covariance: str = "full") -> dict[int, float]:
    """The Bayesian information criterion of a GMM with each K in ``ks`` (lower is better)."""
    from sklearn.mixture import GaussianMixture

    Z = _as_points(Z, "Z").astype(np.float64)
    out = {}
    for k in ks:
        _check_k(k, len(Z))
        gmm = GaussianMixture(k, covariance_type=covariance, random_state=seed, reg_covar=1e-5)
        out[int(k)] = float(gmm.fit(Z).bic(Z))
    return out


def n2d_autoencoder(X: torch.Tensor, schedule: dict, *, seed: int = 0,
                    desc: str = "autoencoder", progress: bool = True):
    """N2D's autoencoder trained on ``X`` (N × D on the device) with the ``"manifold"`` schedule.

    ``schedule["ae_dims"]`` with ReLU hidden layers and a sigmoid output, trained end to end
    with Adam for ``ae_num_epochs`` (``ae_batch_size``, ``ae_lr``). Everything is seeded from
    ``seed``, so chapter 6's pages and the ``n2d``/``idec`` bench methods get the same weights
    from the same seed. Returns ``(model, history)``.
    """
    from . import autoencoders as ae
    from .config import seed_everything

    seed_everything(seed)
    model = ae.MLPAutoencoder(schedule["ae_dims"], hidden="relu", output="sigmoid").to(X.device)
    model.init_output_bias(X)
    history = ae.train_autoencoder(model, X, num_epochs=schedule["ae_num_epochs"],
                                   batch_size=schedule["ae_batch_size"], lr=schedule["ae_lr"],
                                   seed=seed, desc=desc, progress=progress)
    return model, history
