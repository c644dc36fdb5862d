"""Resume state (optimizer, method extras, history) split into safetensors tensors + JSON, never pickle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from compress.errors import CheckpointError
from compress.io import atomic_path, read_json, write_json_atomic

_REF = "__tensor__:"


def _split(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(obj, torch.Tensor):
        name = prefix or "t"
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return _REF + name
    if isinstance(obj, dict):
        return {"__dict__": [[_split(k, tensors, f"{prefix}.k{i}"), _split(v, tensors, f"{prefix}.{i}")]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_split(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, str) and obj.startswith(_REF):
        return tensors[obj[len(_REF):]]
    if isinstance(obj, dict):
        if "__dict__" in obj:
            return {_join(k, tensors): _join(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_join(v, tensors) for v in obj["__tuple__"])
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_state(directory: str | Path, state: dict[str, Any]) -> None:
    """Write ``train_state.safetensors`` + ``train_state.json`` (nested dicts/lists/tensors/scalars)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, tensors, "s")
    directory = Path(directory)
    with atomic_path(directory / "train_state.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json_atomic(directory / "train_state.json", skeleton)


def load_state(directory: str | Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        tensors = load_file(str(directory / "train_state.safetensors"))
        return _join(read_json(directory / "train_state.json"), tensors)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"Resume state in '{directory}' is missing or corrupt ({exc}); start a new run.") from exc
