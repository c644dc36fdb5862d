"""An export's settings from one mapping: a ``--config`` file merged with the flags given, keyed by
:class:`export.chain.ExportConfig`'s field names — the same names the CLI's options fill.

    fp16: true
    int8: true
    int8_flavour: both
    int8_budget: 0.5          # null: quantise every layer, no fallback
    simplify: false
    out: exports/kd           # the output folder, when -o/--out is not given
    parity:                   # the parity check's thresholds (ParityCriteria)
      atol: {fp16: 0.02}      # or one number: fp32's
      rtol: 1.0e-3
      min_top1_agreement: 0.99  # INT8, also on labelled samples
      max_oa_drop: 0.5          # INT8, points

A file may hold these keys at its top level or under ``export:``. Unknown keys are one line naming the valid
ones; values are typed and checked as the flags are.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from compress.config import build_config
from compress.errors import UserInputError
from export.int8_fixes import fix_choice

PARITY_KEYS = ("atol", "rtol", "min_top1_agreement", "max_oa_drop")
RENAMED_KEYS = {"int8_target": "int8_flavour"}  # old key → its name now ("target" is the device profile)
CHOICE_KEYS = ("int8_cle", "int8_adaround", "int8_bias_correction", "int8_reduce_range")  # auto | on | off


def tolerances(value: Any, where: str) -> dict[str, float]:
    """``{"fp16": 0.02}``, one number (fp32's) or ``["1e-4", "fp16=2e-2"]`` (the flags' form) → precision → value."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [("fp32", value)]
    else:
        items = [(p or "fp32", v) for p, _, v in (str(x).rpartition("=") for x in value)]
    out = {}
    for prec, v in items:
        try:
            out[prec] = float(v)
        except (TypeError, ValueError):
            raise UserInputError(f"{where} '{prec}={v}' is not PRECISION=VALUE with a number (e.g. fp16=2e-2).") \
                from None
    return out


def renamed_keys(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``values`` with the export keys of earlier releases under their names now (files written for them keep
    working); the old and the new name of one key together are one line."""
    out = {str(k).replace("-", "_"): v for k, v in values.items()}
    for old, new in RENAMED_KEYS.items():
        if old in out:
            if new in out:
                raise UserInputError(f"{where}: '{old}' is the old name of '{new}'; give '{new}' only.")
            out[new] = out.pop(old)
    return out


def export_settings(values: Mapping[str, Any], where: str = "export settings"):
    """``(out, ExportConfig)`` from ``values``: ExportConfig's fields, ``out`` and a ``parity:`` section; the
    INT8 budget sets the INT8 parity rule (``ParityCriteria.for_int8_budget``) before ``parity:`` overrides it."""
    from export.chain import ExportConfig
    from export.verify import ParityCriteria

    v = renamed_keys(values, where)
    out = v.pop("out", None)
    parity = v.pop("parity", None) or {}
    if "criteria" in v:
        raise UserInputError(f"{where}: give the parity thresholds under 'parity:' ({', '.join(PARITY_KEYS)}).")
    if not isinstance(parity, Mapping):
        raise UserInputError(f"{where}: 'parity' must be a mapping of {', '.join(PARITY_KEYS)}.")
    parity = {str(k).replace("-", "_"): val for k, val in parity.items()}
    unknown = sorted(set(parity) - set(PARITY_KEYS))
    if unknown:
        raise UserInputError(f"Unknown key(s) {', '.join(unknown)} in {where}.parity. Valid keys: "
                             f"{', '.join(PARITY_KEYS)}.")
    if isinstance(v.get("int8_exclude"), str):
        v["int8_exclude"] = [v["int8_exclude"]]
    for key in CHOICE_KEYS:  # YAML reads on/off as true/false; strings are checked by the export itself
        if isinstance(v.get(key), bool):
            v[key] = fix_choice(v[key], f"{where}.{key}")
    cfg = build_config(ExportConfig, v, section=where)
    top1 = parity.get("min_top1_agreement")
    criteria = ParityCriteria().for_int8_budget(cfg.int8_budget).with_overrides(
        tolerances(parity.get("atol"), "--atol/parity.atol"), tolerances(parity.get("rtol"), "--rtol/parity.rtol"),
        int8_min_top1_agreement=None if top1 is None else float(top1),
        int8_agreement_with_labels=True if top1 is not None else None,
        int8_max_accuracy_drop=None if parity.get("max_oa_drop") is None else float(parity["max_oa_drop"]))
    return (None if out is None else str(out)), replace(cfg, criteria=criteria)
