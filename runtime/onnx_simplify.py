"""ONNX graph simplification with whichever tool is installed: onnxsim, else onnxslim.

onnxsim has no wheels for some platforms (Jetson's aarch64 Python among them); onnxslim is pure
Python. Both fold constants and shape arithmetic, which TensorRT and our graph analysis need.
"""
from __future__ import annotations

from typing import Any

SIMPLIFIERS = ("onnxsim", "onnxslim")


class SimplifyError(RuntimeError):
    """The simplifier ran and failed (or changed what the graph computes)."""


def available_simplifier() -> str | None:
    """The first installed simplifier, or None."""
    import importlib.util

    return next((name for name in SIMPLIFIERS if importlib.util.find_spec(name) is not None), None)


def simplify_model(proto: Any) -> tuple[Any, str | None]:
    """``(simplified ModelProto, tool)``; ``(proto, None)`` when neither tool is installed."""
    tool = available_simplifier()
    if tool is None:
        return proto, None
    try:
        if tool == "onnxsim":
            from onnxsim import simplify

            out, ok = simplify(proto)
            if not ok:
                raise SimplifyError("onnxsim produced a graph that does not match the original")
            return out, tool
        import onnxslim

        return onnxslim.slim(proto), tool
    except SimplifyError:
        raise
    except Exception as exc:  # both tools raise many types on graphs they cannot handle
        raise SimplifyError(f"{tool} failed ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from exc
