"""Runners behind the Runner interface: TorchRunner, OnnxrtRunner, TrtRunner (lazy), RUNNERS."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.errors import DeviceError, MissingDependencyError, UserInputError
from runtime.onnxrt import OnnxrtRunner
from runtime.registry import RUNNERS
from runtime.tensorrt_runner import TrtRunner
from runtime.torch_runner import TorchRunner


def _linear() -> torch.nn.Module:
    m = torch.nn.Linear(3, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]))
        m.bias.copy_(torch.tensor([0.5, -0.5]))
    return m.eval()


@pytest.fixture
def onnx_path(tmp_path):
    path = tmp_path / "lin.onnx"
    torch.onnx.export(_linear(), (torch.zeros(1, 3),), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    return path


def test_registry_names():
    assert RUNNERS.names() == ["onnxrt", "tensorrt", "torch"]
    assert RUNNERS.get("onnxrt") is OnnxrtRunner
    with pytest.raises(UserInputError, match="Unknown runner 'onnx'. Known: onnxrt, tensorrt, torch"):
        RUNNERS.get("onnx")


def test_torch_runner_values_and_describe():
    x = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]], np.float32)
    r = TorchRunner(_linear(), input_shape=(-1, 3))
    with pytest.raises(RuntimeError, match="call activate"):
        r.infer({"input": x})
    with r:
        out = r.infer({"input": x})
        assert list(out) == ["logits"]
        np.testing.assert_allclose(out["logits"], [[6.5, -0.5], [6.5, 1.5]])  # by hand: W·x + b
        d = r.describe()
    assert d["backend"] == "torch" and d["device"] == "cpu" and d["precision"] == "fp32" and d["threads"] >= 1


def test_onnxrt_runner_matches_and_checks_inputs(onnx_path):
    x = np.array([[1.0, 1.0, 1.0]], np.float32)
    with OnnxrtRunner(onnx_path, providers=["cpu"], threads=1) as r:
        np.testing.assert_allclose(r.infer({"input": x})["logits"], [[6.5, -0.5]], rtol=1e-6)
        assert r.infer({"input": np.zeros((7, 3), np.float64)})["logits"].shape == (7, 2)  # float64 → float32
        with pytest.raises(UserInputError, match="missing \\['input'\\], unexpected \\['x'\\]"):
            r.infer({"x": x})
        with pytest.raises(UserInputError, match="rank 1"):
            r.infer({"input": x[0]})
        d = r.describe()
    assert d["provider"] == "CPUExecutionProvider" and d["threads"] == 1 and d["precision"] == "fp32"


def test_onnxrt_runner_can_run_a_graph_as_written(onnx_path):
    import onnxruntime as ort

    x = np.array([[1.0, 1.0, 1.0]], np.float32)
    with OnnxrtRunner(onnx_path, providers="cpu", fuse=False) as r:
        np.testing.assert_allclose(r.infer({"input": x})["logits"], [[6.5, -0.5]], rtol=1e-6)
        level = r.session.get_session_options().graph_optimization_level
        assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL and r.describe()["graph_optimizations"] is False
    with OnnxrtRunner(onnx_path, providers="cpu") as r:
        assert r.describe()["graph_optimizations"] is True


def test_onnxrt_runner_from_bytes_and_bad_provider(onnx_path):
    with OnnxrtRunner(onnx_path.read_bytes()) as r:
        assert r.input_specs()[0].shape == ("batch", 3)
    with pytest.raises(DeviceError, match="provider 'rocm' is not available here"):
        OnnxrtRunner(onnx_path, providers="rocm")
    with pytest.raises(UserInputError, match="does not exist"):
        OnnxrtRunner(onnx_path.with_name("missing.onnx"))


def test_trt_runner_errors_without_tensorrt(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        TrtRunner(tmp_path / "none.engine")
    (tmp_path / "m.engine").write_bytes(b"PLAN")
    r = TrtRunner(tmp_path / "m.engine")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="'tensorrt'"):
            r.activate()
        assert not r.is_active
    else:
        pytest.skip("tensorrt is importable here; covered by the trt tests")


@pytest.mark.parametrize("starts", [[], ["CUDAExecutionProvider"]])
def test_listed_but_unloadable_providers_are_not_available(monkeypatch, starts):
    """onnxruntime-gpu lists CUDA/TensorRT on a machine without libcuda and silently falls back to CPU:
    a provider counts only when a session really runs on it (simulated both ways, on any machine)."""
    import onnxruntime as ort

    import runtime.onnxrt as mod

    class Session:  # what ORT does: the session starts, on the providers that loaded
        def __init__(self, _model, sess_options=None, providers=()):
            self.providers = [p for p in providers if p in starts or p == "CPUExecutionProvider"]

        def get_providers(self):
            return self.providers

    listed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    monkeypatch.setattr(ort, "InferenceSession", Session)
    mod._provider_loads.cache_clear()
    try:
        assert mod.available_providers() == [*starts, "CPUExecutionProvider"]
        if not starts:
            with pytest.raises(DeviceError, match="provider 'cuda' is not available"):
                mod.resolve_providers("cuda")
        else:
            assert mod.resolve_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    finally:
        mod._provider_loads.cache_clear()
