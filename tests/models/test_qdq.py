"""The Q/DQ interpreter computes what ONNX Runtime computes for the INT8 file, for both flavours."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from compress.models import create_model
from compress.models.qdq import QDQGraphModule
from export.int8 import cpu_flavour, pre_process, quantize_int8, trt_flavour


@pytest.mark.parametrize("arch,size", [("cifar_resnet8", 16), ("mobilenetv3_small_100", 32)])
@pytest.mark.parametrize("flavour", [cpu_flavour(False), cpu_flavour(True), trt_flavour()], ids=["cpu", "cpu-rr", "trt"])
def test_fake_quant_graph_matches_onnxruntime(tmp_path, arch, size, flavour):
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
    theirs = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    assert np.abs(ours - theirs).max() <= 0.05 * np.abs(theirs).max()
    grads = torch.autograd.grad(module(torch.from_numpy(x)).sum(), list(module.parameters()))
    assert all(g is not None and torch.isfinite(g).all() for g in grads)  # the STE lets gradients through
