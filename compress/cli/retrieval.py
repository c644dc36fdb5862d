"""``compress metric-learn`` and ``compress cross-source``: embedding models for retrieval."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from compress.cli import jobopts as O
from compress.cli.common import cli_errors, console, print_json


def _merge(config: Optional[Path], flags: dict[str, Any], data_keys: set[str], train_keys: set[str],
           params: dict[str, Any], params_key: str = "method_params") -> dict[str, Any]:
    """Config file (``data``/``train`` sections + top-level keys) overridden by the given flags."""
    from compress.config import load_config_file

    base: dict[str, Any] = load_config_file(config) if config else {}
    base = {k.replace("-", "_"): v for k, v in base.items()}
    raw = base.pop("data", None)
    data = {"data": raw} if isinstance(raw, str) else dict(raw or {})
    train = dict(base.pop("train", None) or {})
    for k, v in flags.items():
        if v is None or (v is False and k in ("resume", "pretrained")):
            continue
        (data if k in data_keys else train if k in train_keys else base)[k] = v
    if params:
        base[params_key] = {**(base.get(params_key) or {}), **params}
    if data_keys:
        base["data"] = data
    base["train"] = train
    return base


def _table(title: str, rows: list[tuple[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(t)


def metric_learn(
    data: Optional[str] = O.Data, method: Optional[str] = typer.Option(None, "--method", help=(
        "hr-s2dml (default), nsl, triplet-ml, joc, joc-softmax, joc-triplet, joc-triplet-softmax, kd-hr.")),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone of the embedding model (auto)."),
    labeled_ratio: Optional[float] = typer.Option(None, "--labeled-ratio", help=(
        "Semi-supervised: labelled fraction (paper 0.05–0.2); the rest is the unlabelled pool and the test set.")),
    unlabeled: Optional[str] = typer.Option(None, "--unlabeled", help="Folder of extra unlabelled images."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher checkpoint (kd-hr)."),
    student: Optional[str] = O.Student, embedding_dim: Optional[int] = typer.Option(None, "--embedding-dim"),
    metric: Optional[str] = typer.Option(None, "--metric", help="euclidean, l1, cosine or correlation."),
    train_ratio: Optional[float] = O.TrainRatio, image_size: Optional[int] = O.ImageSize,
    epochs: Optional[int] = O.Epochs, batch_size: Optional[int] = O.BatchSize, lr: Optional[float] = O.Lr,
    optimizer: Optional[str] = O.Optimizer, seed: Optional[int] = O.Seed, device: Optional[str] = O.Device,
    method_param: Optional[List[str]] = O.MethodParam, pretrained: bool = O.Pretrained,
    weights: Optional[str] = O.Weights, out: Optional[str] = O.Out, resume: bool = O.Resume,
    config: Optional[Path] = O.Config, json_out: bool = O.Json,
) -> None:
    """Train an embedding model (HR-S²DML, NSL, triplet, JOC) and report kNN, NMI/ACC and retrieval mAP."""
    from compress.cli.progress import RichProgress
    from compress.config import build_config
    from compress.engine.retrieval_jobs import MetricLearningConfig, run_metric_learning

    with cli_errors():
        flags = dict(data=data, method=method, backbone=backbone, labeled_ratio=labeled_ratio, unlabeled_dir=unlabeled,
                     teacher=teacher, student=student, embedding_dim=embedding_dim, eval_metric=metric,
                     train_ratio=train_ratio, image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                     optimizer=optimizer, seed=seed, device=device, pretrained=pretrained, weights=weights, out=out,
                     resume=resume)
        raw = _merge(config, flags, {"data", "train_ratio", "image_size"}, O.TRAIN_KEYS,
                     O.parse_params(method_param))
        cfg = build_config(MetricLearningConfig, raw)
        with RichProgress(enabled=not json_out) as bar:
            result = run_metric_learning(cfg, progress=bar)
        if json_out:
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


def cross_source(
    source1: Optional[str] = typer.Option(None, "--source1", help="Source-1 root (e.g. multispectral)."),
    source2: Optional[str] = typer.Option(None, "--source2", help="Source-2 root, same relative paths."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Stage-1 checkpoint F (else trained with JOC)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone of F and G (default resnet18)."),
    stage1_method: Optional[str] = typer.Option(None, "--stage1-method", help="joc (default) or an ablation."),
    input_adapt: Optional[str] = typer.Option(None, "--input-adapt", help="replicate (default), average, reinit."),
    freeze_from: Optional[str] = typer.Option(None, "--freeze-from", help="First frozen stage of G (layer2)."),
    train_ratio: Optional[float] = O.TrainRatio,
    image_size1: Optional[int] = typer.Option(None, "--image-size1"),
    image_size2: Optional[int] = typer.Option(None, "--image-size2"),
    epochs: Optional[int] = O.Epochs, batch_size: Optional[int] = O.BatchSize, lr: Optional[float] = O.Lr,
    optimizer: Optional[str] = O.Optimizer, seed: Optional[int] = O.Seed, device: Optional[str] = O.Device,
    metric: Optional[str] = typer.Option(None, "--metric", help="euclidean, l1, cosine or correlation."),
    pretrained: bool = O.Pretrained, weights: Optional[str] = O.Weights, out: Optional[str] = O.Out,
    resume: bool = O.Resume, config: Optional[Path] = O.Config, json_out: bool = O.Json,
) -> None:
    """Two-stage cross-source retrieval (Xiong et al.): F on source 1, G on source 2, four-way mAP."""
    from compress.cli.progress import RichProgress
    from compress.config import build_config
    from compress.engine.cross_source_job import CrossSourceConfig, run_cross_source

    with cli_errors():
        params = {k: v for k, v in (("input_adapt", input_adapt), ("freeze_from", freeze_from)) if v is not None}
        flags = dict(source1=source1, source2=source2, teacher=teacher, backbone=backbone, stage1_method=stage1_method,
                     train_ratio=train_ratio, image_size1=image_size1, image_size2=image_size2, epochs=epochs,
                     batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed, device=device, eval_metric=metric,
                     pretrained=pretrained, weights=weights, out=out, resume=resume)
        raw = _merge(config, flags, set(), O.TRAIN_KEYS, params)
        raw.pop("data", None)
        cfg = build_config(CrossSourceConfig, raw)
        with RichProgress(enabled=not json_out) as bar:
            result = run_cross_source(cfg, progress=bar)
        if json_out:
            print_json(result)
            return
        _table(f"cross-source mAP (test queries, training gallery) → {result.run_dir}",
               [(k, v) for k, v in result.map.items()])


def register(app: typer.Typer) -> None:
    app.command("metric-learn")(metric_learn)
    app.command("cross-source")(cross_source)
