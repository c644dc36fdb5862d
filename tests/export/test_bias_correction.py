"""Empirical bias correction: the INT8 layer's mean output moves onto the FP32 one on the calibration
images, the file stays plain Q/DQ (TensorRT flavour: zero points 0) and passes ONNX's checker."""
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from compress.errors import ExportError


def _files(tmp_path, flavour="trt"):
    from compress.jobs.device_measure import timing_onnx
    from export.int8 import INT8_FLAVOURS, quantize_int8
    from runtime.onnx_simplify import simplify_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),  # depthwise: few weights
                        nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    for m in net.modules():  # BatchNorm statistics that fold into uneven per-channel scales
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.05, 4.0)
            m.running_mean.uniform_(-1, 1)
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(simplify_model(onnx.load_from_string(timing_onnx(net.eval(), (1, 3, 16, 16))))[0], fp32)
    images = np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32)
    quantize_int8(fp32, int8, images, flavour=INT8_FLAVOURS.get(flavour)(reduce_range=False))
    return fp32, int8, images


@pytest.mark.parametrize("flavour", ["trt", "cpu"], ids=["tensorrt-flavour", "cpu-flavour"])
def test_correction_moves_each_layers_mean_output_onto_fp32_and_keeps_the_file_plain_qdq(tmp_path, flavour):
    from export.bias_correction import _means, correct_biases, corrected_layers, fp32_references

    fp32, int8, images = _files(tmp_path, flavour)
    before = {i.name: numpy_helper.to_array(i).copy() for i in onnx.load(int8).graph.initializer}
    res = correct_biases(fp32, int8, images)
    assert res.layers == 4 and res.images == 16  # three convs and the classifier
    assert res.shift_after < res.shift_before / 5
    q = onnx.load(int8)
    onnx.checker.check_model(q)
    layers = corrected_layers(q)
    after = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    changed = {k for k in after if not np.array_equal(after[k], before[k])}
    assert changed and changed <= {b for b, _ in layers.values()}  # only int32 biases move; weights, scales stay
    zero_points = [after[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    if flavour == "trt":
        assert zero_points and all(not z.any() for z in zero_points)  # TensorRT flavour: symmetric
    refs = fp32_references(onnx.load(fp32), list(layers))
    assert len(refs) == 4
    names = list(refs)
    fp_means = _means(onnx.load(fp32), list(refs.values()), images, "input", 1)
    got = _means(q, names, images, "input", 1)
    for n in names:  # within half a bias step (plus what rounding the next layer's input leaves) of FP32
        step = after[layers[n][1]]
        assert np.all(np.abs(got[n] - fp_means[refs[n]]) <= 0.5 * step + 1e-3), n


@pytest.mark.parametrize("flavour", ["trt", "cpu"], ids=["tensorrt-flavour", "cpu-flavour"])
def test_correction_brings_the_logits_closer_to_fp32(tmp_path, flavour):
    """The CPU flavour renames a Conv's output to the absorbed ReLU's: matched by name alone the correction
    pulled pre-activation means onto post-activation ones and cost AID students 46-70 pt."""
    from export.bias_correction import correct_biases

    fp32, int8, images = _files(tmp_path, flavour)
    import onnxruntime as ort

    def run(path):  # [16, 5] logits, one image at a time (the file's batch is fixed at 1)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"input": images[i:i + 1]})[0] for i in range(len(images))])

    ref = run(fp32)
    err_before = np.abs(run(int8) - ref).mean()
    correct_biases(fp32, int8, images)
    assert np.abs(run(int8) - ref).mean() < err_before


def test_a_file_without_int32_biases_is_one_line(tmp_path):
    from export.bias_correction import correct_biases

    fp32, _, images = _files(tmp_path)
    with pytest.raises(ExportError, match="no Conv/Gemm with an int32 bias"):
        correct_biases(fp32, fp32, images)


def test_export_with_bias_correction_stamps_the_int8_file(tmp_path, one_epoch_run):
    from typer.testing import CliRunner

    from compress.cli import app
    from export.onnx import read_metadata

    runner, ckpt = CliRunner(), one_epoch_run
    out = tmp_path / "e"
    r = runner.invoke(app, ["export", str(ckpt), "-o", str(out), "--int8", "--int8-flavour", "trt", "--no-int8-fallback",
                            "--int8-bias-correction", "on", "--calib-images", "64", "--samples", "64"])
    assert r.exit_code in (0, 1), r.output  # a 1-epoch model may fail INT8 parity; the file is written either way
    meta = read_metadata(out / "model_int8_trt.onnx")
    import re

    m = re.fullmatch(r"(\d+) layers, mean shift (\S+) -> (\S+)", meta["bias_correction"])
    assert m and int(m.group(1)) >= 8 and float(m.group(3)) < float(m.group(2))  # cifar_resnet8: 9 convs + the head
    r = runner.invoke(app, ["export", str(ckpt), "-o", str(tmp_path / "plain"), "--int8", "--int8-flavour", "trt",
                            "--no-int8-fallback", "--calib-images", "64", "--samples", "64"])
    assert read_metadata(tmp_path / "plain" / "model_int8_trt.onnx")["bias_correction"] == "off"


def _budget(tmp_path, fixes, budget, forced=()):
    from export.int8 import trt_flavour
    from export.sensitivity import fallback_to_budget

    tmp_path.mkdir()
    fp32, _, _ = _files(tmp_path)
    images = np.random.default_rng(1).standard_normal((64, 3, 16, 16)).astype(np.float32)
    out = tmp_path / "budget.onnx"
    _, report = fallback_to_budget(fp32, out, trt_flavour(), "minmax", images, tmp_path / "cal.json", images,
                                   budget=budget, batch=1, dynamic=False, fixes=fixes, max_float=0.25,
                                   forced=forced)
    return fp32, out, report


def test_a_fix_that_judges_worse_is_not_kept_and_the_file_is_the_plain_one(tmp_path):
    def breaks(path, source):  # every int32 bias ×50: a "fix" that ruins the layer means
        q = onnx.load(path)
        for i in q.graph.initializer:
            if i.data_type == onnx.TensorProto.INT32:
                i.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(i) * 50, i.name))
        onnx.save(q, path)
        return "broken"

    _, plain, plain_report = _budget(tmp_path / "a", [], budget=100.0)
    _, out, report = _budget(tmp_path / "b", [("breaks", breaks)], budget=100.0)
    assert report.fixes["breaks"].disagreement > report.steps[0].disagreement
    assert report.applied == [] and report.chosen.fixed == {} and len(report.steps) == 1
    assert plain.read_bytes() == out.read_bytes() and not (tmp_path / "b" / "budget.trial.onnx").exists()
    _, _, asked = _budget(tmp_path / "c", [("breaks", breaks)], budget=100.0, forced=["breaks"])
    assert asked.applied == ["breaks"] and asked.chosen.fixed == {"breaks": "broken"}  # asked for (on): kept anyway


def test_a_fix_that_judges_better_is_kept_before_any_layer_goes_float(tmp_path):
    def exact(path, source):  # the FP32 file in place of the INT8 one: no top-1 changes
        path.write_bytes((tmp_path / "c" / "fp32.onnx").read_bytes())
        return "fp32"

    _, _, plain = _budget(tmp_path / "a", [], budget=0.0)
    assert plain.steps[0].disagreement > 0 and plain.steps[-1].float_nodes  # without the fix: layers go float
    fp32, out, report = _budget(tmp_path / "c", [("exact", exact)], budget=0.0)
    assert report.applied == ["exact"] and [s.added for s in report.steps] == [None, "exact"]
    assert report.met and report.chosen.fixed == {"exact": "fp32"} and report.chosen.float_nodes == []
    assert out.read_bytes() == fp32.read_bytes() and report.sensitivity == {}


def test_a_kept_fix_is_applied_to_every_float_layer_trial(tmp_path, monkeypatch):
    import export.sensitivity as sensitivity

    calls = []

    def noop(path, source):
        calls.append(path.name)
        return len(calls)

    monkeypatch.setattr(sensitivity, "better", lambda a, b, budget, images: a.added == "noop" or a.disagreement < b.disagreement)
    _, _, report = _budget(tmp_path / "a", [("noop", noop)], budget=0.0)
    assert report.applied == ["noop"] and len(report.steps) > 2  # plain, the fix, then layers kept float
    assert all(s.fixed.get("noop") for s in report.steps[1:])
    assert report.sensitivity and len(calls) == len(report.steps) - 1  # the sweep itself runs unfixed
