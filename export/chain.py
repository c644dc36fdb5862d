"""``export_checkpoint``: checkpoint → ONNX (+FP16, +INT8 QDQ) → parity → TensorRT engine or build script.

Everything is written into a hidden sibling folder that is renamed onto the output folder only
at the end, so an interrupted export never leaves a folder that looks complete. A parity failure
keeps the files but marks the folder (``PARITY_FAILED`` and ``"passed": false``). ``--force``
replaces only a previous export of ours (recognised by its ``export.json``), never a folder holding
anything else, the source checkpoint or a folder containing it, or the current folder or its parents.
The outcome (``ok``, ``parity-failed``, ``engine-not-built``) comes back as data in the result.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from compress.errors import UserInputError
from compress.io import read_json, write_json_atomic, write_text_atomic
from export.onnx import EXPORTERS, OUTPUT_NAMES, OnnxInfo, OnnxOptions, export_module, export_onnx, metadata_props
from export.int8 import CALIB_METHODS, MIN_CALIB_IMAGES, reduce_range_choice
from export.samples import budget_images, inputs_of
from export.int8_fixes import fix_modes
from export.variants import INT8_FILES, INT8_FLAVOUR_CHOICES, Int8Variant, write_fp16, write_int8
from export.opsets import TrtVersion, choose_ir_version, choose_opset
from runtime.trtexec import resolve_trt_version
from export.verify import ParityCriteria, ParityReport, check_parity

if TYPE_CHECKING:
    from compress.models.restore import Checkpoint
    from export.tensorrt import TrtBuildConfig

FAILED_MARKER = "PARITY_FAILED"
EXPORT_MARKER = "export.json"
EXPORT_FORMAT = "compress-export"


@dataclass(frozen=True)
class ExportConfig:
    """Every option of ``compress export`` (see the CLI for their meaning)."""

    batch: int = 1
    dynamic_batch: bool = False
    max_batch: int = 32  # top of the TensorRT profile for --dynamic-batch
    image_size: int | None = None
    opset: int | None = None
    exporter: str = "torchscript"
    simplify: bool = True
    embed_preprocess: bool = False
    task: str = "classify"
    fp16: bool = False
    int8: bool = False
    calib_images: int = 256
    calib_method: str = "entropy"
    int8_flavour: str = "auto"  # cpu | trt | both; auto: cpu, plus trt with --trt
    int8_budget: float | None = 1.0  # points: % of top-1 changed, or OA drop on labelled images; None: no fallback
    int8_exclude: tuple[str, ...] = ()
    int8_reduce_range: str = "auto"  # auto (from this CPU's features) | on | off
    int8_max_float: float = 0.5  # at most this share of the weighted layers may stay float
    int8_cle: str = "auto"  # cross-layer equalisation: auto (tried by the INT8 budget, kept when judged better) | on | off
    int8_adaround: str = "auto"  # the same, after CLE
    int8_bias_correction: str = "auto"  # the same, after AdaRound (export/int8_fixes.py)
    fallback_images: int = 1000  # judge the INT8 budget on this many images (validation, then training)
    trt: bool = False
    trt_version: str | None = None
    dla: int | None = None
    workspace_mb: int = 1024
    remote: str | None = None
    criteria: ParityCriteria = field(default_factory=ParityCriteria)
    parity_samples: int = 1000
    repeats: int = 10
    force: bool = False


@dataclass
class ExportResult:
    """What an export produced. ``passed`` is parity; ``engine_status`` says what happened to TensorRT."""

    out_dir: Path
    files: list[str]
    onnx: OnnxInfo
    parity: ParityReport
    int8: list[Int8Variant] = field(default_factory=list)
    engine_status: str = "not requested"  # built | built-remote | script-only | not requested
    engine_note: str = ""
    engine_onnx: str = ""  # the ONNX file build_engine.sh builds from
    passed: bool = True
    outcome: str = "ok"  # ok | parity-failed | engine-not-built
    message: str = ""  # what to do next when the outcome is not ok
    notes: list[str] = field(default_factory=list)


def default_samples_loader(checkpoint_dir: Path, manifest: Any, split: str, limit: int) -> Any:
    from compress.data.samples import load_samples

    return load_samples(checkpoint_dir, manifest, split=split, limit=limit)


def validate_export_config(cfg: ExportConfig) -> None:
    """Everything about an export knowable before any file is written (one line per mistake)."""
    if cfg.batch < 1:
        raise UserInputError(f"--batch must be >= 1, got {cfg.batch}.")
    if cfg.dynamic_batch and cfg.max_batch < cfg.batch:
        raise UserInputError(f"--max-batch ({cfg.max_batch}) must be >= --batch ({cfg.batch}).")
    if cfg.task not in OUTPUT_NAMES:
        raise UserInputError(f"Unknown --task '{cfg.task}'. Known: {', '.join(OUTPUT_NAMES)}.")
    EXPORTERS.get(cfg.exporter)
    from compress.data.bundle import check_image_size

    check_image_size(cfg.image_size)
    if cfg.int8 and cfg.calib_images < MIN_CALIB_IMAGES:
        raise UserInputError(f"--calib-images {cfg.calib_images} is too few for INT8 calibration; use at least "
                             f"{MIN_CALIB_IMAGES} (256-1000 is typical).")
    if not cfg.trt and (cfg.dla is not None or cfg.remote):
        raise UserInputError("--dla and --remote build TensorRT engines; add --trt.")
    if cfg.remote:
        from runtime.ssh import parse_host

        parse_host(cfg.remote)
    if cfg.parity_samples < 1:
        raise UserInputError("parity needs at least 1 sample.")
    if cfg.int8:
        CALIB_METHODS.get(cfg.calib_method)
    if cfg.int8_flavour not in ("auto", *INT8_FLAVOUR_CHOICES):
        raise UserInputError(f"--int8-flavour must be cpu, trt or both, got '{cfg.int8_flavour}'.")
    if cfg.int8 and cfg.trt and cfg.int8_flavour == "cpu":
        raise UserInputError("an INT8 TensorRT engine is built from the TensorRT-flavour file; with --trt use "
                             "--int8-flavour trt or both (cpu makes only the ONNX Runtime file).")
    reduce_range_choice(cfg.int8_reduce_range)
    fix_modes(cfg)
    if cfg.int8_budget is not None and cfg.int8_budget < 0:
        raise UserInputError(f"--int8-budget is in points (percent of images) and must be ≥ 0, got {cfg.int8_budget}.")
    if not 0 < cfg.int8_max_float <= 1:
        raise UserInputError(f"int8_max_float is a share of the layers in (0, 1], got {cfg.int8_max_float}.")
    if (cfg.int8_exclude or cfg.int8_flavour != "auto") and not cfg.int8:
        raise UserInputError("--int8-exclude and --int8-flavour shape the INT8 file; add --int8.")


def is_export_dir(path: Path) -> bool:
    """A folder written by ``compress export`` (its ``export.json`` says so)."""
    marker = path / EXPORT_MARKER
    try:
        data = read_json(marker) if marker.is_file() else None
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("format") == EXPORT_FORMAT or "checkpoint_sha256" in data)


def check_output_dir(out_dir: Path, checkpoint_dir: Path, force: bool) -> None:
    """Refuse any output folder whose replacement could lose something that is not a previous export."""
    out, ckpt, cwd = out_dir.resolve(), checkpoint_dir.resolve(), Path.cwd().resolve()
    if out == ckpt or out in ckpt.parents:
        raise UserInputError(f"-o '{out_dir}' is or contains the checkpoint being exported; pick a new folder, "
                             "e.g. -o export/<name>.")
    if out == cwd or out in cwd.parents:
        raise UserInputError(f"-o '{out_dir}' is the current folder or one of its parents; export into a new "
                             "sub-folder, e.g. -o export/<name>.")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserInputError(f"-o '{out_dir}' is a file; pick a folder that does not exist yet.")
    if not any(out.iterdir()):
        return
    if not force:
        raise UserInputError(f"output folder '{out_dir}' already exists; pass --force to replace a previous "
                             "export there, or pick another -o.")
    if not is_export_dir(out):
        raise UserInputError(f"'{out_dir}' holds files that are not a compress export (no {EXPORT_MARKER}); "
                             "--force only replaces a previous export — pick another -o.")


def _ort_candidates(path: Path, precision: str, label: str | None = None) -> list[Candidate]:
    from runtime.onnxrt import OnnxrtRunner, available_providers

    have = available_providers()
    label = label or precision
    from export.int8 import runs_as_written

    cpu = OnnxrtRunner(path, providers="cpu", fuse=not (precision == "int8" and runs_as_written(path)))
    out = [(f"onnxrt-cpu-{label}", cpu, precision, path.name)]
    for short, full in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        if full in have:
            out.append((f"onnxrt-{short}-{label}", OnnxrtRunner(path, providers=short), precision, path.name))
    return out


def _install(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` onto ``out_dir``; a forced overwrite moves the old folder aside first."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, cfg: ExportConfig,
                      samples_loader: Callable[..., Any] | None = None) -> ExportResult:
    """Export ``checkpoint`` into ``out_dir``; see the module docstring for the guarantees."""
    from compress.checkpoint import resolve_checkpoint_dir, weights_hash
    from compress.models.restore import load_checkpoint

    validate_export_config(cfg)
    out_dir = Path(out_dir)
    check_output_dir(out_dir, resolve_checkpoint_dir(checkpoint), cfg.force)
    target: TrtVersion | None = resolve_trt_version(cfg.trt_version) if (cfg.trt or cfg.trt_version) else None
    ckpt = load_checkpoint(checkpoint)
    man = ckpt.manifest
    from export.onnx import DYNAMO_MIN_OPSET

    default = DYNAMO_MIN_OPSET if cfg.exporter == "dynamo" else None
    opset = choose_opset(cfg.opset if cfg.opset is not None else default, target)
    size = cfg.image_size or man.image_size
    opts = OnnxOptions(batch=cfg.batch, dynamic_batch=cfg.dynamic_batch, image_size=size, in_chans=man.in_chans,
                       opset=opset, ir_version=choose_ir_version(opset, target), exporter=cfg.exporter,
                       simplify=cfg.simplify, embed_preprocess=cfg.embed_preprocess, task=cfg.task)
    if cfg.trt:  # validates --dla/--workspace-mb before any work is done
        from export.tensorrt import TrtBuildConfig

        precision = "int8" if cfg.int8 else "fp16" if cfg.fp16 else "fp32"
        in_shape = (cfg.batch, size, size, man.in_chans) if cfg.embed_preprocess else (cfg.batch, man.in_chans, size, size)
        trt_cfg = TrtBuildConfig(target=target, precision=precision, input_shape=in_shape,
                                 dynamic_batch=cfg.dynamic_batch, min_batch=1 if cfg.dynamic_batch else cfg.batch,
                                 max_batch=cfg.max_batch if cfg.dynamic_batch else cfg.batch, dla_core=cfg.dla,
                                 workspace_mb=cfg.workspace_mb)
    loader = samples_loader or default_samples_loader
    samples = loader(ckpt.path, man, "test", cfg.parity_samples)
    inputs = inputs_of(samples, cfg.embed_preprocess, size, "test samples")
    labels = np.asarray(samples.labels).astype(np.int64) if samples.labels is not None else None

    final = out_dir.resolve()
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    job = ExportJob(ckpt, weights_hash(ckpt.path), cfg, opts, trt_cfg if cfg.trt else None, loader)
    try:
        result = _export_into(tmp, out_dir, job, ParitySamples(inputs, labels, samples.source))
        _install(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        from compress.io import raise_if_disk_full

        raise_if_disk_full(final.parent, exc)
        raise
    result.out_dir = out_dir
    if not result.passed:
        failed = result.parity.failures()
        result.outcome = "parity-failed"
        result.message = (f"parity failed for {failed}; files kept in {out_dir} and marked PARITY_FAILED "
                          "(see parity.json).")
    elif cfg.trt and cfg.remote:
        from export.remote import plan_remote_build, run_remote_build

        run_remote_build(plan_remote_build(cfg.remote, final, result.engine_onnx))
        result.engine_status, result.engine_note = "built-remote", f"built on {cfg.remote}"
        result.files = sorted(p.name for p in final.iterdir())
    elif cfg.trt and result.engine_status == "script-only":
        result.outcome = "engine-not-built"
        result.message = (f"TensorRT engine not built ({result.engine_note}); the ONNX, parity.json and "
                          f"build_engine.sh are in {out_dir} — copy that folder to the target and run `bash "
                          "build_engine.sh` there, or pass --remote user@host.")
    return result


@dataclass(frozen=True)
class ExportJob:
    """One export's fixed inputs: the loaded checkpoint, its weights' hash, the settings, the ONNX options, the
    TensorRT build (None: no engine asked for) and the loader of calibration / judging images."""

    ckpt: Checkpoint
    sha: str
    cfg: ExportConfig
    opts: OnnxOptions
    trt: TrtBuildConfig | None
    loader: Callable[..., Any]


@dataclass(frozen=True)
class ParitySamples:
    """The test images parity runs on (``[N, C, H, W]`` float32, or uint8 NHWC with embedded preprocessing),
    their labels (None: unlabelled) and where they came from."""

    inputs: np.ndarray
    labels: np.ndarray | None
    source: str


# (parity row name, runner, precision, the file it runs) — every row knows its file from the start
Candidate = tuple[str, Any, str, str]


def _export_into(tmp: Path, out_dir: Path, job: ExportJob, samples: ParitySamples) -> ExportResult:
    from runtime.torch_runner import TorchRunner

    ckpt, cfg, opts, loader = job.ckpt, job.cfg, job.opts, job.loader
    man = ckpt.manifest
    notes: list[str] = []
    module = export_module(ckpt.model, cfg.task, cfg.embed_preprocess, man.mean, man.std)
    info = export_onnx(module, tmp / "model.onnx", opts, metadata_props(man, job.sha, opts, "fp32"))
    info.path = out_dir / "model.onnx"
    if info.simplifier.startswith("skipped"):
        notes.append(f"graph not simplified: {info.simplifier.removeprefix('skipped: ')}; TensorRT may reject "
                     "unfolded shape arithmetic")
    candidates = _ort_candidates(tmp / "model.onnx", "fp32")
    if cfg.fp16:
        candidates += _ort_candidates(tmp / write_fp16(tmp, cfg.embed_preprocess), "fp16")
    variants: list[Int8Variant] = []
    if cfg.int8:
        calib = loader(ckpt.path, man, "train", cfg.calib_images)
        calib_x = inputs_of(calib, cfg.embed_preprocess, opts.image_size, "calibration images")
        if len(calib_x) < MIN_CALIB_IMAGES:  # asking for more would not help: the split has no more
            raise UserInputError(f"INT8 calibration needs at least {MIN_CALIB_IMAGES} images, but the run's "
                                 f"training split holds only {len(calib_x)}; train on more images (a higher "
                                 "--train-ratio or more data), or export without --int8.")
        if len(calib_x) < cfg.calib_images:
            notes.append(f"INT8 calibration used all {len(calib_x)} training images ({cfg.calib_images} were asked "
                         "for; the training split has no more).")
        judge_x, judge_y = None, None
        if cfg.int8_budget is not None and cfg.task == "classify":
            judge_x, judge_y = budget_images(ckpt.path, man, loader, cfg, opts.image_size, notes)
        variants = write_int8(tmp, cfg, info.ir_version, calib_x, judge_x, judge_y)
        for v in variants:
            candidates += _ort_candidates(tmp / v.file, "int8", "int8" if v.flavour == "cpu" else f"int8-{v.flavour}")
            if v.fallback is not None and not v.fallback.met:
                notes.append(f"{v.file}: {v.fallback.note}.")

    status, note, engine_onnx = "not requested", "", ""
    if job.trt is not None:
        status, note, engine_onnx, engine = _tensorrt_step(tmp, job.trt, build_here=not cfg.remote)
        candidates += [engine] if engine else []
    in_shape = info.input_shape
    ref = TorchRunner(module, input_shape=[d if isinstance(d, int) else -1 for d in in_shape],
                      input_dtype=info.input_dtype, output_names=(info.output_name,))
    report = check_parity(ref, [c[:3] for c in candidates], samples.inputs, samples.labels, cfg.task, cfg.batch,
                          cfg.dynamic_batch, cfg.criteria, samples.source, cfg.repeats)
    files = {name: file for name, _, _, file in candidates}
    for row in report.rows:
        row.file = files.get(row.name)
    write_json_atomic(tmp / "parity.json", report)
    if not report.passed:
        failed = report.failures()
        write_text_atomic(tmp / FAILED_MARKER, f"parity failed for: {failed}; see parity.json\n")
    result = ExportResult(out_dir=out_dir, files=[], onnx=info, parity=report, int8=variants,
                          engine_status=status, engine_note=note, engine_onnx=engine_onnx,
                          passed=report.passed, notes=notes)
    write_json_atomic(tmp / EXPORT_MARKER, {"format": EXPORT_FORMAT, "checkpoint": str(ckpt.path),
                                            "checkpoint_sha256": job.sha, "config": cfg, "result": result})
    result.files = sorted(p.name for p in tmp.iterdir())
    return result


def _tensorrt_step(tmp: Path, trt_cfg: TrtBuildConfig, build_here: bool) -> tuple[str, str, str, Candidate | None]:
    """Write build_engine.sh; build in-process when TensorRT and a GPU are here: (status, note, the ONNX file
    the engine is built from, the engine's parity candidate or None)."""
    from export.tensorrt import SCRIPT_NAME, build_engine, static_sidecar, tensorrt_status, write_build_script

    t = trt_cfg.target
    # 8.x/10.x: FP16 is a builder flag on the FP32 graph; INT8 and every 11.x build read the typed graph.
    onnx_name = {"fp32": "model.onnx", "fp16": "model.onnx" if t.precision_flags else "model_fp16.onnx",
                 "int8": INT8_FILES["trt"]}[trt_cfg.precision]
    write_build_script(tmp / SCRIPT_NAME, trt_cfg, onnx_name, static_sidecar(trt_cfg, tmp / onnx_name))
    if not build_here:
        return "script-only", "to be built on the remote target", onnx_name, None
    ok, why = tensorrt_status()
    if not ok:
        return "script-only", why, onnx_name, None
    from runtime.tensorrt_runner import TrtRunner

    built = build_engine(tmp / onnx_name, tmp / "model.engine", trt_cfg)
    engine = (f"tensorrt-{trt_cfg.precision}", TrtRunner(built.engine), trt_cfg.precision, "model.engine")
    return "built", f"TensorRT {built.meta['tensorrt_version']} on {built.meta['gpu_name']}", onnx_name, engine
