"""Lower precision ONNX: FP16 (float32 I/O kept) and explicit INT8 as Q/DQ with real calibration.

FP16 uses the float16 converter of onnxconverter-common as vendored in ONNX Runtime
(``onnxruntime.transformers.float16``), so no extra dependency is needed. INT8 uses
``onnxruntime.quantization.quantize_static`` in QDQ format with symmetric, per-channel weights
and symmetric activations — the form TensorRT consumes as explicit quantisation.
"""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from compress.errors import ExportError, UserInputError, require
from compress.registry import Registry

# Ops kept in float32: the converter's own list (non-numeric / index ops) plus ones whose range
# or accumulation loses accuracy in half precision (exp/log, norms, softmax, large reductions).
FP16_OP_BLOCK_LIST = (
    "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Softmax", "LogSoftmax", "ReduceSum", "ReduceSumSquare",
    "ReduceL2", "ReduceLogSumExp", "LpNormalization", "Range", "CumSum", "TopK", "Resize", "Upsample",
    "NonMaxSuppression", "RoiAlign", "Min", "Max",
)
MIN_CALIB_IMAGES = 16


def convert_fp16(model: Any, keep_io_types: bool = True, op_block_list: Iterable[str] = FP16_OP_BLOCK_LIST,
                 node_block_list: Iterable[str] = ()) -> Any:
    """An FP16 copy of ``model`` (ModelProto); I/O stay float32 unless ``keep_io_types=False``.

    ``node_block_list`` keeps named nodes (e.g. embedded preprocessing) in float32 too.
    """
    require("onnxruntime.transformers.float16", "FP16 conversion", "pip install onnxruntime")
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    try:
        return convert_float_to_float16(model, keep_io_types=keep_io_types,
                                        op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(op_block_list)),
                                        node_block_list=list(node_block_list))
    except Exception as exc:
        raise ExportError(f"FP16 conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc


def preprocess_node_names(model: Any) -> list[str]:
    """Nodes before the first Conv/Gemm/MatMul: the folded preprocessing, kept in float32 for FP16."""
    names = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            break
        names.append(node.name)
    return names


CALIB_METHODS: Registry[str] = Registry("calibration method")
CALIB_METHODS.add("minmax", "MinMax")
CALIB_METHODS.add("entropy", "Entropy")
CALIB_METHODS.add("percentile", "Percentile")


class ArrayCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader`` over an array of images, ``batch`` at a time."""

    def __init__(self, images: np.ndarray, input_name: str = "input", batch: int = 1) -> None:
        self.images, self.input_name, self.batch = images, input_name, batch
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.images):
            return None
        chunk = self.images[self._i:self._i + self.batch]
        self._i += self.batch
        if len(chunk) < self.batch:  # a static-batch graph needs full batches
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - len(chunk), axis=0)])
        return {self.input_name: chunk}

    def rewind(self) -> None:
        self._i = 0


@dataclass
class QuantizeInfo:
    """What INT8 quantisation did."""

    path: Path
    calib_method: str
    calib_images: int
    per_channel: bool
    num_quantize_nodes: int
    num_dequantize_nodes: int


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calib_images: np.ndarray, method: str = "entropy",
                  per_channel: bool = True, batch: int = 1, input_name: str = "input",
                  min_images: int = MIN_CALIB_IMAGES, percentile: float = 99.99) -> QuantizeInfo:
    """Static INT8 QDQ quantisation of ``fp32_path`` calibrated on ``calib_images`` ``[N, ...]``."""
    ort_q = require("onnxruntime.quantization", "INT8 quantisation", "pip install onnxruntime")
    import onnx

    if len(calib_images) < min_images:
        raise UserInputError(f"INT8 calibration needs at least {min_images} images but got {len(calib_images)}; "
                             "raise --calib-images or use a data split with more training images.")
    ort_method = getattr(ort_q.CalibrationMethod, CALIB_METHODS.get(method))
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if ort_method == ort_q.CalibrationMethod.Percentile:
        extra["CalibPercentile"] = percentile
    out_path = Path(out_path)
    reader = type("_Reader", (ArrayCalibrationReader, ort_q.CalibrationDataReader), {})(calib_images, input_name, batch)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs advice on the root logger and prints calibration progress
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ort_q.quantize_static(str(fp32_path), str(out_path), calibration_data_reader=reader,
                                  quant_format=ort_q.QuantFormat.QDQ, per_channel=per_channel,
                                  activation_type=ort_q.QuantType.QInt8, weight_type=ort_q.QuantType.QInt8,
                                  calibrate_method=ort_method, extra_options=extra)
    except Exception as exc:
        raise ExportError(f"INT8 quantisation failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc
    finally:
        root.setLevel(level)
    model = onnx.load(str(out_path))
    ops = [n.op_type for n in model.graph.node]
    return QuantizeInfo(path=out_path, calib_method=method, calib_images=len(calib_images), per_channel=per_channel,
                        num_quantize_nodes=ops.count("QuantizeLinear"),
                        num_dequantize_nodes=ops.count("DequantizeLinear"))
