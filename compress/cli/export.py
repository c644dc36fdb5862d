"""``compress export``: checkpoint → ONNX (+FP16/INT8) with a parity report, and TensorRT engines."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape
from rich.text import Text

from compress.cli.common import console, err_console, fail, print_json, show_table
from compress.cli.options import Flag, Float, Given, Group, Int, arg, command, opt
from compress.errors import UserInputError

EXIT_CODES = {"ok": 0, "parity-failed": 1, "engine-not-built": 1}

OPTIONS = Group("export", (
    arg("checkpoint", "Checkpoint folder (or run folder → checkpoints/best)."),
    opt("out", "-o", "--out", key="out", help="Output folder (new, or a previous export with --force).",
        show_default=False),
    opt("config", "--config", help="YAML/TOML/JSON file of export settings: the names below in snake_case (batch, "
        "int8_budget, …), `out`, and `parity:` {atol, rtol, min_top1_agreement, max_oa_drop}, at the top or under "
        "`export:`; flags override it.", show_default=False),
    opt("batch", "--batch-size", key="batch", type=Int, deprecated=("--batch",), show_default="1",
        help="Static batch size (the opt batch with --dynamic-batch)."),
    opt("dynamic_batch", "--dynamic-batch", key="dynamic_batch", type=Flag, default=False,
        help="Symbolic batch dimension."),
    opt("max_batch", "--max-batch", key="max_batch", type=Int, show_default="32",
        help="Largest batch of the TensorRT profile."),
    opt("image_size", "--image-size", key="image_size", type=Int, help="Input size (8–4096).",
        show_default="the manifest's"),
    opt("opset", "--opset", key="opset", type=Int, help="ONNX opset (capped by --trt-version).", show_default="17"),
    opt("exporter", "--exporter", key="exporter", help="torchscript | dynamo", show_default="torchscript"),
    opt("no_simplify", "--no-simplify", type=Flag, default=False, help="Skip graph simplification."),
    opt("embed_preprocess", "--embed-preprocess", key="embed_preprocess", type=Flag, default=False,
        help="Graph takes uint8 NHWC images."),
    opt("task", "--task", key="task", help="classify (logits) | embedding (L2-normalised).", show_default="classify"),
    opt("fp16", "--fp16", key="fp16", type=Flag, default=False, help="Also write model_fp16.onnx (float32 I/O)."),
    opt("int8", "--int8", key="int8", type=Flag, default=False, help="Also write model_int8.onnx (Q/DQ, calibrated)."),
    opt("calib_images", "--calib-images", key="calib_images", type=Int, show_default="256",
        help="Training images for INT8 calibration (capped at the training split)."),
    opt("calib_method", "--calib-method", key="calib_method", help="minmax | entropy | percentile",
        show_default="entropy"),
    opt("int8_flavour", "--int8-flavour", key="int8_flavour", show_default="auto", deprecated=("--int8-target",),
        help="INT8 flavour: cpu (ONNX Runtime), trt (TensorRT Q/DQ placement) or both; auto = cpu, plus trt with "
             "--trt."),
    opt("int8_budget", "--int8-budget", key="int8_budget", type=Float, show_default="1.0",
        help="INT8 budget, points of OA on up to 1000 validation+training images (met when at most this % of them "
        "change their top-1, or their labelled OA drops by at most this); the most sensitive layers stay float to "
        "meet it."),
    opt("no_int8_fallback", "--no-int8-fallback", type=Flag, default=False,
        help="Quantise every layer; no sensitivity fallback (a file's int8_budget: null)."),
    opt("int8_exclude", "--int8-exclude", key="int8_exclude", type=Optional[List[str]], show_default=False,
        help="Keep this layer in float (node name or module path, e.g. layer1.0.conv1; repeatable)."),
    opt("int8_cle", "--int8-cle", key="int8_cle", show_default="auto",
        help="Cross-layer equalisation of the FP32 graph before quantising (Nagel et al. 2019): weight ranges of "
             "conv pairs joined by ReLU or nothing evened channel by channel, the function unchanged (ReLU6 pairs "
             "are left alone): auto (tried by the INT8 budget, kept when it judges better), on or off."),
    opt("int8_adaround", "--int8-adaround", key="int8_adaround", show_default="auto",
        help="Learn each INT8 weight's rounding (up or down) on the calibration images (AdaRound, Nagel et al. "
             "2020; the file stays plain Q/DQ): auto (tried by the INT8 budget, kept when it judges better), on "
             "or off."),
    opt("int8_bias_correction", "--int8-bias-correction", key="int8_bias_correction", show_default="auto",
        help="Move each INT8 layer's bias so its mean output on the calibration images matches FP32 (Nagel et "
             "al. 2019; the file stays plain Q/DQ): auto (tried by the INT8 budget, kept when it judges better), "
             "on or off."),
    opt("int8_reduce_range", "--int8-reduce-range", key="int8_reduce_range", show_default="auto",
        help="7-bit INT8 weights for x86 CPUs without VNNI: auto (from this CPU), on or off."),
    opt("trt", "--trt", key="trt", type=Flag, default=False,
        help="Build a TensorRT engine (here if possible) + build_engine.sh."),
    opt("trt_version", "--trt-version", key="trt_version", help="Target TensorRT: 8.2, 8.5, 10.3, 11.",
        show_default="10.3"),
    opt("dla", "--dla", key="dla", type=Int, help="DLA core (Jetson Xavier/Orin), GPU fallback on.",
        show_default=False),
    opt("workspace_mb", "--workspace-mb", key="workspace_mb", type=Int, show_default="1024",
        help="TensorRT builder workspace (MiB)."),
    opt("remote", "--remote", key="remote", help="[user@]host[:port]: build on the Jetson over SSH.",
        show_default=False),
    opt("atol", "--atol", key="parity.atol", type=Optional[List[str]], show_default=False,
        help="Abs tolerance, PREC=VALUE (repeatable; bare = fp32; fp16's is a share of the largest |output|)."),
    opt("rtol", "--rtol", key="parity.rtol", type=Optional[List[str]], show_default=False,
        help="Rel tolerance, PREC=VALUE (repeatable; bare = fp32)."),
    opt("min_top1", "--min-top1-agreement", key="parity.min_top1_agreement", type=Float,
        show_default="1 - budget/100", help="INT8: top-1 agreement to keep, judged on labelled samples too when "
        "given (by default labelled samples are judged by the OA drop, unlabelled ones by agreement)."),
    opt("max_oa_drop", "--max-oa-drop", key="parity.max_oa_drop", type=Float, help="INT8: OA points.",
        show_default="the budget"),
    opt("samples", "--samples", key="parity_samples", type=Int, show_default="1000",
        help="Test samples for the parity check (capped at the split)."),
    opt("force", "--force", key="force", type=Flag, default=False,
        help="Replace a previous export in the output folder."),
    opt("json", "--json", type=Flag, default=False, help="Print the result as JSON."),
))


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
        from compress.config import command_section, load_config_file
        from compress.jobs.config_merge import merge_config
        from export.chain import export_checkpoint
        from export.settings import export_settings

        g = given.own
        file_values = command_section(load_config_file(g["config"]), "export") if g["config"] else {}
        values = merge_config(file_values, given.config)
        if g["no_simplify"]:
            values["simplify"] = False
        if g["no_int8_fallback"]:
            values["int8_budget"] = None
        out, cfg = export_settings(values, where=g["config"] or "export")
        if not out:
            raise UserInputError("export needs -o/--out DIR (or `out:` in --config): the folder to write the ONNX "
                                 "files and reports into.")
        result = export_checkpoint(g["checkpoint"], out, cfg)
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
