"""The Q/DQ interpreter computes what the INT8 file means, for both flavours: what ONNX Runtime computes
running it as written (Q/DQ around float ops) on every CPU, and what its fused integer kernels compute
wherever those are exact (VNNI/AMX/ARM CPUs, and 7-bit weights anywhere). On x86 CPUs without VNNI the
fused u8·s8 kernels sum pairs of products in saturating int16, so 8-bit weights can clip there: those
comparisons are marked ``cpu("int8_exact")`` and skipped on such a CPU (``CpuInfo.int8_saturates``)."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from compress.models import create_model
from compress.models.qdq import QDQGraphModule
from export.int8 import cpu_flavour, pre_process, quantize_int8, trt_flavour

EXACT = pytest.mark.cpu("int8_exact")  # ONNX Runtime's fused kernels with 8-bit weights are exact only there


def _ort(path, x, fused: bool) -> np.ndarray:
    opts = ort.SessionOptions()
    if not fused:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]


@pytest.mark.parametrize("arch,size", [("cifar_resnet8", 16), ("mobilenetv3_small_100", 32)])
@pytest.mark.parametrize("flavour,fused", [
    (cpu_flavour(False), False), pytest.param(cpu_flavour(False), True, marks=EXACT), (cpu_flavour(True), False),
    (cpu_flavour(True), True), (trt_flavour(), False), pytest.param(trt_flavour(), True, marks=EXACT),
], ids=["cpu-as-written", "cpu-fused", "cpu-rr-as-written", "cpu-rr-fused", "trt-as-written", "trt-fused"])
def test_fake_quant_graph_matches_onnxruntime(tmp_path, arch, size, flavour, fused):
    torch.manual_seed(0)
    model = create_model(arch, 10, 3).eval()
    fp32 = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(fp32), input_names=["input"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}})
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, 3, size, size)).astype(np.float32)
    x = rng.standard_normal((6, 3, size, size)).astype(np.float32)
    src = pre_process(fp32, tmp_path / "p.onnx") if flavour.pre_process else fp32
    quantize_int8(src, tmp_path / "q.onnx", calib, "minmax", flavour)
    module = QDQGraphModule(tmp_path / "q.onnx", src, flavour.reduce_range).eval()
    with torch.no_grad():
        ours = module(torch.from_numpy(x)).numpy()
    theirs = _ort(tmp_path / "q.onnx", x, fused)
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    assert np.abs(ours - theirs).max() <= 0.05 * np.abs(theirs).max()
    grads = torch.autograd.grad(module(torch.from_numpy(x)).sum(), list(module.parameters()))
    assert all(g is not None and torch.isfinite(g).all() for g in grads)  # the STE lets gradients through


@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=EXACT)], ids=["as-written", "fused"])
def test_a_dead_channel_keeps_its_bias_as_onnxruntime_adjusts_it(tmp_path, fused):
    """Folded BatchNorm with gamma ~0: weights ~1e-9 and a bias of 3. At s_input · s_weight the bias would
    overflow int32; ONNX Runtime raises that channel's weight scale instead, and the interpreter must too."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight[1].mul_(1e-9)
        conv.bias.copy_(torch.tensor([0.1, 3.0, -0.2, 0.3]))
    model = torch.nn.Sequential(conv, torch.nn.Flatten()).eval()
    fp32 = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 4, 4),), str(fp32), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False, dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}})
    rng = np.random.default_rng(0)
    calib, x = (rng.standard_normal((n, 3, 4, 4)).astype(np.float32) for n in (16, 4))
    quantize_int8(fp32, tmp_path / "q.onnx", calib, "minmax", cpu_flavour(False))
    theirs = _ort(tmp_path / "q.onnx", x, fused)
    with torch.no_grad():
        ours = QDQGraphModule(tmp_path / "q.onnx", fp32).eval()(torch.from_numpy(x)).numpy()
    dead = theirs.reshape(4, 4, 16)[:, 1]
    assert np.abs(dead - 3.0).max() < 0.05  # the bias survived quantisation (it saturated to ~0 before)
    assert np.abs(ours - theirs).max() < 1e-4
