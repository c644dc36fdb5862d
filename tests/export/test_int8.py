"""INT8 flavours (graph properties of each) and the sensitivity fallback to an accuracy budget."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from export.int8 import cpu_flavour, match_nodes, pre_process, quantize_int8, trt_flavour, weighted_nodes
from export.sensitivity import fallback_to_budget


def _graph(path):
    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return g, inits, consumers


@pytest.fixture(scope="module")
def resnet_onnx(tmp_path_factory):
    from compress.models import create_model

    torch.manual_seed(0)
    model = create_model("cifar_resnet8", 10, 3).eval()
    path = tmp_path_factory.mktemp("r") / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    calib = np.random.default_rng(0).standard_normal((32, 3, 16, 16)).astype(np.float32)
    return path, calib


def test_cpu_flavour_uint8_activations_relu_absorbed_per_channel_weights(resnet_onnx, tmp_path):
    path, calib = resnet_onnx
    pre = pre_process(path, tmp_path / "p.onnx")
    quantize_int8(pre, tmp_path / "cpu.onnx", calib, "minmax", cpu_flavour(reduce_range=False))
    g, inits, consumers = _graph(tmp_path / "cpu.onnx")
    ops = [n.op_type for n in g.node]
    assert "Relu" not in ops  # absorbed by the uint8 zero point
    act_zp = [inits[n.input[2]] for n in g.node if n.op_type == "QuantizeLinear"]
    assert act_zp and all(z.dtype == np.uint8 for z in act_zp) and any(int(z) != 0 for z in act_zp)
    weights = [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
               and consumers[n.output[0]][0].op_type == "Conv" and inits[n.input[0]].dtype == np.int8]
    assert weights and all(next(a.i for a in n.attribute if a.name == "axis") == 0 for n in weights)
    assert all(not inits[n.input[2]].any() for n in weights)  # symmetric: zero point 0
    assert all(inits[n.input[1]].ndim == 1 and inits[n.input[1]].size > 1 for n in weights)  # per channel


def test_reduce_range_uses_seven_bit_weights(resnet_onnx, tmp_path):
    path, calib = resnet_onnx
    quantize_int8(path, tmp_path / "rr.onnx", calib, "minmax", cpu_flavour(reduce_range=True))
    g, inits, _ = _graph(tmp_path / "rr.onnx")
    w = [inits[n.input[0]] for n in g.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
         and inits[n.input[0]].dtype == np.int8]
    assert max(int(np.abs(a).max()) for a in w) <= 64


def test_trt_flavour_follows_nvidia_placement(resnet_onnx, tmp_path):
    path, calib = resnet_onnx
    quantize_int8(path, tmp_path / "trt.onnx", calib, "minmax", trt_flavour())
    g, inits, consumers = _graph(tmp_path / "trt.onnx")
    producers = {o: n for n in g.node for o in n.output}
    assert "Relu" in [n.op_type for n in g.node]  # kept explicit for TensorRT to fuse
    q = [n for n in g.node if n.op_type == "QuantizeLinear"]
    assert q and all(inits[n.input[2]].dtype == np.int8 and not inits[n.input[2]].any() for n in q)
    assert all(inits[n.input[1]].size == 1 for n in q)  # per-tensor activations
    for n in g.node:
        if n.op_type == "Conv":  # weighted layers read Q/DQ'd activations and weights
            assert producers[n.input[0]].op_type == "DequantizeLinear" and producers[n.input[1]].op_type == "DequantizeLinear"
            # a layer's output is quantised only where a residual add reads it
            for q in (c for c in consumers[n.output[0]] if c.op_type == "QuantizeLinear"):
                assert all(r.op_type == "Add" for dq in consumers[q.output[0]] for r in consumers[dq.output[0]])
        if n.op_type == "Add":  # both inputs of a residual add
            assert all(producers[i].op_type == "DequantizeLinear" for i in n.input)
    outputs = {o.name for o in g.output}
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in outputs for n in g.node)


class TwoPaths(nn.Module):
    """The class is sign(x1 − x2); an outlier channel (×1000) makes per-tensor INT8 of conv1's output erase
    both small channels, so conv2a AND conv2b must read it in float to recover the accuracy."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 1, bias=False)
        self.conv2a = nn.Conv2d(3, 1, 1, bias=False)
        self.conv2b = nn.Conv2d(3, 1, 1, bias=False)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.diag(torch.tensor([1000.0, 0.01, 0.01])).view(3, 3, 1, 1))
            self.conv2a.weight.copy_(torch.tensor([0.0, 100.0, 0.0]).view(1, 3, 1, 1))
            self.conv2b.weight.copy_(torch.tensor([0.0, 0.0, -100.0]).view(1, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x):
        h = self.conv1(x)
        return self.fc((self.conv2a(h) + self.conv2b(h)).mean((2, 3)))


@pytest.fixture(scope="module")
def two_paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("tp")
    rng = np.random.default_rng(0)
    x = np.zeros((200, 3, 4, 4), np.float32)
    x[:, 0] = rng.uniform(-3, 3, (200, 1, 1))
    x[:, 1] = rng.standard_normal((200, 1, 1))
    x[:, 2] = rng.standard_normal((200, 1, 1))
    y = (x[:, 1, 0, 0] < x[:, 2, 0, 0]).astype(np.int64)
    torch.onnx.export(TwoPaths().eval(), (torch.from_numpy(x[:1]),), str(d / "m.onnx"), input_names=["input"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    return d / "m.onnx", x, y


def test_fallback_keeps_the_fewest_layers_float_and_is_deterministic(two_paths, tmp_path):
    path, x, y = two_paths
    runs = [fallback_to_budget(path, tmp_path / f"q{i}.onnx", cpu_flavour(False), "minmax", x[:64],
                               tmp_path / f"c{i}.json", x[64:], y[64:], budget=2.0, batch=1, dynamic=False)
            for i in range(2)]
    (info, rep), (_, again) = runs
    assert rep.reference_accuracy == 100.0 and rep.steps[0].drop > 20  # all-INT8 loses the signal
    conv2 = sorted(match_nodes(weighted_nodes(path), ["conv2a", "conv2b"]))
    assert rep.met and sorted(rep.chosen.float_nodes) == conv2 and rep.chosen.drop <= 2.0
    assert [s.float_nodes for s in rep.steps] == [s.float_nodes for s in again.steps]
    assert info.float_nodes == rep.chosen.float_nodes and all(s.latency_ms > 0 for s in rep.steps)


def test_an_unreachable_budget_reports_the_best_found(two_paths, tmp_path):
    path, x, y = two_paths
    _, rep = fallback_to_budget(path, tmp_path / "q.onnx", cpu_flavour(False), "minmax", x[:64], tmp_path / "c.json",
                                x[64:], y[64:], budget=2.0, batch=1, dynamic=False,
                                max_float=0.25)  # 1 of the 4 layers may stay float
    assert not rep.met and len(rep.chosen.float_nodes) == 1
    assert "budget was not met" in rep.note and f"{rep.chosen.disagreement:.2f} % of 136 images change" in rep.note
    assert f", OA drop {rep.chosen.drop:.2f} pt" in rep.note


def test_exclude_patterns():
    names = ["/conv1/Conv", "/layer1/layer1.0/conv1/Conv", "/fc/Gemm"]
    assert match_nodes(names, ["layer1.0.conv1", "/fc/Gemm"]) == ["/layer1/layer1.0/conv1/Conv", "/fc/Gemm"]
    from compress.errors import UserInputError

    with pytest.raises(UserInputError, match="matches no weighted layer"):
        match_nodes(names, ["layer9"])


def _fallback(two_paths, tmp_path, labelled=True, **kw):
    path, x, y = two_paths
    messages = []
    info, rep = fallback_to_budget(path, tmp_path / "q.onnx", cpu_flavour(False), "minmax", x[:64], tmp_path / "c.json",
                                   x[64:], y[64:] if labelled else None, batch=1, dynamic=False,
                                   progress=messages.append, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "q.onnx"]  # no trial file left behind
    return info, rep, messages


def test_a_budget_equal_to_the_plain_int8_drop_is_met_without_any_float_layer(two_paths, tmp_path):
    _, first, _ = _fallback(two_paths, tmp_path / "a", budget=1000.0)
    (tmp_path / "b").mkdir()
    info, rep, messages = _fallback(two_paths, tmp_path / "b", budget=first.steps[0].disagreement)
    assert rep.met and len(rep.steps) == 1 and rep.chosen.float_nodes == [] and info.float_nodes == []
    assert messages == [] and rep.sensitivity == {}


def test_the_fallback_stops_at_the_first_layer_set_within_budget(two_paths, tmp_path):
    path, _, _ = two_paths
    (tmp_path / "a").mkdir()
    _, rep, messages = _fallback(two_paths, tmp_path / "a", budget=0.0, max_float=1.0)
    conv2 = sorted(match_nodes(weighted_nodes(path), ["conv2a", "conv2b"]))
    assert rep.met and rep.chosen.disagreement == 0.0 and rep.chosen.drop == 0.0 and rep.chosen.drop_interval == (0, 0)
    assert len(rep.steps) == 3 and sorted(rep.chosen.float_nodes) == conv2
    assert messages == [f"sensitivity {i}/4" for i in range(1, 5)]
    base = rep.steps[0].disagreement
    assert all(base - 100.0 <= v <= base for v in rep.sensitivity.values())  # points removed, not a sum
    assert max(rep.sensitivity, key=rep.sensitivity.get) in conv2


def test_an_unmet_budget_keeps_the_first_best_and_at_most_half_the_layers_by_default(two_paths, tmp_path):
    path, _, _ = two_paths
    (tmp_path / "a").mkdir()
    _, rep, _ = _fallback(two_paths, tmp_path / "a", budget=-1.0)  # never met: every trial up to the limit runs
    assert not rep.met and len(rep.steps) == 3 and "with up to 2 of 4 layers in float" in rep.note


def test_on_a_tie_the_fewest_float_layers_win(two_paths, tmp_path, monkeypatch):
    import export.sensitivity as sens

    path, x, _ = two_paths
    n = len(x) - 64  # the images judged for agreement
    # images whose top-1 changes: plain INT8, the four one-layer-float trials, then the greedy steps (all tied)
    changed = iter([None, 68, 54, 40, 61, 65, 14, 14, 14, 14])

    def top1(*a, **k):
        c = next(changed)
        pred = np.zeros(n, np.int64)
        if c is not None:
            pred[:c] = 1
        return pred

    monkeypatch.setattr(sens, "top1", top1)
    _, rep, _ = _fallback(two_paths, tmp_path, labelled=False, budget=-1.0, max_float=1.0)
    nodes = weighted_nodes(path)
    assert [s.disagreement for s in rep.steps] == pytest.approx([100 * c / n for c in (68, 14, 14, 14, 14)])
    assert rep.chosen.float_nodes == [nodes[1]] and rep.sensitivity[nodes[1]] == pytest.approx(100 * 28 / n)
    assert [s.added for s in rep.steps[1:]] == [nodes[1], nodes[0], nodes[2], nodes[3]]


def test_the_drop_interval_by_hand():
    from export.sensitivity import paired_drop

    ref = np.array([1, 1, 1, 1, 0, 1, 1, 1], bool)
    cand = np.array([1, 0, 1, 0, 1, 1, 1, 1], bool)  # differences 0, 1, 0, 1, -1, 0, 0, 0: mean 1/8
    drop, (lo, hi) = paired_drop(ref, cand)
    sd = np.sqrt(((np.array([0, 1, 0, 1, -1, 0, 0, 0]) - 0.125) ** 2).sum() / 7)
    assert drop == 12.5 and (lo, hi) == pytest.approx((12.5 - 196 * sd / np.sqrt(8), 12.5 + 196 * sd / np.sqrt(8)))
    assert paired_drop(ref, ref) == (0.0, (0.0, 0.0))


def test_without_labels_the_budget_is_judged_on_agreement_alone(two_paths, tmp_path):
    path, x, _ = two_paths
    info, rep = fallback_to_budget(path, tmp_path / "q.onnx", cpu_flavour(False), "minmax", x[:64], tmp_path / "c.json",
                                   x[64:], None, budget=2.0, batch=1, dynamic=False)
    assert rep.images == 136 and rep.labelled == 0 and rep.reference_accuracy is None
    assert all(s.accuracy is None and s.drop is None for s in rep.steps)
    assert rep.met and rep.chosen.disagreement <= 2.0 and rep.steps[0].disagreement > 20


def test_the_budget_is_met_by_few_changed_predictions_or_by_a_small_labelled_drop():
    from export.sensitivity import FallbackStep, within

    assert within(FallbackStep([], 1.0), 1.0) and not within(FallbackStep([], 1.5), 1.0)  # no labels: agreement
    assert within(FallbackStep([], 1.0, 97.0, 3.0, (1.5, 4.5)), 1.0)  # 1 % changed bounds the drop: met
    # many low-margin flips at no cost in accuracy: met by the drop, which agreement alone would never reach
    assert within(FallbackStep([], 7.3, 58.0, -0.5, (-3.8, 2.8)), 1.0)
    assert within(FallbackStep([], 7.3, 58.0, 1.0, (-0.8, 2.8)), 1.0)
    assert not within(FallbackStep([], 7.3, 56.0, 1.1, (-0.7, 2.9)), 1.0)


def test_a_fix_is_judged_by_changed_predictions_unless_the_drop_differs_beyond_chance():
    from export.sensitivity import FallbackStep, better

    plain = FallbackStep([], 1.1, 84.0, 0.0)  # measured on AID: 11 of 1,000 changed, no net loss
    assert better(FallbackStep([], 0.7, 83.9, 0.1), plain, 1.0, 1000)  # 7 changed, 1 image net: chance
    assert not better(plain, FallbackStep([], 0.7, 83.9, 0.1), 1.0, 1000)
    # 9 changed, every one of them lost: 9 images net > 1.96 √20 = 8.8 — the drop decides
    assert not better(FallbackStep([], 0.9, 83.1, 0.9), plain, 1.0, 1000)
    assert better(FallbackStep([], 1.5, 85.2, -1.2), plain, 1.0, 1000)  # a real gain (12 > 1.96 √26) wins
    assert better(FallbackStep([], 0.9), FallbackStep([], 1.1), 1.0, 1000)  # no labels: agreement alone
    assert not better(FallbackStep([], 1.1), FallbackStep([], 1.1), 1.0, 1000)  # strictly
    # within budget first: 3 % changed but only 0.5 pt lost beats 1.5 % changed with 1.5 pt lost
    assert better(FallbackStep([], 3.0, 83.5, 0.5), FallbackStep([], 1.5, 82.5, 1.5), 1.0, 1000)


def test_labels_meet_the_budget_where_agreement_alone_would_keep_layers_float(two_paths, tmp_path, monkeypatch):
    import export.sensitivity as sens

    path, x, y = two_paths
    labels = y[64:]
    # every trial flips the top-1 of the first 20 images, and each flip moves a wrong prediction to a right one
    ref = 1 - labels.copy()
    ref[20:] = labels[20:]
    calls = iter([ref] + [np.where(np.arange(len(ref)) < 20, labels, ref)] * 10)
    monkeypatch.setattr(sens, "top1", lambda *a, **k: next(calls))
    _, rep, _ = _fallback(two_paths, tmp_path, budget=1.0)
    assert rep.met and rep.chosen.float_nodes == [] and len(rep.steps) == 1
    assert rep.steps[0].disagreement == pytest.approx(100 * 20 / 136) and rep.steps[0].drop == pytest.approx(
        -100 * 20 / 136)
    (tmp_path / "b").mkdir()
    calls = iter([ref] + [np.where(np.arange(len(ref)) < 20, labels, ref)] * 10)
    _, rep, _ = _fallback(two_paths, tmp_path / "b", labelled=False, budget=1.0)
    assert not rep.met and len(rep.steps) == 3  # agreement alone: two layers float, and still not met
