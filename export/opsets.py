"""The ONNX opset and IR version of an export: what each TensorRT version's ONNX parser reads.

Sources for the limits (first line of ``docs/operators.md`` on each onnx-tensorrt release branch,
and the ONNX package each parser was built against, which fixes the newest IR version it knows):

- 8.2 (JetPack 4.6: Nano, TX2, Xavier): "TensorRT 8.2 supports operators up to Opset 13"
  (onnx-tensorrt ``release/8.2-GA``); parser built with ONNX 1.8 → IR version 7.
- 8.5 (JetPack 5.1: Xavier, Orin): "TensorRT 8.5 supports operators up to Opset 17"
  (``release/8.5-GA``); ONNX 1.12 → IR version 8.
- 10.x (JetPack 6: Orin 10.3; desktop): "TensorRT 10.0 supports operators in the inclusive range
  of opset 9 to opset 20"; ONNX 1.16 → IR version 10 (we write 9, enough for opset 20).
- 11.x (PyPI ``tensorrt`` today): opset ≤ 25 with ONNX 1.20 (TensorRT ONNX opset guide); strongly
  typed networks only — FP16/INT8 builder flags and implicit calibrators were removed, precision
  comes from the graph (FP16 ONNX, Q/DQ). JetPack and DLA are not supported by 11.x.

The default export opset is 17: the newest opset that every TensorRT version above from JetPack 5 on and
ONNX Runtime accept, and one that the TorchScript exporter emits natively (opset 18 moved Reduce*
axes to inputs, which breaks down-conversion). A version with a lower ceiling lowers it.
"""
from __future__ import annotations

from compress.errors import UserInputError
from runtime.trtexec import TrtVersion

DEFAULT_OPSET = 17
# ONNX Runtime 1.17+ reads everything up to opset 20; a newer exporter may go further.
ORT_MAX_OPSET = 21


def choose_opset(requested: int | None, trt: TrtVersion | None) -> int:
    """The export opset: ``requested`` if ``trt``'s parser reads it, else the default capped by it."""
    ceiling = min(ORT_MAX_OPSET, trt.max_opset) if trt else ORT_MAX_OPSET
    if requested is None:
        return min(DEFAULT_OPSET, ceiling)
    if requested < 11:
        raise UserInputError(f"--opset {requested} is too old; use 11 or newer (default {DEFAULT_OPSET}).")
    if requested > ceiling:
        who = trt.label if trt and trt.max_opset < ORT_MAX_OPSET else "ONNX Runtime"
        raise UserInputError(f"--opset {requested} is newer than {who} parses (at most {ceiling}); "
                             f"use --opset {ceiling} or lower.")
    return requested


def choose_ir_version(opset: int, trt: TrtVersion | None) -> int:
    """The lowest IR version valid for ``opset``, capped by what ``trt``'s parser knows.

    Older parsers reject models whose IR version is newer than the ONNX release they were built
    with, and a lower IR version loses nothing for a graph that only uses ``opset``.
    """
    from onnx import helper

    needed = min(ir for _, ir, op, *_ in helper.VERSION_TABLE if op >= opset)
    if trt is not None and needed > trt.max_ir_version:
        raise UserInputError(
            f"opset {opset} needs ONNX IR version {needed}, newer than {trt.label} reads "
            f"({trt.max_ir_version}); lower --opset to {trt.max_opset}."
        )
    return needed
