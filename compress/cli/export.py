"""``compress export``: checkpoint → ONNX (+FP16/INT8) with a parity report, and TensorRT engines."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from compress.cli.common import cli_errors, console, err_console, print_json
from compress.errors import UserInputError


def _tolerances(values: list[str], flag: str) -> dict[str, float]:
    """``["1e-4", "fp16=2e-2"]`` → ``{"fp32": 1e-4, "fp16": 2e-2}`` (a bare value means fp32)."""
    out: dict[str, float] = {}
    for v in values:
        prec, _, num = v.rpartition("=")
        try:
            out[prec or "fp32"] = float(num)
        except ValueError:
            raise UserInputError(f"{flag} '{v}' is not PRECISION=VALUE (e.g. {flag} fp16=2e-2).") from None
    return out


def _fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render_parity(report) -> None:
    """The parity report as a rich table."""
    from rich.table import Table

    table = Table(title=f"Parity on {report.num_samples} samples ({report.sample_source})")
    for col in ("runner", "prec", "max abs", "max rel", "top-1 agr" if report.task == "classify" else "cosine",
                "OA %", "ΔOA pt", "ms/batch", "× vs FP32", "rule", "ok"):
        table.add_column(col, justify="left" if col in ("runner", "rule") else "right")
    for r in report.rows:
        agree = _fmt(r.top1_agreement, ".2%") if report.task == "classify" else _fmt(r.mean_cosine, ".4f")
        table.add_row(r.name, r.precision, _fmt(r.max_abs, ".2e"), _fmt(r.max_rel, ".2e"), agree,
                      _fmt(r.accuracy, ".2f"), _fmt(r.accuracy_drop, "+.2f"), _fmt(r.latency_ms, ".3f"),
                      _fmt(r.speedup_vs_fp32, ".2f"), r.rule, "[green]yes[/green]" if r.passed else "[red]NO[/red]")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        checkpoint: Path = typer.Argument(..., help="Checkpoint folder (or run folder → checkpoints/best)."),
        out: Path = typer.Option(..., "-o", "--out", help="Output folder (must not exist unless --force)."),
        batch: int = typer.Option(1, "--batch", help="Static batch size (the opt batch with --dynamic-batch)."),
        dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Symbolic batch dimension."),
        max_batch: int = typer.Option(32, "--max-batch", help="Largest batch of the TensorRT profile."),
        image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size (default: manifest)."),
        opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset (default 17, capped by --trt-version)."),
        exporter: str = typer.Option("torchscript", "--exporter", help="torchscript | dynamo"),
        no_simplify: bool = typer.Option(False, "--no-simplify", help="Skip onnxsim."),
        embed_preprocess: bool = typer.Option(False, "--embed-preprocess", help="Graph takes uint8 NHWC images."),
        task: str = typer.Option("classify", "--task", help="classify (logits) | embedding (L2-normalised)."),
        fp16: bool = typer.Option(False, "--fp16", help="Also write model_fp16.onnx (float32 I/O)."),
        int8: bool = typer.Option(False, "--int8", help="Also write model_int8.onnx (Q/DQ, calibrated)."),
        calib_images: int = typer.Option(256, "--calib-images", help="Training images for INT8 calibration."),
        calib_method: str = typer.Option("entropy", "--calib-method", help="minmax | entropy | percentile"),
        trt: bool = typer.Option(False, "--trt", help="Build a TensorRT engine (here if possible) + build_engine.sh."),
        trt_version: Optional[str] = typer.Option(None, "--trt-version", help="Target TensorRT: 8.2, 8.5, 10.3, 11."),
        dla: Optional[int] = typer.Option(None, "--dla", help="DLA core (Jetson Xavier/Orin), GPU fallback on."),
        workspace_mb: int = typer.Option(1024, "--workspace-mb", help="TensorRT builder workspace (MiB)."),
        remote: Optional[str] = typer.Option(None, "--remote", help="user@host: build on the Jetson over SSH."),
        atol: list[str] = typer.Option([], "--atol", help="Abs tolerance, PREC=VALUE (repeatable; bare = fp32)."),
        rtol: list[str] = typer.Option([], "--rtol", help="Rel tolerance, PREC=VALUE (repeatable; bare = fp32)."),
        min_top1: Optional[float] = typer.Option(None, "--min-top1-agreement", help="INT8: fraction (default 0.99)."),
        max_oa_drop: Optional[float] = typer.Option(None, "--max-oa-drop", help="INT8: OA points (default 1.0)."),
        samples: int = typer.Option(256, "--samples", help="Test samples for the parity check."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Export a checkpoint to ONNX (FP32, FP16, INT8 QDQ), verify parity, and build TensorRT engines."""
        with cli_errors():
            from export.pipeline import EngineNotBuiltError, ExportConfig, export_checkpoint
            from export.verify import ParityCriteria

            criteria = ParityCriteria().with_overrides(
                _tolerances(atol, "--atol"), _tolerances(rtol, "--rtol"),
                int8_min_top1_agreement=min_top1, int8_max_accuracy_drop=max_oa_drop)
            cfg = ExportConfig(batch=batch, dynamic_batch=dynamic_batch, max_batch=max_batch, image_size=image_size,
                               opset=opset, exporter=exporter, simplify=not no_simplify,
                               embed_preprocess=embed_preprocess, task=task, fp16=fp16, int8=int8,
                               calib_images=calib_images, calib_method=calib_method, trt=trt, trt_version=trt_version,
                               dla=dla, workspace_mb=workspace_mb, remote=remote, criteria=criteria,
                               parity_samples=samples, force=force)
            pending = None
            try:
                result = export_checkpoint(checkpoint, out, cfg)
            except EngineNotBuiltError as exc:
                result, pending = exc.result, exc
            if json_out:
                print_json(result)
            else:
                render_parity(result.parity)
                console.print(f"wrote {', '.join(result.files)} to {result.out_dir}")
            if not result.passed:
                failed = ", ".join(r.name for r in result.parity.rows if not r.passed)
                err_console.print(f"[red]error:[/red] parity failed for {failed}; files kept in {result.out_dir} "
                                  "and marked PARITY_FAILED (see parity.json).", soft_wrap=True)
                raise typer.Exit(code=1)
            if pending is not None:
                raise pending
