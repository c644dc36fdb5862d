"""``compress export``: checkpoint → ONNX (+FP16/INT8) with a parity report, and TensorRT engines."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape
from rich.text import Text

from compress.cli.common import console, err_console, fail, print_json, show_table
from compress.cli.options import Flag, Given, Group, Int, arg, command, opt
from compress.errors import UserInputError

EXIT_CODES = {"ok": 0, "parity-failed": 1, "engine-not-built": 1}

OPTIONS = Group("export", (
    arg("checkpoint", "Checkpoint folder (or run folder → checkpoints/best)."),
    opt("out", "-o", "--out", help="Output folder (new, or a previous export with --force).", show_default=False),
    opt("batch", "--batch-size", type=int, default=1, deprecated=("--batch",),
        help="Static batch size (the opt batch with --dynamic-batch)."),
    opt("dynamic_batch", "--dynamic-batch", type=Flag, default=False, help="Symbolic batch dimension."),
    opt("max_batch", "--max-batch", type=int, default=32, help="Largest batch of the TensorRT profile."),
    opt("image_size", "--image-size", type=Int, help="Input size (8–4096).", show_default="the manifest's"),
    opt("opset", "--opset", type=Int, help="ONNX opset (capped by --trt-version).", show_default="17"),
    opt("exporter", "--exporter", default="torchscript", help="torchscript | dynamo"),
    opt("no_simplify", "--no-simplify", type=Flag, default=False, help="Skip graph simplification."),
    opt("embed_preprocess", "--embed-preprocess", type=Flag, default=False, help="Graph takes uint8 NHWC images."),
    opt("task", "--task", default="classify", help="classify (logits) | embedding (L2-normalised)."),
    opt("fp16", "--fp16", type=Flag, default=False, help="Also write model_fp16.onnx (float32 I/O)."),
    opt("int8", "--int8", type=Flag, default=False, help="Also write model_int8.onnx (Q/DQ, calibrated)."),
    opt("calib_images", "--calib-images", type=int, default=256,
        help="Training images for INT8 calibration (capped at the training split)."),
    opt("calib_method", "--calib-method", default="entropy", help="minmax | entropy | percentile"),
    opt("int8_target", "--int8-target", default="auto", help="INT8 flavour: cpu (ONNX Runtime), trt (TensorRT "
        "Q/DQ placement) or both; auto = cpu, plus trt with --trt."),
    opt("int8_budget", "--int8-budget", type=float, default=1.0,
        help="INT8 budget, points of OA on up to 1000 validation+training images (met when at most this % of them "
        "change their top-1, or their labelled OA drops by at most this); the most sensitive layers stay float to "
        "meet it."),
    opt("no_int8_fallback", "--no-int8-fallback", type=Flag, default=False,
        help="Quantise every layer; no sensitivity fallback."),
    opt("int8_exclude", "--int8-exclude", type=Optional[List[str]], show_default=False,
        help="Keep this layer in float (node name or module path, e.g. layer1.0.conv1; repeatable)."),
    opt("int8_adaround", "--int8-adaround", default="auto",
        help="Learn each INT8 weight's rounding (up or down) on the calibration images (AdaRound, Nagel et al. "
             "2020; the file stays plain Q/DQ): auto (tried by the INT8 budget, kept when it judges better), on "
             "or off."),
    opt("int8_bias_correction", "--int8-bias-correction", default="auto",
        help="Move each INT8 layer's bias so its mean output on the calibration images matches FP32 (Nagel et "
             "al. 2019; the file stays plain Q/DQ): auto (tried by the INT8 budget, kept when it judges better), "
             "on or off."),
    opt("int8_reduce_range", "--int8-reduce-range", default="auto",
        help="7-bit INT8 weights for x86 CPUs without VNNI: auto (from this CPU), on or off."),
    opt("trt", "--trt", type=Flag, default=False, help="Build a TensorRT engine (here if possible) + build_engine.sh."),
    opt("trt_version", "--trt-version", help="Target TensorRT: 8.2, 8.5, 10.3, 11.", show_default="10.3"),
    opt("dla", "--dla", type=Int, help="DLA core (Jetson Xavier/Orin), GPU fallback on.", show_default=False),
    opt("workspace_mb", "--workspace-mb", type=int, default=1024, help="TensorRT builder workspace (MiB)."),
    opt("remote", "--remote", help="[user@]host[:port]: build on the Jetson over SSH.", show_default=False),
    opt("atol", "--atol", type=Optional[List[str]], help="Abs tolerance, PREC=VALUE (repeatable; bare = fp32; "
        "fp16's is a share of the largest |output|).",
        show_default=False),
    opt("rtol", "--rtol", type=Optional[List[str]], help="Rel tolerance, PREC=VALUE (repeatable; bare = fp32).",
        show_default=False),
    opt("min_top1", "--min-top1-agreement", type=Optional[float], help="INT8: top-1 agreement to keep, judged on "
        "labelled samples too when given (by default labelled samples are judged by the OA drop, unlabelled ones "
        "by agreement).", show_default="1 - budget/100"),
    opt("max_oa_drop", "--max-oa-drop", type=Optional[float], help="INT8: OA points.", show_default="the budget"),
    opt("samples", "--samples", type=int, default=1000, help="Test samples for the parity check (capped at the split)."),
    opt("force", "--force", type=Flag, default=False, help="Replace a previous export in the output folder."),
    opt("json", "--json", type=Flag, default=False, help="Print the result as JSON."),
))


def _tolerances(values: list[str] | None, flag: str) -> dict[str, float]:
    """``["1e-4", "fp16=2e-2"]`` → ``{"fp32": 1e-4, "fp16": 2e-2}`` (a bare value means fp32)."""
    out: dict[str, float] = {}
    for v in values or []:
        prec, _, num = v.rpartition("=")
        try:
            out[prec or "fp32"] = float(num)
        except ValueError:
            raise UserInputError(f"{flag} '{v}' is not PRECISION=VALUE (e.g. {flag} fp16=2e-2).") from None
    return out


def _fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render_parity(report) -> None:
    """The parity report as a rich table; ΔOA is the candidate's OA minus PyTorch's (negative = lost)."""
    from rich.table import Table

    table = Table(title=f"Parity on {report.num_samples} samples ({report.sample_source})")
    for col in ("runner", "prec", "max abs", "max rel", "top-1 agr" if report.task == "classify" else "cosine",
                "OA %", "ΔOA pt", "ms/batch", "× vs FP32", "rule", "ok"):
        table.add_column(col, justify="left" if col in ("runner", "rule") else "right")
    for r in report.rows:
        agree = _fmt(r.top1_agreement, ".2%") if report.task == "classify" else _fmt(r.mean_cosine, ".4f")
        delta = None if r.accuracy_drop is None else -r.accuracy_drop
        table.add_row(r.name, r.precision, _fmt(r.max_abs, ".2e"), _fmt(r.max_rel, ".2e"), agree,
                      _fmt(r.accuracy, ".2f"), _fmt(delta, "+.2f"), _fmt(r.latency_ms, ".3f"),
                      _fmt(r.speedup_vs_fp32, ".2f"), r.rule, Text("yes", style="green") if r.passed else Text("NO", style="red"))
    show_table(table)


def render_fallback(variant) -> None:
    """The budget fallback of one INT8 file: each step's float layers, changed predictions, OA
    (with the drop's 95 % interval) and CPU latency."""
    from rich.table import Table

    fb = variant.fallback
    on_val = (f"; OA on their labels, FP32 {fb.reference_accuracy:.2f} %" if fb.labelled else "; no labels")
    table = Table(title=f"{variant.file}: INT8 fallback to a {fb.budget:g}-pt budget (top-1 agreement on {fb.images} "
                        f"images{on_val}; FP32 {_fmt(fb.fp32_latency_ms, '.3f')} ms on ONNX Runtime CPU)")
    for col in ("step", "kept in float", "top-1 changed %", "OA %", "drop pt (95 %)", "ms"):
        table.add_column(col, justify="left" if col == "kept in float" else "right")
    for i, st in enumerate(fb.steps):
        drop = "-" if st.drop is None else f"{st.drop:+.2f} [{st.drop_interval[0]:+.2f}, {st.drop_interval[1]:+.2f}]"
        table.add_row(str(i), st.added or ("all layers INT8" if not st.float_nodes else ", ".join(st.float_nodes)),
                      f"{st.disagreement:.2f}", _fmt(st.accuracy, ".2f"), drop, _fmt(st.latency_ms, ".3f"))
    show_table(table)
    chosen = fb.chosen
    console.print(f"{'met' if fb.met else '[red]NOT met[/red]'}: {len(chosen.float_nodes)} layer(s) kept in float "
                  f"({escape(', '.join(chosen.float_nodes) or 'none')}), {chosen.disagreement:.2f} % of top-1 changed",
                  markup=True)


def register(app: typer.Typer) -> None:
    @command(app, "export", OPTIONS)
    def export_cmd(given: Given) -> None:
        """Export a checkpoint to ONNX (FP32, FP16, INT8 QDQ), verify parity, and build TensorRT engines."""
        from export.pipeline import ExportConfig, export_checkpoint
        from export.verify import ParityCriteria

        g = given.own
        if not g["out"]:
            raise UserInputError("export needs -o/--out DIR: the folder to write the ONNX files and reports into.")
        budget = None if g["no_int8_fallback"] else g["int8_budget"]
        criteria = ParityCriteria().for_int8_budget(budget).with_overrides(_tolerances(g["atol"], "--atol"), _tolerances(g["rtol"], "--rtol"),
                                                   int8_min_top1_agreement=g["min_top1"],
                                                   int8_agreement_with_labels=g["min_top1"] is not None or None,
                                                   int8_max_accuracy_drop=g["max_oa_drop"])
        cfg = ExportConfig(batch=g["batch"], dynamic_batch=g["dynamic_batch"], max_batch=g["max_batch"],
                           image_size=g["image_size"], opset=g["opset"], exporter=g["exporter"],
                           simplify=not g["no_simplify"], embed_preprocess=g["embed_preprocess"], task=g["task"],
                           fp16=g["fp16"], int8=g["int8"], calib_images=g["calib_images"],
                           calib_method=g["calib_method"], int8_target=g["int8_target"],
                           int8_budget=budget,
                           int8_exclude=tuple(g["int8_exclude"] or ()), int8_reduce_range=g["int8_reduce_range"],
                           int8_adaround=g["int8_adaround"], int8_bias_correction=g["int8_bias_correction"],
                           trt=g["trt"], trt_version=g["trt_version"], dla=g["dla"],
                           workspace_mb=g["workspace_mb"], remote=g["remote"], criteria=criteria,
                           parity_samples=g["samples"], force=g["force"])
        result = export_checkpoint(g["checkpoint"], g["out"], cfg)
        if g["json"]:
            print_json(result)
        else:
            render_parity(result.parity)
            from export.sensitivity import describe_fixes

            for v in result.int8:
                if v.fallback is not None and len(v.fallback.steps) > 1:
                    render_fallback(v)
                for line in describe_fixes(v.fallback) if v.fallback is not None else []:
                    console.print(f"{v.file}: {escape(line)}", markup=True)
            console.print(f"wrote {', '.join(result.files)} to {result.out_dir}")
        for note in result.notes:
            err_console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True, markup=True)
        if result.outcome != "ok":
            fail(result.message, EXIT_CODES[result.outcome])
