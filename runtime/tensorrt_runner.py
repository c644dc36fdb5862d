"""``TrtRunner``: a serialized TensorRT engine run through the name-based tensor API (TRT 8.5+, 10, 11).

``tensorrt`` is imported on activation only. Device buffers are torch CUDA tensors, so no pycuda
or cuda-python is needed; the engine runs on a private CUDA stream with ``execute_async_v3``.
Tested against the TensorRT 10 API surface; TRT 8.2 (JetPack 4.6) lacks the tensor API — there,
run engines with ``trtexec --loadEngine``.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from compress.errors import DeviceError, UserInputError, require
from runtime.base import Runner, TensorSpec
from runtime.trtexec import sidecar_path


class TrtRunner(Runner):
    """Run ``engine_path`` on CUDA device ``device`` (inputs/outputs are host numpy arrays)."""

    backend = "tensorrt"

    def __init__(self, engine_path: str | Path, device: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise UserInputError(f"TensorRT engine '{engine_path}' does not exist; build it with `compress export --trt`.")
        self.device = device
        self._trt: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.stream: Any = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []

    def activate_impl(self) -> None:
        import torch

        trt = require("tensorrt", "Running TensorRT engines", "pip install tensorrt (or use JetPack's python3-libnvinfer)")
        if not torch.cuda.is_available():
            raise DeviceError("TrtRunner needs a CUDA GPU, and none is visible here.")
        if not hasattr(trt.ICudaEngine, "num_io_tensors"):
            raise DeviceError(f"TensorRT {trt.__version__} lacks the I/O tensor API (needs 8.5+); "
                              "run this engine with `trtexec --loadEngine` on the target instead.")
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise DeviceError(f"{self.engine_path} cannot be deserialized by TensorRT {trt.__version__}: engines "
                              "only load with the TensorRT version and GPU they were built with; rebuild it here.")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(device=self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._buffers: dict[str, Any] = {}
        for n in self._inputs:  # static inputs get their device buffers now; dynamic ones on first use
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(n))
            if all(d > 0 for d in shape):
                self._buffer(n, shape)

    def deactivate_impl(self) -> None:
        self._buffers = {}
        self.context = None
        self.engine = None
        self.stream = None

    def _buffer(self, name: str, shape: tuple[int, ...]):
        """The device tensor bound to ``name``, (re)allocated only when its shape changes."""
        import torch

        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != shape:
            buf = torch.empty(shape, dtype=getattr(torch, self._np_dtype(name).name),
                              device=torch.device("cuda", self.device))
            self._buffers[name] = buf
            self.context.set_tensor_address(name, buf.data_ptr())
        return buf

    def _np_dtype(self, name: str) -> np.dtype:
        return np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))

    def input_specs_impl(self) -> list[TensorSpec]:
        return [TensorSpec(n, tuple(int(d) for d in self.engine.get_tensor_shape(n)), self._np_dtype(n).name)
                for n in self._inputs]

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> "OrderedDict[str, np.ndarray]":
        import torch

        with torch.cuda.stream(self.stream):
            for n in self._inputs:
                host = np.ascontiguousarray(feeds[n], dtype=self._np_dtype(n))
                if not self.context.set_input_shape(n, tuple(host.shape)):
                    raise UserInputError(f"{self.name}: input '{n}' shape {host.shape} is outside the engine's "
                                         f"optimisation profile {self.engine.get_tensor_profile_shape(n, 0)}.")
                self._buffer(n, tuple(host.shape)).copy_(torch.from_numpy(host))
            outs = OrderedDict((n, self._buffer(n, tuple(self.context.get_tensor_shape(n)))) for n in self._outputs)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise DeviceError(f"{self.name}: TensorRT execution failed (see the TensorRT log above).")
        self.stream.synchronize()
        return OrderedDict((n, b.cpu().numpy()) for n, b in outs.items())

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "engine": str(self.engine_path), "device": f"cuda:{self.device}"}
        sidecar = sidecar_path(self.engine_path)
        if sidecar.is_file():
            import json

            meta = json.loads(sidecar.read_text())
            out.update({k: meta.get(k) for k in ("precision", "tensorrt_version", "gpu_name")})
        if self._trt is not None:
            out["tensorrt_version"] = self._trt.__version__
        return out
