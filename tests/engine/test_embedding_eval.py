"""Embedding evaluation: hand-computed retrieval/kNN/clustering values; runs re-evaluated from checkpoints."""
import numpy as np
import pytest

from compress.data.bundle import DataConfig
from compress.engine.config import TrainConfig
from compress.engine.embedding_eval import evaluate_embeddings, score_embeddings
from compress.errors import UserInputError
from tests.conftest import write_folder

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


def test_metric_learning_run_reevaluates_identically(tmp_path):
    from compress.engine.retrieval_jobs import MetricLearningConfig, run_metric_learning

    data = write_folder(tmp_path / "d", classes=3, per_class=6, size=12)
    cfg = MetricLearningConfig(data=DataConfig(data=str(data), image_size=12), method="hr-s2dml",
                               backbone="cifar-resnet8", embedding_dim=8, labeled_ratio=0.5,
                               train=TrainConfig(epochs=1, batch_size=6, lr=0.01, device="cpu"), out=str(tmp_path / "run"))
    res = run_metric_learning(cfg)
    assert (res.data["labelled"], res.data["test"]) == (9, 9)
    again = evaluate_embeddings(res.checkpoint, "all", out_dir=str(tmp_path / "ev"))
    assert again.knn_accuracy == res.evaluation["knn_accuracy"]
    assert again.retrieval["single"]["map"] == pytest.approx(res.evaluation["retrieval"]["single"]["map"])
    assert (tmp_path / "ev" / "pr_curve.png").is_file() and (tmp_path / "run" / "embedding_eval.json").is_file()


def test_cross_source_run_and_evaluation(tmp_path):
    from compress.data.simulate import simulate_pan_ms
    from compress.engine.cross_source_job import CrossSourceConfig, run_cross_source

    rgb = write_folder(tmp_path / "rgb", classes=2, per_class=4, size=16)
    simulate_pan_ms(rgb, tmp_path / "sim")
    cfg = CrossSourceConfig(source1=str(tmp_path / "sim/ms"), source2=str(tmp_path / "sim/pan"),
                            backbone="cifar-resnet8", train_ratio=0.5, out=str(tmp_path / "run"),
                            train=TrainConfig(epochs=1, batch_size=8, lr=0.01, device="cpu"))
    res = run_cross_source(cfg)
    assert set(res.map) == {"s1->s1", "s1->s2", "s2->s1", "s2->s2"}
    assert res.data["source1_prep"]["bands"] == 4 and res.data["source2_prep"]["bands"] == 1
    ev = evaluate_embeddings(res.stage1_checkpoint, "retrieval", cross_checkpoint=res.stage2_checkpoint,
                             cross_data=str(tmp_path / "sim/pan"))
    for k in ("s1->s2", "s2->s1", "s2->s2"):
        assert ev.retrieval[k]["map"] == pytest.approx(res.map[k])


def test_metric_learning_is_reproducible_whatever_ran_before(tmp_path):
    """Same config → same weights, even after other work consumed the global RNG (as in a bench loop)."""
    import torch
    from safetensors.torch import load_file

    from compress.engine.retrieval_jobs import MetricLearningConfig, run_metric_learning

    data = write_folder(tmp_path / "d", classes=3, per_class=6, size=12)
    weights = []
    for i in range(2):
        torch.randn(1000 * (i + 1))  # disturb the global generator differently before each run
        cfg = MetricLearningConfig(data=DataConfig(data=str(data), image_size=12), method="nsl",
                                   backbone="cifar-resnet8", embedding_dim=8, labeled_ratio=0.5,
                                   train=TrainConfig(epochs=1, batch_size=6, lr=0.01, device="cpu"),
                                   out=str(tmp_path / f"run{i}"))
        res = run_metric_learning(cfg)
        weights.append(load_file(f"{res.checkpoint}/model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
