"""What a ``train``/``distill`` job works from, resolved once at its start: its config, the student's
source, the given teachers' manifests, and the data and preprocessing the run reads.

Everything here is decided from names and files alone, before any image is read; the job passes the
one :class:`JobInputs` down instead of re-reading checkpoints and manifests at each use.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from compress.checkpoint import Manifest
from compress.data.bundle import DataConfig
from compress.engine.train_config import TrainConfig
from compress.errors import UserInputError
from compress.jobs import preflight
from compress.jobs.default_student import StudentBudget


@dataclass(frozen=True)
class JobConfig:
    """Everything ``train``/``distill`` accept (also from ``--config FILE``; flags win)."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    student: str = "auto"  # distill: auto = the teacher pruned to `budget`; train: the data's default network
    budget: StudentBudget = field(default_factory=StudentBudget)  # size of the default (pruned-teacher) student
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

    def __post_init__(self) -> None:
        if self.teacher_weights and len(self.teacher_weights) != len(self.teacher):
            raise UserInputError(f"{len(self.teacher_weights)} --teacher-weight value(s) for {len(self.teacher)} "
                                 "--teacher checkpoint(s); give one weight per teacher, in the same order.")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            raise UserInputError(f"--teacher-epochs must be ≥ 1, got {self.teacher_epochs}.")


class StudentSource(NamedTuple):
    """Where the student starts: its architecture, model kwargs and initial weights (a checkpoint or file)."""

    arch: str
    model_kwargs: dict[str, Any]
    init: str | None


def student_source(cfg: JobConfig) -> StudentSource:
    """The student of ``cfg``: a zoo name, or a checkpoint folder (e.g. a pruned one) whose architecture,
    structure and weights it starts from."""
    from compress.checkpoint import read_manifest, resolve_checkpoint_dir
    from compress.errors import CheckpointError

    if cfg.student != "auto" and Path(cfg.student).is_dir():
        try:
            ckpt = resolve_checkpoint_dir(cfg.student)
        except CheckpointError:
            return StudentSource(cfg.student, cfg.model_kwargs, cfg.weights)
        if cfg.weights:
            raise UserInputError("--student is a checkpoint, which already gives the initial weights; drop --weights.")
        man = read_manifest(ckpt)
        return StudentSource(man.architecture, {**man.model_kwargs, **cfg.model_kwargs}, str(ckpt))
    return StudentSource(cfg.student, cfg.model_kwargs, cfg.weights)


@dataclass(frozen=True)
class JobInputs:
    """A job's inputs, resolved once (:func:`resolve_inputs`)."""

    cfg: JobConfig  # as given, with a given teacher's recorded data when distill got no --data
    student: StudentSource
    teachers: tuple[Manifest, ...]  # the manifests of cfg.teacher, in order
    data: DataConfig  # the data as the run reads it (a checkpoint's input size when none is given)
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None  # normalisation fixed by a checkpoint or weights


def resolve_inputs(cfg: JobConfig, command: str) -> JobInputs:
    """Check what can be checked from names and files, then resolve the student, the teachers and the
    preprocessing of a ``command`` (train | distill) job."""
    from compress.methods import METHODS, build_method_params

    METHODS.get(cfg.method)
    teachers = preflight.check_checkpoints(cfg.teacher, "--teacher")
    build_method_params(cfg.method, cfg.method_params)
    student = student_source(cfg)
    preflight.check_models([student.arch, cfg.teacher_arch])
    preflight.check_weights(student.init, "--weights")
    preflight.check_weights(cfg.teacher_init_weights, "--teacher-init-weights")
    preflight.check_folder(cfg.unlabeled, "--unlabeled")
    if command == "distill":
        cfg = _teacher_data(cfg, teachers)
    data, mean_std = _preprocessing(cfg, command, student, teachers)
    return JobInputs(cfg, student, teachers, data, mean_std)


def _teacher_data(cfg: JobConfig, teachers: tuple[Manifest, ...]) -> JobConfig:
    """Without ``--data``, a given teacher's own data folder and split, so both are scored on the same test images."""
    from compress.jobs.teacher_data import explicit_fields, recorded_data

    if cfg.data.data is not None or cfg.data.split is not None or not cfg.teacher or cfg.resume:
        return cfg
    data = recorded_data(cfg.teacher[0], explicit_fields(cfg.data), teachers[0])
    return cfg if data is None else dataclasses.replace(cfg, data=data)


def _preprocessing(cfg: JobConfig, command: str, student: StudentSource,
                   teachers: tuple[Manifest, ...]) -> tuple[DataConfig, tuple | None]:
    """Whose normalisation/input size the run uses: a given teacher's, a checkpoint student's, a pretrained
    model's, or the data's. Teacher and student see the same batch, so a teacher checkpoint fixes it."""
    from compress.checkpoint import read_manifest

    checkpoint_student = student.init if student.init and student.arch != cfg.student else None
    man = teachers[0] if teachers else (read_manifest(checkpoint_student) if checkpoint_student else None)
    if man is not None:
        data_cfg = cfg.data if cfg.data.image_size else dataclasses.replace(cfg.data, image_size=man.image_size)
        return data_cfg, (man.mean, man.std)
    arch = cfg.student if command == "train" else cfg.teacher_arch
    init = (cfg.pretrained or cfg.weights) if command == "train" else (cfg.pretrained or cfg.teacher_init_weights)
    if init and arch != "auto":
        from compress.models import model_defaults

        d = model_defaults(arch)
        return cfg.data, (d.mean, d.std)
    return cfg.data, None
