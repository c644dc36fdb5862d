"""Embedding quality without a classifier head: kNN accuracy, k-means NMI and Hungarian ACC.

Follows Kang et al. (Remote Sens. 2020, §4.2): kNN classification of test embeddings against the
training embeddings by Euclidean distance with majority voting (K = 10); k-means on the test
embeddings scored by NMI = 2·I(Y; C) / (H(Y) + H(C)) (eq. 8) and by ACC = the accuracy under the
best one-to-one cluster→class mapping (eq. 9), found with the Hungarian algorithm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.errors import UserInputError, require
from compress.io import to_jsonable
from compress.metrics.arrays import as_embeddings, as_labels, check_same_length
from compress.metrics.distances import DISTANCES, iter_distance_blocks

__all__ = ["ClusteringMetrics", "knn_predict", "knn_accuracy", "kmeans_nmi_acc", "clustering_accuracy", "nmi"]


@dataclass(frozen=True)
class ClusteringMetrics:
    nmi: float  # in [0, 1]
    acc: float  # in [0, 1]
    n_clusters: int
    n: int

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Any hashable labels → (unique values, dense codes 0..U-1)."""
    return np.unique(labels, return_inverse=True)


def knn_predict(
    train_emb: Any,
    train_labels: Any,
    test_emb: Any | None = None,
    k: int = 10,
    metric: str = "euclidean",
    leave_one_out: bool = False,
    block_size: int | None = None,
) -> np.ndarray:
    """Majority vote of the ``k`` nearest training embeddings for each test embedding → labels ``[M]``.

    A tie in votes goes to the tied class whose member is nearest. ``leave_one_out=True`` classifies
    the training set itself, each sample excluding itself (then ``test_emb`` must be None).
    """
    DISTANCES.get(metric)
    train = as_embeddings(train_emb, "train_emb")
    ytrain = as_labels(train_labels, "train_labels")
    check_same_length(train, ytrain, "train_emb", "train_labels")
    if leave_one_out:
        if test_emb is not None:
            raise UserInputError("leave_one_out=True classifies the training set itself; do not pass test_emb too.")
        test = train
    else:
        if test_emb is None:
            raise UserInputError("test_emb is missing; pass test embeddings or set leave_one_out=True.")
        test = as_embeddings(test_emb, "test_emb")
    n_avail = len(train) - int(leave_one_out)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_avail:
        raise UserInputError(f"k must be an integer in 1..{n_avail} (the number of neighbours available); got {k!r}.")
    classes, codes = _codes(ytrain)
    n_cls = len(classes)
    preds = np.empty(len(test), dtype=np.int64)
    for start, dist in iter_distance_blocks(test, train, metric, block_size):
        rows = dist.shape[0]
        r = np.arange(rows)
        if leave_one_out:
            dist[r, np.arange(start, start + rows)] = np.inf
        # k smallest distances per row, then sorted (ties by training order) so rank 0 is nearest.
        part = np.sort(np.argpartition(dist, k - 1, axis=1)[:, :k], axis=1)
        nearest = np.take_along_axis(part, np.argsort(np.take_along_axis(dist, part, 1), axis=1, kind="stable"), 1)
        nb = codes[nearest]  # [rows, k] class codes, nearest first
        votes = np.zeros((rows, n_cls), dtype=np.int64)
        np.add.at(votes, (np.repeat(r, k), nb.ravel()), 1)
        first_rank = np.full((rows, n_cls), k, dtype=np.int64)
        np.minimum.at(first_rank, (np.repeat(r, k), nb.ravel()), np.tile(np.arange(k), rows))
        # Votes dominate (each vote is worth k+1); among equal votes the earlier first rank wins.
        preds[start : start + rows] = np.argmax(votes * (k + 1) - first_rank, axis=1)
    return classes[preds]


def knn_accuracy(
    train_emb: Any,
    train_labels: Any,
    test_emb: Any | None = None,
    test_labels: Any | None = None,
    k: int = 10,
    metric: str = "euclidean",
    leave_one_out: bool = False,
    block_size: int | None = None,
) -> float:
    """Fraction of test samples whose kNN vote (see ``knn_predict``) equals their label.

    With ``leave_one_out=True`` the training set is classified against itself minus each sample
    and ``test_emb``/``test_labels`` must be omitted.
    """
    if leave_one_out:
        if test_labels is not None:
            raise UserInputError("leave_one_out=True scores the training set itself; do not pass test_labels too.")
        ytest = as_labels(train_labels, "train_labels")
    else:
        if test_labels is None:
            raise UserInputError("test_labels is missing; pass them with test_emb, or set leave_one_out=True.")
        ytest = as_labels(test_labels, "test_labels")
        if test_emb is not None:
            check_same_length(as_embeddings(test_emb, "test_emb"), ytest, "test_emb", "test_labels")
    pred = knn_predict(train_emb, train_labels, test_emb, k, metric, leave_one_out, block_size)
    return float(np.mean(pred == ytest))


def _pair_labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = as_labels(y_true, "y_true")
    p = as_labels(y_pred, "y_pred")
    check_same_length(t, p, "y_true", "y_pred")
    return t, p


def clustering_accuracy(y_true: Any, y_pred: Any) -> float:
    """Best accuracy over one-to-one maps cluster → class (Hungarian algorithm on the contingency table).

    Cluster ids are arbitrary; with more clusters than classes the unmatched clusters count as errors.
    """
    t, p = _pair_labels(y_true, y_pred)
    _, tc = _codes(t)
    _, pc = _codes(p)
    table = np.zeros((pc.max() + 1, tc.max() + 1), dtype=np.int64)
    np.add.at(table, (pc, tc), 1)
    optimize = require("scipy.optimize", "Clustering accuracy", "pip install scipy")
    rows, cols = optimize.linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(t))


def nmi(y_true: Any, y_pred: Any) -> float:
    """Normalised mutual information 2·I(Y; C) / (H(Y) + H(C)) (arithmetic-mean normalisation)."""
    t, p = _pair_labels(y_true, y_pred)
    metrics = require("sklearn.metrics", "NMI", "pip install scikit-learn")
    return float(metrics.normalized_mutual_info_score(t, p, average_method="arithmetic"))


def kmeans_nmi_acc(emb: Any, labels: Any, n_clusters: int | None = None, seed: int = 0) -> ClusteringMetrics:
    """k-means (n_init=10, seeded) on embeddings ``[N, D]``; NMI and ACC of the clusters against ``labels``.

    ``n_clusters`` defaults to the number of distinct labels.
    """
    x = as_embeddings(emb, "emb")
    y = as_labels(labels, "labels")
    check_same_length(x, y, "emb", "labels")
    k = len(np.unique(y)) if n_clusters is None else n_clusters
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(x):
        raise UserInputError(f"n_clusters must be an integer in 1..{len(x)} (the number of samples); got {k!r}.")
    cluster = require("sklearn.cluster", "k-means clustering", "pip install scikit-learn")
    assign = cluster.KMeans(n_clusters=int(k), n_init=10, random_state=seed).fit_predict(x)
    return ClusteringMetrics(nmi=nmi(y, assign), acc=clustering_accuracy(y, assign), n_clusters=int(k), n=len(x))
