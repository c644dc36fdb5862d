"""Count params, MACs and activation traffic of a PyTorch model with forward hooks.

Hooks sit on every module of a known kind (convs incl. grouped/depthwise/transposed, linear, norms,
activations, pooling), leaf or not (timm's ``BatchNormAct2d`` is a BatchNorm2d with children), and
count that module's own work once. Matmuls, softmaxes and SDPA done functionally (attention) are
recorded as layers by ``FunctionalRecorder``; any other functional MACs are recovered from
``torch.utils.flop_counter`` and added to the total with a note. The model may
live on the ``meta`` device (no weights, no compute), which makes VGG-sized models instant.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from compress.errors import UserInputError
from profiles.counting.analysis import LayerStats, ModelAnalysis, numel, peak_working_set

_ACTS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
         nn.LeakyReLU, nn.PReLU, nn.ELU, nn.Mish, nn.Softmax, nn.Hardtanh)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
          nn.modules.pooling._AdaptiveMaxPoolNd)
_CONVS = (nn.modules.conv._ConvNd,)
COUNTED = _CONVS + (nn.Linear,) + _NORMS + _ACTS + _POOLS
_MATMULS = {torch.matmul, torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.bmm}
_SOFTMAX = {torch.softmax, torch.Tensor.softmax, torch.nn.functional.softmax}
_SDPA = torch.nn.functional.scaled_dot_product_attention


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


class FunctionalRecorder(TorchFunctionMode):
    """Records functional matmuls, softmaxes and SDPA calls as ``LayerStats`` while ``depth()`` is 0.

    Forward hooks only see modules, so ``q @ k.transpose(-2, -1)``, ``attn.softmax(-1)`` or
    ``F.scaled_dot_product_attention(q, k, v)`` inside a transformer block would leave the kernel rules one
    kernel short per op. The recorded layers carry the ONNX analysis's op names (``MatMul`` / ``Softmax``;
    SDPA as MatMul, Softmax, MatMul), so both analyses group into the same TensorRT kernels
    (``profiles.estimator.kernels``). Calls made inside a hooked module (``nn.Softmax``, a norm) are its own."""

    def __init__(self, sink: list[LayerStats], depth: Callable[[], int], bytes_per_element: int = 4) -> None:
        super().__init__()
        self.sink, self.depth, self.bpe, self.recorded = sink, depth, bytes_per_element, 0

    def _add(self, name: str, op: str, cls: str, shape: tuple[int, ...], macs: int, inp: int, params: int = 0) -> None:
        out = math.prod(shape)
        self.recorded += 1
        self.sink.append(LayerStats(
            name=f"functional/{name}_{self.recorded}", op_type=op, op_class=cls, output_shape=shape, params=params,
            macs=macs, other_ops=out if cls == "elementwise" else 0, input_elems=inp, output_elems=out,
            bytes_per_element=self.bpe))

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        lead, sq, e = _shape(q)[:-2], int(q.shape[-2]), int(q.shape[-1])
        skv, ev = int(k.shape[-2]), int(v.shape[-1])
        scores = lead + (sq, skv)
        n = math.prod(lead)
        self._add("attention/MatMul", "MatMul", "linear", scores, n * sq * skv * e, q.numel() + k.numel())
        self._add("attention/Softmax", "Softmax", "elementwise", scores, 0, math.prod(scores))
        self._add("attention/MatMul_1", "MatMul", "linear", lead + (sq, ev), n * sq * skv * ev,
                  math.prod(scores) + v.numel())

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth() > 0 or not isinstance(out, torch.Tensor):
            return out
        if func in _MATMULS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            a, b = args[0], args[1]
            if a.dim() >= 2 and b.dim() >= 2:
                weight = b.numel() if isinstance(b, torch.nn.Parameter) else 0  # x @ W: a layer, not attention
                self._add("MatMul", "MatMul", "linear", _shape(out), out.numel() * int(a.shape[-1]),
                          a.numel() + b.numel() - weight, weight)
        elif func in _SOFTMAX:
            self._add("Softmax", "Softmax", "elementwise", _shape(out), 0, out.numel())
        elif func is _SDPA:
            q, k, v = (list(args[:3]) + [kwargs.get(n) for n in ("query", "key", "value")[len(args):]])[:3]
            if all(isinstance(t, torch.Tensor) for t in (q, k, v)):
                self._sdpa(q, k, v)
        return out


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _pool_window(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Input elements that feed one output element of a pooling layer."""
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        spatial_in = numel(inp.shape[2:])
        spatial_out = max(numel(out.shape[2:]), 1)
        return max(spatial_in // spatial_out, 1)
    k = module.kernel_size
    return numel(k) if isinstance(k, (tuple, list)) else int(k) ** (inp.dim() - 2)


def count_module(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> tuple[str, int, int]:
    """(op_class, MACs, other_ops) of one call, for the whole batch; see ``profiles.counting.analysis``."""
    out_n = out.numel()
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        k = numel(module.kernel_size)
        macs = inp.numel() * (module.out_channels // module.groups) * k
        return ("dwconv" if module.groups > 1 else "conv"), macs, (out_n if module.bias is not None else 0)
    if isinstance(module, _CONVS):
        k = numel(module.kernel_size)
        macs = out_n * (module.in_channels // module.groups) * k
        return ("dwconv" if module.groups > 1 else "conv"), macs, (out_n if module.bias is not None else 0)
    if isinstance(module, nn.Linear):
        return "linear", out_n * module.in_features, (out_n if module.bias is not None else 0)
    if isinstance(module, _NORMS):
        return "elementwise", 0, 2 * out_n
    if isinstance(module, _ACTS):
        return "elementwise", 0, out_n
    if isinstance(module, _POOLS):
        return "pool", 0, out_n * _pool_window(module, inp, out)
    raise TypeError(type(module).__name__)


def analyze_torch(model: nn.Module, input_shape: tuple[int, ...], bytes_per_element: int = 4) -> ModelAnalysis:
    """Analyse ``model`` on one input of ``input_shape`` = (N, C, H, W); restores train/eval mode."""
    if len(input_shape) < 2 or any(int(d) <= 0 for d in input_shape):
        raise UserInputError(f"input shape {tuple(input_shape)} is not valid; pass (batch, channels, height, width).")
    try:
        first = next(model.parameters())
        device, dtype = first.device, (first.dtype if first.is_floating_point() else torch.float32)
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    layers: list[LayerStats] = []
    fold = {"bn_params": 0, "added_bias": 0}
    last_conv: dict[str, Any] = {"out": None, "module": None}
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        ins, outs = _tensors(args), _tensors(output)
        if not ins or not outs:
            return
        op_class, macs, other = count_module(module, ins[0], outs[0])
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and last_conv["out"] is ins[0] and module.affine:
            # TensorRT and both ONNX exporters fold this BN into the conv: 2C params become C bias values
            fold["bn_params"] += 2 * module.num_features
            conv = last_conv["module"]
            if conv.bias is None:
                fold["added_bias"] += conv.out_channels
        if isinstance(module, _CONVS):
            last_conv["out"], last_conv["module"] = outs[0], module
        layers.append(LayerStats(
            name=names.get(module, type(module).__name__), op_type=type(module).__name__, op_class=op_class,
            output_shape=tuple(int(d) for d in outs[0].shape), params=_own_params(module), macs=int(macs),
            other_ops=int(other), input_elems=sum(t.numel() for t in ins), output_elems=sum(t.numel() for t in outs),
            bytes_per_element=bytes_per_element,
            kernel=numel(module.kernel_size) if isinstance(module, _CONVS) else 1,
            groups=int(module.groups) if isinstance(module, _CONVS) else 1))

    inside = [0]  # depth of hooked modules: their own functional calls are theirs, not recorded again

    def enter(module: nn.Module, args: tuple) -> None:
        inside[0] += 1

    def leave(module: nn.Module, args: tuple, output: Any) -> None:
        inside[0] -= 1

    counted = [m for m in model.modules() if isinstance(m, COUNTED)]
    handles = ([m.register_forward_pre_hook(enter) for m in counted] + [m.register_forward_hook(leave) for m in counted]
               + [m.register_forward_hook(hook) for m in counted])
    was_training = model.training
    notes: list[str] = []
    try:
        from torch.utils.flop_counter import FlopCounterMode

        model.eval()
        x = torch.zeros(tuple(int(d) for d in input_shape), device=device, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter, FunctionalRecorder(layers, lambda: inside[0], bytes_per_element):
            model(x)
        aten_macs = counter.get_total_flops() // 2
    except (RuntimeError, ValueError) as exc:
        raise UserInputError(
            f"the model cannot run on input shape {tuple(input_shape)} ({str(exc).splitlines()[0]}); "
            "check --input-size / --in-chans."
        ) from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    hooked = sum(la.macs for la in layers)
    extra = int(aten_macs) - hooked
    if extra > 0.001 * max(hooked, 1):
        notes.append(f"{extra} MACs of functional matmul/conv calls are not attributed to a layer but are in the total")
    else:
        extra = 0
    params = sum(p.numel() for p in model.parameters())
    return ModelAnalysis(
        source="pytorch", input_shape=tuple(int(d) for d in input_shape), params=int(params),
        params_deploy=int(params - fold["bn_params"] + fold["added_bias"]), macs=hooked + extra,
        other_ops=sum(la.other_ops for la in layers),
        peak_activation_bytes=peak_working_set(layers, bytes_per_element), layers=tuple(layers),
        bytes_per_element=bytes_per_element,
        notes=tuple(notes) + ("other_ops miss functional adds/multiplies (residual, SE) that are not modules",),
    )
