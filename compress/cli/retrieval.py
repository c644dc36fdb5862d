"""``compress metric-learn`` and ``compress cross-source``: embedding models for retrieval."""
from __future__ import annotations

from typing import Any

import typer

from compress.cli.common import print_json, show_table
from compress.cli.groups import DATA, DEVICE, INIT, METHOD, OUTPUT, TRAIN, Group, method_option
from compress.cli.options import Float, Given, Int, command, opt
from compress.config import parse_params

METRIC = Group("evaluation", (opt("metric", "--metric", key="eval_metric", show_default="euclidean",
                                  help="Retrieval/kNN distance: euclidean, l1, cosine or correlation."),))
METRIC_LEARN = Group("embedding model", (
    opt("backbone", "--backbone", key="backbone", show_default="cifar-resnet8 on the digits, resnet18 on folders",
        help="Backbone of the embedding model."),
    opt("embedding_dim", "--embedding-dim", key="embedding_dim", type=Int, show_default="128",
        help="Embedding size D of embed-cosine."),
    opt("labeled_ratio", "--labeled-ratio", key="labeled_ratio", type=Float, show_default=False,
        help="Semi-supervised: labelled fraction (paper 0.05–0.2); the rest is the unlabelled pool and the test set."),
    opt("unlabeled", "--unlabeled", key="unlabeled_dir", show_default=False, help="Folder of extra unlabelled images."),
    opt("teacher", "--teacher", key="teacher", show_default=False, help="Teacher checkpoint (kd-hr)."),
    opt("student", "--student", key="student", show_default="the data's default student",
        help="kd-hr: the classifier to distil into."),
))
CROSS = Group("cross-source", (
    opt("source1", "--source1", key="source1", show_default=False, help="Source-1 root (e.g. multispectral)."),
    opt("source2", "--source2", key="source2", show_default=False, help="Source-2 root, same relative paths."),
    opt("teacher", "--teacher", key="teacher", show_default=False, help="Stage-1 checkpoint F (else trained with JOC)."),
    opt("backbone", "--backbone", key="backbone", show_default="resnet18", help="Backbone of F and G."),
    opt("stage1_method", "--stage1-method", key="stage1_method", show_default="joc", help="joc or an ablation."),
    opt("input_adapt", "--input-adapt", key="method_params.input_adapt", show_default="replicate",
        help="replicate, average or reinit."),
    opt("freeze_from", "--freeze-from", key="method_params.freeze_from", show_default="auto",
        help="First frozen stage of G (auto: the stride-8 stage, layer2 on ResNets as in the paper)."),
    opt("train_ratio", "--train-ratio", key="train_ratio", type=Float, show_default="0.8", help="Training share."),
    opt("image_size1", "--image-size1", key="image_size1", type=Int, show_default="native", help="Source-1 size."),
    opt("image_size2", "--image-size2", key="image_size2", type=Int, show_default="native", help="Source-2 size."),
))
DATA_ML = Group("data", tuple(o for o in DATA.opts if o.name in ("data", "train_ratio", "image_size", "workers")))


def _table(title: str, rows: list[tuple[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    show_table(t)


def _run(job, cfg_cls, given: Given, command_name: str):
    from compress.cli.render import run_with_progress
    from compress.jobs.config_merge import load_job_config

    cfg = load_job_config(cfg_cls, given.config, command=command_name, config_file=given["config"])
    return run_with_progress(job, cfg, quiet=given["json"])


def register(app: typer.Typer) -> None:
    @command(app, "metric-learn", DATA_ML, method_option("hr-s2dml", "hr-s2dml, nsl, triplet-ml, joc, joc-softmax, "
             "joc-triplet, joc-triplet-softmax, kd-hr"), METHOD, METRIC_LEARN, METRIC, TRAIN, DEVICE, INIT, OUTPUT,
             convert={"method_param": parse_params})
    def metric_learn(given: Given) -> None:
        """Train an embedding model (HR-S²DML, NSL, triplet, JOC) and report kNN, NMI/ACC and retrieval mAP."""
        from compress.jobs.metric_learning import MetricLearningConfig, run_metric_learning

        result = _run(run_metric_learning, MetricLearningConfig, given, "metric-learn")
        if given["json"]:
            print_json(result)
            return
        ev = result.evaluation or {}
        rows: list[tuple[str, Any]] = [("labelled / test images", f"{result.data['labelled']} / {result.data['test']}")]
        if ev:
            single = ev["retrieval"]["single"]
            rows += [(f"kNN accuracy (K={ev['knn_k']})", ev["knn_accuracy"]), ("NMI", ev["clustering"]["nmi"]),
                     ("ACC", ev["clustering"]["acc"]), ("mAP", single["map"])]
            rows += [(f"mAP@{k}", v) for k, v in single["map_at_k"].items()]
        else:
            rows += [(k, v) for k, v in result.fit["test"].items() if isinstance(v, float)]
        _table(f"{result.method} → {result.checkpoint}", rows)

    @command(app, "cross-source", CROSS, METRIC, TRAIN, DEVICE, INIT, OUTPUT)
    def cross_source(given: Given) -> None:
        """Two-stage cross-source retrieval (Xiong et al.): F on source 1, G on source 2, four-way mAP."""
        from compress.jobs.cross_source import CrossSourceConfig, run_cross_source

        result = _run(run_cross_source, CrossSourceConfig, given, "cross-source")
        if given["json"]:
            print_json(result)
            return
        _table(f"cross-source mAP (test queries, training gallery) → {result.run_dir}",
               [(k, v) for k, v in result.map.items()])
