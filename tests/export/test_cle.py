"""Cross-layer equalisation: the FP32 function is unchanged (ReLU pairs), each pair's channel ranges are made
equal, ReLU6 pairs are left alone unless asked (and then the only change is the clip), shared tensors and
non-homogeneous activations are never paired, names are kept."""
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from export.cle import _in_ranges, _out_ranges, equalise, find_pairs


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h) + h  # h has two users: equalising a→b would change the skip path


def _fp32(tmp_path, net, size=16):
    from compress.jobs.device_measure import timing_onnx
    from runtime.onnx_simplify import simplify_model

    for m in net.modules():  # folded BatchNorm: channel ranges over two orders of magnitude
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.01, 25.0)
            m.running_mean.uniform_(-1, 1)
    path = tmp_path / "fp32.onnx"
    onnx.save(simplify_model(onnx.load_from_string(timing_onnx(net.eval(), (1, 3, size, size))))[0], path)
    return path


def _chain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
                         nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Hardswish(),
                         nn.Conv2d(16, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))


def _run(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {s.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])


@pytest.fixture
def images():
    return np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)


def test_relu_pairs_are_equalised_exactly_and_their_ranges_made_equal(tmp_path, images):
    src = _fp32(tmp_path, _chain())
    info = equalise(src, tmp_path / "cle.onnx")
    assert (info.pairs, info.relu6_pairs) == (2, 0)  # conv→ReLU→depthwise, 1×1→ReLU→3×3; not ReLU6, not HardSwish
    assert info.spread_after < info.spread_before
    ref, got = _run(src, images), _run(tmp_path / "cle.onnx", images)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    model = onnx.load(str(tmp_path / "cle.onnx"))
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for c1, _, c2 in find_pairs(model):
        kind = "depthwise" if w[c2.input[1]].shape[1] == 1 else "dense"
        np.testing.assert_allclose(_out_ranges(w[c1.input[1]]), _in_ranges(w[c2.input[1]], kind), rtol=1e-3)
    before = onnx.load(str(src))
    assert [(n.name, list(n.output)) for n in model.graph.node] == [(n.name, list(n.output)) for n in before.graph.node]


def test_relu6_pairs_only_when_asked_and_then_the_clip_is_the_only_change(tmp_path, images):
    src = _fp32(tmp_path, _chain())
    info = equalise(src, tmp_path / "cle.onnx", relu6="relu")
    assert (info.pairs, info.relu6_pairs) == (3, 1)
    model = onnx.load(str(tmp_path / "cle.onnx"))
    assert [n.op_type for n in model.graph.node].count("Clip") == 0
    relu_only = onnx.load(str(src))  # the same graph with its ReLU6 made ReLU, not equalised
    for n in relu_only.graph.node:
        if n.op_type == "Clip":
            n.op_type = "Relu"
            del n.input[1:]
    onnx.save(relu_only, tmp_path / "relu.onnx")
    ref, got = _run(tmp_path / "relu.onnx", images), _run(tmp_path / "cle.onnx", images)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_a_tensor_with_two_users_is_not_equalised(tmp_path, images):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 1), _Residual(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    src = _fp32(tmp_path, net)
    pairs = [(a.name, b.name) for a, _, b in find_pairs(onnx.load(str(src)))]
    assert pairs == [("/0/Conv", "/1/a/Conv")]  # linear between them: exact; a→ReLU→b is not (h has two users)
    assert equalise(src, tmp_path / "cle.onnx").pairs == 1
    ref, got = _run(src, images), _run(tmp_path / "cle.onnx", images)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_a_bad_relu6_choice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="relu6 must be one of"):
        equalise(tmp_path / "x.onnx", tmp_path / "y.onnx", relu6="clip")


def _broken(src, dst):
    """``src`` with the classifier's biases shifted far: a different function than the FP32 file."""
    m = onnx.load(str(src))
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    for i in m.graph.initializer:
        if i.name == gemm.input[2]:
            i.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(i) + np.arange(5, dtype=np.float32) * 50, i.name))
    onnx.save(m, str(dst))
    return dst


def _budget(tmp_path, equalised, forced=(), fixes=()):
    from export.int8 import trt_flavour
    from export.sensitivity import fallback_to_budget

    tmp_path.mkdir()
    src = _fp32(tmp_path, _chain())
    x = np.random.default_rng(1).standard_normal((32, 3, 16, 16)).astype(np.float32)
    eq = None if equalised is None else (equalised(src, tmp_path), "what CLE did")
    _, report = fallback_to_budget(src, tmp_path / "q.onnx", trt_flavour(), "minmax", x, tmp_path / "cal.json", x,
                                   budget=100.0, batch=1, dynamic=False, equalised=eq, forced=forced,
                                   fixes=fixes)
    return report


def test_the_budget_keeps_the_equalised_source_only_when_it_judges_better_and_judges_it_against_fp32(tmp_path):
    plain = _budget(tmp_path / "a", None)
    (tmp_path / "a").rename(tmp_path / "p")
    sources = []
    seen = ("seen", lambda path, source: sources.append(Path(source).name))  # a later fix: which source it gets
    worse = _budget(tmp_path / "a", lambda s, d: _broken(s, d / "cle.onnx"), forced=["seen"], fixes=[seen])
    assert worse.fixes["CLE"].disagreement > 50  # judged against the true FP32 file, not the equalised one
    assert sources == ["fp32.onnx"]  # not kept: later files come from the FP32 source
    assert worse.applied == ["seen"] and "CLE" not in worse.chosen.fixed
    assert (tmp_path / "a" / "q.onnx").read_bytes() == (tmp_path / "p" / "q.onnx").read_bytes()
    asked = _budget(tmp_path / "b", lambda s, d: _broken(s, d / "cle.onnx"), forced=["CLE", "seen"], fixes=[seen])
    assert asked.applied == ["CLE", "seen"] and asked.chosen.fixed == {"CLE": "what CLE did", "seen": None}
    assert sources[-1] == "cle.onnx"  # kept (on): later fixes see the equalised source
    assert asked.chosen.disagreement > 50 and plain.chosen.disagreement < 50
    assert not list((tmp_path / "b").glob("*trial*"))


def test_export_with_cle_stamps_the_int8_file_and_leaves_no_hidden_files(tmp_path, one_epoch_run):
    from typer.testing import CliRunner

    from compress.cli import app
    from export.onnx import read_metadata

    runner, ckpt = CliRunner(), one_epoch_run
    for mode, flavour in (("on", "cpu"), ("off", "trt")):
        out = tmp_path / mode
        r = runner.invoke(app, ["export", str(ckpt), "-o", str(out), "--int8", "--int8-flavour", flavour,
                                "--no-int8-fallback", "--int8-cle", mode, "--calib-images", "64", "--samples", "64"])
        assert r.exit_code in (0, 1), r.output  # a 1-epoch model may fail INT8 parity; the file is written either way
        meta = read_metadata(out / ("model_int8.onnx" if flavour == "cpu" else "model_int8_trt.onnx"))
        if mode == "on":  # cifar_resnet8: conv→ReLU→conv inside each of its 3 blocks
            assert meta["cle"].startswith("3 layer pairs, channel range spread"), meta["cle"]
        else:
            assert meta["cle"] == "off"
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    r = runner.invoke(app, ["export", str(ckpt), "-o", str(tmp_path / "bad"), "--int8", "--int8-cle", "sometimes"])
    assert r.exit_code != 0 and "--int8-cle must be auto, on or off" in r.output
