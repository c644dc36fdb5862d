"""FP16 (float32 I/O) and INT8 QDQ conversion on the digits checkpoint."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compress.models.restore import load_checkpoint
from compress.errors import UserInputError
from export.onnx import OnnxOptions, export_module, export_onnx, metadata_props
from export.fp16 import convert_fp16
from export.int8 import quantize_int8
from runtime.onnxrt import OnnxrtRunner


@pytest.fixture(scope="module")
def fp32_onnx(digits_ckpt, tmp_path_factory):
    c = load_checkpoint(digits_ckpt)
    opts = OnnxOptions(image_size=16, in_chans=1, dynamic_batch=True)
    path = tmp_path_factory.mktemp("q") / "model.onnx"
    export_onnx(export_module(c.model, "classify", False, (0.5,), (0.25,)), path, opts,
                metadata_props(c.manifest, "0", opts))
    return c.model, path


def test_fp16_keeps_float32_io_and_parity(fp32_onnx, digits_samples, tmp_path):
    model, path = fp32_onnx
    half = convert_fp16(onnx.load(str(path)))
    f32 = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [f32]
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [f32]
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    onnx.save(half, str(tmp_path / "h.onnx"))
    x = digits_samples.images.numpy()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with OnnxrtRunner(tmp_path / "h.onnx") as r:
        out = r.infer({"input": x})["logits"]
        assert r.describe()["precision"] == "fp16"
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-2


def test_int8_qdq_graph_agrees_on_easy_set(fp32_onnx, digits_ckpt, tmp_path):
    from compress.data.samples import load_samples

    model, path = fp32_onnx
    calib = load_samples(digits_ckpt, load_checkpoint(digits_ckpt).manifest, "train", 64).images.numpy()
    info = quantize_int8(path, tmp_path / "q.onnx", calib, "minmax")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert info.num_quantize_nodes == ops.count("QuantizeLinear") > 0
    assert info.num_dequantize_nodes == ops.count("DequantizeLinear") > info.num_quantize_nodes  # + weights
    # An easy set: samples whose FP32 top-1 wins by a clear margin.
    with torch.no_grad():
        ref = model(torch.from_numpy(calib)).numpy()
    top2 = np.sort(ref, axis=1)[:, -2:]
    easy = calib[(top2[:, 1] - top2[:, 0]) > 0.05 * np.abs(ref).max()]
    assert len(easy) >= 10
    with OnnxrtRunner(tmp_path / "q.onnx") as r:
        out = r.infer({"input": easy})["logits"]
        assert r.describe()["precision"] == "int8"
    with torch.no_grad():
        ref_easy = model(torch.from_numpy(easy)).numpy()
    assert (out.argmax(1) == ref_easy.argmax(1)).mean() == 1.0


def test_too_few_calibration_images(fp32_onnx, tmp_path):
    with pytest.raises(UserInputError, match="at least 16 images but got 4"):
        quantize_int8(fp32_onnx[1], tmp_path / "q.onnx", np.zeros((4, 1, 16, 16), np.float32))


def test_unknown_calibration_method(fp32_onnx, tmp_path):
    with pytest.raises(UserInputError, match="Known: entropy, minmax, percentile"):
        quantize_int8(fp32_onnx[1], tmp_path / "q.onnx", np.zeros((16, 1, 16, 16), np.float32), "kl")
