"""Count params, MACs and activation traffic of an ONNX graph (shape inference + per-op formulas).

Same conventions as ``profiles.counting.torch_count`` (see ``profiles.counting.analysis``), so the two agree on MACs
exactly and on parameters after BatchNorm folding (ONNX exporters fold BN into the conv before it).
QDQ (INT8) graphs are handled: weight shapes come from shape inference, and the int8 weight
initializers behind ``DequantizeLinear`` count as parameters; Q/DQ nodes themselves cost nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.errors import UserInputError, require
from profiles.counting.analysis import LayerStats, ModelAnalysis, numel, peak_working_set

_ELEMENTWISE = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu",
                "Gelu", "Mish", "Softplus", "Softmax", "Erf", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp",
                "Neg", "Abs", "Max", "Min"}
_NORMS = {"BatchNormalization": 2, "InstanceNormalization": 2, "LayerNormalization": 2, "GroupNormalization": 2}
_POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "LpPool"}
_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Sub", "PRelu"} | set(_NORMS)
_FREE = {"QuantizeLinear", "DequantizeLinear", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
         "Concat", "Constant", "Shape", "Gather", "Slice", "Cast", "Dropout", "Split", "Expand", "ConstantOfShape"}


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _fix_inputs(model: Any, input_shape: tuple[int, ...] | None) -> Any:
    """Pin dynamic dims of the first graph input to ``input_shape`` (or batch 1) before inference."""
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    for k, inp in enumerate(graph_inputs):
        dims = inp.type.tensor_type.shape.dim
        for d_i, d in enumerate(dims):
            if k == 0 and input_shape is not None and d_i < len(input_shape):
                if d.HasField("dim_value") and d.dim_value not in (0, input_shape[d_i]):
                    raise UserInputError(
                        f"the ONNX input '{inp.name}' fixes dim {d_i} at {d.dim_value}, not {input_shape[d_i]}; "
                        "drop --input-size/--batch or re-export with dynamic axes.")
                d.dim_value = int(input_shape[d_i])
            elif not d.HasField("dim_value") or d.dim_value <= 0:
                d.dim_value = 1
    return model


def _infer(model: Any) -> tuple[Any, dict[str, tuple[int, ...]]]:
    from onnx import shape_inference

    try:
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise UserInputError(f"ONNX shape inference failed ({str(exc).splitlines()[0]}); run onnxsim first.") from exc
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    for t in model.graph.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)
    return model, shapes


def _static_shapes(model: Any) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """Shape-inferred model and its static shapes; graphs whose convs/matmuls stay unshaped (shape
    arithmetic left in by the exporter) are constant-folded first (onnxsim or onnxslim, when installed)."""
    model, shapes = _infer(model)
    unshaped = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.output[0] not in shapes]
    if not unshaped:
        return model, shapes
    from runtime.onnx_simplify import SimplifyError, simplify_model

    try:
        simplified, tool = simplify_model(model)
    except SimplifyError:  # keep what shape inference gave
        return model, shapes
    return _infer(simplified) if tool else (model, shapes)


def analyze_onnx(path_or_model: str | Path | Any, input_shape: tuple[int, ...] | None = None,
                 bytes_per_element: int = 4) -> ModelAnalysis:
    """Analyse an ONNX file or ``ModelProto``; ``input_shape`` pins dynamic dims of the first input."""
    onnx = require("onnx", "ONNX model analysis")

    file_bytes = None
    if isinstance(path_or_model, (str, Path)):
        path = Path(path_or_model)
        if not path.is_file():
            raise UserInputError(f"ONNX file '{path}' does not exist.")
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf decode errors have many types
            raise UserInputError(f"'{path}' is not a readable ONNX model ({type(exc).__name__}).") from exc
        file_bytes = path.stat().st_size
    else:
        model = path_or_model
        model_copy = onnx.ModelProto()
        model_copy.CopyFrom(model)
        model = model_copy
    model = _fix_inputs(model, input_shape)
    model, shapes = _static_shapes(model)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    int8_types = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}

    def weight_init(name: str) -> str | None:
        """The initializer behind a weight input, looking through DequantizeLinear."""
        if name in inits:
            return name if inits[name].data_type in float_types | int8_types else None
        node = producers.get(name)
        if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in inits:
            return node.input[0]
        return None

    counted: set[str] = set()
    layers: list[LayerStats] = []
    unknown: set[str] = set()
    for idx, node in enumerate(g.node):
        op = node.op_type
        if op in _FREE:
            continue
        out_shape = shapes.get(node.output[0]) if node.output else None
        in_shape = shapes.get(node.input[0]) if node.input else None
        if out_shape is None or in_shape is None:
            unknown.add(op)
            continue
        params = 0
        if op in _WEIGHT_OPS:
            limit = 3 if op == "BatchNormalization" else len(node.input)  # running mean/var are buffers
            for name in node.input[1:limit]:
                init = weight_init(name) if name else None
                if init and init not in counted:
                    counted.add(init)
                    params += numel(inits[init].dims)
        out_n, macs, other, op_class = numel(out_shape), 0, 0, "elementwise"
        kernel, groups = 1, 1
        if op in ("Conv", "ConvTranspose"):
            w = shapes.get(node.input[1])
            if w is None:
                unknown.add(op)
                continue
            groups = int(_attr(node, "group", 1))
            k = kernel = numel(w[2:])
            macs = out_n * w[1] * k if op == "Conv" else numel(in_shape) * w[1] * k
            other = out_n if len(node.input) > 2 and node.input[2] else 0
            op_class = "dwconv" if groups > 1 else "conv"
        elif op in ("Gemm", "MatMul"):
            a = in_shape
            kdim = a[0] if (op == "Gemm" and _attr(node, "transA", 0)) else a[-1]
            macs = out_n * kdim
            other = out_n if op == "Gemm" and len(node.input) > 2 and node.input[2] else 0
            op_class = "linear"
        elif op in _NORMS:
            other = _NORMS[op] * out_n
        elif op in _POOLS:
            if op in ("MaxPool", "AveragePool", "LpPool"):
                window = numel(_attr(node, "kernel_shape", [1]))
            else:
                window = max(numel(in_shape) // max(out_n, 1), 1)
            other, op_class = out_n * window, "pool"
        elif op in _ELEMENTWISE:
            other = out_n
        else:
            unknown.add(op)
            other = out_n
        act_in = sum(numel(shapes.get(n, ())) for n in node.input if n and n not in inits and weight_init(n) is None)
        layers.append(LayerStats(
            name=node.name or f"{op}_{idx}", op_type=op, op_class=op_class, output_shape=out_shape, params=params,
            macs=int(macs), other_ops=int(other), input_elems=int(act_in), output_elems=int(out_n),
            bytes_per_element=bytes_per_element, kernel=int(kernel), groups=int(groups)))
    params_total = sum(numel(inits[n].dims) for n in counted)
    first_in = next((i.name for i in g.input if i.name not in inits), None)
    notes = ["ONNX exporters fold BatchNorm into the conv before it: compare with PyTorch's params_deploy"]
    if unknown:
        notes.append(f"ops counted as elementwise or skipped (no formula/shape): {', '.join(sorted(unknown))}")
    return ModelAnalysis(
        source="onnx", input_shape=shapes.get(first_in, ()) if first_in else (), params=int(params_total),
        params_deploy=int(params_total), macs=sum(la.macs for la in layers), other_ops=sum(la.other_ops for la in layers),
        peak_activation_bytes=peak_working_set(layers, bytes_per_element), layers=tuple(layers), file_bytes=file_bytes,
        bytes_per_element=bytes_per_element, notes=tuple(notes))
