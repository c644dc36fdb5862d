"""``compress profile``: params, MACs/FLOPs, memory and latency (measured or ESTIMATED) of models."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape
from rich.text import Text

from compress.cli.common import err_console, print_json, show_table
from compress.cli.options import Given, Group, Int, arg, command, opt


def _device_table(as_json: bool) -> None:
    from rich.table import Table

    from profiles.device import list_device_profiles

    profs = list_device_profiles()
    if as_json:
        print_json([p.summary() for p in profs])
        return
    table = Table(title="device profiles (values and sources: profiles/devices/*.yaml)")
    for col in ("name", "GPU", "SMs", "FP16 TFLOPS", "INT8 TOPS", "GB/s", "DLA", "power modes (SMs @ MHz)"):
        table.add_column(col)
    for p in profs:
        v = p.values
        modes = ", ".join(f"{m.name} {m.active_sms}@{m.gpu_max_mhz:g}" for m in p.power_modes) if p.kind != "cpu" else "–"
        table.add_row(p.name, str(v.get("architecture")), str(v.get("sm_count") or "–"), str(v.get("peak_fp16_tflops") or "–"),
                      str(v.get("peak_int8_tops") or "–"), str(v.get("memory_bandwidth_gbs")), str(v.get("dla_cores")), modes)
    show_table(table)


def _render(report) -> None:
    from rich.table import Table

    table = Table(title=f"profile — device {(report.device or {}).get('name')} (MACs: multiply-accumulates; FLOPs = 2×MACs)")
    for col in ("model", "prec", "params (M)", "MACs (G)", "FLOPs (G)", "peak act. (MB)", "file (MB)", "acc", "batch",
                "latency ms", "p90 ms", "img/s", "how"):
        table.add_column(col)
    for t in report.models:
        a = t.analysis or {}
        head = [t.model, t.precision, f"{a['params'] / 1e6:.3f}" if a else "–", f"{a['macs'] / 1e9:.3f}" if a else "–",
                f"{a['flops'] / 1e9:.3f}" if a else "–", f"{a['peak_activation_bytes'] / 2**20:.2f}" if a else "–",
                f"{t.file_bytes / 2**20:.2f}" if t.file_bytes else "–", f"{t.accuracy:.4f}" if t.accuracy is not None else "–"]
        for e in t.latency or [{}]:
            if not e:
                table.add_row(*head, "–", "–", "–", "–", "–")
                continue
            est = e.get("kind") == "estimate"
            lat = e.get("latency_ms", e.get("mean_ms"))
            how = (Text.assemble((e.get("label", "ESTIMATE"), "yellow"), f" 80 % band {e['low_ms']:.3g}–{e['high_ms']:.3g}")
                   if est
                   else f"measured ({e.get('runner', {}).get('backend')})")
            table.add_row(*head, str(e.get("batch")), f"{lat:.3f}", "–" if est else f"{e['p90_ms']:.3f}",
                          f"{e['throughput_ips']:.1f}", how)
    show_table(table)
    for t in report.models:
        for note in t.notes:
            err_console.print(f"{escape(t.model)}: {escape(note)}", soft_wrap=True)
    for t in report.models:
        if not (t.analysis and t.analysis.get("layers")):
            continue
        lt = Table(title=f"per-layer: {t.model}")
        for col in ("name", "op", "output", "params", "MACs", "read B", "written B"):
            lt.add_column(col)
        for la in t.analysis["layers"]:
            lt.add_row(la["name"], la["op_type"], "x".join(map(str, la["output_shape"])), str(la["params"]),
                       str(la["macs"]), str(la["bytes_read"]), str(la["bytes_written"]))
        show_table(lt)


def _calibrate(g: dict) -> None:
    """``--calibrate FILE --target DEV``: fit, store and show the device's correction."""
    from rich.table import Table

    from compress.errors import UserInputError
    from profiles.calibration.correction import calibrate_device

    if not g["target"]:
        raise UserInputError("--calibrate corrects the estimates of one device profile: add --target NAME (compress "
                             "profile --list-devices) for the device you measured.")
    if g["models"]:
        raise UserInputError("--calibrate reads the models from its CSV; drop the MODEL arguments (profile them in a "
                             "second command, which will use the correction).")
    corr, where = calibrate_device(g["calibrate"], g["target"], g["calibration"])
    if g["json"]:
        print_json({"device": corr.device, "stored": str(where), "scales": corr.scales, "points": corr.points,
                    "band": corr.band, "rows": corr.rows})
        return
    table = Table(title=f"calibration of {corr.device} — stored in {where}")
    for col in ("model", "architecture", "precision", "px", "timed", "measured ms", "estimated ms", "measured ÷ est."):
        table.add_column(col)
    for r in corr.rows:
        table.add_row(r["model"], r["architecture"], r["precision"], str(r["input_size"]), r["timed"],
                      f"{r['measured_ms']:.4g}", f"{r['estimated_ms']:.4g}", f"{r['ratio']:.3f}")
    show_table(table)
    for p, by in corr.scales.items():
        for arch, k in by.items():
            lo, hi = corr.band[p][arch]
            err_console.print(f"{p} {escape(arch)}: later estimates × {k:.3f} (band {lo:.2f}–{hi:.2f}×); other "
                              "architectures are not corrected (a measurement of one does not improve another's).",
                              soft_wrap=True)


OPTIONS = Group("profile", (
    arg("models", "Checkpoint folders, .onnx/.engine files or model names (or `models:` in --config).",
        type=Optional[List[str]], default=None),
    opt("config", "--config", help="YAML/TOML/JSON file of profile settings: the names below in snake_case "
        "(target, power_mode, batches, warmup, …), `models` and `out`, at the top or under `profile:`; flags and "
        "MODEL arguments override it.", show_default=False),
    opt("device", "--device", key="device", help="Where to MEASURE: cpu | cuda | jetson (this Jetson).",
        show_default="cpu"),
    opt("target", "--target", key="target", help="Device profile to ESTIMATE for: a name, a unique prefix of one, "
        "or a .yaml path (see --list-devices).", show_default=False),
    opt("power_mode", "--power-mode", key="power_mode", help="nvpmodel mode name or id of the profile.",
        show_default="the default"),
    opt("list_devices", "--list-devices", type=bool, default=False, help="List device profiles and exit."),
    opt("num_classes", "--num-classes", key="num_classes", type=Int, help="Classes for zoo names.",
        show_default="1000"),
    opt("image_size", "--image-size", key="image_size", type=Int, help="Input height = width in pixels (8–4096).",
        show_default="the model's", deprecated=("--input-size",)),
    opt("in_chans", "--in-chans", key="in_chans", type=Int, help="Input channels/bands.", show_default="the model's"),
    opt("batch", "--batch-size", key="batches", type=Optional[List[int]], show_default="1",
        help="Batch size; repeat for several.", deprecated=("--batch",)),
    opt("precision", "--precision", key="precision", help="fp32 | fp16 | int8 (estimates, remote trtexec).",
        show_default="each model's own: an INT8/FP16 .onnx says so, else fp32"),
    opt("per_layer", "--per-layer", key="per_layer", type=bool, default=False, help="Per-layer breakdown."),
    opt("remote", "--remote", key="remote", help="[user@]host[:port] of a Jetson to measure on over SSH.",
        show_default=False),
    opt("calibrate", "--calibrate", help="With --target: a CSV of your own measurements of that device (columns "
        "model,input_size,precision,batch,power_mode,tensorrt,measured_ms,timed); corrects later estimates of the "
        "same architectures on it. Stored in --calibration.", show_default=False),
    opt("save_calibration", "--save-calibration", key="save_calibration", type=bool, default=False,
        help="With --remote and --target: add each measurement to that device's calibration (see --calibrate)."),
    opt("calibration", "--calibration", key="calibration", help="The file corrections are stored in and read from.",
        show_default="$COMPRESS_CALIBRATION or ~/.config/compress-edge/calibration.json"),
    opt("warmup", "--warmup", key="warmup", type=Int, help="Untimed runs before timing.", show_default="10"),
    opt("iters", "--iters", key="iters", type=Int, help="Timed runs.", show_default="50"),
    opt("threads", "--threads", key="threads", type=Int, help="CPU threads for local measurements.",
        show_default="all"),
    opt("json", "--json", type=bool, default=False, help="Print the report as JSON."),
    opt("out", "--out", "-o", key="out", help="Write profile.json, profile.md and the plot here.",
        show_default=False, deprecated=("--output",)),
))
MEASURE_DEVICES = ("cpu", "cuda", "jetson")


def register(app: typer.Typer) -> None:
    @command(app, "profile", OPTIONS)
    def profile(given: Given) -> None:
        """How big, how much compute and how fast: measured here, on a Jetson, or ESTIMATED from a device profile."""
        from compress.config import build_config, command_section, load_config_file
        from compress.jobs.config_merge import merge_config
        from profiles.api import ProfileConfig, profile_models

        own = dict(given.own)
        if own["list_devices"]:
            _device_table(own["json"])
            return
        file_values = command_section(load_config_file(own["config"]), "profile") if own["config"] else {}
        values = merge_config(file_values, given.config)
        listed = values.pop("models", None) or []
        models = list(own["models"] or ([listed] if isinstance(listed, str) else listed))
        out = values.pop("out", None)
        g = {**own, "models": models, "target": values.get("target"), "calibration": values.get("calibration")}
        if own["calibrate"]:
            _calibrate(g)
            return
        device = values.get("device")
        if device and device not in MEASURE_DEVICES and not device.startswith("cuda:") and not values.get("target"):
            err_console.print(f"[yellow]note:[/yellow] --device {escape(device)} for an estimate is deprecated; use "
                              f"--target {escape(device)} (--device is where to measure).", soft_wrap=True, markup=True)
            values["target"], values["device"] = device, None
        cfg = build_config(ProfileConfig, values, section=own["config"] or "profile")
        report = profile_models(models, cfg)
        if out is not None:
            from profiles.report import write_report

            write_report(report, str(out))
        if own["json"]:
            print_json(report)
        else:
            _render(report)
