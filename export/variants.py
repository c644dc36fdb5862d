"""The lower-precision files of an export: ``model_fp16.onnx`` and one INT8 file per flavour
(``model_int8.onnx`` for ONNX Runtime CPU, ``model_int8_trt.onnx`` for TensorRT), each stamped with its
precision, flavour, calibration and the layers left in float."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from compress.errors import UserInputError
from export.int8 import (INT8_FLAVOURS, QuantizeInfo, match_nodes, pre_process, quantize_int8, reduce_range_choice,
                         weighted_nodes)
from export.onnx import set_metadata
from export.sensitivity import FallbackReport, fallback_to_budget

INT8_FILES = {"cpu": "model_int8.onnx", "trt": "model_int8_trt.onnx"}
INT8_TARGETS = ("cpu", "trt", "both")
BIAS_CORRECTION = "bias correction"
BIAS_CORRECTION_CHOICES = ("auto", "on", "off")


def bias_correction_choice(value: Any) -> str:
    """``--int8-bias-correction``: auto (tried by the INT8 budget, kept when it judges better), on, off; a recipe's
    true/false mean on/off. Anything else is one line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in BIAS_CORRECTION_CHOICES:
        raise UserInputError(f"--int8-bias-correction must be auto, on or off, got '{value}'.")
    return value


def bias_correction_stamp(corrected: Any, tried: Any = None) -> str:
    """The file's ``bias_correction`` metadata: what was applied, or why not."""
    if corrected is not None:
        return f"{corrected.layers} layers, mean shift {corrected.shift_before:.3g} -> {corrected.shift_after:.3g}"
    if tried is not None:
        drop = "" if tried.drop is None else f", OA drop {tried.drop:.2f} pt"
        return f"tried, not kept (judged no better: {tried.disagreement:.2f} % of top-1 changed{drop})"
    return "off"


@dataclass
class Int8Variant:
    """One INT8 file: what quantisation did, and the fallback's steps when the budget was checked."""

    file: str
    flavour: str
    quantize: QuantizeInfo
    fallback: FallbackReport | None = None
    bias_correction: Any = None  # export.bias_correction.BiasCorrection when it was applied


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

    from export.bias_correction import correct_biases

    batch = 1 if cfg.dynamic_batch else cfg.batch
    reduce = reduce_range_choice(cfg.int8_reduce_range)
    mode = bias_correction_choice(getattr(cfg, "int8_bias_correction", "auto"))
    out = []
    for name in int8_flavours(cfg.int8_target, cfg.trt):
        flavour = INT8_FLAVOURS.get(name)(reduce)
        src = tmp / "model.onnx"
        if flavour.pre_process:
            src = pre_process(src, tmp / ".model_pre.onnx")
        exclude = match_nodes(weighted_nodes(src), cfg.int8_exclude)
        dst, cache = tmp / INT8_FILES[name], tmp / f"calibration_{name}.json"
        fix = (BIAS_CORRECTION, lambda path, src=src: correct_biases(src, path, calib_x, batch=batch))
        judged = judge_x is not None and cfg.int8_budget is not None
        corrected, tried = None, None
        if judged:
            info, report = fallback_to_budget(src, dst, flavour, cfg.calib_method, calib_x, cache, judge_x, judge_y,
                                              budget=cfg.int8_budget, batch=batch, dynamic=cfg.dynamic_batch,
                                              exclude=exclude, max_float=cfg.int8_max_float,
                                              fixes=[fix] if mode == "auto" else [], progress=progress)
            corrected = report.chosen.fixed.get(BIAS_CORRECTION) if report.chosen else None
            tried = report.fixes.get(BIAS_CORRECTION)
        else:
            info, report = quantize_int8(src, dst, calib_x, cfg.calib_method, flavour, batch=batch,
                                         float_nodes=exclude, calibration_cache=cache), None
        if mode == "on" and corrected is None:  # asked for: applied whatever the judge said (or with no judge)
            if progress:
                progress(f"{BIAS_CORRECTION} ({name})")
            corrected = fix[1](dst)
        q = onnx.load(str(dst))
        q.ir_version = ir_version  # keep the target's IR version
        set_metadata(q, {"precision": "int8", "int8_flavour": name, "int8_scheme": flavour.describe(),
                         "calibration": f"{cfg.calib_method}:{info.calib_images}",
                         "float_nodes": ",".join(info.float_nodes),
                         "bias_correction": bias_correction_stamp(corrected, tried)})
        onnx.save(q, str(dst))
        out.append(Int8Variant(file=INT8_FILES[name], flavour=name, quantize=info, fallback=report,
                               bias_correction=corrected))
    for hidden in tmp.glob(".model_pre*"):
        hidden.unlink()
    return out
