"""AdaRound: each INT8 weight rounded up or down as learned on calibration data (Nagel et al., ICML 2020;
issue 33 item 3).

Rounding every weight to its nearest grid point is optimal per weight, not per layer: what matters is the
layer's output. AdaRound learns, per weight, whether to round down or up — ``floor(W/s) + h(V)`` with the
rectified sigmoid ``h`` — minimising the layer's output error on its calibration inputs plus a regulariser
that drives each ``h(V)`` to 0 or 1 (Eq. 21–24 of the paper: β annealed from 20 to 2 after a 20 % warm
start, λ = 0.01, Adam). Inputs are what the layer receives in the INT8 file itself (activations already
quantised by the layers before it), so each layer learns to compensate its inputs' error as well; the
target is the FP32 weights applied to those same inputs. Only the int8 weight tensors change: scales, zero
points and int32 biases stay, so the file stays plain Q/DQ that TensorRT and ONNX Runtime read unchanged.

Conv (any groups, strides, dilations, pads) and Gemm with ``transB=1`` are rounded; their inputs are sampled
as ``patches`` rows (im2col) so a layer costs a few thousand rows per step, not whole feature maps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compress.errors import ExportError
from export.graph_probe import fixed_batch, probe_batches

MAX_STEP_ELEMENTS = 1 << 20  # input values per optimisation step
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (Louizos et al., as in the paper)


@dataclass(frozen=True)
class Layer:
    """One rounded layer: its node, the input it reads, its int8 weight initializer and FP32 weights."""

    node: Any
    input: str
    q_name: str
    scale_name: str
    fp32_weight: np.ndarray


@dataclass(frozen=True)
class AdaRoundResult:
    """Layers rounded, weights flipped away from nearest (share), and the layers' mean output MSE against
    FP32 on the sampled rows, with nearest rounding and with AdaRound."""

    layers: int
    images: int
    flipped: float
    mse_nearest: float
    mse_adaround: float
    per_layer: dict[str, tuple[float, float]] = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{self.layers} layers, {100 * self.flipped:.1f} % of weights rounded away from nearest, output MSE "
                f"{self.mse_nearest:.3g} -> {self.mse_adaround:.3g}")


def rounded_layers(q: Any, fp32: Any) -> list[Layer]:
    """The Conv/Gemm(transB) nodes of Q/DQ model ``q`` whose weight is a dequantised int8 initializer
    (per-channel on axis 0 or per-tensor) with its FP32 original in ``fp32`` (same name without
    ``_quantized``)."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in q.graph.initializer}
    fp_inits = {i.name: i for i in fp32.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    out = []
    for n in q.graph.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == "Gemm" and not (attrs.get("transB") and attrs["transB"].i == 1):
            continue
        if n.op_type not in ("Conv", "Gemm"):
            continue
        dq = producer.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        scale = numpy_helper.to_array(inits[dq.input[1]]) if dq.input[1] in inits else None
        original = fp_inits.get(dq.input[0].removesuffix("_quantized"))
        if (inits[dq.input[0]].data_type != TensorProto.INT8 or scale is None or original is None
                or (scale.size > 1 and axis != 0)):
            continue
        out.append(Layer(n, n.input[0], dq.input[0], dq.input[1], numpy_helper.to_array(original).astype(np.float32)))
    return out


def patches(node: Any, x: np.ndarray, weight_shape: tuple[int, ...]) -> np.ndarray:
    """Input rows of a Conv ``[P, groups, Cin/groups·kh·kw]`` (im2col over every output position) or of a
    Gemm ``[P, 1, K]``."""
    import torch
    import torch.nn.functional as F

    if node.op_type == "Gemm":
        return x.reshape(len(x), 1, -1)
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    k = weight_shape[2:]
    pads = attrs.get("pads") or [0] * (2 * len(k))
    t = F.pad(torch.from_numpy(x), (pads[1], pads[3], pads[0], pads[2]))  # ONNX: [top, left, bottom, right]
    cols = F.unfold(t, k, dilation=attrs.get("dilations") or 1, stride=attrs.get("strides") or 1)  # [B, C·kk, L]
    groups = attrs.get("group", 1) if isinstance(attrs.get("group", 1), int) else 1
    return cols.permute(0, 2, 1).reshape(-1, groups, cols.shape[1] // groups).numpy()


def _h(v):
    import torch

    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def learn_rounding(w: np.ndarray, scale: np.ndarray, rows: np.ndarray, qmax: int, iters: int = 1000,
                   batch: int = 1024, reg: float = 0.01, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """Int8 weights ``[O, ...]`` for FP32 weights ``w`` on grid ``scale`` (per output channel or one value)
    learned on input ``rows`` ``[P, G, K]``; returns them with the output MSE of nearest and of the learned
    rounding on ``rows``."""
    import torch

    g = rows.shape[1]
    s = torch.from_numpy(np.broadcast_to(scale.reshape(-1, *[1] * (w.ndim - 1)), w.shape).copy()).float()
    wt = torch.from_numpy(w).float()
    x = torch.from_numpy(rows).float()
    floor = torch.floor(wt / s)
    rest = wt / s - floor
    p = torch.clamp((rest - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    v = (torch.log(p) - torch.log1p(-p)).requires_grad_(True)  # h(V) = frac(W/s) at the start

    per_group = w.shape[0] // g

    def out(weights, xb):  # [P, G, K] × [G, O/G, K] → [P, O]
        if g == 1:
            return xb[:, 0] @ weights.reshape(w.shape[0], -1).T
        if per_group == 1:  # depthwise: one filter per input channel, no matrix product to do
            return (xb * weights.reshape(g, -1)).sum(-1)
        return torch.einsum("pgk,gok->pgo", xb, weights.reshape(g, per_group, -1)).reshape(len(xb), -1)

    def quantised(hard: bool):
        up = (_h(v) >= 0.5).float() if hard else _h(v)
        return torch.clamp(floor + up, -qmax, qmax) * s

    nearest = torch.clamp(torch.round(wt / s), -qmax, qmax) * s
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([v], lr=1e-2)
    warm = int(0.2 * iters)
    # rows per step: up to ``batch``, fewer for wide grouped layers (a depthwise 5×5 on 480 channels has
    # 12,000 inputs per row but only 25 weights per filter to settle)
    size = int(np.clip(MAX_STEP_ELEMENTS // (rows.shape[1] * rows.shape[2]), 64, batch))
    for i in range(iters):
        xb = x[torch.randint(0, len(x), (min(size, len(x)),), generator=gen)]
        with torch.no_grad():
            target = out(wt, xb)
        loss = (out(quantised(False), xb) - target).pow(2).sum(1).mean()
        if i >= warm:  # β from 20 to 2 over the rest: soft at first, then pushed to 0 or 1
            beta = 2 + 18 * (1 - (i - warm) / max(1, iters - warm))
            loss = loss + reg * (1 - (2 * _h(v) - 1).abs().pow(beta)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        target = out(wt, x)
        q = quantised(True)
        mse_near = float((out(nearest, x) - target).pow(2).mean())
        mse_ada = float((out(q, x) - target).pow(2).mean())
        if mse_ada > mse_near:  # never worse than nearest on its own data
            q = nearest
            mse_ada = mse_near
        return torch.round(q / s).to(torch.int8).numpy(), mse_near, mse_ada


def adaround(fp32_path: str | Path, int8_path: str | Path, images: np.ndarray, input_name: str = "input",
             qmax: int = 127, iters: int = 1000, rows: int = 8192, batch: int = 32, seed: int = 0,
             cache: dict[str, tuple[np.ndarray, float, float]] | None = None) -> AdaRoundResult:
    """Re-round the int8 weights of ``int8_path`` in place, learning on ``images`` ``[N, ...]`` (calibration
    images as the model takes them); ``qmax`` 127 (64 with 7-bit reduce_range). ``cache`` (weight name →
    int8 tensor and its MSE nearest / learned) reuses roundings learned on an earlier trial of the same model,
    and their MSEs, so a replayed file reports what its rounding did."""
    import onnx
    from onnx import numpy_helper

    from compress.io import write_bytes_atomic

    q, fp = onnx.load(str(int8_path)), onnx.load(str(fp32_path))
    layers = rounded_layers(q, fp)
    if not layers:
        raise ExportError(f"{int8_path}: no Conv/Gemm with int8 weights and their FP32 originals; nothing to "
                          "round (was it written by `compress export --int8`?).")
    inits = {i.name: i for i in q.graph.initializer}
    images = np.ascontiguousarray(images, dtype=np.float32)
    todo = [ly for ly in layers if cache is None or ly.q_name not in cache]
    sampled: dict[str, list[np.ndarray]] = {ly.q_name: [] for ly in todo}
    rng = np.random.default_rng(seed)
    step = fixed_batch(q, input_name, batch)
    per_batch = max(1, rows * step // max(1, len(images)))  # rows sampled from each probed batch, ~``rows`` in all
    names = sorted({ly.input for ly in todo})
    for outs in probe_batches(q, names, images, input_name, step):
        for ly in todo:
            p = patches(ly.node, outs[ly.input], ly.fp32_weight.shape)
            sampled[ly.q_name].append(p[rng.choice(len(p), min(per_batch, len(p)), replace=False)])
    per_layer, flips, total = {}, 0, 0
    for ly in layers:
        if cache is not None and ly.q_name in cache:
            new, near, ada = cache[ly.q_name]
        else:
            scale = numpy_helper.to_array(inits[ly.scale_name]).astype(np.float32)
            new, near, ada = learn_rounding(ly.fp32_weight, scale, np.concatenate(sampled.pop(ly.q_name)), qmax,
                                            iters=iters, seed=seed)
            if cache is not None:
                cache[ly.q_name] = (new, near, ada)
        per_layer[ly.q_name] = (near, ada)
        old = numpy_helper.to_array(inits[ly.q_name])
        flips += int((old != new).sum())
        total += old.size
        inits[ly.q_name].CopyFrom(numpy_helper.from_array(new.reshape(old.shape), ly.q_name))
    write_bytes_atomic(Path(int8_path), q.SerializeToString())
    near = float(np.mean([a for a, _ in per_layer.values()])) if per_layer else 0.0
    ada = float(np.mean([b for _, b in per_layer.values()])) if per_layer else 0.0
    return AdaRoundResult(len(layers), len(images), flips / max(1, total), near, ada, per_layer)
