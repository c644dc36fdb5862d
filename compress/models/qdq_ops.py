"""The float ONNX operators the Q/DQ interpreter (:mod:`compress.models.qdq`) runs, as PyTorch functions
``op(attributes, *inputs)``, covering what the zoo's ResNets, MobileNets and EfficientNets export to."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F


def attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(at: dict, dims: int) -> tuple[list[int], bool]:
    """ONNX pads [x1_begin, x2_begin, …, x1_end, …] → F.pad order, and whether they are symmetric."""
    pads = list(at.get("pads", [0] * (2 * dims)))
    begin, end = pads[:dims], pads[dims:]
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise NotImplementedError("auto_pad SAME_* is not supported; export with explicit pads")
    return [p for b, e in zip(reversed(begin), reversed(end)) for p in (b, e)], begin == end


def conv(at: dict, x, w, b=None):
    dims = w.dim() - 2
    pads, sym = _pads(at, dims)
    if not sym:
        x, pad = F.pad(x, pads), 0
    else:
        pad = pads[::2][::-1]
    fn = F.conv2d if dims == 2 else F.conv1d
    return fn(x, w, b, stride=at.get("strides", 1), padding=pad, dilation=at.get("dilations", 1),
              groups=at.get("group", 1))


def gemm(at: dict, a, b, c=None):
    a = a.t() if at.get("transA", 0) else a
    b = b.t() if at.get("transB", 0) else b
    out = at.get("alpha", 1.0) * (a @ b)
    return out + at.get("beta", 1.0) * c if c is not None else out


def _pool(at: dict, x, fn):
    k = at["kernel_shape"]
    pads, sym = _pads(at, len(k))
    if not sym:
        x, pad = F.pad(x, pads, value=float("-inf") if fn is F.max_pool2d else 0.0), 0
    else:
        pad = pads[::2][::-1]
    kw = dict(kernel_size=k, stride=at.get("strides", k), padding=pad, ceil_mode=bool(at.get("ceil_mode", 0)))
    if fn is F.avg_pool2d:
        kw["count_include_pad"] = bool(at.get("count_include_pad", 0))
    return fn(x, **kw)


def clip(at: dict, x, lo=None, hi=None):
    lo = at.get("min") if lo is None else lo
    hi = at.get("max") if hi is None else hi
    return torch.clamp(x, min=lo, max=hi)


def reduce_mean(at: dict, x, axes=None):
    axes = at.get("axes") if axes is None else [int(a) for a in axes.tolist()]
    return x.mean(dim=axes, keepdim=bool(at.get("keepdims", 1))) if axes is not None else x.mean()


def reshape(at: dict, x, shape):
    shape = [int(s) for s in shape.tolist()]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


FLOAT_OPS: dict[str, Callable[..., Any]] = {
    "Conv": conv, "Gemm": gemm, "MatMul": lambda at, a, b: a @ b,
    "Add": lambda at, a, b: a + b, "Sub": lambda at, a, b: a - b, "Mul": lambda at, a, b: a * b,
    "Div": lambda at, a, b: a / b, "Relu": lambda at, x: F.relu(x), "Clip": clip, "Sigmoid": lambda at, x: torch.sigmoid(x),
    "HardSigmoid": lambda at, x: torch.clamp(at.get("alpha", 0.2) * x + at.get("beta", 0.5), 0.0, 1.0),
    "HardSwish": lambda at, x: F.hardswish(x), "Tanh": lambda at, x: torch.tanh(x),
    "GlobalAveragePool": lambda at, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "GlobalMaxPool": lambda at, x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True),
    "AveragePool": lambda at, x: _pool(at, x, F.avg_pool2d), "MaxPool": lambda at, x: _pool(at, x, F.max_pool2d),
    "Flatten": lambda at, x: x.flatten(at.get("axis", 1)), "Reshape": reshape, "Identity": lambda at, x: x,
    "Concat": lambda at, *xs: torch.cat(xs, dim=at["axis"]), "ReduceMean": reduce_mean,
    "Softmax": lambda at, x: torch.softmax(x, dim=at.get("axis", -1)),
    "Transpose": lambda at, x: x.permute(*at["perm"]), "Constant": lambda at: constant(at),
    "Squeeze": lambda at, x, axes=None: x.squeeze(*[int(a) for a in (axes.tolist() if axes is not None else at.get("axes", []))]),
    "Unsqueeze": lambda at, x, axes=None: _unsqueeze(x, axes.tolist() if axes is not None else at["axes"]),
}


def constant(at: dict):
    from onnx import numpy_helper

    return torch.from_numpy(numpy_helper.to_array(at["value"]).copy())


def _unsqueeze(x, axes):
    for a in sorted(int(v) for v in axes):
        x = x.unsqueeze(a)
    return x
