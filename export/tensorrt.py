"""TensorRT engines: the ``trtexec`` script for building on the target, and an in-process builder.

An engine runs only on the GPU architecture and TensorRT version it was built with, so the
default for a Jetson is to build ON it with ``build_engine.sh``. Metadata never goes inside the
engine file (trtexec and DeepStream then refuse it); it goes in ``<engine>.json`` beside it.

Flags per target (``export.opsets``): 8.2 uses ``--workspace=N`` (MiB); 8.5+ uses
``--memPoolSize=workspace:N`` (MiB); 8.x/10.x take ``--fp16``/``--int8`` (INT8 from Q/DQ scales);
11.x has no precision flags — the FP16 or Q/DQ ONNX itself carries the precision.
"""
from __future__ import annotations

import datetime as _dt
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.errors import ExportError, MissingDependencyError, UserInputError
from compress.io import sha256_file, write_json_atomic, write_text_atomic
from runtime.trtexec import PRECISIONS, TrtVersion, sidecar_path
from runtime.trtexec import trtexec_command as build_command

ENGINE_NAME = "model.engine"
TIMING_CACHE = "timing.cache"
BUILD_LOG = "build.log"
SCRIPT_NAME = "build_engine.sh"


@dataclass(frozen=True)
class TrtBuildConfig:
    """What to build: precision, batch range (min/opt/max; equal for a static graph), DLA, workspace."""

    target: TrtVersion
    precision: str = "fp32"  # fp32 | fp16 | int8
    input_name: str = "input"
    input_shape: tuple[int, ...] = (1, 3, 224, 224)  # shape with the opt batch
    dynamic_batch: bool = False
    min_batch: int = 1
    max_batch: int = 1
    dla_core: int | None = None
    workspace_mb: int = 1024

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserInputError(f"Unknown precision '{self.precision}'. Known: fp32, fp16, int8.")
        if self.workspace_mb < 1:
            raise UserInputError(f"--workspace-mb must be >= 1, got {self.workspace_mb}.")
        if self.dla_core is not None:
            if not self.target.dla:
                raise UserInputError(f"{self.target.label} cannot target DLA cores; drop --dla.")
            if self.dla_core not in (0, 1):
                raise UserInputError(f"--dla {self.dla_core} is not a DLA core; Jetson Xavier/Orin have cores 0 and 1.")
            if self.precision == "fp32":
                raise UserInputError("DLA runs only FP16 or INT8; add --fp16 or --int8 to use --dla.")
        opt = self.input_shape[0]
        if self.dynamic_batch and not (1 <= self.min_batch <= opt <= self.max_batch):
            raise UserInputError(f"batch range must satisfy 1 <= min ({self.min_batch}) <= opt ({opt}) "
                                 f"<= max ({self.max_batch}).")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Profile shapes ``min``/``opt``/``max`` for the input."""
        rest = tuple(self.input_shape[1:])
        return {"min": (self.min_batch,) + rest, "opt": tuple(self.input_shape), "max": (self.max_batch,) + rest}


def trtexec_command(cfg: TrtBuildConfig, onnx_name: str, engine_name: str = ENGINE_NAME,
                    timing_cache: str = TIMING_CACHE) -> list[str]:
    """The ``trtexec`` build command that the target's TensorRT version understands."""
    return build_command(onnx=onnx_name, save_engine=engine_name, timing_cache=timing_cache, precision=cfg.precision,
                         target=cfg.target, workspace_mb=cfg.workspace_mb, input_name=cfg.input_name,
                         profile=cfg.shapes() if cfg.dynamic_batch else None, dla_core=cfg.dla_core)


# Parses the trtexec log on the target and writes the sidecar next to the engine (python3 ships
# with every JetPack). Static facts are baked in by build_script(); the rest comes from the log.
_SIDECAR_PY = r'''
import json, re, sys
log = open(sys.argv[1], encoding="utf-8", errors="replace").read()
def find(p):
    m = re.search(p, log)
    return m.group(1).strip() if m else None
meta = json.loads(sys.argv[3])
ver = find(r"TensorRT version:\s*([0-9.]+)")
v = find(r"\[TensorRT v(\d+)\]")
if ver is None and v:  # 8502 = 8.5.2 (8.x: M*1000+m*100+p), 100300 = 10.3.0 (10+: M*10000+m*100+p)
    n = int(v)
    ver = f"{n // 10000}.{n // 100 % 100}.{n % 100}" if n >= 10000 else f"{n // 1000}.{n // 100 % 10}.{n % 100}"
meta.update(tensorrt_version=ver, gpu_name=find(r"Selected Device:\s*(.+)"),
            compute_capability=find(r"Compute Capability:\s*([0-9.]+)"), built_with="trtexec")
json.dump(meta, open(sys.argv[2], "w"), indent=2)
'''


def build_script(cfg: TrtBuildConfig, onnx_name: str, static_meta: dict[str, Any]) -> str:
    """The text of ``build_engine.sh``: run it in the folder holding ``onnx_name`` on the target."""
    import json

    cmd = " ".join(shlex.quote(a) for a in trtexec_command(cfg, onnx_name))
    meta = shlex.quote(json.dumps(static_meta, sort_keys=True))
    return f"""#!/usr/bin/env bash
# Build the TensorRT engine ON the target ({cfg.target.label}); engines only run on the GPU
# and TensorRT version that built them. Writes {ENGINE_NAME}, {sidecar_path(ENGINE_NAME).name}, {BUILD_LOG}, {TIMING_CACHE}.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/src/tensorrt/bin"  # where JetPack installs trtexec
command -v trtexec >/dev/null || {{ echo "trtexec not found (JetPack: /usr/src/tensorrt/bin)" >&2; exit 1; }}
{cmd} 2>&1 | tee {BUILD_LOG}
python3 - {BUILD_LOG} {sidecar_path(ENGINE_NAME).name} {meta} <<'PY'
{_SIDECAR_PY.strip()}
PY
echo "built $(pwd)/{ENGINE_NAME}"
"""


def write_build_script(path: str | Path, cfg: TrtBuildConfig, onnx_name: str, static_meta: dict[str, Any]) -> Path:
    """Write ``build_engine.sh`` (executable)."""
    path = write_text_atomic(path, build_script(cfg, onnx_name, static_meta))
    path.chmod(0o755)
    return path


def static_sidecar(cfg: TrtBuildConfig, onnx_path: Path) -> dict[str, Any]:
    """Sidecar fields known before the build: precision, shapes, the ONNX it came from."""
    return {"format": "compress-trt-sidecar", "precision": cfg.precision, "input_name": cfg.input_name,
            "shapes": {k: list(v) for k, v in cfg.shapes().items()}, "dynamic_batch": cfg.dynamic_batch,
            "dla_core": cfg.dla_core, "workspace_mb": cfg.workspace_mb, "target_trt_version": cfg.target.version,
            "onnx": onnx_path.name, "onnx_sha256": sha256_file(onnx_path)}


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): TensorRT importable AND a CUDA GPU visible."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "the Python package 'tensorrt' is not importable"
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU is visible"
    return True, ""


@dataclass
class EngineInfo:
    """A built engine and its sidecar."""

    engine: Path
    sidecar: Path
    meta: dict[str, Any] = field(default_factory=dict)


def build_engine(onnx_path: str | Path, engine_path: str | Path, cfg: TrtBuildConfig,
                 timing_cache: str | Path | None = None) -> EngineInfo:
    """Build ``engine_path`` from ``onnx_path`` with the TensorRT Python API (8.x / 10.x / 11.x).

    Needs ``tensorrt`` and a CUDA GPU; raises ``MissingDependencyError`` otherwise.
    """
    ok, why = tensorrt_status()
    if not ok:
        raise MissingDependencyError(f"cannot build a TensorRT engine here: {why}.")
    import tensorrt as trt
    import torch

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    major = int(trt.__version__.split(".")[0])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TRT 8.x needs the explicit-batch flag for ONNX; 10.x made it the only mode (flag deprecated).
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errs[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    if hasattr(trt.BuilderFlag, "FP16"):  # gone in TRT 11: the graph's types decide
        if cfg.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if cfg.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # explicit Q/DQ scales; no calibrator
    if cfg.dynamic_batch:
        profile = builder.create_optimization_profile()
        s = cfg.shapes()
        profile.set_shape(cfg.input_name, s["min"], s["opt"], s["max"])
        config.add_optimization_profile(profile)
    if cfg.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = cfg.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_path = Path(timing_cache) if timing_cache else engine_path.with_name(TIMING_CACHE)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path.name} "
                          "(see the TensorRT log above).")
    engine_path.write_bytes(bytes(plan))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    cap = torch.cuda.get_device_capability()
    meta = {**static_sidecar(cfg, onnx_path), "tensorrt_version": trt.__version__,
            "gpu_name": torch.cuda.get_device_name(), "compute_capability": f"{cap[0]}.{cap[1]}",
            "built_with": "tensorrt-python", "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    side = write_json_atomic(sidecar_path(engine_path), meta)
    return EngineInfo(engine=engine_path, sidecar=side, meta=meta)


