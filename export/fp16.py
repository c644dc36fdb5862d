"""FP16 ONNX (float32 I/O kept), with the converter of onnxconverter-common as vendored in ONNX Runtime
(``onnxruntime.transformers.float16``), so no extra dependency is needed. INT8 is :mod:`export.int8`.
"""
from __future__ import annotations

from typing import Any, Iterable

from compress.errors import ExportError, require

# Ops kept in float32: the converter's own list (non-numeric / index ops) plus ones whose range
# or accumulation loses accuracy in half precision (exp/log, norms, softmax, large reductions).
FP16_OP_BLOCK_LIST = (
    "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Softmax", "LogSoftmax", "ReduceSum", "ReduceSumSquare",
    "ReduceL2", "ReduceLogSumExp", "LpNormalization", "Range", "CumSum", "TopK", "Resize", "Upsample",
    "NonMaxSuppression", "RoiAlign", "Min", "Max",
)


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
