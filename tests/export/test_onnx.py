"""ONNX export: FP32 parity, dynamic batch, metadata, embedded preprocessing, embedding head, errors."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from compress.errors import ExportError, UserInputError
from compress.models.restore import load_checkpoint
from export.onnx import OnnxOptions, export_module, export_onnx, metadata_props, read_metadata
from runtime.onnxrt import OnnxrtRunner


def _export(ckpt, tmp_path, **kw):
    c = load_checkpoint(ckpt)
    m = c.manifest
    opts = OnnxOptions(image_size=16, in_chans=1, **kw)
    mod = export_module(c.model, opts.task, opts.embed_preprocess, m.mean, m.std)
    info = export_onnx(mod, tmp_path / "m.onnx", opts, metadata_props(m, "f" * 64, opts))
    return c, mod, info


def test_fp32_parity_on_real_digits_and_dynamic_batch(digits_ckpt, digits_samples, tmp_path):
    c, mod, info = _export(digits_ckpt, tmp_path, batch=2, dynamic_batch=True)
    assert info.input_shape == ["batch", 1, 16, 16] and info.output_shape == ["batch", 10]
    assert info.opset == 17 and info.ir_version == 8 and info.simplified
    x = digits_samples.images.numpy()
    with torch.no_grad():
        ref = c.model(torch.from_numpy(x)).numpy()
    with OnnxrtRunner(info.path, threads=1) as r:
        for b in (2, 5):  # two batch sizes through one dynamic graph
            out = r.infer({"input": x[:b]})["logits"]
            assert out.shape == (b, 10)
            assert np.abs(out - ref[:b]).max() < 1e-4
        full = r.infer({"input": x})["logits"]
    assert np.abs(full - ref).max() < 1e-4
    onnx.checker.check_model(onnx.load(str(info.path)), full_check=True)


def test_static_batch_is_fixed(digits_ckpt, tmp_path):
    _, _, info = _export(digits_ckpt, tmp_path, batch=3)
    assert info.input_shape == [3, 1, 16, 16]
    with OnnxrtRunner(info.path) as r, pytest.raises(UserInputError, match="dim 0 is 2 but the model fixes it at 3"):
        r.infer({"input": np.zeros((2, 1, 16, 16), np.float32)})


def test_metadata_props(digits_ckpt, tmp_path):
    _, _, info = _export(digits_ckpt, tmp_path)
    meta = read_metadata(info.path)
    assert json.loads(meta["class_names"]) == [str(i) for i in range(10)]
    assert json.loads(meta["mean"]) == [0.5] and json.loads(meta["std"]) == [0.25]
    assert meta["input_layout"] == "NCHW-float32-normalized"
    assert meta["architecture"] == "cifar-resnet8"
    assert meta["checkpoint_sha256"] == "f" * 64
    assert meta["toolkit"] == "compress" and meta["toolkit_version"]
    assert meta["precision"] == "fp32" and meta["image_size"] == "16"


def test_embed_preprocess_uint8_parity(digits_ckpt, digits_samples, tmp_path):
    c, _, info = _export(digits_ckpt, tmp_path, batch=4, dynamic_batch=True, embed_preprocess=True)
    assert info.input_dtype == "uint8" and info.input_shape == ["batch", 16, 16, 1]
    assert read_metadata(info.path)["input_layout"] == "NHWC-uint8"
    raw = digits_samples.raw
    assert raw.dtype == np.uint8
    with torch.no_grad():  # reference: the plain model on the normalised images of the same bytes
        ref = c.model(digits_samples.images).numpy()
    with OnnxrtRunner(info.path) as r:
        out = r.infer({"input": raw})["logits"]
        with pytest.raises(UserInputError, match="expects uint8"):
            r.infer({"input": raw.astype(np.float32)})
    assert np.abs(out - ref).max() < 1e-4


def test_embedding_head_is_l2_normalised(digits_ckpt, digits_samples, tmp_path):
    c, mod, info = _export(digits_ckpt, tmp_path, task="embedding", dynamic_batch=True)
    assert info.output_name == "embedding" and info.output_shape == ["batch", 64]
    x = digits_samples.images.numpy()[:8]
    with OnnxrtRunner(info.path) as r:
        emb = r.infer({"input": x})["embedding"]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), np.ones(8), atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(emb, mod(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_low_opset_for_jetpack46(digits_ckpt, tmp_path):
    _, _, info = _export(digits_ckpt, tmp_path, opset=13, ir_version=7)
    assert info.opset == 13 and info.ir_version == 7


def test_unsupported_op_names_op_and_layer(tmp_path):
    class Spectral(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), Spectral(), torch.nn.Flatten()).eval()
    man = SimpleNamespace(class_names=("a",), mean=(0.0,), std=(1.0,), architecture="x")
    opts = OnnxOptions(image_size=8)
    with pytest.raises(ExportError, match=r"operator 'aten::fft_fft' \(in layer '1'\)"):
        export_onnx(model, tmp_path / "m.onnx", opts, metadata_props(man, "0", opts))
    assert not (tmp_path / "m.onnx").exists()


def test_model_rejecting_shape_is_one_line_error(tmp_path, tiny_cnn):
    man = SimpleNamespace(class_names=("a",), mean=(0.0,), std=(1.0,), architecture="x")
    opts = OnnxOptions(image_size=8, in_chans=1)  # the net wants 3 channels
    with pytest.raises(UserInputError, match=r"rejects input \[B, C, H, W\] = \[1, 1, 8, 8\]"):
        export_onnx(tiny_cnn(in_chans=3), tmp_path / "m.onnx", opts, metadata_props(man, "0", opts))


def test_unknown_exporter_lists_known(tmp_path, tiny_cnn):
    man = SimpleNamespace(class_names=("a",), mean=(0.0,), std=(1.0,), architecture="x")
    opts = OnnxOptions(image_size=8, exporter="tracer")
    with pytest.raises(UserInputError, match="Known: dynamo, torchscript"):
        export_onnx(tiny_cnn(), tmp_path / "m.onnx", opts, metadata_props(man, "0", opts))


@pytest.mark.slow
def test_dynamo_exporter_opset18_and_refuses_lower(digits_ckpt, digits_samples, tmp_path, capsys):
    c, _, info = _export(digits_ckpt, tmp_path, exporter="dynamo", opset=18, dynamic_batch=True)
    assert info.opset == 18 and info.input_shape == ["batch", 1, 16, 16]
    assert capsys.readouterr().out == ""  # progress lines would corrupt --json output
    x = digits_samples.images.numpy()[:5]
    with OnnxrtRunner(info.path) as r, torch.no_grad():
        assert np.abs(r.infer({"input": x})["logits"] - c.model(torch.from_numpy(x)).numpy()).max() < 1e-4
    with pytest.raises(UserInputError, match="dynamo exporter writes opset 18 or newer, not 17"):
        _export(digits_ckpt, tmp_path, exporter="dynamo", opset=17)
