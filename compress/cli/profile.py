"""``compress profile``: params, MACs/FLOPs, memory and latency (measured or ESTIMATED) of models."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from compress.cli.common import cli_errors, console, print_json


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
    console.print(table)


def _render(report) -> None:
    from rich.table import Table

    table = Table(title=f"profile — device {(report.device or {}).get('name')} (MACs: multiply-accumulates; FLOPs = 2×MACs)")
    for col in ("target", "params (M)", "MACs (G)", "FLOPs (G)", "peak act. (MB)", "file (MB)", "acc", "batch",
                "latency ms", "p90 ms", "img/s", "how"):
        table.add_column(col)
    for t in report.targets:
        a = t.analysis or {}
        head = [t.target, f"{a['params'] / 1e6:.3f}" if a else "–", f"{a['macs'] / 1e9:.3f}" if a else "–",
                f"{a['flops'] / 1e9:.3f}" if a else "–", f"{a['peak_activation_bytes'] / 2**20:.2f}" if a else "–",
                f"{t.file_bytes / 2**20:.2f}" if t.file_bytes else "–", f"{t.accuracy:.4f}" if t.accuracy is not None else "–"]
        for e in t.latency or [{}]:
            if not e:
                table.add_row(*head, "–", "–", "–", "–", "–")
                continue
            est = e.get("kind") == "estimate"
            lat = e.get("latency_ms", e.get("mean_ms"))
            how = "[yellow]ESTIMATE[/yellow]" if est else f"measured ({e.get('runner', {}).get('backend')})"
            table.add_row(*head, str(e.get("batch")), f"{lat:.3f}", "–" if est else f"{e['p90_ms']:.3f}",
                          f"{e['throughput_ips']:.1f}", how)
    console.print(table)
    for t in report.targets:
        if not (t.analysis and t.analysis.get("layers")):
            continue
        lt = Table(title=f"per-layer: {t.target}")
        for col in ("name", "op", "output", "params", "MACs", "read B", "written B"):
            lt.add_column(col)
        for la in t.analysis["layers"]:
            lt.add_row(la["name"], la["op_type"], "x".join(map(str, la["output_shape"])), str(la["params"]),
                       str(la["macs"]), str(la["bytes_read"]), str(la["bytes_written"]))
        console.print(lt)


def register(app: typer.Typer) -> None:
    @app.command("profile")
    def profile(
        targets: Optional[List[str]] = typer.Argument(None, help="checkpoint folders, .onnx/.engine files or model names"),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | jetson (measure) or a device profile "
                                             "name / .yaml path (ESTIMATE); see --list-devices"),
        power_mode: Optional[str] = typer.Option(None, "--power-mode", help="nvpmodel mode name or id of the profile"),
        list_devices: bool = typer.Option(False, "--list-devices", help="list device profiles and exit"),
        num_classes: Optional[int] = typer.Option(None, "--num-classes", help="classes for zoo names (default 1000)"),
        input_size: Optional[int] = typer.Option(None, "--input-size", help="input height = width in pixels"),
        in_chans: Optional[int] = typer.Option(None, "--in-chans", help="input channels/bands"),
        batch: List[int] = typer.Option([1], "--batch", help="batch size; repeat for several"),
        precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | int8 (estimates, remote trtexec)"),
        per_layer: bool = typer.Option(False, "--per-layer", help="per-layer breakdown"),
        remote: Optional[str] = typer.Option(None, "--remote", help="user@host of a Jetson to measure on over SSH"),
        warmup: int = typer.Option(10, "--warmup", help="untimed runs before timing"),
        iters: int = typer.Option(50, "--iters", help="timed runs"),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for local measurements"),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
        out: Optional[Path] = typer.Option(None, "-o", "--output", help="write profile.json, profile.md and the plot here"),
    ) -> None:
        """How big, how much compute and how fast: measured here, on a Jetson, or ESTIMATED from a device profile."""
        with cli_errors():
            if list_devices:
                _device_table(as_json)
                return
            from compress.config import build_config
            from profiles.api import ProfileConfig, profile_targets

            if precision not in ("fp32", "fp16", "int8"):
                from compress.errors import UserInputError

                raise UserInputError(f"--precision '{precision}' is not valid; use fp32, fp16 or int8.")
            cfg = build_config(ProfileConfig, {
                "device": device, "power_mode": power_mode, "num_classes": num_classes, "input_size": input_size,
                "in_chans": in_chans, "batches": tuple(batch), "precision": precision, "per_layer": per_layer,
                "remote": remote, "warmup": warmup, "iters": iters, "threads": threads}, section="profile")
            report = profile_targets(list(targets or []), cfg)
            if out is not None:
                from profiles.report import write_report

                write_report(report, out)
            if as_json:
                print_json(report)
            else:
                _render(report)
