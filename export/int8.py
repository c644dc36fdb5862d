"""INT8 as Q/DQ ONNX, one flavour per target, calibrated on real images with ONNX Runtime's quantiser.

* ``cpu`` — ONNX Runtime on x86/ARM: ``quant_pre_process`` first, uint8 asymmetric activations (so a
  ReLU is absorbed into the zero point), int8 symmetric per-channel weights, ``reduce_range``
  (7-bit weights) on x86 CPUs without VNNI/AMX, where the u8×s8 instructions saturate int16.
* ``trt`` — TensorRT explicit quantisation: int8 symmetric everywhere (zero point 0), per-tensor
  activations, per-channel weights (Conv/Gemm axis 0), Q/DQ on the inputs of weighted layers and on
  both inputs of residual adds, none on layer outputs, activations kept explicit so TensorRT fuses
  them (NVIDIA's Q/DQ placement recommendations; nvidia-modelopt's ONNX quantiser does the same
  placement on top of the same ONNX Runtime calibrators, so it is not needed as a dependency).

Calibration ranges are computed once per model and cached (``calibration.json``), so the layer
sweeps of the sensitivity fallback re-quantise without re-calibrating, and quantisation-aware
training exports with exactly the ranges it trained with.
"""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from compress.errors import ExportError, UserInputError, require
from compress.registry import Registry

MIN_CALIB_IMAGES = 16
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
DROPPABLE_ACTIVATIONS = ("Relu", "Clip")  # ONNX Runtime folds these into the next quantiser's range


@dataclass(frozen=True)
class Int8Flavour:
    """How one target wants its Q/DQ graph."""

    name: str
    activation_symmetric: bool
    reduce_range: bool
    pre_process: bool
    op_types: tuple[str, ...] | None  # None: every op ONNX Runtime can quantise
    no_output_quantization: tuple[str, ...] = ()
    keep_activations: bool = False
    per_channel: bool = True

    def describe(self) -> str:
        act = "int8 symmetric" if self.activation_symmetric else "uint8 asymmetric"
        return (f"{self.name}: activations {act} per tensor, weights int8 symmetric "
                f"{'per channel' if self.per_channel else 'per tensor'}"
                f"{', 7-bit (reduce_range)' if self.reduce_range else ''}")


INT8_FLAVOURS: Registry = Registry("INT8 flavour")


def reduce_range_choice(text: str) -> bool | None:
    """``--int8-reduce-range auto|on|off`` → None (decide from this CPU), True or False; anything else is one line."""
    choices = {"auto": None, "on": True, "off": False}
    if text not in choices:
        raise UserInputError(f"--int8-reduce-range must be auto, on or off, got '{text}'.")
    return choices[text]


def cpu_flavour(reduce_range: bool | None = None) -> Int8Flavour:
    """The ONNX Runtime CPU flavour; ``reduce_range`` None decides from this machine's CPU features."""
    if reduce_range is None:
        from compress.hardware import cpu_info

        cpu = cpu_info()
        reduce_range = cpu.int8_saturates
    return Int8Flavour("cpu", activation_symmetric=False, reduce_range=reduce_range, pre_process=True, op_types=None)


def trt_flavour(reduce_range: bool | None = None) -> Int8Flavour:
    return Int8Flavour("trt", activation_symmetric=True, reduce_range=False, pre_process=False,
                       op_types=(*WEIGHTED_OPS, "Add"), no_output_quantization=(*WEIGHTED_OPS, "Add"),
                       keep_activations=True)


INT8_FLAVOURS.add("cpu", cpu_flavour)
INT8_FLAVOURS.add("trt", trt_flavour)

CALIB_METHODS: Registry[str] = Registry("calibration method")
CALIB_METHODS.add("minmax", "MinMax")
CALIB_METHODS.add("entropy", "Entropy")
CALIB_METHODS.add("percentile", "Percentile")


class ArrayCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader`` over an array of images, ``batch`` at a time."""

    def __init__(self, images: np.ndarray, input_name: str = "input", batch: int = 1) -> None:
        self.images, self.input_name, self.batch = images, input_name, batch
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.images):
            return None
        chunk = self.images[self._i:self._i + self.batch]
        self._i += self.batch
        if len(chunk) < self.batch:  # a static-batch graph needs full batches
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - len(chunk), axis=0)])
        return {self.input_name: chunk}

    def rewind(self) -> None:
        self._i = 0


@dataclass
class QuantizeInfo:
    """What INT8 quantisation did."""

    path: Path
    flavour: str
    calib_method: str
    calib_images: int
    per_channel: bool
    reduce_range: bool
    num_quantize_nodes: int
    num_dequantize_nodes: int
    float_nodes: list[str] = field(default_factory=list)  # weighted layers kept in float


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's quantiser logs advice on the root logger, prints calibration progress, and its own
    sessions warn about every unused initializer (C++ logger): errors only while it runs."""
    import onnxruntime as ort

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)  # ORT's default (warning); it has no getter to read the level before


def pre_process(fp32_path: str | Path, out_path: str | Path) -> Path:
    """``quant_pre_process`` (shape inference + ORT graph optimisations), as ONNX Runtime recommends for CPU."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)
    return Path(out_path)


def weighted_nodes(model_path: str | Path) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes, in graph order (the layers a fallback may keep in float)."""
    import onnx

    return [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if n.op_type in WEIGHTED_OPS]


def module_path(node_name: str) -> str:
    """The PyTorch module path of a node the TorchScript exporter named (``/layer1/layer1.0/conv1/Conv`` →
    ``layer1.0.conv1``: each scope is either the full path or the child's own name)."""
    path = ""
    for part in node_name.strip("/").split("/")[:-1]:
        path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
    return path


def match_nodes(names: Sequence[str], patterns: Iterable[str]) -> list[str]:
    """Node names matching each pattern: an exact node name or a module path (``layer1.0.conv1``)."""
    out: list[str] = []
    for pat in patterns:
        hits = [n for n in names if n == pat or module_path(n) == pat]
        if not hits:
            import difflib

            close = difflib.get_close_matches(pat, names, n=3, cutoff=0.3)
            raise UserInputError(f"--int8-exclude '{pat}' matches no weighted layer; give a node name or module "
                                 f"path{', e.g. ' + ', '.join(close) if close else ''}.")
        out += [h for h in hits if h not in out]
    return out


def keep_float_inputs(path: str | Path, nodes: Sequence[str], reference: str | Path | None = None) -> None:
    """Make ``nodes`` compute in float: each input that arrives through a QuantizeLinear→DequantizeLinear
    pair is rewired to the float tensor before the pair (ONNX Runtime quantises a tensor for all its
    consumers when its producer is quantised, even for consumers excluded from quantisation).

    With ``reference`` (the FP32 graph that was quantised) the input is the reference's own tensor: where
    ONNX Runtime dropped a ReLU/Clip into the quantiser's range (the CPU flavour), the tensor before the pair
    is the pre-activation one, so the dropped activation is put back for the float consumer."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    ref_nodes: dict[str, Any] = {}
    ref_graph, ref_producer = None, {}
    if reference is not None:
        ref_graph = onnx.load(str(reference), load_external_data=False).graph
        ref_nodes = {n.name: n for n in ref_graph.node}
        ref_producer = {o: n for n in ref_graph.node for o in n.output}
    wanted = set(nodes)
    restored: dict[str, Any] = {}
    for node in g.node:
        if node.name not in wanted:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear":
                continue
            src = node.input[i] = q.input[0]
            ref = ref_nodes.get(node.name)
            act = ref_producer.get(ref.input[i]) if ref is not None else None
            here = producer.get(src)
            if act is not None and act.op_type in DROPPABLE_ACTIVATIONS and (here is None or here.op_type != act.op_type):
                out = f"{src}_{act.op_type.lower()}_for_float"
                if out not in restored:
                    restored[out] = _copy_node(act, [src, *act.input[1:]], out, ref_graph, g)
                node.input[i] = out
    g.node.extend(restored.values())
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    changed = True
    while changed:  # drop Q/DQ nodes nobody reads any more
        changed = False
        for n in list(g.node):
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output):
                g.node.remove(n)
                changed = True
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    if restored:
        _topological_sort(g)
    onnx.save(model, str(path))


def _copy_node(node: Any, inputs: list[str], output: str, ref_graph: Any, g: Any) -> Any:
    """A copy of the reference's ``node`` reading ``inputs`` into ``output``, with the constants it needs."""
    import onnx

    new = onnx.NodeProto()
    new.CopyFrom(node)
    new.name = f"{node.name}_for_float"
    del new.input[:], new.output[:]
    new.input.extend(inputs)
    new.output.append(output)
    have = {t.name for t in g.initializer}
    g.initializer.extend(t for t in ref_graph.initializer if t.name in inputs[1:] and t.name not in have)
    return new


def _topological_sort(g) -> None:
    """Reorder ``g.node`` so every node follows the producers of its inputs (ONNX requires it)."""
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ExportError("the INT8 graph has a missing input after keeping layers in float.")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calib_images: np.ndarray | None,
                  method: str = "entropy", flavour: Int8Flavour | None = None, batch: int = 1,
                  input_name: str = "input", min_images: int = MIN_CALIB_IMAGES, percentile: float = 99.99,
                  float_nodes: Sequence[str] = (), calibration_cache: str | Path | None = None) -> QuantizeInfo:
    """Static INT8 Q/DQ quantisation of ``fp32_path`` for ``flavour`` (default: the CPU one).

    ``calib_images`` ``[N, ...]`` may be None when ``calibration_cache`` already holds the ranges.
    ``float_nodes`` are weighted layers left unquantised (the sensitivity fallback's choice).
    """
    ort_q = require("onnxruntime.quantization", "INT8 quantisation", "pip install onnxruntime")
    import onnx

    flavour = flavour or cpu_flavour()
    cached = calibration_cache is not None and Path(calibration_cache).is_file()
    if not cached and (calib_images is None or len(calib_images) < min_images):
        raise UserInputError(f"INT8 calibration needs at least {min_images} images but got "
                             f"{0 if calib_images is None else len(calib_images)}; raise --calib-images or use a data "
                             "split with more training images.")
    ort_method = getattr(ort_q.CalibrationMethod, CALIB_METHODS.get(method))
    # ONNX Runtime's weight-scale adjustment for int32 biases stays on: a channel whose folded weights
    # are ~0 (BatchNorm gamma ~0) but whose bias is not would otherwise saturate its int32 bias and lose
    # it (EfficientNet-Lite0's stem); compress.models.qdq reproduces the adjusted scales
    extra: dict[str, Any] = {"ActivationSymmetric": flavour.activation_symmetric, "WeightSymmetric": True,
                             "QDQKeepRemovableActivations": flavour.keep_activations}
    if flavour.no_output_quantization:
        extra["OpTypesToExcludeOutputQuantization"] = list(flavour.no_output_quantization)
    if ort_method == ort_q.CalibrationMethod.Percentile:
        extra["CalibPercentile"] = percentile
    act = ort_q.QuantType.QInt8 if flavour.activation_symmetric else ort_q.QuantType.QUInt8
    out_path = Path(out_path)
    reader = None
    if calib_images is not None:
        reader = type("_Reader", (ArrayCalibrationReader, ort_q.CalibrationDataReader), {})(calib_images, input_name, batch)
    try:
        with _quiet():
            ort_q.quantize_static(str(fp32_path), str(out_path), calibration_data_reader=reader,
                                  quant_format=ort_q.QuantFormat.QDQ, per_channel=flavour.per_channel,
                                  reduce_range=flavour.reduce_range, activation_type=act,
                                  weight_type=ort_q.QuantType.QInt8, calibrate_method=ort_method,
                                  op_types_to_quantize=list(flavour.op_types) if flavour.op_types else None,
                                  nodes_to_exclude=list(float_nodes), extra_options=extra,
                                  calibration_cache_path=str(calibration_cache) if calibration_cache else None)
    except Exception as exc:
        raise ExportError(f"INT8 quantisation failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc
    if float_nodes:
        keep_float_inputs(out_path, float_nodes, fp32_path)
    ops = [n.op_type for n in onnx.load(str(out_path), load_external_data=False).graph.node]
    return QuantizeInfo(path=out_path, flavour=flavour.name, calib_method=method,
                        calib_images=0 if calib_images is None else len(calib_images), per_channel=flavour.per_channel,
                        reduce_range=flavour.reduce_range, num_quantize_nodes=ops.count("QuantizeLinear"),
                        num_dequantize_nodes=ops.count("DequantizeLinear"), float_nodes=list(float_nodes))


def scored_as_written(flavour: str | None) -> bool:
    """Whether an INT8 file of ``flavour`` is scored as written (Q/DQ around float ops, ONNX Runtime's
    fusions off) rather than through ONNX Runtime's fused integer kernels on this CPU: a TensorRT-flavour
    file (8-bit weights, exact int32 sums on the target) on a CPU whose kernels saturate
    (``CpuInfo.int8_saturates``), where the fused result would be this CPU's, not TensorRT's. Latency is
    always measured fused."""
    from compress.hardware import cpu_info

    return flavour == "trt" and cpu_info().int8_saturates


def runs_as_written(path: str | Path) -> bool:
    """:func:`scored_as_written` for an exported file (its flavour read from its metadata)."""
    from export.onnx import read_metadata

    return scored_as_written(read_metadata(path).get("int8_flavour"))
