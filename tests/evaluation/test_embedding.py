"""Embedding evaluation: hand-computed retrieval/kNN/clustering values; runs re-evaluated from checkpoints."""
import numpy as np
import pytest

from compress.evaluation.embedding import score_embeddings
from compress.errors import UserInputError

Q = (np.array([[0.0], [10.0]]), np.array([0, 1]))
G = (np.array([[1.0], [2.0], [11.0], [12.0], [3.0]]), np.array([0, 1, 1, 0, 0]))


def test_hand_computed_values():
    r = score_embeddings(Q, G, "all", ks=(1, 2), knn_k=3)
    single = r.retrieval["single"]
    # query 0: relevant at ranks 1, 3, 5 → AP = (1 + 2/3 + 3/5) / 3; query 1: ranks 1, 4 → (1 + 2/4) / 2
    assert single["map"] == pytest.approx(((1 + 2 / 3 + 3 / 5) / 3 + 0.75) / 2)
    assert single["precision_at_k"] == {"1": 1.0, "2": 0.5} and single["exclude_self"] is False
    assert r.knn_accuracy == 0.5 and r.knn_k == 3  # query 1's 3 nearest: labels 1, 0, 0
    assert r.clustering["nmi"] == pytest.approx(1.0) and r.clustering["acc"] == 1.0
    with pytest.raises(UserInputError, match="task must be"):
        score_embeddings(Q, G, "ranking")


def test_same_set_leaves_each_query_out_and_cross_directions():
    r = score_embeddings(G, G, "knn", knn_k=2)
    # leave-one-out 2-NN on G: 1→{2,3}: tie 0/1 → nearest (2, label 1) wrong; 2→{1,3} tie → 1 (label 0) wrong;
    # 11→{12,3}... → label 0 wrong; 12→{11,3} tie → 11 (label 1) wrong; 3→{2,1} tie → 2 (label 1) wrong
    assert r.knn_accuracy == 0.0 and r.knn_k == 2
    r = score_embeddings(Q, G, "retrieval", ks=(1,), cross={"g->g": (G, G)})
    assert r.retrieval["g->g"]["exclude_self"] is True and set(r.retrieval) == {"single", "g->g"}
    assert r.retrieval["g->g"]["n_gallery"] == 4 and r.retrieval["g->g"]["precision_at_k"]["1"] == 0.0
