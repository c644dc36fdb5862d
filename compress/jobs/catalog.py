"""What ``compress models`` and ``compress methods`` list: the model zoo with its size, the methods with
their hyper-parameters, defaults and paper presets."""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from compress.errors import UserInputError

_WRAPPERS = {"embed-bnneck", "embed-cosine", "onnx-qdq"}  # need a backbone / a graph, not built on their own


@dataclass(frozen=True)
class ModelInfo:
    name: str
    alias_of: str | None
    params_m: float | None
    macs_g: float | None
    image_size: int
    note: str = ""


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str
    teacher: bool
    presets: tuple[str, ...]


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: str
    default: Any
    presets: dict[str, Any]  # preset name -> its value, where the preset sets it


def model_catalog(pattern: str | None = None, num_classes: int = 1000) -> list[ModelInfo]:
    """Registered zoo models with parameters and MACs (analysed on the meta device: no weights, instant)."""
    import torch

    from compress.models.factory import MODELS, list_models, model_defaults
    from compress.models import create_model
    from profiles.counting.torch_count import analyze_torch

    rows = []
    for name in list_models(pattern):
        entry = MODELS.get(name)
        alias = getattr(entry, "alias", None)
        if name in _WRAPPERS:
            rows.append(ModelInfo(name, alias, None, None, 0, "wrapper: built around a backbone or an ONNX graph"))
            continue
        size = model_defaults(name).image_size
        size = 32 if name.startswith("cifar") else size
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, in_chans=3)
        a = analyze_torch(model, (1, 3, size, size))
        rows.append(ModelInfo(name, alias, round(a.params / 1e6, 3), round(a.macs / 1e9, 4), size))
    if pattern and not rows:
        raise UserInputError(f"no model matches '{pattern}'; `compress models` lists them all "
                             "(timm and torchvision names work too).")
    return rows


def _presets_by_method() -> dict[str, dict[str, dict[str, Any]]]:
    from compress.methods.presets import list_presets, load_preset

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for p in list_presets():
        data = load_preset(p)
        out.setdefault(str(data.get("method")), {})[p] = dict(data.get("method_params") or {})
    return out


def _summary(cls: type) -> str:
    """The method module's first docstring line (``name``: what it is), or the class's own docstring
    where several methods share a module."""
    import sys

    module_doc = inspect.getdoc(sys.modules.get(cls.__module__)) or ""
    first = module_doc.strip().splitlines()[0] if module_doc.strip() else ""
    from compress.methods import METHODS

    shared = sum(1 for n in METHODS.names() if METHODS.get(n).__module__ == cls.__module__) > 1
    own = cls.__dict__.get("__doc__")
    if own and (shared or not first):
        return inspect.cleandoc(own).splitlines()[0]
    return first.split(":", 1)[1].strip() if first.startswith("``") and ":" in first else first


def method_catalog() -> list[MethodInfo]:
    from compress.methods import METHODS

    presets = _presets_by_method()
    return [MethodInfo(n, _summary(METHODS.get(n)), bool(getattr(METHODS.get(n), "requires_teacher", False)),
                       tuple(sorted(presets.get(n, {})))) for n in METHODS.names()]


def method_params(name: str) -> tuple[MethodInfo, list[ParamInfo]]:
    """One method's hyper-parameters with their defaults and the values its presets set."""
    from compress.methods import METHODS

    if name not in METHODS.names():
        raise UserInputError(f"Unknown method '{name}'. Known: {', '.join(METHODS.names())}.")
    cls = METHODS.get(name)
    info = next(m for m in method_catalog() if m.name == name)
    presets = _presets_by_method().get(name, {})
    params = []
    for f in dataclasses.fields(cls.Params):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        tp = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        params.append(ParamInfo(f.name, tp, default, {p: v[f.name] for p, v in presets.items() if f.name in v}))
    return info, params
