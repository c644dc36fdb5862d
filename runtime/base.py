"""``Runner``: activate → infer → deactivate, with state and input checks done once here.

Backends implement the ``*_impl`` hooks, as NVIDIA Polygraphy's runners do. Inputs and outputs
are dicts of name → numpy array (host memory); timing of host↔device copies is the runner's
``infer`` call as a whole, which is what a deployed application pays.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.errors import UserInputError


@dataclass(frozen=True)
class TensorSpec:
    """One input/output: name, shape (``-1`` or a string for a dynamic dim) and numpy dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str


class Runner(ABC):
    """Base class. Use as a context manager: ``with OnnxrtRunner(path) as r: r.infer({...})``."""

    backend: str = "base"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.backend
        self.is_active = False

    # ----- public API (do not override) -------------------------------------------------
    def activate(self) -> "Runner":
        if self.is_active:
            raise RuntimeError(f"{self.name}: activate() called twice without deactivate()")
        self.activate_impl()
        self._specs = {s.name: s for s in self.input_specs_impl()}  # read once, not per inference
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: deactivate() called on an inactive runner")
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        if self.is_active:
            self.deactivate()

    def input_specs(self) -> list[TensorSpec]:
        self._check_active()
        return list(self._specs.values())

    def infer(self, feeds: dict[str, np.ndarray], check_inputs: bool = True) -> "OrderedDict[str, np.ndarray]":
        """Run one inference. ``feeds`` maps every input name to an array of matching rank/dtype.

        Timing loops pass ``check_inputs=False`` after a first checked call, as Polygraphy's do.
        """
        if not check_inputs:
            return self.infer_impl(feeds)
        self._check_active()
        specs = self._specs
        missing = sorted(set(specs) - set(feeds))
        extra = sorted(set(feeds) - set(specs))
        if missing or extra:
            raise UserInputError(
                f"{self.name}: inputs do not match the model: missing {missing}, unexpected {extra}; "
                f"expected {sorted(specs)}."
            )
        for name, arr in feeds.items():
            spec = specs[name]
            if arr.ndim != len(spec.shape):
                raise UserInputError(
                    f"{self.name}: input '{name}' has rank {arr.ndim} (shape {tuple(arr.shape)}) but the model "
                    f"expects rank {len(spec.shape)} {spec.shape}."
                )
            for i, (got, want) in enumerate(zip(arr.shape, spec.shape)):
                if isinstance(want, int) and want > 0 and got != want:
                    raise UserInputError(
                        f"{self.name}: input '{name}' dim {i} is {got} but the model fixes it at {want} "
                        f"(expected shape {spec.shape})."
                    )
        return self.infer_impl(feeds)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on CPU backends)."""

    def describe(self) -> dict[str, Any]:
        """Backend, precision, device and thread count recorded with every measurement."""
        return {"backend": self.backend, "name": self.name}

    def _check_active(self) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: call activate() (or use 'with') before inference")

    # ----- hooks for backends -------------------------------------------------------------
    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def deactivate_impl(self) -> None: ...

    @abstractmethod
    def input_specs_impl(self) -> list[TensorSpec]: ...

    @abstractmethod
    def infer_impl(self, feeds: dict[str, np.ndarray]) -> "OrderedDict[str, np.ndarray]": ...
