"""``compress predict``: class and confidence for image files or folders, from a checkpoint or an exported ONNX file.

Images are preprocessed as the model was evaluated (the checkpoint manifest's / ONNX metadata's size,
mean and std; bands must match). Unreadable files are listed, not fatal; a path that holds no image
at all is an error before the model is loaded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from compress.errors import DataError, UserInputError


@dataclass(frozen=True)
class Prediction:
    file: str
    label: str
    confidence: float  # softmax probability of ``label``
    top: tuple[tuple[str, float], ...]  # the top-k (label, probability), best first


@dataclass
class PredictResult:
    model: str
    classes: int
    rows: list[Prediction] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "classes": self.classes, "unreadable": self.unreadable,
                "rows": [{**asdict(r), "top": [list(t) for t in r.top]} for r in self.rows]}


def image_files(paths: list[str]) -> list[Path]:
    """The image files named, and every image file under the folders named (sorted, recursive)."""
    from compress.data.images import RASTER_EXTENSIONS

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in RASTER_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise UserInputError(f"'{p}' is neither an image file nor a folder.")
    if not files:
        raise DataError(f"no image files ({', '.join(RASTER_EXTENSIONS)}) in {', '.join(paths)}.")
    return files


def _dataset(files: list[Path], manifest: Any) -> tuple[Any, list[str]]:
    from compress.data.folder import ImageSource
    from compress.data.images import ImageReadError, read_image
    from compress.data.dataset import SubsetDataset
    from compress.data.transforms import EvalTransform, Normalize

    arrays, keys, bad = [], [], []
    first_error = ""
    for f in files:
        try:
            arr = read_image(f)
        except ImageReadError as exc:
            bad.append(str(f))
            first_error = first_error or f"'{f}': {exc}"
            continue
        if arr.shape[2] != manifest.in_chans:
            raise DataError(f"'{f}' has {arr.shape[2]} band(s) but the model takes {manifest.in_chans}.")
        arrays.append(arr)
        keys.append(str(f))
    if not arrays:
        raise DataError(f"none of the {len(files)} file(s) could be read as an image ({first_error}).")
    dtypes = {str(a.dtype) for a in arrays}
    if len(dtypes) > 1:
        raise DataError(f"the images mix pixel types ({', '.join(sorted(dtypes))}); predict them separately.")
    src = ImageSource(root=".", keys=keys, labels=np.zeros(len(keys), dtype=np.int64), class_names=["?"],
                      bands=int(manifest.in_chans), dtype=dtypes.pop(), arrays=arrays)
    ds = SubsetDataset(src, np.arange(len(keys)), EvalTransform(int(manifest.image_size)),
                       Normalize(manifest.mean, manifest.std))
    return ds, bad


def _torch_logits(model_path: str, device: str) -> tuple[Any, Callable[[Any, np.ndarray], np.ndarray]]:
    from compress.hardware import resolve_device
    from compress.models.restore import load_checkpoint

    dev = resolve_device(device)
    ckpt = load_checkpoint(model_path, dev)
    if ckpt.manifest.task != "classification":
        raise UserInputError(f"'{model_path}' is an embedding model; predict needs a classifier.")

    def run(ds, idx: np.ndarray) -> np.ndarray:
        x = torch.stack([ds[int(i)][0] for i in idx]).to(dev)
        with torch.no_grad():
            return ckpt.model(x).float().cpu().numpy()

    return ckpt.manifest, run


def predict_paths(model: str, paths: list[str], top_k: int = 1, batch_size: int = 64,
                  device: str = "cpu", max_pixels: int | None = None) -> PredictResult:
    """Predict every image under ``paths`` with ``model`` (checkpoint/run folder or ``.onnx``); an image
    declaring more than ``max_pixels`` pixels (default: :data:`DEFAULT_MAX_PIXELS`) is skipped unread."""
    from compress.data.images import check_max_pixels, set_max_pixels

    if top_k < 1:
        raise UserInputError(f"--top-k must be ≥ 1, got {top_k}.")
    set_max_pixels(check_max_pixels(max_pixels))
    files = image_files(paths)
    onnx = str(model).lower().endswith(".onnx")
    if onnx:
        from export.evaluate import batch_input, onnx_manifest
        from runtime.onnxrt import OnnxrtRunner

        if not Path(model).is_file():
            raise UserInputError(f"ONNX file '{model}' does not exist.")
        manifest = onnx_manifest(Path(model))
        if manifest.task != "classify":
            raise UserInputError(f"'{model}' is an embedding export; predict needs a classifier.")
        runner = OnnxrtRunner(model, providers="cpu").__enter__()
        static = manifest.batch if isinstance(manifest.batch, int) and manifest.batch > 0 else None

        def run(ds, idx):
            x = batch_input(ds, idx, manifest)
            if static and len(x) < static:
                x = np.concatenate([x, np.repeat(x[-1:], static - len(x), axis=0)])
            return next(iter(runner.infer({"input": x}).values()))[:len(idx)]

        step = static or batch_size
    else:
        manifest, run = _torch_logits(model, device)
        step = batch_size
    ds, bad = _dataset(files, manifest)
    names = list(manifest.class_names)
    k = min(top_k, len(names))
    result = PredictResult(model=str(model), classes=len(names), unreadable=bad)
    try:
        for start in range(0, len(ds), step):
            idx = np.arange(start, min(start + step, len(ds)))
            logits = np.asarray(run(ds, idx), dtype=np.float64)
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            for i, p in zip(idx, probs):
                order = np.argsort(-p)[:k]
                top = tuple((names[j], float(p[j])) for j in order)
                result.rows.append(Prediction(ds.keys[i], top[0][0], top[0][1], top))
    finally:
        if onnx:
            runner.__exit__(None, None, None)
    return result


def write_predictions(result: PredictResult, path: str | Path) -> Path:
    """CSV (file, label, confidence, then top-k pairs) or JSON, by the file's extension."""
    import csv
    import io
    import json

    from compress.io import write_text_atomic

    path = Path(path)
    if path.suffix.lower() == ".json":
        return write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    if path.suffix.lower() != ".csv":
        raise UserInputError(f"--out '{path}': write predictions to a .csv or .json file.")
    buf = io.StringIO()
    w = csv.writer(buf)
    k = max((len(r.top) for r in result.rows), default=1)
    w.writerow(["file", "label", "confidence"] + [f"{h}{i + 1}" for i in range(1, k) for h in ("label", "p")])
    for r in result.rows:
        w.writerow([r.file, r.label, f"{r.confidence:.6f}"] + [v for lab, p in r.top[1:] for v in (lab, f"{p:.6f}")])
    return write_text_atomic(path, buf.getvalue())
