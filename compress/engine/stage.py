"""The one stage builder: model → method → data → manifest → ``fit`` → one result, for every job
(classification train and distill, metric learning, both cross-source stages, ensemble members)."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from compress.checkpoint import Manifest
from compress.data.bundle import DataBundle
from compress.engine.train_config import TrainConfig
from compress.engine.loop import FitResult, fit, resumable, seed_everything
from compress.engine.lr_scale import stage_lr_scale
from compress.engine.progress import ProgressSink
from compress.errors import UserInputError
from compress.io import read_json, to_jsonable
from compress.methods import METHODS, Method, build_method


@dataclass(frozen=True)
class StageSpec:
    """What one stage trains. ``model_kwargs`` are recorded in the manifest (they rebuild the model);
    ``init`` (``pretrained``, ``weights``, ``backbone_weights``) only initialise it and are skipped when a saved state is resumed."""

    role: str  # teacher | baseline | student | model | member
    arch: str
    method: str
    train: TrainConfig
    run_dir: Path
    config: dict[str, Any]  # the job's resolved config, saved in every manifest
    method_params: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    workers: int | None = None  # None → automatic
    unlabeled_hint: str = "pass --unlabeled DIR"
    eval_start: bool = False  # score the initial weights first: the checkpoint to beat, and collapse detection


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
    init: str = ""  # one line: where the initial weights came from and how many tensors loaded


@dataclass
class StageResult:
    """A finished stage: its table row, the fit (None when an already finished stage was skipped on resume)
    and the method, whose student holds the best weights."""

    summary: StageSummary
    method: Method
    fit: FitResult | None
    metrics: dict[str, Any]

    @property
    def checkpoint(self) -> str:
        return self.summary.checkpoint


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model_for_data(name: str, data: DataBundle, **kwargs: Any) -> nn.Module:
    """A zoo model with the data's class and band counts (``kwargs``: model options and initial weights)."""
    from compress.models import create_model

    return create_model(name, num_classes=len(data.class_names), in_chans=data.in_chans, **kwargs)


def base_manifest(arch: str, data: DataBundle, *, role: str, method: str, config: dict[str, Any],
                  model_kwargs: dict[str, Any] | None = None, task: str = "classification",
                  init: dict[str, Any] | None = None) -> Manifest:
    return Manifest(architecture=arch, num_classes=len(data.class_names), in_chans=data.in_chans,
                    image_size=data.image_size, mean=tuple(data.mean), std=tuple(data.std),
                    class_names=tuple(data.class_names), method=method, role=role, task=task,
                    model_kwargs=dict(model_kwargs or {}), config=to_jsonable(config), split_hash=data.split.hash,
                    init=dict(init or {}))


def init_line(report: dict[str, Any]) -> str:
    """``weights: 211/213 tensors from FILE (by name), head replaced`` from a WeightsReport dict."""
    if not report:
        return ""
    line = (f"weights: {report.get('loaded')}/{report.get('total')} tensors from {report.get('file')} "
            f"(matched by {report.get('mapping')}), head {report.get('head')}")
    extra = [f"{len(report[k])} {k}" for k in ("adapted", "missing", "unexpected", "mismatched") if report.get(k)]
    return line + (f"; {', '.join(extra)}" if extra else "")


def finished(run_dir: Path, epochs: int) -> bool:
    """A stage that already trained ``epochs`` epochs and was evaluated (``metrics.json`` written)."""
    metrics = run_dir / "metrics.json"
    return metrics.is_file() and (run_dir / "checkpoints" / "best").is_dir() and \
        int(read_json(metrics).get("epochs", -1)) >= epochs


def _method_params(spec: StageSpec) -> dict[str, Any]:
    params = dict(spec.method_params or {})
    if spec.train.label_smoothing and "label_smoothing" not in params:
        # --label-smoothing applies to every method whose CE term supports it
        if "label_smoothing" in {f.name for f in dataclasses.fields(METHODS.get(spec.method).Params)}:
            params["label_smoothing"] = spec.train.label_smoothing
    return params


def build_stage_method(spec: StageSpec, data: DataBundle, teacher: nn.Module | None = None,
                       unlabeled: Dataset | None = None, initial: bool = True) -> Method:
    """The stage's model wrapped in its method; ``initial=False`` skips initial weights (they are replaced)."""
    seed_everything(spec.train.seed)  # the initial weights are part of what the seed fixes
    model = build_model_for_data(spec.arch, data, **spec.model_kwargs, **(spec.init if initial else {}))
    method = build_method(spec.method, model, teacher, _method_params(spec), num_classes=len(data.class_names),
                          image_size=data.image_size, in_chans=data.in_chans)
    if method.needs_unlabeled:
        if unlabeled is None:
            raise UserInputError(f"Method '{spec.method}' needs unlabelled images: {spec.unlabeled_hint}.")
        method.attach_unlabeled(unlabeled, method.unlabeled_batch_size(spec.train.batch_size), spec.train.seed)
    return method


def run_stage(spec: StageSpec, data: DataBundle, *, teacher: nn.Module | None = None,
              unlabeled: Dataset | None = None, progress: ProgressSink | None = None,
              stop_after_epochs: int | None = None) -> StageResult:
    """Train one model in ``spec.run_dir``; a stage finished before (on resume) is loaded, not retrained."""
    from compress.parallel import world_size

    spec.run_dir.mkdir(parents=True, exist_ok=True)
    spec = dataclasses.replace(spec, train=spec.train.with_epochs(len(data.train), world_size()))
    if spec.resume and finished(spec.run_dir, spec.train.epochs):
        return _from_disk(spec, data, teacher, unlabeled)
    # initial weights are skipped only when a saved state replaces them: a resumed run killed before its
    # first checkpoint starts from the initial weights again
    saved = spec.resume and resumable(spec.run_dir / "checkpoints")
    method = build_stage_method(spec, data, teacher, unlabeled, initial=not saved)
    custom = method.train_transform(data.image_size, data.in_chans)
    if custom is not None:
        train = copy.copy(data.train)
        train.transform = custom
        data = dataclasses.replace(data, train=train)
    task = "embedding" if callable(getattr(method.student, "embed", None)) else "classification"
    report = getattr(method.student, "weights_report", None)
    init = report.to_dict() if report is not None else {}
    if saved and not init:  # resumed: the report of the run's start is in its last checkpoint
        from compress.checkpoint import read_manifest

        init = read_manifest(spec.run_dir / "checkpoints" / "last").init
    manifest = base_manifest(spec.arch, data, role=spec.role, method=spec.method, config=spec.config,
                             model_kwargs=spec.model_kwargs, task=task, init=init)
    train = spec.train.resolved(pretrained=bool(init) or bool(spec.init.get("pretrained")))
    scale = stage_lr_scale(method, spec.method, data.train, spec.train, spec.run_dir, task)
    if scale.scale != 1.0:
        train = dataclasses.replace(train, lr=round(train.lr * scale.scale, 8))
    result = fit(method, data, train, spec.run_dir, manifest, resume=spec.resume, workers=spec.workers,
                 progress=_Prefixed(progress, spec.role) if progress else None, stop_after_epochs=stop_after_epochs,
                 eval_start=spec.eval_start)
    method.release()
    metrics = {"test": result.test, "val": result.val, "best_epoch": result.best_epoch, "epochs": result.epochs,
               "seconds": result.seconds, "images_per_second": result.images_per_second,
               "lr": train.lr, "lr_scale": scale.scale, "lr_scale_why": scale.why,
               "warmup_epochs": train.warmup_epochs}
    summary = _summary(spec, metrics, result.best_checkpoint, count_params(method.student), init)
    return StageResult(summary=summary, method=method, fit=result, metrics=metrics)


def _from_disk(spec: StageSpec, data: DataBundle, teacher, unlabeled) -> StageResult:
    from compress.checkpoint import read_weights

    method = build_stage_method(spec, data, teacher, unlabeled, initial=False)
    best = spec.run_dir / "checkpoints" / "best"
    method.student.load_state_dict(read_weights(best))
    metrics = read_json(spec.run_dir / "metrics.json")
    from compress.checkpoint import read_manifest

    init = read_manifest(best).init
    return StageResult(summary=_summary(spec, metrics, str(best), count_params(method.student), init), method=method,
                       fit=None, metrics=metrics)


def _summary(spec: StageSpec, m: dict[str, Any], checkpoint: str, n_params: int,
             init: dict[str, Any] | None = None) -> StageSummary:
    test = m.get("test") or {}
    return StageSummary(role=spec.role, architecture=spec.arch, method=spec.method, params_m=round(n_params / 1e6, 4),
                        test_oa=test.get("oa"), test_kappa=test.get("kappa"), test_macro_f1=test.get("macro_f1"),
                        best_epoch=m["best_epoch"], epochs=m["epochs"], seconds=round(float(m["seconds"]), 1),
                        checkpoint=checkpoint, init=init_line(init or {}))


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
