"""The jobs behind ``compress metric-learn`` and ``compress cross-source`` (embedding models for retrieval).

``run_metric_learning``: one embedding model (JOC family on ``embed-bnneck``, HR-S²DML/NSL/triplet
on ``embed-cosine``) or a ``kd-hr`` student, optionally semi-supervised (``labeled_ratio``: the
labelled part trains, the unlabelled remainder is the unlabelled pool AND the test set, as in Kang
et al.), then the paper's evaluation (kNN, k-means NMI/ACC, retrieval test → train).
``run_cross_source``: stage 1 (F on source 1, JOC by default; or a given checkpoint) → stage 2 (G on
source 2 by cross-source distillation) → single- and cross-source retrieval.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from compress.data.bundle import DataBundle, DataConfig, build_data
from compress.data.folder import DIGITS
from compress.engine.config import TrainConfig
from compress.engine.embedding_eval import EmbeddingEvalResult, embed_dataset, eval_copy, score_embeddings, write_outputs
from compress.engine.jobs import AUTO_ARCH, _run_dir, load_teacher
from compress.engine.progress import ProgressSink
from compress.errors import UserInputError
from compress.io import to_jsonable, write_json_atomic

EMBEDDING_MODEL = {"joc": "embed-bnneck", "joc-softmax": "embed-bnneck", "joc-triplet": "embed-bnneck",
                   "joc-triplet-softmax": "embed-bnneck", "hr-s2dml": "embed-cosine", "nsl": "embed-cosine",
                   "triplet-ml": "embed-cosine"}


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


def _fit_model(*, arch: str, model_kwargs: dict[str, Any], init_kwargs: dict[str, Any], method_name: str,
               method_params: dict[str, Any] | None, data: DataBundle, train: TrainConfig, run_dir: Path,
               config: dict[str, Any], teacher: nn.Module | None = None, unlabeled=None, unlabeled_batch: int | None = None,
               resume: bool = False, workers: int = 0, progress: ProgressSink | None = None, role: str = "model",
               prepare=None):
    """Build, wrap in the method, fit; returns (FitResult, method) with the best weights loaded."""
    from compress.engine.loop import fit, seed_everything
    from compress.engine.stage import _with_transform, base_manifest
    from compress.methods import build_method
    from compress.models import create_model

    seed_everything(train.seed)  # the initial weights are part of what the seed fixes, as in run_stage
    model = create_model(arch, num_classes=len(data.class_names), in_chans=data.in_chans, **model_kwargs,
                         **({} if resume else init_kwargs))
    method = build_method(method_name, model, teacher, method_params, num_classes=len(data.class_names),
                          image_size=data.image_size, in_chans=data.in_chans)
    if prepare is not None:
        prepare(method)
    if getattr(method, "needs_unlabeled", False):
        if unlabeled is None:
            raise UserInputError(f"Method '{method_name}' needs unlabelled images: pass --labeled-ratio or --unlabeled DIR.")
        bs = getattr(method.params, "unlabeled_batch_size", None) or unlabeled_batch or train.batch_size
        method.attach_unlabeled(unlabeled, bs, train.seed)
    custom = method.train_transform(data.image_size, data.in_chans)
    if custom is not None:
        data = dataclasses.replace(data, train=_with_transform(data.train, custom))
    task = "embedding" if callable(getattr(model, "embed", None)) else "classification"
    manifest = base_manifest(arch, data, role=role, method=method_name, config=config, model_kwargs=model_kwargs,
                             task=task)
    result = fit(method, data, train, run_dir, manifest, resume=resume, workers=workers, progress=progress)
    return result, method


def _unlabeled_folder(path: str, like) -> Any:
    """An augmenting data set over every image file under ``path`` (labels ignored), preprocessed like ``like``."""
    import numpy as np

    from compress.data.dataset import SubsetDataset
    from compress.data.folder import ImageSource
    from compress.data.images import RASTER_EXTENSIONS, ImageReadError, read_image
    from compress.errors import DataError

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"--unlabeled '{path}' is not a folder of images.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in RASTER_EXTENSIONS)
    arrays, keys = [], []
    for f in files:
        try:
            arrays.append(read_image(f))
            keys.append(str(f.relative_to(root)))
        except ImageReadError:
            continue
    if not arrays:
        raise DataError(f"--unlabeled '{path}' holds no readable image ({', '.join(RASTER_EXTENSIONS)}).")
    bands = {a.shape[2] for a in arrays}
    if bands != {like.source.bands}:
        raise DataError(f"--unlabeled images have {sorted(bands)} band(s), the labelled data {like.source.bands}.")
    src = ImageSource(root=str(root), keys=keys, labels=np.zeros(len(keys), dtype=np.int64), class_names=["?"],
                      bands=like.source.bands, dtype=str(arrays[0].dtype), arrays=arrays)
    return SubsetDataset(src, np.arange(len(keys)), like.transform, like.normalize, seed=like.seed, augment=True)


def _pool(cfg: MetricLearningConfig, data: DataBundle):
    pools = []
    if cfg.labeled_ratio is not None:
        pool = copy.copy(data.train)  # training augmentation over the unlabelled (= test) images
        pool.indices = data.test.indices
        pools.append(pool)
    if cfg.unlabeled_dir:
        pools.append(_unlabeled_folder(cfg.unlabeled_dir, data.train))
    if not pools:
        return None
    from torch.utils.data import ConcatDataset

    return pools[0] if len(pools) == 1 else ConcatDataset(pools)


def _auto_backbone(name: str, data: DataBundle) -> str:
    return name if name != "auto" else ("cifar-resnet8" if data.source_name == DIGITS else "resnet18")


def evaluate_split(model: nn.Module, data: DataBundle, *, metric: str, ks, knn_k: int, seed: int = 0) -> EmbeddingEvalResult:
    """Kang et al.'s protocol on a run's data: test queries / training database, kNN, k-means on test."""
    test = embed_dataset(model, data.test)[:2]
    train = embed_dataset(model, eval_copy(data.train))[:2]
    return score_embeddings(test, train, "all", metric=metric, ks=ks, knn_k=knn_k, seed=seed)


def run_metric_learning(cfg: MetricLearningConfig, progress: ProgressSink | None = None,
                        workers: int = 0) -> MetricLearningResult:
    """Train one embedding model (or a ``kd-hr`` student) and evaluate it; files under ``runs/<name>/``."""
    from compress.methods import METHODS

    METHODS.get(cfg.method)
    run = _run_dir(cfg.out, "metric-learn", cfg.resume)
    resolved = to_jsonable(cfg)
    if not cfg.resume:
        write_json_atomic(run / "config.json", resolved)
    dcfg = cfg.data
    if cfg.labeled_ratio is not None:
        dcfg = dataclasses.replace(dcfg, train_ratio=cfg.labeled_ratio, val_fraction=0.0)
    data = build_data(dcfg, seed=cfg.train.seed, run_dir=run, reuse_split=cfg.resume)
    teacher = None
    if cfg.method in EMBEDDING_MODEL:
        arch = EMBEDDING_MODEL[cfg.method]
        kwargs: dict[str, Any] = {"backbone": _auto_backbone(cfg.backbone, data)}
        kwargs.update({"embedding_dim": cfg.embedding_dim} if arch == "embed-cosine" else {"embedding": cfg.embedding})
        init = {"pretrained": cfg.pretrained, "backbone_weights": cfg.weights}
    else:
        if METHODS.get(cfg.method).requires_teacher:
            if not cfg.teacher:
                raise UserInputError(f"Method '{cfg.method}' distils a teacher: pass --teacher CKPT.")
            teacher = load_teacher((cfg.teacher,), (), data)
        arch = cfg.student if cfg.student != "auto" else AUTO_ARCH[DIGITS if data.source_name == DIGITS else "folder"]["student"]
        kwargs, init = {}, {"pretrained": cfg.pretrained, "weights": cfg.weights}
    fit_result, method = _fit_model(arch=arch, model_kwargs=kwargs, init_kwargs=init, method_name=cfg.method,
                                    method_params=cfg.method_params, data=data, train=cfg.train, run_dir=run,
                                    config=resolved, teacher=teacher, unlabeled=_pool(cfg, data), resume=cfg.resume,
                                    workers=workers, progress=progress)
    evaluation = None
    if callable(getattr(method.student, "embed", None)):
        ev = evaluate_split(method.student, data, metric=cfg.eval_metric, ks=cfg.eval_ks, knn_k=cfg.knn_k,
                            seed=cfg.train.seed)
        ev.checkpoint = fit_result.best_checkpoint
        evaluation = write_outputs(ev, run).to_dict()
    return MetricLearningResult(
        run_dir=str(run), checkpoint=fit_result.best_checkpoint, method=cfg.method, architecture=arch,
        model_kwargs=kwargs, evaluation=evaluation,
        data={"source": data.source_name, "classes": len(data.class_names), "labelled": len(data.train),
              "test": len(data.test), "labeled_ratio": cfg.labeled_ratio, "image_size": data.image_size,
              "bands": data.in_chans, "split_hash": data.split.hash},
        fit={"best_epoch": fit_result.best_epoch, "epochs": fit_result.epochs, "seconds": round(fit_result.seconds, 2),
             "images_per_second": round(fit_result.images_per_second, 1), "test": fit_result.test})
