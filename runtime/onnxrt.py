"""``OnnxrtRunner``: an ONNX model in ONNX Runtime on one of its execution providers."""
from __future__ import annotations

import contextlib
import functools
import io
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from compress.errors import DeviceError, UserInputError, require
from runtime.base import Runner, TensorSpec

# Short names as typed on the CLI → ONNX Runtime provider names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


@functools.lru_cache(maxsize=None)
def _provider_loads(full: str) -> bool:
    """True when ``full`` really starts: onnxruntime-gpu lists CUDA/TensorRT even on a machine
    without libcuda/libnvinfer and then silently falls back to CPU, so listing is not enough."""
    from onnx import TensorProto, helper

    ort = require("onnxruntime", "ONNX Runtime inference")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    previous = 2  # ORT's default (warning); it has no getter to read the current level
    ort.set_default_logger_severity(4)  # the failed library load is expected here; keep the console clean
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        # ORT's Python layer prints a multi-line "EP Error ... Falling back" banner for a provider that fails
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            sess = ort.InferenceSession(model.SerializeToString(),
                                        sess_options=opts, providers=[full, "CPUExecutionProvider"])
        return full in sess.get_providers()
    except Exception:  # noqa: BLE001 - any failure means the provider is unusable here
        return False
    finally:
        ort.set_default_logger_severity(previous)


def available_providers() -> list[str]:
    """ONNX Runtime providers that actually start here (e.g. ``['CPUExecutionProvider']`` on a
    machine without a GPU, even with the onnxruntime-gpu wheel installed)."""
    ort = require("onnxruntime", "ONNX Runtime inference")
    return [p for p in ort.get_available_providers() if p == "CPUExecutionProvider" or _provider_loads(p)]


def resolve_providers(providers: Sequence[str] | str | None) -> list[str]:
    """Map short names to provider names and check each exists; ``None`` → CPU only."""
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    have = available_providers()
    out = []
    for p in providers:
        full = PROVIDER_ALIASES.get(p.lower(), p)
        if full not in have:
            raise DeviceError(
                f"ONNX Runtime provider '{p}' is not available here (available: {', '.join(have)}); "
                "install onnxruntime-gpu with a matching CUDA/TensorRT, or use 'cpu'."
            )
        out.append(full)
    if "CPUExecutionProvider" not in out:  # ORT falls back to CPU for unsupported nodes anyway
        out.append("CPUExecutionProvider")
    return out


def model_precision(model: Any) -> str:
    """``int8`` for a Q/DQ graph, ``fp16`` when any float initializer is half, else ``fp32``."""
    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops or "DequantizeLinear" in ops:
        return "int8"
    from onnx import TensorProto

    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


class SessionFromOnnx:
    """Loader (as Polygraphy's ``SessionFromOnnx``): builds the ONNX Runtime session for a model path or
    serialized bytes once, on first call, and returns the same session afterwards.

    ``providers``: short names (``cpu``, ``cuda``, ``tensorrt``) or ORT names, in priority order.
    ``threads``: intra-op threads (``None`` = ORT's default, all physical cores).
    ``fuse``: False disables ORT's graph optimisations, so a Q/DQ graph runs as written (DequantizeLinear →
    float op → QuantizeLinear) instead of as fused integer kernels: the reference semantics of the file.
    """

    def __init__(self, path_or_bytes: str | Path | bytes, providers: Sequence[str] | str | None = None,
                 threads: int | None = None, fuse: bool = True) -> None:
        if not isinstance(path_or_bytes, (bytes, bytearray)) and not Path(path_or_bytes).is_file():
            raise UserInputError(f"ONNX model '{path_or_bytes}' does not exist; export one with `compress export`.")
        if threads is not None and threads < 1:
            raise UserInputError(f"threads must be >= 1, got {threads}.")
        self.source, self.providers, self.threads, self.fuse = path_or_bytes, resolve_providers(providers), threads, fuse
        self._built: tuple[Any, str] | None = None

    def __call__(self) -> tuple[Any, str]:
        """``(InferenceSession, precision)``; the precision is read from the graph (fp32 / fp16 / int8)."""
        if self._built is None:
            ort = require("onnxruntime", "ONNX Runtime inference")
            import onnx

            opts = ort.SessionOptions()
            opts.log_severity_level = 3  # errors only: its graph-cleaning warnings are not the user's to act on
            if self.threads is not None:
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
            if not self.fuse:
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            src = bytes(self.source) if isinstance(self.source, (bytes, bytearray)) else str(self.source)
            proto = onnx.load_from_string(src) if isinstance(src, bytes) else onnx.load(src, load_external_data=False)
            try:
                session = ort.InferenceSession(src, sess_options=opts, providers=self.providers)
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
                raise UserInputError(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0]}") from exc
            self._built = (session, model_precision(proto))
        return self._built


class OnnxrtRunner(Runner):
    """Runs the session a :class:`SessionFromOnnx` loader builds (a path or bytes are wrapped in one)."""

    backend = "onnxrt"

    def __init__(self, model: str | Path | bytes | SessionFromOnnx, providers: Sequence[str] | str | None = None,
                 threads: int | None = None, name: str | None = None, fuse: bool = True) -> None:
        super().__init__(name)
        self.loader = model if isinstance(model, SessionFromOnnx) else SessionFromOnnx(model, providers, threads, fuse)
        self.providers, self.threads = self.loader.providers, self.loader.threads
        self.session: Any = None
        self._precision = "unknown"
        self._outputs: list[str] = []
        self._dtypes: dict[str, np.dtype] = {}

    def activate_impl(self) -> None:
        self.session, self._precision = self.loader()
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._dtypes = {i.name: np.dtype(_ORT_TYPES.get(i.type, "float32")) for i in self.session.get_inputs()}

    def deactivate_impl(self) -> None:
        self.session = None

    def input_specs_impl(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, tuple(d if isinstance(d, int) else (d or -1) for d in i.shape),
                           _ORT_TYPES.get(i.type, i.type)) for i in self.session.get_inputs()]

    def output_names(self) -> list[str]:
        self._check_active()
        return list(self._outputs)

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> "OrderedDict[str, np.ndarray]":
        cast = {}
        for k, v in feeds.items():
            want = self._dtypes[k]
            if v.dtype != want and not (v.dtype.kind == "f" and want.kind == "f"):
                raise UserInputError(f"{self.name}: input '{k}' is {v.dtype} but the model expects {want} "
                                     "(an --embed-preprocess model takes uint8 NHWC images).")
            cast[k] = v if v.dtype == want and v.flags.c_contiguous else np.ascontiguousarray(v, dtype=want)
        return OrderedDict(zip(self._outputs, self.session.run(self._outputs, cast)))

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "providers": list(self.providers), "threads": self.threads,
               "precision": self._precision, "graph_optimizations": self.loader.fuse}
        if self.session is not None:
            out["providers"] = self.session.get_providers()
            out["provider"] = out["providers"][0]
            out["device"] = "cpu" if out["provider"] == "CPUExecutionProvider" else "cuda"
        return out
