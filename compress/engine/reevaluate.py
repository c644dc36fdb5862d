"""Re-evaluate a checkpoint on its run's saved split or on a new class-per-folder data set."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.data.dataset import SubsetDataset
from compress.data.folder import DIGITS, ImageSource, load_digits_source, scan_folder
from compress.data.split import find_split_file, load_split
from compress.data.transforms import EvalTransform, Normalize
from compress.engine.checkpoint import load_checkpoint
from compress.engine.device import resolve_device
from compress.engine.evaluate import evaluate_classifier, write_classification_outputs
from compress.errors import CheckpointError, DataError
from compress.io import to_jsonable, write_json_atomic


@dataclass
class EvaluationResult:
    checkpoint: str
    data: str
    split: str | None
    n: int
    metrics: dict[str, Any]
    out_dir: str

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _source_for_keys(root: str, keys: tuple[str, ...], class_names: list[str]) -> ImageSource:
    """An uncached source over the split's files; labels come from each key's class folder."""
    if root == DIGITS:
        return load_digits_source()
    roots = dict(p.split("=", 1) for p in root.split("|")) if root.startswith("train=") else None
    labels = []
    for k in keys:
        rel = k.split(":", 1)[1] if roots else k
        labels.append(class_names.index(Path(rel).parts[0]))
    src = ImageSource(root=root, keys=list(keys), labels=np.array(labels, dtype=np.int64),
                      class_names=list(class_names), bands=0, dtype="uint8")
    if roots:
        from compress.data.images import read_image

        src.load = lambda i: read_image(Path(roots[keys[i].split(":", 1)[0]]) / keys[i].split(":", 1)[1])  # type: ignore[method-assign]
    return src


def evaluate_checkpoint(checkpoint: str | Path, data: str | None = None, split: str = "test", device: str = "auto",
                        out: str | Path | None = None, batch_size: int = 256) -> EvaluationResult:
    """Classification metrics of ``checkpoint`` on its saved ``split`` (default) or on folder ``data``."""
    dev = resolve_device(device)
    ck = load_checkpoint(checkpoint, device=dev)
    man = ck.manifest
    names = list(man.class_names)
    if data is None:
        split_file = find_split_file(ck.path)
        if split_file is None:
            raise DataError(f"No split.json above '{ck.path}'; pass --data DIR to evaluate on a folder.")
        sp = load_split(split_file)
        if split not in ("train", "val", "test"):
            raise DataError(f"--split must be train, val or test, got '{split}'.")
        keys = getattr(sp, split)
        if not keys:
            raise DataError(f"The saved split has no '{split}' images; choose another --split.")
        source = _source_for_keys(sp.root, keys, names)
        if sp.root == DIGITS:
            pos = {k: i for i, k in enumerate(source.keys)}
            indices = np.array([pos[k] for k in keys])
        else:
            indices = np.arange(len(keys))
        label, where = split, str(split_file.parent)
        from compress.data.images import value_scale  # noqa: F401 - dtype comes from the first image below
        source.dtype = str(source.load(int(indices[0])).dtype)
    else:
        source = scan_folder(data, cache=False)
        if source.class_names != names:
            raise CheckpointError(f"'{data}' has classes {source.class_names[:5]}... but the checkpoint was trained on "
                                  f"{names[:5]}...; evaluate on a folder with the same class sub-folders.")
        indices, label, where = np.arange(len(source)), None, str(data)
        if source.bands != man.in_chans:
            raise DataError(f"'{data}' images have {source.bands} band(s), the model takes {man.in_chans}.")
    ds = SubsetDataset(source, indices, EvalTransform(man.image_size), Normalize(man.mean, man.std))
    metrics = evaluate_classifier(ck.model, ds, names, dev, batch_size=batch_size)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = find_split_file(ck.path).parent if find_split_file(ck.path) else ck.path
    out_dir = Path(out) if out else run_dir / "evaluations" / f"{label or Path(str(data)).name}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = EvaluationResult(checkpoint=str(ck.path), data=where, split=label, n=len(ds), metrics=metrics.to_dict(),
                              out_dir=str(out_dir))
    write_json_atomic(out_dir / "metrics.json", result.to_dict())
    write_classification_outputs(out_dir, metrics, names)
    return result
