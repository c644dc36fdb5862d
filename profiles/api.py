"""``profile_models``: the one library call behind ``compress profile``.

For each model: analysis (PyTorch hooks for models, the ONNX graph for .onnx, the sidecar's ONNX for
engines when present), then latency: MEASURED here (``--device cpu|cuda``), on this Jetson
(``--device jetson``, with tegrastats power), over SSH (``--remote``), or ESTIMATED from a device
profile (``--target <profile>``), each entry labelled with its kind.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable

from compress.errors import DeviceError, UserInputError
from profiles.models import ProfiledModel, analyze_model, resolve_profiled_model
from runtime.trtexec import PRECISIONS

LOCAL_DEVICES = ("cpu", "cuda", "jetson")


@dataclass(frozen=True)
class ProfileConfig:
    """What ``compress profile`` measures or estimates; ``device`` is where to measure (a torch device or
    this Jetson), ``target`` a device profile to ESTIMATE for (name, unique prefix or YAML path)."""

    device: str | None = None  # cpu | cuda | jetson
    target: str | None = None  # <profile name> | path/to/profile.yaml
    power_mode: str | None = None
    num_classes: int | None = None
    image_size: int | None = None
    in_chans: int | None = None
    batches: tuple[int, ...] = (1,)
    precision: str | None = None  # None: each model's own (an INT8/FP16 ONNX file says so; else fp32)
    per_layer: bool = False
    remote: str | None = None
    calibration: str | None = None  # the correction store (device_calibration.store_path); None: the default
    save_calibration: bool = False  # with remote and target: add each remote measurement to the target's calibration
    warmup: int = 10
    iters: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        from compress.data.bundle import check_image_size

        if self.precision is not None and self.precision not in PRECISIONS:
            raise UserInputError(f"--precision '{self.precision}' is not valid; use fp32, fp16 or int8.")
        if self.device is not None and self.device not in LOCAL_DEVICES and not self.device.startswith("cuda:"):
            raise UserInputError(f"--device '{self.device}' is not where to measure; use cpu, cuda or jetson (a device "
                                 "profile to estimate for is --target NAME).")
        check_image_size(self.image_size, "--image-size")
        for name, v, lo in (("--batch-size", min(self.batches, default=1), 1), ("--in-chans", self.in_chans, 1),
                            ("--num-classes", self.num_classes, 1), ("--warmup", self.warmup, 0),
                            ("--iters", self.iters, 1), ("--threads", self.threads, 1)):
            if v is not None and v < lo:
                raise UserInputError(f"{name} must be ≥ {lo}, got {v}.")
        if self.remote:
            from runtime.ssh import parse_host

            parse_host(self.remote)
        if self.save_calibration and not (self.remote and self.target):
            raise UserInputError("--save-calibration adds what --remote measures to the calibration of the --target "
                                 "profile: give both --remote user@jetson and --target NAME.")
        if self.power_mode is not None and not self.target:
            raise UserInputError("--power-mode picks a mode of the device profile given with --target; add --target "
                                 "NAME (compress profile --list-devices), or drop it: a Jetson is measured in the mode "
                                 "it runs (sudo nvpmodel -m N sets one).")


@dataclass
class ModelReport:
    """One profiled model: ``model`` is the spec as given (a run, checkpoint, .onnx/.engine or zoo name)."""

    model: str
    kind: str
    name: str
    input_shape: list[int]
    analysis: dict[str, Any] | None
    file_bytes: int | None
    accuracy: float | None
    accuracy_source: str | None
    latency: list[dict[str, Any]] = field(default_factory=list)  # kind: measured | estimate
    power: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"


# profile.json's layout; 2: rows under "models", each named by "model" (1 called both "targets"/"target",
# the word the CLI keeps for a device profile).
PROFILE_FORMAT = 2


@dataclass
class ProfileReport:
    models: list[ModelReport]
    device: dict[str, Any] | None
    config: dict[str, Any]
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    format: int = PROFILE_FORMAT


def _runner_for(t: ProfiledModel, device: str, batch: int, threads: int | None):
    if t.kind in ("checkpoint", "zoo"):
        from runtime.torch_runner import TorchRunner

        if threads:
            import torch

            torch.set_num_threads(threads)
        return TorchRunner(t.model, device="cuda" if device == "cuda" else "cpu",
                           input_shape=(-1, t.in_chans, t.image_size, t.image_size))
    if t.kind == "onnx":
        from runtime.onnxrt import OnnxrtRunner

        return OnnxrtRunner(t.path, providers=["cuda", "cpu"] if device in ("cuda", "jetson") else ["cpu"], threads=threads)
    from runtime.tensorrt_runner import TrtRunner

    return TrtRunner(t.path)


def _measure_local(t: ProfiledModel, cfg: ProfileConfig, device: str, batch: int) -> tuple[dict[str, Any], dict | None]:
    import numpy as np

    from runtime.latency import measure_latency

    runner = _runner_for(t, device, batch, cfg.threads)
    with runner:
        spec = runner.input_specs()[0]
        shape = (batch, t.in_chans, t.image_size, t.image_size)
        feeds = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(spec.dtype if "float" in spec.dtype else "float32")}
        if device == "jetson":
            from runtime.jetson import TegrastatsMonitor, summarize_power

            with TegrastatsMonitor() as mon:
                stats = measure_latency(runner, feeds, cfg.warmup, cfg.iters, batch)
            power = summarize_power(mon.samples(), stats.mean_ms, batch)
            return stats.__dict__, power.__dict__
        stats = measure_latency(runner, feeds, cfg.warmup, cfg.iters, batch)
    return stats.__dict__, None


def _remember(res, device: str, spec: str, t: ProfiledModel, precision: str, batch: int, cfg: ProfileConfig,
              estimated_ms: float) -> str:
    """Add a remote measurement (trtexec's GPU compute median, what the estimate models) to ``device``'s
    calibration; the line that says so."""
    from profiles.calibration.correction import add_measurement
    from profiles.models import architecture_of

    gpu = res.trtexec.gpu_compute
    ms = float(gpu.get("median", gpu.get("mean", 0.0)))
    if not ms > 0:
        return "no GPU compute time in trtexec's summary: the calibration was not updated"
    row = {"model": spec, "input_size": t.image_size, "precision": precision, "batch": batch, "power_mode": cfg.power_mode,
           "tensorrt": None, "measured_ms": ms, "timed": "gpu_compute", "architecture": architecture_of(t),
           "estimated_ms": round(estimated_ms, 6), "ratio": round(ms / estimated_ms, 4)}
    corr, where = add_measurement(device, row, cfg.calibration)
    k = corr.scales[precision][row["architecture"]]
    return (f"calibration of {device} updated in {where}: {row['architecture']} {precision} × {k:.3f} "
            f"({corr.points[precision][row['architecture']]} measurement(s))")


def profile_models(specs: list[str], cfg: ProfileConfig, progress: Callable[[str], None] | None = None) -> ProfileReport:
    """Analyse and time (or estimate) every model; see the module docstring for what runs where."""
    if not specs:
        raise UserInputError("no MODEL given: pass checkpoints, .onnx/.engine files or model names.")
    device_key = (cfg.device or "cpu").strip()
    profile = None
    jetson_info = None
    if device_key == "jetson":
        from runtime.jetson import detect_jetson

        jetson_info = detect_jetson()
        if jetson_info is not None:
            from profiles.device import match_profile

            jetson_info = {**jetson_info.__dict__,
                           "profile_name": match_profile(jetson_info.model, jetson_info.memory_gb)}
        if jetson_info is None and not cfg.remote:
            raise DeviceError("--device jetson measures on a Jetson, but this machine is not one; pass a profile "
                              "(e.g. --target jetson-orin-nano-8gb) for an estimate, or --remote user@jetson.")
    if cfg.target:
        from profiles.device import load_device_profile

        profile = load_device_profile(cfg.target)
        profile.mode(cfg.power_mode)  # fail early on a bad mode
        from profiles.calibration.correction import stored_correction

        correction = stored_correction(profile.name, cfg.calibration)
    reports = []
    for spec in specs:
        if progress:
            progress(spec)
        t = resolve_profiled_model(spec, cfg.num_classes, cfg.image_size, cfg.in_chans)
        analysis = analyze_model(t, cfg.batches[0])
        precision = cfg.precision or t.meta.get("precision") or "fp32"
        rep = ModelReport(spec, t.kind, t.name, [cfg.batches[0], t.in_chans, t.image_size, t.image_size],
                           analysis.to_dict(cfg.per_layer) if analysis else None, t.file_bytes, t.accuracy, t.accuracy_source,
                           precision=precision)
        if analysis is None:
            rep.notes.append("no analysis: an engine without its ONNX beside it (sidecar 'onnx') has no readable graph")
        for b in cfg.batches:
            a_b = plain_ms = None
            if profile is not None:
                from profiles.estimator.estimate import estimate_latency

                a_b = analysis if (analysis and analysis.batch == b) else analyze_model(t, b)
                if a_b is None:
                    rep.notes.append(f"no estimate at batch {b}: no graph to estimate from")
                else:
                    from profiles.calibration.correction import corrected
                    from profiles.models import architecture_of

                    est = estimate_latency(a_b, profile, precision, cfg.power_mode).to_dict(cfg.per_layer)
                    rep.latency.append(corrected(est, correction, architecture_of(t)))
                    plain_ms = est["latency_ms"]
            if cfg.remote:
                from runtime.remote import profile_remote

                if t.kind not in ("onnx", "engine"):
                    raise UserInputError(f"--remote needs an .onnx or .engine target; export '{spec}' first "
                                         "(compress export) and profile the file.")
                res = profile_remote(cfg.remote, t.path, precision, None, None, iterations=max(cfg.iters, 50))
                rep.latency.append({**res.latency.__dict__, "where": f"remote {cfg.remote}", "power_mode": res.power_mode})
                rep.power = res.power.__dict__ if res.power else None
                if cfg.save_calibration and profile is not None and a_b is not None:
                    rep.notes.append(_remember(res, profile.name, spec, t, precision, b, cfg, plain_ms))
            elif profile is None or cfg.device is not None:
                stats, power = _measure_local(t, cfg, device_key, b)
                stats["where"] = "this Jetson" if device_key == "jetson" else "this machine"
                if jetson_info is not None:
                    from runtime.jetson import query_power_mode

                    stats["power_mode"] = query_power_mode()
                    stats["jetson"] = jetson_info
                rep.latency.append(stats)
                rep.power = power or rep.power
        reports.append(rep)
    return ProfileReport(reports, profile.summary() if profile else ({"name": device_key} if not jetson_info else
                                                                     {"name": "jetson", **jetson_info}),
                         {k: getattr(cfg, k) for k in cfg.__dataclass_fields__})
