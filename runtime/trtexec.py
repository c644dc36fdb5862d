"""TensorRT versions and the one ``trtexec`` command builder, shared by export (building engines on the
target) and profile (measuring on a Jetson).

What each TensorRT line can do (see :mod:`export.opsets` for the sources of the parser limits):
8.2 (JetPack 4.6) ``--workspace=N`` and bindings; 8.5 (JetPack 5.1) ``--memPoolSize`` and the tensor
API; 10.x (JetPack 6) opset ≤ 20; 11.x strongly typed builds only — no ``--fp16``/``--int8``, the
graph (FP16 ONNX, Q/DQ) carries the precision, no JetPack, no DLA.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from compress.errors import UserInputError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TrtVersion:
    """The parser/builder capabilities of one TensorRT major.minor line."""

    version: str  # as given, e.g. "8.5" or "10.3.0"
    major: int
    minor: int
    max_opset: int
    max_ir_version: int
    jetpack: str  # the JetPack line that ships it, or "" for desktop-only versions
    precision_flags: bool  # --fp16/--int8 and BuilderFlag.FP16/INT8 exist (weakly typed builds)
    tensor_api: bool  # name-based I/O tensor API (TRT >= 8.5) rather than bindings
    dla: bool  # DLA cores may be targeted

    @property
    def label(self) -> str:
        return f"TensorRT {self.version}" + (f" (JetPack {self.jetpack})" if self.jetpack else "")


# (major, minor lower bound) → limits; the first row whose bound is <= the version applies.
_TABLE: list[tuple[tuple[int, int], dict]] = [
    ((11, 0), dict(max_opset=25, max_ir_version=10, jetpack="", precision_flags=False, tensor_api=True, dla=False)),
    ((10, 0), dict(max_opset=20, max_ir_version=9, jetpack="6.x", precision_flags=True, tensor_api=True, dla=True)),
    ((8, 6), dict(max_opset=17, max_ir_version=8, jetpack="", precision_flags=True, tensor_api=True, dla=True)),
    ((8, 5), dict(max_opset=17, max_ir_version=8, jetpack="5.1", precision_flags=True, tensor_api=True, dla=True)),
    ((8, 2), dict(max_opset=13, max_ir_version=7, jetpack="4.6", precision_flags=True, tensor_api=False, dla=True)),
]
DEFAULT_TRT_VERSION = "10.3"  # Jetson Orin, JetPack 6
KNOWN_TARGETS = ("8.2", "8.5", "10.3", "11")


def resolve_trt_version(version: str | None) -> TrtVersion:
    """Parse ``"8.5"``, ``"10.3.0"``, ``"11"`` … into a ``TrtVersion``; ``None`` → the Orin default."""
    text = (version or DEFAULT_TRT_VERSION).strip()
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.\d+)*", text)
    if not m:
        raise UserInputError(
            f"--trt-version '{text}' is not a version number; use e.g. 8.2 (JetPack 4.6), 8.5 (JetPack 5.1), "
            "10.3 (JetPack 6) or 11."
        )
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    for (bmaj, bmin), limits in _TABLE:
        if (major, minor) >= (bmaj, bmin):
            return TrtVersion(version=text, major=major, minor=minor, **limits)
    raise UserInputError(
        f"TensorRT {text} is older than the oldest supported target 8.2 (JetPack 4.6); "
        f"known targets: {', '.join(KNOWN_TARGETS)}."
    )


def _shape(name: str, shape: Sequence[int]) -> str:
    return f"{name}:{'x'.join(str(int(d)) for d in shape)}"


def trtexec_command(*, onnx: str | None = None, engine: str | None = None, save_engine: str | None = None,
                    precision: str = "fp32", target: TrtVersion | None = None, timing_cache: str | None = None,
                    workspace_mb: int | None = None, input_name: str = "input",
                    profile: dict[str, Sequence[int]] | None = None, shape: Sequence[int] | None = None,
                    dla_core: int | None = None, iterations: int | None = None, warmup_ms: int | None = None,
                    spin_wait: bool = False, exe: str = "trtexec") -> list[str]:
    """``trtexec`` argv: build from ``onnx`` (``save_engine``) or load ``engine``; the flags the target's
    TensorRT understands (an unknown target is taken to accept precision flags, as 8.x/10.x do).

    ``profile``: min/opt/max shapes of a dynamic input; ``shape``: one fixed input shape to run at.
    """
    if precision not in PRECISIONS:
        raise UserInputError(f"Unknown precision '{precision}'. Known: {', '.join(PRECISIONS)}.")
    cmd = [exe, f"--loadEngine={engine}" if engine else f"--onnx={onnx}"]
    if save_engine:
        cmd.append(f"--saveEngine={save_engine}")
    if timing_cache:
        cmd.append(f"--timingCacheFile={timing_cache}")
    if workspace_mb is not None:
        old = target is not None and (target.major, target.minor) < (8, 4)
        cmd.append(f"--workspace={workspace_mb}" if old else f"--memPoolSize=workspace:{workspace_mb}")
    if profile:
        cmd += [f"--{k}Shapes={_shape(input_name, profile[k])}" for k in ("min", "opt", "max")]
    if not engine and (target is None or target.precision_flags):
        # Q/DQ scales come from the graph; FP16 lets the unquantised layers avoid FP32.
        cmd += {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}[precision]
    if shape is not None:
        cmd.append(f"--shapes={_shape(input_name, shape)}")
    if dla_core is not None:
        cmd += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    if iterations is not None:
        cmd.append(f"--iterations={int(iterations)}")
    if warmup_ms is not None:
        cmd.append(f"--warmUp={int(warmup_ms)}")
    if spin_wait:
        cmd.append("--useSpinWait")
    return cmd


def sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` → ``model.engine.json``: the metadata an engine carries beside it."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")
