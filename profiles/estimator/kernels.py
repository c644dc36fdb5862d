"""The GPU kernels a TensorRT engine runs for a model: layers grouped by what TensorRT fuses.

TensorRT folds BatchNorm into the conv before it and fuses pointwise work (activations, SiLU's
sigmoid·x, residual adds) into the epilogue of the kernel that produced the tensor. What is left
launches its own kernel: convolutions and matrix products (compute classes below), pooling, and
element-wise passes that cannot be fused because they change shape or broadcast (the channel scale
of a squeeze-excitation block, resizes, softmax, layer norms).

Rules (applied in graph order, shapes only, so they work on the PyTorch and the ONNX analysis):
* conv/linear layers start a kernel, classed ``conv`` (k×k, groups 1), ``pointwise`` (1×1),
  ``depthwise`` (one input channel per group), ``grouped`` (other groups > 1) or ``fc``;
* an element-wise layer whose output has the shape of the current kernel's output (after a conv or GEMM:
  its number of elements, a reshape apart) is fused into it (its extra inputs, e.g. a residual, add read
  traffic); otherwise, and always for ``Softmax``, ``LayerNormalization``, ``Resize`` and reductions, it
  is a memory-bound kernel of its own; scalar arithmetic on constants is folded;
* pooling layers are memory-bound kernels; explicit ``Pad`` nodes are folded into the conv after them;
* with ``fused_attention`` (TensorRT 8.6+ on SM 7.5+ in FP16: ``attention_fuses``), each
  MatMul → [scale / mask] → Softmax → MatMul of two activations, with the scalar scales of Q and K before
  it, is one ``fc`` kernel that reads Q, K, V and writes the output (the S×S scores stay on chip), when
  the head sizes meet TensorRT's rule for FP16 (16 ≤ H ≤ 256, H a multiple of 8).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from profiles.counting.analysis import ModelAnalysis

COMPUTE_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "fc")
KERNEL_CLASSES = COMPUTE_CLASSES + ("pool", "memory")
_FOLDED = {"Pad"}  # TensorRT folds explicit padding into the convolution that reads it
JETPACK_FIRST_TENSORRT = {4: (7, 1), 5: (8, 4), 6: (8, 6)}  # the TensorRT each JetPack major starts with
FUSED_ATTENTION_TENSORRT = (8, 6)
_NEVER_FUSED = {"Softmax", "LayerNormalization", "LayerNorm", "GroupNormalization", "GroupNorm", "Resize",
                "Upsample", "ReduceMean", "ReduceMax", "ReduceSum", "InstanceNormalization"}


@dataclass(frozen=True)
class Kernel:
    """One launched kernel: its class, multiply-accumulates and activation/weight elements moved."""

    name: str
    kind: str  # one of KERNEL_CLASSES
    macs: int
    elements: int  # activations read + weights + activations written (elements, not bytes)
    output_shape: tuple[int, ...]


def conv_class(macs: int, output_elems: int, kernel: int, groups: int) -> str:
    """``conv`` / ``pointwise`` / ``depthwise`` / ``grouped`` from a conv layer's counts."""
    if groups > 1:
        per_output = macs // max(output_elems * max(kernel, 1), 1)  # input channels per group
        return "depthwise" if per_output <= 1 else "grouped"
    return "pointwise" if kernel <= 1 else "conv"


def tensorrt_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) from ``8.2.1``, ``7 (JetPack 4.x, …)``, ``10.3 (JetPack 6.2)`` or, with no number first,
    the first TensorRT of a named JetPack (``JetPack 6 (TensorRT 10.x)`` → (8, 6)); None when neither."""
    value = (text or "").strip()
    m = re.match(r"(\d+)(?:\.(\d+))?", value)
    if m:
        return int(m.group(1)), int(m.group(2) or 0)
    jp = re.search(r"JetPack\s*(\d+)", value, re.IGNORECASE)
    return JETPACK_FIRST_TENSORRT.get(int(jp.group(1))) if jp else None


def attention_fuses(compute_capability: float, precision: str, tensorrt: tuple[int, int] | None) -> bool:
    """Whether TensorRT runs softmax attention as one fused kernel: 8.6+ (NVIDIA/TensorRT#2736; Orin's kernels
    since 8.6.2, #3643), SM 7.5+ and FP16 inputs. FP32 is not fused, nor is INT8 from implicit (calibrated)
    quantization (#3243, #4167), which is what a plain ``--int8`` engine uses."""
    return (tensorrt is not None and tensorrt >= FUSED_ATTENTION_TENSORRT and compute_capability >= 7.5
            and precision == "fp16")


def same_tensor(shape: tuple[int, ...], current: Kernel) -> bool:
    """Whether an element-wise op's output is what ``current`` wrote: the same shape, or, after a conv or
    GEMM, the same elements reshaped (timm's ViT exports a Linear as a Gemm on (197, 192) and its residual
    Add on (1, 197, 192); TensorRT fuses the Add into the GEMM's epilogue either way)."""
    if shape == current.output_shape:
        return True
    return (current.kind in COMPUTE_CLASSES and bool(shape) and bool(current.output_shape)
            and math.prod(shape) == math.prod(current.output_shape))


def _head_ok(h: int) -> bool:
    return 16 <= h <= 256 and h % 8 == 0


def _attention_groups(layers) -> dict[int, tuple[int, tuple[int, ...]]]:
    """First MatMul index → (last MatMul index, indices absorbed before it) for every fusable attention."""
    groups: dict[int, tuple[int, tuple[int, ...]]] = {}
    for j, sm in enumerate(layers):
        if sm.op_type != "Softmax" or j + 1 >= len(layers):
            continue
        i = j - 1
        while i >= 0 and layers[i].op_class == "elementwise" and layers[i].output_shape == sm.output_shape:
            i -= 1  # the scale or mask applied to Q·Kᵀ
        first, second = (layers[i] if i >= 0 else None), layers[j + 1]
        if (first is None or second.op_class != "linear" or first.op_class != "linear" or first.params
                or second.params or first.output_shape != sm.output_shape or not first.output_shape):
            continue
        # Q·Kᵀ is (…, S_q, S_kv) with K = the Q/K head size; the output has S_q · H_v per head, whichever way
        # round it is laid out (YOLO11 computes V·Pᵀ)
        head_qk = first.macs // max(first.output_elems, 1)
        head_v = second.output_elems * first.output_shape[-1] // max(first.output_elems, 1)
        if not (_head_ok(head_qk) and _head_ok(head_v)):
            continue
        before = []
        k = i - 1
        while k >= 0 and len(before) < 2 and layers[k].op_class == "elementwise":
            if layers[k].output_elems > 1:  # (scalar arithmetic on constants is folded, passed over)
                if layers[k].input_elems - layers[k].output_elems != 1:
                    break
                before.append(k)  # the scalar scale of Q (and of K)
            k -= 1
        groups[i] = (j + 1, tuple(before) + tuple(range(i + 1, j + 1)))
    return groups


def kernels_of(analysis: ModelAnalysis, fused_attention: bool = False) -> list[Kernel]:
    """The kernels of ``analysis`` after TensorRT-style fusion (see the module docstring)."""
    out: list[Kernel] = []
    current: Kernel | None = None
    layers = analysis.layers
    groups = _attention_groups(layers) if fused_attention else {}
    absorbed = {k for _, inside in groups.values() for k in inside}
    skip_to = -1
    for idx, la in enumerate(layers):
        if idx <= skip_to or idx in absorbed or la.op_type in _FOLDED:
            continue
        if idx in groups:
            last = layers[groups[idx][0]]
            v = last.input_elems - la.output_elems  # the second MatMul reads the scores and V
            current = Kernel(la.name, "fc", la.macs + last.macs, la.input_elems + v + last.output_elems,
                             last.output_shape)
            out.append(current)
            skip_to = groups[idx][0]
            continue
        elems = la.input_elems + la.params + la.output_elems
        if la.op_class in ("conv", "dwconv"):
            kind = conv_class(la.macs, la.output_elems, la.kernel, la.groups)
            current = Kernel(la.name, kind, la.macs, elems, la.output_shape)
            out.append(current)
        elif la.op_class == "linear":
            current = Kernel(la.name, "fc", la.macs, elems, la.output_shape)
            out.append(current)
        elif la.op_class == "pool":
            current = Kernel(la.name, "pool", 0, elems, la.output_shape)
            out.append(current)
        elif la.op_class == "elementwise":
            if la.output_elems <= 1:
                continue  # scalar arithmetic on constants (an attention scale): TensorRT folds it
            if current is not None and la.op_type not in _NEVER_FUSED and same_tensor(la.output_shape, current):
                extra = max(la.input_elems - la.output_elems, 0) + la.params  # a residual or a scale read
                current = Kernel(current.name, current.kind, current.macs, current.elements + extra,
                                 current.output_shape)
                out[-1] = current
            else:
                current = Kernel(la.name, "memory", 0, elems, la.output_shape)
                out.append(current)
    hooked = sum(la.macs for la in analysis.layers)
    if analysis.macs > hooked:  # functional matmuls (attention) the PyTorch hooks saw only as a total
        out.append(Kernel("unattributed matmuls", "fc", analysis.macs - hooked, 0, ()))
    return out


