"""The images a checkpoint was trained and tested on, as a ``DataConfig``: its run's data folder and split.

``compress distill --teacher CKPT`` without ``--data`` and the recovery of ``compress prune --recover``
both train on the checkpoint's own data, so the student is scored on exactly the teacher's test images.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from compress.checkpoint import Manifest, read_manifest, resolve_checkpoint_dir
from compress.config import build_config
from compress.data.bundle import DataConfig
from compress.data.folder import DIGITS
from compress.data.split import find_split_file, load_split
from compress.io import to_jsonable


def explicit_fields(cfg: DataConfig) -> dict:
    """The fields of ``cfg`` that differ from the defaults, i.e. what a user set on the command line."""
    default = DataConfig()
    return {f.name: to_jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(DataConfig)
            if getattr(cfg, f.name) != getattr(default, f.name)}


def data_folder(recorded: str | None, split_file: Path | None) -> str | None:
    """The data folder a run recorded, usable from here: a relative ``--data`` was relative to the folder the
    run was started in, so from any other working folder it is the saved split's absolute root instead (the
    same images), when that still exists; otherwise as recorded (and a missing folder fails as usual)."""
    if not recorded or recorded == DIGITS or Path(recorded).exists() or split_file is None:
        return recorded
    root = load_split(split_file).root
    return root if root and Path(root).is_dir() else recorded


def recorded_data(checkpoint: str | Path, overrides: dict | None = None,
                  manifest: Manifest | None = None) -> DataConfig | None:
    """``checkpoint``'s recorded data folder, image size and saved split, with ``overrides`` on top
    (``manifest``: the checkpoint's, when the caller has read it already).

    None when the manifest records no data section (a checkpoint made outside a run).
    """
    path = resolve_checkpoint_dir(checkpoint)
    man = manifest or read_manifest(path)
    if not isinstance((man.config or {}).get("data"), dict):
        return None
    recorded = dict(man.config["data"])
    split = find_split_file(path)
    recorded["data"] = data_folder(recorded.get("data"), split)
    merged = {**recorded, "image_size": man.image_size, "split": str(split) if split else None, **(overrides or {})}
    return build_config(DataConfig, merged, section="data")
