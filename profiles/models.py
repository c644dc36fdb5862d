"""Resolve a model to profile: a checkpoint folder, an ``.onnx`` file, an ``.engine`` (+ JSON sidecar) or a zoo name."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.errors import UserInputError

if TYPE_CHECKING:
    from profiles.counting.analysis import ModelAnalysis


@dataclass
class ProfiledModel:
    """What ``compress profile`` works on. ``model`` is set for checkpoints and zoo names."""

    spec: str
    kind: str  # checkpoint | onnx | engine | zoo
    name: str
    in_chans: int
    image_size: int
    num_classes: int | None
    model: Any = None
    path: Path | None = None
    file_bytes: int | None = None
    accuracy: float | None = None
    accuracy_source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def accuracy_from_metrics(metrics: dict[str, Any]) -> tuple[float | None, str | None]:
    """Overall accuracy from a manifest's metrics ({"test": {"oa": ...}} first, then val, then top level)."""
    for split in ("test", "val", "valid", "validation"):
        sub = metrics.get(split)
        if isinstance(sub, dict):
            for key in ("oa", "accuracy", "acc", "top1"):
                if isinstance(sub.get(key), (int, float)):
                    return float(sub[key]), f"manifest metrics.{split}.{key}"
    for key in ("oa", "accuracy", "acc", "top1"):
        if isinstance(metrics.get(key), (int, float)):
            return float(metrics[key]), f"manifest metrics.{key}"
    return None, None


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def _onnx_input(path: Path) -> tuple[int | None, int | None, str, str | None]:
    """(channels, size, precision, architecture) of an ONNX model's image input; ``compress export`` tags
    FP16/INT8 models and the architecture in their metadata, untagged means FP32 and unknown."""
    from runtime.onnxrt import model_precision

    model = load_onnx(path)
    # compress export tags its files; any other Q/DQ or half-precision graph is recognised from its nodes
    props = {p.key: p.value for p in model.metadata_props}
    precision = props.get("compress.precision") or props.get("precision") or model_precision(model)
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if len(dims) == 4:
            return dims[1], dims[3] or dims[2], precision, props.get("compress.architecture")
    return None, None, precision, props.get("compress.architecture")


def load_onnx(path: Path):
    """The ONNX model in ``path``; a file that is not one (text, truncated, random bytes) is a UserInputError."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise UserInputError(f"'{path}' is not a readable ONNX model ({type(exc).__name__}); export one with "
                             "`compress export` or check the file.") from exc
    if not model.graph.node:
        raise UserInputError(f"'{path}' holds no ONNX graph; export one with `compress export` or check the file.")
    return model


def _sibling_accuracy(path: Path, precision: str, backend: str) -> tuple[float | None, str | None]:
    """Accuracy of an exported file from its export folder: the parity report's row for this precision
    and backend (measured on the exported model itself, in %), else a manifest placed beside it."""
    parity = path.parent / "parity.json"
    if parity.is_file():
        try:
            data = json.loads(parity.read_text(encoding="utf-8"))
            rows = [r for r in data.get("rows", []) if isinstance(r.get("accuracy"), (int, float))
                    and r.get("name") != "pytorch"]
            mine = [r for r in rows if r.get("file") == path.name]  # the row measured on this very file
            rows = mine or [r for r in rows if r.get("precision") == precision and not r.get("file")]
            rows.sort(key=lambda r: not str(r.get("name", "")).startswith(backend))
            if rows:
                r = rows[0]
                return float(r["accuracy"]) / 100.0, (f"{parity}: {r['name']} on {data.get('num_samples', '?')} "
                                                     f"samples ({data.get('sample_source', 'unknown source')})")
        except (json.JSONDecodeError, OSError, TypeError, ValueError):
            pass  # an unreadable report gives no accuracy; fall back to a manifest below
    man = path.parent / "manifest.json"
    if man.is_file():
        try:
            data = json.loads(man.read_text(encoding="utf-8"))
            acc, src = accuracy_from_metrics(data.get("metrics") or {})
            return acc, (f"{man}: {src}" if src else None)
        except (json.JSONDecodeError, OSError):
            pass
    return None, None


def resolve_profiled_model(spec: str, num_classes: int | None = None, input_size: int | None = None,
                   in_chans: int | None = None) -> ProfiledModel:
    """Load/inspect one target; CLI overrides (``--input-size`` …) win over what the files say."""
    p = Path(spec)
    if p.is_dir() or p.name in ("manifest.json", "model.safetensors"):
        from compress.models.restore import load_checkpoint

        ckpt = load_checkpoint(p)
        man = ckpt.manifest
        acc, src = accuracy_from_metrics(man.metrics or {})
        return ProfiledModel(spec, "checkpoint", man.architecture, in_chans or man.in_chans, input_size or man.image_size,
                      man.num_classes, model=ckpt.model, path=ckpt.path, file_bytes=_dir_size(ckpt.path / "model.safetensors"),
                      accuracy=acc, accuracy_source=src, meta={"role": man.role, "method": man.method})
    if p.suffix.lower() == ".onnx":
        if not p.is_file():
            raise UserInputError(f"ONNX file '{spec}' does not exist.")
        c, s, precision, arch = _onnx_input(p)
        acc, src = _sibling_accuracy(p, precision, "onnxrt-cpu")
        return ProfiledModel(spec, "onnx", p.stem, in_chans or c or 3, input_size or s or 224, num_classes, path=p,
                      file_bytes=p.stat().st_size, accuracy=acc, accuracy_source=src,
                      meta={"precision": precision, **({"architecture": arch} if arch else {})})
    if p.suffix.lower() in (".engine", ".plan"):
        if not p.is_file():
            raise UserInputError(f"Engine file '{spec}' does not exist.")
        from runtime.trtexec import sidecar_path

        side = sidecar_path(p)
        meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
        shape = meta.get("input_shape") or [1, 3, 224, 224]
        acc, src = _sibling_accuracy(p, str(meta.get("precision", "fp32")), "tensorrt")
        return ProfiledModel(spec, "engine", p.stem, in_chans or int(shape[1]), input_size or int(shape[-1]), num_classes,
                      path=p, file_bytes=p.stat().st_size, accuracy=acc, accuracy_source=src,
                      meta={"precision": "fp32", **meta})
    if p.suffix or "/" in spec:
        raise UserInputError(f"'{spec}' is not a checkpoint folder, .onnx, .engine or model name.")
    from compress.models import create_model

    nc = num_classes or 1000
    model = create_model(spec, num_classes=nc, in_chans=in_chans or 3)
    return ProfiledModel(spec, "zoo", spec, in_chans or 3, input_size or 224, nc, model=model.eval())


def analyze_model(t: ProfiledModel, batch: int) -> ModelAnalysis | None:
    """Layer counts of a resolved target at ``batch`` (None for an engine without its ONNX beside it)."""
    import copy

    shape = (batch, t.in_chans, t.image_size, t.image_size)
    if t.model is not None:
        from profiles.counting.torch_count import analyze_torch

        meta_model = copy.deepcopy(t.model).to("meta")  # shapes only: no compute, no memory
        return analyze_torch(meta_model, shape).with_file_size(t.file_bytes)
    onnx_path = t.path if t.kind == "onnx" else None
    if t.kind == "engine" and t.meta.get("onnx"):
        from pathlib import Path

        cand = Path(t.meta["onnx"])
        cand = cand if cand.is_absolute() else t.path.parent / cand
        onnx_path = cand if cand.is_file() else None
    if onnx_path is None:
        return None
    from profiles.counting.onnx_count import analyze_onnx

    return analyze_onnx(onnx_path, shape).with_file_size(t.file_bytes)


def architecture_of(t: ProfiledModel) -> str:
    """What a device calibration is keyed by: the network's architecture (a checkpoint's or zoo name; an
    exported file's ``compress.architecture`` tag), its canonical zoo spelling when it has one, else the
    file's name."""
    from compress.models.factory import canonical_architecture

    return canonical_architecture(str(t.meta.get("architecture") or t.name))
