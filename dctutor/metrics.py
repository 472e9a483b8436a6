"""Clustering metrics: accuracy under the best matching, NMI, ARI, and label alignment.

Clusters have no names, so a clustering is scored after matching clusters to classes.
``cluster_acc`` finds the one-to-one matching that maximises the number of agreements
(the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). NMI and ARI are
permutation-invariant and come straight from scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _as_labels(y, what: str) -> np.ndarray:
    """A 1-D int64 NumPy array from a list, NumPy array or tensor (any device)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of labels, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{what} must hold integer labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    return t, p


def contingency(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``C[i, j]`` of points in cluster ``clusters[i]`` and class ``classes[j]``."""
    t, p = _pair(y_true, y_pred)
    classes, t_idx = np.unique(t, return_inverse=True)
    clusters, p_idx = np.unique(p, return_inverse=True)
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(counts, (p_idx, t_idx), 1)
    return counts, clusters, classes


def match_clusters(y_true, y_pred) -> dict[int, int]:
    """The best one-to-one map cluster → class (Hungarian). Unmatched clusters are left out."""
    counts, clusters, classes = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}


def cluster_acc(y_true, y_pred) -> float:
    """Accuracy of ``y_pred`` under the best one-to-one matching of clusters to classes.

    Works when the number of clusters differs from the number of classes: with more clusters,
    the unmatched ones count as errors; with fewer, some classes get no cluster.
    Accepts lists, NumPy arrays or tensors of integer labels. Returns a float in [0, 1].
    """
    counts, _, _ = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information (scikit-learn, arithmetic normalisation), in [0, 1]."""
    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index (scikit-learn): 1 for identical partitions, about 0 for chance."""
    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """``{"acc": ..., "nmi": ..., "ari": ...}`` for one clustering."""
    return {"acc": cluster_acc(y_true, y_pred), "nmi": nmi(y_true, y_pred), "ari": ari(y_true, y_pred)}


def align_labels(y_true, y_pred) -> np.ndarray:
    """Relabel clusters as the classes they are matched to, for confusion matrices.

    Clusters matched by :func:`match_clusters` take their class. Clusters left over (when
    there are more clusters than classes) take the class most of their members belong to,
    so the confusion matrix stays square.
    """
    t, p = _pair(y_true, y_pred)
    mapping = match_clusters(t, p)
    counts, clusters, classes = contingency(t, p)
    for i, c in enumerate(clusters):
        if int(c) not in mapping:
            mapping[int(c)] = int(classes[np.argmax(counts[i])])
    return np.array([mapping[int(c)] for c in p], dtype=np.int64)


def aligned_confusion(y_true, y_pred, n_classes: int | None = None,
                      normalize: bool = True) -> np.ndarray:
    """The confusion matrix of true class × cluster, clusters renamed to their matched class.

    y_true, y_pred (N,) integer labels (classes 0, …, C − 1) → C × C: entry ``[a, b]`` counts the
    points of class ``a`` whose cluster is matched to class ``b`` (:func:`align_labels`); with
    ``normalize``, each row is divided by its class's size, so it sums to 1 (an empty row stays 0).
    ``n_classes`` defaults to the largest label + 1. Drawn by
    :func:`dctutor.plots.confusion_matrix`; chapter 4 reads its largest entries off the diagonal.
    """
    t, _ = _pair(y_true, y_pred)
    aligned = align_labels(t, y_pred)
    k = int(max(t.max(), aligned.max())) + 1 if n_classes is None else int(n_classes)
    C = np.zeros((k, k))
    np.add.at(C, (t, aligned), 1)
    if normalize:
        C = C / np.maximum(C.sum(axis=1, keepdims=True), 1)
    return C


def top_confusions(y_true, y_pred, names=None, n: int = 3) -> list[tuple]:
    """The ``n`` largest off-diagonal shares of :func:`aligned_confusion` (rows normalised).

    Returns ``(true class, class it was taken for, share)`` triples, largest share first: the
    share is the fraction of the true class that sits in the cluster matched to the other class.
    Classes are given as ``names[k]`` (e.g. ``dataset.classes``), or as the indices ``k`` when
    ``names`` is None. Chapter 4 quotes them under its confusion matrices.
    """
    C = aligned_confusion(y_true, y_pred, None if names is None else len(names))
    np.fill_diagonal(C, 0)
    order = np.argsort(C, axis=None)[::-1][:n]
    pairs = [np.unravel_index(i, C.shape) for i in order]
    name = (lambda k: int(k)) if names is None else (lambda k: names[k])
    return [(name(a), name(b), float(C[a, b])) for a, b in pairs]


def mismatched_clusters(y_true, y_pred, names=None) -> list[tuple]:
    """Clusters whose matched class is not the class most of their points belong to.

    The one-to-one matching (:func:`match_clusters`) can give a cluster a class that is not its
    majority: when a class is split over two clusters, only one of them keeps its name. Returns a
    ``(matched class, majority class, majority share of the cluster)`` triple for each such
    cluster, in cluster order; classes as ``names[k]`` or, when ``names`` is None, as indices.
    An empty list means every confusion in :func:`aligned_confusion` is a real mix of classes.
    Chapter 4.
    """
    match = match_clusters(y_true, y_pred)
    counts, clusters, classes = contingency(y_true, y_pred)
    name = (lambda k: int(k)) if names is None else (lambda k: names[k])
    out = []
    for i, c in enumerate(clusters):
        major = int(classes[counts[i].argmax()])
        if int(c) in match and major != match[int(c)]:
            out.append((name(match[int(c)]), name(major), float(counts[i].max() / counts[i].sum())))
    return out
