"""The GPU kernels a TensorRT engine runs for a model: layers grouped by what TensorRT fuses.

TensorRT folds BatchNorm into the conv before it and fuses pointwise work (activations, SiLU's
sigmoid·x, residual adds) into the epilogue of the kernel that produced the tensor. What is left
launches its own kernel: convolutions and matrix products (compute classes below), pooling, and
element-wise passes that cannot be fused because they change shape or broadcast (the channel scale
of a squeeze-excitation block, resizes, softmax, layer norms).

Rules (applied in graph order, shapes only, so they work on the PyTorch and the ONNX analysis):
* conv/linear layers start a kernel, classed ``conv`` (k×k, groups 1), ``pointwise`` (1×1),
  ``depthwise`` (one input channel per group), ``grouped`` (other groups > 1) or ``fc``;
* an element-wise layer whose output has the shape of the current kernel's output is fused into it
  (its extra inputs, e.g. a residual, add read traffic); otherwise, and always for ``Softmax``,
  ``LayerNormalization``, ``Resize`` and reductions, it is a memory-bound kernel of its own;
* pooling layers are memory-bound kernels; explicit ``Pad`` nodes are folded into the conv after them.
"""
from __future__ import annotations

from dataclasses import dataclass

from profiles.analysis import ModelAnalysis

COMPUTE_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "fc")
KERNEL_CLASSES = COMPUTE_CLASSES + ("pool", "memory")
_FOLDED = {"Pad"}  # TensorRT folds explicit padding into the convolution that reads it
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


def kernels_of(analysis: ModelAnalysis) -> list[Kernel]:
    """The kernels of ``analysis`` after TensorRT-style fusion (see the module docstring)."""
    out: list[Kernel] = []
    current: Kernel | None = None
    for la in analysis.layers:
        if la.op_type in _FOLDED:
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
            if current is not None and la.op_type not in _NEVER_FUSED and la.output_shape == current.output_shape:
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


def kernel_summary(kernels: list[Kernel]) -> dict[str, dict[str, int]]:
    """Kernels and MACs per class, for reports."""
    summary: dict[str, dict[str, int]] = {}
    for k in kernels:
        row = summary.setdefault(k.kind, {"kernels": 0, "macs": 0})
        row["kernels"] += 1
        row["macs"] += k.macs
    return summary
