"""Checkpoint format (core): a folder with ``model.safetensors`` (weights) and ``manifest.json``.

Every layer may import this module; it imports nothing of ours but the error family and atomic IO.
Building a model from a checkpoint lives one layer up, in :mod:`compress.models.restore`.
``torch.load`` of pickles is never used. Writes are atomic.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compress.errors import CheckpointError
from compress.io import read_json, sha256_file, to_jsonable, write_json_atomic

FORMAT = "compress-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"


def library_versions() -> dict[str, str]:
    """Versions recorded with every checkpoint and report."""
    import compress

    out = {"compress": compress.__version__, "torch": torch.__version__, "python": platform.python_version()}
    for mod in ("torchvision", "timm", "numpy", "onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # optional or broken install: simply not recorded
            pass
    return out


@dataclass(frozen=True)
class Manifest:
    """Everything needed to rebuild, preprocess for and describe a trained model."""

    architecture: str
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    method: str = "ce"
    role: str = "student"  # teacher | student | baseline | member
    task: str = "classification"  # classification | embedding
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    split_hash: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    world_size: int = 1  # data-parallel processes that trained it
    init: dict[str, Any] = field(default_factory=dict)  # how the initial weights were loaded (WeightsReport)
    versions: dict[str, str] = field(default_factory=library_versions)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{source} is not a compress checkpoint manifest (no \"format\": \"{FORMAT}\").")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(
                f"{source} has format_version {data['format_version']}, newer than this toolkit reads "
                f"({FORMAT_VERSION}); upgrade compress."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("architecture", "num_classes", "in_chans", "image_size", "mean", "std", "class_names")
                   if n not in data]
        if missing:
            raise CheckpointError(f"{source} lacks required field(s) {', '.join(missing)}; the checkpoint is corrupt.")
        kwargs = {k: v for k, v in data.items() if k in names}
        _check_fields(kwargs, source)
        for key in ("mean", "std", "class_names"):
            kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "Manifest":
        return dataclasses.replace(self, **changes)



def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept the checkpoint folder, its manifest/weights file, or a run folder (→ ``checkpoints/best``; a
    distill run → its student's)."""
    p = Path(path)
    if p.is_file() and p.name in (WEIGHTS, MANIFEST):
        p = p.parent
    if p.is_dir() and not (p / MANIFEST).exists() and (p / "student" / "checkpoints" / "best" / MANIFEST).exists():
        p = p / "student"
    if p.is_dir() and not (p / MANIFEST).exists() and (p / "checkpoints" / "best" / MANIFEST).exists():
        p = p / "checkpoints" / "best"
    if not p.exists():
        raise CheckpointError(f"Checkpoint '{path}' does not exist; pass a checkpoint folder or a run folder.")
    if not (p / MANIFEST).is_file() or not (p / WEIGHTS).is_file():
        raise CheckpointError(
            f"'{path}' is not a compress checkpoint: expected a folder with {MANIFEST} and {WEIGHTS} "
            "(as written under runs/<name>/checkpoints/)."
        )
    return p


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 4096  # one rule for every command (training, export, profile)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fields(m: dict[str, Any], source: str) -> None:
    """Types, lengths and ranges of a manifest's fields (a hand-edited one gets one line, not a traceback
    deep in a model or a NaN confidence)."""
    import math

    def bad(field_: str, why: str) -> CheckpointError:
        return CheckpointError(f"{source}: {field_} {why}; the manifest was edited or is corrupt (restore it from "
                               "the run that wrote it).")

    if not isinstance(m["architecture"], str) or not m["architecture"]:
        raise bad("architecture", f"is {m['architecture']!r}, not a model name")
    # internal stages may train below the command-line minimum (cross-source MS inputs at 4 px)
    for key, lo, hi in (("num_classes", 1, 1 << 20), ("in_chans", 1, 1024), ("image_size", 1, MAX_IMAGE_SIZE)):
        if not _count(m[key]) or not lo <= m[key] <= hi:
            raise bad(key, f"is {m[key]!r}; expected a whole number in {lo}…{hi}")
    names = m["class_names"]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise bad("class_names", "is not a list of names")
    if len(names) != m["num_classes"]:
        raise bad("class_names", f"lists {len(names)} names for num_classes {m['num_classes']}")
    for key in ("mean", "std"):
        v = m[key]
        if not isinstance(v, (list, tuple)) or len(v) != m["in_chans"] or \
                not all(_count(x) or isinstance(x, float) for x in v) or not all(math.isfinite(x) for x in v):
            raise bad(key, f"is {v!r}; expected {m['in_chans']} finite number(s), one per band (in_chans)")
    if any(x <= 0 for x in m["std"]):
        raise bad("std", "has a value ≤ 0")
    for key in ("model_kwargs", "config", "metrics", "init"):
        if key in m and not isinstance(m[key], dict):
            raise bad(key, f"is a {type(m[key]).__name__}, not a mapping")


def read_manifest(path: str | Path) -> Manifest:
    ckpt_dir = resolve_checkpoint_dir(path)
    try:
        data = read_json(ckpt_dir / MANIFEST)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{ckpt_dir / MANIFEST} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); "
                              "the checkpoint is corrupt.") from exc
    return Manifest.from_dict(data, source=str(ckpt_dir / MANIFEST))


def state_dict_for_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; tied tensors are cloned so safetensors accepts them."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        if t.data_ptr() in seen and t.numel() > 0:
            t = t.clone()
        seen.add(t.data_ptr())
        out[k] = t
    return out


def save_checkpoint(directory: str | Path, model: nn.Module, manifest: Manifest) -> Path:
    """Write weights then manifest atomically into ``directory``; returns the folder."""
    from safetensors.torch import save_file

    from compress.io import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state_dict_for_save(model), str(tmp), metadata={"format": FORMAT})
    write_json_atomic(directory / MANIFEST, manifest.to_dict())
    return directory


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint folder's ``model.safetensors`` (CPU); a corrupt file is a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    ckpt_dir = resolve_checkpoint_dir(path)
    try:
        return load_file(str(ckpt_dir / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt_dir / WEIGHTS} cannot be read ({exc}); the checkpoint is corrupt.") from exc


def weights_hash(path: str | Path) -> str:
    """SHA-256 of the checkpoint's weights file (recorded by exports)."""
    return sha256_file(resolve_checkpoint_dir(path) / WEIGHTS)


def check_compatible(found: Manifest, expect: Manifest, source: str) -> None:
    """Reject a checkpoint of another architecture or class list (used on resume and fine-tune)."""
    if found.architecture != expect.architecture:
        raise CheckpointError(
            f"{source} holds a '{found.architecture}' model but '{expect.architecture}' was asked for; "
            "pick the matching --student/--teacher or another checkpoint."
        )
    if tuple(found.class_names) != tuple(expect.class_names):
        raise CheckpointError(
            f"{source} was trained on classes {list(found.class_names)[:6]}... which differ from this data's "
            f"{list(expect.class_names)[:6]}...; use a checkpoint trained on the same classes."
        )


def commit_dir(final: str | Path, write, complete_marker: str = MANIFEST) -> Path:
    """Write a whole checkpoint folder under a temporary name, then swap it in.

    ``write(tmp_dir)`` fills the folder; a kill at any point leaves either the old or the new
    folder complete (``recover_dir`` finishes an interrupted swap on the next start).
    """
    import os
    import shutil

    final = Path(final)
    new, old = final.with_name(f".{final.name}.new"), final.with_name(f".{final.name}.old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    write(new)
    if not (new / complete_marker).is_file():
        raise CheckpointError(f"internal: {new} was written without {complete_marker}")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def recover_dir(final: str | Path, complete_marker: str = MANIFEST) -> None:
    """Finish or roll back a swap that ``commit_dir`` did not complete (after a kill)."""
    import os
    import shutil

    final = Path(final)
    new, old = final.with_name(f".{final.name}.new"), final.with_name(f".{final.name}.old")
    if not final.exists():
        if (new / complete_marker).is_file():
            os.replace(new, final)
        elif old.exists():
            os.replace(old, final)
    shutil.rmtree(new, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
