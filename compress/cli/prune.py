"""``compress prune CKPT --macs 0.5 | --params 0.3 | --latency-ms 2 --target PROFILE -o OUT [--recover]``."""
from __future__ import annotations

import typer

from compress.cli.common import console, print_json, show_table
from compress.cli.groups import DEVICE, METHOD, OUTPUT, Group, method_option, train_group
from compress.cli.options import Flag, Float, Given, Int, Strs, arg, command, opt
from compress.config import parse_params

OPTIONS = Group("prune", (
    arg("checkpoint", "Trained checkpoint (or run folder) to prune."),
    opt("macs", "--macs", key="macs", type=Float, show_default=False, help="Keep this share of the MACs (e.g. 0.5)."),
    opt("params", "--params", key="params", type=Float, show_default=False, help="Keep this share of the parameters."),
    opt("latency_ms", "--latency-ms", key="latency_ms", type=Float, show_default=False,
        help="Latency budget per image (ms): estimated for --target, or measured here with --measure."),
    opt("target", "--target", key="target", show_default=False, help="Device profile for the latency estimate."),
    opt("power_mode", "--power-mode", key="power_mode", show_default="the profile's default", help="nvpmodel mode."),
    opt("precision", "--precision", key="precision", show_default="fp16", help="fp32 | fp16 | int8 (the estimate)."),
    opt("measure", "--measure", key="measure", type=Flag, default=False, show_default=False,
        help="Measure the latency with ONNX Runtime on this CPU instead of estimating it."),
    opt("mode", "--mode", key="prune.mode", show_default="width",
        help="width: channels of every layer | depth: whole residual blocks whose shortcut is the identity "
             "(fewer kernels: what moves latency on a Jetson at small inputs)."),
    opt("importance", "--importance", key="prune.importance", show_default="magnitude",
        help="magnitude (group L2) | bn-scale | taylor (gradients of a few training batches)."),
    opt("global_pruning", "--global", key="prune.global_pruning", type=Flag, default=False, show_default=False,
        help="Rank channels across layers (default: the same share in every layer)."),
    opt("round_to", "--round-to", key="prune.round_to", type=Int, show_default="8",
        help="Channel counts stay multiples of this (TensorRT and tensor cores run misaligned counts slowly)."),
    opt("step", "--step", key="prune.step", type=Float, show_default="0.02", help="Share of channels per step."),
    opt("keep", "--keep", key="prune.keep", type=Strs, show_default="the classifier",
        help="Module path never to prune (repeatable)."),
    opt("recover", "--recover", key="recover", type=Flag, default=False, show_default=False,
        help="Then distil the pruned student from the original checkpoint (prune → distill in one command)."),
    opt("baseline", "--baseline", key="baseline", type=Flag, default=False, show_default=False,
        help="With --recover: also fine-tune the pruned network without the teacher (the no-teacher baseline)."),
))


def register(app: typer.Typer) -> None:
    @command(app, "prune", OPTIONS, method_option("kd", "the recovery's distillation method"), METHOD, train_group(),
             DEVICE, OUTPUT, convert={"method_param": parse_params})
    def prune(given: Given) -> None:
        """A pruned student that inherits the teacher's weights, cut to a MACs, parameter or latency budget."""
        from compress.cli.render import render_job, run_with_progress
        from compress.jobs.config_merge import load_job_config
        from compress.jobs.prune import PruneJobConfig, run_prune

        given.config["checkpoint"] = given["checkpoint"]
        cfg = load_job_config(PruneJobConfig, given.config, command="prune", config_file=given["config"])
        result = run_with_progress(run_prune, cfg, quiet=given["json"])
        if given["json"]:
            print_json(result)
            return
        _render(result)
        if result.recovered:
            from types import SimpleNamespace

            from compress.engine.stage import StageSummary

            rec = result.recovered
            render_job(SimpleNamespace(rows=[StageSummary(**r) for r in rec["rows"]], data=rec["data"],
                                       run_dir=rec["run_dir"], note=rec.get("note")), "recovery (distilled from the original)")


def _render(result) -> None:
    from rich.table import Table

    t = Table(title=f"pruning to {result.budget}")
    lat = "latency_ms" in result.before
    removed = "blocks removed" if any("dropped" in s.info for s in result.steps) else "channels removed"
    for col in ("step", removed, "params (M)", "MACs (M)", *(["latency ms"] if lat else [])):
        t.add_column(col, justify="right")
    for i, s in enumerate(result.steps):
        t.add_row(str(i), f"{s.ratio:.0%}", f"{s.info['params'] / 1e6:.3f}", f"{s.info['macs'] / 1e6:.2f}",
                  *([f"{s.info['latency_ms']:.3f}"] if lat else []))
    show_table(t)
    oa = result.test_oa_before_recovery
    console.print(f"→ {result.checkpoint} (margin {result.margin:+.4g}"
                  f"{'' if oa is None else f'; test OA before recovery {100 * oa:.2f} %'})")
