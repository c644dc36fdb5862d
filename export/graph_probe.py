"""Intermediate tensors of an ONNX file, run as written (ONNX Runtime's fusions off, so a Q/DQ graph computes
exactly what its nodes say), batch by batch over an image array. Used by the INT8 fixes that need a layer's
inputs or outputs on calibration images (bias correction, AdaRound)."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np


def probe_batches(model: Any, names: list[str], images: np.ndarray, input_name: str = "input",
                  batch: int = 32) -> Iterator[dict[str, np.ndarray]]:
    """``{name: tensor}`` for each batch of ``images`` ``[N, ...]``; ``model`` is an ``onnx.ModelProto`` (not
    changed: the tensors are exposed as outputs of a copy)."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in have)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the file as written
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for i in range(0, len(images), batch):
        yield dict(zip(names, sess.run(names, {input_name: images[i:i + batch]})))


def fixed_batch(model: Any, input_name: str, default: int) -> int:
    """The batch a graph with a fixed first input dimension must be fed, else ``default``."""
    dim0 = next((i.type.tensor_type.shape.dim[0] for i in model.graph.input if i.name == input_name), None)
    return dim0.dim_value if dim0 is not None and dim0.dim_value > 0 else default
