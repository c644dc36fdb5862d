"""PyTorch → ONNX: wrappers (preprocessing, embedding head), exporters, onnxsim, checker, metadata.

The exported graph has one input ``input`` — float32 NCHW normalised images, or with
``embed_preprocess`` uint8 NHWC camera bytes — and one output, ``logits [B, C]`` or
``embedding [B, D]`` (L2-normalised).
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import ExportError, UserInputError
from compress.registry import Registry
from export.opsets import DEFAULT_OPSET

INPUT_NAME = "input"
OUTPUT_NAMES = {"classify": "logits", "embedding": "embedding"}
META_PREFIX = "compress."
DYNAMO_MIN_OPSET = 18


class PreprocessWrapper(nn.Module):
    """uint8 ``[B, H, W, C]`` → ``(x / 255 - mean) / std`` as float32 NCHW → ``model``.

    Folded into one multiply-add per channel so TensorRT fuses it into the first convolution.
    """

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        return self.model(x * self.scale + self.shift)


class EmbeddingWrapper(nn.Module):
    """``model.embed(x)`` when the model has it, else pooled pre-logit features; L2-normalised ``[B, D]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "embed"):
            emb = self.model.embed(x)
        else:
            from compress.models import forward_features_pooled

            emb = forward_features_pooled(self.model, x)
        return F.normalize(emb.flatten(1), p=2.0, dim=1, eps=1e-12)


@dataclass(frozen=True)
class OnnxOptions:
    """How to trace and write the graph."""

    batch: int = 1
    dynamic_batch: bool = False
    image_size: int = 224
    in_chans: int = 3
    opset: int = DEFAULT_OPSET
    ir_version: int | None = None
    exporter: str = "torchscript"
    simplify: bool = True
    embed_preprocess: bool = False
    task: str = "classify"


@dataclass
class OnnxInfo:
    """What was written: path, I/O shapes (``"batch"`` for a dynamic dim), opset/IR, node counts."""

    path: Path
    input_name: str
    input_shape: list[int | str]
    input_dtype: str
    output_name: str
    output_shape: list[int | str]
    opset: int
    ir_version: int
    exporter: str
    simplified: bool
    num_nodes: int
    op_types: dict[str, int] = field(default_factory=dict)
    simplifier: str = ""  # onnxsim | onnxslim | why the graph was not simplified


def export_module(model: nn.Module, task: str, embed_preprocess: bool,
                  mean: tuple[float, ...], std: tuple[float, ...]) -> nn.Module:
    """The module that is traced: the model plus the optional embedding head and preprocessing."""
    if task not in OUTPUT_NAMES:
        raise UserInputError(f"Unknown task '{task}'. Known: {', '.join(OUTPUT_NAMES)}.")
    module = EmbeddingWrapper(model) if task == "embedding" else model
    if embed_preprocess:
        module = PreprocessWrapper(module, mean, std)
    return module.eval()


def example_input(opts: OnnxOptions) -> torch.Tensor:
    """A dummy batch of the input layout (values don't matter for tracing)."""
    b, s, c = opts.batch, opts.image_size, opts.in_chans
    if opts.embed_preprocess:
        return torch.randint(0, 256, (b, s, s, c), dtype=torch.uint8)
    return torch.randn(b, c, s, s)


EXPORTERS: Registry[Callable[..., None]] = Registry("exporter")


@EXPORTERS.register("torchscript")
def _export_torchscript(module: nn.Module, x: torch.Tensor, path: Path, opts: OnnxOptions) -> None:
    out = OUTPUT_NAMES[opts.task]
    dyn = {INPUT_NAME: {0: "batch"}, out: {0: "batch"}} if opts.dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (x,), str(path), input_names=[INPUT_NAME], output_names=[out],
                          opset_version=opts.opset, dynamic_axes=dyn, do_constant_folding=True, dynamo=False)


@EXPORTERS.register("dynamo")
def _export_dynamo(module: nn.Module, x: torch.Tensor, path: Path, opts: OnnxOptions) -> None:
    # torch's dynamo exporter writes opset >= 18 and its down-conversion yields invalid graphs
    # (e.g. ReduceMean keeps opset-18 attributes), so lower opsets are refused, not converted.
    if opts.opset < DYNAMO_MIN_OPSET:
        raise UserInputError(f"the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or newer, not {opts.opset}; "
                             f"use --exporter torchscript for opset {opts.opset}.")
    out = OUTPUT_NAMES[opts.task]
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if opts.dynamic_batch else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints progress
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module, (x,), None, input_names=[INPUT_NAME], output_names=[out],
                                 opset_version=opts.opset, dynamic_shapes=shapes, dynamo=True,
                                 optimize=True, verbose=False)
    prog.save(str(path))


def locate_op(model: nn.Module, x: torch.Tensor, op: str) -> str | None:
    """The module path whose forward calls torch function ``op`` (``aten::fft_fft`` → ``fft_fft``)."""
    base = op.split("::")[-1].rstrip("_")
    stack: list[str] = []
    found: list[str] = []

    class _Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "").rstrip("_")
            if name == base and not found:
                found.append(stack[-1] if stack else "<root>")
            return func(*args, **(kwargs or {}))

    hooks = []
    for mname, mod in model.named_modules():
        hooks.append(mod.register_forward_pre_hook(lambda m, a, n=mname: stack.append(n or "<root>") and None))
        hooks.append(mod.register_forward_hook(lambda m, a, o: stack.pop() and None))  # None keeps the output
    try:
        with torch.no_grad(), _Spy():
            model(x)
    except Exception:  # best effort: locating must never hide the original error
        pass
    finally:
        for h in hooks:
            h.remove()
    return found[0] if found else None


def metadata_props(manifest: Any, checkpoint_sha256: str, opts: OnnxOptions, precision: str = "fp32") -> dict[str, str]:
    """The self-description stored in the ONNX ``metadata_props`` (all values are strings)."""
    import compress

    return {
        "class_names": json.dumps(list(manifest.class_names)),
        "mean": json.dumps(list(manifest.mean)),
        "std": json.dumps(list(manifest.std)),
        "input_layout": "NHWC-uint8" if opts.embed_preprocess else "NCHW-float32-normalized",
        "image_size": str(opts.image_size),
        "architecture": manifest.architecture,
        "task": opts.task,
        "checkpoint_sha256": checkpoint_sha256,
        "toolkit": "compress",
        "toolkit_version": compress.__version__,
        "precision": precision,
    }


def set_metadata(model: Any, props: dict[str, str]) -> None:
    """Write ``props`` under the ``compress.`` prefix, replacing earlier values."""
    keys = {META_PREFIX + k for k in props}
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in keys]
    del model.metadata_props[:]
    for k, v in keep + [(META_PREFIX + k, v) for k, v in props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


def read_metadata(path_or_model: str | Path | Any) -> dict[str, str]:
    """The ``compress.*`` metadata of an ONNX file (prefix stripped)."""
    import onnx

    model = onnx.load(str(path_or_model), load_external_data=False) if isinstance(path_or_model, (str, Path)) \
        else path_or_model
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def default_opset(model: Any) -> int:
    """The ``ai.onnx`` opset a model imports."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _dims(value_info: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def export_onnx(model: nn.Module, path: str | Path, opts: OnnxOptions, metadata: dict[str, str]) -> OnnxInfo:
    """Trace ``model`` (already wrapped, see ``export_module``) to ``path``; simplify, check, stamp metadata."""
    import onnx

    path = Path(path)
    x = example_input(opts)
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:
        layout = "[B, H, W, C] uint8" if opts.embed_preprocess else "[B, C, H, W]"
        raise UserInputError(f"the model rejects input {layout} = {list(x.shape)} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); check --image-size "
                             "and the manifest's in_chans.") from exc
    try:
        EXPORTERS.get(opts.exporter)(model, x, path, opts)
    except torch.onnx.errors.UnsupportedOperatorError as exc:
        m = re.search(r"operator '([^']+)'", str(exc))
        op = m.group(1) if m else "?"
        layer = locate_op(model, x, op)
        raise ExportError(f"operator '{op}' (in layer '{layer or 'unknown'}') cannot be exported to ONNX opset "
                          f"{opts.opset}; replace that layer or try another --opset/--exporter.") from exc
    except (ExportError, UserInputError):
        raise
    except Exception as exc:
        raise ExportError(f"ONNX export failed with the {opts.exporter} exporter: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc

    proto = onnx.load(str(path))
    simplified, simplifier = False, "off (--no-simplify)"
    if opts.simplify:
        from runtime.onnx_simplify import SimplifyError, simplify_model

        try:
            proto, tool = simplify_model(proto)
        except SimplifyError as exc:
            raise ExportError(f"{exc}; retry with --no-simplify.") from exc
        simplified = tool is not None
        simplifier = tool or "skipped: neither onnxsim nor onnxslim is installed (pip install onnxslim)"
    if opts.ir_version is not None:
        proto.ir_version = opts.ir_version
    set_metadata(proto, metadata)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {str(exc).splitlines()[0][:200]}") from exc
    onnx.save(proto, str(path))
    counts: dict[str, int] = {}
    for n in proto.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    inp, out = proto.graph.input[0], proto.graph.output[0]
    return OnnxInfo(path=path, input_name=inp.name, input_shape=_dims(inp),
                    input_dtype="uint8" if opts.embed_preprocess else "float32", output_name=out.name,
                    output_shape=_dims(out), opset=default_opset(proto), ir_version=proto.ir_version,
                    exporter=opts.exporter, simplified=simplified, num_nodes=len(proto.graph.node), op_types=counts,
                    simplifier=simplifier)
