"""The two top-level jobs behind ``compress train`` and ``compress distill``."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from compress.data.bundle import DataBundle, DataConfig, build_data
from compress.data.folder import DIGITS
from compress.engine.config import TrainConfig
from compress.engine.progress import ProgressSink
from compress.engine.stage import StageSummary, run_stage
from compress.errors import CheckpointError, UserInputError
from compress.io import to_jsonable, write_json_atomic

# Defaults chosen per data source: the embedded 16 px digits get CIFAR-style nets that run in
# seconds on a laptop CPU; folder data (aerial scenes) get ImageNet-style nets.
AUTO_ARCH = {DIGITS: {"teacher": "cifar_resnet20", "student": "cifar_resnet8"},
             "folder": {"teacher": "resnet18", "student": "mobilenetv3_small_100"}}


@dataclass(frozen=True)
class JobConfig:
    """Everything ``train``/``distill`` accept (also from ``--config FILE``; flags win)."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    student: str = "auto"
    teacher: tuple[str, ...] = ()  # teacher checkpoint(s); several → weighted ensemble
    teacher_weights: tuple[float, ...] = ()
    teacher_arch: str = "auto"  # trained first when no teacher checkpoint is given
    teacher_epochs: int | None = None
    method: str = "kd"
    method_params: dict[str, Any] = field(default_factory=dict)
    baseline: bool = True
    pretrained: bool = False
    weights: str | None = None  # initial weights of the model being trained (student)
    teacher_init_weights: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model args of the student
    unlabeled: str | None = None  # folder of unlabelled images for methods that use them (kd-hr)
    out: str | None = None
    resume: bool = False


@dataclass
class DistillResult:
    """Teacher / baseline student / distilled student side by side (``rows``), and where files are."""

    run_dir: str
    rows: list[StageSummary]
    data: dict[str, Any]
    method: str

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _run_dir(out: str | None, command: str, resume: bool) -> Path:
    if out is None:
        if resume:
            raise UserInputError("--resume needs --out RUN_DIR naming the run to continue.")
        out = f"runs/{command}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run = Path(out)
    if resume:
        if not (run / "config.json").is_file():
            raise UserInputError(f"--resume: '{run}' is not a run folder (no config.json); check --out.")
    elif run.exists() and any(run.iterdir()):
        raise UserInputError(f"Run folder '{run}' already exists and is not empty; pass --resume to continue it "
                             "or choose a new --out.")
    run.mkdir(parents=True, exist_ok=True)
    return run


def _arch(name: str, role: str, data: DataBundle) -> str:
    if name != "auto":
        return name
    return AUTO_ARCH[DIGITS if data.source_name == DIGITS else "folder"][role]


def load_teacher(paths: tuple[str, ...], weights: tuple[float, ...], data: DataBundle) -> nn.Module:
    """Teacher checkpoint(s) checked against the data's classes; several form a weighted ensemble."""
    from compress.engine.checkpoint import load_checkpoint

    models = []
    for p in paths:
        ck = load_checkpoint(p)
        if list(ck.manifest.class_names) != list(data.class_names):
            raise CheckpointError(f"Teacher '{p}' was trained on classes {list(ck.manifest.class_names)[:5]}... but "
                                  f"the data has {data.class_names[:5]}...; use a teacher trained on these classes.")
        if ck.manifest.in_chans != data.in_chans:
            raise CheckpointError(f"Teacher '{p}' takes {ck.manifest.in_chans} band(s), the data has {data.in_chans}.")
        models.append(_adapt_input(ck.model, ck.manifest, data))
    if len(models) == 1 and not weights:
        return models[0]
    from compress.models.ensemble import WeightedEnsemble

    return WeightedEnsemble(models, list(weights) if weights else None)


class _InputAdapter(nn.Module):
    """Feeds a teacher the batch as it was trained: re-normalised and resized when the run's differ.

    ``x_teacher = (x·std_run + mean_run − mean_t) / std_t`` is exact, so ensemble members trained with
    other preprocessing still see the images they expect.
    """

    def __init__(self, model: nn.Module, run_mean, run_std, mean, std, size: int | None) -> None:
        super().__init__()
        import torch

        self.model, self.size = model, size
        shape = (1, -1, 1, 1)
        self.register_buffer("scale", (torch.tensor(run_std) / torch.tensor(std)).view(shape))
        self.register_buffer("shift", ((torch.tensor(run_mean) - torch.tensor(mean)) / torch.tensor(std)).view(shape))

    def forward(self, x):
        import torch.nn.functional as F

        x = x * self.scale + self.shift
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.model(x)


def _adapt_input(model: nn.Module, manifest, data: DataBundle) -> nn.Module:
    import numpy as np

    same_norm = np.allclose(manifest.mean, data.mean, atol=1e-6) and np.allclose(manifest.std, data.std, atol=1e-6)
    same_size = manifest.image_size == data.image_size
    if same_norm and same_size:
        return model
    return _InputAdapter(model, data.mean, data.std, manifest.mean, manifest.std,
                         None if same_size else manifest.image_size).eval()


def _prepare(cfg: JobConfig, command: str, progress) -> tuple[Path, DataBundle, dict[str, Any]]:
    run = _run_dir(cfg.out, command, cfg.resume)
    resolved = to_jsonable(cfg)
    if not cfg.resume:
        write_json_atomic(run / "config.json", resolved)
    data_cfg, mean_std = _preprocessing(cfg, command)
    data = build_data(data_cfg, seed=cfg.train.seed, run_dir=run, reuse_split=cfg.resume, model_mean_std=mean_std,
                      progress=(lambda d, t: progress.advance(0, f"scanned {d}/{t}")) if progress else None)
    return run, data, resolved


def _preprocessing(cfg: JobConfig, command: str) -> tuple[DataConfig, tuple | None]:
    """Whose normalisation/input size the run uses: a given teacher's, a pretrained model's, or the data's.

    Teacher and student see the same batch, so a teacher checkpoint fixes the preprocessing.
    """
    import dataclasses

    from compress.engine.checkpoint import read_manifest

    if cfg.teacher:
        man = read_manifest(cfg.teacher[0])
        data_cfg = cfg.data if cfg.data.image_size else dataclasses.replace(cfg.data, image_size=man.image_size)
        return data_cfg, (man.mean, man.std)
    arch = cfg.student if command == "train" else cfg.teacher_arch
    init = (cfg.pretrained or cfg.weights) if command == "train" else (cfg.pretrained or cfg.teacher_init_weights)
    if init and arch != "auto":
        from compress.models import model_defaults

        d = model_defaults(arch)
        return cfg.data, (d.mean, d.std)
    return cfg.data, None


def run_distill(cfg: JobConfig, progress: ProgressSink | None = None) -> DistillResult:
    """Teacher (given or trained) → baseline student (CE) → distilled student (``cfg.method``)."""
    from compress.methods import METHODS

    method_cls = METHODS.get(cfg.method)
    run, data, resolved = _prepare(cfg, "distill", progress)
    workers = cfg.data.workers
    rows: list[StageSummary] = []
    teacher_model: nn.Module | None = None
    if method_cls.requires_teacher or cfg.teacher:
        if cfg.teacher:
            teacher_model = load_teacher(cfg.teacher, cfg.teacher_weights, data)
        else:
            t_arch = _arch(cfg.teacher_arch, "teacher", data)
            t_train = cfg.train if cfg.teacher_epochs is None else _replace(cfg.train, epochs=cfg.teacher_epochs)
            row = run_stage(role="teacher", arch=t_arch, method_name="ce", method_params=None, data=data, train=t_train,
                            run_dir=run / "teacher", config=resolved, pretrained=cfg.pretrained,
                            weights=cfg.teacher_init_weights, resume=cfg.resume, workers=workers, progress=progress)
            rows.append(row)
            teacher_model = load_teacher((row.checkpoint,), (), data)
    s_arch = _arch(cfg.student, "student", data)
    if cfg.baseline:
        rows.append(run_stage(role="baseline", arch=s_arch, method_name="ce", method_params=None, data=data,
                              train=cfg.train, run_dir=run / "baseline", config=resolved, weights=cfg.weights,
                              resume=cfg.resume, workers=workers, progress=progress))
    rows.append(run_stage(role="student", arch=s_arch, method_name=cfg.method, method_params=cfg.method_params,
                          data=data, train=cfg.train, run_dir=run / "student", config=resolved,
                          teacher=teacher_model, weights=cfg.weights, resume=cfg.resume, workers=workers,
                          progress=progress, model_kwargs=cfg.model_kwargs, unlabeled=cfg.unlabeled))
    result = DistillResult(run_dir=str(run), rows=rows, method=cfg.method,
                           data={"source": data.source_name, "classes": len(data.class_names),
                                 "train": len(data.train), "val": len(data.val) if data.val else 0,
                                 "test": len(data.test), "image_size": data.image_size, "bands": data.in_chans,
                                 "bad_files": len(data.bad_files), "split_hash": data.split.hash})
    write_json_atomic(run / "metrics.json", result.to_dict())
    return result


def run_train(cfg: JobConfig, progress: ProgressSink | None = None) -> DistillResult:
    """Train one model with a no-teacher method (``ce`` by default): teachers, ensemble members, baselines."""
    from compress.methods import METHODS

    method = cfg.method
    if METHODS.get(method).requires_teacher and not cfg.teacher:
        raise UserInputError(f"Method '{method}' needs a teacher: use `compress distill`, or pass --teacher CKPT.")
    run, data, resolved = _prepare(cfg, "train", progress)
    workers = cfg.data.workers
    teacher = load_teacher(cfg.teacher, cfg.teacher_weights, data) if cfg.teacher else None
    arch = _arch(cfg.student, "teacher", data)
    row = run_stage(role="model", arch=arch, method_name=method, method_params=cfg.method_params, data=data,
                    train=cfg.train, run_dir=run, config=resolved, teacher=teacher, pretrained=cfg.pretrained,
                    weights=cfg.weights, resume=cfg.resume, workers=workers, progress=progress,
                    model_kwargs=cfg.model_kwargs, unlabeled=cfg.unlabeled)
    return DistillResult(run_dir=str(run), rows=[row], method=method,
                         data={"source": data.source_name, "classes": len(data.class_names), "train": len(data.train),
                               "test": len(data.test), "image_size": data.image_size, "bands": data.in_chans,
                               "bad_files": len(data.bad_files), "split_hash": data.split.hash})


def _replace(cfg: TrainConfig, **kw) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(cfg, **kw)
