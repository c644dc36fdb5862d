"""Empirical bias correction of a Q/DQ INT8 file (Nagel et al., ICCV 2019, §4.2; issue 33 item 2).

Rounding a layer's weights to 8 bits shifts the mean of its output: E[W_q x] ≠ E[W x]. Depthwise layers,
with few weights per channel, shift most — the reason MobileNets and EfficientNets lose accuracy in INT8
where ResNets do not. The empirical correction measures, on calibration images, the per-channel mean of
each Conv/Gemm output in the FP32 model and in the INT8 model, and moves the INT8 layer's bias by the
difference. The bias of an ONNX Runtime Q/DQ file is an int32 tensor dequantized with scale
``s_x·s_w`` (per output channel), so the shift is rounded to that step; the file stays plain Q/DQ that
TensorRT and ONNX Runtime read unchanged (zero points untouched). Upstream corrections change downstream
inputs, so layers are corrected one at a time in graph order, each measured on the inputs its corrected
predecessors produce (one pass over the calibration images per layer).

In the CPU flavour ONNX Runtime drops a ReLU/Clip after a Conv into the next quantiser's range and gives the
Conv the activation's output name, so the INT8 layer's output is the pre-activation tensor while the same name
in the FP32 graph is post-activation: the FP32 reference is then the activation's input
(:func:`fp32_reference`), never the name alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compress.errors import ExportError
from export.graph_probe import fixed_batch, probe_batches


@dataclass(frozen=True)
class BiasCorrection:
    """What the correction did: layers corrected and the mean |shift| of their output means (in output
    units) against FP32 before and after, on the calibration images."""

    layers: int
    passes: int
    images: int
    shift_before: float
    shift_after: float
    per_layer: dict[str, float] = field(default_factory=dict)  # output → mean |shift| after

    def describe(self) -> str:
        return f"{self.layers} layers, mean shift {self.shift_before:.3g} -> {self.shift_after:.3g}"


def corrected_layers(model: Any) -> dict[str, tuple[str, str]]:
    """Conv/Gemm output name → (int32 bias initializer, its scale initializer) for every layer whose bias is a
    dequantized int32 tensor."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for n in model.graph.node:
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3:
            continue
        dq = producer.get(n.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        if inits[dq.input[0]].data_type == TensorProto.INT32 and dq.input[1] in inits:
            out[n.output[0]] = (dq.input[0], dq.input[1])
    return out


def fp32_references(fp32: Any, names: list[str]) -> dict[str, str]:
    """INT8 Conv/Gemm output name → the FP32 tensor it must match: the same name when a Conv/Gemm produces it
    in ``fp32``; the input of a ReLU/Clip when the name is that activation's output (the quantiser absorbed
    the activation, so the INT8 layer's output is pre-activation); the graph output's name when ONNX Runtime
    renamed a quantised graph output ``<name>_QuantizeLinear_Input``. Layers matching none are left out."""
    producer = {o: n for n in fp32.graph.node for o in n.output}
    out = {}
    for name in names:
        ref = name.removesuffix("_QuantizeLinear_Input") if name not in producer else name
        node = producer.get(ref)
        if node is not None and node.op_type in ("Relu", "Clip"):
            ref = node.input[0]
            node = producer.get(ref)
        if node is not None and node.op_type in ("Conv", "Gemm"):
            out[name] = ref
    return out


def _means(model: Any, names: list[str], images: np.ndarray, input_name: str, batch: int) -> dict[str, np.ndarray]:
    """Per-channel (axis 1) mean of each tensor in ``names`` over ``images``."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for outs in probe_batches(model, names, images, input_name, batch):
        for n, y in outs.items():  # each tensor's own count: [N, C, H, W] and [N, C] differ
            axes = tuple(a for a in range(y.ndim) if a != 1)
            sums[n] = sums.get(n, 0) + y.astype(np.float64).sum(axis=axes)
            counts[n] = counts.get(n, 0) + y.size // y.shape[1]
    return {n: s / counts[n] for n, s in sums.items()}


def correct_biases(fp32_path: str | Path, int8_path: str | Path, images: np.ndarray, input_name: str = "input",
                   passes: int = 1, batch: int = 32) -> BiasCorrection:
    """Correct the INT8 file at ``int8_path`` in place towards ``fp32_path`` on ``images`` ``[N, ...]`` (the
    calibration images, as the model takes them)."""
    import onnx
    from onnx import numpy_helper

    from compress.io import write_bytes_atomic

    q = onnx.load(str(int8_path))
    fp = onnx.load(str(fp32_path))
    layers = corrected_layers(q)
    refs = fp32_references(fp, list(layers))
    names = list(refs)
    if not names:
        raise ExportError(f"{int8_path}: no Conv/Gemm with an int32 bias shared with the FP32 graph; nothing to "
                          "correct (was it written by `compress export --int8`?).")
    images = np.ascontiguousarray(images, dtype=np.float32)
    batch = fixed_batch(fp, input_name, batch)
    fp_means = _means(fp, sorted(set(refs.values())), images, input_name, batch)
    ref = {n: fp_means[refs[n]] for n in names}
    inits = {i.name: i for i in q.graph.initializer}

    def shifts(only: list[str]) -> dict[str, np.ndarray]:
        got = _means(q, only, images, input_name, batch)
        return {n: got[n] - ref[n] for n in only}

    delta = shifts(names)
    before = float(np.mean([np.abs(d).mean() for d in delta.values()]))
    for _ in range(passes):
        for n in names:  # graph order: each layer corrected on inputs its corrected predecessors produce
            b_name, s_name = layers[n]
            d = shifts([n])[n]
            b = numpy_helper.to_array(inits[b_name]).astype(np.int64)
            step = numpy_helper.to_array(inits[s_name]).astype(np.float64)
            new = np.clip(b - np.rint(d / step), np.iinfo(np.int32).min, np.iinfo(np.int32).max)
            inits[b_name].CopyFrom(numpy_helper.from_array(new.astype(np.int32), b_name))
    delta = shifts(names)
    after = {n: float(np.abs(d).mean()) for n, d in delta.items()}
    write_bytes_atomic(Path(int8_path), q.SerializeToString())
    return BiasCorrection(len(names), passes, len(images), before, float(np.mean(list(after.values()))), after)
