"""``RUNNERS``: backend name → Runner class (``torch``, ``onnxrt``, ``tensorrt``)."""
from __future__ import annotations

from compress.registry import Registry
from runtime.base import Runner
from runtime.onnxrt import OnnxrtRunner
from runtime.tensorrt_runner import TrtRunner
from runtime.torch_runner import TorchRunner

RUNNERS: Registry[type[Runner]] = Registry("runner")
RUNNERS.add("torch", TorchRunner)
RUNNERS.add("onnxrt", OnnxrtRunner)
RUNNERS.add("tensorrt", TrtRunner)

__all__ = ["RUNNERS"]
