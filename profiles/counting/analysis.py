"""Result types of model analysis: per-layer counts and model totals.

What counts as a MAC (the convention torchvision's and most papers' "FLOPs" tables use):
one multiply-accumulate of a convolution (incl. transposed / grouped / depthwise: ``Cin/groups``
inputs per output), a fully connected layer or a matrix multiplication. Bias additions,
BatchNorm, activations, pooling, residual adds and concatenations are NOT MACs; their elementwise
work is counted separately in ``other_ops`` (one op per output element for activations / adds,
two for BatchNorm (scale+shift), kernel-size ops per output for pooling). ``FLOPs = 2 × MACs``.
So ResNet-18 at 224 px is 1.814 G MACs = 3.628 G FLOPs (torchvision lists 1.81 "GFLOPS": MACs).

Bytes read/written per layer are activations in + weights (read) and activations out (written)
at ``bytes_per_element`` (4 for FP32 analysis); the estimator rescales them per precision.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

#: op classes of a layer (the estimator refines them into kernel classes, profiles.estimator.kernels) (every layer maps to exactly one)
OP_CLASSES = ("conv", "dwconv", "linear", "pool", "elementwise", "reshape")

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class LayerStats:
    """One layer (leaf module or ONNX node). Counts are for the whole batch."""

    name: str
    op_type: str  # e.g. Conv2d / Conv (torch class or ONNX op type)
    op_class: str  # one of OP_CLASSES
    output_shape: tuple[int, ...]
    params: int
    macs: int
    other_ops: int
    input_elems: int  # activation elements read
    output_elems: int  # activation elements written
    bytes_per_element: int = 4
    kernel: int = 1  # spatial kernel elements of a conv (9 for 3x3), 1 otherwise
    groups: int = 1  # conv groups (channels for a depthwise conv)

    @property
    def bytes_read(self) -> int:
        return (self.input_elems + self.params) * self.bytes_per_element

    @property
    def bytes_written(self) -> int:
        return self.output_elems * self.bytes_per_element

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "op_type": self.op_type, "op_class": self.op_class,
            "output_shape": list(self.output_shape), "params": self.params, "macs": self.macs,
            "flops": 2 * self.macs, "other_ops": self.other_ops,
            "bytes_read": self.bytes_read, "bytes_written": self.bytes_written,
            "kernel": self.kernel, "groups": self.groups,
        }


@dataclass(frozen=True)
class ModelAnalysis:
    """Totals and layers of one model at one input shape (``source``: "pytorch" or "onnx")."""

    source: str
    input_shape: tuple[int, ...]  # (N, C, H, W) as analysed
    params: int  # learnable parameters (torch) / weight initializers (ONNX)
    params_deploy: int  # after folding BatchNorm into the preceding conv (what ONNX/TensorRT hold)
    macs: int
    other_ops: int
    peak_activation_bytes: int  # max over layers of (activations in + out): one layer's working set
    layers: tuple[LayerStats, ...] = field(default_factory=tuple)
    file_bytes: int | None = None
    bytes_per_element: int = 4
    notes: tuple[str, ...] = ()

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def batch(self) -> int:
        return int(self.input_shape[0]) if self.input_shape else 1

    def macs_by_class(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.op_class] = out.get(layer.op_class, 0) + layer.macs
        return out

    def with_file_size(self, nbytes: int | None) -> "ModelAnalysis":
        return replace(self, file_bytes=nbytes)

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source, "input_shape": list(self.input_shape),
            "params": self.params, "params_deploy": self.params_deploy,
            "macs": self.macs, "flops": self.flops, "other_ops": self.other_ops,
            "units": "MACs = multiply-accumulates of conv/linear/matmul; FLOPs = 2 x MACs; other_ops = "
                     "elementwise work of BN/activations/pooling/adds (not in MACs)",
            "peak_activation_bytes": self.peak_activation_bytes,
            "file_bytes": self.file_bytes, "bytes_per_element": self.bytes_per_element,
            "num_layers": len(self.layers), "macs_by_class": self.macs_by_class(),
            "notes": list(self.notes),
        }
        if per_layer:
            out["layers"] = [layer.to_dict() for layer in self.layers]
        return out


def numel(shape: tuple[int, ...] | list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def peak_working_set(layers: tuple[LayerStats, ...] | list[LayerStats], bytes_per_element: int) -> int:
    """Largest (activation in + out) of any layer, in bytes: a lower bound on activation memory."""
    return max(((la.input_elems + la.output_elems) * bytes_per_element for la in layers), default=0)
