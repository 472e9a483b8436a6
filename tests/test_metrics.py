import itertools

import numpy as np
import pytest
import torch

from dctutor import metrics


def brute_force_acc(y_true, y_pred):
    """Best accuracy over every injective map from clusters to classes (small cases only)."""
    clusters, classes = np.unique(y_pred), np.unique(y_true)
    best = 0
    # pad classes with "no class" so maps with more clusters than classes are covered
    pool = list(classes) + [None] * max(0, len(clusters) - len(classes))
    for perm in itertools.permutations(pool, len(clusters)):
        mapping = dict(zip(clusters, perm))
        best = max(best, sum(mapping[p] == t for t, p in zip(y_true, y_pred)))
    return best / len(y_true)


@pytest.mark.parametrize("seed", range(25))
def test_cluster_acc_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 30))
    k_true, k_pred = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    y_true = rng.integers(0, k_true, n)
    y_pred = rng.integers(0, k_pred, n)
    assert metrics.cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))


def test_permuted_labels_score_perfectly():
    y = np.repeat(np.arange(4), 5)
    perm = np.array([2, 0, 3, 1])[y]
    assert metrics.evaluate(y, perm) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}


def test_accepts_tensors_lists_and_float_labels():
    y = torch.tensor([0, 0, 1, 1])
    assert metrics.cluster_acc(y, [1.0, 1.0, 0.0, 1.0]) == 0.75
    if torch.cuda.is_available():
        assert metrics.nmi(y.cuda(), y.cuda()) == 1.0


def test_more_clusters_than_classes():
    y_true = [0, 0, 0, 1, 1, 1]
    y_pred = [0, 0, 1, 2, 2, 2]
    assert metrics.cluster_acc(y_true, y_pred) == pytest.approx(5 / 6)
    # alignment keeps matrices square: the extra cluster takes its majority class
    assert metrics.align_labels(y_true, y_pred).tolist() == [0, 0, 0, 1, 1, 1]


def test_align_labels_renames_to_matched_classes():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([5, 5, 7, 7, 7, 9])
    aligned = metrics.align_labels(y_true, y_pred)
    assert aligned.tolist() == [0, 0, 1, 1, 1, 2]
    assert (aligned == y_true).mean() == pytest.approx(metrics.cluster_acc(y_true, y_pred))


@pytest.mark.parametrize("bad", [
    ([0, 1], [0, 1, 1]),            # lengths differ
    ([[0, 1]], [[0, 1]]),           # not 1-D
    ([], []),                       # empty
    ([0.5, 1], [0, 1]),             # non-integer labels
])
def test_bad_inputs_raise_value_error(bad):
    with pytest.raises(ValueError):
        metrics.cluster_acc(*bad)


# a class split over two clusters: cluster 1 holds three 0s and both 1s, and is matched to class 1
SPLIT_TRUE = [0, 0, 0, 0, 0, 0, 1, 1]
SPLIT_PRED = [0, 0, 0, 1, 1, 1, 1, 1]


def test_aligned_confusion_rows_are_shares_of_each_class():
    C = metrics.aligned_confusion(SPLIT_TRUE, SPLIT_PRED)
    np.testing.assert_allclose(C, [[0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(metrics.aligned_confusion(SPLIT_TRUE, SPLIT_PRED, normalize=False),
                               [[3, 3], [0, 2]])
    assert metrics.aligned_confusion([0, 1], [0, 1], n_classes=3).shape == (3, 3)


def test_top_confusions_lists_the_largest_mixes_first():
    y_true = np.repeat(np.arange(3), 10)
    y_pred = y_true.copy()
    y_pred[:4] = 1           # 40 % of class 0 in class 1's cluster
    y_pred[10:11] = 2        # 10 % of class 1 in class 2's cluster
    top = metrics.top_confusions(y_true, y_pred, ["a", "b", "c"], n=2)
    assert [(a, b) for a, b, _ in top] == [("a", "b"), ("b", "c")]
    assert top[0][2] == pytest.approx(0.4) and top[1][2] == pytest.approx(0.1)
    assert metrics.top_confusions(y_true, y_pred, n=1) == [(0, 1, pytest.approx(0.4))]


def test_mismatched_clusters_finds_an_artefact_of_the_matching():
    assert metrics.mismatched_clusters(SPLIT_TRUE, SPLIT_PRED) == [(1, 0, pytest.approx(0.6))]
    assert metrics.mismatched_clusters(SPLIT_TRUE, SPLIT_PRED, ["zero", "one"]) == [
        ("one", "zero", pytest.approx(0.6))]
    y = np.repeat(np.arange(4), 5)
    assert metrics.mismatched_clusters(y, (y + 1) % 4) == []      # a relabelling: no artefact


def test_the_sentences_under_a_confusion_matrix():
    from dctutor import book

    assert book.describe_confusions([("4", "9", 0.123), ("7", "1", 0.05)]) == (
        "4 taken for 9 (12%); 7 taken for 1 (5%)")
    assert book.describe_mismatches([]).startswith("Every cluster is matched")
    text = book.describe_mismatches(metrics.mismatched_clusters(SPLIT_TRUE, SPLIT_PRED, ["a", "b"]))
    assert "the cluster matched to b is mostly a (60% of it)" in text
