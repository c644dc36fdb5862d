"""INT8 file details: layers kept float leave no dangling Q/DQ nodes, percentile calibration clips, cached
ranges are reused, which files are scored as written, and a bad --int8-exclude suggests real layers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import compress.hardware as hardware
from compress.errors import UserInputError
from compress.hardware import parse_cpuinfo
from export.int8 import cpu_flavour, match_nodes, quantize_int8, scored_as_written, weighted_nodes
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cpuinfo"


@pytest.fixture(scope="module")
def convnet(tmp_path_factory):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 4, 5)).eval()
    path = tmp_path_factory.mktemp("c") / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 6, 6),), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False, dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}})
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((32, 3, 6, 6)).astype(np.float32)
    calib[0, 0, 0, 0] = 40.0  # one outlier: min-max covers it, a percentile clips it
    return path, calib


def _input_scale(path) -> float:
    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    return float(inits[q.input[1]])


def test_layers_kept_float_leave_no_unread_quantize_nodes(convnet, tmp_path):
    path, calib = convnet
    nodes = weighted_nodes(path)
    quantize_int8(path, tmp_path / "all.onnx", calib, "minmax", cpu_flavour(False))
    quantize_int8(path, tmp_path / "f.onnx", calib, "minmax", cpu_flavour(False), float_nodes=nodes[1:])
    g = onnx.load(str(tmp_path / "f.onnx")).graph
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and all(o in read for n in qdq for o in n.output)  # every Q/DQ node left is read
    assert len(qdq) < sum(n.op_type in ("QuantizeLinear", "DequantizeLinear")
                          for n in onnx.load(str(tmp_path / "all.onnx")).graph.node)
    float_inputs = [i for n in g.node if n.name in nodes[1:] for i in n.input]
    producers = {o: n.op_type for n in g.node for o in n.output}
    assert all(producers.get(i) != "DequantizeLinear" for i in float_inputs)  # they read float tensors


def test_percentile_calibration_clips_the_outlier_that_minmax_covers(convnet, tmp_path):
    path, calib = convnet
    mm = quantize_int8(path, tmp_path / "mm.onnx", calib, "minmax", cpu_flavour(False))
    pc = quantize_int8(path, tmp_path / "pc.onnx", calib, "percentile", cpu_flavour(False))  # default 99.99
    quantize_int8(path, tmp_path / "p90.onnx", calib, "percentile", cpu_flavour(False), percentile=90.0)
    assert (mm.calib_method, pc.calib_method, mm.calib_images) == ("minmax", "percentile", 32)
    s_mm, s_pc, s_90 = (_input_scale(tmp_path / f) for f in ("mm.onnx", "pc.onnx", "p90.onnx"))
    assert s_mm > s_pc > s_90  # uint8 input range: (40 − min) / 255 for min-max, less the more is clipped
    assert s_mm == pytest.approx((40.0 - float(min(calib.min(), 0.0))) / 255, rel=1e-5)


def test_cached_ranges_are_reused_without_images(convnet, tmp_path):
    path, calib = convnet
    cache = tmp_path / "ranges.json"
    first = quantize_int8(path, tmp_path / "a.onnx", calib, "minmax", cpu_flavour(False), calibration_cache=cache)
    again = quantize_int8(path, tmp_path / "b.onnx", None, "minmax", cpu_flavour(False), calibration_cache=cache)
    assert cache.is_file() and (first.calib_images, again.calib_images) == (32, 0)
    assert _input_scale(tmp_path / "a.onnx") == _input_scale(tmp_path / "b.onnx")
    with pytest.raises(UserInputError, match="INT8 calibration needs at least 16 images but got 0"):
        quantize_int8(path, tmp_path / "c.onnx", None, "minmax", cpu_flavour(False))


@pytest.mark.parametrize("cpu,flavour,as_written", [
    ("intel_avx2", "trt", True), ("intel_avx2", "cpu", False), ("amd_zen4", "trt", False), ("amd_zen4", None, False),
])
def test_only_a_trt_file_on_a_saturating_cpu_is_scored_as_written(monkeypatch, cpu, flavour, as_written):
    info = parse_cpuinfo((FIX / f"{cpu}.txt").read_text(), isa="x86_64")
    monkeypatch.setattr(hardware, "cpu_info", lambda path="/proc/cpuinfo": info)
    assert scored_as_written(flavour) is as_written


def test_a_bad_exclude_suggests_the_closest_layers():
    names = ["/conv1/Conv", "/layer1/layer1.0/conv1/Conv", "/layer1/layer1.0/conv2/Conv", "/fc/Gemm"]
    with pytest.raises(UserInputError) as e:
        match_nodes(names, ["/c/Conv"])  # all four are similar: the three closest are named
    assert str(e.value) == ("--int8-exclude '/c/Conv' matches no weighted layer; give a node name or module "
                            "path, e.g. /conv1/Conv, /layer1/layer1.0/conv2/Conv, /layer1/layer1.0/conv1/Conv.")
    with pytest.raises(UserInputError, match=r"give a node name or module path, e\.g\. /fc/Gemm\.$"):
        match_nodes(names, ["fcx"])  # similar to one name, and only at a low cutoff (0.36)
    with pytest.raises(UserInputError, match=r"give a node name or module path\.$"):
        match_nodes(names, ["zzzzzzzz"])


def test_the_layer_list_reads_the_graph_without_its_external_weights(convnet, tmp_path):
    path, _ = convnet
    onnx.save_model(onnx.load(str(path)), str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    (tmp_path / "ext.data").unlink()  # a large model's weights are not needed to name its layers
    assert weighted_nodes(tmp_path / "ext.onnx") == weighted_nodes(path) and len(weighted_nodes(path)) == 3


def test_a_file_scored_as_written_runs_unfused_and_others_fused(convnet, monkeypatch):
    import runtime.onnxrt as onnxrt
    from export.sensitivity import top1

    seen, real = [], onnxrt.OnnxrtRunner

    def runner(model, providers=None, threads=None, fuse=True):
        seen.append(fuse)
        return real(model, providers, threads, fuse=fuse)

    monkeypatch.setattr(onnxrt, "OnnxrtRunner", runner)
    path, calib = convnet
    x = calib[:6]
    np.testing.assert_array_equal(top1(path, x, 4, True, 1), top1(path, x, 4, True, 1, as_written=True))
    assert seen == [True, False]


def test_a_float_layer_after_a_folded_relu_still_reads_the_relu_output(convnet, tmp_path):
    """The CPU flavour folds each ReLU into the next quantiser's range and names the pre-ReLU tensor after
    it: a layer kept in float must get the ReLU back, or it reads negatives the FP32 model never sees."""
    import onnxruntime as ort

    path, calib = convnet
    conv2 = weighted_nodes(path)[1]
    quantize_int8(path, tmp_path / "q.onnx", calib, "minmax", cpu_flavour(False), float_nodes=[conv2])
    g = onnx.load(str(tmp_path / "q.onnx")).graph
    producer = {o: n for n in g.node for o in n.output}
    node = next(n for n in g.node if n.name == conv2)
    assert producer[node.input[0]].op_type == "Relu" and producer[node.input[0]].name.endswith("_for_float")
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")))
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": calib})[0]  # noqa: E731
    ref, out = run(path), run(tmp_path / "q.onnx")
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()
