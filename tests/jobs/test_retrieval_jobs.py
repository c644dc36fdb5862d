"""Metric learning and cross-source runs, re-evaluated from their checkpoints."""
import pytest

from compress.data.bundle import DataConfig
from compress.engine.train_config import TrainConfig
from compress.evaluation.saved_model import evaluate_embeddings
from tests.conftest import write_folder


def test_metric_learning_run_reevaluates_identically(tmp_path):
    from compress.jobs.metric_learning import MetricLearningConfig, run_metric_learning

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
    from compress.jobs.cross_source import CrossSourceConfig, run_cross_source

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


def test_cross_source_bad_stage2_parameter_fails_before_stage1_trains(tmp_path):
    from compress.data.simulate import simulate_pan_ms
    from compress.errors import UserInputError
    from compress.jobs.cross_source import CrossSourceConfig, run_cross_source

    rgb = write_folder(tmp_path / "rgb", classes=2, per_class=4, size=16)
    simulate_pan_ms(rgb, tmp_path / "sim")
    cfg = CrossSourceConfig(source1=str(tmp_path / "sim/ms"), source2=str(tmp_path / "sim/pan"),
                            backbone="cifar-resnet8", train_ratio=0.5, out=str(tmp_path / "run"),
                            method_params={"freeze_from": "blocks.2"},
                            train=TrainConfig(epochs=1, batch_size=8, lr=0.01, device="cpu"))
    with pytest.raises(UserInputError, match="freeze_from 'blocks.2' is not a backbone module; choose one of conv1"):
        run_cross_source(cfg)
    assert not list((tmp_path / "run").rglob("checkpoints"))  # stage 1 never started


def test_metric_learning_is_reproducible_whatever_ran_before(tmp_path):
    """Same config → same weights, even after other work consumed the global RNG (as in a bench loop)."""
    import torch
    from safetensors.torch import load_file

    from compress.jobs.metric_learning import MetricLearningConfig, run_metric_learning

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
