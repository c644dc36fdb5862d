"""The job behind ``compress metric-learn``: embedding models for retrieval.

One embedding model (JOC family on ``embed-bnneck``, HR-S²DML/NSL/triplet on ``embed-cosine``) or a
``kd-hr`` student, optionally semi-supervised (``labeled_ratio``: the labelled part trains, the
unlabelled remainder is the unlabelled pool AND the test set, as in Kang et al.), then the paper's
evaluation (kNN, k-means NMI/ACC, retrieval test → train).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from compress.data.bundle import DataBundle, DataConfig, build_data
from compress.data.folder import DIGITS
from compress.engine.train_config import TrainConfig
from compress.engine.progress import ProgressSink
from compress.engine.stage import StageSpec, run_stage
from compress.errors import UserInputError
from compress.evaluation.embedding import EmbeddingEvalResult, embed_dataset, eval_copy, score_embeddings, write_outputs
from compress.io import to_jsonable
from compress.jobs import preflight
from compress.jobs.train_distill import AUTO_ARCH, teacher_for
from compress.jobs.rundir import open_run

EMBEDDING_MODEL = {"joc": "embed-bnneck", "joc-softmax": "embed-bnneck", "joc-triplet": "embed-bnneck",
                   "joc-triplet-softmax": "embed-bnneck", "hr-s2dml": "embed-cosine", "nsl": "embed-cosine",
                   "triplet-ml": "embed-cosine"}
UNLABELED_HINT = "pass --labeled-ratio (the unlabelled remainder is the pool) or --unlabeled DIR"


@dataclass(frozen=True)
class MetricLearningConfig:
    """Everything ``compress metric-learn`` accepts."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = "hr-s2dml"
    method_params: dict[str, Any] = field(default_factory=dict)
    backbone: str = "auto"  # auto: cifar-resnet8 on the digits, resnet18 on folders
    embedding_dim: int = 128  # D of embed-cosine
    embedding: str = "pre-bn"  # what embed-bnneck returns
    labeled_ratio: float | None = None  # e.g. 0.05: semi-supervised split (test = unlabelled pool)
    unlabeled_dir: str | None = None  # extra unlabelled images (any layout of image files)
    teacher: str | None = None  # kd-hr only
    student: str = "auto"  # kd-hr only: the classifier to distil into
    pretrained: bool = False
    weights: str | None = None  # backbone (or kd-hr student) initial weights
    eval_metric: str = "euclidean"
    eval_ks: tuple[int, ...] = (1, 5, 10, 20)
    knn_k: int = 10
    out: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        r = self.labeled_ratio
        if r is not None and not 0.0 < r < 1.0:
            raise UserInputError(f"--labeled-ratio is a fraction in (0, 1), e.g. 0.05 for 5 %; got {r}.")


@dataclass
class MetricLearningResult:
    run_dir: str
    checkpoint: str
    method: str
    architecture: str
    model_kwargs: dict[str, Any]
    data: dict[str, Any]
    fit: dict[str, Any]
    evaluation: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def unlabeled_pool(cfg: MetricLearningConfig, data: DataBundle):
    """The unlabelled remainder of a ``labeled_ratio`` split (augmented like training) and/or ``unlabeled_dir``."""
    from compress.data.sources import unlabeled_folder

    pools = []
    if cfg.labeled_ratio is not None:
        pool = copy.copy(data.train)  # training augmentation over the unlabelled (= test) images
        pool.indices = data.test.indices
        pools.append(pool)
    if cfg.unlabeled_dir:
        pools.append(unlabeled_folder(cfg.unlabeled_dir, data.train))
    if not pools:
        return None
    from torch.utils.data import ConcatDataset

    return pools[0] if len(pools) == 1 else ConcatDataset(pools)


def auto_backbone(name: str, data: DataBundle) -> str:
    return name if name != "auto" else ("cifar-resnet8" if data.source_name == DIGITS else "resnet18")


def evaluate_split(model: nn.Module, data: DataBundle, *, metric: str, ks, knn_k: int, seed: int = 0) -> EmbeddingEvalResult:
    """Kang et al.'s protocol on a run's data: test queries / training database, kNN, k-means on test."""
    test = embed_dataset(model, data.test)[:2]
    train = embed_dataset(model, eval_copy(data.train))[:2]
    return score_embeddings(test, train, "all", metric=metric, ks=ks, knn_k=knn_k, seed=seed)


def _model(cfg: MetricLearningConfig, data: DataBundle) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(architecture, recorded model kwargs, initialisation kwargs) of the model this run trains."""
    if cfg.method in EMBEDDING_MODEL:
        arch = EMBEDDING_MODEL[cfg.method]
        kwargs: dict[str, Any] = {"backbone": auto_backbone(cfg.backbone, data)}
        kwargs.update({"embedding_dim": cfg.embedding_dim} if arch == "embed-cosine" else {"embedding": cfg.embedding})
        return arch, kwargs, {"pretrained": cfg.pretrained, "backbone_weights": cfg.weights}
    arch = cfg.student if cfg.student != "auto" else AUTO_ARCH[DIGITS if data.source_name == DIGITS else "folder"]["student"]
    return arch, {}, {"pretrained": cfg.pretrained, "weights": cfg.weights}


def run_metric_learning(cfg: MetricLearningConfig, progress: ProgressSink | None = None) -> MetricLearningResult:
    """Train one embedding model (or a ``kd-hr`` student) and evaluate it; files under ``runs/<name>/``."""
    from compress.methods import METHODS, build_method_params

    method_cls = METHODS.get(cfg.method)
    build_method_params(cfg.method, cfg.method_params)
    if method_cls.requires_teacher and cfg.method not in EMBEDDING_MODEL and not cfg.teacher:
        raise UserInputError(f"Method '{cfg.method}' distils a teacher: pass --teacher CKPT.")
    preflight.check_weights(cfg.weights, "--weights")
    preflight.check_folder(cfg.unlabeled_dir, "--unlabeled")
    resolved = to_jsonable(cfg)
    with open_run(cfg.out, "metric-learn", cfg.resume, resolved, device=cfg.train.device) as run:
        dcfg = cfg.data
        if cfg.labeled_ratio is not None:
            dcfg = dataclasses.replace(dcfg, train_ratio=cfg.labeled_ratio, val_fraction=0.0)
        data = build_data(dcfg, seed=cfg.train.seed, run_dir=run, reuse_split=cfg.resume)
        teacher = teacher_for((cfg.teacher,), (), data) if cfg.teacher and method_cls.requires_teacher else None
        arch, kwargs, init = _model(cfg, data)
        spec = StageSpec(role="model", arch=arch, method=cfg.method, train=cfg.train, run_dir=run, config=resolved,
                         method_params=cfg.method_params, model_kwargs=kwargs, init=init, resume=cfg.resume,
                         workers=cfg.data.workers, unlabeled_hint=UNLABELED_HINT)
        pool = unlabeled_pool(cfg, data)
        preflight.dry_step(spec, data, teacher, pool)
        stage = run_stage(spec, data, teacher=teacher, unlabeled=pool, progress=progress)
        evaluation = None
        if callable(getattr(stage.method.student, "embed", None)):
            ev = evaluate_split(stage.method.student, data, metric=cfg.eval_metric, ks=cfg.eval_ks, knn_k=cfg.knn_k,
                                seed=cfg.train.seed)
            ev.checkpoint = stage.checkpoint
            evaluation = write_outputs(ev, run).to_dict()
    m = stage.metrics
    return MetricLearningResult(
        run_dir=str(run), checkpoint=stage.checkpoint, method=cfg.method, architecture=arch,
        model_kwargs=kwargs, evaluation=evaluation,
        data={"source": data.source_name, "classes": len(data.class_names), "labelled": len(data.train),
              "test": len(data.test), "labeled_ratio": cfg.labeled_ratio, "image_size": data.image_size,
              "bands": data.in_chans, "split_hash": data.split.hash},
        fit={"best_epoch": m["best_epoch"], "epochs": m["epochs"], "seconds": round(float(m["seconds"]), 2),
             "images_per_second": round(float(m.get("images_per_second", 0.0)), 1), "test": m["test"]})
