"""Golden values for kNN accuracy, NMI, Hungarian ACC and k-means (Kang et al. 2020, §4.2)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.metrics import clustering_accuracy, kmeans_nmi_acc, knn_accuracy, knn_predict, nmi

# Training points on a line: class 0 near 0, class 1 near 10.
TRAIN = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
TRAIN_Y = np.array([0, 0, 0, 1, 1, 1])


def test_knn_on_a_line_majority():
    # k = 3. 1.5 → 1, 2, 0 (all class 0). 10.5 → 10, 11, 12 → 1.
    # 6.1 → 10 (3.9), 2 (4.1), 11 (4.9) → votes 1:2, 0:1 → 1.
    test = np.array([[1.5], [10.5], [6.1]])
    assert knn_predict(TRAIN, TRAIN_Y, test, k=3).tolist() == [0, 1, 1]
    # Labels [0, 1, 0]: the third is wrong → 2/3.
    assert knn_accuracy(TRAIN, TRAIN_Y, test, np.array([0, 1, 0]), k=3) == pytest.approx(2 / 3)


def test_knn_tie_goes_to_nearest():
    # k = 2 gives one vote each; the nearer neighbour's class wins.
    # 5.9 → 2 (3.9, class 0), 10 (4.1, class 1) → 0.   6.1 → 10 (3.9, class 1), 2 (4.1) → 1.
    test = np.array([[5.9], [6.1]])
    assert knn_predict(TRAIN, TRAIN_Y, test, k=2).tolist() == [0, 1]
    # The same holds with string labels and torch inputs.
    names = np.array(["field"] * 3 + ["river"] * 3)
    pred = knn_predict(torch.tensor(TRAIN), names, torch.tensor(test), k=2)
    assert pred.tolist() == ["field", "river"]


def test_knn_leave_one_out():
    # Points 0, 1, 2.2 (class 0), 10, 11, 12.5 (class 1) and 4 (class 1), k = 1, each without itself:
    # 0→1 ✓, 1→0 ✓, 2.2→1 (1.2 < 1.8) ✓, 10→11 ✓, 11→10 ✓, 12.5→11 ✓, 4→2.2 (class 0) ✗ → 6/7.
    x = np.array([[0.0], [1.0], [2.2], [10.0], [11.0], [12.5], [4.0]])
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    assert knn_accuracy(x, y, k=1, leave_one_out=True) == pytest.approx(6 / 7)
    assert knn_accuracy(x, y, k=1, leave_one_out=True, block_size=2) == pytest.approx(6 / 7)
    # Without leaving out, every point finds itself first → 1.0.
    assert knn_accuracy(x, y, x, y, k=1) == 1.0


def test_knn_metric_matters():
    # Query (1, 0): cosine-nearest is (10, 1) (class 1), euclidean-nearest is (1, 1) (class 0).
    train, ty = np.array([[1.0, 1.0], [10.0, 1.0]]), np.array([0, 1])
    q = np.array([[1.0, 0.0]])
    assert knn_predict(train, ty, q, k=1, metric="euclidean").tolist() == [0]
    assert knn_predict(train, ty, q, k=1, metric="cosine").tolist() == [1]


def test_knn_bad_inputs():
    test = np.array([[1.0]])
    with pytest.raises(UserInputError, match=r"k must be an integer in 1\.\.6"):
        knn_accuracy(TRAIN, TRAIN_Y, test, [0], k=7)
    with pytest.raises(UserInputError, match=r"k must be an integer in 1\.\.5"):
        knn_accuracy(TRAIN, TRAIN_Y, k=6, leave_one_out=True)
    with pytest.raises(UserInputError, match="do not pass test_emb"):
        knn_predict(TRAIN, TRAIN_Y, test, k=1, leave_one_out=True)
    with pytest.raises(UserInputError, match="test_labels is missing"):
        knn_accuracy(TRAIN, TRAIN_Y, test, k=1)
    with pytest.raises(UserInputError, match="test_emb has 1 rows but test_labels has 2"):
        knn_accuracy(TRAIN, TRAIN_Y, test, [0, 1], k=1)
    with pytest.raises(UserInputError, match="train_emb has 6 rows but train_labels has 2"):
        knn_accuracy(TRAIN, [0, 1], test, [0], k=1)
    with pytest.raises(UserInputError, match="Unknown distance 'cos'"):
        knn_accuracy(TRAIN, TRAIN_Y, test, [0], k=1, metric="cos")
    with pytest.raises(UserInputError, match="train_emb is empty"):
        knn_accuracy(np.zeros((0, 1)), [], test, [0], k=1)


def test_nmi_perfect_permuted_and_by_hand():
    assert nmi([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]) == pytest.approx(1.0)
    assert nmi([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]) == pytest.approx(1.0)
    # y = [0,0,1,1], c = [0,0,0,1]. p(y) = ½,½; p(c) = ¾,¼; joint (0,0) ½, (1,0) ¼, (1,1) ¼.
    # I = ½·ln(½/(½·¾)) + ¼·ln(¼/(½·¾)) + ¼·ln(¼/(½·¼)) = ½ ln 4/3 + ¼ ln 2/3 + ¼ ln 2 ≈ 0.215762
    # H(Y) = ln 2 ≈ 0.693147; H(C) = −(¾ ln ¾ + ¼ ln ¼) ≈ 0.562335
    # NMI = 2I / (H(Y) + H(C)) ≈ 0.431523 / 1.255482 ≈ 0.343712
    i = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    h_y = math.log(2)
    h_c = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(2 * i / (h_y + h_c))
    assert nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.343712, abs=1e-6)


def test_clustering_accuracy():
    # Permuted cluster ids map one-to-one onto the classes: 2→0, 0→1, 1→2 → 6/6.
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]) == 1.0
    # One sample in the wrong cluster: best map still 2→0, 0→1, 1→2 → 5/6.
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 0]) == pytest.approx(5 / 6)
    # More clusters than classes: 2→1 (2 right), 0 or 1→0 (1 right), the other unmatched → 3/4.
    assert clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(0.75)
    # Labels need not be integers.
    assert clustering_accuracy(["a", "a", "b"], [5, 5, 9]) == 1.0


def test_clustering_bad_inputs():
    with pytest.raises(UserInputError, match="y_true has 2 rows but y_pred has 3"):
        clustering_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(UserInputError, match="y_true is empty"):
        nmi([], [])


def test_kmeans_two_blobs():
    # Two tight, far-apart blobs: k-means recovers them exactly → NMI = ACC = 1, whatever the cluster ids.
    rng = np.random.default_rng(0)
    emb = np.vstack([rng.normal(0, 0.1, (10, 3)), rng.normal(5, 0.1, (10, 3))])
    labels = np.array([1] * 10 + [0] * 10)
    m = kmeans_nmi_acc(torch.tensor(emb, dtype=torch.float32), labels)
    assert (m.nmi, m.acc, m.n_clusters, m.n) == (pytest.approx(1.0), 1.0, 2, 20)
    assert m.to_dict() == {"nmi": pytest.approx(1.0), "acc": 1.0, "n_clusters": 2, "n": 20}
    # One cluster for two balanced classes: NMI 0, ACC ½.
    m1 = kmeans_nmi_acc(emb, labels, n_clusters=1)
    assert (m1.nmi, m1.acc) == (pytest.approx(0.0), 0.5)
    with pytest.raises(UserInputError, match=r"n_clusters must be an integer in 1\.\.20"):
        kmeans_nmi_acc(emb, labels, n_clusters=21)
    with pytest.raises(UserInputError, match="emb has 20 rows but labels has 19"):
        kmeans_nmi_acc(emb, labels[:-1])
