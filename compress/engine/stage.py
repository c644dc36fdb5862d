"""One training stage: build a model, wrap it in a method, fit it, summarise it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from compress.data.bundle import DataBundle
from compress.engine.checkpoint import Manifest
from compress.engine.config import TrainConfig
from compress.engine.loop import FitResult, fit
from compress.engine.progress import ProgressSink
from compress.errors import UserInputError
from compress.io import read_json, to_jsonable


@dataclass
class StageSummary:
    """One row of the teacher / baseline / distilled comparison."""

    role: str
    architecture: str
    method: str
    params_m: float
    test_oa: float | None
    test_kappa: float | None
    test_macro_f1: float | None
    best_epoch: int
    epochs: int
    seconds: float
    checkpoint: str


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_student(name: str, data: DataBundle, *, pretrained: bool = False, weights: str | None = None,
                 model_kwargs: dict[str, Any] | None = None) -> nn.Module:
    from compress.models import create_model

    return create_model(name, num_classes=len(data.class_names), in_chans=data.in_chans, pretrained=pretrained,
                        weights=weights, **(model_kwargs or {}))


def base_manifest(arch: str, data: DataBundle, *, role: str, method: str, config: dict[str, Any],
                  model_kwargs: dict[str, Any] | None = None, task: str = "classification") -> Manifest:
    return Manifest(architecture=arch, num_classes=len(data.class_names), in_chans=data.in_chans,
                    image_size=data.image_size, mean=tuple(data.mean), std=tuple(data.std),
                    class_names=tuple(data.class_names), method=method, role=role, task=task,
                    model_kwargs=dict(model_kwargs or {}), config=to_jsonable(config), split_hash=data.split.hash)


def run_stage(*, role: str, arch: str, method_name: str, method_params: dict[str, Any] | None, data: DataBundle,
              train: TrainConfig, run_dir: Path, config: dict[str, Any], teacher: nn.Module | None = None,
              pretrained: bool = False, weights: str | None = None, resume: bool = False, workers: int = 0,
              progress: ProgressSink | None = None, stop_after_epochs: int | None = None,
              model_kwargs: dict[str, Any] | None = None, unlabeled: str | None = None) -> StageSummary:
    """Train one model in ``run_dir``; a finished stage (``metrics.json`` present) is not retrained on resume."""
    from compress.methods import build_method

    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and (run_dir / "metrics.json").is_file() and (run_dir / "checkpoints" / "best").is_dir():
        return _summary_from_disk(role, arch, method_name, run_dir)
    from compress.engine.loop import seed_everything

    seed_everything(train.seed)  # the initial weights are part of what the seed fixes
    model = make_student(arch, data, pretrained=pretrained and not resume, weights=None if resume else weights,
                         model_kwargs=model_kwargs)
    method_params = dict(method_params or {})
    if train.label_smoothing and "label_smoothing" not in method_params:
        # --label-smoothing applies to every method whose CE term supports it
        from compress.methods import METHODS

        if "label_smoothing" in {f.name for f in dataclasses.fields(METHODS.get(method_name).Params)}:
            method_params["label_smoothing"] = train.label_smoothing
    method = build_method(method_name, model, teacher, method_params, num_classes=len(data.class_names),
                          image_size=data.image_size, in_chans=data.in_chans)
    if getattr(method, "needs_unlabeled", False):
        if not unlabeled:
            raise UserInputError(f"Method '{method_name}' needs unlabelled images: pass --unlabeled DIR.")
        from compress.engine.retrieval_jobs import _unlabeled_folder

        method.attach_unlabeled(_unlabeled_folder(unlabeled, data.train), train.batch_size, train.seed)
    custom = method.train_transform(data.image_size, data.in_chans)
    if custom is not None:
        data = dataclasses.replace(data, train=_with_transform(data.train, custom))
    manifest = base_manifest(arch, data, role=role, method=method_name, config=config, model_kwargs=model_kwargs,
                             task="embedding" if hasattr(model, "embed") else "classification")
    result = fit(method, data, train, run_dir, manifest, resume=resume, workers=workers,
                 progress=_Prefixed(progress, role) if progress else None,
                 stop_after_epochs=stop_after_epochs)
    return _summary(role, arch, method_name, result, count_params(model))


class _Prefixed:
    """Progress sink that names the stage (teacher / baseline / student) in each description."""

    def __init__(self, sink: ProgressSink, prefix: str) -> None:
        self.sink, self.prefix = sink, prefix

    def start(self, description: str, total: int) -> None:
        self.sink.start(f"{self.prefix} {description}", total)

    def advance(self, n: int = 1, info: str = "") -> None:
        self.sink.advance(n, info)

    def stop(self) -> None:
        self.sink.stop()


def _with_transform(ds, transform):
    import copy

    out = copy.copy(ds)
    out.transform = transform
    return out


def _summary(role: str, arch: str, method: str, r: FitResult, n_params: int) -> StageSummary:
    return StageSummary(role=role, architecture=arch, method=method, params_m=round(n_params / 1e6, 4),
                        test_oa=r.test.get("oa"), test_kappa=r.test.get("kappa"), test_macro_f1=r.test.get("macro_f1"),
                        best_epoch=r.best_epoch, epochs=r.epochs, seconds=round(r.seconds, 1),
                        checkpoint=r.best_checkpoint)


def _summary_from_disk(role: str, arch: str, method: str, run_dir: Path) -> StageSummary:
    from compress.engine.checkpoint import load_checkpoint

    m = read_json(run_dir / "metrics.json")
    model = load_checkpoint(run_dir / "checkpoints" / "best").model
    return StageSummary(role=role, architecture=arch, method=method, params_m=round(count_params(model) / 1e6, 4),
                        test_oa=m["test"].get("oa"), test_kappa=m["test"].get("kappa"),
                        test_macro_f1=m["test"].get("macro_f1"),
                        best_epoch=m["best_epoch"], epochs=m["epochs"], seconds=m["seconds"],
                        checkpoint=str(run_dir / "checkpoints" / "best"))
