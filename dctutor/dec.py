"""Deep Embedded Clustering (DEC; Xie, Girshick and Farhadi, 2016).

The first part of this module is the mathematics of chapter 3 ("DEC: the derivation"), as pure
functions on tensors: the Student-t soft assignment, the sharpened target distribution, the
KL(P‖Q) loss, its gradient derived by hand, and an autograd function whose backward pass uses
that hand-derived gradient. The DEC model and trainer of chapter 4 build on these functions.

Shapes: ``z`` is N × d (embedded points), ``centers`` is K × d (cluster centres), ``q`` and
``p`` are N × K with rows that are probability distributions over the K clusters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "squared_distances",
    "soft_assign",
    "target_distribution",
    "squared_target",
    "cluster_shares",
    "preferred_counts",
    "kl_loss",
    "kl_gradients",
    "DECLoss",
    "kl_loss_hand",
]


# ==============================================================================================
# Chapter 3 — the mathematics: soft assignment, target distribution, KL loss, hand gradient
# ==============================================================================================


def _check_points(z: torch.Tensor, centers: torch.Tensor) -> None:
    if z.ndim != 2 or centers.ndim != 2:
        raise ValueError(
            f"z must be N × d and centers K × d, got shapes {tuple(z.shape)} and "
            f"{tuple(centers.shape)}"
        )
    if z.shape[1] != centers.shape[1]:
        raise ValueError(
            f"z has {z.shape[1]} features but centers have {centers.shape[1]}: "
            "points and centres must live in the same space"
        )
    if centers.shape[0] < 1:
        raise ValueError("need at least one cluster centre")


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha (the Student-t degrees of freedom) must be > 0, got {alpha}")
    return alpha


def _check_rows(q: torch.Tensor, name: str, check: bool = True) -> None:
    """``q`` is N × K; with ``check``, every row is a probability distribution (one device sync)."""
    if q.ndim != 2:
        raise ValueError(f"{name} must be N × K (one row per point), got shape {tuple(q.shape)}")
    if not check or q.numel() == 0:
        return
    tol = math.sqrt(torch.finfo(q.dtype).eps) if q.is_floating_point() else 0.0
    row_error = (q.sum(dim=1) - 1).abs().max()
    if bool(~torch.isfinite(q).all() | (q < 0).any() | (row_error > tol)):
        raise ValueError(
            f"the rows of {name} must be probability distributions (finite, ≥ 0, summing to 1); "
            f"min entry {q.min().item():.3g}, worst row sum off by {row_error.item():.3g}"
        )


def squared_distances(z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """‖z_i − μ_j‖² for every point and centre: z (N × d), centers (K × d) → N × K."""
    _check_points(z, centers)
    return ((z[:, None, :] - centers[None, :, :]) ** 2).sum(dim=-1)


def soft_assign(z: torch.Tensor, centers: torch.Tensor,
                alpha: float = 1.0) -> torch.Tensor:
    """Student-t soft assignment q (N × K).

    q_ij ∝ (1 + ‖z_i − μ_j‖² / α)^(−(α+1)/2), rows summing to 1, for points
    z (N × d), centres (K × d) and degrees of freedom α > 0 (DEC: α = 1).
    A softmax of the log-kernel, so far-away points do not underflow.
    Chapter 3 (the soft assignment).
    """
    alpha = _check_alpha(alpha)
    d2 = squared_distances(z, centers)
    return torch.softmax(-(alpha + 1) / 2 * torch.log1p(d2 / alpha), dim=1)


def target_distribution(q: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Sharpened target p (N × K) from soft assignments q (N × K).

    p_ij ∝ q_ij² / f_j with soft cluster frequencies f_j = Σ_i q_ij; rows
    sum to 1. ``check=False`` skips the value check on q (a device sync).
    Chapter 3 (the target distribution).
    """
    _check_rows(q, "q", check)
    f = q.sum(dim=0).clamp_min(torch.finfo(q.dtype).tiny)  # f_j, shape K
    weight = q**2 / f
    return weight / weight.sum(dim=1, keepdim=True)


def squared_target(q: torch.Tensor) -> torch.Tensor:
    """The target without its frequency term: p_ij ∝ q_ij², rows summing to 1 (N × K → N × K).

    Not part of DEC: chapter 3 sets it beside :func:`target_distribution` to show what dividing
    by the soft cluster frequency f_j does (squaring alone sharpens each row but never changes a
    point's preferred cluster, and hands the big clusters a growing share of the target).
    """
    _check_rows(q, "q")
    w = q**2
    return w / w.sum(dim=1, keepdim=True)


def cluster_shares(q: torch.Tensor) -> torch.Tensor:
    """Each cluster's share of the soft assignments, Σ_i q_ij / N: q (N × K) → shares (K,).

    The shares sum to 1. Chapter 3 tabulates them for q, for the target p and for
    :func:`squared_target` (a cluster's share of p is its weight in the loss).
    """
    _check_rows(q, "q", check=False)
    return q.mean(dim=0)


def preferred_counts(q: torch.Tensor) -> torch.Tensor:
    """How many points prefer each cluster (have their largest q_ij there): q (N × K) → (K,) int64.

    The cluster sizes of the hard labels argmax_j q_ij (:func:`cluster_sizes`); chapter 3.
    """
    _check_rows(q, "q", check=False)
    return cluster_sizes(q.argmax(dim=1), q.shape[1])


def kl_loss(q: torch.Tensor, p: torch.Tensor, *,
            check: bool = True) -> torch.Tensor:
    """KL(P‖Q), summed over clusters and averaged over points: a scalar.

    L = (1/N) Σ_i Σ_j p_ij log(p_ij / q_ij), with 0 log 0 = 0, for q and p
    of shape N × K. p is a fixed target: it is detached, so no gradient
    flows into it. ``check=False`` skips the value checks on q and p (a
    device sync), for training loops. Chapter 3 (the KL objective).
    """
    _check_rows(q, "q", check)
    _check_rows(p, "p", check)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got "
                         f"{tuple(p.shape)} and {tuple(q.shape)}")
    p = p.detach()
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=1).mean()


def kl_gradients(z: torch.Tensor, centers: torch.Tensor, p: torch.Tensor,
                 alpha: float = 1.0, *, check: bool = True):
    """Hand-derived gradients of kl_loss(soft_assign(z, centers, alpha), p).

    Returns (grad_z, grad_centers), shaped like z (N × d) and centers (K × d):

        ∂L/∂z_i =  (α+1)/(αN) Σ_j u_ij (p_ij − q_ij) (z_i − μ_j)
        ∂L/∂μ_j = −(α+1)/(αN) Σ_i u_ij (p_ij − q_ij) (z_i − μ_j)

    with u_ij = (1 + ‖z_i − μ_j‖²/α)^(−1). The rows of p (N × K) must sum
    to 1. Chapter 3 derives both (the gradients with respect to z and μ).
    """
    alpha = _check_alpha(alpha)
    _check_rows(p, "p", check)
    n, k = z.shape[0], centers.shape[0]
    if p.shape != (n, k):
        raise ValueError(f"p must be N × K = {n} × {k}, got {tuple(p.shape)}")
    q = soft_assign(z, centers, alpha)
    u = 1 / (1 + squared_distances(z, centers) / alpha)
    c = (alpha + 1) / (alpha * n) * u * (p - q)      # N × K weights c_ij
    grad_z = c.sum(dim=1, keepdim=True) * z - c @ centers  # Σ_j c_ij (z_i − μ_j)
    grad_centers = c.sum(dim=0)[:, None] * centers - c.T @ z  # −Σ_i c_ij (…)
    return grad_z, grad_centers


class DECLoss(torch.autograd.Function):
    """KL(P‖Q) whose backward pass is kl_gradients, not autograd's.

    DECLoss.apply(z, centers, p, alpha) → scalar loss; gradients flow into
    z and centers, never into p. Checked with gradcheck in chapter 3.
    """

    @staticmethod
    def forward(ctx, z, centers, p, alpha=1.0, check=True):
        ctx.save_for_backward(z, centers, p)
        ctx.alpha = alpha
        return kl_loss(soft_assign(z, centers, alpha), p, check=check)

    @staticmethod
    def backward(ctx, grad_loss):
        z, centers, p = ctx.saved_tensors
        grad_z, grad_centers = kl_gradients(z, centers, p, ctx.alpha,
                                            check=False)
        return grad_loss * grad_z, grad_loss * grad_centers, None, None, None


def kl_loss_hand(z: torch.Tensor, centers: torch.Tensor, p: torch.Tensor,
                 alpha: float = 1.0, *, check: bool = True) -> torch.Tensor:
    """The same value as ``kl_loss(soft_assign(z, centers, alpha), p)``, differentiated by hand.

    z (N × d), centers (K × d), p (N × K, rows summing to 1) → a scalar. ``check=False`` skips
    the value checks on p (a device sync), for training loops. Chapter 3.
    """
    return DECLoss.apply(z, centers, p.detach(), _check_alpha(alpha), check)


# ==============================================================================================
# Chapter 4 — the DEC model and its trainer
# ==============================================================================================
#
# Everything below builds on the pure functions above and never changes them. The model is the
# pretrained encoder plus K centres; the trainer alternates (1) a refresh over the whole dataset —
# soft assignments Q, target P, hard labels, cluster sizes — with (2) `update_interval` SGD steps
# on minibatches of KL(P‖Q) against that fixed P. All per-step work stays on the device; the
# host looks at the numbers once per refresh.

import copy as _copy
import time as _time
import warnings as _warnings

from torch import nn as _nn

from .training import History as _History
from .training import batches as _batches
from .training import check_finite as _check_finite

__all__ += [
    "ClusterCollapseWarning",
    "cluster_sizes",
    "size_entropy",
    "DEC",
    "DECHistory",
    "kmeans_init",
    "contingency_scores",
    "train_dec",
]


class ClusterCollapseWarning(UserWarning):
    """DEC's clusters collapsed: one cluster holds nearly every point, or some clusters are empty.

    Raised through :func:`warnings.warn` by :func:`train_dec`; turn it into an error with
    ``warnings.simplefilter("error", ClusterCollapseWarning)``.
    """


def cluster_sizes(labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """How many points each of the ``n_clusters`` clusters holds: labels (N,) → sizes (K,), int64."""
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor of cluster indices, got shape {tuple(labels.shape)}")
    return torch.bincount(labels, minlength=n_clusters)


def size_entropy(sizes: torch.Tensor) -> torch.Tensor:
    """Entropy of the cluster-size distribution divided by log K: 1 for equal sizes, 0 for one cluster.

    sizes (K,) counts or fractions → a scalar tensor in [0, 1] (0 when K = 1). The collapse guard
    of :func:`train_dec` watches it: a healthy clustering of balanced classes stays near 1, a
    collapsing one falls towards 0 (chapter 4, "When DEC fails").
    """
    if sizes.ndim != 1 or sizes.numel() == 0:
        raise ValueError(f"sizes must be a non-empty 1-D tensor (one entry per cluster), got {tuple(sizes.shape)}")
    f = sizes.double() / sizes.sum().clamp_min(1)
    if sizes.numel() == 1:
        return torch.zeros((), dtype=torch.float64, device=sizes.device)
    return -torch.xlogy(f, f).sum() / math.log(sizes.numel()) + 0.0   # + 0.0: no "-0.000"


def embedding_geometry(z: torch.Tensor, centers: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scale of an embedding and of its centres — what chapter 4 watches when DEC collapses.

    Args:
        z: N × d embedded points; centers: K × d centres (K ≥ 2).

    Returns:
        0-d tensors (no sync): ``embedding_spread`` — root-mean-square distance of the points
        from their mean (0 when the embedding has shrunk to a point); ``centre_spread`` — mean
        distance between two distinct centres; ``centre_ratio`` — the mean distance of a point
        to its nearest centre divided by ``centre_spread``: small for tight, well-separated
        clusters, about 1 or more when the centres no longer mean anything to the points.
    """
    _check_points(z, centers)
    spread = (z - z.mean(dim=0)).pow(2).sum(dim=1).mean().sqrt()
    K = centers.shape[0]
    pair = torch.cdist(centers, centers)
    centre_spread = pair.sum() / max(K * (K - 1), 1)
    nearest = squared_distances(z, centers).min(dim=1).values.clamp_min(0).sqrt().mean()
    return {"embedding_spread": spread, "centre_spread": centre_spread,
            "centre_ratio": nearest / centre_spread.clamp_min(torch.finfo(z.dtype).tiny)}


class DEC(_nn.Module):
    """Deep Embedded Clustering: an encoder and K cluster centres μ_j trained together (chapter 4).

    Args:
        encoder: maps N × D inputs to N × d embeddings — chapter 2's ``stack.encoder``. It is
            **copied**, so training DEC leaves the pretrained stack as it was.
        n_clusters: K, the number of clusters.
        alpha: degrees of freedom of the Student-t kernel (DEC uses α = 1).
        embedding_dim: d; read from ``encoder.out_features`` when not given.

    ``centers`` (K × d) is an :class:`torch.nn.Parameter`, zero until :func:`kmeans_init` or
    :meth:`set_centers` fills it. ``forward(x)`` returns the soft assignments q (N × K) of a batch
    with gradients (chapter 3's soft assignment); :meth:`soft_assign`, :meth:`predict` and
    :meth:`embed_all` run over a whole dataset in evaluation mode, without gradients.
    """

    def __init__(self, encoder: _nn.Module, n_clusters: int = 10, alpha: float = 1.0,
                 embedding_dim: int | None = None):
        super().__init__()
        if not isinstance(n_clusters, int) or n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        known = getattr(encoder, "out_features", None)
        if embedding_dim is None:
            if known is None:
                raise ValueError("cannot tell the encoder's output size: give embedding_dim= "
                                 "(the encoder has no out_features attribute)")
            embedding_dim = int(known)
        elif known is not None and int(known) != int(embedding_dim):
            raise ValueError(f"the encoder outputs {known} features but embedding_dim={embedding_dim}: "
                             "the centres must live in the encoder's output space")
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
        self.encoder = _copy.deepcopy(encoder)
        self.alpha = _check_alpha(alpha)
        first = next(self.encoder.parameters(), None)
        dev = first.device if first is not None else None
        self.centers = _nn.Parameter(torch.zeros(n_clusters, int(embedding_dim), device=dev))

    @property
    def n_clusters(self) -> int:
        return self.centers.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.centers.shape[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding z = f_θ(x) of a batch (N × D → N × d), with gradients."""
        z = self.encoder(x)
        if z.ndim != 2 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"the encoder produced embeddings of shape {tuple(z.shape)} but the "
                             f"{self.n_clusters} centres have {self.embedding_dim} features")
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Soft assignments q (N × K) of a batch x (N × D), with gradients into θ and the μ_j."""
        return soft_assign(self.embed(x), self.centers, self.alpha)

    @torch.no_grad()
    def embed_all(self, X: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        """The embeddings of a whole dataset (N × D → N × d), in evaluation mode, in batches."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self.embed(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
        finally:
            self.train(was_training)

    @torch.no_grad()
    def soft_assign(self, X: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        """Soft assignments q (N × K) of a whole dataset X (N × D) on its embedding; no gradients."""
        return soft_assign(self.embed_all(X, batch_size), self.centers, self.alpha)

    @torch.no_grad()
    def predict(self, X: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        """Hard cluster labels (N,), the argmax of q — the nearest centre in the embedding."""
        return self.soft_assign(X, batch_size).argmax(dim=1)

    @torch.no_grad()
    def set_centers(self, centers) -> None:
        """Overwrite the K × d centres (a tensor or array of that shape)."""
        c = torch.as_tensor(centers, dtype=self.centers.dtype)
        if c.shape != self.centers.shape:
            raise ValueError(f"centers must be K × d = {self.n_clusters} × {self.embedding_dim}, "
                             f"got shape {tuple(c.shape)}")
        if not bool(torch.isfinite(c).all()):
            raise ValueError("centers contain NaN or infinite values")
        self.centers.copy_(c.to(self.centers.device))


def _check_data(X: torch.Tensor, n_clusters: int) -> None:
    if not isinstance(X, torch.Tensor) or X.ndim != 2:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"X must be a 2-D tensor N × D, got {shape}")
    if len(X) < n_clusters:
        raise ValueError(f"cannot make {n_clusters} clusters of {len(X)} points: "
                         "need at least as many points as clusters")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X contains NaN or infinite values")


def kmeans_init(model: DEC, X: torch.Tensor, n_init: int = 20, seed: int = 0,
                batch_size: int = 65536) -> torch.Tensor:
    """Set ``model.centers`` by k-means on the embedding of X; return the k-means labels (N,).

    Runs scikit-learn's k-means (k-means++ seeding) ``n_init`` times on the N × d embedding and
    keeps the run with the smallest within-cluster sum of squares — DEC's initialisation.
    The labels come back on X's device.
    """
    from sklearn.cluster import KMeans

    _check_data(X, model.n_clusters)
    if n_init < 1:
        raise ValueError(f"n_init (k-means restarts) must be at least 1, got {n_init}")
    Z = model.embed_all(X, batch_size)
    if not bool(torch.isfinite(Z).all()):
        raise ValueError("the encoder produced NaN or infinite embeddings; is it trained, and "
                         "are the inputs in [0, 1]?")
    km = KMeans(n_clusters=model.n_clusters, n_init=n_init, random_state=seed)
    labels = km.fit_predict(Z.detach().cpu().double().numpy())
    model.set_centers(torch.from_numpy(km.cluster_centers_))
    return torch.from_numpy(labels).long().to(X.device)


def contingency_scores(counts) -> dict[str, float]:
    """ACC, NMI and ARI of a clustering from its contingency table (classes × clusters).

    ``counts[i, j]`` is the number of points of class i in cluster j (empty rows or columns are
    allowed). Gives the values of :func:`dctutor.metrics.cluster_acc`, :func:`~dctutor.metrics.nmi`
    (arithmetic normalisation) and :func:`~dctutor.metrics.ari` without touching the N labels —
    :func:`train_dec` builds the table on the device and scores every refresh from it.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    C = np.asarray(counts, dtype=np.float64)
    if C.ndim != 2 or C.size == 0 or (C < 0).any() or C.sum() <= 0:
        raise ValueError(f"counts must be a non-empty, non-negative 2-D table, got shape {C.shape}")
    n = C.sum()
    rows, cols = linear_sum_assignment(C, maximize=True)
    acc = C[rows, cols].sum() / n
    a, b = C.sum(axis=1), C.sum(axis=0)
    a, b = a[a > 0], b[b > 0]

    def entropy(v):
        f = v / n
        return float(-(f * np.log(f)).sum())

    h_a, h_b = entropy(a), entropy(b)
    nz = C > 0
    outer = np.outer(C.sum(axis=1), C.sum(axis=0))
    mi = float((C[nz] / n * np.log(C[nz] * n / outer[nz])).sum())
    if len(a) == len(b) == 1:
        nmi = 1.0
    else:
        nmi = max(mi, 0.0) / max((h_a + h_b) / 2, np.finfo(np.float64).eps)
    pairs = lambda v: (v * (v - 1) / 2).sum()                        # noqa: E731
    index, pa, pb, total = pairs(C), pairs(a), pairs(b), n * (n - 1) / 2
    expected = pa * pb / total if total > 0 else 0.0
    top = (pa + pb) / 2
    ari = 1.0 if top == expected else (index - expected) / (top - expected)
    return {"acc": float(acc), "nmi": float(min(nmi, 1.0)), "ari": float(ari)}


class DECHistory(_History):
    """The record of one DEC run: one entry per target refresh, plus why it stopped.

    Series (one value per refresh; the first at step 0, right after k-means):
        ``step``, ``loss`` (KL(P‖Q) averaged over the minibatches since the previous refresh; at
        step 0 over the whole dataset), ``kl`` (whole-dataset KL against the fresh target),
        ``label_change`` (fraction of points whose label changed since the previous refresh; at
        step 0 against the k-means labels), ``sizes`` (K counts), ``size_entropy``,
        ``largest`` (fraction in the largest cluster), ``nonempty``, ``alive`` (clusters of
        at least ``dead_fraction`` · N/K points), ``collapsed``, ``confidence`` (mean of
        max_j q_ij: 1/K for uniform assignments, 1 for hard ones), the embedding's geometry
        from :func:`embedding_geometry` (``embedding_spread``, ``centre_spread``,
        ``centre_ratio``), ``seconds``; ``acc``, ``nmi`` and ``ari`` when labels were given.

    Attributes:
        stop_reason: ``"converged"`` (fewer than ``tol`` of the labels changed), ``"collapsed"``
            (labels froze, but in a collapsed state — *not* a convergence), or ``"max_steps"``.
        steps: SGD steps taken. converged / collapsed: booleans. labels: the final hard labels.
        initial_labels: the k-means labels DEC started from (``None`` when ``init=False``).
    """

    stop_reason: str = ""
    steps: int = 0
    labels: torch.Tensor | None = None
    initial_labels: torch.Tensor | None = None

    @property
    def converged(self) -> bool:
        return self.stop_reason == "converged"

    @property
    def collapsed(self) -> bool:
        return bool(self.get("collapsed")) and bool(self["collapsed"][-1])

    def __repr__(self) -> str:
        return (f"DECHistory(stop_reason={self.stop_reason!r}, steps={self.steps}, "
                f"refreshes={len(self.get('step', []))})")


@torch.no_grad()
def _reconstruction(model: DEC, decoder: _nn.Module, X: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean squared reconstruction error per input unit of ``decoder(model.embed(X))`` (a 0-d tensor)."""
    was = decoder.training
    decoder.eval()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for start in range(0, len(X), batch_size):
        xb = X[start:start + batch_size]
        total += (decoder(model.embed(xb)) - xb).pow(2).sum().double()
    decoder.train(was)
    return total / X.numel()


def _endless_batches(n: int, batch_size: int, device, generator):
    while True:
        yield from _batches(n, batch_size, device=device, generator=generator)


def train_dec(model: DEC, X: torch.Tensor, y: torch.Tensor | None = None, *,
              batch_size: int = 256, lr: float = 0.01, momentum: float = 0.9,
              update_interval: int = 140, tol: float = 0.001, max_steps: int = 20000,
              kmeans_restarts: int = 20, init: bool = True, collapse_fraction: float = 0.9,
              dead_fraction: float = 0.1,
              hand_gradient: bool = False, decoder: _nn.Module | None = None,
              gamma: float = 0.1, optimizer: str = "sgd", seed: int = 0,
              eval_batch_size: int = 65536, progress: bool = True,
              on_refresh: Callable[[int, DEC], None] | None = None,
              desc: str = "DEC") -> DECHistory:
    """Train DEC on X (N × D, on the device): k-means init, then KL(P‖Q) with periodic targets.

    1. ``init``: centres from k-means with ``kmeans_restarts`` restarts on the embedding.
    2. Every ``update_interval`` steps, over the whole dataset: the soft assignments q, the
       target p (both from chapter 3), hard labels, cluster sizes. Stop when, after step 0,
       fewer than a fraction ``tol`` of the labels changed since the previous refresh, or at
       ``max_steps``.
    3. In between, SGD (``lr``, ``momentum``) on minibatch KL(P‖Q) (chapter 3's objective) against
       that fixed p, into the encoder and the centres. ``hand_gradient`` backpropagates through
       chapter 3's hand-derived gradient (:func:`kl_loss_hand`) instead of autograd's.

    Collapse guard: at every refresh the cluster sizes are checked. A cluster is *alive* when it
    holds at least ``dead_fraction`` of an equal share (N/K points); a cluster of a handful of
    points is as dead as an empty one. When the largest cluster holds at least
    ``collapse_fraction`` of the points, or fewer than K clusters are alive, the run is
    *collapsed*: a :class:`ClusterCollapseWarning` says so (once per run), and if the labels
    then stop changing the run stops with ``stop_reason = "collapsed"`` — never
    ``"converged"``.

    IDEC (Guo et al. 2017): with a ``decoder`` (code → input, the autoencoder's), every step
    minimises ``L_rec + gamma · L_KL`` instead, the reconstruction error (mean squared, per input
    unit) of ``decoder(encoder(x))`` keeping the embedding faithful to the images; encoder,
    decoder and centres are trained together, and the history logs ``reconstruction`` at every
    refresh. ``optimizer`` is ``"sgd"`` (with ``momentum``; DEC's) or ``"adam"`` (IDEC's).

    Labels ``y`` (N,) are only scored (ACC, NMI, ARI in the history); they never touch training.

    ``on_refresh(step, model)``, if given, is called at every refresh after it is logged — e.g. to
    keep snapshots of a few points' embedding for a picture of the clusters moving (chapter 4).

    Returns:
        a :class:`DECHistory`; the model (and ``decoder``) are left in evaluation mode.

    Raises:
        ValueError: more clusters than points, non-finite inputs, a bad schedule, labels of the
            wrong length, an encoder whose output does not match the centres.
        dctutor.training.TrainingDiverged: the loss became NaN or infinite.
    """
    import numpy as np

    K = model.n_clusters
    _check_data(X, K)
    if batch_size < 1 or update_interval < 1 or max_steps < 0 or lr <= 0 or not 0 <= tol < 1:
        raise ValueError(f"need batch_size ≥ 1, update_interval ≥ 1, max_steps ≥ 0, lr > 0 and "
                         f"0 ≤ tol < 1; got {batch_size}, {update_interval}, {max_steps}, {lr}, {tol}")
    if not 0 < collapse_fraction <= 1:
        raise ValueError(f"collapse_fraction must be in (0, 1], got {collapse_fraction}")
    if not 0 <= dead_fraction < 1:
        raise ValueError(f"dead_fraction must be in [0, 1), got {dead_fraction}")
    if decoder is not None and not gamma > 0:
        raise ValueError(f"gamma (the KL weight of IDEC) must be positive, got {gamma}")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'")
    y_idx = n_classes = None
    if y is not None:
        y_np = torch.as_tensor(y).detach().cpu().numpy()
        if y_np.shape != (len(X),):
            raise ValueError(f"y must hold one label per point ({len(X)}), got shape {y_np.shape}")
        classes, inverse = np.unique(y_np, return_inverse=True)
        n_classes = len(classes)
        y_idx = torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=X.device) * K
    N = len(X)
    min_alive = max(1, math.ceil(dead_fraction * N / K))   # smallest size of a live cluster
    start = _time.perf_counter()

    if init:
        prev = kmeans_init(model, X, n_init=kmeans_restarts, seed=seed, batch_size=eval_batch_size)
    else:
        prev = None
    history = DECHistory()
    history.initial_labels = prev
    params = list(model.parameters()) + (list(decoder.parameters()) if decoder is not None else [])
    opt = (torch.optim.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))
    kl_fn = (lambda z, p: kl_loss_hand(z, model.centers, p, model.alpha)) if hand_gradient else \
            (lambda z, p: kl_loss(soft_assign(z, model.centers, model.alpha), p, check=False))
    if decoder is None:
        def loss_fn(x, p):
            return kl_fn(model.embed(x), p)
    else:                                                     # IDEC: L_rec + gamma * L_KL
        def loss_fn(x, p):
            z = model.embed(x)
            return _nn.functional.mse_loss(decoder(z), x) + gamma * kl_fn(z, p)
    gen = torch.Generator().manual_seed(seed)
    stream = _endless_batches(N, batch_size, X.device, gen)

    warned = False
    interval_loss = None
    step = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_steps, desc=desc, leave=False)
    try:
        while True:
            # ---- refresh over the whole dataset: q, p, labels, sizes (one sync) --------------
            Z = model.embed_all(X, eval_batch_size)
            with torch.no_grad():
                q = soft_assign(Z, model.centers, model.alpha)
                geometry = embedding_geometry(Z, model.centers)
            p = target_distribution(q, check=False)
            labels = q.argmax(dim=1)
            sizes = cluster_sizes(labels, K)
            kl = kl_loss(q, p, check=False)
            change = (labels != prev).double().mean() if prev is not None else torch.ones((), dtype=torch.float64)
            loss = kl if interval_loss is None else interval_loss
            dev = loss.device
            summary = torch.stack([loss.double(), kl.double(), change.to(dev),
                                   size_entropy(sizes).to(dev), q.max(dim=1).values.mean().double(),
                                   *(v.double() for v in geometry.values()),
                                   *([_reconstruction(model, decoder, X, eval_batch_size)]
                                     if decoder is not None else [])]).cpu()
            _check_finite(summary[:2], "DEC loss", step=step)
            sizes_list = sizes.cpu().tolist()
            largest = max(sizes_list) / N
            nonempty = sum(s > 0 for s in sizes_list)
            alive = sum(s >= min_alive for s in sizes_list)
            collapsed = largest >= collapse_fraction or alive < K
            record = dict(step=step, loss=float(summary[0]), kl=float(summary[1]),
                          label_change=float(summary[2]), sizes=sizes_list,
                          size_entropy=float(summary[3]), largest=largest, nonempty=nonempty,
                          alive=alive, collapsed=collapsed, confidence=float(summary[4]),
                          **{name: float(v) for name, v in zip(geometry, summary[5:])})
            if decoder is not None:
                record["reconstruction"] = float(summary[-1])
            if y_idx is not None:   # a classes × clusters table, built on the device
                counts = torch.bincount(y_idx + labels, minlength=n_classes * K)
                record.update(contingency_scores(counts.reshape(n_classes, K).cpu().numpy()))
            record["seconds"] = _time.perf_counter() - start
            history.log(**record)
            if on_refresh is not None:
                on_refresh(step, model)
            if bar is not None:
                bar.set_postfix({k: f"{record[k]:.3f}" for k in ("label_change", "size_entropy", "acc")
                                 if k in record})
            if collapsed and not warned:
                warned = True
                _warnings.warn(ClusterCollapseWarning(
                    f"{desc}: clusters collapsed at step {step} — the largest cluster holds "
                    f"{largest:.1%} of the points, {nonempty} of {K} clusters are non-empty and "
                    f"{alive} of {K} hold at least {min_alive} points (cluster-size entropy "
                    f"{record['size_entropy']:.3f}; 1 means equal sizes). A frozen collapsed "
                    "state is not convergence: lower the learning rate, refresh the target less "
                    "often, or pretrain the encoder longer."), stacklevel=2)
            if prev is not None and step > 0 and record["label_change"] < tol:
                history.stop_reason = "collapsed" if collapsed else "converged"
                break
            if step >= max_steps:
                history.stop_reason = "max_steps"
                break
            prev = labels

            # ---- update_interval SGD steps against the fixed target p ----------------------
            model.train()
            n_steps = min(update_interval, max_steps - step)
            total = torch.zeros((), device=X.device)
            for _ in range(n_steps):
                idx = next(stream)
                loss = loss_fn(X[idx], p[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach()
            step += n_steps
            interval_loss = total / n_steps
            if bar is not None:
                bar.update(n_steps)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
        if decoder is not None:
            decoder.eval()
    history.steps = step
    history.labels = labels
    return history
