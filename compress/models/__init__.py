"""Model zoo: ``create_model`` over timm/torchvision/our small nets, weights loading, feature taps.

Attributes are imported on first use so ``import compress.models`` (and ``compress --help``) stays
fast; torch, timm and torchvision load only when a model is actually built.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_model": "compress.models.factory",
    "list_models": "compress.models.factory",
    "model_defaults": "compress.models.factory",
    "resolve_model": "compress.models.factory",
    "register_model": "compress.models.factory",
    "ModelDefaults": "compress.models.factory",
    "MODELS": "compress.models.factory",
    "FeatureTaps": "compress.models.taps",
    "load_weights": "compress.models.weights",
    "read_state_dict": "compress.models.weights",
    "WeightsReport": "compress.models.weights",
    "default_feature_layers": "compress.models.introspect",
    "forward_features_pooled": "compress.models.introspect",
    "forward_with_pooled": "compress.models.introspect",
    "classifier_module": "compress.models.introspect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compress.models' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
