"""The four retrieval distances (Xiong et al. 2020, Table XII) on hand-checkable vectors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.metrics import distance_names, pairwise_distance

Q = np.array([[1.0, 2.0]])
G = np.array([[4.0, 6.0], [2.0, 1.0]])


def test_names():
    assert distance_names() == ["correlation", "cosine", "euclidean", "l1"]


def test_euclidean():
    # (1,2)−(4,6) = (−3,−4) → 5; (1,2)−(2,1) = (−1,1) → √2
    assert pairwise_distance(Q, G, "euclidean") == pytest.approx(np.array([[5.0, math.sqrt(2)]]))


def test_l1_is_mean_absolute_difference():
    # MAE: (|−3| + |−4|)/2 = 3.5; (1 + 1)/2 = 1
    assert pairwise_distance(Q, G, "l1") == pytest.approx(np.array([[3.5, 1.0]]))


def test_cosine():
    # q·g1 = 4 + 12 = 16, ‖q‖ = √5, ‖g1‖ = √52 → 1 − 16/√260; q·g2 = 4, ‖g2‖ = √5 → 1 − 4/5 = 0.2
    assert pairwise_distance(Q, G, "cosine") == pytest.approx(np.array([[1 - 16 / math.sqrt(260), 0.2]]))


def test_correlation():
    # In 2-D, centred vectors are ±(−d, d): (1,2)→(−.5,.5), (4,6)→(−1,1): r = 1 → 0; (2,1)→(.5,−.5): r = −1 → 2
    assert pairwise_distance(Q, G, "correlation") == pytest.approx(np.array([[0.0, 2.0]]), abs=1e-12)
    # 3-D: (1,2,3)→(−1,0,1), (1,3,2)→(−1,1,0): r = 1 / (√2·√2) = 0.5 → 0.5
    d = pairwise_distance(np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 3.0, 2.0]]), "correlation")
    assert d == pytest.approx(np.array([[0.5]]))


def test_zero_and_constant_vectors_are_distance_one():
    # No direction → cosine (or correlation) taken as 0 rather than NaN.
    assert pairwise_distance(np.zeros((1, 2)), G, "cosine") == pytest.approx(np.ones((1, 2)))
    assert pairwise_distance(np.array([[3.0, 3.0]]), G, "correlation") == pytest.approx(np.ones((1, 2)))


def test_torch_float32_and_blocks_match_float64():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    for name in distance_names():
        ref = pairwise_distance(q, g, name)
        got = pairwise_distance(torch.tensor(q, dtype=torch.float32), torch.tensor(g, dtype=torch.float32), name)
        assert got.dtype == np.float32
        assert got == pytest.approx(ref, abs=1e-5)
    # Independent numpy check of the euclidean and l1 blocks.
    assert pairwise_distance(q, g, "euclidean") == pytest.approx(np.linalg.norm(q[:, None] - g[None], axis=2))
    assert pairwise_distance(q, g, "l1") == pytest.approx(np.abs(q[:, None] - g[None]).mean(2))


def test_bad_inputs():
    with pytest.raises(UserInputError, match="Unknown distance 'manhattan'. Known: correlation, cosine, euclidean, l1"):
        pairwise_distance(Q, G, "manhattan")
    with pytest.raises(UserInputError, match="query embeddings have 2 dims but gallery embeddings have 3"):
        pairwise_distance(Q, np.ones((2, 3)), "euclidean")
    with pytest.raises(UserInputError, match="query embeddings is empty"):
        pairwise_distance(np.zeros((0, 2)), G)
    with pytest.raises(UserInputError, match="NaN or inf"):
        pairwise_distance(np.array([[np.nan, 1.0]]), G)
    with pytest.raises(UserInputError, match="must be 2-D"):
        pairwise_distance(np.ones(3), G)
