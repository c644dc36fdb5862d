"""Profile targets pick up the accuracy their export folder measured for them."""
import json

import onnx
from onnx import TensorProto, helper

from profiles.models import resolve_profiled_model as resolve_model


def _onnx(path, precision=None):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 32, 32])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["input"], ["out"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    if precision:
        helper.set_model_props(model, {"precision": precision})
    onnx.save(model, str(path))
    return path


PARITY = {"num_samples": 200, "sample_source": "test split of AID (200 images)", "rows": [
    {"name": "pytorch", "precision": "fp32", "accuracy": 90.0},
    {"name": "onnxrt-cpu-fp32", "precision": "fp32", "accuracy": 90.0},
    {"name": "onnxrt-cpu-int8", "precision": "int8", "accuracy": 88.5},
    {"name": "tensorrt-int8", "precision": "int8", "accuracy": 88.0},
]}


def test_onnx_and_engine_accuracy_from_parity_report(tmp_path):
    (tmp_path / "parity.json").write_text(json.dumps(PARITY))
    fp32 = resolve_model(str(_onnx(tmp_path / "model.onnx", "fp32")))
    int8 = resolve_model(str(_onnx(tmp_path / "model_int8.onnx", "int8")))
    assert (fp32.accuracy, int8.accuracy) == (0.90, 0.885)
    assert "onnxrt-cpu-int8 on 200 samples" in int8.accuracy_source
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"PLAN")
    (tmp_path / "model.engine.json").write_text(json.dumps({"precision": "int8", "input_shape": [1, 3, 32, 32]}))
    t = resolve_model(str(engine))
    assert t.accuracy == 0.88 and "tensorrt-int8" in t.accuracy_source


def test_no_report_or_no_matching_row_means_no_accuracy(tmp_path):
    assert resolve_model(str(_onnx(tmp_path / "a.onnx"))).accuracy is None  # untagged = fp32, no report
    (tmp_path / "parity.json").write_text(json.dumps({"rows": [PARITY["rows"][1]]}))
    assert resolve_model(str(_onnx(tmp_path / "b.onnx", "fp16"))).accuracy is None
    (tmp_path / "parity.json").write_text("{not json")
    assert resolve_model(str(_onnx(tmp_path / "c.onnx"))).accuracy is None


def test_int8_files_get_their_own_row_and_precision(tmp_path):
    rows = [{"name": "pytorch", "precision": "fp32", "accuracy": 90.0},
            {"name": "onnxrt-cpu-int8", "precision": "int8", "accuracy": 88.5, "file": "model_int8.onnx"},
            {"name": "onnxrt-cpu-int8-trt", "precision": "int8", "accuracy": 87.25, "file": "model_int8_trt.onnx"}]
    (tmp_path / "parity.json").write_text(json.dumps({**PARITY, "rows": rows}))
    cpu = resolve_model(str(_onnx(tmp_path / "model_int8.onnx", "int8")))
    trt = resolve_model(str(_onnx(tmp_path / "model_int8_trt.onnx", "int8")))
    assert (cpu.accuracy, trt.accuracy) == (0.885, 0.8725) and cpu.meta["precision"] == "int8"


def test_a_qdq_graph_without_metadata_is_int8(tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.uint8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    import onnx

    onnx.save(model, str(tmp_path / "q.onnx"))
    assert resolve_model(str(tmp_path / "q.onnx")).meta["precision"] == "int8"
