"""Paper schedules as config files (``compress/methods/presets/*.yaml``) for ``--config``.

A file has the sections of :class:`compress.jobs.train_distill.JobConfig`: ``data:`` (with ``augment:``),
``train:``, ``method:``, ``method_params:`` and top-level keys (``student``, ``teacher_arch``…); it is
read by :func:`compress.jobs.config_merge.load_job_config` like any ``--config`` file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

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
