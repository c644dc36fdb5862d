"""Scoring an exported ONNX file with the same metrics as a checkpoint (``compress evaluate MODEL.onnx``).

The images come from the run the file was exported from (``export.json`` beside it names the
checkpoint, whose ``split.json`` says which images are the test split) or from ``--data DIR``; they
are preprocessed as the file's own metadata says (size, mean/std, NCHW float or NHWC uint8).
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from compress.data.sources import checkpoint_dataset
from compress.errors import DataError, UserInputError
from compress.evaluation.classifier import write_classification_outputs
from compress.evaluation.saved_model import EvaluationResult
from compress.io import read_json, write_json_atomic


def onnx_manifest(path: Path) -> SimpleNamespace:
    """What a checkpoint manifest would say, read from the file's ``compress.*`` metadata."""
    import json

    import onnx

    from export.onnx import read_metadata

    meta = read_metadata(path)
    missing = [k for k in ("class_names", "mean", "std", "image_size") if k not in meta]
    if missing:
        raise UserInputError(f"'{path}' has no {', '.join(missing)} in its metadata: only files written by "
                             "`compress export` can be scored here.")
    model = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    nhwc = meta.get("input_layout", "").startswith("NHWC")
    return SimpleNamespace(class_names=tuple(json.loads(meta["class_names"])), mean=tuple(json.loads(meta["mean"])),
                           std=tuple(json.loads(meta["std"])), image_size=int(meta["image_size"]),
                           in_chans=int(dims[3] if nhwc else dims[1]), nhwc=nhwc, batch=dims[0],
                           task=meta.get("task", "classify"), precision=meta.get("precision", "fp32"))


def _source_checkpoint(path: Path) -> Path | None:
    marker = path.parent / "export.json"
    if not marker.is_file():
        return None
    ckpt = read_json(marker).get("checkpoint")
    return Path(ckpt) if ckpt and Path(ckpt).exists() else None


def batch_input(ds, idx: np.ndarray, man: SimpleNamespace) -> np.ndarray:
    """A batch as the ONNX file takes it: NCHW float normalised, or NHWC uint8 for a file that preprocesses."""
    if not man.nhwc:
        return torch.stack([ds[int(i)][0] for i in idx]).numpy().astype(np.float32)
    raw = [ds.transform(ds.raw(int(i))) for i in idx]  # resized, un-normalised, in [0, 1]
    return torch.stack(raw).mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def predict_classes(path: Path, batches: Iterable[np.ndarray], man: SimpleNamespace,
                    threads: int | None = None) -> np.ndarray:
    """Top-1 class ``[N]`` of an exported classifier over ``batches`` (each as ``batch_input`` makes it), run
    in ONNX Runtime on the CPU as the file is meant to run (an INT8 file as written, FP32 fused); a batch that
    does not match a static batch dimension is cut or padded to it."""
    from export.int8 import runs_as_written
    from runtime.onnxrt import OnnxrtRunner

    static = man.batch if isinstance(man.batch, int) and man.batch > 0 else None
    preds = []
    with OnnxrtRunner(path, providers="cpu", threads=threads, fuse=not runs_as_written(path)) as runner:
        for batch in batches:
            for i in range(0, len(batch), static or len(batch) or 1):
                x = batch[i:i + static] if static else batch
                n = len(x)
                if static and n < static:  # a static-batch graph gets its last batch padded
                    x = np.concatenate([x, np.repeat(x[-1:], static - n, axis=0)])
                preds.append(next(iter(runner.infer({"input": x}).values()))[:n].argmax(1))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def evaluate_onnx(path: str | Path, data: str | None = None, split: str = "test", out: str | Path | None = None,
                  batch_size: int = 64, threads: int | None = None) -> EvaluationResult:
    """OA, per-class accuracy, macro-F1, kappa and the confusion matrix of an exported classifier."""
    from compress.metrics.classification import classification_report

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"ONNX file '{path}' does not exist.")
    man = onnx_manifest(path)
    if man.task != "classify":
        raise UserInputError(f"'{path}' is an embedding export; score embeddings on its checkpoint "
                             "(compress evaluate CKPT --task retrieval).")
    ckpt = _source_checkpoint(path)
    if ckpt is None and data is None:
        raise DataError(f"'{path}' has no export.json naming its run; pass --data DIR to evaluate on a folder.")
    found = checkpoint_dataset(ckpt or path.parent, man, data=data, part=None if data is not None else split)
    ds = found.dataset
    batches = (batch_input(ds, np.arange(i, min(i + batch_size, len(ds))), man)
               for i in range(0, len(ds), batch_size))
    preds = predict_classes(path, batches, man, threads=threads)
    names = list(man.class_names)
    metrics = classification_report(np.asarray(ds.labels), preds, names)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out) if out else path.parent / "evaluations" / f"{path.stem}-{found.part or 'folder'}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = EvaluationResult(checkpoint=str(path), data=found.description, split=found.part, n=len(ds),
                              metrics=metrics.to_dict(), out_dir=str(out_dir))
    write_json_atomic(out_dir / "metrics.json", result.to_dict())
    write_classification_outputs(out_dir, metrics, names)
    return result
