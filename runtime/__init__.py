"""Runners (PyTorch, ONNX Runtime, TensorRT) behind one interface, and latency measurement."""
from runtime.base import Runner

__all__ = ["Runner"]
