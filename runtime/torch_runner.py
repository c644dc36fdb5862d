"""``TorchRunner``: a PyTorch module (eager or ``torch.compile``) behind the ``Runner`` interface."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from compress.errors import DeviceError, UserInputError
from runtime.base import Runner, TensorSpec


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, dict):
        return tuple(out.values())
    if isinstance(out, (tuple, list)):
        return tuple(out)
    raise UserInputError(f"TorchRunner: the model returned {type(out).__name__}; expected tensors.")


class TorchRunner(Runner):
    """Run ``model`` on ``device`` with one input named ``input_name`` (numpy in, numpy out).

    ``input_shape`` fixes dims for input checks (``-1`` = any); ``compile=True`` wraps the model
    with ``torch.compile`` on activation (the first inference then includes compilation).
    """

    backend = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu", compile: bool = False,
                 input_name: str = "input", input_shape: Sequence[int] = (-1, -1, -1, -1),
                 input_dtype: str = "float32", output_names: Sequence[str] = ("logits",),
                 name: str | None = None) -> None:
        super().__init__(name)
        self.model = model.eval()
        self.device = torch.device(device)
        self.compile = compile
        self.input_name = input_name
        self.input_shape = tuple(input_shape)
        self.input_dtype = input_dtype
        self.output_names = tuple(output_names)
        self._fn: Any = None

    def activate_impl(self) -> None:
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError("TorchRunner: device 'cuda' asked for but no CUDA GPU is visible; use --device cpu.")
        self.model.to(self.device)
        self._fn = torch.compile(self.model) if self.compile else self.model

    def deactivate_impl(self) -> None:
        self._fn = None

    def input_specs_impl(self) -> list[TensorSpec]:
        return [TensorSpec(self.input_name, self.input_shape, self.input_dtype)]

    @torch.inference_mode()
    def infer_impl(self, feeds: dict[str, np.ndarray]) -> "OrderedDict[str, np.ndarray]":
        x = torch.from_numpy(np.ascontiguousarray(feeds[self.input_name])).to(self.device, non_blocking=True)
        outs = _as_tuple(self._fn(x))
        if len(outs) != len(self.output_names):
            names = self.output_names + tuple(f"output_{i}" for i in range(len(self.output_names), len(outs)))
        else:
            names = self.output_names
        return OrderedDict((n, o.detach().float().cpu().numpy()) for n, o in zip(names, outs))

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self) -> dict[str, Any]:
        param = next(self.model.parameters(), None)
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(param.dtype, "fp32") if param is not None else "fp32"
        return {**super().describe(), "device": str(self.device), "compile": self.compile,
                "precision": precision, "threads": torch.get_num_threads()}
