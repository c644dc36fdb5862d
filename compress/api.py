"""The Python API: what the commands do, as functions that return the commands' result dataclasses.

    from compress.api import train, distill, export, profile

    teacher = train(model="cifar_resnet20", out="runs/t", train={"epochs": 30})
    student = distill(teacher="runs/t", out="runs/s")           # the teacher pruned to half its MACs, by KD
    files = export(student.rows[-1].checkpoint, "exports/s", int8=True)
    report = profile(f"{files.out_dir}/model.onnx", target="jetson-orin-nano-8gb")

Settings are the keys of the command's config file (``compress distill --config FILE``): top-level keys such
as ``teacher``, ``student``, ``method``, ``out``, and the sections ``data={...}``, ``train={...}``,
``budget={...}`` as mappings; ``config=FILE`` reads a file first and the keyword arguments override it.
Unknown keys and bad values raise :class:`compress.errors.UserInputError` with the same one line the
command prints. Nothing is printed; progress goes to ``progress`` (a callable taking a
``compress.engine.progress`` event) when given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _job(command: str, config: str | Path | None, settings: dict[str, Any], defaults: dict[str, Any] | None = None):
    from compress.jobs.train_distill import JobConfig
    from compress.jobs.config_merge import load_job_config

    return load_job_config(JobConfig, settings, command=command, config_file=config, defaults=defaults)


def train(config: str | Path | None = None, progress: Any = None, **settings: Any):
    """``compress train``: one model (a teacher, an ensemble member, a baseline; ``model=NAME``) → ``JobResult``."""
    from compress.jobs.train_distill import run_train

    if "model" in settings:  # --model of the command; the config key is `student`
        settings["student"] = settings.pop("model")
    return run_train(_job("train", config, settings, defaults={"method": "ce"}), progress)


def distill(config: str | Path | None = None, progress: Any = None, **settings: Any):
    """``compress distill``: teacher (given or trained) → no-teacher baseline → distilled student → ``JobResult``
    (``rows`` in that order; ``chosen`` says which student was made and why)."""
    from compress.jobs.train_distill import run_distill

    return run_distill(_job("distill", config, settings), progress)


def prune(checkpoint: str | Path, config: str | Path | None = None, progress: Any = None, **settings: Any):
    """``compress prune CKPT``: the teacher cut to a budget (``macs=0.5``, ``params=…`` or ``latency_ms=…`` with
    ``target=…``), recovered by distillation with ``recover=True`` → ``PruneResult``."""
    from compress.jobs.config_merge import load_job_config
    from compress.jobs.prune import PruneJobConfig, run_prune

    cfg = load_job_config(PruneJobConfig, {"checkpoint": str(checkpoint), **settings}, command="prune",
                          config_file=config)
    return run_prune(cfg, progress)


def export(checkpoint: str | Path, out: str | Path, **settings: Any):
    """``compress export CKPT -o OUT``: ONNX (+ ``fp16=True``, ``int8=True``, ``trt=True`` …, the fields of
    ``export.chain.ExportConfig``, and ``parity={"atol": {"fp16": 0.02}, "max_oa_drop": 0.5, …}``: the keys of
    ``compress export --config``), parity-checked → ``ExportResult``."""
    from export.chain import export_checkpoint
    from export.settings import export_settings

    return export_checkpoint(checkpoint, out, export_settings(settings, where="export")[1])


def profile(*models: str | Path, **settings: Any):
    """``compress profile MODEL…``: parameters, MACs, memory and latency, measured here or ESTIMATED for
    ``target=DEVICE`` (the fields of ``profiles.api.ProfileConfig``) → ``ProfileReport``."""
    from compress.config import build_config
    from profiles.api import ProfileConfig, profile_models

    return profile_models([str(m) for m in models], build_config(ProfileConfig, settings, section="profile"))


def pipeline(recipe: str | Path, redo: tuple[str, ...] = (), progress: Any = None):
    """``compress pipeline RECIPE``: every step of the recipe, resumable → ``PipelineResult``."""
    from compress.jobs.pipeline import run_pipeline

    return run_pipeline(recipe, redo=tuple(redo), progress=progress)
