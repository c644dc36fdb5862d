"""The lower-precision files of an export: ``model_fp16.onnx`` and one INT8 file per flavour
(``model_int8.onnx`` for ONNX Runtime CPU, ``model_int8_trt.onnx`` for TensorRT), each stamped with its
precision, flavour, calibration and the layers left in float."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.int8 import (INT8_FLAVOURS, QuantizeInfo, match_nodes, pre_process, quantize_int8, reduce_range_choice,
                         weighted_nodes)
from export.cle import equalise
from export.int8_fixes import fix_functions, fix_modes, fix_stamps
from export.onnx import set_metadata
from export.sensitivity import CLE, FallbackReport, fallback_to_budget

INT8_FILES = {"cpu": "model_int8.onnx", "trt": "model_int8_trt.onnx"}
INT8_FLAVOUR_CHOICES = ("cpu", "trt", "both")
@dataclass
class Int8Variant:
    """One INT8 file: what quantisation did, and the fallback's steps when the budget was checked."""

    file: str
    flavour: str
    quantize: QuantizeInfo
    fallback: FallbackReport | None = None
    fixes: dict[str, Any] = field(default_factory=dict)  # fix name → what it did (export/int8_fixes.py), applied ones


def int8_flavours(target: str, trt: bool) -> list[str]:
    """``cpu`` by default; ``trt`` with ``--trt``; ``both`` when asked or when a CPU file is wanted beside TRT."""
    if target == "auto":
        return ["cpu", "trt"] if trt else ["cpu"]
    return ["cpu", "trt"] if target == "both" else [target]


def write_fp16(tmp: Path, embed_preprocess: bool) -> str:
    import onnx

    from export.fp16 import convert_fp16, preprocess_node_names

    proto = onnx.load(str(tmp / "model.onnx"))
    keep = preprocess_node_names(proto) if embed_preprocess else []
    half = convert_fp16(proto, keep_io_types=True, node_block_list=keep)
    set_metadata(half, {"precision": "fp16"})
    onnx.save(half, str(tmp / "model_fp16.onnx"))
    return "model_fp16.onnx"


def write_int8(tmp: Path, cfg: Any, ir_version: int, calib_x: np.ndarray, judge_x: np.ndarray | None,
               judge_y: np.ndarray | None = None,
               progress: Callable[[str], None] | None = None) -> list[Int8Variant]:
    """Quantise ``tmp/model.onnx`` for each flavour ``cfg`` asks for; with ``judge_x`` (images for top-1
    agreement) the budget fallback runs, ``judge_y`` (their labels) adding the accuracy drop."""
    import onnx

    batch = 1 if cfg.dynamic_batch else cfg.batch
    reduce = reduce_range_choice(cfg.int8_reduce_range)
    modes = fix_modes(cfg)
    judged = judge_x is not None and cfg.int8_budget is not None
    equalised = None
    if modes[CLE] == "on" or (modes[CLE] == "auto" and judged):
        # exact pairs only: ReLU6 made ReLU changed 35 % of the AID Lite0 student's top-1 (export/cle.py)
        eq = equalise(tmp / "model.onnx", tmp / ".model_cle.onnx")
        equalised = (tmp / ".model_cle.onnx", eq) if eq.pairs else None
    out = []
    for name in int8_flavours(cfg.int8_flavour, cfg.trt):
        flavour = INT8_FLAVOURS.get(name)(reduce)
        src, cle = tmp / "model.onnx", equalised
        if flavour.pre_process:
            src = pre_process(src, tmp / ".model_pre.onnx")
            if cle is not None:
                cle = (pre_process(cle[0], tmp / ".model_cle_pre.onnx"), cle[1])
        exclude = match_nodes(weighted_nodes(src), cfg.int8_exclude)
        dst, cache = tmp / INT8_FILES[name], tmp / f"calibration_{name}.json"
        functions = fix_functions(calib_x, batch, flavour.reduce_range)
        applied: dict[str, Any] = {}
        tried: dict[str, Any] = {}
        if judged:
            info, report = fallback_to_budget(src, dst, flavour, cfg.calib_method, calib_x, cache, judge_x, judge_y,
                                              budget=cfg.int8_budget, batch=batch, dynamic=cfg.dynamic_batch,
                                              exclude=exclude, max_float=cfg.int8_max_float,
                                              fixes=[(n, functions[n]) for n, m in modes.items()
                                                     if m != "off" and n in functions],
                                              forced=[n for n, m in modes.items() if m == "on"], equalised=cle,
                                              progress=progress)
            applied = dict(report.chosen.fixed) if report.chosen else {}
            tried = dict(report.fixes)
        else:
            if cle is not None:  # asked for (on) with no judge: quantised from the equalised source
                src, cache, applied[CLE] = cle[0], tmp / f".calibration_{name}_cle.json", cle[1]
            info, report = quantize_int8(src, dst, calib_x, cfg.calib_method, flavour, batch=batch,
                                         float_nodes=exclude, calibration_cache=cache), None
            for fix in (n for n, m in modes.items() if m == "on" and n in functions):  # asked for, no judge: in order
                if progress:
                    progress(f"{fix} ({name})")
                applied[fix] = functions[fix](dst, src)
        q = onnx.load(str(dst))
        q.ir_version = ir_version  # keep the target's IR version
        set_metadata(q, {"precision": "int8", "int8_flavour": name, "int8_scheme": flavour.describe(),
                         "calibration": f"{cfg.calib_method}:{info.calib_images}",
                         "float_nodes": ",".join(info.float_nodes), **fix_stamps(modes, applied, tried)})
        onnx.save(q, str(dst))
        out.append(Int8Variant(file=INT8_FILES[name], flavour=name, quantize=info, fallback=report, fixes=applied))
    for hidden in [*tmp.glob(".model_pre*"), *tmp.glob(".model_cle*"), *tmp.glob(".calibration_*_cle.json")]:
        hidden.unlink()
    return out
