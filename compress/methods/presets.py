"""Paper schedules as config files (``compress/methods/presets/*.yaml``) for ``--config``.

A file has the sections of :class:`compress.engine.jobs.JobConfig`: ``data:`` (with ``augment:``),
``train:``, ``method:``, ``method_params:`` and top-level keys (``student``, ``teacher_arch``…).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from compress.errors import UserInputError

PRESETS_DIR = Path(__file__).with_name("presets")


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The file of preset ``name`` (e.g. ``pskd``, ``erkt``, ``erkt-usual-da``), usable as ``--config``."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserInputError(f"Unknown preset '{name}'. Known: {', '.join(list_presets())}.")
    return path


def load_preset(name: str) -> dict[str, Any]:
    from compress.config import load_config_file

    return load_config_file(preset_path(name))


def job_config_from_mapping(values: Mapping[str, Any]):
    """A ``JobConfig`` from a config-file mapping; unknown keys in any section are rejected.

    ``method_params`` are checked against the method's ``Params`` too.
    """
    import dataclasses

    from compress.config import build_config
    from compress.data.bundle import DataConfig
    from compress.data.transforms import AugmentConfig
    from compress.engine.config import TrainConfig
    from compress.engine.jobs import JobConfig
    from compress.methods import METHODS

    top = {str(k).replace("-", "_"): v for k, v in values.items()}
    data = dict(top.pop("data", None) or {})
    augment = build_config(AugmentConfig, data.pop("augment", None) or {}, section="data.augment")
    data_cfg = build_config(DataConfig, data, section="data")
    data_cfg = dataclasses.replace(data_cfg, augment=augment)
    train_cfg = build_config(TrainConfig, top.pop("train", None) or {}, section="train")
    job = build_config(JobConfig, top, section="config")
    job = dataclasses.replace(job, data=data_cfg, train=train_cfg)
    build_config(METHODS.get(job.method).Params, job.method_params, section=f"method_params ({job.method})")
    return job
