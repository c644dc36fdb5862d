"""Export: ONNX (simplified, verified), FP16 and INT8-QDQ, TensorRT engines / trtexec scripts.

Attributes load on first use so ``import export`` stays cheap (torch/onnx load when needed).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_checkpoint": "export.chain",
    "ExportConfig": "export.chain",
    "ExportResult": "export.chain",
    "export_onnx": "export.onnx",
    "export_module": "export.onnx",
    "OnnxOptions": "export.onnx",
    "read_metadata": "export.onnx",
    "convert_fp16": "export.fp16",
    "quantize_int8": "export.int8",
    "fallback_to_budget": "export.sensitivity",
    "check_parity": "export.verify",
    "compare_arrays": "export.verify",
    "ParityCriteria": "export.verify",
    "ParityReport": "export.verify",
    "TrtBuildConfig": "export.tensorrt",
    "build_engine": "export.tensorrt",
    "trtexec_command": "export.tensorrt",
    "write_build_script": "export.tensorrt",
    "plan_remote_build": "export.remote",
    "run_remote_build": "export.remote",
    "resolve_trt_version": "runtime.trtexec",
    "TrtVersion": "runtime.trtexec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'export' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
