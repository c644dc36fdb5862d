"""A Q/DQ ONNX graph run in PyTorch with fake quantisation, for quantisation-aware training that matches
the exported INT8 file exactly: same graph (BatchNorm already folded by the exporter), same quantised
tensors, activation scales and zero points from the file's calibration, weight scales recomputed from
the current weights the way ONNX Runtime computes them when it quantises (symmetric, per channel,
``max|w| / qmax``, raised where the int32 bias at ``s_input · s_weight`` would overflow, as ONNX
Runtime's weight-scale adjustment does), rounding half to even and saturation to the integer type as
QuantizeLinear does.

The float weights are parameters (initialised from the FP32 graph the Q/DQ file was made from); the
straight-through estimator of ``torch.fake_quantize_*`` passes their gradients.
Registered as the zoo model ``onnx-qdq`` (kwargs ``qdq``: the Q/DQ file, ``fp32``: its float source).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress.errors import UserInputError
from compress.models.factory import register_model
from compress.models.qdq_ops import FLOAT_OPS, attrs

QRANGE = {2: (0, 255), 3: (-128, 127)}  # TensorProto.UINT8, INT8: what QuantizeLinear saturates to
INT32_QRANGE = float(2**31 - 1) - float(-(2**31) + 1)  # what ONNX Runtime fits a quantised bias into
INT32_BIAS_EPS = 1.0001


def _source_name(name: str, floats: dict) -> str | None:
    """The float initializer a quantised one came from; ONNX Runtime gives each layer sharing a bias its
    own copy, named ``<name><k>``, which trains as the one shared float bias it is in the FP32 graph."""
    if name in floats:
        return name
    for cut in range(len(name) - 1, 0, -1):
        if not name[cut:].isdigit():
            break
        if name[:cut] in floats:
            return name[:cut]
    return None


class QDQGraphModule(nn.Module):
    """``forward(x [B, C, H, W]) → logits``, computing the Q/DQ graph with fake quantisation."""

    def __init__(self, qdq: str | Path, fp32: str | Path, reduce_range: bool = False) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        q, f = onnx.load(str(qdq)), onnx.load(str(fp32))
        floats = {i.name: numpy_helper.to_array(i) for i in f.graph.initializer}
        self.consts: dict[str, torch.Tensor] = {}
        self.weight_of: dict[str, str] = {}  # quantised initializer → its float source
        self.keys: dict[str, str] = {}  # float initializer → parameter key
        self.params = nn.ParameterDict()
        float_weights = {i for n in q.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") for i in n.input[1:]}
        for init in q.graph.initializer:
            arr = numpy_helper.to_array(init)
            name = init.name
            src = _source_name(name[: -len("_quantized")], floats) if name.endswith("_quantized") else None
            if src is not None:
                self.weight_of[name] = src
                self._param(src, floats[src])
                self.consts[name] = torch.from_numpy(np.array(arr))  # its dtype tells weight (int8) from bias (int32)
            elif name in float_weights and arr.dtype == np.float32:  # a layer kept in float still trains
                self._param(name, arr)
            else:
                self.consts[name] = torch.from_numpy(np.array(arr))
        self.nodes = [(n.op_type, list(n.input), list(n.output), attrs(n)) for n in q.graph.node]
        self.input_name, self.output_name = q.graph.input[0].name, q.graph.output[0].name
        self.weight_qmax = 64 if reduce_range else 127
        unknown = sorted({op for op, *_ in self.nodes} - set(FLOAT_OPS) - {"QuantizeLinear", "DequantizeLinear"})
        if unknown:
            raise UserInputError(f"quantisation-aware training cannot run op(s) {', '.join(unknown)} of this graph.")

    def _param(self, name: str, value: np.ndarray) -> None:
        if name not in self.keys:
            self.keys[name] = f"w{len(self.keys)}"
            self.params[self.keys[name]] = nn.Parameter(torch.from_numpy(value.astype(np.float32).copy()))

    def float_weights(self) -> dict[str, torch.Tensor]:
        """ONNX initializer name → current float weight (what an export writes back into the FP32 graph)."""
        return {src: self.params[key].detach() for src, key in self.keys.items()}

    def _const(self, name: str, device) -> torch.Tensor:
        t = self.consts[name]
        if t.device != device:
            t = self.consts[name] = t.to(device)
        return t

    def _weight(self, name: str, axis: int | None, bias: str | None, input_scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fake-quantised weight and its scale (symmetric, zero point 0; per channel along ``axis``, else
        per tensor). Where the layer's bias at ``input_scale · scale`` would not fit an int32, the scale is
        raised to ``1.0001 · 2|b| / (2³² − 2) / input_scale`` (ONNX Runtime's ``_adjust_weight_scale_for_int32_bias``)."""
        w = self.params[self.keys[self.weight_of[name]]]
        wd = w.detach()
        if axis is None:
            absmax = wd.abs().amax()
        else:
            dims = [d for d in range(w.dim()) if d != axis]
            absmax = wd.abs().amax(dim=dims) if dims else wd.abs()
        scale = torch.where(absmax > 0, absmax / self.weight_qmax, torch.ones_like(absmax)).to(torch.float32)
        if bias is not None:
            b = self.params[self.keys[self.weight_of[bias]]].detach().double()
            b_max = b.abs() if axis is not None else b.abs().amax()
            smallest = INT32_BIAS_EPS * 2.0 * b_max / INT32_QRANGE
            s_in = input_scale.detach().double()
            candidate = s_in * scale.double()
            scale = torch.where((candidate < smallest) & (candidate > 0), scale.double() * (smallest / candidate),
                                scale.double()).to(torch.float32)
        q = self.weight_qmax
        if axis is None:
            return torch.fake_quantize_per_tensor_affine(w, scale, torch.zeros((), dtype=torch.int32), -q, q), scale
        zp = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zp, axis, -q, q), scale

    def _bias(self, name: str, weight_scale: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
        b = self.params[self.keys[self.weight_of[name]]]
        s = (weight_scale * input_scale).detach()
        q = torch.round(b.detach().double() / s.double()).clamp(-(2**31), 2**31 - 1)  # as ONNX Runtime stores it
        return b + (q * s.double() - b.detach().double()).to(b.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, Any] = {self.input_name: x}
        scales: dict[str, torch.Tensor] = {}
        pending_weight: dict[str, tuple[str, int | None]] = {}  # DQ'd weight → (quantised name, axis)
        pending_bias: dict[str, tuple[str, str]] = {}
        dev = x.device
        for op, ins, outs, at in self.nodes:
            if op == "QuantizeLinear":
                env[outs[0]] = ("q", env[ins[0]], ins[1], ins[2])
            elif op == "DequantizeLinear" and ins[0] in self.weight_of:
                # weight and bias scales depend on the layer's input scale: quantised at the layer
                if self.consts[ins[0]].dtype == torch.int32:
                    pending_bias[outs[0]] = (ins[0], ins[1])
                else:
                    per_channel = self._const(ins[1], dev).dim() > 0
                    pending_weight[outs[0]] = (ins[0], int(at.get("axis", 1)) if per_channel else None)
            elif op == "DequantizeLinear":
                _, value, s_name, z_name = env[ins[0]]
                s, z = self._const(s_name, dev), self._const(z_name, dev)
                lo, hi = QRANGE[3] if z.dtype == torch.int8 else QRANGE[2]
                env[outs[0]] = torch.fake_quantize_per_tensor_affine(value, s.float(), z.to(torch.int32), lo, hi)
                scales[outs[0]] = s.float()
            elif op == "Identity" and ins[0] in pending_bias:  # a shared bias copied to another layer
                pending_bias[outs[0]] = pending_bias[ins[0]]
            elif op == "Identity" and ins[0] in pending_weight:
                pending_weight[outs[0]] = pending_weight[ins[0]]
            else:
                args = []
                w_scale = None
                s_in = scales.get(ins[0], torch.tensor(1.0, device=dev)) if ins else None
                if len(ins) > 1 and ins[1] in pending_weight:  # Conv/Gemm/MatMul weight
                    bias = pending_bias[ins[2]][0] if len(ins) > 2 and ins[2] in pending_bias else None
                    w, w_scale = self._weight(*pending_weight[ins[1]], bias, s_in)
                for i in ins:
                    if i in pending_weight:
                        args.append(w if i == ins[1] else self._weight(*pending_weight[i], None, s_in)[0])
                    elif i in pending_bias:  # Conv/Gemm bias: s_bias = s_input · s_weight
                        qname, _ = pending_bias[i]
                        args.append(self._bias(qname, w_scale, s_in))
                    elif i == "":
                        args.append(None)
                    elif i in env:
                        args.append(env[i])
                    elif i in self.keys:
                        args.append(self.params[self.keys[i]])
                    else:
                        args.append(self._const(i, dev))
                result = FLOAT_OPS[op](at, *args)
                for o, r in zip(outs, result if isinstance(result, tuple) else (result,)):
                    env[o] = r
        return env[self.output_name]


@register_model("onnx-qdq")
def _build(num_classes: int, in_chans: int = 3, qdq: str = "", fp32: str = "", reduce_range: bool = False) -> nn.Module:
    if not qdq or not fp32:
        raise UserInputError("onnx-qdq needs the Q/DQ file and its FP32 source (model kwargs qdq=, fp32=).")
    return QDQGraphModule(qdq, fp32, reduce_range)

