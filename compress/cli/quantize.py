"""``compress quantize CKPT``: post-training INT8 and, with ``--qat``, quantisation-aware distillation."""
from __future__ import annotations

from typing import Any

import typer

from compress.cli.common import console, print_json, show_table
from compress.cli.groups import DEVICE, METHOD, OUTPUT, Group, method_option, train_group
from compress.cli.options import Flag, Given, Strs, arg, command, opt
from compress.config import parse_params

OPTIONS = Group("quantize", (
    arg("checkpoint", "Checkpoint (or run folder) to quantise."),
    opt("qat", "--qat", key="qat", type=Flag, default=False, show_default=False,
        help="Quantisation-aware distillation: fine-tune the fake-quant INT8 model from the FP32 one."),
    opt("int8_flavour", "--int8-flavour", key="flavour", show_default="cpu", help="INT8 flavour: cpu or trt.",
        deprecated=("--int8-target",)),
    opt("int8_reduce_range", "--int8-reduce-range", key="reduce_range", show_default="auto",
        help="7-bit weights: auto (from this CPU), on or off."),
    opt("teacher", "--teacher", key="teacher", type=Strs, show_default="the FP32 checkpoint itself",
        help="FP32 model(s) to distil from (repeat for an ensemble)."),
    opt("calib_images", "--calib-images", key="calib_images", type=int, default=None, show_default="256",
        help="Training images for the calibration."),
    opt("calib_method", "--calib-method", key="calib_method", show_default="entropy", help="minmax | entropy | percentile"),
    opt("samples", "--samples", key="samples", type=int, default=None, show_default="256",
        help="Test samples for the parity check."),
))


def _train_defaults():
    from compress.jobs.qad import QAD_TRAIN

    return QAD_TRAIN


def register(app: typer.Typer) -> None:
    @command(app, "quantize", OPTIONS, method_option("kd", "a logit method: kd, dkd, dist (`compress methods`)"),
             METHOD, train_group(_train_defaults()), DEVICE, OUTPUT, convert={"method_param": parse_params})
    def quantize(given: Given) -> None:
        """INT8 of a checkpoint with its test-split accuracy; --qat wins back what post-training INT8 lost."""
        import dataclasses

        from compress.cli.render import run_with_progress
        from compress.jobs.config_merge import load_job_config
        from compress.jobs.qad import QAD_TRAIN, QuantizeConfig, run_quantize

        given.config["checkpoint"] = given["checkpoint"]
        cfg = load_job_config(QuantizeConfig, given.config, command="quantize", config_file=given["config"],
                              defaults={"train": dataclasses.asdict(QAD_TRAIN)})
        result = run_with_progress(run_quantize, cfg, quiet=given["json"])
        if given["json"]:
            print_json(result)
            return
        _render(result)


def _render(result: Any) -> None:
    from rich.table import Table

    t = Table(title=f"INT8 ({result.flavour} flavour) on {result.test_images} test images → {result.run_dir}")
    for col in ("model", "file", "test OA %"):
        t.add_column(col, justify="right" if col == "test OA %" else "left")
    labels = {"fp32": "FP32", "ptq": "INT8 post-training", "qad": "INT8 quantisation-aware distillation"}
    for role, path in result.files.items():
        oa = result.accuracy.get(role)
        t.add_row(labels[role], path, "—" if oa is None else f"{100 * oa:.2f}")
    show_table(t)
    for note in result.notes:
        console.print(f"note: {note}")
    if result.parity:
        for row in result.parity["rows"][1:]:
            how = "as written" if row["backend"].get("graph_optimizations") is False else "fused kernels"
            console.print(f"parity (fake-quant PyTorch vs ONNX Runtime, {how}): top-1 agreement "
                          f"{100 * row['top1_agreement']:.2f} %, max |Δlogit| {row['max_abs']:.3g} — "
                          f"{'ok' if row['passed'] else 'FAILED'}")
        if "runtime_self_agreement" in result.parity:
            console.print(f"  (ONNX Runtime as written vs fused: {100 * result.parity['runtime_self_agreement']:.2f} % "
                          f"top-1 agreement; rule: {result.parity['rows'][-1]['rule']})")
