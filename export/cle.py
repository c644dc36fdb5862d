"""Cross-layer equalisation of an FP32 ONNX graph (Nagel et al., ICCV 2019, §4.1; issue 33 item 1).

For two convolutions joined by an activation f, ``y = W2 f(W1 x + b1)``, and a positive per-channel scale
``s`` (one per channel between them): ``W2 f(W1 x + b1) = (W2 S) f(S⁻¹(W1 x + b1))`` whenever
``f(x / s) = f(x) / s`` — true for ReLU and the identity (positively homogeneous), false for ReLU6 (the clip
at 6 moves to 6 s), HardSwish and SiLU. Choosing ``s_i = √(r1_i / r2_i)``, where ``r1_i`` is the largest
|weight| of the first layer's output channel i and ``r2_i`` that of the second layer's input channel i, makes
both ranges ``√(r1_i r2_i)``: the channels of a layer get even weight ranges, which is what per-TENSOR weight
quantisation needs (depthwise layers of MobileNets/EfficientNets spread over orders of magnitude). Pairs along
a chain share layers, so the scales are iterated until they settle.

With ``relu6="relu"`` a Clip(0, 6) between the layers is equalised as a ReLU (AIMET's choice: the clip is
removed), which changes the FP32 function wherever an activation passes 6. Measured on the AID default student
(EfficientNet-Lite0 depth-pruned, ReLU6 throughout; ``python bench/int8_budget.py S --variants auto``, SPR,
2026-12-07): its INT8 file quantised from the ReLU6-made-ReLU graph changed 35.2 % of 1,000 judged top-1
predictions against the true FP32 file (OA −30.8 pt), so the export uses ``relu6="skip"`` (the default):
only exact pairs, the function unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RELU6_CHOICES = ("skip", "relu")


@dataclass(frozen=True)
class Equalisation:
    """Pairs equalised (exact: ReLU/none between; ``relu6_pairs``: a ReLU6 turned ReLU) and the mean over the
    pairs' first layers of the ratio of the largest to the smallest output-channel weight range, before and
    after."""

    pairs: int
    relu6_pairs: int
    iterations: int
    spread_before: float
    spread_after: float

    def describe(self) -> str:
        six = f" ({self.relu6_pairs} through ReLU6 made ReLU)" if self.relu6_pairs else ""
        return (f"{self.pairs} layer pairs{six}, channel range spread {self.spread_before:.3g} -> "
                f"{self.spread_after:.3g}")


def _arrays(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer}


def _constants(model: Any) -> dict[str, np.ndarray]:
    """Initializers and Constant nodes' values (the exporter writes a Clip's bounds as Constant nodes)."""
    from onnx import numpy_helper

    out = _arrays(model)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _clip_bounds(node: Any, arrays: dict[str, np.ndarray]) -> tuple[float | None, float | None]:
    """(min, max) of a Clip, from its attributes (opset < 11) or its constant inputs; None where unset."""
    att = {a.name: a.f for a in node.attribute}
    lo, hi = att.get("min"), att.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = float(arrays[node.input[1]]) if node.input[1] in arrays else np.nan
    if len(node.input) > 2 and node.input[2]:
        hi = float(arrays[node.input[2]]) if node.input[2] in arrays else np.nan
    return lo, hi


def _conv_kind(node: Any, arrays: dict[str, np.ndarray]) -> str | None:
    """'dense' (groups 1), 'depthwise' (one channel per group) or None (other groupings, non-constant weights)."""
    if node.op_type != "Conv" or node.input[1] not in arrays:
        return None
    w = arrays[node.input[1]]
    groups = next((a.i for a in node.attribute if a.name == "group"), 1)
    if groups == 1:
        return "dense"
    return "depthwise" if w.shape[1] == 1 and groups == w.shape[0] else None


def find_pairs(model: Any, relu6: str = "skip") -> list[tuple[Any, Any | None, Any]]:
    """(first Conv, activation or None, second Conv) wherever the first's output reaches only the second,
    through at most one ReLU (or Clip(0, 6) when ``relu6 == 'relu'``), and the channel counts line up."""
    arrays, constants = _arrays(model), _constants(model)
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    shared = {name for name, users in consumers.items() if len({id(u) for u in users}) > 1}

    def only_user(tensor: str) -> Any | None:
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in outputs else None

    pairs = []
    for n in model.graph.node:
        if _conv_kind(n, arrays) is None or n.input[1] in shared:
            continue
        act, nxt = None, only_user(n.output[0])
        if nxt is not None and nxt.op_type in ("Relu", "Clip"):
            if nxt.op_type == "Clip":
                lo, hi = _clip_bounds(nxt, constants)
                if relu6 != "relu" or lo != 0.0 or hi != 6.0:
                    continue
            act, nxt = nxt, only_user(nxt.output[0])
        if nxt is None or _conv_kind(nxt, arrays) is None or nxt.input[0] != (act or n).output[0] \
                or nxt.input[1] in shared:
            continue
        c, w2, kind = arrays[n.input[1]].shape[0], arrays[nxt.input[1]], _conv_kind(nxt, arrays)
        if (kind == "dense" and w2.shape[1] == c) or (kind == "depthwise" and w2.shape[0] == c):
            pairs.append((n, act, nxt))
    return pairs


def _in_ranges(w: np.ndarray, kind: str) -> np.ndarray:
    """Largest |weight| per INPUT channel of a conv: axis 1 of a dense kernel, the channel of a depthwise one."""
    a = np.abs(w)
    if kind == "depthwise":
        return a.reshape(a.shape[0], -1).max(1)
    return a.transpose(1, 0, 2, 3).reshape(w.shape[1], -1).max(1)


def _out_ranges(w: np.ndarray) -> np.ndarray:
    return np.abs(w).reshape(w.shape[0], -1).max(1)


def _spread(ranges: np.ndarray) -> float:
    r = ranges[ranges > 0]
    return float(r.max() / r.min()) if r.size else 1.0


def equalise(src: str | Path, dst: str | Path, relu6: str = "skip", iterations: int = 20,
             tol: float = 1e-4) -> Equalisation:
    """Write ``src`` with every equalisable pair equalised to ``dst`` (node and tensor names kept, so the
    budget's layer names and the FP32 reference still match); what was done comes back."""
    import onnx
    from onnx import numpy_helper

    if relu6 not in RELU6_CHOICES:
        raise ValueError(f"relu6 must be one of {RELU6_CHOICES}, got {relu6!r}")
    model = onnx.load(str(src))
    pairs = find_pairs(model, relu6)
    arrays = _arrays(model)
    firsts = [c1.input[1] for c1, _, _ in pairs]
    before = float(np.mean([_spread(_out_ranges(arrays[w])) for w in firsts])) if pairs else 1.0
    done = 0
    for done in range(1, iterations + 1):
        biggest = 0.0
        for c1, _, c2 in pairs:
            w1, w2, kind = arrays[c1.input[1]], arrays[c2.input[1]], _conv_kind(c2, arrays)  # names may be empty
            r1, r2 = _out_ranges(w1), _in_ranges(w2, kind)
            s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.where(r2 > 0, r2, 1.0)), 1.0).astype(w1.dtype)
            arrays[c1.input[1]] = w1 / s.reshape(-1, 1, 1, 1)
            if len(c1.input) > 2 and c1.input[2] in arrays:
                arrays[c1.input[2]] = arrays[c1.input[2]] / s
            if kind == "depthwise":
                arrays[c2.input[1]] = w2 * s.reshape(-1, 1, 1, 1)
            else:
                arrays[c2.input[1]] = w2 * s.reshape(1, -1, 1, 1)
            biggest = max(biggest, float(np.abs(np.log(s)).max(initial=0.0)))
        if biggest < tol:
            break
    six = 0
    for _, act, _ in pairs:
        if act is not None and act.op_type == "Clip":
            act.op_type = "Relu"
            del act.input[1:]
            del act.attribute[:]
            six += 1
    changed = {n.input[i] for p in pairs for n in (p[0], p[2]) for i in (1, 2) if len(n.input) > i}
    for init in model.graph.initializer:
        if init.name in changed:
            init.CopyFrom(numpy_helper.from_array(arrays[init.name].astype(numpy_helper.to_array(init).dtype),
                                                  init.name))
    onnx.save(model, str(dst))
    after = float(np.mean([_spread(_out_ranges(arrays[w])) for w in firsts])) if pairs else 1.0
    return Equalisation(pairs=len(pairs), relu6_pairs=six, iterations=done if pairs else 0,
                        spread_before=before, spread_after=after)
