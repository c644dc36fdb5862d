"""Simplification falls back to onnxslim where onnxsim is missing, and is skipped with a note when neither is."""
import builtins

import onnx
import pytest
import torch
from torch import nn

from runtime.onnx_simplify import available_simplifier, simplify_model


def _proto(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(1), nn.Linear(4 * 6 * 6, 2)).eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False, opset_version=17)
    return onnx.load(str(path))


def _hide(monkeypatch, *names):
    import importlib.util

    real_find, real_import = importlib.util.find_spec, builtins.__import__
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in names else real_find(n, *a))

    def imp(name, *a, **k):
        if name.split(".")[0] in names:
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", imp)


def test_onnxsim_first_then_onnxslim(tmp_path, monkeypatch):
    pytest.importorskip("onnxslim")
    proto = _proto(tmp_path)
    assert available_simplifier() in ("onnxsim", "onnxslim")
    _hide(monkeypatch, "onnxsim")
    out, tool = simplify_model(proto)
    assert tool == "onnxslim" and {n.op_type for n in out.graph.node} >= {"Conv", "Gemm"}
    onnx.checker.check_model(out)


def test_neither_installed_skips(tmp_path, monkeypatch):
    proto = _proto(tmp_path)
    _hide(monkeypatch, "onnxsim", "onnxslim")
    out, tool = simplify_model(proto)
    assert tool is None and out is proto
